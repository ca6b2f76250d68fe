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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.LookupEnv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "dc-app:", err)
		os.Exit(1)
	}
}
