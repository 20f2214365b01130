package cache

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// digest is the cache key: HMAC-SHA256 over (cluster id, token) under a
// random per-cache secret. The cache never holds a token, only this.
//
// Why keyed and not a plain SHA-256: an attacker who learns the key space
// (a memory dump, a debug endpoint) cannot test guessed or leaked tokens
// against it, and cannot precompute inputs that collide in the map or the
// shard selection (hash flooding). This is kube-apiserver's choice too
// (cached_token_authenticator.go).
//
// Lookups compare digests with Go's map equality, which is not constant
// time. That is fine: what could leak through timing is how many leading
// bytes of an unknown HMAC output match a stored one. Without the secret an
// attacker cannot choose inputs to steer that output, so learning it says
// nothing about any token, and Go's map also hashes keys with a random seed
// first. No secret is ever compared directly.
type digest [sha256.Size]byte

// keyer computes digests. HMAC state is pooled because hmac.New costs
// several allocations and two SHA-256 blocks per call, on the hit path.
type keyer struct {
	pool sync.Pool
}

// hasher is one pooled HMAC with scratch space that lets a string be hashed
// without converting it to a heap-allocated []byte.
type hasher struct {
	mac     hash.Hash
	sum     [sha256.Size]byte
	scratch [512]byte
}

func newKeyer() (*keyer, error) {
	secret := make([]byte, sha256.BlockSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("cache: generating the HMAC key: %w", err)
	}
	k := &keyer{}
	k.pool.New = func() any { return newHasher(secret) }
	return k, nil
}

func newHasher(secret []byte) *hasher {
	mac := hmac.New(sha256.New, secret)
	// Reset once before any token is written. crypto/hmac's first Reset
	// resets the inner SHA-256 with its own Reset, which leaves the block
	// buffer (the last partial block written) in place, and only then
	// snapshots a clean state that later Resets restore. Without this the
	// first token hashed by each hasher would keep its tail in the pool
	// (TestWalkerFindsRetainedTokens has the case).
	mac.Reset()
	return &hasher{mac: mac}
}

// digest returns the cache key of tok as verified for clusterID. The
// cluster id is length-prefixed so that no (cluster, token) pair can be
// rearranged into another with the same bytes: a token verified for cluster
// A must never answer for cluster B, where STS would reject it because the
// signed x-k8s-aws-id differs (cross-cluster replay).
func (k *keyer) digest(tok, clusterID string) digest {
	h := k.pool.Get().(*hasher)
	d := h.digest(tok, clusterID)
	k.pool.Put(h)
	return d
}

func (h *hasher) digest(tok, clusterID string) digest {
	binary.BigEndian.PutUint64(h.scratch[:8], uint64(len(clusterID)))
	h.mac.Write(h.scratch[:8])
	h.write(clusterID)
	h.write(tok)
	d := digest(h.mac.Sum(h.sum[:0]))
	// Scrub before the hasher goes back to the pool: the scratch buffer
	// holds the token's last chunk and the inner SHA-256 may buffer a
	// partial block of it. Reset restores the key-only state, so an idle
	// pooled hasher holds nothing derived from a token.
	h.mac.Reset()
	clear(h.scratch[:])
	clear(h.sum[:])
	return d
}

func (h *hasher) write(s string) {
	for len(s) > 0 {
		n := copy(h.scratch[:], s)
		h.mac.Write(h.scratch[:n])
		s = s[n:]
	}
}

// shard picks the LRU shard of d; n is a power of two no larger than 256.
// The digest is uniform, so its first byte spreads keys evenly.
func (d *digest) shard(n int) int { return int(d[0]) & (n - 1) }
