package main

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// certLifetime covers a demo session; the PKI is regenerated every run.
const certLifetime = 7 * 24 * time.Hour

// listenerPKI is the throwaway CA kubectl trusts and the certificate Envoy
// serves on its listener (127.0.0.1 and localhost).
type listenerPKI struct {
	CAFile, CertFile, KeyFile string
}

func writeListenerPKI(dir string, now time.Time) (listenerPKI, error) {
	p := listenerPKI{
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "envoy-listener.crt"),
		KeyFile:  filepath.Join(dir, "envoy-listener.key"),
	}
	ca, err := kubecluster.NewCA("kube-iam-authz demo CA", now, certLifetime)
	if err != nil {
		return p, err
	}
	return p, errors.Join(
		ca.WriteCert(p.CAFile),
		ca.IssueServing(p.CertFile, p.KeyFile, "kube-iam-authz demo listener", "localhost"),
	)
}

// bootstrapUser is the demo's own cluster-admin certificate subject.
const bootstrapUser = "kube-iam-authz-demo-bootstrap"

// writeClusterPKI makes the cluster's PKI (kubecluster.PKI) in dir, with
// the demo's names.
func writeClusterPKI(dir string, now time.Time) (kubecluster.PKI, error) {
	return kubecluster.WritePKI(dir, kubecluster.PKIOptions{
		CAName:    "kube-iam-authz demo cluster CA",
		AdminUser: bootstrapUser,
		Now:       now,
		Lifetime:  certLifetime,
	})
}
