package mapping

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// SnapshotSource gives the mapping in force. *Store implements it; a one-shot
// tool can use StaticSource.
type SnapshotSource interface {
	Current() *Snapshot
}

// StaticSource serves one snapshot forever.
type StaticSource struct{ Snapshot *Snapshot }

// Current returns the snapshot.
func (s StaticSource) Current() *Snapshot { return s.Snapshot }

// DNSResolver resolves an EC2 instance ID to its private DNS name for
// {{EC2PrivateDNSName}}. Errors should wrap ErrForbidden when the instance
// does not exist (a node name for a missing instance must not map) and
// ErrUnavailable when EC2 could not be asked; any other error is treated as
// ErrUnavailable. mapping/ec2dns implements it.
type DNSResolver interface {
	PrivateDNSName(ctx context.Context, instanceID string) (string, error)
}

// MapperOptions configures a Mapper.
type MapperOptions struct {
	// Snapshots is where the current mapping comes from. Required.
	Snapshots SnapshotSource
	// EC2 resolves {{EC2PrivateDNSName}}. Optional: without it, entries
	// using that template answer ErrUnavailable.
	EC2 DNSResolver
}

// Validate reports every problem with the options.
func (o MapperOptions) Validate() error {
	if o.Snapshots == nil {
		return errors.New("mapping: MapperOptions.Snapshots is required")
	}
	return nil
}

// Mapper maps verified identities to Kubernetes users through the current
// snapshot.
type Mapper struct {
	snapshots SnapshotSource
	ec2       DNSResolver
}

// NewMapper validates opts and builds a Mapper.
func NewMapper(opts MapperOptions) (*Mapper, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Mapper{snapshots: opts.Snapshots, ec2: opts.EC2}, nil
}

// Map returns the Kubernetes user for id. Errors wrap ErrUnmapped (no entry),
// ErrForbidden (an entry matched but its rendering is refused) or
// ErrUnavailable (no mapping loaded, or EC2 unreachable).
func (m *Mapper) Map(ctx context.Context, id identity.Identity) (kubeuser.User, error) {
	u, _, err := m.Explain(ctx, id)
	return u, err
}

// Explain is Map that also says which entry matched, for dry runs and
// decision logs. The Match is set whenever an entry matched, even if
// rendering it was then refused.
func (m *Mapper) Explain(ctx context.Context, id identity.Identity) (kubeuser.User, Match, error) {
	snap := m.snapshots.Current()
	if snap == nil {
		return kubeuser.User{}, Match{}, fmt.Errorf("%w: no mapping has been loaded", kubeuser.ErrUnavailable)
	}
	match, err := snap.Lookup(id)
	if err != nil {
		return kubeuser.User{}, Match{}, err
	}
	u, err := m.render(ctx, match, id)
	return u, match, err
}

// instanceIDPattern: EC2 instance IDs are i- and 8 or 17 lower-case hex
// digits. The reference accepts any \w, which lets a caller-chosen session
// name reach DescribeInstances with arbitrary text.
var instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

func (m *Mapper) render(ctx context.Context, match Match, id identity.Identity) (kubeuser.User, error) {
	e := match.entry
	if e == nil {
		// mapAccounts: the canonical ARN, no groups, no templates (reference
		// §4.4). It cannot carry a reserved prefix: it starts with "arn:".
		return kubeuser.User{Username: id.CanonicalARN}, nil
	}
	if e.literal {
		var groups []string
		if len(e.literalGroups) > 0 {
			groups = append([]string(nil), e.literalGroups...)
		}
		return kubeuser.User{Username: e.username.raw, Groups: groups}, nil
	}
	v := values{
		accountID:      id.AccountID,
		sessionNameRaw: id.SessionName,
		sessionName:    strings.ReplaceAll(id.SessionName, "@", "-"),
		accessKeyID:    id.AccessKeyID,
	}
	// AWS session names are [\w+=,.@-]*: a ':' or '/' cannot come from STS,
	// and either would let a session name forge structure in a name such
	// as system:node:<name> (anchors C.12).
	if e.usesSession && strings.ContainsAny(id.SessionName, ":/") {
		return kubeuser.User{}, &ruleError{rule: RuleNameChars, err: fmt.Errorf("%w: %s: session name %q contains ':' or '/'", kubeuser.ErrForbidden, match, id.SessionName)}
	}
	if e.usesDNS {
		name, err := m.privateDNSName(ctx, id.SessionName)
		if err != nil {
			return kubeuser.User{}, fmt.Errorf("%s: {{EC2PrivateDNSName}}: %w", match, err)
		}
		v.dnsName = name
	}
	username := e.username.render(&v)
	if err := checkRendered(e.username, username); err != nil {
		return kubeuser.User{}, &ruleError{rule: RuleOf(err), err: fmt.Errorf("%w: %s: username %w", kubeuser.ErrForbidden, match, err)}
	}
	groups := make([]string, len(e.groups))
	for i, t := range e.groups {
		groups[i] = t.render(&v)
		if err := checkRendered(t, groups[i]); err != nil {
			return kubeuser.User{}, &ruleError{rule: RuleOf(err), err: fmt.Errorf("%w: %s: group %w", kubeuser.ErrForbidden, match, err)}
		}
	}
	if len(groups) == 0 {
		groups = nil
	}
	return kubeuser.User{Username: username, Groups: groups}, nil
}

func (m *Mapper) privateDNSName(ctx context.Context, session string) (string, error) {
	if !instanceIDPattern.MatchString(session) {
		return "", &ruleError{rule: RuleInstanceID, err: fmt.Errorf("%w: session name %q is not an EC2 instance ID", kubeuser.ErrForbidden, session)}
	}
	if m.ec2 == nil {
		return "", fmt.Errorf("%w: no EC2 resolver is configured", kubeuser.ErrUnavailable)
	}
	name, err := m.ec2.PrivateDNSName(ctx, session)
	switch {
	case errors.Is(err, kubeuser.ErrForbidden), errors.Is(err, kubeuser.ErrUnavailable):
		return "", err
	case err != nil:
		return "", fmt.Errorf("%w: %w", kubeuser.ErrUnavailable, err)
	case name == "":
		return "", fmt.Errorf("%w: instance %s has no private DNS name", kubeuser.ErrForbidden, session)
	}
	return name, nil
}

// checkRendered refuses what a substitution produced: an empty or malformed
// name, or a reserved prefix (system:, eks:, ...) that the template did not
// spell out itself. Without this, username "{{SessionName}}:masters" and a
// session named "system" yield system:masters (reference e2e
// hack/e2e-dynamicfile.sh; anchors C.12). system:node:{{EC2PrivateDNSName}}
// stays allowed because its reserved prefix is literal.
func checkRendered(t *template, rendered string) error {
	if t.literal() {
		return nil
	}
	if err := checkName(rendered); err != nil {
		return &ruleError{rule: RuleOf(err), err: fmt.Errorf("from template %q %w", t.raw, err)}
	}
	if p := reservedPrefix(rendered); p != "" && reservedPrefix(t.prefix) != p {
		return &ruleError{rule: RuleReservedTemplate, err: fmt.Errorf("from template %q rendered %q, which starts with the reserved prefix %q that the template does not spell out", t.raw, rendered, p)}
	}
	return nil
}
