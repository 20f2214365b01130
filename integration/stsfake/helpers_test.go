package stsfake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testAccount = "111122223333"
	testCluster = "cluster-a"
)

var (
	userCreds = Credentials{AccessKeyID: "AKIAUSEREXAMPLE00001", SecretAccessKey: "user/secret+key=0123456789abcdefghijklmn"}
	roleCreds = Credentials{AccessKeyID: "ASIAROLEEXAMPLE00001", SecretAccessKey: "role/secret+key=0123456789abcdefghijklmn", SessionToken: "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="}
	rootCreds = Credentials{AccessKeyID: "AKIAROOTEXAMPLE00001", SecretAccessKey: "rootsecret"}
)

func testPrincipals() []Principal {
	return []Principal{
		IAMUser(testAccount, "alice", userCreds),
		AssumedRole(testAccount, "Dev", "bob", roleCreds),
		Root(testAccount, rootCreds),
	}
}

// startFake starts a plain-HTTP stand-in with the test principals.
func startFake(t *testing.T, now func() time.Time) (*Server, *Running) {
	t.Helper()
	s, err := New(Options{Principals: testPrincipals(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Start(ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return s, r
}

// send GETs a token's presigned URL against the stand-in, keeping the
// token's host as the Host header (it is signed), with x-k8s-aws-id set to
// clusterID (absent when empty).
func send(t *testing.T, client *http.Client, base, tok, clusterID, accept string) *http.Response {
	t.Helper()
	raw, err := DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/?"+u.RawQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = u.Host
	if clusterID != "" {
		req.Header.Set(ClusterIDHeader, clusterID)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

type jsonAnswer struct {
	GetCallerIdentityResponse *struct {
		GetCallerIdentityResult struct{ Account, Arn, UserId string }
		ResponseMetadata        struct{ RequestId string }
	}
	Error *struct{ Code, Message, Type string }
}

func decodeJSON(t *testing.T, resp *http.Response) jsonAnswer {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var a jsonAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, body)
	}
	return a
}

// awsGetToken runs the real `aws eks get-token` offline with fake static
// credentials and an empty configuration.
func awsGetToken(t *testing.T, c Credentials, region, clusterID string) string {
	t.Helper()
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("awscli not installed: interop with the real `aws eks get-token` not tested")
	}
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"HOME="+dir,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_ACCESS_KEY_ID="+c.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	)
	if c.SessionToken != "" {
		env = append(env, "AWS_SESSION_TOKEN="+c.SessionToken)
	}
	args := []string{"eks", "get-token", "--cluster-name", clusterID, "--output", "json"}
	if region != "" {
		args = append(args, "--region", region)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("aws eks get-token: %v: %s", err, stderr)
	}
	var cred struct {
		Status struct{ Token string } `json:"status"`
	}
	if err := json.Unmarshal(out, &cred); err != nil {
		t.Fatalf("aws eks get-token output: %v", err)
	}
	return cred.Status.Token
}

func newSDKSigner() *v4.Signer { return v4.NewSigner() }
