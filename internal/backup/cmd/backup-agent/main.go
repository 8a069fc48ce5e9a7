// Command backup-agent runs the backup agent on its own, exactly as the
// operator binary's backup and restore subcommands do: for development
// and for tests that need the agent as a separate process.
//
//	backup-agent backup --workspace acme --location eu-west-1=bucket,alias/workspace-operator/acme --source /data
//	backup-agent restore --workspace acme --location eu-west-1=bucket,alias/workspace-operator/acme --target /restore
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/workspace-operator/workspace-operator/internal/backup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := backup.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backup-agent:", err)
		os.Exit(1)
	}
}
