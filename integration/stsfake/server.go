package stsfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a stand-in.
type Options struct {
	// Principals are the keys the stand-in accepts.
	Principals []Principal
	// Now is the stand-in's clock; time.Now when nil. Tests move it to
	// check the 15-minute window.
	Now func() time.Time
	// Latency delays every STS answer (real STS: 20-50 ms in-region).
	Latency time.Duration
	// KeepClusterIDs is how many recent x-k8s-aws-id values are kept for
	// Stats (default 64).
	KeepClusterIDs int
}

// Validate reports every problem.
func (o Options) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, p := range o.Principals {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[p.AccessKeyID] {
			errs = append(errs, fmt.Errorf("duplicate access key id %q", p.AccessKeyID))
		}
		seen[p.AccessKeyID] = true
	}
	if o.Latency < 0 {
		errs = append(errs, errors.New("latency must not be negative"))
	}
	if o.KeepClusterIDs < 0 {
		errs = append(errs, errors.New("KeepClusterIDs must not be negative"))
	}
	return errors.Join(errs...)
}

// Server is an STS GetCallerIdentity stand-in. It is safe for concurrent use;
// principals, faults and latency may be changed while it serves.
type Server struct {
	now func() time.Time

	mu         sync.Mutex
	principals map[string]Principal
	fault      Fault
	latency    time.Duration
	stats      counters
}

// New builds a stand-in.
func New(o Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("stsfake: %w", err)
	}
	s := &Server{
		now:        o.Now,
		principals: map[string]Principal{},
		latency:    o.Latency,
		stats:      counters{keep: o.KeepClusterIDs},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.stats.keep == 0 {
		s.stats.keep = 64
	}
	for _, p := range o.Principals {
		s.principals[p.AccessKeyID] = p
	}
	return s, nil
}

// AddPrincipal adds or replaces a principal.
func (s *Server) AddPrincipal(p Principal) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.principals[p.AccessKeyID] = p
	return nil
}

// SetFault makes the stand-in misbehave until the fault is cleared or its
// Count is used up.
func (s *Server) SetFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("stsfake: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
	return nil
}

// ClearFault returns the stand-in to normal behaviour.
func (s *Server) ClearFault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = Fault{}
}

// Fault is the current fault.
func (s *Server) Fault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// SetLatency changes the delay before every STS answer.
func (s *Server) SetLatency(d time.Duration) error {
	if d < 0 {
		return errors.New("stsfake: latency must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
	return nil
}

// Stats are the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.snapshot()
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = counters{keep: s.stats.keep}
}

// ClusterIDs are the most recent x-k8s-aws-id values received, oldest first.
func (s *Server) ClusterIDs() []string { return s.Stats().ClusterIDs }

// Handler serves STS on / and the admin API on /_fake/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_fake/", s.adminHandler())
	mux.Handle("/", s)
	return mux
}

// ServeHTTP answers one STS request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	requestID := newRequestID()
	fault, latency := s.begin(r)
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.finish("client-gone")
			return
		}
	}
	if fault.Kind != FaultNone && fault.preAuth() {
		s.finish("fault:" + string(fault.Kind))
		s.misbehave(w, r, fault, requestID)
		return
	}

	if r.Method != http.MethodGet {
		s.fail(w, r, errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "stsfake only answers presigned GET requests."), requestID)
		return
	}
	principal, apiErr := verifyPresigned(r, s.lookup, s.now())
	if apiErr != nil {
		s.fail(w, r, apiErr, requestID)
		return
	}
	// STS authenticates first and dispatches the action afterwards.
	query := r.URL.Query()
	if action := query.Get("Action"); action != "GetCallerIdentity" {
		if action == "" {
			s.fail(w, r, errorf(http.StatusBadRequest, "MissingAction", "Missing Action"), requestID)
			return
		}
		s.fail(w, r, errorf(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", action, query.Get("Version")), requestID)
		return
	}
	if v, ok := query["Version"]; ok && (len(v) != 1 || v[0] != "2011-06-15") {
		s.fail(w, r, errorf(http.StatusBadRequest, "InvalidAction", "Could not find operation GetCallerIdentity for version %s", strings.Join(v, ",")), requestID)
		return
	}

	id := callerIdentity{Arn: principal.ARN, UserID: principal.UserID, Account: principal.Account}
	switch fault.Kind {
	case FaultBadARN:
		id.Arn = "arn:aws:not-an-identity"
	case FaultAccountMismatch:
		id.Account = "999999999999"
	case FaultUserIDMismatch:
		if prefix, _, ok := strings.Cut(id.UserID, ":"); ok {
			id.UserID = prefix + ":someone-else"
		} else {
			id.UserID = id.UserID + ":someone-else"
		}
	case FaultWrongContent:
		s.finish("fault:" + string(fault.Kind))
		var body jsonIdentityResponse
		body.GetCallerIdentityResponse.GetCallerIdentityResult = id
		body.GetCallerIdentityResponse.ResponseMetadata.RequestID = requestID
		data, _ := json.Marshal(body)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(data)
		return
	}
	if fault.Kind != FaultNone {
		s.finish("fault:" + string(fault.Kind))
	} else {
		s.finish("ok")
	}
	writeIdentity(w, r, id, requestID)
}

// begin records the request and takes the fault that applies to it.
func (s *Server) begin(r *http.Request) (Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ids := r.Header.Values(ClusterIDHeader); len(ids) > 0 {
		s.stats.sawClusterID(strings.Join(ids, ","))
	}
	f := s.fault
	if f.Kind != FaultNone && f.Count > 0 {
		s.fault.Count--
		if s.fault.Count == 0 {
			s.fault = Fault{}
		}
	}
	return f, s.latency
}

func (s *Server) finish(outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.record(outcome)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, e *apiError, requestID string) {
	s.finish(e.Code)
	writeError(w, r, e, requestID)
}

func (s *Server) lookup(accessKeyID string) (Principal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.principals[accessKeyID]
	return p, ok
}
