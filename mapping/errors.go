package mapping

import "errors"

// ErrInvalid is wrapped by every parse and validation failure (see *ParseError
// for the individual problems). Map's own refusals are kubeuser.ErrUnmapped,
// kubeuser.ErrForbidden and kubeuser.ErrUnavailable: authz/check maps them to
// statuses without importing this package.
var ErrInvalid = errors.New("invalid aws-auth mapping")
