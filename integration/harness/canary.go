package harness

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// canaryMinLen is the shortest secret a Canary looks for: shorter strings turn up in
// unrelated text by chance and would make the scan flaky.
const canaryMinLen = 16

// Canary is a set of secrets that must never appear in anything the system under test
// writes or answers: logs, metrics, error messages, response bodies. Tests register
// every place they collect text (Watch) and call Check at the end, which scans it all.
//
// AddToken derives every secret form of an EKS bearer token: the token, its base64url
// payload, the presigned URL (raw and query-escaped, as it could appear in a URL-shaped
// log field), its X-Amz-Signature and X-Amz-Security-Token values (raw and
// query-escaped). The access key id is not a secret (it is sent upstream as an extra)
// and is left out.
type Canary struct {
	mu      sync.Mutex
	secrets map[string]string // value -> description (never printed: the value is the secret)
	sources []canarySource
	texts   []canaryText
	seen    map[string]bool // texts already recorded: a load test repeats the same bodies
}

type canarySource struct {
	name string
	read func() string
}

type canaryText struct{ name, text string }

// Leak is one secret found in one place.
type Leak struct {
	// Source names where the text came from ("serve stderr", "GET /metrics").
	Source string
	// Secret describes which form was found ("token", "X-Amz-Signature").
	Secret string
	// Offset is the byte offset of the first occurrence in the source.
	Offset int
}

func (l Leak) String() string {
	return fmt.Sprintf("%s found in %s at byte %d", l.Secret, l.Source, l.Offset)
}

// NewCanary returns an empty Canary.
func NewCanary() *Canary { return &Canary{secrets: map[string]string{}} }

// Add registers one secret. Secrets shorter than 16 bytes are refused, because a scan
// for them could not tell a leak from chance.
func (c *Canary) Add(description, secret string) error {
	if len(secret) < canaryMinLen {
		return fmt.Errorf("canary: %s is %d bytes; at least %d are needed to scan for it reliably", description, len(secret), canaryMinLen)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.secrets[secret]; !ok {
		c.secrets[secret] = description
	}
	return nil
}

// AddToken registers a k8s-aws-v1 token and every secret derived from it. A token
// whose payload does not decode (an invalid canary on purpose) still registers the
// token and its payload.
func (c *Canary) AddToken(tok string) error {
	if err := c.Add("token", tok); err != nil {
		return err
	}
	payload, ok := strings.CutPrefix(tok, "k8s-aws-v1.")
	if !ok {
		return nil
	}
	if err := c.Add("token payload", payload); err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil
	}
	presigned := string(raw)
	add := func(desc, v string) {
		if len(v) >= canaryMinLen {
			_ = c.Add(desc, v)
		}
	}
	add("presigned URL", presigned)
	add("presigned URL (query-escaped)", url.QueryEscape(presigned))
	if u, err := url.Parse(presigned); err == nil {
		add("presigned URL query", u.RawQuery)
		for key, vs := range u.Query() {
			switch strings.ToLower(key) {
			case "x-amz-signature", "x-amz-security-token":
				for _, v := range vs {
					add(key, v)
					add(key+" (query-escaped)", url.QueryEscape(v))
				}
			}
		}
	}
	return nil
}

// Watch registers a source of text to scan at Check time (a process's log, say),
// read again on each Check so that output written after Watch is covered.
func (c *Canary) Watch(name string, read func() string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = append(c.sources, canarySource{name, read})
}

// Record registers a piece of text to scan at Check time (a response body, an error
// message, a /metrics scrape). A text identical to one already recorded is skipped.
func (c *Canary) Record(name, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[text] {
		return
	}
	c.seen[text] = true
	c.texts = append(c.texts, canaryText{name, text})
}

// Scan returns every registered secret found in text, most specific first.
func (c *Canary) Scan(source, text string) []Leak {
	c.mu.Lock()
	secrets := make([]string, 0, len(c.secrets))
	for s := range c.secrets {
		secrets = append(secrets, s)
	}
	descs := make(map[string]string, len(c.secrets))
	for s, d := range c.secrets {
		descs[s] = d
	}
	c.mu.Unlock()
	// Deterministic order: shortest secrets are the most specific (a signature is
	// inside the URL, which is inside the token's decoding).
	sort.Slice(secrets, func(i, j int) bool {
		if len(secrets[i]) != len(secrets[j]) {
			return len(secrets[i]) < len(secrets[j])
		}
		return secrets[i] < secrets[j]
	})
	var leaks []Leak
	for _, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			leaks = append(leaks, Leak{Source: source, Secret: descs[s], Offset: i})
		}
	}
	return leaks
}

// Leaks scans every watched source and recorded text.
func (c *Canary) Leaks() []Leak {
	c.mu.Lock()
	sources := append([]canarySource(nil), c.sources...)
	texts := append([]canaryText(nil), c.texts...)
	c.mu.Unlock()
	var leaks []Leak
	for _, s := range sources {
		leaks = append(leaks, c.Scan(s.name, s.read())...)
	}
	for _, t := range texts {
		leaks = append(leaks, c.Scan(t.name, t.text)...)
	}
	return leaks
}

// Sources returns how many watched sources and recorded texts a Check scans: a test
// asserts it is not zero, so that a canary check cannot pass by scanning nothing.
func (c *Canary) Sources() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sources) + len(c.texts)
}

// Check fails the test for every leak. The secret itself is never printed, only its
// description and where it was found.
func (c *Canary) Check(t testing.TB) {
	t.Helper()
	if c.Sources() == 0 {
		t.Error("canary: nothing was registered to scan")
	}
	c.mu.Lock()
	n := len(c.secrets)
	c.mu.Unlock()
	if n == 0 {
		t.Error("canary: no secret was registered")
	}
	for _, l := range c.Leaks() {
		t.Errorf("canary: %s", l)
	}
}
