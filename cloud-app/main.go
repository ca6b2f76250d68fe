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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.LookupEnv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "cloud-app:", err)
		os.Exit(1)
	}
}
