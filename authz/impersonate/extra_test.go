package impersonate

import (
	"net/url"
	"strings"
	"testing"
)

func TestEscapeExtraKey(t *testing.T) {
	tests := map[string]struct {
		key  string
		want string
	}{
		"plain":                  {key: "arn", want: "arn"},
		"camel case is folded":   {key: "canonicalArn", want: "canonicalarn"},
		"slash and dots":         {key: "example.com/Project", want: "example.com%2Fproject"},
		"namespaced principalId": {key: "sigs.k8s.io/aws-iam-authenticator/principalId", want: "sigs.k8s.io%2Faws-iam-authenticator%2Fprincipalid"},
		"percent":                {key: "a%b", want: "a%25b"},
		"space and colon":        {key: "a b:c", want: "a%20b%3Ac"},
		"token punctuation kept": {key: "a!#$&'*+-.^_`|~z", want: "a!#$&'*+-.^_`|~z"},
		"non-ASCII bytes":        {key: "é", want: "%C3%A9"},
		"control byte":           {key: "a\nb", want: "a%0Ab"},
		"empty":                  {key: "", want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := EscapeExtraKey(tc.key); got != tc.want {
				t.Errorf("EscapeExtraKey(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

// FuzzEscapeExtraKey: whatever the key, the escaped form is a valid header
// name suffix, and the API server's decoding (lower-case, then
// url.PathUnescape) gives back the lower-cased key.
func FuzzEscapeExtraKey(f *testing.F) {
	for _, seed := range []string{"arn", "canonicalArn", "example.com/Project", "a%b", "%zz", "é/Ü", "\x00\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		esc := EscapeExtraKey(key)
		for i := 0; i < len(esc); i++ {
			if esc[i] != '%' && shouldEscape(esc[i]) {
				t.Fatalf("EscapeExtraKey(%q) = %q has non-token byte %q", key, esc, esc[i])
			}
		}
		got, err := url.PathUnescape(strings.ToLower(esc))
		if err != nil {
			t.Fatalf("API server cannot unescape %q (from %q): %v", esc, key, err)
		}
		if want := strings.ToLower(key); got != want {
			t.Fatalf("round trip of %q = %q, want %q", key, got, want)
		}
	})
}
