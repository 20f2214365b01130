package kubecluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"path/filepath"
	"time"
)

// DNSNames are the names the serving certificate carries: the in-cluster
// service name envoy/sidecar.yaml dials and verifies (SNI and SAN
// kubernetes.default.svc), its shorter forms, and localhost. The
// certificate also names 127.0.0.1 and ::1.
func DNSNames() []string {
	return []string{"kubernetes.default.svc", "kubernetes.default", "kubernetes", "localhost"}
}

// PKI is what kube-apiserver needs, made fresh at every start as kubeadm
// would: a cluster CA (the one a pod finds as ca.crt, and which
// envoy/sidecar.yaml trusts for the API server), the API server's serving
// certificate, the key that signs service-account tokens, and a client
// certificate in system:masters for bootstrapping the cluster (like
// kubeadm's admin.conf). The proxy never holds that one: it gets a
// TokenRequest token of its own service account.
type PKI struct {
	CAFile          string
	ServingCertFile string
	ServingKeyFile  string
	SAKeyFile       string // ECDSA private key: signs service-account tokens
	SAPubFile       string // its public key: verifies them
	AdminCertFile   string
	AdminKeyFile    string
	// AdminUser is the bootstrap certificate's user (CN; O is system:masters).
	AdminUser string
}

// PKIOptions name and date the PKI.
type PKIOptions struct {
	// CAName is the CA certificate's common name.
	CAName string
	// AdminUser is the bootstrap certificate's user name.
	AdminUser string
	// Now and Lifetime bound every certificate's validity.
	Now      time.Time
	Lifetime time.Duration
}

// WritePKI makes the PKI in dir (which must exist): ca.crt, apiserver.crt
// and .key, sa.key and sa.pub, bootstrap-admin.crt and .key. Keys are 0600.
func WritePKI(dir string, o PKIOptions) (PKI, error) {
	p := PKI{
		CAFile:          filepath.Join(dir, "ca.crt"),
		ServingCertFile: filepath.Join(dir, "apiserver.crt"),
		ServingKeyFile:  filepath.Join(dir, "apiserver.key"),
		SAKeyFile:       filepath.Join(dir, "sa.key"),
		SAPubFile:       filepath.Join(dir, "sa.pub"),
		AdminCertFile:   filepath.Join(dir, "bootstrap-admin.crt"),
		AdminKeyFile:    filepath.Join(dir, "bootstrap-admin.key"),
		AdminUser:       o.AdminUser,
	}
	if o.CAName == "" || o.AdminUser == "" || o.Lifetime <= 0 {
		return p, errors.New("kubecluster: PKIOptions need a CA name, an admin user and a positive lifetime")
	}
	ca, err := NewCA(o.CAName, o.Now, o.Lifetime)
	if err != nil {
		return p, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return p, err
	}
	return p, errors.Join(
		ca.WriteCert(p.CAFile),
		ca.IssueServing(p.ServingCertFile, p.ServingKeyFile, "kube-apiserver", DNSNames()...),
		ca.Issue(p.AdminCertFile, p.AdminKeyFile, &x509.Certificate{
			// The API server reads the user from CN and groups from O.
			Subject:     pkix.Name{CommonName: o.AdminUser, Organization: []string{"system:masters"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}),
		writeKey(p.SAKeyFile, saKey),
		// kube-apiserver's --service-account-key-file wants public keys.
		writePEM(p.SAPubFile, "PUBLIC KEY", saPub, 0o644),
	)
}
