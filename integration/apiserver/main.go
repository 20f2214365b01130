// Command apiserver-fake runs the stock k8s.io/apiserver handler chain
// (authentication, impersonation, authorization) as a test peer for
// kube-iam-authz. See server.Options for what each flag sets.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
