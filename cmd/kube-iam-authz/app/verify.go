package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// maxStdinBytes bounds what verify reads from stdin: the largest token the
// parser can be configured to accept, wrapped in an ExecCredential.
const maxStdinBytes = token.MaxMaxTokenBytes + 64<<10

// VerifyOptions are the flags of `kube-iam-authz verify`.
type VerifyOptions struct {
	ClusterID   string
	Partition   string
	STSEndpoint string
	STSCAFile   string
	STSTimeout  time.Duration
	// Token is the argument: a token, "-" or empty for stdin.
	Token string
}

// Validate reports every problem with the options.
func (o VerifyOptions) Validate() error {
	var errs []error
	if o.ClusterID == "" {
		errs = append(errs, errors.New("--cluster-id is required: a token is only valid for the cluster it was signed for"))
	}
	if !identity.IsPartition(o.Partition) {
		errs = append(errs, fmt.Errorf("--partition %q is not one of %s", o.Partition, strings.Join(identity.Partitions(), ", ")))
	}
	if err := o.stsOptions().Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.STSTimeout <= 0 {
		errs = append(errs, errors.New("--sts-timeout must be positive"))
	}
	return errors.Join(errs...)
}

func (o VerifyOptions) stsOptions() sts.Options {
	return sts.Options{Endpoint: o.STSEndpoint, CAFile: o.STSCAFile, Timeout: o.STSTimeout}
}

// verifiedIdentity is what verify prints.
type verifiedIdentity struct {
	ARN          string    `json:"arn"`
	CanonicalARN string    `json:"canonicalArn"`
	AccountID    string    `json:"accountId"`
	UserID       string    `json:"userId"`
	PrincipalID  string    `json:"principalId"`
	SessionName  string    `json:"sessionName"`
	AccessKeyID  string    `json:"accessKeyId"`
	Kind         string    `json:"kind"`
	STSRegion    string    `json:"stsRegion"`
	Expiry       time.Time `json:"expiry"`
}

func newVerifyCommand(streams Streams) *cobra.Command {
	o := VerifyOptions{Partition: token.DefaultPartition, STSTimeout: sts.DefaultTimeout}
	cmd := &cobra.Command{
		Use:   "verify [TOKEN|-]",
		Short: "Verify a k8s-aws-v1 token with STS and print the identity",
		Long: `Verify checks a token exactly as the server does (strict local checks, then
one STS GetCallerIdentity call with our cluster id) and prints the verified
identity as JSON. The token is read from the argument, or from stdin when
the argument is "-" or absent; stdin may also hold the ExecCredential JSON
printed by "aws eks get-token". Exit status 0 means valid; otherwise 1 with
a one-line reason on stderr. The token itself is never printed.`,
		Example: `  # A token as kubectl would send it, straight from aws eks get-token:
  aws eks get-token --cluster-name my-cluster-id | kube-iam-authz verify --cluster-id my-cluster-id

  # Through a VPC endpoint with its own CA:
  kube-iam-authz verify --cluster-id my-cluster-id --sts-endpoint https://vpce-0123.sts.eu-west-1.vpce.amazonaws.com --sts-ca-file ca.pem -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Token = args[0]
			}
			return runVerify(cmd, streams, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ClusterID, "cluster-id", o.ClusterID, "cluster id the token must be signed for (x-k8s-aws-id)")
	f.StringVar(&o.Partition, "partition", o.Partition, "AWS partition whose STS hosts are accepted")
	f.StringVar(&o.STSEndpoint, "sts-endpoint", o.STSEndpoint, "send STS calls to this base URL (VPC endpoint); the token's host stays the Host header")
	f.StringVar(&o.STSCAFile, "sts-ca-file", o.STSCAFile, "extra CA certificates (PEM) to trust for STS")
	f.DurationVar(&o.STSTimeout, "sts-timeout", o.STSTimeout, "timeout of the STS call")
	return cmd
}

func runVerify(cmd *cobra.Command, streams Streams, o VerifyOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	tok := o.Token
	if tok == "" || tok == "-" {
		var err error
		if tok, err = readToken(streams.In); err != nil {
			return &exitError{code: 1, err: err}
		}
	}
	parser, err := token.NewParser(token.Options{Partition: o.Partition})
	if err != nil {
		return err
	}
	client, err := sts.New(o.stsOptions())
	if err != nil {
		return err
	}
	res, err := verify.New(parser, client).Verify(cmd.Context(), tok, o.ClusterID)
	if err != nil {
		// Parser and STS errors never quote the token or URL; the
		// fingerprint lets an operator match this line with server logs.
		msg := oneLine(err.Error())
		if hint := sts.ClusterIDHint(err, "--cluster-id", o.ClusterID); hint != "" {
			msg += "; " + hint
		}
		return &exitError{code: 1, err: fmt.Errorf("token %s is not valid: %s", token.Fingerprint(tok), msg)}
	}
	id := res.Identity
	out, err := json.MarshalIndent(verifiedIdentity{
		ARN: id.ARN, CanonicalARN: id.CanonicalARN, AccountID: id.AccountID, UserID: id.UserID,
		PrincipalID: id.PrincipalID, SessionName: id.SessionName, AccessKeyID: id.AccessKeyID,
		Kind: string(id.Kind), STSRegion: res.STSRegion, Expiry: res.Expiry.UTC(),
	}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(streams.Out, "%s\n", out)
	return err
}

// readToken reads a token, or the ExecCredential JSON `aws eks get-token`
// prints, from r.
func readToken(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no token given and no stdin")
	}
	data, err := io.ReadAll(io.LimitReader(r, maxStdinBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	if len(data) > maxStdinBytes {
		return "", fmt.Errorf("stdin holds more than %d bytes: not a token", maxStdinBytes)
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "{") {
		var cred struct {
			Status struct {
				Token string `json:"token"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(text), &cred); err != nil || cred.Status.Token == "" {
			return "", errors.New("stdin holds JSON that is not an ExecCredential with status.token")
		}
		text = cred.Status.Token
	}
	if text == "" {
		return "", errors.New("no token on stdin")
	}
	return text, nil
}

// oneLine keeps a reason on one line of stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
