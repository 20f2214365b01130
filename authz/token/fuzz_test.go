package token

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzNow is one minute after the committed awscli seeds in
// testdata/fuzz/FuzzParse were generated, so that they parse successfully
// and the fuzzer starts from real tokens.
var fuzzNow = time.Date(2026, 11, 26, 23, 58, 0, 0, time.UTC)

// FuzzParse asserts Parse's invariants on arbitrary input: it never panics,
// every rejection is a FormatError of a known rule that does not echo the
// token, and every acceptance is a URL Go's own parser reads the same way
// (no parser differential between us and what the STS client sends).
func FuzzParse(f *testing.F) {
	p, err := NewParser(Options{Now: func() time.Time { return fuzzNow }})
	if err != nil {
		f.Fatal(err)
	}
	const d = "20261126T235710Z"
	for _, u := range []string{
		"https://sts.us-west-2.amazonaws.com/?" + q0("us-west-2", d),
		"https://sts.amazonaws.com/?" + q0("us-east-1", d),
		"https://sts-fips.us-east-2.api.aws/?" + q0("us-east-2", d),
		"https://sts.us-west-2.amazonaws.com/?" + q0("us-west-2", d) + "&X-Amz-Security-Token=FwoGZXIvYXdzEBYaDH%2Babc%2Fdef%3D%3D",
		"https://sts.us-west-2.amazonaws.com/?" + strings.ToLower(q0("us-west-2", d)),
		"https://sts.us-west-2.amazonaws.com/?" + q0("us-west-2", d) + "&x-amz-credential=eve",
		"https://u:p@sts.amazonaws.com/?" + q0("us-east-1", d) + "#frag",
	} {
		f.Add(B(u))
	}
	// A real aws-sdk-go-v2 token with a session token, signed at fuzzNow.
	g, err := NewGenerator(GeneratorOptions{
		Config: staticConfig("us-west-2", "ASIAIOSFODNN7EXAMPLE", "secret", fakeSessionToken),
		Now:    func() time.Time { return fuzzNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	gen, err := g.Generate(context.Background(), "fuzz-cluster")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(gen.Token)
	f.Add(referenceGoldenToken)
	f.Add("k8s-aws-v1.decodingerror")
	f.Add(Prefix)
	f.Fuzz(func(t *testing.T, tok string) {
		pre, err := p.Parse(tok)
		if err != nil {
			checkFuzzRejection(t, tok, pre, err)
			return
		}
		checkFuzzAcceptance(t, p, tok, pre)
	})
}

func checkFuzzRejection(t *testing.T, tok string, pre *Presigned, err error) {
	var fe *FormatError
	if pre != nil || !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("rejection is not a bare *FormatError: %T %v (presigned %v)", err, err, pre != nil)
	}
	if !slices.Contains(Rules(), fe.Rule) {
		t.Fatalf("unknown rule %q", fe.Rule)
	}
	// Details quote at most 64 bytes of attacker text; anything longer
	// must never appear.
	if payload := strings.TrimPrefix(tok, Prefix); len(payload) > 80 && strings.Contains(err.Error(), payload) {
		t.Fatalf("error echoes the token")
	}
	if raw, derr := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, Prefix)); derr == nil && len(raw) > 80 && strings.Contains(err.Error(), string(raw)) {
		t.Fatalf("error echoes the presigned URL")
	}
}

func checkFuzzAcceptance(t *testing.T, p *Parser, tok string, pre *Presigned) {
	if len(tok) > DefaultMaxTokenBytes || !strings.HasPrefix(tok, Prefix) {
		t.Fatalf("accepted a token without prefix or over the cap")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok[len(Prefix):])
	if err != nil {
		t.Fatalf("accepted a payload Go's strict decoder refuses: %v", err)
	}
	// What the STS client will send is exactly what the client signed.
	if pre.URL.String() != string(raw) {
		t.Fatalf("URL re-serialises differently:\n%s\n%s", pre.URL.String(), raw)
	}
	info, ok := p.hosts[pre.Host]
	if !ok || pre.URL.Host != pre.Host || info.region != pre.Region || info.label != pre.RegionLabel {
		t.Fatalf("host %q / region %q not from the allow-list", pre.Host, pre.Region)
	}
	u := pre.URL
	if u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Path != "/" || u.RawPath != "" || u.Opaque != "" {
		t.Fatalf("accepted URL shape %+v", u)
	}
	if !pre.Expiry.Equal(pre.SignedAt.Add(Validity)) || pre.SignedAt.Location() != time.UTC || pre.SignedAt.Nanosecond() != 0 {
		t.Fatalf("SignedAt %s, Expiry %s", pre.SignedAt, pre.Expiry)
	}
	if pre.SignedAt.Before(fuzzNow.Add(-Validity)) || pre.SignedAt.After(fuzzNow.Add(DefaultMaxFutureSkew)) {
		t.Fatalf("SignedAt %s outside the window", pre.SignedAt)
	}
	// Differential against the standard library's query parser.
	values, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatalf("net/url refuses the accepted query: %v", err)
	}
	byLower := map[string]string{}
	for k, vs := range values {
		lk := strings.ToLower(k)
		if _, dup := byLower[lk]; dup || len(vs) != 1 {
			t.Fatalf("accepted duplicate parameter %q", k)
		}
		if _, ok := lookupParam(k); !ok {
			t.Fatalf("accepted parameter %q", k)
		}
		byLower[lk] = vs[0]
	}
	if byLower["action"] != "GetCallerIdentity" || byLower["version"] != "2011-06-15" || byLower["x-amz-algorithm"] != "AWS4-HMAC-SHA256" {
		t.Fatalf("accepted action/version/algorithm %q %q %q", byLower["action"], byLower["version"], byLower["x-amz-algorithm"])
	}
	signed := strings.Split(byLower["x-amz-signedheaders"], ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-k8s-aws-id") {
		t.Fatalf("accepted signed headers %q", byLower["x-amz-signedheaders"])
	}
	scope := strings.Split(byLower["x-amz-credential"], "/")
	if len(scope) != 5 || scope[0] != pre.AccessKeyID || scope[2] != pre.Region || scope[3] != "sts" {
		t.Fatalf("credential %q does not give key %q region %q", byLower["x-amz-credential"], pre.AccessKeyID, pre.Region)
	}
	if byLower["x-amz-date"] != pre.SignedAt.Format(dateLayout) || scope[1] != byLower["x-amz-date"][:8] {
		t.Fatalf("date %q, scope date %q, SignedAt %s", byLower["x-amz-date"], scope[1], pre.SignedAt)
	}
	if !validAccessKeyID(pre.AccessKeyID) {
		t.Fatalf("access key id %q", pre.AccessKeyID)
	}
	// Parsing is deterministic.
	again, err := p.Parse(tok)
	if err != nil || *again.URL != *pre.URL || again.Host != pre.Host || again.AccessKeyID != pre.AccessKeyID {
		t.Fatalf("second Parse differs: %v", err)
	}
}

// TestFuzzSeedsAccepted makes sure the fuzz corpus starts from accepted
// tokens: if the committed awscli seeds stopped parsing, the fuzzer would
// only explore rejections.
func TestFuzzSeedsAccepted(t *testing.T) {
	p := newTestParser(t, Options{Now: func() time.Time { return fuzzNow }})
	for _, name := range []string{"awscli-global-longterm", "awscli-us-west-2-session"} {
		tok := readFuzzSeed(t, "testdata/fuzz/FuzzParse/"+name)
		pre, err := p.Parse(tok)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkFuzzAcceptance(t, p, tok, pre)
	}
}
