package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
)

func TestMappingCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", "apiVersion: v1\nkind: ConfigMap\ndata:\n  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/A\n      username: \"{{Session}}\"\n    - rolearn: arn:aws:iam::111122223333:user/B\n      username: b\n  mapAccounts: |\n    - \"123\"\n")
	warn := write("warn.yaml", "mapUsers:\n  - userarn: arn:aws:iam::111122223333:role/A\n    username: a\n")
	manyGroups := func(n int) string {
		gs := make([]string, n)
		for i := range gs {
			gs[i] = fmt.Sprintf("g%02d", i)
		}
		return "[" + strings.Join(gs, ", ") + "]"
	}
	// The group limit of a request (check.MaxGroups) is the one serve and the
	// map dry run apply: an entry over it loads, and every principal it maps
	// is refused.
	groups := write("groups.yaml", fmt.Sprintf("mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/AtLimit\n    username: at-limit\n    groups: %s\n  - rolearn: arn:aws:iam::111122223333:role/Over\n    username: over\n    groups: %s\n",
		manyGroups(check.MaxGroups), manyGroups(check.MaxGroups+1)))
	broken := write("broken.yaml", "mapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: a\n   - rolearn: x\n")
	tests := map[string]struct {
		args       []string
		wantCode   int
		wantOut    []string
		wantErr    []string
		wantNotOut string
	}{
		"example file": {
			args:     []string{"mapping", "check", "../../../examples/aws-auth.yaml"},
			wantCode: 0,
			wantOut: []string{
				"../../../examples/aws-auth.yaml: ok (configmap shape, sha256 ",
				"mapRoles:    3 (2 rolearn, 1 sso)", "mapUsers:    1", "mapAccounts: 1",
				"templates:   {{AccountID}}, {{EC2PrivateDNSName}}, {{SessionName}}", "warnings:    0",
			},
		},
		"dropped entries are errors with their position": {
			args:     []string{"mapping", "check", bad},
			wantCode: 1,
			wantOut:  []string{"mapRoles:    1 (1 rolearn, 0 sso)", "dropped:     2"},
			wantErr: []string{
				bad + ":6: error: mapRoles[0].username: unknown template {{Session}}",
				bad + ":7: warning: mapRoles[1].rolearn: is an IAM user ARN under mapRoles",
				bad + `:10: error: mapAccounts[0]: "123" is not a 12-digit account ID`,
				"kube-iam-authz: " + bad + ": 2 entries are dropped",
			},
		},
		"a structural error refuses the file": {
			args:       []string{"mapping", "check", broken},
			wantCode:   1,
			wantErr:    []string{broken + ":3: error: mapRoles: YAML syntax error", ": 1 problem"},
			wantNotOut: "ok (",
		},
		"warnings pass": {
			args:     []string{"mapping", "check", warn},
			wantCode: 0,
			wantOut:  []string{"warnings:    1"},
			wantErr:  []string{warn + ":2: warning: mapUsers[0].userarn: is a role ARN under mapUsers"},
		},
		"an entry over the group limit is a warning": {
			args:     []string{"mapping", "check", groups},
			wantCode: 0,
			wantOut:  []string{"mapRoles:    2 (2 rolearn, 0 sso)", "dropped:     0", "warnings:    1"},
			wantErr:  []string{fmt.Sprintf("%s:5: warning: mapRoles[1]: maps to %d groups, more than the %d a request can carry: every principal this entry maps is refused (403), never truncated", groups, check.MaxGroups+1, check.MaxGroups)},
		},
		"an entry over the group limit fails with --strict": {
			args:     []string{"mapping", "check", "--strict", groups},
			wantCode: 1,
			wantErr:  []string{"1 warning (--strict)"},
		},
		"warnings fail with --strict": {
			args:     []string{"mapping", "check", "--strict", warn},
			wantCode: 1,
			wantErr:  []string{"1 warning (--strict)"},
		},
		"missing file": {
			args:     []string{"mapping", "check", filepath.Join(dir, "nope.yaml")},
			wantCode: 1,
			wantErr:  []string{"does not exist"},
		},
		"no file": {
			args:     []string{"mapping", "check"},
			wantCode: 1,
			wantErr:  []string{"mapping check: no file: give --mapping-file FILE (or FILE as the argument)"},
		},
		"--mapping-file, as serve takes it": {
			args:     []string{"mapping", "check", "--mapping-file", "../../../examples/aws-auth.yaml"},
			wantCode: 0,
			wantOut:  []string{"../../../examples/aws-auth.yaml: ok (configmap shape, sha256 ", "mapUsers:    1"},
		},
		"--mapping-file with errors": {
			args:     []string{"mapping", "check", "--mapping-file=" + bad},
			wantCode: 1,
			wantErr:  []string{bad + ":6: error: mapRoles[0].username: unknown template {{Session}}", "kube-iam-authz: " + bad + ": 2 entries are dropped"},
		},
		"--mapping-file and the same argument": {
			args:     []string{"mapping", "check", "--mapping-file", warn, warn},
			wantCode: 0,
			wantOut:  []string{"warnings:    1"},
		},
		"--mapping-file and another argument": {
			args:     []string{"mapping", "check", "--mapping-file", warn, bad},
			wantCode: 1,
			wantErr:  []string{"mapping check: --mapping-file " + warn + " and the argument " + bad + " differ: give one of them"},
		},
		"two arguments": {
			args:     []string{"mapping", "check", warn, bad},
			wantCode: 1,
			wantErr:  []string{"accepts at most 1 arg(s)"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), tc.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out.String(), errOut.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			if tc.wantNotOut != "" && strings.Contains(out.String(), tc.wantNotOut) {
				t.Errorf("stdout has %q:\n%s", tc.wantNotOut, out.String())
			}
		})
	}
}
