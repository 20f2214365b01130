package kubecluster

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
	"time"
)

// CA is a throwaway certificate authority: every certificate it issues is
// valid from a minute before its start time for its lifetime.
type CA struct {
	cert     *x509.Certificate
	der      []byte
	key      crypto.Signer
	now      time.Time
	lifetime time.Duration
}

// NewCA makes a CA named name, valid from now for lifetime, that issues
// certificates with the same validity.
func NewCA(name string, now time.Time, lifetime time.Duration) (*CA, error) {
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
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(lifetime),
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
	return &CA{cert: cert, der: der, key: key, now: now, lifetime: lifetime}, nil
}

// Certificate is the CA's certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// WriteCert writes the CA certificate (PEM, 0644).
func (c *CA) WriteCert(path string) error {
	return writePEM(path, "CERTIFICATE", c.der, 0o644)
}

// Issue signs leaf (subject, usages and names filled in by the caller) with
// a fresh ECDSA key and writes the certificate (0644) and the key (PKCS#8,
// 0600).
func (c *CA) Issue(certPath, keyPath string, leaf *x509.Certificate) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	leaf.SerialNumber = sn
	leaf.NotBefore = c.now.Add(-time.Minute)
	leaf.NotAfter = c.now.Add(c.lifetime)
	leaf.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, leaf, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return err
	}
	return errors.Join(writePEM(certPath, "CERTIFICATE", der, 0o644), writeKey(keyPath, key))
}

// IssueServing issues a TLS server certificate for commonName, valid for
// dnsNames and the loopback addresses 127.0.0.1 and ::1.
func (c *CA) IssueServing(certPath, keyPath, commonName string, dnsNames ...string) error {
	return c.Issue(certPath, keyPath, &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	})
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// serial is a random positive 127-bit serial number (RFC 5280: unique per
// CA, at most 20 octets).
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
