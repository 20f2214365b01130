package harness

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestCredentialID(t *testing.T) {
	jwt := func(claims string) string {
		return "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	}
	tests := map[string]struct {
		tok     string
		want    string
		wantErr bool
	}{
		"proxy token":           {tok: jwt(`{"sub":"` + ProxyUsername + `","jti":"abc-123"}`), want: "JTI=abc-123"},
		"another account":       {tok: jwt(`{"sub":"system:serviceaccount:default:x","jti":"abc"}`), wantErr: true},
		"no jti":                {tok: jwt(`{"sub":"` + ProxyUsername + `"}`), wantErr: true},
		"not a JWT":             {tok: "e2e-proxy-0123", wantErr: true},
		"claims are not base64": {tok: "a.!!!.c", wantErr: true},
		"claims are not JSON":   {tok: jwt("not json"), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := CredentialID(tc.tok)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("CredentialID = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestRefreshTime: a token is replaced at 80 % of its lifetime, as the kubelet does.
func TestRefreshTime(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := refreshTime(issued, issued.Add(10*time.Minute)), issued.Add(8*time.Minute); !got.Equal(want) {
		t.Errorf("refreshTime = %s, want %s", got, want)
	}
}
