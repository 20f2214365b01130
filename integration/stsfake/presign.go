package stsfake

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TokenPrefix starts every EKS bearer token.
const TokenPrefix = "k8s-aws-v1."

// TokenRequest describes a token to sign for tests and the demo.
type TokenRequest struct {
	Credentials Credentials
	// Host is the STS host to sign for (sts.amazonaws.com when empty).
	Host string
	// Region is the signing region; derived from Host when empty.
	Region string
	// ClusterID is signed in as x-k8s-aws-id.
	ClusterID string
	// SignedAt is X-Amz-Date.
	SignedAt time.Time
	// OmitClusterID leaves x-k8s-aws-id out of the signature, to test that
	// verifiers refuse such tokens.
	OmitClusterID bool
}

// SignToken makes a k8s-aws-v1 token the way aws-iam-authenticator does,
// with the AWS SDK's own SigV4 presigner (not the stand-in's verifier code,
// so the two check each other).
func SignToken(ctx context.Context, tr TokenRequest) (string, error) {
	host := tr.Host
	if host == "" {
		host = "sts.amazonaws.com"
	}
	region := tr.Region
	if region == "" {
		region = regionOfHost(host)
	}
	if region == "" {
		return "", fmt.Errorf("stsfake: no region for host %q", host)
	}
	if tr.ClusterID == "" && !tr.OmitClusterID {
		return "", errors.New("stsfake: cluster id is required")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://"+host+"/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=60", nil)
	if err != nil {
		return "", fmt.Errorf("stsfake: %w", err)
	}
	if !tr.OmitClusterID {
		req.Header.Set(ClusterIDHeader, tr.ClusterID)
	}
	creds := aws.Credentials{
		AccessKeyID:     tr.Credentials.AccessKeyID,
		SecretAccessKey: tr.Credentials.SecretAccessKey,
		SessionToken:    tr.Credentials.SessionToken,
	}
	signed, _, err := v4.NewSigner().PresignHTTP(ctx, creds, req, emptyPayloadHash, "sts", region, tr.SignedAt)
	if err != nil {
		return "", fmt.Errorf("stsfake: presign: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(signed)), nil
}

// DecodeToken returns the presigned URL inside a token. It checks nothing
// else: that is the verifier's job.
func DecodeToken(tok string) (string, error) {
	payload, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok {
		return "", errors.New("stsfake: not a k8s-aws-v1 token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("stsfake: token payload: %w", err)
	}
	return string(raw), nil
}
