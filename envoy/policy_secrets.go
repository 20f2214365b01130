package envoy

import (
	"fmt"
	"path"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// CheckSecrets reports every way the SDS files s (LoadSecrets) of b depart from the
// reviewed policy, as a *PolicyError, or nil; CheckPolicy checks b itself. Every secret
// b asks for is in the file it names, and each secret reads its certificate, key or CA
// from files whose directory it watches (RuleCertRotation); a CA keeps trust-chain
// verification (RuleUpstreamTLS).
func CheckSecrets(b *bootstrapv3.Bootstrap, s Secrets) error {
	c := &checker{b: b}
	sources, err := SecretSources(b)
	if err != nil {
		return err
	}
	for _, p := range sortedKeys(sources) {
		// Envoy 1.40 rejects a path-sourced secret whose file holds any other
		// resource ("Unexpected SDS secrets length ... Expected sum is 1"), leaving
		// the listener or cluster without a certificate (docs/envoy-facts.md).
		if n := len(s[p]); n != 1 {
			c.add(RuleCertRotation, "SDS file "+p, "holds %d secrets; Envoy accepts exactly one per file", n)
		}
		have := map[string]bool{}
		for _, sec := range s[p] {
			have[sec.GetName()] = true
		}
		for _, name := range sources[p] {
			if !have[name] {
				c.add(RuleCertRotation, "SDS file "+p, "has no secret %q, which the config asks for", name)
			}
		}
	}
	for _, p := range sortedKeys(s) {
		for _, sec := range s[p] {
			c.checkSecret(fmt.Sprintf("SDS file %s secret %q", p, sec.GetName()), sec)
		}
	}
	if len(c.violations) == 0 {
		return nil
	}
	return &PolicyError{Violations: c.violations}
}

func (c *checker) checkSecret(where string, sec *tlsv3.Secret) {
	switch t := sec.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		cert := t.TlsCertificate
		c.checkWatchedFiles(where, cert.GetWatchedDirectory(), map[string]*corev3.DataSource{
			"certificate_chain": cert.GetCertificateChain(),
			"private_key":       cert.GetPrivateKey(),
		})
	case *tlsv3.Secret_ValidationContext:
		vc := t.ValidationContext
		c.checkWatchedFiles(where, vc.GetWatchedDirectory(), map[string]*corev3.DataSource{"trusted_ca": vc.GetTrustedCa()})
		if vc.GetTrustChainVerification() != tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN {
			c.add(RuleUpstreamTLS, where, "trust_chain_verification must be VERIFY_TRUST_CHAIN")
		}
	default:
		c.add(RuleCertRotation, where, "want a tls_certificate or a validation_context, got %T", sec.GetType())
	}
}

// checkWatchedFiles: each source is a file in the watched directory. Envoy re-reads
// the files on a move in that directory (the kubelet's ..data swap); a file elsewhere
// would never be re-read, and inline bytes would put key material in a ConfigMap.
func (c *checker) checkWatchedFiles(where string, watched *corev3.WatchedDirectory, sources map[string]*corev3.DataSource) {
	if watched == nil {
		c.add(RuleCertRotation, where, "watched_directory must be set (the kubelet updates a Secret volume by a symlink swap in its directory)")
	}
	for _, field := range sortedKeys(sources) {
		f := sources[field].GetFilename()
		switch {
		case f == "":
			c.add(RuleCertRotation, where, "%s must be a filename (inline data cannot rotate and would ship in a ConfigMap)", field)
		case watched != nil && path.Dir(f) != path.Clean(watched.GetPath()):
			c.add(RuleCertRotation, where, "%s %s is not in the watched directory %s", field, f, watched.GetPath())
		}
	}
}
