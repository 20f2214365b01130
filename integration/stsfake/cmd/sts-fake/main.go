// Command sts-fake serves the STS GetCallerIdentity stand-in for tests and the
// demo. It prints one ready line to stdout once it accepts connections:
//
//	sts-fake ready url=https://127.0.0.1:PORT ca=/path/ca.pem principals=N
//
// and serves until SIGINT or SIGTERM. /_fake/stats and /_fake/fault on the
// same address read counters and inject faults (see package stsfake).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sts-fake: %v\n", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	listen     string
	tls        bool
	caOut      string
	principals string
	latency    time.Duration
	sans       string
}

func (o options) validate() error {
	var errs []error
	if o.principals == "" {
		errs = append(errs, errors.New("--principals is required"))
	}
	if o.caOut != "" && !o.tls {
		errs = append(errs, errors.New("--ca-out needs --tls"))
	}
	if o.latency < 0 {
		errs = append(errs, errors.New("--latency must not be negative"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("sts-fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "listen address")
	fs.BoolVar(&o.tls, "tls", true, "serve HTTPS with a CA generated at start")
	fs.StringVar(&o.caOut, "ca-out", "", "write the generated CA certificate (PEM) to this file")
	fs.StringVar(&o.principals, "principals", "", "principals file (YAML)")
	fs.DurationVar(&o.latency, "latency", 0, "delay before every STS answer")
	fs.StringVar(&o.sans, "tls-san", "", "comma-separated extra DNS names for the certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	data, err := os.ReadFile(o.principals)
	if err != nil {
		return err
	}
	principals, err := stsfake.ParsePrincipals(data)
	if err != nil {
		return err
	}
	srv, err := stsfake.New(stsfake.Options{Principals: principals, Latency: o.latency})
	if err != nil {
		return err
	}
	var sans []string
	if o.sans != "" {
		sans = strings.Split(o.sans, ",")
	}
	running, err := srv.Start(stsfake.ServeOptions{Addr: o.listen, TLS: o.tls, DNSNames: sans})
	if err != nil {
		return err
	}
	defer running.Close()
	if o.caOut != "" {
		if err := os.WriteFile(o.caOut, running.CAPEM, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "sts-fake ready url=%s ca=%s principals=%d\n", running.URL, o.caOut, len(principals))
	<-ctx.Done()
	return running.Close()
}
