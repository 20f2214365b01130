package harness

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

const (
	testSignature    = "c4a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	testSessionToken = "CANARY/session+token=with/escapes"
)

func testCanaryToken() (tok, presigned string) {
	presigned = "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15" +
		"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIACANARY000000001%2F20250101%2Fus-east-1%2Fsts%2Faws4_request" +
		"&X-Amz-Date=20250101T000000Z&X-Amz-Expires=60" +
		"&X-Amz-Security-Token=" + url.QueryEscape(testSessionToken) +
		"&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=" + testSignature
	return "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(presigned)), presigned
}

// recordingTB records failures instead of failing the real test, so that the canary's
// own failure path can be asserted.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Error(args ...any) {
	r.errors = append(r.errors, fmt.Sprint(args...))
}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestCanaryFindsEveryForm(t *testing.T) {
	tok, presigned := testCanaryToken()
	payload := strings.TrimPrefix(tok, "k8s-aws-v1.")
	cases := map[string]struct {
		text       string
		wantSecret string // a description that must be among the leaks; "" = clean
	}{
		"clean log line":             {`{"msg":"decision","token":"3f2a9c01be77","result":"denied"}`, ""},
		"token":                      {`bearer ` + tok, "token payload"},
		"payload only":               {`tok=` + payload[:len(payload)-1] + "x", ""},
		"presigned URL in an error":  {`Get "` + presigned + `": dial tcp: refused`, "X-Amz-Signature"},
		"query-escaped URL":          {`u=` + url.QueryEscape(presigned), "X-Amz-Signature"},
		"signature alone":            {`sig=` + testSignature, "X-Amz-Signature"},
		"session token raw":          {`x-amz-security-token: ` + testSessionToken, "X-Amz-Security-Token"},
		"session token escaped":      {`X-Amz-Security-Token=` + url.QueryEscape(testSessionToken), "X-Amz-Security-Token (query-escaped)"},
		"access key id is no secret": {`extra accesskeyid=ASIACANARY000000001`, ""},
	}
	c := NewCanary()
	if err := c.AddToken(tok); err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			leaks := c.Scan("test", tc.text)
			if tc.wantSecret == "" {
				if len(leaks) != 0 {
					t.Fatalf("leaks in clean text: %v", leaks)
				}
				return
			}
			if len(leaks) == 0 {
				t.Fatalf("no leak found, want %s", tc.wantSecret)
			}
			found := false
			for _, l := range leaks {
				found = found || l.Secret == tc.wantSecret
			}
			if !found {
				t.Errorf("leaks %v do not include %s", leaks, tc.wantSecret)
			}
			for _, l := range leaks {
				if strings.Contains(l.String(), testSignature) || strings.Contains(l.String(), testSessionToken) {
					t.Errorf("the leak report prints the secret: %s", l)
				}
			}
		})
	}
}

// TestCanaryCheckFails is the negative control: a canary whose sources contain the
// secret must fail the test, and one with nothing to scan must fail too.
func TestCanaryCheckFails(t *testing.T) {
	tok, _ := testCanaryToken()
	c := NewCanary()
	if err := c.AddToken(tok); err != nil {
		t.Fatal(err)
	}
	empty := &recordingTB{TB: t}
	c.Check(empty)
	if len(empty.errors) == 0 {
		t.Error("Check passed with nothing registered to scan")
	}

	logged := "first line\n"
	c.Watch("serve stderr", func() string { return logged })
	c.Record("GET /metrics", "kia_checks_total{reason=\"ok\"} 1\n")
	clean := &recordingTB{TB: t}
	c.Check(clean)
	if len(clean.errors) != 0 {
		t.Fatalf("Check failed on clean sources: %v", clean.errors)
	}

	// Output written after Watch is scanned too.
	logged += `{"level":"warn","error":"sts: ` + tok + `"}` + "\n"
	leaky := &recordingTB{TB: t}
	c.Check(leaky)
	if len(leaky.errors) == 0 {
		t.Fatal("Check passed although a watched log holds the token")
	}
	if !strings.Contains(strings.Join(leaky.errors, "\n"), "serve stderr") {
		t.Errorf("failure does not name the source: %v", leaky.errors)
	}
}

func TestCanaryRefusesShortSecrets(t *testing.T) {
	c := NewCanary()
	if err := c.Add("short", "abc"); err == nil {
		t.Error("a 3-byte secret was accepted")
	}
	if err := c.AddToken("k8s-aws-v1."); err == nil {
		t.Error("a token too short to scan for was accepted")
	}
}
