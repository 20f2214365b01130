package token

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed clock of the table tests.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testDate is testNow as X-Amz-Date.
const testDate = "20260601T120000Z"

// testSig is a syntactically valid signature (the parser never checks it).
const testSig = "e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce"

// B is the reference's B(u): the token for URL string u.
func B(u string) string {
	return Prefix + base64.RawURLEncoding.EncodeToString([]byte(u))
}

// q0 is the reference's Q0 with signing date d for region: a well-formed
// query in the order aws-sdk-go-v2 emits it.
func q0(region, d string) string {
	return "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=ASIAAAAAAAAAAAAAAAAA%2F" + d[:8] + "%2F" + region + "%2Fsts%2Faws4_request" +
		"&X-Amz-Date=" + d + "&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" +
		"&X-Amz-Signature=" + testSig
}

// validURL is a URL that passes every rule at testNow.
func validURL(host, region string) string {
	return "https://" + host + "/?" + q0(region, testDate)
}

// usw2 is the default valid URL.
func usw2() string { return validURL("sts.us-west-2.amazonaws.com", "us-west-2") }

// replace returns s with old replaced once, failing loudly if old is absent
// so that a case cannot silently test the valid URL.
func replace(t testing.TB, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("test bug: %q not in %q", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// newTestParser builds a parser at testNow, failing the test on error.
func newTestParser(t testing.TB, o Options) *Parser {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	p, err := NewParser(o)
	if err != nil {
		t.Fatalf("NewParser: %v", err)
	}
	return p
}

// checkRejected asserts that err is a FormatError for wantRule.
func checkRejected(t *testing.T, pre *Presigned, err error, wantRule string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse accepted the token (host %s), want rule %q", pre.Host, wantRule)
	}
	if pre != nil {
		t.Errorf("Parse returned a Presigned with an error")
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("errors.Is(err, ErrMalformed) = false for %v", err)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("err %T is not a *FormatError: %v", err, err)
	}
	if fe.Rule != wantRule {
		t.Errorf("rule = %q (%s), want %q", fe.Rule, fe.Detail, wantRule)
	}
}
