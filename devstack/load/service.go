package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Service is a service binary (cloud-app, dc-app) running as a child
// process, configured only through its environment.
type Service struct {
	Name string
	// BaseURL is http://127.0.0.1:port.
	BaseURL string
	// LogPath is where its standard output and error go.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// serviceEnv is the environment a service starts with: PATH and HOME from
// this process, then env (NAME=value). Nothing else leaks in, so a
// variable set in the caller's shell cannot change what is measured.
func serviceEnv(env []string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(out, env...)
}

// StartService starts bin with env, its output appended to logPath, and
// waits until baseURL/readyz answers 200 (at most a minute).
func StartService(ctx context.Context, name, bin, baseURL, logPath string, env []string) (*Service, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = serviceEnv(env)
	// If the load generator dies without stopping it (SIGKILL), the
	// service dies too rather than keep its port and database.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Service{Name: name, BaseURL: baseURL, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, time.Minute); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%s did not become ready: %w\nlast lines of %s:\n%s", name, err, logPath, tail(logPath, 15))
	}
	return s, nil
}

func (s *Service) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("it exited: %v", s.err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PID is the process id.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// Alive reports whether the process is still running.
func (s *Service) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to 20 s for an orderly exit, then kills
// the process. Stopping a stopped service does nothing.
func (s *Service) Stop() {
	if !s.Alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// RSS is the process's resident memory (VmRSS) in bytes.
func (s *Service) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.PID()))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

// parseVmRSS reads the VmRSS line ("VmRSS:   12345 kB") of
// /proc/<pid>/status and returns bytes.
func parseVmRSS(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread, or the process has exited)")
}

// Metrics reads the named metrics (unlabelled gauges and counters such as
// go_goroutines) from the service's Prometheus endpoint.
func (s *Service) Metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(body), names), nil
}

// parseMetrics picks the unlabelled samples named in names out of the
// Prometheus text format. Names that are absent are absent from the map.
func parseMetrics(text string, names []string) map[string]float64 {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// FreeAddr returns a free 127.0.0.1 address to listen on.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
