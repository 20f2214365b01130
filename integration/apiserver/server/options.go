package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Impersonation modes: which filter of k8s.io/apiserver runs.
const (
	// ModeClassic runs impersonation.WithImpersonation (ConstrainedImpersonation
	// gate off): what EKS clusters run today.
	ModeClassic = "classic"
	// ModeConstrained runs impersonation.WithConstrainedImpersonation
	// (gate on, the default since Kubernetes 1.36): tries the constrained
	// modes first and falls back to the classic "impersonate" verb.
	ModeConstrained = "constrained"
)

// DefaultProxyUser is the identity the proxy's own token maps to: a
// ServiceAccount, as in a real deployment.
const DefaultProxyUser = "system:serviceaccount:kube-iam-authz:proxy"

// DefaultRecordCapacity is how many requests GET /requests retains.
const DefaultRecordCapacity = 256

// maxRecordCapacity bounds the ring; each record can hold ~100 KiB.
const maxRecordCapacity = 10000

// Options configures the peer. Flags in main map one to one onto it.
type Options struct {
	// Listen is the secure (TLS) address, e.g. 127.0.0.1:6443 or
	// 127.0.0.1:0 for any free port.
	Listen string
	// CertDir receives ca.crt, apiserver.crt and apiserver.key.
	CertDir string

	// ProxyUser, ProxyUID and ProxyGroups are the identity the proxy token
	// authenticates as (system:authenticated is always added).
	ProxyUser   string
	ProxyUID    string
	ProxyGroups []string
	// ProxyToken is a static token for the proxy identity.
	ProxyToken string
	// ProxyTokenFile holds the proxy's current token; it is re-read per
	// request so a rotated-out token is rejected at once.
	ProxyTokenFile string
	// TokenAuthFile is a kube-apiserver --token-auth-file CSV
	// (token,user,uid,"group1,group2") for other identities.
	TokenAuthFile string

	// ImpersonationMode is ModeClassic or ModeConstrained.
	ImpersonationMode string
	// ProxyGrants lists which impersonation verbs the proxy holds:
	// GrantImpersonate and/or GrantUserInfo.
	ProxyGrants []string
	// DenyUsers are effective users denied every request.
	DenyUsers []string

	// RecordListen is the plain-HTTP address of GET/DELETE /requests;
	// empty disables the endpoint (recording still runs in process).
	RecordListen string
	// RecordCapacity bounds the request ring.
	RecordCapacity int

	// Now is the clock for certificates and records.
	Now func() time.Time
}

// NewOptions returns Options with defaults filled in.
func NewOptions() *Options {
	return &Options{
		Listen:            "127.0.0.1:0",
		ProxyUser:         DefaultProxyUser,
		ProxyGroups:       []string{"system:serviceaccounts", "system:serviceaccounts:kube-iam-authz"},
		ImpersonationMode: ModeClassic,
		ProxyGrants:       []string{GrantImpersonate},
		RecordCapacity:    DefaultRecordCapacity,
		Now:               time.Now,
	}
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", o.Listen, err))
	}
	if o.CertDir == "" {
		errs = append(errs, errors.New("cert dir is required"))
	}
	if o.ProxyUser == "" {
		errs = append(errs, errors.New("proxy user is required"))
	}
	if o.ProxyToken == "" && o.ProxyTokenFile == "" {
		errs = append(errs, errors.New("one of proxy token or proxy token file is required"))
	}
	if o.ProxyTokenFile != "" {
		if _, err := os.Stat(o.ProxyTokenFile); err != nil {
			errs = append(errs, fmt.Errorf("proxy token file: %w", err))
		}
	}
	if o.TokenAuthFile != "" {
		if _, err := os.Stat(o.TokenAuthFile); err != nil {
			errs = append(errs, fmt.Errorf("token auth file: %w", err))
		}
	}
	switch o.ImpersonationMode {
	case ModeClassic, ModeConstrained:
	default:
		errs = append(errs, fmt.Errorf("impersonation mode %q: want %q or %q", o.ImpersonationMode, ModeClassic, ModeConstrained))
	}
	for _, g := range o.ProxyGrants {
		if g != GrantImpersonate && g != GrantUserInfo {
			errs = append(errs, fmt.Errorf("proxy grant %q: want %q or %q", g, GrantImpersonate, GrantUserInfo))
		}
	}
	if o.RecordListen != "" {
		if _, _, err := net.SplitHostPort(o.RecordListen); err != nil {
			errs = append(errs, fmt.Errorf("record listen %q: %w", o.RecordListen, err))
		}
	}
	if o.RecordCapacity < 1 || o.RecordCapacity > maxRecordCapacity {
		errs = append(errs, fmt.Errorf("record capacity %d: want 1..%d", o.RecordCapacity, maxRecordCapacity))
	}
	if o.Now == nil {
		errs = append(errs, errors.New("clock (Now) is required"))
	}
	return errors.Join(errs...)
}
