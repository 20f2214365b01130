package stsfake

import (
	"errors"
	"fmt"
	"net/url"
)

// FaultKind names a misbehaviour the stand-in can be told to show, so that a
// client's handling of every way an upstream can fail is tested against a
// real HTTP server.
type FaultKind string

// Faults that replace the answer before the signature is even looked at
// (they simulate the network, a proxy or an STS outage)...
const (
	FaultNone         FaultKind = ""
	FaultThrottle     FaultKind = "throttle"       // 400 Throttling "Rate exceeded"
	FaultServerError  FaultKind = "server-error"   // Status (default 500), InternalFailure
	FaultHTML         FaultKind = "html"           // 200 text/html page, like a captive portal
	FaultTruncated    FaultKind = "truncated-json" // 200 application/json, cut mid-object
	FaultHugeBody     FaultKind = "huge-body"      // 200 application/json of Size bytes (default 1 MiB)
	FaultRedirect     FaultKind = "redirect"       // 302 to Location
	FaultCloseConn    FaultKind = "close"          // connection closed without an answer
	FaultWrongContent FaultKind = "wrong-content-type"
)

// ...and faults that corrupt the answer to a correctly signed request (an
// upstream that cannot be trusted).
const (
	FaultBadARN          FaultKind = "bad-arn"          // Arn that does not parse
	FaultAccountMismatch FaultKind = "account-mismatch" // Account differs from the ARN's account
	FaultUserIDMismatch  FaultKind = "userid-mismatch"  // UserId session differs from the ARN's
)

// Fault is the current misbehaviour.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Status is the HTTP status of a server-error fault (500..599).
	Status int `json:"status,omitempty"`
	// Location is where a redirect fault points.
	Location string `json:"location,omitempty"`
	// Size is the body size of a huge-body fault in bytes.
	Size int `json:"size,omitempty"`
	// Count is how many requests the fault applies to; 0 means until it is
	// cleared.
	Count int `json:"count,omitempty"`
}

const defaultHugeBody = 1 << 20

// Validate reports every problem with a fault.
func (f Fault) Validate() error {
	var errs []error
	switch f.Kind {
	case FaultNone, FaultThrottle, FaultHTML, FaultTruncated, FaultHugeBody, FaultCloseConn,
		FaultWrongContent, FaultBadARN, FaultAccountMismatch, FaultUserIDMismatch:
	case FaultServerError:
		if f.Status != 0 && (f.Status < 500 || f.Status > 599) {
			errs = append(errs, fmt.Errorf("status %d is not a 5xx", f.Status))
		}
	case FaultRedirect:
		if u, err := url.Parse(f.Location); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("redirect needs an absolute location, got %q", f.Location))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown fault kind %q", f.Kind))
	}
	if f.Count < 0 {
		errs = append(errs, errors.New("count must not be negative"))
	}
	if f.Size < 0 || f.Size > 64<<20 {
		errs = append(errs, errors.New("size must be between 0 and 64 MiB"))
	}
	return errors.Join(errs...)
}

// preAuth says whether the fault replaces the answer before verification.
func (f Fault) preAuth() bool {
	switch f.Kind {
	case FaultBadARN, FaultAccountMismatch, FaultUserIDMismatch, FaultWrongContent:
		return false
	}
	return true
}
