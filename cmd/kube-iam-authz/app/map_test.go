package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testMapping = `mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: "dev:{{SessionName}}"
    groups: [devs, viewers]
  - rolearn: arn:aws:iam::111122223333:role/Node
    username: system:node:{{EC2PrivateDNSName}}
    groups: [system:bootstrappers, system:nodes]
  - rolearn: arn:aws:iam::111122223333:role/Smuggle
    username: "{{SessionName}}:masters"
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/bob
    username: bob
mapAccounts:
  - "444455556666"
`

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestMapText(t *testing.T) {
	file := writeTemp(t, "aws-auth.yaml", testMapping)
	code, out, _ := runCLI(t, "map", "--mapping-file", file,
		"--arn", "arn:aws:sts::111122223333:assumed-role/Dev/alice", "--principal-id", "AROADEV", "--access-key-id", "ASIAKEY")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	want := `arn:            arn:aws:sts::111122223333:assumed-role/Dev/alice
canonical arn:  arn:aws:iam::111122223333:role/Dev
account:        111122223333
session name:   alice
matched:        mapRoles[0] (line 2)
username:       dev:alice
groups:         devs, viewers
uid:            aws-iam-authenticator:111122223333:AROADEV
extras:
  arn: arn:aws:sts::111122223333:assumed-role/Dev/alice
  canonicalarn: arn:aws:iam::111122223333:role/Dev
  sessionname: alice
  accesskeyid: ASIAKEY
  principalid: AROADEV
headers sent upstream:
  impersonate-user: dev:alice
  impersonate-group: devs
  impersonate-group: viewers
  impersonate-uid: aws-iam-authenticator:111122223333:AROADEV
  impersonate-extra-arn: arn:aws:sts::111122223333:assumed-role/Dev/alice
  impersonate-extra-canonicalarn: arn:aws:iam::111122223333:role/Dev
  impersonate-extra-sessionname: alice
  impersonate-extra-accesskeyid: ASIAKEY
  impersonate-extra-principalid: AROADEV
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestMapCases(t *testing.T) {
	file := writeTemp(t, "aws-auth.yaml", testMapping)
	tests := map[string]struct {
		args         []string
		wantCode     int
		wantUsername string
		wantGroups   []string
		wantUID      string
		wantStderr   string
		wantError    string
	}{
		"role plus session name": {
			args:     []string{"--arn", "arn:aws:iam::111122223333:role/Dev", "--session-name", "carol", "--principal-id", "AROADEV"},
			wantCode: 0, wantUsername: "dev:carol", wantGroups: []string{"devs", "viewers"}, wantUID: "aws-iam-authenticator:111122223333:AROADEV",
		},
		"user without principal id uses a placeholder": {
			args:     []string{"--arn", "arn:aws:iam::111122223333:user/bob"},
			wantCode: 0, wantUsername: "bob", wantUID: "aws-iam-authenticator:111122223333:UNKNOWN-PRINCIPAL-ID", wantStderr: "placeholder",
		},
		"account mapping": {
			args:     []string{"--arn", "arn:aws:iam::444455556666:user/x", "--principal-id", "AIDAX"},
			wantCode: 0, wantUsername: "arn:aws:iam::444455556666:user/x", wantUID: "aws-iam-authenticator:444455556666:AIDAX",
		},
		"node with a static DNS answer": {
			args:     []string{"--arn", "arn:aws:sts::111122223333:assumed-role/Node/i-0123456789abcdef0", "--ec2-private-dns-name", "ip-10-0-0-1.ec2.internal"},
			wantCode: 0, wantUsername: "system:node:ip-10-0-0-1.ec2.internal", wantGroups: []string{"system:bootstrappers", "system:nodes"},
			wantUID: "aws-iam-authenticator:111122223333:UNKNOWN-PRINCIPAL-ID",
		},
		"node without EC2 cannot be decided": {
			args:     []string{"--arn", "arn:aws:sts::111122223333:assumed-role/Node/i-0123456789abcdef0"},
			wantCode: 1, wantError: "unavailable",
		},
		"unmapped": {
			args:     []string{"--arn", "arn:aws:iam::111122223333:user/nobody"},
			wantCode: 2, wantError: "not mapped",
		},
		"reserved prefix from a template is refused": {
			args:     []string{"--arn", "arn:aws:sts::111122223333:assumed-role/Smuggle/system"},
			wantCode: 2, wantError: "reserved prefix",
		},
		"role without a session": {
			args:     []string{"--arn", "arn:aws:iam::111122223333:role/Dev"},
			wantCode: 1, wantStderr: "--session-name",
		},
		"session name disagrees with the ARN": {
			args:     []string{"--arn", "arn:aws:sts::111122223333:assumed-role/Dev/alice", "--session-name", "mallory"},
			wantCode: 1, wantStderr: "differs",
		},
		"account id disagrees with the ARN": {
			args:     []string{"--arn", "arn:aws:iam::111122223333:user/bob", "--account-id", "999999999999"},
			wantCode: 1, wantStderr: "does not match",
		},
		"not an ARN": {
			args:     []string{"--arn", "bob"},
			wantCode: 1, wantStderr: "invalid ARN",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"map", "-o", "json", "--mapping-file", file}, tc.args...)
			code, out, stderr := runCLI(t, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, stderr)
			}
			if tc.wantStderr != "" && !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantStderr)
			}
			if out == "" {
				return
			}
			var res mapResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if tc.wantError != "" {
				if res.Mapped || !strings.Contains(res.Error, tc.wantError) {
					t.Errorf("mapped=%v error=%q, want an error containing %q", res.Mapped, res.Error, tc.wantError)
				}
				return
			}
			if !res.Mapped || res.Username != tc.wantUsername || strings.Join(res.Groups, ",") != strings.Join(tc.wantGroups, ",") || res.UID != tc.wantUID {
				t.Errorf("got %+v, want username %q groups %v uid %q", res, tc.wantUsername, tc.wantGroups, tc.wantUID)
			}
			if len(res.Headers) == 0 || res.Headers[0].Name != "impersonate-user" || res.Headers[0].Value != tc.wantUsername {
				t.Errorf("headers = %v", res.Headers)
			}
		})
	}
}

func TestMapValidate(t *testing.T) {
	code, _, stderr := runCLI(t, "map", "-o", "yaml")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--mapping-file", "--arn", "--output"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
}

func TestMapInvalidFile(t *testing.T) {
	file := writeTemp(t, "bad.yaml", "mapRoles: |\n  - rolearn: nope\n   - x\n")
	code, _, stderr := runCLI(t, "map", "--mapping-file", file, "--arn", "arn:aws:iam::111122223333:user/bob")
	if code != 1 || !strings.Contains(stderr, "invalid aws-auth mapping") {
		t.Errorf("exit %d stderr %q", code, stderr)
	}
	// An entry invalid on its own is dropped and said so; the rest maps.
	file = writeTemp(t, "entry.yaml", "mapRoles:\n  - rolearn: nope\n    username: x\nmapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: bob\n")
	code, _, stderr = runCLI(t, "map", "--mapping-file", file, "--arn", "arn:aws:iam::111122223333:user/bob")
	if code != 0 || !strings.Contains(stderr, "error (entry dropped): line 2: mapRoles[0].rolearn: invalid ARN") {
		t.Errorf("exit %d stderr %q", code, stderr)
	}
}

func TestMapEC2Lookups(t *testing.T) {
	// Static credentials and no IMDS: the SDK must not reach past loopback.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	file := writeTemp(t, "aws-auth.yaml", testMapping)
	node := "arn:aws:sts::111122223333:assumed-role/Node/i-0123456789abcdef0"

	code, _, stderr := runCLI(t, "map", "--mapping-file", file, "--arn", node, "--ec2-lookups", "--ec2-private-dns-name", "x")
	if code != 1 || !strings.Contains(stderr, "exclude each other") {
		t.Errorf("both EC2 sources: exit %d %q", code, stderr)
	}
	// EC2 down (nothing listens on the endpoint): the mapping cannot be
	// decided, which is not a "no".
	code, out, _ := runCLI(t, "map", "-o", "json", "--mapping-file", file, "--arn", node,
		"--ec2-lookups", "--ec2-region", "us-east-1", "--ec2-endpoint", "http://127.0.0.1:1")
	var res mapResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if code != 1 || res.Mapped || !strings.Contains(res.Error, "unavailable") {
		t.Errorf("EC2 down: exit %d, %+v", code, res)
	}
}
