// Command cloud-app is the Space Sync Atlassian Connect app: the "Space Sync"
// page inside Confluence Cloud, token minting and email, and the API dc-app
// redeems tokens against. Configuration comes from the environment (see the
// README); with none, it runs on the embedded defaults.
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
	// "cloud-app healthcheck" is the container health check (the images have no
	// shell or curl): it asks the running service's /readyz.
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" {
		addr, ok := os.LookupEnv("CLOUD_APP_ADDR")
		if !ok || addr == "" {
			addr = ":8081"
		}
		if err := server.Probe(addr, "/readyz"); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.LookupEnv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "cloud-app:", err)
		os.Exit(1)
	}
}
