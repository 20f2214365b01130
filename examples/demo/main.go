// Command demo runs the whole kube-iam-authz chain on loopback and shows it
// working with real kubectl: `make demo` builds the binaries and runs this.
//
//	kubectl (exec plugin: kube-iam-authz token)
//	   │ TLS 127.0.0.1:8443
//	Envoy (envoy/sidecar.yaml, rendered for loopback)
//	   │ ext_authz gRPC 127.0.0.1:9001          │ TLS, impersonating
//	kube-iam-authz serve ──HTTPS──▶ sts-fake   apiserver-fake 127.0.0.1:6443
//	  (examples/aws-auth.yaml)      127.0.0.1:9443
//
// It starts the four processes, waits for each to be ready, runs
// `kubectl auth whoami` as three identities (an IAM user mapped through
// mapUsers, an assumed role mapped through mapRoles, and an unmapped user
// who gets 403), then stays up until Ctrl-C. With DEMO_ONESHOT=1 (or
// --oneshot) it stops after the scripted part; the integration test runs it
// that way. Every process it started is stopped on every exit path.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
