package token

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

// awsCLIToken runs the real `aws eks get-token` offline with static fake
// credentials and returns its token. Nothing of the user's AWS setup leaks
// in: HOME and both config files point at an empty temp directory, and the
// environment is built from scratch.
func awsCLIToken(t *testing.T, akid, sessionToken, region string) string {
	t.Helper()
	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("awscli (`aws`) is not installed; real-token tests need it")
	}
	home := t.TempDir()
	empty := filepath.Join(home, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"eks", "get-token", "--cluster-name", "test-cluster", "--output", "json"}
	if region != "" {
		args = append(args, "--region", region)
	}
	cmd := exec.Command(aws, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + empty,
		"AWS_SHARED_CREDENTIALS_FILE=" + empty,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID=" + akid,
		"AWS_SECRET_ACCESS_KEY=" + stsfixture.ExampleSecretAccessKey,
	}
	if sessionToken != "" {
		cmd.Env = append(cmd.Env, "AWS_SESSION_TOKEN="+sessionToken)
	}
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("aws eks get-token: %v\n%s", err, stderr)
	}
	var cred struct {
		Kind   string `json:"kind"`
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &cred); err != nil || cred.Kind != "ExecCredential" {
		t.Fatalf("aws eks get-token output %q: %v", out, err)
	}
	return cred.Status.Token
}

// A session token in the shape STS issues: long, standard base64 with '+',
// '/' and '=' that must survive percent-encoding.
const fakeSessionToken = "IQoJb3JpZ2luX2VjEFYaCXVzLWVhc3QtMSJHMEUCIQD+fake/session+token/with==padding"

func TestParseAWSCLITokens(t *testing.T) {
	tests := map[string]struct {
		partition       string
		region          string
		akid, session   string
		wantHost        string
		wantRegion      string
		wantRegionLabel string
	}{
		"global, long-term key": {
			akid: stsfixture.ExampleAccessKeyID, wantHost: "sts.amazonaws.com", wantRegion: "us-east-1", wantRegionLabel: "global",
		},
		"global, session token": {
			akid: "ASIAIOSFODNN7EXAMPLE", session: fakeSessionToken,
			wantHost: "sts.amazonaws.com", wantRegion: "us-east-1", wantRegionLabel: "global",
		},
		"us-west-2, session token": {
			region: "us-west-2", akid: "ASIAIOSFODNN7EXAMPLE", session: fakeSessionToken,
			wantHost: "sts.us-west-2.amazonaws.com", wantRegion: "us-west-2", wantRegionLabel: "us-west-2",
		},
		"us-east-1 is regional": {
			region: "us-east-1", akid: stsfixture.ExampleAccessKeyID,
			wantHost: "sts.us-east-1.amazonaws.com", wantRegion: "us-east-1", wantRegionLabel: "us-east-1",
		},
		"eu-central-1, long-term key": {
			region: "eu-central-1", akid: stsfixture.ExampleAccessKeyID,
			wantHost: "sts.eu-central-1.amazonaws.com", wantRegion: "eu-central-1", wantRegionLabel: "eu-central-1",
		},
		"china": {
			partition: "aws-cn", region: "cn-north-1", akid: stsfixture.ExampleAccessKeyID,
			wantHost: "sts.cn-north-1.amazonaws.com.cn", wantRegion: "cn-north-1", wantRegionLabel: "cn-north-1",
		},
		"govcloud": {
			partition: "aws-us-gov", region: "us-gov-west-1", akid: "ASIAIOSFODNN7EXAMPLE", session: fakeSessionToken,
			wantHost: "sts.us-gov-west-1.amazonaws.com", wantRegion: "us-gov-west-1", wantRegionLabel: "us-gov-west-1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			before := time.Now().Add(-time.Second)
			tok := awsCLIToken(t, tc.akid, tc.session, tc.region)
			after := time.Now()
			p, err := NewParser(Options{Partition: tc.partition})
			if err != nil {
				t.Fatal(err)
			}
			pre, err := p.Parse(tok)
			if err != nil {
				t.Fatalf("Parse(real awscli token): %v", err)
			}
			if pre.Host != tc.wantHost || pre.Region != tc.wantRegion || pre.RegionLabel != tc.wantRegionLabel {
				t.Errorf("Host, Region, RegionLabel = %s, %s, %s; want %s, %s, %s",
					pre.Host, pre.Region, pre.RegionLabel, tc.wantHost, tc.wantRegion, tc.wantRegionLabel)
			}
			if pre.AccessKeyID != tc.akid {
				t.Errorf("AccessKeyID = %q, want %q", pre.AccessKeyID, tc.akid)
			}
			if pre.SignedAt.Before(before.Truncate(time.Second)) || pre.SignedAt.After(after) {
				t.Errorf("SignedAt %s not within [%s, %s]", pre.SignedAt, before, after)
			}
			if !pre.Expiry.Equal(pre.SignedAt.Add(15 * time.Minute)) {
				t.Errorf("Expiry = %s", pre.Expiry)
			}
			q := pre.URL.Query()
			if got := q.Get("X-Amz-Security-Token"); got != tc.session {
				t.Errorf("X-Amz-Security-Token = %q, want %q", got, tc.session)
			}
			if got := q.Get("X-Amz-SignedHeaders"); got != "host;x-k8s-aws-id" {
				t.Errorf("X-Amz-SignedHeaders = %q", got)
			}
			if got := q.Get("X-Amz-Expires"); got != "60" {
				t.Errorf("X-Amz-Expires = %q", got)
			}
		})
	}
}

// TestGenerateMatchesAWSCLI signs the same request as a real
// `aws eks get-token` (same key, region, cluster and second) and compares:
// without a session token the tokens are byte-identical; with one, only the
// position of X-Amz-Security-Token differs (awscli puts it after
// X-Amz-SignedHeaders, the SDK sorts it), and the signatures are equal.
func TestGenerateMatchesAWSCLI(t *testing.T) {
	tests := map[string]struct {
		akid, session string
		wantIdentical bool
	}{
		"long-term key": {akid: stsfixture.ExampleAccessKeyID, wantIdentical: true},
		"session token": {akid: "ASIAIOSFODNN7EXAMPLE", session: fakeSessionToken},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cli := awsCLIToken(t, tc.akid, tc.session, "us-west-2")
			p := newTestParser(t, Options{Now: time.Now})
			cliPre, err := p.Parse(cli)
			if err != nil {
				t.Fatal(err)
			}
			g, err := NewGenerator(GeneratorOptions{
				Config: staticConfig("us-west-2", tc.akid, stsfixture.ExampleSecretAccessKey, tc.session),
				Now:    func() time.Time { return cliPre.SignedAt },
			})
			if err != nil {
				t.Fatal(err)
			}
			ours, err := g.Generate(context.Background(), "test-cluster")
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantIdentical {
				if ours.Token != cli {
					t.Errorf("tokens differ:\n ours %s\n  cli %s", ours.Token, cli)
				}
				return
			}
			ourPre, err := p.Parse(ours.Token)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(ourPre.URL.Query(), cliPre.URL.Query(), slices.Equal) {
				t.Errorf("queries differ:\n ours %v\n  cli %v", ourPre.URL.Query(), cliPre.URL.Query())
			}
			if ourPre.URL.RawQuery == cliPre.URL.RawQuery {
				t.Logf("awscli now orders X-Amz-Security-Token like the SDK")
			}
		})
	}
}
