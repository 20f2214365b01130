package stsfake

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The aws-iam-authenticator generator golden vector (reference §7.1), whose
// signature was recomputed independently: a known answer for the verifier.
func TestGoldenVector(t *testing.T) {
	const golden = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BU0lBUjJURzQ0VjZBUzNaWkU3QyUyRjIwMjMwNDI4JTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyMzA0MjhUMDAwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9ZTIxMWRiYTc3YWJhOWRjNDRiMGI2YmUzOGI4ZWFhZDA5MjU5OWM1MTU3ZjYzMTQ0NDRjNWI5ZDg1NzQ3ZjVjZQ"
	principal := IAMUser(testAccount, "golden", Credentials{AccessKeyID: "ASIAR2TG44V6AS3ZZE7C", SecretAccessKey: "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q"})
	tests := map[string]struct {
		clusterID  string
		secret     string
		wantStatus int
		wantCode   string
	}{
		"verifies":              {clusterID: "test-cluster", wantStatus: http.StatusOK},
		"other cluster id":      {clusterID: "test-cluster-2", wantStatus: http.StatusForbidden, wantCode: "SignatureDoesNotMatch"},
		"other secret, same id": {clusterID: "test-cluster", secret: "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/R", wantStatus: http.StatusForbidden, wantCode: "SignatureDoesNotMatch"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := principal
			if tc.secret != "" {
				p.SecretAccessKey = tc.secret
			}
			s, err := New(Options{Principals: []Principal{p}, Now: func() time.Time { return time.Date(2023, 4, 28, 0, 5, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Start(ServeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			resp := send(t, http.DefaultClient, r.URL, golden, tc.clusterID, "application/json")
			a := decodeJSON(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%+v)", resp.StatusCode, tc.wantStatus, a.Error)
			}
			if tc.wantCode != "" && (a.Error == nil || a.Error.Code != tc.wantCode) {
				t.Fatalf("error = %+v, want code %s", a.Error, tc.wantCode)
			}
			if tc.wantCode == "" && (a.GetCallerIdentityResponse == nil || a.GetCallerIdentityResponse.GetCallerIdentityResult.Arn != p.ARN) {
				t.Fatalf("answer = %+v, want ARN %s", a.GetCallerIdentityResponse, p.ARN)
			}
		})
	}
}

func sdkPresignToken(t *testing.T, c Credentials, region, clusterID string) string {
	t.Helper()
	tok, err := SDKPresignToken(context.Background(), c, region, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Tokens made by the real producers verify, and are bound to their cluster.
func TestAcceptsRealTokens(t *testing.T) {
	users := testPrincipals()
	tests := map[string]struct {
		producer  string // "awscli" or "sdk"
		creds     Credentials
		region    string
		wantHost  string
		wantARN   string
		wantToken bool // X-Amz-Security-Token present
	}{
		"awscli global, long-term key":    {producer: "awscli", creds: userCreds, wantHost: "sts.amazonaws.com", wantARN: users[0].ARN},
		"awscli global, session":          {producer: "awscli", creds: roleCreds, wantHost: "sts.amazonaws.com", wantARN: users[1].ARN, wantToken: true},
		"awscli eu-west-1, long-term key": {producer: "awscli", creds: userCreds, region: "eu-west-1", wantHost: "sts.eu-west-1.amazonaws.com", wantARN: users[0].ARN},
		"awscli eu-west-1, session":       {producer: "awscli", creds: roleCreds, region: "eu-west-1", wantHost: "sts.eu-west-1.amazonaws.com", wantARN: users[1].ARN, wantToken: true},
		"awscli root":                     {producer: "awscli", creds: rootCreds, region: "us-west-2", wantHost: "sts.us-west-2.amazonaws.com", wantARN: users[2].ARN},
		"sdk us-east-1, long-term key":    {producer: "sdk", creds: userCreds, region: "us-east-1", wantHost: "sts.us-east-1.amazonaws.com", wantARN: users[0].ARN},
		"sdk eu-west-1, session":          {producer: "sdk", creds: roleCreds, region: "eu-west-1", wantHost: "sts.eu-west-1.amazonaws.com", wantARN: users[1].ARN, wantToken: true},
	}
	_, r := startFake(t, time.Now)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var tok string
			if tc.producer == "awscli" {
				tok = awsGetToken(t, tc.creds, tc.region, testCluster)
			} else {
				tok = sdkPresignToken(t, tc.creds, tc.region, testCluster)
			}
			raw, err := DecodeToken(tok)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if u.Host != tc.wantHost {
				t.Errorf("token host = %q, want %q", u.Host, tc.wantHost)
			}
			if got := u.Query().Has("X-Amz-Security-Token"); got != tc.wantToken {
				t.Errorf("X-Amz-Security-Token present = %v, want %v", got, tc.wantToken)
			}

			resp := send(t, http.DefaultClient, r.URL, tok, testCluster, "application/json")
			a := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusOK || a.GetCallerIdentityResponse == nil {
				t.Fatalf("status %d, error %+v; want 200", resp.StatusCode, a.Error)
			}
			if got := a.GetCallerIdentityResponse.GetCallerIdentityResult; got.Arn != tc.wantARN || got.Account != testAccount {
				t.Errorf("identity = %+v, want ARN %s account %s", got, tc.wantARN, testAccount)
			}

			resp = send(t, http.DefaultClient, r.URL, tok, "cluster-b", "application/json")
			if a := decodeJSON(t, resp); resp.StatusCode != http.StatusForbidden || a.Error == nil || a.Error.Code != "SignatureDoesNotMatch" {
				t.Errorf("other cluster id: status %d, error %+v; want 403 SignatureDoesNotMatch", resp.StatusCode, a.Error)
			}
		})
	}
}

// tamper rewrites one query parameter of a token's URL, keeping the rest
// byte for byte.
func tamper(t *testing.T, tok, param, value string) string {
	t.Helper()
	raw, err := DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	base, query, _ := strings.Cut(raw, "?")
	parts := strings.Split(query, "&")
	found := false
	for i, p := range parts {
		if k, _, _ := strings.Cut(p, "="); k == param {
			parts[i] = k + "=" + url.QueryEscape(value)
			found = true
		}
	}
	if !found {
		parts = append(parts, param+"="+url.QueryEscape(value))
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(base+"?"+strings.Join(parts, "&")))
}

func dropParam(t *testing.T, tok, param string) string {
	t.Helper()
	raw, err := DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	base, query, _ := strings.Cut(raw, "?")
	var kept []string
	for _, p := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(p, "="); k != param {
			kept = append(kept, p)
		}
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(base+"?"+strings.Join(kept, "&")))
}

func TestRejects(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	sign := func(tr TokenRequest) string {
		t.Helper()
		if tr.SignedAt.IsZero() {
			tr.SignedAt = now
		}
		if tr.ClusterID == "" && !tr.OmitClusterID {
			tr.ClusterID = testCluster
		}
		tok, err := SignToken(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(TokenRequest{Credentials: userCreds})
	session := sign(TokenRequest{Credentials: roleCreds, Host: "sts.eu-west-1.amazonaws.com"})
	expiring := roleCreds
	expiring.AccessKeyID = "ASIAEXPIRINGEXAMPLE1"

	tests := map[string]struct {
		token      string
		clusterID  string // testCluster when empty
		noHeader   bool
		setup      func(*Server)
		wantStatus int
		wantCode   string
	}{
		"valid long-term key":            {token: good, wantStatus: 200},
		"valid session key":              {token: session, wantStatus: 200},
		"valid at exactly +15 minutes":   {token: sign(TokenRequest{Credentials: userCreds, SignedAt: now.Add(-15 * time.Minute)}), wantStatus: 200},
		"valid 15 minutes in the future": {token: sign(TokenRequest{Credentials: userCreds, SignedAt: now.Add(15 * time.Minute)}), wantStatus: 200},
		"other cluster id":               {token: good, clusterID: "cluster-b", wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"cluster id header absent":       {token: good, noHeader: true, wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"cluster id not signed":          {token: sign(TokenRequest{Credentials: userCreds, OmitClusterID: true}), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"tampered signature":             {token: tamper(t, good, "X-Amz-Signature", strings.Repeat("0", 64)), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"tampered action":                {token: tamper(t, good, "Action", "GetSessionToken"), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"parameter added after signing":  {token: tamper(t, good, "X-Amz-Expires", "900"), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"wrong secret":                   {token: sign(TokenRequest{Credentials: Credentials{AccessKeyID: userCreds.AccessKeyID, SecretAccessKey: "wrong"}}), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"unknown key":                    {token: sign(TokenRequest{Credentials: Credentials{AccessKeyID: "AKIAUNKNOWNEXAMPLE00", SecretAccessKey: "x"}}), wantStatus: 403, wantCode: "InvalidClientTokenId"},
		"expired date":                   {token: sign(TokenRequest{Credentials: userCreds, SignedAt: now.Add(-15*time.Minute - time.Second)}), wantStatus: 403, wantCode: "ExpiredToken"},
		"date too far in the future":     {token: sign(TokenRequest{Credentials: userCreds, SignedAt: now.Add(15*time.Minute + time.Second)}), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"missing session token":          {token: sign(TokenRequest{Credentials: Credentials{AccessKeyID: roleCreds.AccessKeyID, SecretAccessKey: roleCreds.SecretAccessKey}}), wantStatus: 403, wantCode: "InvalidClientTokenId"},
		"wrong session token":            {token: sign(TokenRequest{Credentials: Credentials{AccessKeyID: roleCreds.AccessKeyID, SecretAccessKey: roleCreds.SecretAccessKey, SessionToken: "other"}}), wantStatus: 403, wantCode: "InvalidClientTokenId"},
		"session token on long-term key": {token: sign(TokenRequest{Credentials: Credentials{AccessKeyID: userCreds.AccessKeyID, SecretAccessKey: userCreds.SecretAccessKey, SessionToken: "x"}}), wantStatus: 403, wantCode: "InvalidClientTokenId"},
		"session token removed":          {token: dropParam(t, session, "X-Amz-Security-Token"), wantStatus: 403, wantCode: "InvalidClientTokenId"},
		"session credentials expired": {
			token: sign(TokenRequest{Credentials: expiring}),
			setup: func(s *Server) {
				p := AssumedRole(testAccount, "Dev", "carol", expiring)
				p.Expiration = now.Add(-time.Minute)
				_ = s.AddPrincipal(p)
			},
			wantStatus: 403, wantCode: "ExpiredToken",
		},
		"region scope does not match host": {token: sign(TokenRequest{Credentials: userCreds, Host: "sts.eu-west-1.amazonaws.com", Region: "us-west-2"}), wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		"signature missing":                {token: dropParam(t, good, "X-Amz-Signature"), wantStatus: 400, wantCode: "IncompleteSignature"},
		"no authentication at all": {
			token:      TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte("https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15")),
			wantStatus: 403, wantCode: "MissingAuthenticationToken",
		},
		"lower-case credential duplicate is just another signed parameter": {
			// CVE-2022-2385: STS reads X-Amz-Credential with its exact case.
			token: tamper(t, good, "x-amz-credential", "AKIAEVE/20260301/us-east-1/sts/aws4_request"), wantStatus: 403, wantCode: "SignatureDoesNotMatch",
		},
		"malformed query": {token: TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte("https://sts.amazonaws.com/?Action=%zz")), wantStatus: 400, wantCode: "MalformedQueryString"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, r := startFake(t, func() time.Time { return now })
			if tc.setup != nil {
				tc.setup(s)
			}
			clusterID := tc.clusterID
			if clusterID == "" && !tc.noHeader {
				clusterID = testCluster
			}
			resp := send(t, http.DefaultClient, r.URL, tc.token, clusterID, "application/json")
			a := decodeJSON(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%+v)", resp.StatusCode, tc.wantStatus, a.Error)
			}
			gotCode := ""
			if a.Error != nil {
				gotCode = a.Error.Code
			}
			if gotCode != tc.wantCode {
				t.Fatalf("code = %q (%+v), want %q", gotCode, a.Error, tc.wantCode)
			}
			wantOutcome := tc.wantCode
			if wantOutcome == "" {
				wantOutcome = "ok"
			}
			if got := s.Stats().Outcomes[wantOutcome]; got != 1 {
				t.Errorf("Stats().Outcomes[%q] = %d, want 1", wantOutcome, got)
			}
		})
	}
}

// STS dispatches the action only after authentication.
func TestActionIsCheckedAfterSignature(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		rawURL     string
		wantStatus int
		wantCode   string
	}{
		"other action":    {rawURL: "https://sts.amazonaws.com/?Action=GetSessionToken&Version=2011-06-15", wantStatus: 400, wantCode: "InvalidAction"},
		"no action":       {rawURL: "https://sts.amazonaws.com/?Version=2011-06-15", wantStatus: 400, wantCode: "MissingAction"},
		"other version":   {rawURL: "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2099-01-01", wantStatus: 400, wantCode: "InvalidAction"},
		"without version": {rawURL: "https://sts.amazonaws.com/?Action=GetCallerIdentity", wantStatus: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, r := startFake(t, func() time.Time { return now })
			req, err := http.NewRequest(http.MethodGet, tc.rawURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(ClusterIDHeader, testCluster)
			creds := aws.Credentials{AccessKeyID: userCreds.AccessKeyID, SecretAccessKey: userCreds.SecretAccessKey}
			signed, _, err := newSDKSigner().PresignHTTP(context.Background(), creds, req, emptyPayloadHash, "sts", "us-east-1", now)
			if err != nil {
				t.Fatal(err)
			}
			tok := TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(signed))
			resp := send(t, http.DefaultClient, r.URL, tok, testCluster, "application/json")
			a := decodeJSON(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%+v)", resp.StatusCode, tc.wantStatus, a.Error)
			}
			if tc.wantCode != "" && (a.Error == nil || a.Error.Code != tc.wantCode) {
				t.Fatalf("error = %+v, want %s", a.Error, tc.wantCode)
			}
		})
	}
}
