package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

func TestVerifyCommand(t *testing.T) {
	const (
		account    = stsfixture.Account
		ourCluster = "cluster-a"
	)
	userCreds, roleCreds := stsfixture.UserCredentials(), stsfixture.RoleCredentials()
	principals := stsfixture.Principals()
	user, role := principals[0], principals[1]
	standIn := stsfixture.Start(t, nil, principals...)
	fake, run, caFile := standIn.Server, standIn.Running, standIn.CAFile

	ctx := context.Background()
	sdkRole, err := stsfake.SDKPresignToken(ctx, roleCreds, "eu-west-1", ourCluster)
	if err != nil {
		t.Fatal(err)
	}
	sdkOther, err := stsfake.SDKPresignToken(ctx, userCreds, "eu-west-1", "cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	cliUser, err := stsfake.AWSCLIToken(ctx, t.TempDir(), userCreds, "", ourCluster)
	if errors.Is(err, stsfake.ErrNoAWSCLI) {
		cliUser, err = stsfake.SignToken(ctx, stsfake.TokenRequest{Credentials: userCreds, ClusterID: ourCluster, SignedAt: time.Now()})
	}
	if err != nil {
		t.Fatal(err)
	}
	execCredential := `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{},"status":{"expirationTimestamp":"2030-01-01T00:00:00Z","token":"` + cliUser + `"}}` + "\n"
	stsFlags := []string{"--cluster-id", ourCluster, "--sts-endpoint", run.URL, "--sts-ca-file", caFile}

	tests := map[string]struct {
		args         []string
		stdin        string
		fault        stsfake.Fault
		wantCode     int
		wantIdentity map[string]string
		wantStderr   string
		wantLines    int // lines on stderr when failing; 1 when zero
		wantSuffix   string
	}{
		"role session token as argument": {
			args: append(append([]string{"verify"}, stsFlags...), sdkRole), wantCode: 0,
			wantIdentity: map[string]string{"arn": role.ARN, "canonicalArn": "arn:aws:iam::111122223333:role/Dev", "accountId": account, "userId": role.UserID, "principalId": strings.Split(role.UserID, ":")[0], "sessionName": "bob", "accessKeyId": roleCreds.AccessKeyID, "kind": "assumed-role", "stsRegion": "eu-west-1"},
		},
		"aws eks get-token output on stdin": {
			args: append(append([]string{"verify"}, stsFlags...), "-"), stdin: execCredential, wantCode: 0,
			wantIdentity: map[string]string{"arn": user.ARN, "canonicalArn": user.ARN, "accountId": account, "userId": user.UserID, "principalId": user.UserID, "sessionName": "", "accessKeyId": userCreds.AccessKeyID, "kind": "user", "stsRegion": "global"},
		},
		"bare token on stdin, no argument": {
			args: append([]string{"verify"}, stsFlags...), stdin: sdkRole + "\n", wantCode: 0,
			wantIdentity: map[string]string{"arn": role.ARN},
		},
		"signed for another cluster":         {args: append(append([]string{"verify"}, stsFlags...), sdkOther), wantCode: 1, wantStderr: "sts rejected the token: rejected (HTTP 403 SignatureDoesNotMatch)", wantSuffix: `; or the token was made for another cluster id (--cluster-id expects "cluster-a")` + "\n"},
		"malformed token":                    {args: append(append([]string{"verify"}, stsFlags...), "k8s-aws-v1.!!!"), wantCode: 1, wantStderr: "malformed token"},
		"STS unavailable":                    {args: append(append([]string{"verify"}, stsFlags...), sdkRole), fault: stsfake.Fault{Kind: stsfake.FaultServerError, Status: 503}, wantCode: 1, wantStderr: "sts unavailable"},
		"STS throttles":                      {args: append(append([]string{"verify"}, stsFlags...), sdkRole), fault: stsfake.Fault{Kind: stsfake.FaultThrottle}, wantCode: 1, wantStderr: "sts throttled the request"},
		"empty stdin":                        {args: append([]string{"verify"}, stsFlags...), stdin: "  \n", wantCode: 1, wantStderr: "no token on stdin"},
		"JSON that is not an ExecCredential": {args: append([]string{"verify"}, stsFlags...), stdin: `{"a":1}`, wantCode: 1, wantStderr: "not an ExecCredential"},
		"every option problem at once": {
			args: []string{"verify", "--partition", "aws-moon", "--sts-endpoint", "http://10.1.2.3", "--sts-timeout", "0s", sdkRole}, wantCode: 1,
			wantStderr: "--cluster-id is required", wantLines: 4,
		},
		"two tokens": {args: append(append([]string{"verify"}, stsFlags...), sdkRole, sdkRole), wantCode: 1, wantStderr: "accepts at most 1 arg"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fake.ClearFault()
			if tc.fault.Kind != "" {
				if err := fake.SetFault(tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			code := Run(ctx, tc.args, Streams{In: strings.NewReader(tc.stdin), Out: &stdout, Err: &stderr})
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
			}
			for _, tok := range []string{sdkRole, sdkOther, cliUser} {
				raw, _ := stsfake.DecodeToken(tok)
				_, query, _ := strings.Cut(raw, "?")
				for _, secret := range []string{tok, raw, query, "X-Amz-Signature", "X-Amz-Security-Token"} {
					if strings.Contains(stdout.String()+stderr.String(), secret) {
						t.Errorf("output contains %.40q...", secret)
					}
				}
			}
			if tc.wantSuffix != "" && !strings.HasSuffix(stderr.String(), tc.wantSuffix) {
				t.Errorf("stderr = %q, want it to end with %q", stderr.String(), tc.wantSuffix)
			}
			if tc.wantSuffix == "" && strings.Contains(stderr.String(), "another cluster id") {
				t.Errorf("stderr = %q: the cluster id hint belongs only to SignatureDoesNotMatch", stderr.String())
			}
			if tc.wantCode != 0 {
				if !strings.Contains(stderr.String(), tc.wantStderr) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantStderr)
				}
				wantLines := max(tc.wantLines, 1)
				if n := strings.Count(stderr.String(), "\n"); n != wantLines {
					t.Errorf("stderr has %d lines, want %d: %q", n, wantLines, stderr.String())
				}
				if stdout.Len() != 0 {
					t.Errorf("stdout = %q, want nothing", stdout.String())
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v: %s", err, stdout.String())
			}
			for k, want := range tc.wantIdentity {
				if got[k] != want {
					t.Errorf("%s = %v, want %q", k, got[k], want)
				}
			}
			expiry, err := time.Parse(time.RFC3339, got["expiry"].(string))
			if err != nil || time.Until(expiry) <= 0 || time.Until(expiry) > 15*time.Minute+time.Minute {
				t.Errorf("expiry = %v (%v), want about 15 minutes ahead", got["expiry"], err)
			}
		})
	}
	if ids := fake.ClusterIDs(); len(ids) == 0 {
		t.Error("the stand-in saw no cluster id")
	} else {
		for _, id := range ids {
			if id != ourCluster {
				t.Errorf("the stand-in saw x-k8s-aws-id %q, want only %q", id, ourCluster)
			}
		}
	}
}

func TestVerifyOptionsValidate(t *testing.T) {
	valid := VerifyOptions{ClusterID: "c", Partition: "aws", STSTimeout: time.Second}
	tests := map[string]struct {
		mutate    func(*VerifyOptions)
		wantError []string
	}{
		"valid":               {mutate: func(*VerifyOptions) {}},
		"china":               {mutate: func(o *VerifyOptions) { o.Partition = "aws-cn" }},
		"no cluster id":       {mutate: func(o *VerifyOptions) { o.ClusterID = "" }, wantError: []string{"--cluster-id"}},
		"unknown partition":   {mutate: func(o *VerifyOptions) { o.Partition = "aws-moon" }, wantError: []string{"--partition"}},
		"plain http endpoint": {mutate: func(o *VerifyOptions) { o.STSEndpoint = "http://sts.example.com" }, wantError: []string{"loopback"}},
		"zero timeout":        {mutate: func(o *VerifyOptions) { o.STSTimeout = 0 }, wantError: []string{"--sts-timeout"}},
		"all at once": {
			mutate:    func(o *VerifyOptions) { *o = VerifyOptions{Partition: "x", STSEndpoint: "ftp://x", STSTimeout: -1} },
			wantError: []string{"--cluster-id", "--partition", "scheme", "--sts-timeout"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := valid
			tc.mutate(&o)
			err := o.Validate()
			if len(tc.wantError) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			for _, want := range tc.wantError {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want it to mention %q", err, want)
				}
			}
		})
	}
}
