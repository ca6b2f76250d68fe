// Command dc-app is the Space Sync companion beside Confluence Data Center:
// DC admins sign in, import a space token from Confluence Cloud, and see the
// synced spaces. Configuration comes from the environment (see the README);
// with none, it runs on the embedded defaults.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"spacesync.io/shared/server"
)

func main() {
	// "dc-app healthcheck" is the container health check (the images have no
	// shell or curl): it asks the running service's /readyz.
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" {
		addr, ok := os.LookupEnv("DC_APP_ADDR")
		if !ok || addr == "" {
			addr = ":8082"
		}
		if err := server.Probe(addr, "/readyz"); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.LookupEnv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "dc-app:", err)
		os.Exit(1)
	}
}
