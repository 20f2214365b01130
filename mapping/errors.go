package mapping

import "errors"

// Sentinel errors of Map; the Check service turns all of them into a 403.
var (
	// ErrUnmapped: no mapRoles, mapUsers or mapAccounts entry matches.
	ErrUnmapped = errors.New("identity is not mapped")
	// ErrForbidden: an entry matched but rendering it is refused, e.g. a
	// templated name expanded into a reserved prefix such as system:, or an
	// {{EC2PrivateDNSName}} session name that is not an instance id.
	ErrForbidden = errors.New("mapping refused for this identity")
)
