package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// errCacheMiss: no usable cached token (absent or expiring); not worth a
// warning.
var errCacheMiss = errors.New("no cached token")

// cacheReuseMargin: a cached token is reused until this long before its
// expirationTimestamp, so kubectl always receives a token with at least a
// minute of its advertised life left (plus the one-minute cushion).
const cacheReuseMargin = time.Minute

// maxCacheFileBytes bounds what we read back: a token is at most 16 KiB.
const maxCacheFileBytes = 64 << 10

// tokenCache stores issued tokens, one private file per cluster/identity
// key. Unlike aws-iam-authenticator's --cache (which keeps AWS credentials),
// it keeps the token itself: a bearer credential for at most 15 minutes
// rather than credentials that may live for hours. Every failure falls back
// to issuing a fresh token.
type tokenCache struct {
	dir string
	now func() time.Time
}

// cachedToken is the file format.
type cachedToken struct {
	Token               string    `json:"token"`
	ExpirationTimestamp time.Time `json:"expirationTimestamp"`
}

// openTokenCache creates the cache directory (0700) if needed and refuses
// one that others can read or write.
func openTokenCache(homeDir func() (string, error), now func() time.Time) (*tokenCache, error) {
	dir, err := kubeCacheDir(homeDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if err := checkPrivate(fi); err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	return &tokenCache{dir: dir, now: now}, nil
}

// tokenCacheKey names the cache file after everything that decides which
// token is issued: cluster, profile, role, session name, region and an
// access key id from the environment (so that switching AWS_ACCESS_KEY_ID
// does not hand out the previous identity's token).
func tokenCacheKey(o tokenOptions, region string, getenv func(string) string) string {
	profile := o.Profile
	if profile == "" {
		profile = getenv("AWS_PROFILE")
	}
	if profile == "" {
		profile = "default"
	}
	h := sha256.New()
	for _, part := range []string{"v1", o.ClusterID, profile, o.RoleARN, o.SessionName, region, getenv("AWS_ACCESS_KEY_ID")} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *tokenCache) path(key string) string { return filepath.Join(c.dir, key+".json") }

// load returns the cached token for key if it is private, well formed and
// not within cacheReuseMargin of its expiry.
func (c *tokenCache) load(key string) (string, time.Time, error) {
	f, err := openNoFollow(c.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, errCacheMiss
	}
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return "", time.Time{}, fmt.Errorf("%s is not a regular file", f.Name())
	}
	// Like aws-iam-authenticator's cache: a file others could read may have
	// leaked, and one they could write may be a planted token.
	if err := checkPrivate(fi); err != nil {
		return "", time.Time{}, fmt.Errorf("cache file %s: %w", f.Name(), err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxCacheFileBytes+1))
	if err != nil {
		return "", time.Time{}, err
	}
	if len(raw) > maxCacheFileBytes {
		return "", time.Time{}, fmt.Errorf("cache file %s is too large", f.Name())
	}
	var ct cachedToken
	if err := json.Unmarshal(raw, &ct); err != nil {
		return "", time.Time{}, fmt.Errorf("cache file %s: %w", f.Name(), err)
	}
	now := c.now()
	switch {
	case !strings.HasPrefix(ct.Token, token.Prefix) || len(ct.Token) > token.DefaultMaxTokenBytes:
		return "", time.Time{}, fmt.Errorf("cache file %s holds no token", f.Name())
	case ct.ExpirationTimestamp.After(now.Add(token.Validity)):
		// No token lives longer than 15 minutes: the clock jumped or the
		// file was edited.
		return "", time.Time{}, fmt.Errorf("cache file %s expires implausibly late", f.Name())
	case !now.Before(ct.ExpirationTimestamp.Add(-cacheReuseMargin)):
		return "", time.Time{}, errCacheMiss
	}
	return ct.Token, ct.ExpirationTimestamp, nil
}

// store writes the token atomically (temp file + rename), mode 0600.
func (c *tokenCache) store(key, tok string, exp time.Time) error {
	raw, err := json.Marshal(cachedToken{Token: tok, ExpirationTimestamp: exp.UTC()})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".token-*.tmp") // created 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path(key))
}
