package kubeuser

import "errors"

// Sentinel errors of a mapper (mapping.Mapper.Map). The one table (authz/outcome) maps
// ErrUnmapped and ErrForbidden to 403 and ErrUnavailable to 503.
var (
	// ErrUnmapped: no mapRoles, mapUsers or mapAccounts entry matches.
	ErrUnmapped = errors.New("identity is not mapped")
	// ErrForbidden: an entry matched but rendering it is refused, e.g. a
	// templated name expanded into a reserved prefix such as system:, or an
	// {{EC2PrivateDNSName}} session name that is not an instance id.
	ErrForbidden = errors.New("mapping refused for this identity")
	// ErrUnavailable: the mapping cannot be decided right now (no snapshot is
	// loaded yet, or the EC2 lookup behind {{EC2PrivateDNSName}} failed). It
	// is a 503: the caller may retry, and nothing about the identity was
	// judged.
	ErrUnavailable = errors.New("mapping temporarily unavailable")
)
