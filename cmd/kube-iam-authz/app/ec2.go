package app

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/mapping"
	"github.com/kube-iam-authz/kube-iam-authz/mapping/ec2dns"
)

// EC2Options configure {{EC2PrivateDNSName}} lookups (serve and map). They
// are off by default: turning them on needs AWS credentials allowed
// ec2:DescribeInstances and a region, and mappings for human users do not
// use the template. With them off, an entry using it answers 503
// (mapping_unavailable) rather than guessing.
type EC2Options struct {
	Lookups  bool   `json:"ec2-lookups"`
	Region   string `json:"ec2-region"`
	Endpoint string `json:"ec2-endpoint"`
}

// AddFlags binds the options.
func (o *EC2Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Lookups, "ec2-lookups", o.Lookups, "Resolve {{EC2PrivateDNSName}} with EC2 DescribeInstances (AWS default credential chain; needs ec2:DescribeInstances).")
	fs.StringVar(&o.Region, "ec2-region", o.Region, "`REGION` of the EC2 API for --ec2-lookups (default: the AWS SDK's, e.g. AWS_REGION).")
	fs.StringVar(&o.Endpoint, "ec2-endpoint", o.Endpoint, "EC2 API base `URL` for --ec2-lookups (a VPC endpoint, or a local stand-in).")
}

// resolver builds the EC2 resolver, or returns nil when lookups are off.
func (o *EC2Options) resolver(ctx context.Context, reg prometheus.Registerer, log *zap.Logger) (mapping.DNSResolver, error) {
	if !o.Lookups {
		return nil, nil
	}
	client, err := ec2dns.NewClient(ctx, ec2dns.ClientOptions{Region: o.Region, BaseEndpoint: o.Endpoint})
	if err != nil {
		return nil, fmt.Errorf("--ec2-lookups: %w", err)
	}
	opts := ec2dns.Options{Client: client, Logger: log}
	if reg != nil {
		if opts.Metrics, err = ec2dns.NewMetrics(reg); err != nil {
			return nil, err
		}
	}
	r, err := ec2dns.New(opts)
	if err != nil {
		return nil, err
	}
	return r, nil
}
