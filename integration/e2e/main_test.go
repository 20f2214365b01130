//go:build integration

package e2e

import (
	"os"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// kube is the real kube-apiserver (with its etcd) every test of this package that
// needs one shares: starting it costs tens of seconds, so it starts once, on first
// use, and stops when the package's tests are done. Tests keep apart by namespaces
// and user names.
var kube harness.SharedKubeAPIServer

func TestMain(m *testing.M) {
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

// startKubeChain starts the chain with the shared real kube-apiserver as the API
// server of its one cluster.
func startKubeChain(t *testing.T, o harness.ChainOptions) *harness.Chain {
	t.Helper()
	o.KubeAPIServer = kube.Get(t)
	return harness.StartChain(t, o)
}
