package token

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

func staticConfig(region, akid, secret, session string) aws.Config {
	return aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, session),
	}
}

// TestGenerateReferenceVector is reference §7.1: aws-iam-authenticator's
// golden token, whose signature was recomputed independently.
func TestGenerateReferenceVector(t *testing.T) {
	g, err := NewGenerator(GeneratorOptions{
		Config: staticConfig("us-west-2", "ASIAR2TG44V6AS3ZZE7C", "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q", ""),
		Now:    func() time.Time { return time.Unix(1682640000, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Generate(context.Background(), "test-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != referenceGoldenToken {
		gotURL, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(got.Token, Prefix))
		wantURL, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(referenceGoldenToken, Prefix))
		t.Fatalf("token differs from the reference vector:\n got %s\nwant %s", gotURL, wantURL)
	}
	wantSigned := time.Date(2023, 4, 28, 0, 0, 0, 0, time.UTC)
	if !got.SignedAt.Equal(wantSigned) || !got.Expiry.Equal(wantSigned.Add(15*time.Minute)) {
		t.Errorf("SignedAt, Expiry = %s, %s", got.SignedAt, got.Expiry)
	}
}

func TestGenerateParses(t *testing.T) {
	signed := time.Date(2026, 6, 1, 11, 59, 30, 500e6, time.UTC)
	tests := map[string]struct {
		partition   string
		cfg         aws.Config
		wantHost    string
		wantSession bool
		wantExpiry  time.Time
	}{
		"regional, long-term key": {
			cfg:      staticConfig("eu-west-1", stsfixture.ExampleAccessKeyID, "secret", ""),
			wantHost: "sts.eu-west-1.amazonaws.com", wantExpiry: signed.Truncate(time.Second).Add(15 * time.Minute),
		},
		"us-east-1 is regional in SDK v2": {
			cfg:      staticConfig("us-east-1", stsfixture.ExampleAccessKeyID, "secret", ""),
			wantHost: "sts.us-east-1.amazonaws.com", wantExpiry: signed.Truncate(time.Second).Add(15 * time.Minute),
		},
		"session token": {
			cfg:      staticConfig("us-west-2", "ASIAIOSFODNN7EXAMPLE", "secret", fakeSessionToken),
			wantHost: "sts.us-west-2.amazonaws.com", wantSession: true,
			wantExpiry: signed.Truncate(time.Second).Add(15 * time.Minute),
		},
		"fips and dual-stack from the config": {
			cfg: func() aws.Config {
				c := staticConfig("us-east-2", stsfixture.ExampleAccessKeyID, "secret", "")
				c.ConfigSources = []any{endpointFlags{fips: aws.FIPSEndpointStateEnabled, dual: aws.DualStackEndpointStateEnabled}}
				return c
			}(),
			wantHost: "sts-fips.us-east-2.api.aws", wantExpiry: signed.Truncate(time.Second).Add(15 * time.Minute),
		},
		"china": {
			partition: "aws-cn",
			cfg:       staticConfig("cn-northwest-1", stsfixture.ExampleAccessKeyID, "secret", ""),
			wantHost:  "sts.cn-northwest-1.amazonaws.com.cn", wantExpiry: signed.Truncate(time.Second).Add(15 * time.Minute),
		},
		"credentials expiring before 15 minutes cap the expiry": {
			cfg:      aws.Config{Region: "us-west-2", Credentials: expiringCredentials{expires: signed.Add(7 * time.Minute)}},
			wantHost: "sts.us-west-2.amazonaws.com", wantSession: true, wantExpiry: signed.Add(7 * time.Minute),
		},
		"credentials expiring later do not extend it": {
			cfg:      aws.Config{Region: "us-west-2", Credentials: expiringCredentials{expires: signed.Add(time.Hour)}},
			wantHost: "sts.us-west-2.amazonaws.com", wantSession: true,
			wantExpiry: signed.Truncate(time.Second).Add(15 * time.Minute),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g, err := NewGenerator(GeneratorOptions{Config: tc.cfg, Now: func() time.Time { return signed }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.Generate(context.Background(), "prod-eu")
			if err != nil {
				t.Fatal(err)
			}
			if !got.SignedAt.Equal(signed.Truncate(time.Second)) || !got.Expiry.Equal(tc.wantExpiry) {
				t.Errorf("SignedAt, Expiry = %s, %s; want %s, %s", got.SignedAt, got.Expiry, signed.Truncate(time.Second), tc.wantExpiry)
			}
			p := newTestParser(t, Options{Partition: tc.partition, Now: func() time.Time { return signed }})
			pre, err := p.Parse(got.Token)
			if err != nil {
				t.Fatalf("our parser refuses our token: %v", err)
			}
			if pre.Host != tc.wantHost || !pre.SignedAt.Equal(got.SignedAt) {
				t.Errorf("Host, SignedAt = %s, %s", pre.Host, pre.SignedAt)
			}
			q := pre.URL.Query()
			if q.Get("X-Amz-SignedHeaders") != "host;x-k8s-aws-id" || q.Get("X-Amz-Expires") != "60" {
				t.Errorf("query = %v", q)
			}
			if has := q.Has("X-Amz-Security-Token"); has != tc.wantSession {
				t.Errorf("session token present = %v", has)
			}
		})
	}
}

// endpointFlags is an SDK config source that turns on FIPS and dual-stack,
// as AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT would.
type endpointFlags struct {
	fips aws.FIPSEndpointState
	dual aws.DualStackEndpointState
}

func (e endpointFlags) GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error) {
	return e.fips, true, nil
}

func (e endpointFlags) GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error) {
	return e.dual, true, nil
}

// expiringCredentials are session credentials with a fixed expiry.
type expiringCredentials struct{ expires time.Time }

func (e expiringCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{
		AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: "secret", SessionToken: "session",
		CanExpire: true, Expires: e.expires,
	}, nil
}

type failingCredentials struct{}

func (failingCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("no credentials here")
}

func TestGenerateErrors(t *testing.T) {
	tests := map[string]struct {
		opts       GeneratorOptions
		clusterID  string
		wantNewErr string
		wantGenErr string
	}{
		"no region":        {opts: GeneratorOptions{Config: aws.Config{Credentials: failingCredentials{}}}, wantNewErr: "region is empty"},
		"nothing at all":   {wantNewErr: "region is empty\nno credentials provider"},
		"empty cluster id": {opts: GeneratorOptions{Config: staticConfig("us-west-2", stsfixture.ExampleAccessKeyID, "s", "")}, wantGenErr: "cluster id is empty"},
		"credentials fail": {opts: GeneratorOptions{Config: aws.Config{Region: "us-west-2", Credentials: failingCredentials{}}}, clusterID: "c", wantGenErr: "no credentials here"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g, err := NewGenerator(tc.opts)
			if tc.wantNewErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantNewErr) {
					t.Fatalf("NewGenerator err = %v, want %q", err, tc.wantNewErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.Generate(context.Background(), tc.clusterID)
			if err == nil || !strings.Contains(err.Error(), tc.wantGenErr) {
				t.Fatalf("Generate err = %v, want %q", err, tc.wantGenErr)
			}
		})
	}
}
