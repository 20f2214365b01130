package token

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint is a short, non-reversible handle for a token, for logs and
// decision records: the first 12 hex characters of its SHA-256. The token
// itself is a bearer credential for 15 minutes and is never logged.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}
