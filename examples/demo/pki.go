package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
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
	ca, err := newCA("kube-iam-authz demo CA", now)
	if err != nil {
		return p, err
	}
	return p, errors.Join(
		ca.writeCert(p.CAFile),
		ca.issue(p.CertFile, p.KeyFile, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "kube-iam-authz demo listener"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}, now),
	)
}

// clusterPKI is what kube-apiserver needs, made fresh at every start as
// kubeadm would: a cluster CA (the one a pod finds as ca.crt, and which
// envoy/sidecar.yaml trusts for the API server), the API server's serving
// certificate, the key that signs service-account tokens, and a client
// certificate in system:masters that the demo uses once to bootstrap the
// cluster (like kubeadm's admin.conf). The proxy never holds that one: it
// gets a TokenRequest token of its own service account.
type clusterPKI struct {
	CAFile          string
	ServingCertFile string
	ServingKeyFile  string
	SAKeyFile       string // ECDSA private key: signs service-account tokens
	SAPubFile       string // its public key: verifies them
	AdminCertFile   string
	AdminKeyFile    string
}

// apiServerSANs are the names the serving certificate carries: the
// in-cluster service name envoy/sidecar.yaml dials and verifies (SNI and
// SAN kubernetes.default.svc), its shorter forms, and loopback.
var apiServerSANs = []string{"kubernetes.default.svc", "kubernetes.default", "kubernetes", "localhost"}

// bootstrapUser is the demo's own cluster-admin certificate subject.
const bootstrapUser = "kube-iam-authz-demo-bootstrap"

func writeClusterPKI(dir string, now time.Time) (clusterPKI, error) {
	p := clusterPKI{
		CAFile:          filepath.Join(dir, "ca.crt"),
		ServingCertFile: filepath.Join(dir, "apiserver.crt"),
		ServingKeyFile:  filepath.Join(dir, "apiserver.key"),
		SAKeyFile:       filepath.Join(dir, "sa.key"),
		SAPubFile:       filepath.Join(dir, "sa.pub"),
		AdminCertFile:   filepath.Join(dir, "bootstrap-admin.crt"),
		AdminKeyFile:    filepath.Join(dir, "bootstrap-admin.key"),
	}
	ca, err := newCA("kube-iam-authz demo cluster CA", now)
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
		ca.writeCert(p.CAFile),
		ca.issue(p.ServingCertFile, p.ServingKeyFile, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "kube-apiserver"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:    apiServerSANs,
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}, now),
		ca.issue(p.AdminCertFile, p.AdminKeyFile, &x509.Certificate{
			// The API server reads the user from CN and groups from O.
			Subject:     pkix.Name{CommonName: bootstrapUser, Organization: []string{"system:masters"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, now),
		writeKey(p.SAKeyFile, saKey),
		// kube-apiserver's --service-account-key-file wants public keys.
		writePEM(p.SAPubFile, "PUBLIC KEY", saPub, 0o644),
	)
}

// ca is a throwaway certificate authority.
type ca struct {
	cert *x509.Certificate
	der  []byte
	key  crypto.Signer
}

func newCA(name string, now time.Time) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, der: der, key: key}, nil
}

func (c *ca) writeCert(path string) error {
	return writePEM(path, "CERTIFICATE", c.der, 0o644)
}

// issue signs leaf (subject, usages and names filled in by the caller)
// with a fresh key and writes both.
func (c *ca) issue(certPath, keyPath string, leaf *x509.Certificate, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf.SerialNumber = serial()
	leaf.NotBefore = now.Add(-time.Minute)
	leaf.NotAfter = now.Add(certLifetime)
	leaf.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, leaf, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return err
	}
	return errors.Join(writePEM(certPath, "CERTIFICATE", der, 0o644), writeKey(keyPath, key))
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n.Add(n, big.NewInt(1))
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
