// Package interop runs the independent Node implementations kept in the
// repository's interop/ folder (npm jose and atlassian-jwt), so Go tests can
// check their results against an implementation that is not ours.
//
// A script reads one JSON value on stdin and writes one JSON value on stdout.
// The Node packages are installed by `make deps` (npm ci in interop/); a
// missing installation fails the test rather than skipping it, so a green run
// always means the oracle was consulted.
package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Root returns the repository root: the nearest directory above the working
// directory that holds go.work.
func Root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("interop: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("interop: no go.work above the working directory")
		}
		dir = parent
	}
}

// Node runs interop/<script> with input encoded as JSON on stdin and decodes
// its stdout into output. The script's stderr is shown when it fails.
func Node(tb testing.TB, script string, input, output any) {
	tb.Helper()
	root := Root(tb)
	dir := filepath.Join(root, "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose")); err != nil {
		tb.Fatalf("interop: the Node packages are not installed: run `make deps` (npm ci in interop/)")
	}
	in, err := json.Marshal(input)
	if err != nil {
		tb.Fatalf("interop: encode input: %v", err)
	}
	cmd := exec.Command("node", filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || stderr.Len() > 0 {
			tb.Fatalf("interop: node %s: %v\n%s", script, err, stderr.String())
		}
		tb.Fatalf("interop: node %s: %v", script, err)
	}
	if output != nil {
		if err := json.Unmarshal(stdout.Bytes(), output); err != nil {
			tb.Fatalf("interop: node %s: decode output: %v\n%s", script, err, stdout.String())
		}
	}
}
