package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRun_ServesAndStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	env := map[string]string{"CONFLUENCESIM_SPACES": "30"}
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-public-url", "http://" + addr}, func(k string) string { return env[k] }, &logs)
	}()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		resp, err = http.Get("http://" + addr + "/wiki/")
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("simulator did not come up: %v\n%s", err, logs.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /wiki/: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(logs.String(), "listening") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestRun_ErrFlags(t *testing.T) {
	var logs bytes.Buffer
	for _, args := range [][]string{{"-seed", "x.json", "-spaces", "5"}, {"-public-url", "localhost"}, {"-nope"}} {
		if err := run(context.Background(), args, func(string) string { return "" }, &logs); err == nil {
			t.Errorf("run(%v) succeeded", args)
		}
	}
}
