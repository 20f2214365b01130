package ec2dns

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// ClientOptions configures the EC2 client NewClient builds.
type ClientOptions struct {
	// Region of the EC2 endpoint (the cluster's nodes' region). Required
	// unless the SDK's default chain (AWS_REGION, shared config) has one.
	Region string
	// BaseEndpoint overrides the endpoint, e.g. a VPC interface endpoint,
	// or a local EC2 stand-in in tests (http://127.0.0.1:PORT).
	BaseEndpoint string
	// HTTPClient overrides the SDK's HTTP client.
	HTTPClient *http.Client
	// RetryMaxAttempts overrides the SDK's retry count (default 3);
	// Options.CallTimeout bounds the retries in any case.
	RetryMaxAttempts int
}

// NewClient builds an EC2 client with the SDK's default credential chain
// (environment, shared config, web identity / IRSA, container or instance
// role). The caller's identity needs ec2:DescribeInstances.
func NewClient(ctx context.Context, opts ClientOptions) (*ec2.Client, error) {
	var loaders []func(*config.LoadOptions) error
	if opts.Region != "" {
		loaders = append(loaders, config.WithRegion(opts.Region))
	}
	if opts.HTTPClient != nil {
		loaders = append(loaders, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return nil, fmt.Errorf("ec2dns: loading AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("ec2dns: no AWS region configured for EC2")
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if opts.BaseEndpoint != "" {
			o.BaseEndpoint = aws.String(opts.BaseEndpoint)
		}
		if opts.RetryMaxAttempts > 0 {
			o.RetryMaxAttempts = opts.RetryMaxAttempts
		}
	}), nil
}
