// Command noop-authz is the benchmarks' baseline ext_authz server: the same
// gRPC server as `kube-iam-authz serve` (package server: options, health,
// reflection, /metrics) around a Check that answers a fixed OK response.
//
//	noop-authz --grpc-listen 127.0.0.1:9101 --http-listen 127.0.0.1:9191
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/authz/server"
	"github.com/kube-iam-authz/kube-iam-authz/integration/bench/noop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "noop-authz: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("noop-authz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	grpcAddr := fs.String("grpc-listen", "127.0.0.1:9101", "ext_authz gRPC listen address")
	httpAddr := fs.String("http-listen", "127.0.0.1:9191", "HTTP listen address (/metrics, /healthz, /readyz)")
	var a noop.Answer
	fs.StringVar(&a.Bearer, "bearer", "proxy-token", "token that replaces the client's Authorization")
	groups := fs.String("groups", "devs,viewers", "comma-separated groups (dynamic metadata slots)")
	fs.Func("header", "upstream header to set, name:value (repeatable); default: a typical mapped IAM user's impersonate-user, -uid and -extra-* lines", func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if !ok || name == "" {
			return fmt.Errorf("--header %q: want name:value", v)
		}
		a.Headers = append(a.Headers, [2]string{strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *groups != "" {
		a.Groups = strings.Split(*groups, ",")
	}
	if len(a.Headers) == 0 {
		a.Headers = [][2]string{
			{"impersonate-user", "bench-0000"},
			{"impersonate-uid", "aws-iam-authenticator:111122223333:AIDAEXAMPLEEXAMPLE000"},
			{"impersonate-extra-arn", "arn:aws:iam::111122223333:user/bench-0000"},
			{"impersonate-extra-canonicalarn", "arn:aws:iam::111122223333:user/bench-0000"},
			{"impersonate-extra-accesskeyid", "AKIABENCH00000000000"},
			{"impersonate-extra-principalid", "AIDAEXAMPLEEXAMPLE000"},
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return server.Run(ctx, server.Options{
		GRPCAddr:   *grpcAddr,
		HTTPAddr:   *httpAddr,
		Authorizer: noop.New(a),
		Gatherer:   reg,
		Logger:     zap.NewNop(),
	})
}
