package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/endpoints/responsewriter"
)

// Bounds on what one record keeps. Go's server already caps a request's
// header block at 1 MiB; these keep the ring's memory predictable.
const (
	maxHeaderLines     = 512
	maxHeaderValueLen  = 8 << 10
	maxChecksPerRecord = 64
	maxErrorBodyBytes  = 4 << 10
)

// Record is one request as the peer received it. Its JSON is the wire
// contract of GET /requests.
type Record struct {
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Query      string    `json:"query,omitempty"`
	Proto      string    `json:"proto"`
	Host       string    `json:"host"`
	RemoteAddr string    `json:"remoteAddr"`
	// Headers are the request's header lines as the outermost handler saw
	// them, before any filter ran: one entry per line received (repeated
	// headers stay separate, values are never split or joined), names in
	// Go's canonical form, sorted by name with the order of repeated lines
	// preserved. Authorization values are redacted (see redactCredential).
	Headers          []HeaderLine `json:"headers"`
	HeadersTruncated bool         `json:"headersTruncated,omitempty"`
	// Authenticated is who the credentials identified, before impersonation.
	Authenticated *UserInfo `json:"authenticated,omitempty"`
	// AuthError is why authentication failed, if it did.
	AuthError string `json:"authError,omitempty"`
	// User is the effective user the API handler saw, after impersonation.
	// Absent when the request was rejected before reaching it.
	User *UserInfo `json:"user,omitempty"`
	// Checks are the authorization checks made for the request, in order:
	// one per impersonated attribute, then the request itself.
	Checks          []Check `json:"checks,omitempty"`
	ChecksTruncated bool    `json:"checksTruncated,omitempty"`
	// Status is the HTTP status written; 0 while in flight.
	Status int `json:"status"`
	// ErrorBody is the start of the response body when Status >= 400 (a
	// Kubernetes Status object): kubectl often prints only a generic
	// message, the reason is here.
	ErrorBody string `json:"errorBody,omitempty"`
}

// HeaderLine is one received header line.
type HeaderLine struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// UserInfo mirrors authentication.k8s.io/v1 UserInfo.
type UserInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// Check is one authorization decision.
type Check struct {
	User        string `json:"user"`
	Verb        string `json:"verb"`
	APIGroup    string `json:"apiGroup,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	Path        string `json:"path,omitempty"`
	Decision    string `json:"decision"`
	Reason      string `json:"reason,omitempty"`
}

// RequestsResponse is the body of GET /requests.
type RequestsResponse struct {
	// Total counts every request recorded since start, including those the
	// ring has dropped or DELETE has cleared.
	Total    int64    `json:"total"`
	Capacity int      `json:"capacity"`
	Requests []Record `json:"requests"`
}

// entry is a Record under construction. Filters run on more than one
// goroutine (the timeout filter hands the inner chain to a new one), so
// every mutation takes the lock.
type entry struct {
	mu  sync.Mutex
	rec Record
}

type recordKey struct{}

func recordFrom(ctx context.Context) *entry {
	e, _ := ctx.Value(recordKey{}).(*entry)
	return e
}

func (e *entry) setAuthenticated(u user.Info) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rec.Authenticated = userInfoOf(u)
	e.rec.AuthError = ""
}

func (e *entry) setAuthError(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rec.AuthError = err.Error()
}

func (e *entry) setUser(u user.Info) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rec.User = userInfoOf(u)
}

func (e *entry) setStatus(code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rec.Status == 0 {
		e.rec.Status = code
	}
}

func (e *entry) appendErrorBody(b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rec.Status < 400 {
		return
	}
	if room := maxErrorBodyBytes - len(e.rec.ErrorBody); room > 0 {
		e.rec.ErrorBody += string(b[:min(room, len(b))])
	}
}

func (e *entry) addCheck(attrs authorizer.Attributes, d authorizer.Decision, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.rec.Checks) >= maxChecksPerRecord {
		e.rec.ChecksTruncated = true
		return
	}
	c := Check{
		Verb:        attrs.GetVerb(),
		APIGroup:    attrs.GetAPIGroup(),
		APIVersion:  attrs.GetAPIVersion(),
		Resource:    attrs.GetResource(),
		Subresource: attrs.GetSubresource(),
		Namespace:   attrs.GetNamespace(),
		Name:        attrs.GetName(),
		Decision:    decisionString(d),
		Reason:      reason,
	}
	if !attrs.IsResourceRequest() {
		c.Path = attrs.GetPath()
	}
	if u := attrs.GetUser(); u != nil {
		c.User = u.GetName()
	}
	e.rec.Checks = append(e.rec.Checks, c)
}

func (e *entry) snapshot() Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec
	r.Headers = append([]HeaderLine(nil), e.rec.Headers...)
	r.Checks = append([]Check(nil), e.rec.Checks...)
	return r
}

// Recorder keeps the last Capacity requests in a ring.
type Recorder struct {
	now      func() time.Time
	capacity int

	mu    sync.Mutex
	ring  []*entry
	next  int // index the next entry is written to
	total int64
}

// NewRecorder returns a recorder holding at most capacity requests.
func NewRecorder(capacity int, now func() time.Time) *Recorder {
	return &Recorder{now: now, capacity: capacity, ring: make([]*entry, 0, capacity)}
}

func (r *Recorder) start(req *http.Request) *entry {
	e := &entry{rec: Record{
		Time:       r.now().UTC(),
		Method:     req.Method,
		Path:       req.URL.Path,
		Query:      req.URL.RawQuery,
		Proto:      req.Proto,
		Host:       req.Host,
		RemoteAddr: req.RemoteAddr,
	}}
	e.rec.Headers, e.rec.HeadersTruncated = headerLines(req.Header)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	e.rec.Seq = r.total
	if len(r.ring) < r.capacity {
		r.ring = append(r.ring, e)
	} else {
		r.ring[r.next] = e
	}
	r.next = (r.next + 1) % r.capacity
	return e
}

// Snapshot returns the retained records, oldest first.
func (r *Recorder) Snapshot() RequestsResponse {
	r.mu.Lock()
	entries := make([]*entry, 0, len(r.ring))
	if len(r.ring) < r.capacity {
		entries = append(entries, r.ring...)
	} else {
		entries = append(entries, r.ring[r.next:]...)
		entries = append(entries, r.ring[:r.next]...)
	}
	total := r.total
	r.mu.Unlock()

	out := RequestsResponse{Total: total, Capacity: r.capacity, Requests: make([]Record, 0, len(entries))}
	for _, e := range entries {
		out.Requests = append(out.Requests, e.snapshot())
	}
	return out
}

// Reset forgets every retained record; sequence numbers keep counting.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring = r.ring[:0]
	r.next = 0
}

// WrapOutermost records the request before any filter of the stock chain
// sees it, and its final status.
func (r *Recorder) WrapOutermost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		e := r.start(req)
		req = req.WithContext(context.WithValue(req.Context(), recordKey{}, e))
		// WrapForHTTP1Or2 keeps Flusher/Hijacker/CloseNotifier visible, which
		// watch and upgrade requests need.
		sw := responsewriter.WrapForHTTP1Or2(&statusWriter{ResponseWriter: w, e: e})
		next.ServeHTTP(sw, req)
		e.setStatus(http.StatusOK) // no-op if a status was written
	})
}

// WrapInnermost records the effective user once authentication,
// impersonation and authorization have all passed.
func (r *Recorder) WrapInnermost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if e := recordFrom(req.Context()); e != nil {
			if u, ok := request.UserFrom(req.Context()); ok {
				e.setUser(u)
			}
		}
		next.ServeHTTP(w, req)
	})
}

// Handler serves GET /requests (optionally ?path=EXACT&since=SEQ) and
// DELETE /requests.
func (r *Recorder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /requests", func(w http.ResponseWriter, req *http.Request) {
		snap := r.Snapshot()
		path := req.URL.Query().Get("path")
		since, _ := strconv.ParseInt(req.URL.Query().Get("since"), 10, 64)
		if path != "" || since > 0 {
			kept := snap.Requests[:0]
			for _, rec := range snap.Requests {
				if (path == "" || rec.Path == path) && rec.Seq > since {
					kept = append(kept, rec)
				}
			}
			snap.Requests = kept
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(snap) //nolint:errcheck // client went away; nothing to do
	})
	mux.HandleFunc("DELETE /requests", func(w http.ResponseWriter, _ *http.Request) {
		r.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

type statusWriter struct {
	http.ResponseWriter
	e *entry
}

func (s *statusWriter) WriteHeader(code int) {
	// 1xx informational responses are not the final status.
	if code >= 200 || code == http.StatusSwitchingProtocols {
		s.e.setStatus(code)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.e.setStatus(http.StatusOK)
	s.e.appendErrorBody(b)
	return s.ResponseWriter.Write(b)
}

// Unwrap lets responsewriter.GetOriginal reach the server's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// headerLines flattens h into one entry per received line.
func headerLines(h http.Header) ([]HeaderLine, bool) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	var lines []HeaderLine
	for _, name := range names {
		for _, v := range h[name] {
			if len(lines) == maxHeaderLines {
				return lines, true
			}
			if isCredentialHeader(name) {
				v = redactCredential(v)
			}
			if len(v) > maxHeaderValueLen {
				v = v[:maxHeaderValueLen]
			}
			lines = append(lines, HeaderLine{Name: name, Value: v})
		}
	}
	return lines, false
}

func isCredentialHeader(name string) bool {
	return name == "Authorization" || name == "Proxy-Authorization"
}

// redactCredential keeps the scheme and replaces the credential with the
// first 12 hex characters of its SHA-256 — the same fingerprint the product
// logs (token.Fingerprint) — so a test can tell which token arrived without
// the recorder ever exposing one.
func redactCredential(v string) string {
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok {
		scheme, cred = "", v
	}
	sum := sha256.Sum256([]byte(cred))
	fp := "sha256:" + hex.EncodeToString(sum[:6])
	if scheme == "" {
		return fp
	}
	return scheme + " " + fp
}

func userInfoOf(u user.Info) *UserInfo {
	if u == nil {
		return nil
	}
	out := &UserInfo{
		Username: u.GetName(),
		UID:      u.GetUID(),
		Groups:   append([]string(nil), u.GetGroups()...),
	}
	if extra := u.GetExtra(); len(extra) > 0 {
		out.Extra = make(map[string][]string, len(extra))
		for k, v := range extra {
			out.Extra[k] = append([]string(nil), v...)
		}
	}
	return out
}

func decisionString(d authorizer.Decision) string {
	switch d {
	case authorizer.DecisionAllow:
		return "allow"
	case authorizer.DecisionDeny:
		return "deny"
	default:
		return "no-opinion"
	}
}
