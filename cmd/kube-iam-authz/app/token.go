package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsarn "github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// Exec credential API versions kubectl may ask for.
const (
	execV1      = "client.authentication.k8s.io/v1"
	execV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// expiryCushion is taken off the token's real lifetime in
// expirationTimestamp, so that kubectl asks for a new token before a
// request could reach STS with one that just died (the reference's 14 of
// 15 minutes).
const expiryCushion = time.Minute

// defaultTokenRegion is used when neither the flag nor the SDK config names
// a region, like aws-iam-authenticator (minus its IMDS lookup).
const defaultTokenRegion = "us-east-1"

// tokenOptions are the token command's flags.
type tokenOptions struct {
	ClusterID string
	// ClusterName is --cluster-name, the flag aws eks get-token (and so every
	// EKS kubeconfig) passes; it means the cluster id.
	ClusterName string
	Region      string
	RoleARN     string
	SessionName string
	Profile     string
	Cache       bool
}

// Validate reports every problem at once.
// Complete fills ClusterID from its alias --cluster-name.
func (o *tokenOptions) Complete() {
	if o.ClusterID == "" {
		o.ClusterID = o.ClusterName
	}
}

// Validate reports every problem at once (after Complete).
func (o tokenOptions) Validate() error {
	var errs []error
	if o.ClusterName != "" && o.ClusterID != o.ClusterName {
		errs = append(errs, fmt.Errorf("--cluster-name %q and --cluster-id %q differ: give one of them (they are the same setting)", o.ClusterName, o.ClusterID))
	}
	switch {
	case o.ClusterID == "":
		errs = append(errs, errors.New("--cluster-id is required (or --cluster-name, as aws eks get-token takes it)"))
	case len(o.ClusterID) > 256 || strings.IndexFunc(o.ClusterID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		// It travels as the x-k8s-aws-id header value: no spaces or
		// control characters, bounded.
		errs = append(errs, errors.New("--cluster-id must be 1 to 256 printable ASCII characters without spaces"))
	}
	if o.Region != "" && !regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`).MatchString(o.Region) {
		errs = append(errs, fmt.Errorf("--region %q is not a region name", o.Region))
	}
	if o.RoleARN != "" {
		a, err := awsarn.Parse(o.RoleARN)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--role-arn: %w", err))
		case a.Service != "iam" || !strings.HasPrefix(a.Resource, "role/") || !identity.IsPartition(a.Partition):
			errs = append(errs, fmt.Errorf("--role-arn %q is not an IAM role ARN", o.RoleARN))
		}
	}
	if o.SessionName != "" {
		if o.RoleARN == "" {
			errs = append(errs, errors.New("--session-name needs --role-arn"))
		}
		// STS's RoleSessionName constraint.
		if !regexp.MustCompile(`^[\w+=,.@-]{2,64}$`).MatchString(o.SessionName) {
			errs = append(errs, fmt.Errorf("--session-name %q must be 2 to 64 of [A-Za-z0-9_+=,.@-]", o.SessionName))
		}
	}
	return errors.Join(errs...)
}

// tokenEnv is what the command takes from its surroundings, injectable for
// tests.
type tokenEnv struct {
	now     func() time.Time
	getenv  func(string) string
	homeDir func() (string, error)
}

func newTokenCommand(streams Streams) *cobra.Command {
	return newTokenCommandWith(streams, tokenEnv{now: time.Now, getenv: os.Getenv, homeDir: os.UserHomeDir})
}

func newTokenCommandWith(streams Streams, env tokenEnv) *cobra.Command {
	var o tokenOptions
	cmd := &cobra.Command{
		Use:   "token --cluster-id ID",
		Short: "Print an ExecCredential with a k8s-aws-v1 token (kubectl exec plugin)",
		Long: `Presigns STS GetCallerIdentity with the caller's AWS credentials (environment,
shared config profiles, SSO, IMDS; optionally an assumed role) and prints one
line of ExecCredential JSON for kubectl. The token is the same kind that
"aws eks get-token" prints.`,
		Example: `  # A kubeconfig user's exec plugin (what kubectl runs):
  kube-iam-authz token --cluster-id my-cluster-id --region eu-west-1

  # An EKS kubeconfig, with only the command changed from aws eks get-token:
  kube-iam-authz token --cluster-name my-cluster-id --region eu-west-1

  # As a role, reusing a token until a minute before it expires:
  kube-iam-authz token --cluster-id my-cluster-id --role-arn arn:aws:iam::111122223333:role/Dev --cache`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Complete()
			if err := o.Validate(); err != nil {
				return err
			}
			return runToken(cmd.Context(), o, env, streams)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ClusterID, "cluster-id", "", "cluster id the server expects in x-k8s-aws-id (required)")
	f.StringVar(&o.ClusterName, "cluster-name", "", "the same as --cluster-id, under the name aws eks get-token uses: an EKS kubeconfig works by changing only the command")
	f.StringVar(&o.Region, "region", "", "STS region (default: SDK config, else "+defaultTokenRegion+")")
	f.StringVar(&o.RoleARN, "role-arn", "", "IAM role to assume before signing")
	f.StringVar(&o.SessionName, "session-name", "", "role session name for --role-arn (default: chosen by the SDK)")
	f.StringVar(&o.Profile, "profile", "", "AWS shared config profile (default: AWS_PROFILE or default)")
	f.BoolVar(&o.Cache, "cache", false, "reuse a token from ~/.kube/cache/kube-iam-authz until a minute before it expires")
	return cmd
}

func runToken(ctx context.Context, o tokenOptions, env tokenEnv, streams Streams) error {
	apiVersion := execAPIVersion(env.getenv("KUBERNETES_EXEC_INFO"))
	cfg, err := loadTokenConfig(ctx, o)
	if err != nil {
		return err
	}
	var cache *tokenCache
	var cacheKey string
	if o.Cache {
		cache, err = openTokenCache(env.homeDir, env.now)
		if err != nil {
			warn(streams.Err, "token cache disabled: %v", err)
		} else {
			cacheKey = tokenCacheKey(o, cfg.Region, env.getenv)
			if tok, exp, err := cache.load(cacheKey); err == nil {
				return writeExecCredential(streams.Out, apiVersion, tok, exp)
			} else if !errors.Is(err, errCacheMiss) {
				warn(streams.Err, "ignoring token cache: %v", err)
			}
		}
	}
	gen, err := token.NewGenerator(token.GeneratorOptions{Config: cfg, Now: env.now})
	if err != nil {
		return err
	}
	g, err := gen.Generate(ctx, o.ClusterID)
	if err != nil {
		return err
	}
	exp := g.Expiry.Add(-expiryCushion).UTC().Truncate(time.Second)
	if !exp.After(env.now()) {
		return fmt.Errorf("the AWS credentials expire at %s, too soon to issue a token", g.Expiry.UTC().Format(time.RFC3339))
	}
	if cache != nil {
		if err := cache.store(cacheKey, g.Token, exp); err != nil {
			warn(streams.Err, "could not cache the token: %v", err)
		}
	}
	return writeExecCredential(streams.Out, apiVersion, g.Token, exp)
}

// loadTokenConfig resolves credentials and region the way every AWS tool
// does (environment, shared config and credentials files, SSO, IMDS), then
// wraps them in an AssumeRole provider for --role-arn.
func loadTokenConfig(ctx context.Context, o tokenOptions) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultTokenRegion
	}
	if o.RoleARN != "" {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), o.RoleARN, func(a *stscreds.AssumeRoleOptions) {
			if o.SessionName != "" {
				a.RoleSessionName = o.SessionName
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	return cfg, nil
}

// execAPIVersion picks the ExecCredential version: the one kubectl names in
// KUBERNETES_EXEC_INFO when it is v1 or v1beta1, else v1beta1 (which every
// kubectl since 1.11 reads). Unlike the reference, a JSON object without
// apiVersion does not yield an empty apiVersion.
func execAPIVersion(info string) string {
	var typeMeta struct {
		APIVersion string `json:"apiVersion"`
	}
	if info != "" && json.Unmarshal([]byte(info), &typeMeta) == nil {
		switch typeMeta.APIVersion {
		case execV1, execV1beta1:
			return typeMeta.APIVersion
		}
	}
	return execV1beta1
}

// writeExecCredential prints one line of ExecCredential JSON.
func writeExecCredential(w io.Writer, apiVersion, tok string, exp time.Time) error {
	ts := metav1.NewTime(exp)
	var v any
	if apiVersion == execV1 {
		v = clientauthv1.ExecCredential{
			TypeMeta: metav1.TypeMeta{Kind: "ExecCredential", APIVersion: apiVersion},
			Status:   &clientauthv1.ExecCredentialStatus{ExpirationTimestamp: &ts, Token: tok},
		}
	} else {
		v = clientauthv1beta1.ExecCredential{
			TypeMeta: metav1.TypeMeta{Kind: "ExecCredential", APIVersion: apiVersion},
			Status:   &clientauthv1beta1.ExecCredentialStatus{ExpirationTimestamp: &ts, Token: tok},
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

func warn(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "kube-iam-authz token: warning: "+format+"\n", args...)
}

// kubeCacheDir is where the token cache lives, beside kubectl's own caches.
func kubeCacheDir(homeDir func() (string, error)) (string, error) {
	home, err := homeDir()
	if err != nil {
		return "", err
	}
	if home == "" {
		return "", errors.New("no home directory")
	}
	return filepath.Join(home, ".kube", "cache", "kube-iam-authz"), nil
}
