package cache

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// The cache must never retain a bearer token (anchors A.10, C.5): a heap
// dump or a debug endpoint would otherwise hand out 15-minute credentials.
// These tests walk every value reachable from the cache with reflection,
// through unexported fields, pointers, maps, slices (to capacity) and
// interfaces, and look for any 16-byte fragment of the token. Function
// values and unsafe pointers cannot be followed, which is why the pooled
// HMAC state is checked separately.

const fragment = 16

// randomToken returns a realistic-length token whose every 16-byte window
// is, with overwhelming probability, unique to it.
func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 1100)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString(b)
}

// findFragments reports the places under v holding a window of tok.
func findFragments(v any, tok string) []string {
	windows := make(map[string]bool, len(tok))
	for i := 0; i+fragment <= len(tok); i++ {
		windows[tok[i:i+fragment]] = true
	}
	var found []string
	w := walker{seen: map[uintptr]bool{}, visit: func(path string, b []byte) {
		for i := 0; i+fragment <= len(b); i++ {
			if windows[string(b[i:i+fragment])] {
				found = append(found, path)
				return
			}
		}
	}}
	w.walk("root", reflect.ValueOf(v))
	return found
}

type walker struct {
	seen  map[uintptr]bool
	visit func(path string, b []byte)
}

func (w *walker) walk(path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		w.visit(path, []byte(v.String()))
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			w.visit(path, byteValues(v))
			return
		}
		for i := range v.Len() {
			w.walk(path+"[i]", v.Index(i))
		}
	case reflect.Slice:
		if v.IsNil() || w.seen[v.Pointer()] && v.Type().Elem().Kind() != reflect.Uint8 {
			return
		}
		w.seen[v.Pointer()] = true
		full := v.Slice(0, v.Cap()) // what lies beyond len is retained too
		if v.Type().Elem().Kind() == reflect.Uint8 {
			w.visit(path, byteValues(full))
			return
		}
		for i := range full.Len() {
			w.walk(path+"[i]", full.Index(i))
		}
	case reflect.Pointer:
		if v.IsNil() || w.seen[v.Pointer()] {
			return
		}
		w.seen[v.Pointer()] = true
		w.walk(path, v.Elem())
	case reflect.Interface:
		if !v.IsNil() {
			w.walk(path, v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			w.walk(path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Map:
		if v.IsNil() || w.seen[v.Pointer()] {
			return
		}
		w.seen[v.Pointer()] = true
		it := v.MapRange()
		for it.Next() {
			w.walk(path+"{key}", it.Key())
			w.walk(path+"{value}", it.Value())
		}
	default:
		// Numbers, bools, funcs, chans, unsafe pointers: nothing to read.
	}
}

func byteValues(v reflect.Value) []byte {
	b := make([]byte, v.Len())
	for i := range b {
		b[i] = byte(v.Index(i).Uint())
	}
	return b
}

// TestWalkerFindsRetainedTokens shows the detector works: without these
// controls the tests below could pass by never looking.
func TestWalkerFindsRetainedTokens(t *testing.T) {
	tok := randomToken(t)
	// ipad is one 64-byte block, so 360 bytes leave 40 in SHA-256's block
	// buffer, and scratch is cleared: only the hash state holds a fragment.
	unscrubbed := &hasher{mac: hmac.New(sha256.New, []byte("key"))}
	unscrubbed.write(tok[:360])
	clear(unscrubbed.scratch[:])
	// Without the priming Reset of newHasher, crypto/hmac's first Reset
	// leaves SHA-256's block buffer as the token left it.
	unprimed := &hasher{mac: hmac.New(sha256.New, []byte("key"))}
	unprimed.digest(tok[:360], clusterA)
	tests := map[string]struct {
		holder any
	}{
		"string field":                      {holder: &struct{ s string }{s: tok}},
		"map keyed by the raw token":        {holder: map[string]int{tok: 1}},
		"fragment inside a byte array":      {holder: &struct{ a [64]byte }{a: [64]byte(append([]byte(tok[100:164]), []byte{}...))}},
		"fragment beyond a slice's length":  {holder: []byte(tok[:40])[:0]},
		"token tail inside an HMAC's state": {holder: unscrubbed},
		"HMAC snapshot taken after a token": {holder: unprimed},
		"error wrapping the token":          {holder: errors.New("bad token " + tok)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if found := findFragments(tc.holder, tok); len(found) == 0 {
				t.Error("walker found no fragment of a token that is there")
			}
		})
	}
}

func TestCacheRetainsNoToken(t *testing.T) {
	good, rejected, throttled := randomToken(t), randomToken(t), randomToken(t)
	clock := newFakeClock()
	fake := &fakeVerifier{answer: func(tok, _ string) (verify.Result, error) {
		switch tok {
		case rejected:
			return verify.Result{}, &token.FormatError{Rule: "signature", Detail: "bad"}
		case throttled:
			return verify.Result{}, errBoom
		}
		return answerExpiring(clock.Now, 15*time.Minute)(tok, "")
	}}
	c, err := New(fake, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Hits, misses, a negative entry, an uncached error, shared flights.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, tok := range []string{good, rejected, throttled, good} {
				c.Verify(context.Background(), tok, clusterA) //nolint:errcheck // only the retained state matters here
			}
		})
	}
	wg.Wait()
	if got := c.Len(); got != 2 {
		t.Fatalf("Len() = %d, want 2 (one positive, one negative entry)", got)
	}
	for name, tok := range map[string]string{"accepted": good, "rejected": rejected, "throttled": throttled} {
		if found := findFragments(c, tok); len(found) > 0 {
			t.Errorf("%s token retained by the cache at %v", name, found)
		}
	}
}

func TestHasherScrubsAfterDigest(t *testing.T) {
	tok := randomToken(t)
	h := newHasher([]byte("key"))
	// 8+9 bytes of length and cluster id, then 360 token bytes: 57 of them
	// pass through SHA-256's block buffer last. A first use is the case
	// crypto/hmac's lazy snapshot gets wrong.
	first := h.digest(tok[:360], clusterA)
	if found := findFragments(h, tok); len(found) > 0 {
		t.Errorf("pooled hasher retains the token at %v", found)
	}
	// Scrubbing must leave the hasher usable and deterministic.
	if h.digest(tok[:360], clusterA) != first {
		t.Error("digest changed after the hasher was scrubbed and reused")
	}
}
