// Command devstack runs the Space Sync stack on one machine with one
// command (`make run`): the Confluence Cloud simulator, the SendGrid
// simulator, cloud-app and dc-app, on the embedded defaults.
//
//	devstack        the whole stack (cloud-app and dc-app are the binaries
//	                built beside this one, configured only through the
//	                contract's environment variables)
//	devstack sims   only the two simulators (docker-compose runs the apps)
//
// Addresses are overridable with CONFLUENCE_SIM_ADDR, CLOUD_APP_ADDR,
// DC_APP_ADDR and SENDGRID_SIM_ADDR; data lives under DEVSTACK_DATA_DIR
// (default ./data). Every other variable of the contract is passed through
// to the services.
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
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}
