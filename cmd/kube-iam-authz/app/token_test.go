package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

// awsTestEnv isolates the AWS SDK from the machine: empty config files, no
// IMDS (tests talk to loopback only), static credentials.
func awsTestEnv(t *testing.T) (home string) {
	t.Helper()
	home = t.TempDir()
	empty := filepath.Join(home, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"HOME":                        home,
		"AWS_CONFIG_FILE":             empty,
		"AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ACCESS_KEY_ID":           stsfixture.ExampleAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       stsfixture.ExampleSecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_STS":        "",
		"AWS_USE_FIPS_ENDPOINT":       "",
		"AWS_USE_DUALSTACK_ENDPOINT":  "",
		"KUBERNETES_EXEC_INFO":        "",
	} {
		t.Setenv(k, v)
	}
	return home
}

// execCredential is the output as kubectl reads it.
type execCredential struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Spec       struct {
		Interactive *bool `json:"interactive"`
	} `json:"spec"`
	Status struct {
		ExpirationTimestamp string `json:"expirationTimestamp"`
		Token               string `json:"token"`
	} `json:"status"`
}

func decodeOutput(t *testing.T, out string) execCredential {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("output is not exactly one line: %q", out)
	}
	var ec execCredential
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ec); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	return ec
}

func parserAt(t *testing.T, now time.Time) *token.Parser {
	t.Helper()
	p, err := token.NewParser(token.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokenCommand runs the command end to end in-process through Run.
func TestTokenCommand(t *testing.T) {
	tests := map[string]struct {
		args           []string
		env            map[string]string
		wantAPIVersion string
		wantHost       string
		wantAKID       string
		wantSession    string
	}{
		"defaults: us-east-1, v1beta1": {
			args:           []string{"token", "--cluster-id", "prod"},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.us-east-1.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"region flag": {
			args:           []string{"token", "--cluster-id", "prod", "--region", "eu-west-1"},
			env:            map[string]string{"AWS_REGION": "us-west-2"},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.eu-west-1.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"region from SDK config": {
			args:           []string{"token", "--cluster-id", "prod"},
			env:            map[string]string{"AWS_REGION": "us-west-2"},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.us-west-2.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"FIPS from SDK config": {
			args:           []string{"token", "--cluster-id", "prod", "--region", "us-east-2"},
			env:            map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts-fips.us-east-2.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"session token": {
			args: []string{"token", "--cluster-id", "prod", "--region", "us-west-2"},
			env: map[string]string{
				"AWS_ACCESS_KEY_ID": "ASIAIOSFODNN7EXAMPLE", "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEFYa+/==",
			},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.us-west-2.amazonaws.com",
			wantAKID: "ASIAIOSFODNN7EXAMPLE", wantSession: "IQoJb3JpZ2luX2VjEFYa+/==",
		},
		"exec info v1": {
			args:           []string{"token", "--cluster-id", "prod"},
			env:            map[string]string{"KUBERNETES_EXEC_INFO": `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`},
			wantAPIVersion: "client.authentication.k8s.io/v1", wantHost: "sts.us-east-1.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"exec info v1beta1": {
			args:           []string{"token", "--cluster-id", "prod"},
			env:            map[string]string{"KUBERNETES_EXEC_INFO": `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":true}}`},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.us-east-1.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"exec info malformed": {
			args:           []string{"token", "--cluster-id", "prod"},
			env:            map[string]string{"KUBERNETES_EXEC_INFO": `{"apiVersion":`},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.us-east-1.amazonaws.com", wantAKID: stsfixture.ExampleAccessKeyID,
		},
		"profile from the shared files": {
			args: []string{"token", "--cluster-id", "prod", "--profile", "dev"},
			env: map[string]string{
				"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
				"AWS_CONFIG_FILE":             "testdata:config",
				"AWS_SHARED_CREDENTIALS_FILE": "testdata:credentials",
			},
			wantAPIVersion: "client.authentication.k8s.io/v1beta1", wantHost: "sts.ap-southeast-2.amazonaws.com", wantAKID: "AKIADEVPROFILE000001",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			home := awsTestEnv(t)
			for k, v := range tc.env {
				if rest, ok := strings.CutPrefix(v, "testdata:"); ok {
					v = writeAWSFile(t, home, rest)
				}
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			before := time.Now().Truncate(time.Second)
			code := Run(context.Background(), tc.args, Streams{In: strings.NewReader(""), Out: &stdout, Err: &stderr})
			after := time.Now()
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
			ec := decodeOutput(t, stdout.String())
			if ec.Kind != "ExecCredential" || ec.APIVersion != tc.wantAPIVersion {
				t.Errorf("kind, apiVersion = %q, %q; want ExecCredential, %q", ec.Kind, ec.APIVersion, tc.wantAPIVersion)
			}
			if ec.Spec.Interactive == nil || *ec.Spec.Interactive {
				t.Errorf("spec.interactive = %v, want false", ec.Spec.Interactive)
			}
			exp, err := time.Parse(time.RFC3339, ec.Status.ExpirationTimestamp)
			if err != nil || !strings.HasSuffix(ec.Status.ExpirationTimestamp, "Z") || strings.Contains(ec.Status.ExpirationTimestamp, ".") {
				t.Fatalf("expirationTimestamp %q is not RFC 3339 UTC seconds", ec.Status.ExpirationTimestamp)
			}
			pre, err := parserAt(t, after).Parse(ec.Status.Token)
			if err != nil {
				t.Fatalf("our parser refuses the command's token: %v", err)
			}
			if pre.Host != tc.wantHost || pre.AccessKeyID != tc.wantAKID {
				t.Errorf("host, key = %s, %s; want %s, %s", pre.Host, pre.AccessKeyID, tc.wantHost, tc.wantAKID)
			}
			if got := pre.URL.Query().Get("X-Amz-Security-Token"); got != tc.wantSession {
				t.Errorf("session token = %q, want %q", got, tc.wantSession)
			}
			if pre.SignedAt.Before(before) || pre.SignedAt.After(after) {
				t.Errorf("SignedAt %s outside [%s, %s]", pre.SignedAt, before, after)
			}
			// Static credentials never expire: 15 minutes less the cushion.
			if want := pre.SignedAt.Add(14 * time.Minute); !exp.Equal(want) {
				t.Errorf("expirationTimestamp = %s, want %s", exp, want)
			}
		})
	}
}

// writeAWSFile writes one of the shared config fixtures into home.
func writeAWSFile(t *testing.T, home, name string) string {
	t.Helper()
	content := map[string]string{
		"config":      "[profile dev]\nregion = ap-southeast-2\n",
		"credentials": "[dev]\naws_access_key_id = AKIADEVPROFILE000001\naws_secret_access_key = devsecret\n",
	}[name]
	path := filepath.Join(home, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenCommandErrors(t *testing.T) {
	tests := map[string]struct {
		args      []string
		env       map[string]string
		wantParts []string
	}{
		"no cluster id": {args: []string{"token"}, wantParts: []string{"--cluster-id is required"}},
		"every flag problem at once": {
			args: []string{"token", "--cluster-id", "a b", "--region", "US-WEST-2", "--role-arn", "arn:aws:iam::111122223333:user/alice", "--session-name", "x"},
			wantParts: []string{
				"--cluster-id must be", `--region "US-WEST-2"`, "is not an IAM role ARN", `--session-name "x" must be`,
			},
		},
		"session name without role": {args: []string{"token", "--cluster-id", "c", "--session-name", "alice"}, wantParts: []string{"--session-name needs --role-arn"}},
		"role ARN garbage":          {args: []string{"token", "--cluster-id", "c", "--role-arn", "dev"}, wantParts: []string{"--role-arn: arn: invalid prefix"}},
		"positional argument":       {args: []string{"token", "--cluster-id", "c", "extra"}, wantParts: []string{"unknown command"}},
		"no credentials": {
			args:      []string{"token", "--cluster-id", "c"},
			env:       map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
			wantParts: []string{"AWS credentials"},
		},
		"unknown profile": {
			args:      []string{"token", "--cluster-id", "c", "--profile", "nope"},
			wantParts: []string{"AWS config", "nope"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			awsTestEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tc.args, Streams{In: strings.NewReader(""), Out: &stdout, Err: &stderr})
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			for _, part := range tc.wantParts {
				if !strings.Contains(stderr.String(), part) {
					t.Errorf("stderr %q lacks %q", stderr.String(), part)
				}
			}
		})
	}
}

func TestExecAPIVersion(t *testing.T) {
	tests := map[string]struct {
		info string
		want string
	}{
		"unset":               {info: "", want: execV1beta1},
		"v1":                  {info: `{"apiVersion":"client.authentication.k8s.io/v1"}`, want: execV1},
		"v1beta1":             {info: `{"apiVersion":"client.authentication.k8s.io/v1beta1"}`, want: execV1beta1},
		"v1alpha1 is retired": {info: `{"apiVersion":"client.authentication.k8s.io/v1alpha1"}`, want: execV1beta1},
		"no apiVersion":       {info: `{"kind":"ExecCredential"}`, want: execV1beta1},
		"malformed":           {info: `{`, want: execV1beta1},
		"not an object":       {info: `"client.authentication.k8s.io/v1"`, want: execV1beta1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := execAPIVersion(tc.info); got != tc.want {
				t.Errorf("execAPIVersion(%q) = %q, want %q", tc.info, got, tc.want)
			}
		})
	}
}

// fakeSTS answers AssumeRole on loopback like STS's query protocol does, and
// records the requests.
type fakeSTS struct {
	expires time.Time
	mu      sync.Mutex
	forms   []url.Values
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, r.Form)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>`+
		`<Credentials><AccessKeyId>ASIAASSUMEDROLE00001</AccessKeyId><SecretAccessKey>assumedsecret</SecretAccessKey>`+
		`<SessionToken>assumed-session</SessionToken><Expiration>%s</Expiration></Credentials>`+
		`<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/Dev/%s</Arn><AssumedRoleId>AROAEXAMPLE:%s</AssumedRoleId></AssumedRoleUser>`+
		`</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		f.expires.UTC().Format(time.RFC3339), r.Form.Get("RoleSessionName"), r.Form.Get("RoleSessionName"))
}

// TestTokenCommandAssumeRole: --role-arn signs with the assumed role's
// credentials, and a session ending before 15 minutes shortens
// expirationTimestamp to its end less the cushion. STS is a loopback fake
// reached through AWS_ENDPOINT_URL_STS, which also becomes the token's host.
func TestTokenCommandAssumeRole(t *testing.T) {
	tests := map[string]struct {
		sessionName    string
		credLifetime   time.Duration
		wantLifetime   time.Duration
		wantSessionArg string
	}{
		"short session caps the expiry":  {sessionName: "alice", credLifetime: 8 * time.Minute, wantLifetime: 7 * time.Minute, wantSessionArg: "alice"},
		"long session, SDK session name": {credLifetime: time.Hour, wantLifetime: 14 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			awsTestEnv(t)
			// The SDK's credential cache judges expiry by the real clock.
			now := time.Now().UTC().Truncate(time.Second)
			fake := &fakeSTS{expires: now.Add(tc.credLifetime)}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
			args := []string{"--cluster-id", "prod", "--region", "us-west-2", "--role-arn", "arn:aws:iam::111122223333:role/Dev"}
			if tc.sessionName != "" {
				args = append(args, "--session-name", tc.sessionName)
			}
			stdout, stderr, err := runTokenWith(t, args, now, os.UserHomeDir)
			if err != nil {
				t.Fatalf("%v; stderr %q", err, stderr)
			}
			ec := decodeOutput(t, stdout)
			if want := now.Add(tc.wantLifetime).Format(time.RFC3339); ec.Status.ExpirationTimestamp != want {
				t.Errorf("expirationTimestamp = %s, want %s", ec.Status.ExpirationTimestamp, want)
			}
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(ec.Status.Token, token.Prefix))
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if !strings.HasPrefix(q.Get("X-Amz-Credential"), "ASIAASSUMEDROLE00001/") || q.Get("X-Amz-Security-Token") != "assumed-session" {
				t.Errorf("token not signed with the assumed role: %v", q)
			}
			if len(fake.forms) != 1 {
				t.Fatalf("%d AssumeRole calls, want 1", len(fake.forms))
			}
			form := fake.forms[0]
			if form.Get("RoleArn") != "arn:aws:iam::111122223333:role/Dev" {
				t.Errorf("RoleArn = %q", form.Get("RoleArn"))
			}
			if got := form.Get("RoleSessionName"); tc.wantSessionArg != "" && got != tc.wantSessionArg || got == "" {
				t.Errorf("RoleSessionName = %q, want %q", got, tc.wantSessionArg)
			}
		})
	}
}

func TestTokenCommandCredentialsAboutToExpire(t *testing.T) {
	awsTestEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	srv := httptest.NewServer(&fakeSTS{expires: now.Add(30 * time.Second)})
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	stdout, _, err := runTokenWith(t, []string{"--cluster-id", "prod", "--role-arn", "arn:aws:iam::111122223333:role/Dev"}, now, os.UserHomeDir)
	if err == nil || !strings.Contains(err.Error(), "too soon to issue a token") {
		t.Fatalf("err = %v, want too soon", err)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
}

// runTokenWith runs the token command with an injected clock and home.
func runTokenWith(t *testing.T, args []string, now time.Time, home func() (string, error)) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newTokenCommandWith(Streams{In: strings.NewReader(""), Out: &out, Err: &errOut},
		tokenEnv{now: func() time.Time { return now }, getenv: os.Getenv, homeDir: home})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestTokenClusterNameAlias: --cluster-name is --cluster-id under the name aws
// eks get-token uses, so an EKS kubeconfig works by changing only the command.
// With a fixed clock and static credentials the token is deterministic: the
// alias must sign exactly the token --cluster-id signs (and another id must
// not).
func TestTokenClusterNameAlias(t *testing.T) {
	awsTestEnv(t)
	now := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	noHome := func() (string, error) { return "", errors.New("no home in this test") }
	tokenOf := func(t *testing.T, args ...string) string {
		t.Helper()
		out, stderr, err := runTokenWith(t, args, now, noHome)
		if err != nil {
			t.Fatalf("token %v: %v (stderr %q)", args, err, stderr)
		}
		return decodeOutput(t, out).Status.Token
	}
	reference := tokenOf(t, "--cluster-id", "my-cluster-id", "--region", "eu-west-1")
	if other := tokenOf(t, "--cluster-id", "other-cluster", "--region", "eu-west-1"); other == reference {
		t.Fatal("the token does not depend on the cluster id: this test would prove nothing")
	}
	tests := map[string]struct {
		args      []string
		wantSame  bool   // the token equals --cluster-id my-cluster-id's
		wantInErr string // or this error
	}{
		// The args of examples/kubeconfig/aws-eks-get-token.yaml after "eks get-token".
		"EKS kubeconfig args":             {args: []string{"--cluster-name", "my-cluster-id", "--region", "eu-west-1"}, wantSame: true},
		"both flags, same value":          {args: []string{"--cluster-name", "my-cluster-id", "--cluster-id", "my-cluster-id", "--region", "eu-west-1"}, wantSame: true},
		"both flags, different values":    {args: []string{"--cluster-name", "a", "--cluster-id", "b"}, wantInErr: `--cluster-name "a" and --cluster-id "b" differ`},
		"neither flag":                    {args: []string{"--region", "eu-west-1"}, wantInErr: "--cluster-id is required (or --cluster-name"},
		"alias held to the same rules":    {args: []string{"--cluster-name", "a b"}, wantInErr: "--cluster-id must be 1 to 256 printable ASCII"},
		"alias with the equals sign form": {args: []string{"--cluster-name=my-cluster-id", "--region=eu-west-1"}, wantSame: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, stderr, err := runTokenWith(t, tc.args, now, noHome)
			if tc.wantInErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantInErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("token %v: %v (stderr %q)", tc.args, err, stderr)
			}
			if got := decodeOutput(t, out).Status.Token; (got == reference) != tc.wantSame {
				t.Errorf("token equals the --cluster-id token: %v, want %v", got == reference, tc.wantSame)
			}
		})
	}
}
