package server

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// peerModes are the three configurations the proxy can meet in a cluster.
var peerModes = map[string]func(*Options){
	// EKS today: ConstrainedImpersonation off, ClusterRole grants "impersonate".
	"classic": func(o *Options) { o.ImpersonationMode, o.ProxyGrants = ModeClassic, []string{GrantImpersonate} },
	// 1.36+ with the same ClusterRole: constrained filter, legacy fallback.
	"constrained": func(o *Options) { o.ImpersonationMode, o.ProxyGrants = ModeConstrained, []string{GrantImpersonate} },
	// 1.36+ with a ClusterRole that grants only the user-info constrained verbs.
	"constrained-user-info": func(o *Options) { o.ImpersonationMode, o.ProxyGrants = ModeConstrained, []string{GrantUserInfo} },
}

type outcome struct {
	// user is the whoami answer; nil means kubectl must fail.
	user *authenticationv1.UserInfo
	// stderr must appear in kubectl's error output when it fails.
	stderr string
	// body must appear in the recorded error body of the last request:
	// for 403 kubectl prints only a generic selfsubjectreviews message.
	body string
	// status is the HTTP status of the last request the peer answered.
	status int
}

func TestKubectlWhoami(t *testing.T) {
	proxyGroups := []string{"system:serviceaccounts", "system:serviceaccounts:kube-iam-authz", "system:authenticated"}
	alice := kubeUser{As: "alice", AsGroups: []string{"g1", "g2", "g3"}, AsUID: "u1"}
	withExtras := alice
	withExtras.AsUserExtra = map[string][]string{
		"arn":              {"arn:aws:iam::123456789012:role/Dev"},
		"example.com/Team": {"a", "b,c"},
	}
	prefixedExtras := alice
	prefixedExtras.AsUserExtra = map[string][]string{"iam.example.com/arn": {"arn:aws:iam::123456789012:role/Dev"}}

	tests := map[string]struct {
		token string // "proxy", "bob" or a literal wrong token
		user  kubeUser
		want  outcome
		// wantByMode overrides want for one peer mode.
		wantByMode map[string]outcome
		// wantGroupLines are the Impersonate-Group lines that must arrive,
		// one line each, in order.
		wantGroupLines []string
	}{
		"proxy itself": {
			token: "proxy",
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: DefaultProxyUser, Groups: proxyGroups,
			}},
		},
		"proxy impersonates user, three groups and uid": {
			token: "proxy", user: alice,
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: "alice", UID: "u1", Groups: []string{"g1", "g2", "g3", "system:authenticated"},
			}},
			wantGroupLines: []string{"g1", "g2", "g3"},
		},
		"proxy impersonates with extras; keys are lowercased": {
			token: "proxy", user: withExtras,
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: "alice", UID: "u1", Groups: []string{"g1", "g2", "g3", "system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{
					"arn":              {"arn:aws:iam::123456789012:role/Dev"},
					"example.com/team": {"a", "b,c"},
				},
			}},
			wantByMode: map[string]outcome{
				// Constrained user-info mode refuses extra keys that are not
				// domain-prefixed paths; "arn" is rejected.
				"constrained-user-info": {status: 403, body: "must be a domain-prefixed path"},
			},
			wantGroupLines: []string{"g1", "g2", "g3"},
		},
		"proxy impersonates with a domain-prefixed extra": {
			token: "proxy", user: prefixedExtras,
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: "alice", UID: "u1", Groups: []string{"g1", "g2", "g3", "system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{"iam.example.com/arn": {"arn:aws:iam::123456789012:role/Dev"}},
			}},
		},
		"proxy impersonates a service account: groups derived": {
			token: "proxy", user: kubeUser{As: "system:serviceaccount:ns1:sa1"},
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: "system:serviceaccount:ns1:sa1",
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"},
			}},
			wantByMode: map[string]outcome{
				// user-info mode excludes service accounts; the
				// serviceaccount mode is not granted.
				"constrained-user-info": {status: 403, body: "cannot impersonate"},
			},
		},
		"proxy impersonates system:masters": {
			token: "proxy", user: kubeUser{As: "alice", AsGroups: []string{"system:masters"}},
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: "alice", Groups: []string{"system:masters", "system:authenticated"},
			}},
			wantByMode: map[string]outcome{
				"constrained-user-info": {status: 403, body: "impersonating the system:masters group is not allowed"},
			},
		},
		"wrong token is unauthorized": {
			token: "not-the-proxy-token",
			want:  outcome{status: 401, stderr: "Unauthorized"},
		},
		"wrong token is unauthorized even when impersonating": {
			token: "not-the-proxy-token", user: alice,
			want: outcome{status: 401, stderr: "Unauthorized"},
		},
		"other identity without impersonation is itself": {
			token: "bob",
			want: outcome{status: 201, user: &authenticationv1.UserInfo{
				Username: bobUser, UID: "bob-uid", Groups: []string{"devs", "ops", "system:authenticated"},
			}},
		},
		"other identity may not impersonate": {
			token: "bob", user: alice,
			want: outcome{status: 403, body: `User "bob" cannot impersonate`},
		},
		"authorization applies to the impersonated user": {
			token: "proxy", user: kubeUser{As: "mallory"},
			want: outcome{status: 403, body: `User "mallory" cannot`},
		},
	}

	for modeName, mode := range peerModes {
		t.Run(modeName, func(t *testing.T) {
			p := startPeer(t, mode)
			for name, tc := range tests {
				t.Run(name, func(t *testing.T) {
					want := tc.want
					if o, ok := tc.wantByMode[modeName]; ok {
						want = o
					}
					u := tc.user
					switch tc.token {
					case "proxy":
						u.Token = p.token
					case "bob":
						u.Token = bobToken
					default:
						u.Token = tc.token
					}
					got, res := p.whoami(t, u)
					reqs := p.Recorder().Snapshot().Requests
					last := reqs[len(reqs)-1]
					if last.Status != want.status {
						t.Errorf("last request %s %s status = %d, want %d", last.Method, last.Path, last.Status, want.status)
					}
					if !strings.Contains(last.ErrorBody, want.body) {
						t.Errorf("recorded error body = %q, want it to contain %q", last.ErrorBody, want.body)
					}
					if want.user == nil {
						if res.exitCode == 0 {
							t.Fatalf("kubectl succeeded, want failure; stdout:\n%s", res.stdout)
						}
						if !strings.Contains(strings.ToLower(res.stderr), strings.ToLower(want.stderr)) {
							t.Errorf("stderr = %q, want it to contain %q", res.stderr, want.stderr)
						}
						return
					}
					if got == nil {
						t.Fatalf("kubectl failed (exit %d): %s", res.exitCode, res.stderr)
					}
					if !reflect.DeepEqual(got, want.user) {
						t.Errorf("whoami = %+v\nwant     %+v", got, want.user)
					}
					if tc.wantGroupLines != nil {
						rec := p.lastReview(t)
						if lines := headerValues(rec, "Impersonate-Group"); !slices.Equal(lines, tc.wantGroupLines) {
							t.Errorf("Impersonate-Group lines = %q, want %q", lines, tc.wantGroupLines)
						}
						if rec.User == nil || rec.User.Username != want.user.Username {
							t.Errorf("recorded effective user = %+v, want %q", rec.User, want.user.Username)
						}
						if rec.Authenticated == nil || rec.Authenticated.Username != DefaultProxyUser {
							t.Errorf("recorded requestor = %+v, want %q", rec.Authenticated, DefaultProxyUser)
						}
					}
				})
			}
		})
	}
}

// TestKubectlTokenRotation proves the peer honours the token file's current
// content: after rotation the old token is rejected with 401.
func TestKubectlTokenRotation(t *testing.T) {
	p := startPeer(t, nil)
	old := p.token

	steps := []struct {
		name       string
		rotateTo   string
		present    string
		wantStatus int
	}{
		{name: "original token works", present: old, wantStatus: 201},
		{name: "rotated-out token rejected", rotateTo: "rotated-token-1", present: old, wantStatus: 401},
		{name: "new token works", present: "rotated-token-1", wantStatus: 201},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.rotateTo != "" {
				writeFile(t, p.tokenFile, s.rotateTo)
			}
			_, res := p.whoami(t, kubeUser{Token: s.present})
			reqs := p.Recorder().Snapshot().Requests
			if got := reqs[len(reqs)-1].Status; got != s.wantStatus {
				t.Errorf("status = %d, want %d (kubectl stderr %q)", got, s.wantStatus, res.stderr)
			}
			if (res.exitCode == 0) != (s.wantStatus == 201) {
				t.Errorf("kubectl exit %d for status %d", res.exitCode, s.wantStatus)
			}
		})
	}
}
