package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// Parser checks a token locally (token.Parser).
type Parser interface {
	Parse(tok string) (*token.Presigned, error)
}

// CallerIdentityGetter asks STS who signed a presigned URL (sts.Client).
type CallerIdentityGetter interface {
	GetCallerIdentity(ctx context.Context, p *token.Presigned, clusterID string) (sts.Caller, error)
}

// Verifier turns a bearer token into a verified identity. It holds no state
// of its own and is safe for concurrent use if its parts are.
type Verifier struct {
	parser Parser
	sts    CallerIdentityGetter
}

// New builds a Verifier.
func New(p Parser, s CallerIdentityGetter) *Verifier {
	return &Verifier{parser: p, sts: s}
}

// Verify checks tok for the cluster clusterID. Errors wrap exactly one of:
//
//   - token.ErrMalformed: rejected locally, nothing was sent to STS;
//   - sts.ErrUnauthenticated: STS refused the signature, key or session;
//   - sts.ErrThrottled (as *sts.ThrottledError): STS or our own limit;
//   - sts.ErrUnavailable: STS could not be asked, or its answer cannot be
//     trusted.
func (v *Verifier) Verify(ctx context.Context, tok, clusterID string) (Result, error) {
	p, err := v.parser.Parse(tok)
	if err != nil {
		// Local rejection costs no STS call. Keep the class even if a
		// parser returns a bare error, so it can never become a 5xx.
		if !errors.Is(err, token.ErrMalformed) {
			err = fmt.Errorf("%w: %v", token.ErrMalformed, err)
		}
		return Result{}, err
	}
	if p == nil {
		return Result{}, fmt.Errorf("%w: the token parser returned nothing", token.ErrMalformed)
	}
	caller, err := v.sts.GetCallerIdentity(ctx, p, clusterID)
	if err != nil {
		if !errors.Is(err, sts.ErrUnauthenticated) && !errors.Is(err, sts.ErrThrottled) && !errors.Is(err, sts.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", sts.ErrUnavailable, err)
		}
		return Result{}, err
	}
	// AccessKeyID comes from the token, which is only trustworthy because
	// the parser refuses case-variant duplicate parameters (CVE-2022-2385).
	id, err := identity.FromSTS(caller.ARN, caller.Account, caller.UserID, p.AccessKeyID)
	if err != nil {
		// STS accepted the signature but answered an identity that does not
		// hold together (an ARN that does not parse, an Account or UserId
		// that contradicts the ARN). That is not the client's fault, so it
		// must not be a 401, and it must never be cached: it is an
		// untrustworthy upstream (a proxy, a corrupted answer) and the next
		// call may be fine. ErrUnavailable is the only class with both
		// properties. identity.ErrInvalidARN is deliberately not wrapped, so
		// that nothing downstream mistakes this for a mapping problem.
		return Result{}, fmt.Errorf("%w: STS answered an inconsistent identity: %v", sts.ErrUnavailable, err)
	}
	return Result{Identity: id, Expiry: p.Expiry, STSRegion: p.RegionLabel, Fingerprint: token.Fingerprint(tok)}, nil
}
