// Command confluencesim runs the Confluence Cloud simulator on its own.
//
//	confluencesim -addr localhost:8080 -public-url http://localhost:8080 \
//	    -descriptor http://127.0.0.1:8081/atlassian-connect.json \
//	    -state-file .devstack/confluencesim.json -install
//
// Each flag can also be set by an environment variable (CONFLUENCESIM_ADDR,
// CONFLUENCESIM_PUBLIC_URL, CONFLUENCESIM_DESCRIPTOR_URL,
// CONFLUENCESIM_STATE_FILE, CONFLUENCESIM_SEED, CONFLUENCESIM_SPACES); a flag
// wins over its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"spacesync.io/devstack/confluencesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "confluencesim:", err)
		os.Exit(1)
	}
}

// run parses the configuration, serves the simulator until ctx ends and,
// with -install, installs the app once its descriptor answers.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("confluencesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", env("CONFLUENCESIM_ADDR", "localhost:8080"), "listen address")
	publicURL := fs.String("public-url", env("CONFLUENCESIM_PUBLIC_URL", "http://localhost:8080"), "origin browsers and the app use to reach the simulator")
	descriptorURL := fs.String("descriptor", env("CONFLUENCESIM_DESCRIPTOR_URL", "http://127.0.0.1:8081/atlassian-connect.json"), "the app's descriptor URL")
	stateFile := fs.String("state-file", env("CONFLUENCESIM_STATE_FILE", ""), "JSON file keeping the installation across restarts (empty: in memory)")
	seedFile := fs.String("seed", env("CONFLUENCESIM_SEED", ""), "seed JSON file (empty: the embedded default)")
	spacesDefault, err := strconv.Atoi(env("CONFLUENCESIM_SPACES", "0"))
	if err != nil {
		return fmt.Errorf("CONFLUENCESIM_SPACES: %w", err)
	}
	spaces := fs.Int("spaces", spacesDefault, "generate a site with this many spaces instead of a seed file (0: off)")
	install := fs.Bool("install", false, "install the app at start (waits up to a minute for its descriptor); skipped if the state file says it is installed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	var seed *confluencesim.Seed
	switch {
	case *seedFile != "" && *spaces > 0:
		return errors.New("use -seed or -spaces, not both")
	case *seedFile != "":
		b, err := os.ReadFile(*seedFile)
		if err != nil {
			return err
		}
		if seed, err = confluencesim.ParseSeed(b); err != nil {
			return err
		}
	case *spaces > 0:
		seed = confluencesim.GenerateSeed(*spaces)
	}
	sim, err := confluencesim.New(confluencesim.Config{
		PublicURL: *publicURL, AppDescriptorURL: *descriptorURL, Seed: seed, StateFile: *stateFile, Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("Confluence Cloud simulator listening", "addr", ln.Addr().String(), "site", sim.BaseURL(),
		"install_keys_url", sim.InstallKeysURL(), "client_key", sim.ClientKey())

	if installed, _ := sim.Installed(); *install && !installed {
		go installWhenReady(ctx, sim, logger)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// installWhenReady retries Install for up to a minute, since the app may
// start after the simulator.
func installWhenReady(ctx context.Context, sim *confluencesim.Sim, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := sim.Install(ctx)
		if err == nil {
			logger.Info("app installed", "open", sim.BaseURL()+"/")
			return
		}
		select {
		case <-ctx.Done():
			logger.Error("app not installed", "err", err)
			return
		case <-time.After(time.Second):
		}
	}
}
