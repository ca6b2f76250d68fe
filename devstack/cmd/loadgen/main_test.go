package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// binDir is a -bin directory with (empty) service binaries in it.
func binDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []string{"cloud-app", "dc-app"} {
		if err := os.WriteFile(filepath.Join(dir, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseFlags_OK(t *testing.T) {
	bin := binDir(t)
	o, err := parseFlags([]string{"-bin", bin, "-scenarios", "redeem,soak,redeem", "-pg-mode", "durable",
		"-clients", "1, 8,64", "-duration", "5s", "-soak-duration", "1m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.scenarios, []string{"redeem", "soak"}) || !slices.Equal(o.modes, []string{"durable"}) {
		t.Errorf("scenarios %v, modes %v; want [redeem soak] (repeats dropped), [durable]", o.scenarios, o.modes)
	}
	if !slices.Equal(o.redeem.Clients, []int{1, 8, 64}) || o.redeem.Duration != 5*time.Second || o.soak.Duration != time.Minute {
		t.Errorf("clients %v, duration %v, soak %v", o.redeem.Clients, o.redeem.Duration, o.soak.Duration)
	}
	// The warm-up and the request bound carry over to the import scenario.
	if o.imports.Warmup != o.redeem.Warmup || o.imports.Max != o.redeem.Max {
		t.Errorf("import warm-up %v / max %d, want the redeem ones %v / %d", o.imports.Warmup, o.imports.Max, o.redeem.Warmup, o.redeem.Max)
	}
	all, err := parseFlags([]string{"-bin", bin, "-scenarios", "all"}, io.Discard)
	if err != nil || !slices.Equal(all.scenarios, allScenarios) {
		t.Errorf("-scenarios all = %v, %v; want every scenario", all.scenarios, err)
	}
	// The defaults are the full run: every scenario, both settings, the
	// soak once, in the last (durable) mode, for the target's 5 minutes.
	def, err := parseFlags([]string{"-bin", bin}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(def.scenarios, allScenarios) || !slices.Equal(def.modes, []string{"fast", "durable"}) ||
		def.soakMode != "durable" || def.soak.Duration != 5*time.Minute || def.quick {
		t.Errorf("defaults: scenarios %v, modes %v, soak in %q for %v, quick %v", def.scenarios, def.modes, def.soakMode, def.soak.Duration, def.quick)
	}
}

func TestParseFlags_Quick(t *testing.T) {
	bin := binDir(t)
	o, err := parseFlags([]string{"-bin", bin, "-quick", "-ui-duration", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.redeem.Duration != 3*time.Second || o.redeem.Warmup != time.Second || o.soak.Duration != 25*time.Second ||
		o.pgbench.Scale != 2 || o.pgbench.Duration != 5*time.Second {
		t.Errorf("-quick: duration %v, warm-up %v, soak %v, pgbench scale %d for %v; want 3s, 1s, 25s, 2, 5s",
			o.redeem.Duration, o.redeem.Warmup, o.soak.Duration, o.pgbench.Scale, o.pgbench.Duration)
	}
	if o.ui.Duration != 2*time.Second {
		t.Errorf("-quick -ui-duration 2s: ui duration %v, want the explicit 2s", o.ui.Duration)
	}
	if o.ui.Warmup != time.Second || o.imports.Warmup != time.Second {
		t.Errorf("-quick: ui and import warm-ups %v, %v; want the quick 1s", o.ui.Warmup, o.imports.Warmup)
	}
	for name, v := range quickDefaults {
		if _, err := parseFlags([]string{"-bin", bin, "-" + name, v}, io.Discard); err != nil {
			t.Errorf("quick default -%s %s is not valid on its own: %v", name, v, err)
		}
	}
}

func TestParseFlags_ErrBad(t *testing.T) {
	bin := binDir(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-scenarios", "redeem,flood"}, "unknown \"flood\""},
		{[]string{"-pg-mode", "fsync-off"}, "-pg-mode"},
		{[]string{"-clients", "1,0"}, "-clients"},
		{[]string{"-clients", "1,100000"}, "-clients"},
		{[]string{"-duration", "0s"}, "-duration"},
		{[]string{"-duration", "2h"}, "-duration"},
		{[]string{"-soak-duration", "24h"}, "-soak-duration"},
		{[]string{"-soak-rate", "0"}, "-soak-rate"},
		{[]string{"-max", "0"}, "-max"},
		{[]string{"-pgbench-threads", "65"}, "-pgbench-threads"},
		{[]string{"-import-auth", "none"}, "-import-auth"},
		{[]string{"-pg-mode", "fast", "-soak-mode", "durable"}, "-soak-mode"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, tc := range tests {
		args := append([]string{"-bin", bin}, tc.args...)
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags([]string{"-bin", t.TempDir()}, io.Discard); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("parseFlags with no binaries = %v, want an error saying to build them", err)
	}
}
