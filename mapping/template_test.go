package mapping

import (
	"strings"
	"testing"
)

func TestCompileTemplate(t *testing.T) {
	tests := map[string]struct {
		in         string
		wantPrefix string
		wantVars   []variable
		wantErr    string
	}{
		"literal":                               {in: "system:masters", wantPrefix: "system:masters"},
		"node":                                  {in: "system:node:{{EC2PrivateDNSName}}", wantPrefix: "system:node:", wantVars: []variable{varEC2PrivateDNSName}},
		"leading placeholder":                   {in: "{{SessionName}}:masters", wantPrefix: "", wantVars: []variable{varSessionName}},
		"prefix stops at the first placeholder": {in: "a-{{AccountID}}-system:{{SessionNameRaw}}", wantPrefix: "a-", wantVars: []variable{varAccountID, varSessionNameRaw}},
		"every placeholder":                     {in: "{{AccountID}}{{SessionName}}{{SessionNameRaw}}{{AccessKeyID}}{{EC2PrivateDNSName}}", wantVars: []variable{varAccountID, varSessionName, varSessionNameRaw, varAccessKeyID, varEC2PrivateDNSName}},
		"unknown":                               {in: "{{Session}}", wantErr: "unknown template {{Session}}"},
		"spaces inside":                         {in: "{{ AccountID }}", wantErr: "unknown template {{ AccountID }}"},
		"unclosed":                              {in: "a{{AccountID", wantErr: "unclosed {{"},
		"stray closing":                         {in: "a}}{{AccountID}}", wantErr: "stray"},
		"stray closing at the end":              {in: "{{AccountID}}}}", wantErr: "stray"},
		"empty name":                            {in: "{{}}", wantErr: "unknown template {{}}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl, err := compileTemplate(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("compileTemplate(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("compileTemplate(%q) error = %v", tc.in, err)
			}
			if tpl.prefix != tc.wantPrefix {
				t.Errorf("prefix = %q, want %q", tpl.prefix, tc.wantPrefix)
			}
			for _, v := range tc.wantVars {
				if !tpl.has(v) {
					t.Errorf("template does not record %s", v)
				}
			}
			if tpl.literal() != (len(tc.wantVars) == 0) {
				t.Errorf("literal() = %v with vars %v", tpl.literal(), tc.wantVars)
			}
			// Rendering with values equal to the placeholders' own text
			// gives the input back: one pass, nothing re-expanded.
			v := values{accountID: "{{AccountID}}", sessionName: "{{SessionName}}", sessionNameRaw: "{{SessionNameRaw}}", accessKeyID: "{{AccessKeyID}}", dnsName: "{{EC2PrivateDNSName}}"}
			if got := tpl.render(&v); got != tc.in {
				t.Errorf("render = %q, want %q", got, tc.in)
			}
		})
	}
}

func TestCheckRendered(t *testing.T) {
	tests := map[string]struct {
		template, rendered string
		wantErr            string
	}{
		"literal is never refused":           {template: "system:masters", rendered: "system:masters"},
		"literal reserved prefix":            {template: "system:node:{{EC2PrivateDNSName}}", rendered: "system:node:ip-10-0-0-1.ec2.internal"},
		"smuggled system:":                   {template: "{{SessionName}}:masters", rendered: "system:masters", wantErr: `reserved prefix "system:"`},
		"smuggled by a partial literal":      {template: "sys{{SessionName}}", rendered: "system:x", wantErr: "reserved prefix"},
		"smuggled eks: in any case":          {template: "{{SessionName}}", rendered: "EKS:admin", wantErr: "reserved prefix"},
		"literal prefix is another reserved": {template: "eks:{{SessionName}}", rendered: "eks:system:x"},
		"not reserved":                       {template: "{{SessionName}}:masters", rendered: "eksb:test"},
		"empty":                              {template: "{{AccessKeyID}}", rendered: "", wantErr: "is empty"},
		"comma":                              {template: "g-{{SessionName}}", rendered: "g-a,b", wantErr: "comma"},
		"too long":                           {template: "{{SessionName}}", rendered: strings.Repeat("a", maxNameLen+1), wantErr: "bytes long"},
		"invalid utf-8":                      {template: "{{SessionName}}", rendered: "a\xffb", wantErr: "UTF-8"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl, err := compileTemplate(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			err = checkRendered(tpl, tc.rendered)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("checkRendered = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("checkRendered = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	tests := map[string]struct {
		p    Problem
		want string
	}{
		"full":    {Problem{Line: 12, Path: "mapRoles[2].rolearn", Message: "bad"}, "line 12: mapRoles[2].rolearn: bad"},
		"no line": {Problem{Path: "mapRoles[2]", Message: "bad"}, "mapRoles[2]: bad"},
		"no path": {Problem{Line: 3, Message: "bad"}, "line 3: bad"},
		"bare":    {Problem{Message: "the file is empty"}, "the file is empty"},
	}
	for name, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%s: String() = %q, want %q", name, got, tc.want)
		}
	}
}
