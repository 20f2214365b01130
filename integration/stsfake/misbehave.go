package stsfake

import (
	"net/http"
	"strings"
)

// misbehave answers with a pre-authentication fault.
func (s *Server) misbehave(w http.ResponseWriter, r *http.Request, f Fault, requestID string) {
	switch f.Kind {
	case FaultThrottle:
		// STS throttles with 400, not 429 (reference §7.4).
		writeError(w, r, errorf(http.StatusBadRequest, "Throttling", "Rate exceeded"), requestID)
	case FaultServerError:
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		code := "InternalFailure"
		if status == http.StatusServiceUnavailable {
			code = "ServiceUnavailable"
		}
		writeError(w, r, errorf(status, code, "stsfake: injected %d", status), requestID)
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Network login required</h1></body></html>\n"))
	case FaultTruncated:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111122223333","Arn":"arn:aws:iam::1111`))
	case FaultHugeBody:
		size := f.Size
		if size == 0 {
			size = defaultHugeBody
		}
		w.Header().Set("Content-Type", "application/json")
		const head = `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111122223333","Arn":"arn:aws:iam::111122223333:user/`
		const tail = `","UserId":"AIDAEXAMPLE"}}}`
		pad := max(size-len(head)-len(tail), 0)
		_, _ = w.Write([]byte(head))
		chunk := strings.Repeat("a", 32<<10)
		for pad > 0 {
			n := min(pad, len(chunk))
			if _, err := w.Write([]byte(chunk[:n])); err != nil {
				return
			}
			pad -= n
		}
		_, _ = w.Write([]byte(tail))
	case FaultRedirect:
		w.Header().Set("Location", f.Location)
		w.WriteHeader(http.StatusFound)
	case FaultCloseConn:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		// HTTP/2 or a wrapped writer: aborting the handler resets the
		// stream without an answer.
		panic(http.ErrAbortHandler)
	}
}
