// Command kube-iam-authz lets AWS IAM identities into Kubernetes through
// Envoy: an ext_authz server (serve), an exec credential plugin (token) and
// operator tools (verify, map, mapping check).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], app.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
