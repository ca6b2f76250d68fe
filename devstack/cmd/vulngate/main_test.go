package main

import (
	"io"
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	allowedOnly := `{"config":{}}
{"finding":{"osv":"GO-2026-6875","fixed_version":"v5.4.0","trace":[{"module":"github.com/labstack/echo/v4","version":"v4.16.5"}]}}
{"finding":{"osv":"GO-2026-6872","trace":[{"module":"github.com/labstack/echo/v4"}]}}`
	if err := gate(strings.NewReader(allowedOnly), io.Discard); err != nil {
		t.Errorf("only allowed findings: got %v, want nil", err)
	}
	other := allowedOnly + "\n" + `{"finding":{"osv":"GO-2026-9999","fixed_version":"v0.62.0","trace":[{"module":"golang.org/x/net","version":"v0.60.0"}]}}`
	if err := gate(strings.NewReader(other), io.Discard); err == nil {
		t.Error("a finding outside the allow-list: got nil, want an error")
	}
	if err := gate(strings.NewReader("{not json"), io.Discard); err == nil {
		t.Error("garbage input: got nil, want an error")
	}
}
