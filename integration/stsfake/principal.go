package stsfake

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Credentials are an access key pair as a client holds them.
type Credentials struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	// SessionToken is set for temporary (ASIA...) credentials. A request
	// signed with such a key must carry exactly this X-Amz-Security-Token.
	SessionToken string `json:"sessionToken,omitempty"`
}

// Principal is one caller the stand-in knows: the key that signs and the
// identity GetCallerIdentity answers for it.
type Principal struct {
	Credentials
	Account string `json:"account"`
	ARN     string `json:"arn"`
	UserID  string `json:"userId"`
	// Expiration, when set, is when the session credentials stop working:
	// requests signed with them are refused with ExpiredToken afterwards,
	// even inside the 15-minute window of the presigned URL (real STS does
	// the same, aws-iam-authenticator #401).
	Expiration time.Time `json:"expiration,omitzero"`
}

// Validate reports every missing field.
func (p Principal) Validate() error {
	var errs []error
	if p.AccessKeyID == "" {
		errs = append(errs, errors.New("accessKeyId is required"))
	}
	if p.SecretAccessKey == "" {
		errs = append(errs, errors.New("secretAccessKey is required"))
	}
	if p.Account == "" {
		errs = append(errs, errors.New("account is required"))
	}
	if p.ARN == "" {
		errs = append(errs, errors.New("arn is required"))
	}
	if p.UserID == "" {
		errs = append(errs, errors.New("userId is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("principal %q: %w", p.AccessKeyID, err)
	}
	return nil
}

// IAMUser is a long-term IAM user key: arn:aws:iam::A:user/NAME with a
// stable AIDA... unique id.
func IAMUser(account, name string, c Credentials) Principal {
	return Principal{
		Credentials: c,
		Account:     account,
		ARN:         "arn:aws:iam::" + account + ":user/" + name,
		UserID:      uniqueID("AIDA", account+"/user/"+name),
	}
}

// AssumedRole is a role session: arn:aws:sts::A:assumed-role/ROLE/SESSION
// with UserId AROA...:SESSION. Its credentials normally carry a session
// token.
func AssumedRole(account, role, session string, c Credentials) Principal {
	return Principal{
		Credentials: c,
		Account:     account,
		ARN:         "arn:aws:sts::" + account + ":assumed-role/" + role + "/" + session,
		UserID:      uniqueID("AROA", account+"/role/"+role) + ":" + session,
	}
}

// Root is the account root user: arn:aws:iam::A:root, UserId = A.
func Root(account string, c Credentials) Principal {
	return Principal{
		Credentials: c,
		Account:     account,
		ARN:         "arn:aws:iam::" + account + ":root",
		UserID:      account,
	}
}

// uniqueID makes a stable 21-character IAM unique id (prefix + 17
// characters from A-Z2-7) from a name, so that the same principal always has
// the same id across runs.
func uniqueID(prefix, name string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	sum := sha256.Sum256([]byte(name))
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; b.Len() < 21; i++ {
		b.WriteByte(alphabet[sum[i]%32])
	}
	return b.String()
}
