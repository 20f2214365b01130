package server

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGenerateServingCerts(t *testing.T) {
	now := fixedClock()
	certs, err := GenerateServingCerts(now)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certs.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt does not parse")
	}
	block, _ := pem.Decode(certs.CertPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v (err %v), want 0600", info.Mode().Perm(), err)
	}

	tests := map[string]struct {
		host    string
		at      time.Time
		wantErr bool
	}{
		"ipv4 loopback":         {host: "127.0.0.1", at: now},
		"ipv6 loopback":         {host: "::1", at: now},
		"localhost":             {host: "localhost", at: now},
		"other name rejected":   {host: "kubernetes.default.svc", at: now, wantErr: true},
		"other ip rejected":     {host: "10.0.0.1", at: now, wantErr: true},
		"expired after a day":   {host: "127.0.0.1", at: now.Add(certValidity + time.Minute), wantErr: true},
		"not valid before time": {host: "127.0.0.1", at: now.Add(-time.Hour), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: tc.host, Roots: pool, CurrentTime: tc.at})
			if (err != nil) != tc.wantErr {
				t.Errorf("Verify(%s) err = %v, wantErr %v", tc.host, err, tc.wantErr)
			}
		})
	}
}
