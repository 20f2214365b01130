package identity

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	awsarn "github.com/aws/aws-sdk-go-v2/aws/arn"
)

// ErrInvalidARN is wrapped by every ARN parsing and canonicalisation error.
var ErrInvalidARN = errors.New("invalid ARN")

// partitions are the AWS partitions an identity ARN may belong to. The list
// matches aws-iam-authenticator's pkg/arn; anything else is rejected so that a
// forged or future partition string cannot slip through as "aws". An array,
// so no importer can change it.
var partitions = [...]string{
	"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc",
}

// Partitions returns the known AWS partitions (a fresh slice).
func Partitions() []string { return slices.Clone(partitions[:]) }

// IsPartition reports whether p is a known AWS partition.
func IsPartition(p string) bool { return slices.Contains(partitions[:], p) }

func knownPartition(p string) bool { return IsPartition(p) }

// Canonicalize turns an identity ARN into the form mappings are written in.
// An STS assumed-role ARN arn:P:sts::A:assumed-role/[path/]Name/Session becomes
// arn:P:iam::A:role/[path/]Name; IAM users, roles, root and federated users are
// returned unchanged. Case is preserved (matching is case-insensitive later).
func Canonicalize(arn string) (string, Kind, error) {
	parsed, err := awsarn.Parse(arn)
	if err != nil {
		return "", "", fmt.Errorf("%w: %q: %v", ErrInvalidARN, arn, err)
	}
	if !knownPartition(parsed.Partition) {
		return "", "", fmt.Errorf("%w: %q does not have a recognised partition", ErrInvalidARN, arn)
	}
	resourceType, _, _ := strings.Cut(parsed.Resource, "/")
	switch parsed.Service {
	case "sts":
		switch resourceType {
		case "federated-user":
			return arn, KindFederatedUser, nil
		case "assumed-role":
			parts := strings.Split(parsed.Resource, "/")
			if len(parts) < 3 {
				return "", "", fmt.Errorf("%w: assumed-role ARN %q does not name a role", ErrInvalidARN, arn)
			}
			role := strings.Join(parts[1:len(parts)-1], "/")
			return fmt.Sprintf("arn:%s:iam::%s:role/%s", parsed.Partition, parsed.AccountID, role), KindAssumedRole, nil
		}
		return "", "", fmt.Errorf("%w: unrecognised resource %q for service sts", ErrInvalidARN, parsed.Resource)
	case "iam":
		switch {
		case resourceType == "role" && strings.Contains(parsed.Resource, "/"):
			return arn, KindRole, nil
		case resourceType == "user" && strings.Contains(parsed.Resource, "/"):
			return arn, KindUser, nil
		case parsed.Resource == "root":
			return arn, KindRoot, nil
		}
		return "", "", fmt.Errorf("%w: unrecognised resource %q for service iam", ErrInvalidARN, parsed.Resource)
	}
	return "", "", fmt.Errorf("%w: service %q is not a valid service for identities", ErrInvalidARN, parsed.Service)
}

// StripPath removes the path from an IAM role ARN, keeping only the role
// name: arn:aws:iam::A:role/team/Admin becomes arn:aws:iam::A:role/Admin.
// STS assumed-role ARNs never carry the path (aws-iam-authenticator #268), so
// a configured role ARN must be stripped before it can match. Other ARNs are
// returned unchanged.
func StripPath(arn string) (string, error) {
	parsed, err := awsarn.Parse(arn)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidARN, arn, err)
	}
	if parsed.Service != "iam" || !strings.HasPrefix(parsed.Resource, "role/") {
		return arn, nil
	}
	parts := strings.Split(parsed.Resource, "/")
	parsed.Resource = "role/" + parts[len(parts)-1]
	return parsed.String(), nil
}
