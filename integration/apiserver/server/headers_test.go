package server

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// TestImpersonationHeaderDecoding pins how the real filters read header
// shapes kubectl never sends but a proxy (or an attacker in front of one)
// might. The product's header policy is written against these facts.
// Both filters, both HTTP versions: the answers must be identical.
func TestImpersonationHeaderDecoding(t *testing.T) {
	authd := "system:authenticated"
	tests := map[string]struct {
		lines      [][2]string
		wantStatus int
		wantUser   *authenticationv1.UserInfo
		wantBody   string
	}{
		"uid without user is a bad request": {
			lines:      [][2]string{{"Impersonate-Uid", "u1"}},
			wantStatus: http.StatusBadRequest, wantBody: "without impersonating a user",
		},
		"group without user is a bad request": {
			lines:      [][2]string{{"Impersonate-Group", "g1"}},
			wantStatus: http.StatusBadRequest, wantBody: "without impersonating a user",
		},
		"extra without user is a bad request": {
			lines:      [][2]string{{"Impersonate-Extra-Arn", "x"}},
			wantStatus: http.StatusBadRequest, wantBody: "without impersonating a user",
		},
		"empty user counts as no user": {
			lines:      [][2]string{{"Impersonate-User", ""}, {"Impersonate-Group", "g1"}},
			wantStatus: http.StatusBadRequest, wantBody: "without impersonating a user",
		},
		"comma-joined group line is one group, never split": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Group", "g1,g2"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", Groups: []string{"g1,g2", authd}},
		},
		"group lines keep their order": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Group", "z"}, {"Impersonate-Group", "a"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", Groups: []string{"z", "a", authd}},
		},
		"duplicate group lines are kept": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Group", "g"}, {"Impersonate-Group", "g"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", Groups: []string{"g", "g", authd}},
		},
		"first of repeated user lines wins": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-User", "eve"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", Groups: []string{authd}},
		},
		"header names are case-insensitive": {
			lines:      [][2]string{{"impersonate-user", "alice"}, {"IMPERSONATE-UID", "u1"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", UID: "u1", Groups: []string{authd}},
		},
		"extra key is lowercased and percent-decoded": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Extra-Example.COM%2FTeam", "Blue"}},
			wantStatus: http.StatusCreated,
			wantUser: &authenticationv1.UserInfo{Username: "alice", Groups: []string{authd},
				Extra: map[string]authenticationv1.ExtraValue{"example.com/team": {"Blue"}}},
		},
		"extra key with a bad escape is kept raw, lowercased": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Extra-Bad%zzKey", "v"}},
			wantStatus: http.StatusCreated,
			wantUser: &authenticationv1.UserInfo{Username: "alice", Groups: []string{authd},
				Extra: map[string]authenticationv1.ExtraValue{"bad%zzkey": {"v"}}},
		},
		"extra values are not split on commas": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Extra-Arn", "a,b"}, {"Impersonate-Extra-Arn", "c"}},
			wantStatus: http.StatusCreated,
			wantUser: &authenticationv1.UserInfo{Username: "alice", Groups: []string{authd},
				Extra: map[string]authenticationv1.ExtraValue{"arn": {"a,b", "c"}}},
		},
		"explicit system:authenticated is not duplicated": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Group", authd}, {"Impersonate-Group", "g"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", Groups: []string{authd, "g"}},
		},
		"system:unauthenticated suppresses system:authenticated": {
			lines:      [][2]string{{"Impersonate-User", "alice"}, {"Impersonate-Group", "system:unauthenticated"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:unauthenticated"}},
		},
		"service account groups are not derived when groups are given": {
			lines:      [][2]string{{"Impersonate-User", "system:serviceaccount:ns1:sa1"}, {"Impersonate-Group", "g"}},
			wantStatus: http.StatusCreated,
			wantUser:   &authenticationv1.UserInfo{Username: "system:serviceaccount:ns1:sa1", Groups: []string{"g", authd}},
		},
	}

	modes := map[string]func(*Options){
		"classic":     peerModes["classic"],
		"constrained": peerModes["constrained"],
	}
	for modeName, mode := range modes {
		t.Run(modeName, func(t *testing.T) {
			p := startPeer(t, mode)
			for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
				client := p.rawClient(t, proto == "HTTP/2.0")
				for name, tc := range tests {
					t.Run(proto+"/"+name, func(t *testing.T) {
						lines := append([][2]string{{"Authorization", "Bearer " + p.token}}, tc.lines...)
						status, got, body := p.rawReview(t, client, lines)
						if status != tc.wantStatus {
							t.Fatalf("status = %d, want %d; body %s", status, tc.wantStatus, body)
						}
						if !strings.Contains(body, tc.wantBody) {
							t.Errorf("body = %s, want it to contain %q", body, tc.wantBody)
						}
						if tc.wantUser != nil && !reflect.DeepEqual(got, tc.wantUser) {
							t.Errorf("user = %+v\nwant   %+v", got, tc.wantUser)
						}
						rec := p.lastReview(t)
						if rec.Proto != proto {
							t.Errorf("recorded proto = %q, want %q", rec.Proto, proto)
						}
					})
				}
			}
		})
	}
}

// TestUpgradeCarriesImpersonation drives the HTTP/1.1 Upgrade endpoint the
// way exec/port-forward clients do: the upgraded stream runs as the
// impersonated user.
func TestUpgradeCarriesImpersonation(t *testing.T) {
	p := startPeer(t, nil)
	caPEM, err := os.ReadFile(p.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	tests := map[string]struct {
		token      string
		extra      string
		upgrade    bool
		wantStatus string
		wantUser   string
	}{
		"proxy impersonating alice":    {token: p.token, extra: "Impersonate-User: alice\r\n", upgrade: true, wantStatus: "101", wantUser: "alice"},
		"proxy itself":                 {token: p.token, upgrade: true, wantStatus: "101", wantUser: DefaultProxyUser},
		"other identity impersonating": {token: bobToken, extra: "Impersonate-User: alice\r\n", upgrade: true, wantStatus: "403"},
		"bad token":                    {token: "nope", upgrade: true, wantStatus: "401"},
		"no upgrade headers":           {token: p.token, wantStatus: "400"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", strings.TrimPrefix(p.URL(), "https://"), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			upgrade := ""
			if tc.upgrade {
				upgrade = "Connection: Upgrade\r\nUpgrade: echo.test/v1\r\n"
			}
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n%s%s\r\n", UpgradePath, tc.token, tc.extra, upgrade)
			r := bufio.NewReader(conn)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(resp.StatusCode); got != tc.wantStatus {
				t.Fatalf("status = %s, want %s", got, tc.wantStatus)
			}
			if tc.wantUser == "" {
				return
			}
			if got := resp.Header.Get("Upgrade"); got != "echo.test/v1" {
				t.Errorf("Upgrade = %q", got)
			}
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if want := "user=" + tc.wantUser + "\n"; line != want {
				t.Errorf("greeting = %q, want %q", line, want)
			}
			fmt.Fprint(conn, "ping\n")
			echoed, err := r.ReadString('\n')
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if echoed != "ping\n" {
				t.Errorf("echo = %q, want %q", echoed, "ping\n")
			}
		})
	}
}
