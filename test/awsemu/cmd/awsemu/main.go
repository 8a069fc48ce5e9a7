// Command awsemu serves the AWS KMS and S3 emulator of package
// test/awsemu on the IPv4 loopback, for consumers that run as separate
// processes (make dev, the e2e suite). Its first line on stdout is
//
//	AWSEMU_URL=http://127.0.0.1:<port>
//
// which is the endpoint to configure as the SDK's BaseEndpoint (S3 clients
// need path-style addressing). It serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/workspace-operator/workspace-operator/internal/offsetclock"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// shutdownGrace bounds how long in-flight requests may take to finish after
// a termination signal.
const shutdownGrace = 5 * time.Second

func main() {
	if err := runUntilSignalled(); err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		os.Exit(1)
	}
}

func runUntilSignalled() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// run starts the emulator, announces its URL on stdout and serves until ctx
// ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("awsemu", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", awsemu.DefaultAddr, "listen address; the host must be 127.0.0.1")
	accountID := flags.String("account-id", awsemu.DefaultAccountID, "12-digit AWS account ID used in ARNs")
	useTLS := flags.Bool("tls", false, "serve HTTPS with a self-signed certificate (see --tls-cert-file)")
	certFile := flags.String("tls-cert-file", "", "with --tls, write the PEM certificate clients must trust to this file")
	verbose := flags.Bool("v", false, "log every request to stderr")
	offsetFile := flags.String("clock-offset-file", "", "run the emulator's clock ahead of real time by the duration in this file, read again at every reading (internal/offsetclock)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *certFile != "" && !*useTLS {
		return errors.New("--tls-cert-file requires --tls")
	}

	opts := awsemu.Options{Addr: *listen, AccountID: *accountID, TLS: *useTLS}
	if *offsetFile != "" {
		opts.Clock = offsetclock.New(*offsetFile)
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	srv, err := awsemu.Start(opts)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()
	if *certFile != "" {
		if err := os.WriteFile(*certFile, srv.CertificatePEM(), 0o644); err != nil {
			return fmt.Errorf("write certificate: %w", err)
		}
	}
	if _, err := fmt.Fprintf(stdout, "AWSEMU_URL=%s\n", srv.URL()); err != nil {
		return fmt.Errorf("announce URL: %w", err)
	}

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
