package token

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint is a short, non-reversible handle for a token, for logs and
// decision records: the first 12 hex characters of its SHA-256. The token
// itself is a bearer credential for 15 minutes and is never logged.
//
// It runs on every Check, so it hashes the string through a stack buffer
// instead of converting the (kilobytes long) token to a []byte.
func Fingerprint(token string) string {
	h := sha256.New()
	var buf [512]byte
	for s := token; len(s) > 0; {
		n := copy(buf[:], s)
		h.Write(buf[:n])
		s = s[n:]
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var out [12]byte
	hex.Encode(out[:], sum[:6])
	return string(out[:])
}
