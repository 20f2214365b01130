package stsfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// adminHandler is the control API for tests and the demo:
//
//	GET    /_fake/stats    counters (Stats as JSON)
//	POST   /_fake/reset    zero the counters
//	GET    /_fake/fault    the current fault
//	PUT    /_fake/fault    set a fault: {"kind":"throttle","count":3}
//	DELETE /_fake/fault    clear the fault
//	PUT    /_fake/latency  {"latency":"50ms"}
//
// It lives on the same listener as STS, which is fine for a stand-in that
// only ever binds to loopback in tests.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_fake/stats", func(w http.ResponseWriter, _ *http.Request) {
		adminJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /_fake/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetStats()
		adminJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /_fake/fault", func(w http.ResponseWriter, _ *http.Request) {
		adminJSON(w, http.StatusOK, s.Fault())
	})
	setFault := func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := decodeAdmin(r, &f); err != nil {
			adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if err := s.SetFault(f); err != nil {
			adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		adminJSON(w, http.StatusOK, s.Fault())
	}
	mux.HandleFunc("PUT /_fake/fault", setFault)
	mux.HandleFunc("POST /_fake/fault", setFault)
	mux.HandleFunc("DELETE /_fake/fault", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFault()
		adminJSON(w, http.StatusOK, s.Fault())
	})
	setLatency := func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Latency string `json:"latency"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		d, err := time.ParseDuration(body.Latency)
		if err == nil {
			err = s.SetLatency(d)
		}
		if err != nil {
			adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		adminJSON(w, http.StatusOK, map[string]string{"latency": d.String()})
	}
	mux.HandleFunc("PUT /_fake/latency", setLatency)
	mux.HandleFunc("POST /_fake/latency", setLatency)
	return mux
}

func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
