package authz

import (
	"errors"
	"fmt"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// Options are the parts of the request path the caller chooses. Each field
// configures one step of doc.go's walk; New builds them in the opposite
// order (the innermost call first) and connects them.
type Options struct {
	// Token is the strict local parse of a k8s-aws-v1 token (step 3): the
	// partition and regions whose STS hosts a token may name.
	Token token.Options
	// STS is the one outbound call (step 4). New registers its metrics on
	// Check.Registerer; leave STS.Metrics nil.
	STS sts.Options
	// Cache bounds the verification cache (step 2). New gives it
	// Check.Registerer's metrics and Check.Logger; leave Cache.Metrics and
	// Cache.Logger nil.
	Cache cache.Options
	// Check is the Check service (steps 1, 5 and 6): the clusters with their
	// mappers (the caller builds the mapping sources: files, a ConfigMap),
	// the proxy's own credential, impersonation, logging and metrics. New
	// sets Check.Verifier; leave it nil.
	Check check.Options
}

// Validate reports the fields New sets itself; each step validates its own
// options when New builds it.
func (o *Options) Validate() error {
	var errs []error
	if o.Check.Verifier != nil {
		errs = append(errs, errors.New("authz: Check.Verifier is the path's own verification cache; leave it nil"))
	}
	if o.STS.Metrics != nil || o.Cache.Metrics != nil || o.Cache.Logger != nil {
		errs = append(errs, errors.New("authz: STS.Metrics, Cache.Metrics and Cache.Logger come from Check.Registerer and Check.Logger; leave them nil"))
	}
	if o.Check.Registerer == nil || o.Check.Logger == nil {
		errs = append(errs, errors.New("authz: Check.Registerer and Check.Logger are required"))
	}
	return errors.Join(errs...)
}

// New assembles the request path and returns the Check service that runs
// it: Check (headers, cluster) → cache → verify (token parse, then STS) →
// mapping → response. Register it on a gRPC server (authz/server does).
func New(o Options) (*check.Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	reg, log := o.Check.Registerer, o.Check.Logger

	// Step 3: the strict local parse; nothing leaves the process for a
	// token it rejects.
	parser, err := token.NewParser(o.Token)
	if err != nil {
		return nil, err
	}
	// Step 4: the one outbound call, with our own x-k8s-aws-id.
	stsMetrics, err := sts.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	so := o.STS
	so.Metrics = stsMetrics
	client, err := sts.New(so)
	if err != nil {
		return nil, err
	}
	// Step 2: the verification cache in front of parse + STS. Its policy
	// (what a rejection or an outage means) is the Verification column of
	// authz/outcome, not an option.
	cacheMetrics, err := cache.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	co := o.Cache
	co.Metrics, co.Logger = cacheMetrics, log
	verifier, err := cache.New(verify.New(parser, client), co)
	if err != nil {
		return nil, fmt.Errorf("verification cache: %w", err)
	}
	// Steps 1, 5, 6: headers and cluster, mapping, the response.
	checkOpts := o.Check
	checkOpts.Verifier = verifier
	return check.New(checkOpts)
}
