//go:build integration

package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends bytes as one HTTP/1.1 request over TLS to Envoy and returns the
// status (0 if the connection closed without an answer).
func (s *relStack) rawRequest(t *testing.T, head string) (int, string) {
	t.Helper()
	var addr string
	for _, a := range s.ports.Listeners {
		addr = a
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: s.envoyCertPool(t), ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("dial envoy: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	s.canary.Record(fmt.Sprintf("raw response (%d)", resp.StatusCode), string(body))
	return resp.StatusCode, string(body)
}

// TestAbuseHeaders: impersonation headers in any case and form (with and without a
// token, over HTTP/1.1 and HTTP/2), several or comma-joined Authorization values, an
// oversized token and non-ASCII or control bytes, sent through the real Envoy. Each is
// refused, and the API server records nothing for any of them. The two controls (a
// clean request; a lower-case "bearer") are allowed and arrive with exactly the
// mapped identity.
func TestAbuseHeaders(t *testing.T) {
	s := newRelStack(t, relOptions{})
	tok := s.token(t, "alice")
	other := s.token(t, "bob")
	req := func(lines ...string) string {
		return "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n" + strings.Join(lines, "\r\n") + "\r\nConnection: close\r\n\r\n"
	}
	auth := "Authorization: Bearer " + tok
	big := "k8s-aws-v1." + strings.Repeat("A", 5000)
	huge := "k8s-aws-v1." + strings.Repeat("A", 70<<10)
	tests := map[string]struct {
		head      string
		wantCodes []int // any of these; never 2xx unless wantAllow or mayAllow
		wantAllow bool
		// mayAllow: Envoy may pass the request as harmless (obs-fold joins the folded
		// line into the previous header's value); if it does, the API server must see
		// exactly the mapped identity and no client Impersonate-* line.
		mayAllow bool
	}{
		"control: clean request":               {head: req(auth), wantAllow: true},
		"control: lower-case bearer scheme":    {head: req("authorization: bearer " + tok), wantAllow: true},
		"Impersonate-User":                     {head: req(auth, "Impersonate-User: admin"), wantCodes: []int{403}},
		"impersonate-group system:masters":     {head: req(auth, "impersonate-group: system:masters"), wantCodes: []int{403}},
		"iMpErSoNaTe-gRoUp":                    {head: req(auth, "iMpErSoNaTe-gRoUp: system:masters"), wantCodes: []int{403}},
		"IMPERSONATE-UID":                      {head: req(auth, "IMPERSONATE-UID: 0"), wantCodes: []int{403}},
		"Impersonate-Extra-Scopes":             {head: req(auth, "Impersonate-Extra-Scopes: all"), wantCodes: []int{403}},
		"Impersonate-Extra- (empty key)":       {head: req(auth, "Impersonate-Extra-: x"), wantCodes: []int{403}},
		"Impersonate-Something-New":            {head: req(auth, "Impersonate-Something-New: x"), wantCodes: []int{403}},
		"Impersonate-User with an empty value": {head: req(auth, "Impersonate-User:"), wantCodes: []int{403}},
		"impersonation after a second header":  {head: req("X-A: 1", auth, "X-B: 2", "Impersonate-Group: system:masters"), wantCodes: []int{403}},
		"impersonation without a token":        {head: req("Impersonate-User: admin"), wantCodes: []int{401, 403}},
		"impersonation group without a token":  {head: req("Impersonate-Group: system:masters", "Impersonate-User: system:admin"), wantCodes: []int{401, 403}},
		"impersonate_user (underscore)":        {head: req(auth, "impersonate_user: admin"), wantCodes: []int{400}},
		"obs-fold hiding impersonation":        {head: req(auth, "X-Note: a", " Impersonate-User: admin"), wantCodes: []int{400, 403}, mayAllow: true},
		"two Authorization lines":              {head: req(auth, "Authorization: Bearer "+other), wantCodes: []int{401}},
		"the same Authorization twice":         {head: req(auth, auth), wantCodes: []int{401}},
		"comma-joined Bearer":                  {head: req("Authorization: Bearer " + tok + ",Bearer " + other), wantCodes: []int{401}},
		"comma and space joined Bearer":        {head: req("Authorization: Bearer " + tok + ", Bearer " + other), wantCodes: []int{401}},
		"Bearer with two tokens":               {head: req("Authorization: Bearer " + tok + " " + other), wantCodes: []int{401}},
		"Basic credentials":                    {head: req("Authorization: Basic YWRtaW46YWRtaW4="), wantCodes: []int{401}},
		"token in the query, not the header":   {head: "GET /version?token=" + tok + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", wantCodes: []int{401}},
		"token as Proxy-Authorization":         {head: req("Proxy-Authorization: Bearer " + tok), wantCodes: []int{401}},
		"oversized token (5 KiB)":              {head: req("Authorization: Bearer " + big), wantCodes: []int{401}},
		"huge token (70 KiB)":                  {head: req("Authorization: Bearer " + huge), wantCodes: []int{401, 431}},
		"non-ASCII bytes in the token":         {head: req("Authorization: Bearer k8s-aws-v1.\xff\xfe\xc3\xa9" + strings.Repeat("A", 40)), wantCodes: []int{401}},
		"non-ASCII bytes after a valid token":  {head: req(auth + "\xc3\xa9"), wantCodes: []int{401}},
		"NUL in the Authorization value":       {head: req(auth + "\x00x"), wantCodes: []int{400}},
		"non-ASCII impersonation value":        {head: req(auth, "Impersonate-User: \xc3\xa9admin"), wantCodes: []int{403}},
		"tab-separated Bearer":                 {head: req("Authorization: Bearer\t" + tok), wantCodes: []int{401}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			since := s.lastSeq(t)
			code, body := s.rawRequest(t, tc.head)
			recorded := s.recorded(t, since)
			if tc.mayAllow && code == http.StatusOK {
				tc.wantAllow = true
				t.Logf("Envoy passed it; the API server saw X-Note %q", recorded[len(recorded)-1].Lines("X-Note"))
			}
			if tc.wantAllow {
				if code != http.StatusOK || len(recorded) != 1 {
					t.Fatalf("HTTP %d (%q), %d requests upstream; want 200 and 1", code, body, len(recorded))
				}
				r := recorded[0]
				if u := r.Lines("Impersonate-User"); len(u) != 1 || u[0] != "dev:alice" {
					t.Errorf("upstream Impersonate-User %q, want [dev:alice]", u)
				}
				if g := r.Lines("Impersonate-Group"); strings.Join(g, ",") != "devs,viewers" {
					t.Errorf("upstream Impersonate-Group %q, want [devs viewers]", g)
				}
				if r.User == nil || r.User.Username != "dev:alice" {
					t.Errorf("the API server served %+v, want dev:alice", r.User)
				}
				return
			}
			if !containsInt(tc.wantCodes, code) {
				t.Errorf("HTTP %d (%q), want one of %v", code, body, tc.wantCodes)
			}
			if len(recorded) != 0 {
				r := recorded[0]
				t.Errorf("reached the API server (%d requests): Impersonate-User %q, Authorization %q",
					len(recorded), r.Lines("Impersonate-User"), r.Lines("Authorization"))
			}
		})
	}
}

// TestAbuseHeadersHTTP2: the same refusals over HTTP/2, where header names arrive
// lower-cased and Envoy's codec builds the request.
func TestAbuseHeadersHTTP2(t *testing.T) {
	s := newRelStack(t, relOptions{})
	tok := s.token(t, "alice")
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: s.envoyCertPool(t), ServerName: "127.0.0.1"},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	tests := map[string]struct {
		header    http.Header
		wantCode  int
		wantAllow bool
	}{
		"control":                       {header: http.Header{"Authorization": {"Bearer " + tok}}, wantAllow: true},
		"impersonate-user":              {header: http.Header{"Authorization": {"Bearer " + tok}, "Impersonate-User": {"admin"}}, wantCode: 403},
		"impersonate-group, two values": {header: http.Header{"Authorization": {"Bearer " + tok}, "Impersonate-Group": {"system:masters", "eks:admins"}}, wantCode: 403},
		"impersonation, no token":       {header: http.Header{"Impersonate-User": {"admin"}}, wantCode: 403},
		"two authorization values":      {header: http.Header{"Authorization": {"Bearer " + tok, "Bearer " + tok}}, wantCode: 401},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			since := s.lastSeq(t)
			req, err := http.NewRequest(http.MethodGet, s.url()+"/version", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s.canary.Record("h2 response", string(body))
			if resp.ProtoMajor != 2 {
				t.Fatalf("spoke %s, want HTTP/2", resp.Proto)
			}
			recorded := s.recorded(t, since)
			if tc.wantAllow {
				if resp.StatusCode != 200 || len(recorded) != 1 {
					t.Fatalf("HTTP %d, %d upstream, want 200 and 1", resp.StatusCode, len(recorded))
				}
				return
			}
			if resp.StatusCode != tc.wantCode || len(recorded) != 0 {
				t.Errorf("HTTP %d (%q), %d upstream; want %d and nothing upstream", resp.StatusCode, body, len(recorded), tc.wantCode)
			}
		})
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
