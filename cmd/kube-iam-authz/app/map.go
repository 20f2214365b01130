package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	awsarn "github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/spf13/cobra"

	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

// exitNotMapped is map's exit code when the identity is refused (unmapped
// or the mapping refuses it), so scripts can tell "no" from "broken".
const exitNotMapped = 2

// placeholderPrincipalID stands in for the STS UserId when none is given:
// the dry run cannot know a principal's unique id from its ARN.
const placeholderPrincipalID = "UNKNOWN-PRINCIPAL-ID"

// MapOptions configure `kube-iam-authz map`, a dry run of the mapping.
type MapOptions struct {
	MappingFile string
	ARN         string
	SessionName string
	AccessKeyID string
	AccountID   string
	PrincipalID string
	Output      string
	// EC2PrivateDNSName answers every {{EC2PrivateDNSName}} lookup without
	// calling EC2.
	EC2PrivateDNSName string
	// EC2 enables real lookups (--ec2-lookups, --ec2-region, --ec2-endpoint).
	EC2 EC2Options
}

// AddFlags binds the options to flags.
func (o *MapOptions) AddFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&o.MappingFile, "mapping-file", "", "Required. aws-auth mapping file to evaluate.")
	fs.StringVar(&o.ARN, "arn", "", "Required. Caller ARN as STS returns it (arn:aws:sts::A:assumed-role/R/S, arn:aws:iam::A:user/U, ...). An IAM role ARN with --session-name is turned into the matching assumed-role ARN.")
	fs.StringVar(&o.SessionName, "session-name", "", "Role session name ({{SessionName}}); taken from an assumed-role ARN when not given.")
	fs.StringVar(&o.AccessKeyID, "access-key-id", "", "Access key id that signed the token ({{AccessKeyID}}).")
	fs.StringVar(&o.AccountID, "account-id", "", "Account id; must match the ARN's account when given.")
	fs.StringVar(&o.PrincipalID, "principal-id", "", "Unique id of the role or user (AROA.../AIDA...), used in the uid and the principalid extra. A placeholder is used when not given.")
	fs.StringVarP(&o.Output, "output", "o", "text", "Output format: text or json.")
	fs.StringVar(&o.EC2PrivateDNSName, "ec2-private-dns-name", "", "Answer {{EC2PrivateDNSName}} with this `NAME` instead of asking EC2.")
	o.EC2.AddFlags(fs)
}

// Validate reports every problem at once.
func (o *MapOptions) Validate() error {
	var errs []error
	if o.MappingFile == "" {
		errs = append(errs, errors.New("--mapping-file is required"))
	}
	if o.ARN == "" {
		errs = append(errs, errors.New("--arn is required"))
	}
	if o.EC2PrivateDNSName != "" && o.EC2.Lookups {
		errs = append(errs, errors.New("--ec2-private-dns-name and --ec2-lookups exclude each other"))
	}
	if o.Output != "text" && o.Output != "json" {
		errs = append(errs, fmt.Errorf("--output %q: want text or json", o.Output))
	}
	return errors.Join(errs...)
}

func newMapCommand(streams Streams) *cobra.Command {
	o := &MapOptions{}
	cmd := &cobra.Command{
		Use:   "map",
		Short: "Dry run: show the Kubernetes user and exact Impersonate-* headers an AWS identity gets",
		Long: "map evaluates a mapping file for one AWS identity, without STS, and prints the username, groups, " +
			"extras and the exact Impersonate-* headers serve would send. Exit code 2 means the identity is not admitted.",
		Example: `  # A role session:
  kube-iam-authz map --mapping-file aws-auth.yaml --arn arn:aws:sts::111122223333:assumed-role/Dev/alice

  # A node role, naming the instance's private DNS name instead of asking EC2:
  kube-iam-authz map --mapping-file aws-auth.yaml --arn arn:aws:sts::111122223333:assumed-role/Node/i-0123456789abcdef0 --ec2-private-dns-name ip-10-0-0-1.eu-west-1.compute.internal -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), streams)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// staticDNS answers every instance with one name.
type staticDNS string

func (s staticDNS) PrivateDNSName(context.Context, string) (string, error) { return string(s), nil }

// mapResult is the json output.
type mapResult struct {
	Identity mapIdentity         `json:"identity"`
	Match    string              `json:"match,omitempty"`
	Mapped   bool                `json:"mapped"`
	Error    string              `json:"error,omitempty"`
	Username string              `json:"username,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	UID      string              `json:"uid,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
	Headers  []mapHeader         `json:"headers,omitempty"`
}

type mapIdentity struct {
	ARN          string `json:"arn"`
	CanonicalARN string `json:"canonicalArn"`
	AccountID    string `json:"accountId"`
	UserID       string `json:"userId"`
	PrincipalID  string `json:"principalId"`
	SessionName  string `json:"sessionName,omitempty"`
	AccessKeyID  string `json:"accessKeyId,omitempty"`
	Kind         string `json:"kind"`
}

func toMapIdentity(id identity.Identity) mapIdentity {
	return mapIdentity{
		ARN: id.ARN, CanonicalARN: id.CanonicalARN, AccountID: id.AccountID, UserID: id.UserID,
		PrincipalID: id.PrincipalID, SessionName: id.SessionName, AccessKeyID: id.AccessKeyID, Kind: string(id.Kind),
	}
}

type mapHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Run evaluates the mapping.
func (o *MapOptions) Run(ctx context.Context, streams Streams) error {
	data, err := os.ReadFile(o.MappingFile)
	if err != nil {
		return err
	}
	snap, err := mapping.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", o.MappingFile, err)
	}
	for _, p := range snap.Dropped() {
		fmt.Fprintf(streams.Err, "%s: error (entry dropped): %s\n", o.MappingFile, p)
	}
	for _, w := range snap.Warnings() {
		fmt.Fprintf(streams.Err, "%s: warning: %s\n", o.MappingFile, w)
	}
	id, err := o.identity()
	if err != nil {
		return err
	}
	if o.PrincipalID == "" {
		fmt.Fprintf(streams.Err, "note: --principal-id not given; the uid and principalid extra use the placeholder %s\n", placeholderPrincipalID)
	}
	mo := mapping.MapperOptions{Snapshots: mapping.StaticSource{Snapshot: snap}}
	switch {
	case o.EC2PrivateDNSName != "":
		mo.EC2 = staticDNS(o.EC2PrivateDNSName)
	case o.EC2.Lookups:
		if mo.EC2, err = o.EC2.resolver(ctx, nil, nil); err != nil {
			return err
		}
	}
	mapper, err := mapping.NewMapper(mo)
	if err != nil {
		return err
	}
	// Explain only says which entry matched; the decision itself comes
	// from check.Decide, the function serve's Check uses, so the dry run
	// applies every limit serve applies.
	res := mapResult{Identity: toMapIdentity(id)}
	if _, match, _ := mapper.Explain(ctx, id); match != (mapping.Match{}) {
		res.Match = match.String()
	}
	dec, mapErr := check.Decide(ctx, mapper, id)
	headers := dec.Headers
	if mapErr != nil {
		res.Error = mapErr.Error()
	} else {
		res.Mapped = true
		res.Username, res.Groups, res.UID = dec.User.Username, dec.User.Groups, impersonate.UID(id)
		res.Extra = map[string][]string{}
		for _, e := range impersonate.Extras(id) {
			if e.Value != "" {
				res.Extra[e.Key] = []string{e.Value}
			}
		}
		for _, h := range headers {
			res.Headers = append(res.Headers, mapHeader{Name: h.Name, Value: h.Value})
		}
	}
	if o.Output == "json" {
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		writeMapText(streams.Out, id, res, headers)
	}
	if mapErr != nil {
		code := 1
		if errors.Is(mapErr, kubeuser.ErrUnmapped) || errors.Is(mapErr, kubeuser.ErrForbidden) ||
			errors.Is(mapErr, impersonate.ErrInvalidValue) || errors.Is(mapErr, outcome.ErrTooManyGroups) {
			code = exitNotMapped
		}
		return &exitError{code: code, err: mapErr}
	}
	return nil
}

func writeMapText(w io.Writer, id identity.Identity, res mapResult, headers []impersonate.Header) {
	fmt.Fprintf(w, "arn:            %s\n", id.ARN)
	fmt.Fprintf(w, "canonical arn:  %s\n", id.CanonicalARN)
	fmt.Fprintf(w, "account:        %s\n", id.AccountID)
	if id.SessionName != "" {
		fmt.Fprintf(w, "session name:   %s\n", id.SessionName)
	}
	if res.Match != "" {
		fmt.Fprintf(w, "matched:        %s\n", res.Match)
	}
	if !res.Mapped {
		fmt.Fprintf(w, "result:         NOT ADMITTED: %s\n", res.Error)
		return
	}
	fmt.Fprintf(w, "username:       %s\n", res.Username)
	fmt.Fprintf(w, "groups:         %s\n", strings.Join(res.Groups, ", "))
	fmt.Fprintf(w, "uid:            %s\n", res.UID)
	fmt.Fprintln(w, "extras:")
	for _, e := range impersonate.Extras(id) {
		if v := res.Extra[e.Key]; len(v) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", e.Key, v[0])
		}
	}
	fmt.Fprintln(w, "headers sent upstream:")
	for _, h := range headers {
		fmt.Fprintf(w, "  %s\n", h)
	}
}

// identity builds the Identity STS would report for the flags, through the
// same canonicalisation and consistency rules as a real answer.
func (o *MapOptions) identity() (identity.Identity, error) {
	arn := o.ARN
	parsed, err := awsarn.Parse(arn)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("--arn: %w: %v", identity.ErrInvalidARN, err)
	}
	// A role ARN plus a session name is what STS reports as an assumed
	// role: arn:P:sts::A:assumed-role/<name without path>/<session>.
	if parsed.Service == "iam" && strings.HasPrefix(parsed.Resource, "role/") && o.SessionName != "" {
		parts := strings.Split(parsed.Resource, "/")
		arn = fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", parsed.Partition, parsed.AccountID, parts[len(parts)-1], o.SessionName)
	}
	_, kind, err := identity.Canonicalize(arn)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("--arn: %w", err)
	}
	account := parsed.AccountID
	if o.AccountID != "" {
		account = o.AccountID
	}
	principal := o.PrincipalID
	if principal == "" {
		principal = placeholderPrincipalID
	}
	userID := principal
	switch kind {
	case identity.KindRole:
		return identity.Identity{}, errors.New("--arn is an IAM role: callers are role sessions, so give --session-name (or an assumed-role ARN)")
	case identity.KindAssumedRole:
		session := arn[strings.LastIndex(arn, "/")+1:]
		if o.SessionName != "" && o.SessionName != session {
			return identity.Identity{}, fmt.Errorf("--session-name %q differs from the ARN's session %q", o.SessionName, session)
		}
		userID = principal + ":" + session
	case identity.KindRoot:
		if o.PrincipalID == "" {
			userID = account
		}
	case identity.KindFederatedUser:
		if o.PrincipalID == "" {
			userID = account + ":" + arn[strings.LastIndex(arn, "/")+1:]
		}
	}
	id, err := identity.FromSTS(arn, account, userID, o.AccessKeyID)
	if err != nil {
		return identity.Identity{}, err
	}
	return id, nil
}
