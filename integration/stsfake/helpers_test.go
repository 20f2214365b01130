package stsfake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
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

// awsGetToken runs the real `aws eks get-token`; the test skips without
// awscli.
func awsGetToken(t *testing.T, c Credentials, region, clusterID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := AWSCLIToken(ctx, t.TempDir(), c, region, clusterID)
	if errors.Is(err, ErrNoAWSCLI) {
		t.Skip("awscli not installed: interop with the real `aws eks get-token` not tested")
	}
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newSDKSigner() *v4.Signer { return v4.NewSigner() }
