package impersonate

import (
	"errors"
	"reflect"
	"testing"
)

func TestEffectiveGroups(t *testing.T) {
	tests := map[string]struct {
		user   string
		groups []string
		want   []string
	}{
		"no groups":                   {"bob", nil, []string{"system:authenticated"}},
		"groups":                      {"bob", []string{"devs"}, []string{"devs", "system:authenticated"}},
		"already authenticated":       {"bob", []string{"system:authenticated", "devs"}, []string{"system:authenticated", "devs"}},
		"unauthenticated asked for":   {"bob", []string{"system:unauthenticated"}, []string{"system:unauthenticated"}},
		"anonymous":                   {"system:anonymous", nil, []string{"system:unauthenticated"}},
		"anonymous with groups":       {"system:anonymous", []string{"x"}, []string{"x", "system:unauthenticated"}},
		"anonymous and authenticated": {"system:anonymous", []string{"system:authenticated"}, []string{"system:authenticated", "system:unauthenticated"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := append([]string(nil), tc.groups...)
			if got := EffectiveGroups(tc.user, in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("EffectiveGroups = %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(in, tc.groups) && tc.groups != nil {
				t.Errorf("input modified: %v", in)
			}
		})
	}
}

func TestServiceAccount(t *testing.T) {
	tests := map[string]struct {
		user     string
		ns, name string
		ok       bool
	}{
		"service account":       {"system:serviceaccount:team-a:builder", "team-a", "builder", true},
		"dotted name":           {"system:serviceaccount:ns:a.b", "ns", "a.b", true},
		"plain user":            {"bob", "", "", false},
		"three parts":           {"system:serviceaccount:a:b:c", "", "", false},
		"invalid namespace":     {"system:serviceaccount:Team_A:b", "", "", false},
		"empty name":            {"system:serviceaccount:ns:", "", "", false},
		"prefix case differs":   {"System:ServiceAccount:ns:b", "", "", false},
		"service account group": {"system:serviceaccounts:ns", "", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns, n, ok := ServiceAccount(tc.user)
			if ns != tc.ns || n != tc.name || ok != tc.ok {
				t.Errorf("ServiceAccount(%q) = %q, %q, %v", tc.user, ns, n, ok)
			}
		})
	}
}

func TestParseRequested(t *testing.T) {
	tests := map[string]struct {
		lines   []Header
		merged  bool
		want    Requested
		wantErr error
	}{
		"everything": {
			lines: []Header{{"Impersonate-User", "bob"}, {"impersonate-group", "a"}, {"impersonate-group", "b"}, {"impersonate-uid", "1"},
				{"impersonate-extra-example.com%2Fteam", "x"}, {"impersonate-extra-example.com%2fteam", "y, z"}, {"impersonate-extra-bad%zz", "v"}},
			want: Requested{User: "bob", UID: "1", Groups: []string{"a", "b"},
				Extras: []Extra{{"example.com/team", "x"}, {"example.com/team", "y, z"}, {"bad%zz", "v"}}},
		},
		"merged, no commas":        {lines: []Header{{"impersonate-user", "bob"}, {"impersonate-group", "a"}}, merged: true, want: Requested{User: "bob", Groups: []string{"a"}}},
		"merged, comma in extra":   {lines: []Header{{"impersonate-user", "bob"}, {"impersonate-extra-k", "a,b"}}, merged: true, wantErr: ErrInvalidRequest},
		"raw, comma in extra":      {lines: []Header{{"impersonate-user", "bob"}, {"impersonate-extra-k", "a,b"}}, want: Requested{User: "bob", Extras: []Extra{{"k", "a,b"}}}},
		"comma in user":            {lines: []Header{{"impersonate-user", "bob,alice"}}, wantErr: ErrInvalidRequest},
		"group without user":       {lines: []Header{{"impersonate-group", "a"}}, wantErr: ErrWithoutUser},
		"reserved before anything": {lines: []Header{{"impersonate-extra-kube-iam-authz.io%2Foriginal-uid", "1"}}, wantErr: ErrReservedExtra},
		"reserved, encoded dot":    {lines: []Header{{"impersonate-user", "b"}, {"impersonate-extra-kube-iam-authz%2Eio%2Fx", "1"}}, wantErr: ErrReservedExtra},
		"look-alike is not reserved": {
			lines: []Header{{"impersonate-user", "b"}, {"impersonate-extra-kube-iam-authz.io.evil%2Fx", "1"}},
			want:  Requested{User: "b", Extras: []Extra{{"kube-iam-authz.io.evil/x", "1"}}},
		},
		"empty user":     {lines: []Header{{"impersonate-user", ""}}, wantErr: ErrInvalidRequest},
		"two users":      {lines: []Header{{"impersonate-user", "a"}, {"impersonate-user", "a"}}, wantErr: ErrInvalidRequest},
		"invalid UTF-8":  {lines: []Header{{"impersonate-user", "b\xff"}}, wantErr: ErrInvalidRequest},
		"unknown header": {lines: []Header{{"impersonate-user", "b"}, {"impersonate-foo", "x"}}, wantErr: ErrInvalidRequest},
		"nothing":        {lines: nil, want: Requested{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseRequested(tc.lines, tc.merged)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
