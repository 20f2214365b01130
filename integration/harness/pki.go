package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// certLifetime covers any test run; the PKI is thrown away with the temp dir.
const certLifetime = 24 * time.Hour

// CA is a throwaway certificate authority whose certificate is written to CertFile.
type CA struct {
	CertFile string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	dir      string
}

// Cert is a leaf certificate and key, as PEM files and as a tls.Certificate.
type Cert struct {
	CertFile string
	KeyFile  string
	TLS      tls.Certificate
}

// PEM returns the certificate and key files' contents, e.g. for a ProjectedDir laid
// out like a kubernetes.io/tls Secret (tls.crt, tls.key).
func (c *Cert) PEM(t testing.TB) (cert, key []byte) {
	t.Helper()
	cert, err := os.ReadFile(c.CertFile)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	key, err = os.ReadFile(c.KeyFile)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return cert, key
}

// NewCA makes a CA (ECDSA P-256) in the test's temp dir.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := newCA(t.TempDir())
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return ca
}

// newCA makes a CA whose files live in dir.
func newCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "kube-iam-authz test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{CertFile: filepath.Join(dir, "ca.crt"), cert: cert, key: key, dir: dir}
	return ca, writePEM(ca.CertFile, "CERTIFICATE", der)
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue makes a server+client leaf certificate for the given DNS names and IPs
// (strings that parse as IPs become IP SANs), named name in the CA's directory.
func (ca *CA) Issue(t testing.TB, name string, sans ...string) *Cert {
	t.Helper()
	return ca.IssueValidFor(t, name, certLifetime, sans...)
}

// IssueValidFor is Issue with the certificate valid for lifetime from now (tests
// that tell two certificates apart by notAfter, or that need one close to expiry).
func (ca *CA) IssueValidFor(t testing.TB, name string, lifetime time.Duration, sans ...string) *Cert {
	t.Helper()
	c, err := ca.issue(name, lifetime, sans...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return c
}

func (ca *CA) issue(name string, lifetime time.Duration, sans ...string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &Cert{
		CertFile: filepath.Join(ca.dir, name+".crt"),
		KeyFile:  filepath.Join(ca.dir, name+".key"),
	}
	if err := writePEM(c.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writePEM(c.KeyFile, "PRIVATE KEY", keyDER); err != nil {
		return nil, err
	}
	c.TLS, err = tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	return c, err
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
