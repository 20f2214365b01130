package identity

import (
	"fmt"
	"strings"
)

// FromSTS builds an Identity from the three fields of a GetCallerIdentity
// answer plus the access key id taken from the token. It applies the
// reference's UserId rules: role sessions must be exactly "principal:session";
// users, root and federated users keep UserId whole (a federated UserId
// "account:name" must not be split, or it would look like root; reference
// commit 9fa86f7d). It is stricter than the reference in also requiring the
// Account to be the ARN's account.
func FromSTS(arn, account, userID, accessKeyID string) (Identity, error) {
	canonical, kind, err := Canonicalize(arn)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{
		ARN:          arn,
		CanonicalARN: canonical,
		AccountID:    account,
		UserID:       userID,
		AccessKeyID:  accessKeyID,
		Kind:         kind,
	}
	if arnAccount := strings.Split(arn, ":")[4]; arnAccount != account {
		return Identity{}, fmt.Errorf("%w: account %q does not match ARN account %q", ErrInvalidARN, account, arnAccount)
	}
	switch kind {
	case KindUser, KindRoot, KindFederatedUser:
		if userID == "" {
			return Identity{}, fmt.Errorf("%w: empty UserId", ErrInvalidARN)
		}
		// Stricter than the reference, for an answer that does not hold
		// together: an IAM user's UserId is its unique id (AIDA...), which
		// never has a colon, and root's UserId is the account id. Only a
		// federated user's UserId is "account:name". The UserId becomes the
		// Impersonate-Uid and the principalid extra, so a suffix smuggled
		// into it must not pass.
		switch {
		case kind == KindUser && strings.Contains(userID, ":"):
			return Identity{}, fmt.Errorf("%w: UserId %q of an IAM user has a session part", ErrInvalidARN, userID)
		case kind == KindRoot && userID != account:
			return Identity{}, fmt.Errorf("%w: UserId %q of the root user is not the account", ErrInvalidARN, userID)
		}
		id.PrincipalID = userID
	default:
		parts := strings.Split(userID, ":")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return Identity{}, fmt.Errorf("%w: malformed UserId %q for a role session", ErrInvalidARN, userID)
		}
		id.PrincipalID, id.SessionName = parts[0], parts[1]
		if kind == KindAssumedRole && !strings.HasSuffix(arn, "/"+id.SessionName) {
			return Identity{}, fmt.Errorf("%w: UserId session %q does not match the ARN's session", ErrInvalidARN, id.SessionName)
		}
	}
	return id, nil
}
