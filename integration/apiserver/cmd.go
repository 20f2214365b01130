package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/integration/apiserver/server"
)

// run parses args, serves until ctx is cancelled and returns the exit code.
// The ready line goes to stdout once /readyz answers 200; harnesses wait
// for it:
//
//	apiserver-fake ready https://127.0.0.1:PORT record=http://127.0.0.1:PORT ca=DIR/ca.crt mode=classic
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "apiserver-fake: %v\n", err)
		return 2
	}
	s, err := server.New(o)
	if err != nil {
		fmt.Fprintf(stderr, "apiserver-fake: %v\n", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
		record := s.RecordURL()
		if record == "" {
			record = "off"
		}
		fmt.Fprintf(stdout, "apiserver-fake ready %s record=%s ca=%s mode=%s\n", s.URL(), record, s.CAFile(), o.ImpersonationMode)
	case err := <-done:
		fmt.Fprintf(stderr, "apiserver-fake: stopped before ready: %v\n", err)
		return 1
	}
	if err := <-done; err != nil {
		fmt.Fprintf(stderr, "apiserver-fake: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*server.Options, error) {
	o := server.NewOptions()
	fs := flag.NewFlagSet("apiserver-fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Listen, "listen", o.Listen, "secure (TLS) listen address; port 0 picks a free port")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory that receives ca.crt, apiserver.crt and apiserver.key (required)")
	fs.StringVar(&o.ProxyUser, "proxy-user", o.ProxyUser, "username the proxy token authenticates as")
	fs.StringVar(&o.ProxyUID, "proxy-uid", o.ProxyUID, "uid the proxy token authenticates as")
	groups := newListFlag(o.ProxyGroups)
	fs.Var(groups, "proxy-group", "group of the proxy identity (repeatable or comma separated; system:authenticated is always added)")
	fs.StringVar(&o.ProxyToken, "proxy-token", o.ProxyToken, "static bearer token of the proxy identity")
	fs.StringVar(&o.ProxyTokenFile, "proxy-token-file", o.ProxyTokenFile, "file holding the proxy's current token, re-read on every request (rotation)")
	fs.StringVar(&o.TokenAuthFile, "token-auth-file", o.TokenAuthFile, `kube-apiserver static token CSV (token,user,uid,"group1,group2") for other identities`)
	fs.StringVar(&o.ImpersonationMode, "impersonation-mode", o.ImpersonationMode, "classic (ConstrainedImpersonation gate off, as EKS runs today) or constrained")
	grants := newListFlag(o.ProxyGrants)
	fs.Var(grants, "proxy-grant", "impersonation verbs the proxy holds: impersonate (classic verb) and/or user-info (constrained); comma separated")
	deny := newListFlag(nil)
	fs.Var(deny, "deny-user", "effective user denied every request (repeatable): proves authorization applies to the impersonated user")
	fs.StringVar(&o.RecordListen, "record-listen", o.RecordListen, "plain-HTTP address for GET/DELETE /requests (empty: off)")
	fs.IntVar(&o.RecordCapacity, "record-capacity", o.RecordCapacity, "requests kept by the recorder")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.ProxyGroups = groups.values
	o.ProxyGrants = grants.values
	o.DenyUsers = deny.values
	return o, o.Validate()
}

// listFlag accepts repeated flags and comma-separated values. The first
// Set replaces the default rather than appending to it.
type listFlag struct {
	values  []string
	changed bool
}

func newListFlag(defaults []string) *listFlag {
	return &listFlag{values: append([]string(nil), defaults...)}
}

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.changed {
		l.values, l.changed = nil, true
	}
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			l.values = append(l.values, part)
		}
	}
	return nil
}
