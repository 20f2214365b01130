package impersonate

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

var (
	assumedRole = identity.Identity{
		ARN:          "arn:aws:sts::111122223333:assumed-role/Dev/alice",
		CanonicalARN: "arn:aws:iam::111122223333:role/Dev",
		AccountID:    "111122223333",
		UserID:       "AROAEXAMPLE:alice",
		PrincipalID:  "AROAEXAMPLE",
		SessionName:  "alice",
		AccessKeyID:  "ASIAEXAMPLE",
		Kind:         identity.KindAssumedRole,
	}
	iamUser = identity.Identity{
		ARN:          "arn:aws:iam::111122223333:user/bob",
		CanonicalARN: "arn:aws:iam::111122223333:user/bob",
		AccountID:    "111122223333",
		UserID:       "AIDAEXAMPLE",
		PrincipalID:  "AIDAEXAMPLE",
		AccessKeyID:  "AKIAEXAMPLE",
		Kind:         identity.KindUser,
	}
)

func TestHeaders(t *testing.T) {
	tests := map[string]struct {
		id        identity.Identity
		user      kubeuser.User
		want      []Header
		wantError error
	}{
		"assumed role with two groups": {
			id:   assumedRole,
			user: kubeuser.User{Username: "dev:alice", Groups: []string{"devs", "system:viewers"}},
			want: []Header{
				{"impersonate-user", "dev:alice"},
				{"impersonate-group", "devs"},
				{"impersonate-group", "system:viewers"},
				{"impersonate-uid", "aws-iam-authenticator:111122223333:AROAEXAMPLE"},
				{"impersonate-extra-arn", "arn:aws:sts::111122223333:assumed-role/Dev/alice"},
				{"impersonate-extra-canonicalarn", "arn:aws:iam::111122223333:role/Dev"},
				{"impersonate-extra-sessionname", "alice"},
				{"impersonate-extra-accesskeyid", "ASIAEXAMPLE"},
				{"impersonate-extra-principalid", "AROAEXAMPLE"},
			},
		},
		"iam user without groups has no sessionname extra": {
			id:   iamUser,
			user: kubeuser.User{Username: "bob"},
			want: []Header{
				{"impersonate-user", "bob"},
				{"impersonate-uid", "aws-iam-authenticator:111122223333:AIDAEXAMPLE"},
				{"impersonate-extra-arn", "arn:aws:iam::111122223333:user/bob"},
				{"impersonate-extra-canonicalarn", "arn:aws:iam::111122223333:user/bob"},
				{"impersonate-extra-accesskeyid", "AKIAEXAMPLE"},
				{"impersonate-extra-principalid", "AIDAEXAMPLE"},
			},
		},
		"group with a comma":    {id: iamUser, user: kubeuser.User{Username: "bob", Groups: []string{"a,b"}}, wantError: ErrInvalidValue},
		"username with a comma": {id: iamUser, user: kubeuser.User{Username: "bob,system:masters"}, wantError: ErrInvalidValue},
		"session name with a comma is a fine extra": {
			id:   withSession(assumedRole, "a,b"),
			user: kubeuser.User{Username: "x"},
			want: []Header{
				{"impersonate-user", "x"},
				{"impersonate-uid", "aws-iam-authenticator:111122223333:AROAEXAMPLE"},
				{"impersonate-extra-arn", "arn:aws:sts::111122223333:assumed-role/Dev/alice"},
				{"impersonate-extra-canonicalarn", "arn:aws:iam::111122223333:role/Dev"},
				{"impersonate-extra-sessionname", "a,b"},
				{"impersonate-extra-accesskeyid", "ASIAEXAMPLE"},
				{"impersonate-extra-principalid", "AROAEXAMPLE"},
			},
		},
		"empty username":           {id: iamUser, user: kubeuser.User{}, wantError: ErrInvalidValue},
		"username with CRLF":       {id: iamUser, user: kubeuser.User{Username: "bob\r\nimpersonate-group: system:masters"}, wantError: ErrInvalidValue},
		"username with NUL":        {id: iamUser, user: kubeuser.User{Username: "bob\x00"}, wantError: ErrInvalidValue},
		"group with LF":            {id: iamUser, user: kubeuser.User{Username: "bob", Groups: []string{"ok", "x\nsystem:masters"}}, wantError: ErrInvalidValue},
		"empty group":              {id: iamUser, user: kubeuser.User{Username: "bob", Groups: []string{""}}, wantError: ErrInvalidValue},
		"invalid UTF-8 username":   {id: iamUser, user: kubeuser.User{Username: "bob\xff"}, wantError: ErrInvalidValue},
		"session name with CR":     {id: withSession(assumedRole, "a\rb"), user: kubeuser.User{Username: "x"}, wantError: ErrInvalidValue},
		"session name with DEL":    {id: withSession(assumedRole, "a\x7f"), user: kubeuser.User{Username: "x"}, wantError: ErrInvalidValue},
		"username with tab":        {id: iamUser, user: kubeuser.User{Username: "a\tb"}, wantError: ErrInvalidValue},
		"principal id with LF uid": {id: withPrincipal(iamUser, "AIDA\n"), user: kubeuser.User{Username: "x"}, wantError: ErrInvalidValue},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Headers(tc.id, tc.user)
			if tc.wantError != nil {
				if !errors.Is(err, tc.wantError) {
					t.Fatalf("Headers error = %v, want %v", err, tc.wantError)
				}
				if got != nil {
					t.Fatalf("Headers returned %v with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Headers unexpected error %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Headers =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

// TestHeadersAsAPIServerSeesThem decodes the headers the way the API
// server's impersonation filter does and checks it gets back the identity.
func TestHeadersAsAPIServerSeesThem(t *testing.T) {
	user := kubeuser.User{Username: "dev:alice", Groups: []string{"b", "c"}}
	hs, err := Headers(assumedRole, user)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for _, x := range hs {
		h.Add(x.Name, x.Value)
	}
	if got := h.Get("Impersonate-User"); got != user.Username {
		t.Errorf("user = %q", got)
	}
	if got := h.Values("Impersonate-Group"); !reflect.DeepEqual(got, user.Groups) {
		t.Errorf("groups = %q, want %q", got, user.Groups)
	}
	if got := h.Get("Impersonate-Uid"); got != "aws-iam-authenticator:111122223333:AROAEXAMPLE" {
		t.Errorf("uid = %q", got)
	}
	extra := map[string][]string{}
	for name, values := range h {
		if !strings.HasPrefix(name, "Impersonate-Extra-") {
			continue
		}
		key, err := url.PathUnescape(strings.ToLower(name[len("Impersonate-Extra-"):]))
		if err != nil {
			t.Fatalf("unescape %q: %v", name, err)
		}
		extra[key] = values
	}
	want := map[string][]string{
		"arn":          {assumedRole.ARN},
		"canonicalarn": {assumedRole.CanonicalARN},
		"sessionname":  {"alice"},
		"accesskeyid":  {"ASIAEXAMPLE"},
		"principalid":  {"AROAEXAMPLE"},
	}
	if !reflect.DeepEqual(extra, want) {
		t.Errorf("extras = %v, want %v", extra, want)
	}
	keys := ExtraKeys()
	if len(keys) != len(want) {
		t.Fatalf("ExtraKeys = %v, want the %d keys emitted", keys, len(want))
	}
	for _, k := range keys {
		if _, ok := want[k]; !ok {
			t.Errorf("ExtraKeys has %q, which is not emitted", k)
		}
	}
}

func TestExtraKeysIsACopy(t *testing.T) {
	k := ExtraKeys()
	k[0] = "mutated"
	if ExtraKeys()[0] != ExtraARN {
		t.Fatal("ExtraKeys exposes its backing array")
	}
}

func TestRender(t *testing.T) {
	got, err := Render(iamUser, kubeuser.User{Username: "bob", Groups: []string{"g1", "g2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "impersonate-user: bob\n" +
		"impersonate-group: g1\n" +
		"impersonate-group: g2\n" +
		"impersonate-uid: aws-iam-authenticator:111122223333:AIDAEXAMPLE\n" +
		"impersonate-extra-arn: arn:aws:iam::111122223333:user/bob\n" +
		"impersonate-extra-canonicalarn: arn:aws:iam::111122223333:user/bob\n" +
		"impersonate-extra-accesskeyid: AKIAEXAMPLE\n" +
		"impersonate-extra-principalid: AIDAEXAMPLE\n"
	if got != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
	if _, err := Render(iamUser, kubeuser.User{}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Render with empty user error = %v, want ErrInvalidValue", err)
	}
}

func TestUID(t *testing.T) {
	tests := map[string]struct {
		id   identity.Identity
		want string
	}{
		// Reference §5 examples.
		"role session drops the session": {id: assumedRole, want: "aws-iam-authenticator:111122223333:AROAEXAMPLE"},
		"user":                           {id: iamUser, want: "aws-iam-authenticator:111122223333:AIDAEXAMPLE"},
		"root":                           {id: identity.Identity{AccountID: "123456789012", PrincipalID: "123456789012"}, want: "aws-iam-authenticator:123456789012:123456789012"},
		"federated keeps whole UserId":   {id: identity.Identity{AccountID: "123456789012", PrincipalID: "123456789012:Bob"}, want: "aws-iam-authenticator:123456789012:123456789012:Bob"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := UID(tc.id); got != tc.want {
				t.Errorf("UID = %q, want %q", got, tc.want)
			}
		})
	}
}

func withSession(id identity.Identity, s string) identity.Identity {
	id.SessionName = s
	return id
}

func withPrincipal(id identity.Identity, p string) identity.Identity {
	id.PrincipalID = p
	return id
}
