package server

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	valid := func() *Options {
		o := NewOptions()
		o.CertDir = t.TempDir()
		o.ProxyToken = "tok"
		return o
	}
	tests := map[string]struct {
		mutate       func(*Options)
		wantProblems []string
	}{
		"defaults plus token and cert dir are valid": {mutate: func(*Options) {}},
		"missing everything reports every problem": {
			mutate: func(o *Options) {
				o.CertDir, o.ProxyToken, o.ProxyUser = "", "", ""
				o.ImpersonationMode = "sideways"
				o.ProxyGrants = []string{"impersonate", "root"}
				o.RecordCapacity = 0
				o.Listen = "nope"
			},
			wantProblems: []string{"cert dir", "proxy user", "proxy token", `mode "sideways"`, `grant "root"`, "record capacity", `listen "nope"`},
		},
		"token file must exist": {
			mutate:       func(o *Options) { o.ProxyToken, o.ProxyTokenFile = "", filepath.Join(t.TempDir(), "missing") },
			wantProblems: []string{"proxy token file"},
		},
		"token auth file must exist": {
			mutate:       func(o *Options) { o.TokenAuthFile = filepath.Join(t.TempDir(), "missing.csv") },
			wantProblems: []string{"token auth file"},
		},
		"record capacity bounded": {
			mutate:       func(o *Options) { o.RecordCapacity = maxRecordCapacity + 1 },
			wantProblems: []string{"record capacity"},
		},
		"record listen must be host:port": {
			mutate:       func(o *Options) { o.RecordListen = "8080" },
			wantProblems: []string{"record listen"},
		},
		"constrained mode with user-info grant is valid": {
			mutate: func(o *Options) { o.ImpersonationMode, o.ProxyGrants = ModeConstrained, []string{GrantUserInfo} },
		},
		"clock required": {
			mutate:       func(o *Options) { o.Now = nil },
			wantProblems: []string{"clock"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := valid()
			tc.mutate(o)
			err := o.Validate()
			if len(tc.wantProblems) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want problems %q", tc.wantProblems)
			}
			for _, p := range tc.wantProblems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("Validate() = %q, missing %q", err, p)
				}
			}
		})
	}
}
