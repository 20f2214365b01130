package sts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

// Every error class against the faithful stand-in over HTTPS, through an
// Endpoint override (the token's host stays the Host header).
func TestGetCallerIdentityAgainstStandIn(t *testing.T) {
	now := time.Now()
	users := stsfixture.Principals()
	tests := map[string]struct {
		creds          stsfake.Credentials
		host           string
		signCluster    string
		signedAt       time.Time
		fault          stsfake.Fault
		want           Caller
		wantClass      error
		wantCode       string
		wantReason     string
		wantRetryAfter time.Duration
	}{
		"user, global host":          {creds: userCreds, want: Caller{ARN: users[0].ARN, Account: testAccount, UserID: users[0].UserID}},
		"role session, regional":     {creds: roleCreds, host: "sts.eu-west-1.amazonaws.com", want: Caller{ARN: users[1].ARN, Account: testAccount, UserID: users[1].UserID}},
		"signed for another cluster": {creds: userCreds, signCluster: "cluster-b", wantClass: ErrUnauthenticated, wantCode: "SignatureDoesNotMatch", wantReason: "rejected"},
		"wrong secret":               {creds: stsfake.Credentials{AccessKeyID: userCreds.AccessKeyID, SecretAccessKey: "nope"}, wantClass: ErrUnauthenticated, wantCode: "SignatureDoesNotMatch", wantReason: "rejected"},
		"unknown key":                {creds: stsfake.Credentials{AccessKeyID: "AKIANOBODYEXAMPLE000", SecretAccessKey: "x"}, wantClass: ErrUnauthenticated, wantCode: "InvalidClientTokenId", wantReason: "rejected"},
		"missing session token":      {creds: stsfake.Credentials{AccessKeyID: roleCreds.AccessKeyID, SecretAccessKey: roleCreds.SecretAccessKey}, wantClass: ErrUnauthenticated, wantCode: "InvalidClientTokenId", wantReason: "rejected"},
		"expired":                    {creds: userCreds, signedAt: now.Add(-16 * time.Minute), wantClass: ErrUnauthenticated, wantCode: "ExpiredToken", wantReason: "rejected"},
		"throttled by STS":           {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultThrottle}, wantClass: ErrThrottled, wantCode: "Throttling", wantRetryAfter: time.Second},
		"internal failure":           {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultServerError}, wantClass: ErrUnavailable, wantCode: "InternalFailure", wantReason: "status"},
		"service unavailable":        {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultServerError, Status: 503}, wantClass: ErrUnavailable, wantCode: "ServiceUnavailable", wantReason: "status"},
		"html page":                  {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultHTML}, wantClass: ErrUnavailable, wantReason: "content-type"},
		"truncated json":             {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultTruncated}, wantClass: ErrUnavailable, wantReason: "decode"},
		"huge body":                  {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultHugeBody}, wantClass: ErrUnavailable, wantReason: "oversize"},
		"json as text/html":          {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultWrongContent}, wantClass: ErrUnavailable, wantReason: "content-type"},
		"connection closed":          {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultCloseConn}, wantClass: ErrUnavailable, wantReason: "network"},
		"redirect":                   {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultRedirect, Location: "https://127.0.0.1:9/"}, wantClass: ErrUnavailable, wantReason: "redirect"},
		// The client reports what STS said; judging the identity is
		// identity.FromSTS's job (tested in package verify).
		"unparseable ARN is passed on": {creds: userCreds, fault: stsfake.Fault{Kind: stsfake.FaultBadARN}, want: Caller{ARN: "arn:aws:not-an-identity", Account: testAccount, UserID: users[0].UserID}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fake := stsfixture.Start(t, func() time.Time { return now })
			if tc.fault.Kind != stsfake.FaultNone {
				if err := fake.Server.SetFault(tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			c, err := New(Options{Endpoint: fake.URL, CAFile: fake.CAFile})
			if err != nil {
				t.Fatal(err)
			}
			host, signCluster, at := tc.host, tc.signCluster, tc.signedAt
			if host == "" {
				host = "sts.amazonaws.com"
			}
			if signCluster == "" {
				signCluster = ourCluster
			}
			if at.IsZero() {
				at = now
			}
			p := signed(t, tc.creds, host, signCluster, at)

			got, err := c.GetCallerIdentity(context.Background(), p, ourCluster)
			wantClass(t, err, tc.wantClass)
			wantNoLeak(t, err, p)
			if got != tc.want {
				t.Errorf("caller = %+v, want %+v", got, tc.want)
			}
			var (
				stsErr *Error
				thr    *ThrottledError
			)
			switch {
			case errors.As(err, &stsErr):
				if stsErr.Code != tc.wantCode || stsErr.Reason != tc.wantReason {
					t.Errorf("code, reason = %q, %q; want %q, %q (%v)", stsErr.Code, stsErr.Reason, tc.wantCode, tc.wantReason, err)
				}
			case errors.As(err, &thr):
				if thr.Code != tc.wantCode || thr.RetryAfter != tc.wantRetryAfter || thr.Local {
					t.Errorf("throttled = %+v, want code %q retry after %s", thr, tc.wantCode, tc.wantRetryAfter)
				}
			}
			if ids := fake.Server.ClusterIDs(); len(ids) != 1 || ids[0] != ourCluster {
				t.Errorf("stand-in saw cluster ids %q, want exactly [%q]", ids, ourCluster)
			}
		})
	}
}

// recorder is an httptest handler that records what it received.
type recorder struct {
	requests atomic.Int64
	host     atomic.Value // string
	query    atomic.Value // string
	header   atomic.Value // http.Header
	answer   func(w http.ResponseWriter, r *http.Request)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.requests.Add(1)
	rec.host.Store(r.Host)
	rec.query.Store(r.URL.RawQuery)
	rec.header.Store(r.Header.Clone())
	rec.answer(w, r)
}

func okAnswer(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111122223333","Arn":"arn:aws:iam::111122223333:user/alice","UserId":"AIDAEXAMPLE"},"ResponseMetadata":{"RequestId":"r"}}}`)
}

func startRecorder(t *testing.T, answer func(http.ResponseWriter, *http.Request)) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{answer: answer}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv
}

// A fixed presigned URL with deliberately unusual but valid escaping, to
// prove the query goes out byte for byte.
const oddURL = "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAUSEREXAMPLE00001%2f20260301%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date=20260301T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=a%2Bb%3D%3D&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRequestOnTheWire(t *testing.T) {
	rec, srv := startRecorder(t, okAnswer)
	c, err := New(Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := presignedFromURL(t, oddURL)
	if _, err := c.GetCallerIdentity(context.Background(), p, ourCluster); err != nil {
		t.Fatal(err)
	}
	_, wantQuery, _ := strings.Cut(oddURL, "?")
	header := rec.header.Load().(http.Header)
	tests := map[string]struct{ got, want string }{
		"Host is the token's host": {got: rec.host.Load().(string), want: "sts.eu-west-1.amazonaws.com"},
		"query byte for byte":      {got: rec.query.Load().(string), want: wantQuery},
		"our cluster id":           {got: strings.Join(header.Values("X-K8s-Aws-Id"), ","), want: ourCluster},
		"JSON asked for":           {got: header.Get("Accept"), want: "application/json"},
		"no compression":           {got: header.Get("Accept-Encoding"), want: ""},
		"no Authorization":         {got: header.Get("Authorization"), want: ""},
		"one request":              {got: fmt.Sprint(rec.requests.Load()), want: "1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	target, targetSrv := startRecorder(t, okAnswer)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			_, srv := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, targetSrv.URL+"/?"+r.URL.RawQuery, status)
			})
			c, err := New(Options{Endpoint: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			p := presignedFromURL(t, oddURL)
			_, err = c.GetCallerIdentity(context.Background(), p, ourCluster)
			wantClass(t, err, ErrUnavailable)
			wantNoLeak(t, err, p)
			var e *Error
			if !errors.As(err, &e) || e.Reason != "redirect" || e.Status != status {
				t.Errorf("err = %v, want a redirect error with status %d", err, status)
			}
			if n := target.requests.Load(); n != 0 {
				t.Errorf("redirect target received %d requests, want 0", n)
			}
		})
	}
}

// Status and body combinations only a hand-made server can produce.
func TestClassification(t *testing.T) {
	sig := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := map[string]struct {
		status         int
		contentType    string
		retryAfter     string
		body           string
		want           Caller
		wantClass      error
		wantCode       string
		wantMessage    string
		wantRetryAfter time.Duration
	}{
		"ok with charset":          {status: 200, contentType: "application/json; charset=utf-8", body: `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"1","Arn":"arn:aws:iam::1:root","UserId":"1"}}}`, want: Caller{ARN: "arn:aws:iam::1:root", Account: "1", UserID: "1"}},
		"ok but XML":               {status: 200, contentType: "text/xml", body: `<GetCallerIdentityResponse/>`, wantClass: ErrUnavailable},
		"ok without content type":  {status: 200, body: `{}`, wantClass: ErrUnavailable},
		"ok but empty object":      {status: 200, contentType: "application/json", body: `{}`, wantClass: ErrUnavailable},
		"ok but missing UserId":    {status: 200, contentType: "application/json", body: `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"1","Arn":"arn:aws:iam::1:root"}}}`, wantClass: ErrUnavailable},
		"ok with trailing garbage": {status: 200, contentType: "application/json", body: `{"GetCallerIdentityResponse":{}} x`, wantClass: ErrUnavailable},
		"no content":               {status: 204, wantClass: ErrUnavailable},
		"signature":                {status: 403, contentType: "application/json", body: `{"Error":{"Code":"SignatureDoesNotMatch","Message":"The request signature we calculated does not match","Type":"Sender"}}`, wantClass: ErrUnauthenticated, wantCode: "SignatureDoesNotMatch", wantMessage: "The request signature we calculated does not match"},
		"access denied":            {status: 403, contentType: "application/json", body: `{"Error":{"Code":"AccessDenied","Message":"no"}}`, wantClass: ErrUnauthenticated, wantCode: "AccessDenied", wantMessage: "no"},
		"expired token XML":        {status: 403, contentType: "text/xml", body: `<ErrorResponse><Error><Code>ExpiredToken</Code><Message>expired</Message></Error></ErrorResponse>`, wantClass: ErrUnauthenticated, wantCode: "ExpiredToken", wantMessage: "expired"},
		"403 empty body":           {status: 403, wantClass: ErrUnauthenticated},
		"400 incomplete signature": {status: 400, contentType: "application/json", body: `{"Error":{"Code":"IncompleteSignature"}}`, wantClass: ErrUnauthenticated, wantCode: "IncompleteSignature"},
		"404":                      {status: 404, contentType: "text/html", body: "<html>", wantClass: ErrUnauthenticated},
		"message echoing the signature is withheld":         {status: 403, contentType: "application/json", body: `{"Error":{"Code":"SignatureDoesNotMatch","Message":"signature ` + sig + ` is wrong"}}`, wantClass: ErrUnauthenticated, wantCode: "SignatureDoesNotMatch", wantMessage: "[message withheld: it quotes the request]"},
		"message quoting the canonical request is withheld": {status: 403, contentType: "application/json", body: `{"Error":{"Code":"SignatureDoesNotMatch","Message":"canonical: GET / X-Amz-Date=..."}}`, wantClass: ErrUnauthenticated, wantCode: "SignatureDoesNotMatch", wantMessage: "[message withheld: it quotes the request]"},
		"hostile code is dropped":                           {status: 403, contentType: "application/json", body: `{"Error":{"Code":"a b\nc","Message":"m"}}`, wantClass: ErrUnauthenticated, wantMessage: "m"},
		"long message is cut":                               {status: 403, contentType: "application/json", body: `{"Error":{"Code":"AccessDenied","Message":"` + strings.Repeat("x", 500) + `"}}`, wantClass: ErrUnauthenticated, wantCode: "AccessDenied", wantMessage: strings.Repeat("x", 200) + "..."},
		"throttling JSON":                                   {status: 400, contentType: "application/json", body: `{"Error":{"Code":"Throttling","Message":"Rate exceeded","Type":"Sender"}}`, wantClass: ErrThrottled, wantCode: "Throttling", wantRetryAfter: time.Second},
		"throttling XML":                                    {status: 400, contentType: "text/xml", body: `<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>`, wantClass: ErrThrottled, wantCode: "Throttling", wantRetryAfter: time.Second},
		"429 with Retry-After":                              {status: 429, retryAfter: "7", wantClass: ErrThrottled, wantCode: "TooManyRequests", wantRetryAfter: 7 * time.Second},
		"Retry-After is capped":                             {status: 429, retryAfter: "86400", wantClass: ErrThrottled, wantCode: "TooManyRequests", wantRetryAfter: time.Minute},
		"request timeout":                                   {status: 408, wantClass: ErrUnavailable},
		"500":                                               {status: 500, wantClass: ErrUnavailable},
		"502 html":                                          {status: 502, contentType: "text/html", body: "<html>bad gateway</html>", wantClass: ErrUnavailable},
		"503":                                               {status: 503, contentType: "application/json", body: `{"Error":{"Code":"ServiceUnavailable"}}`, wantClass: ErrUnavailable, wantCode: "ServiceUnavailable"},
		"504":                                               {status: 504, wantClass: ErrUnavailable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, srv := startRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				} else {
					w.Header()["Content-Type"] = nil // no sniffing
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			c, err := New(Options{Endpoint: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			p := presignedFromURL(t, strings.Replace(oddURL, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", sig, 1))
			got, err := c.GetCallerIdentity(context.Background(), p, ourCluster)
			wantClass(t, err, tc.wantClass)
			wantNoLeak(t, err, p)
			if got != tc.want {
				t.Errorf("caller = %+v, want %+v", got, tc.want)
			}
			var (
				e   *Error
				thr *ThrottledError
			)
			switch {
			case errors.As(err, &e):
				if e.Status != tc.status || e.Code != tc.wantCode || e.Message != tc.wantMessage {
					t.Errorf("error = %+v, want status %d code %q message %q", e, tc.status, tc.wantCode, tc.wantMessage)
				}
			case errors.As(err, &thr):
				if thr.Status != tc.status || thr.Code != tc.wantCode || thr.RetryAfter != tc.wantRetryAfter {
					t.Errorf("throttled = %+v, want status %d code %q retry after %s", thr, tc.status, tc.wantCode, tc.wantRetryAfter)
				}
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	identity := func(size int) string {
		head := `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"1","Arn":"arn:aws:iam::1:root","UserId":"1`
		tail := `"}}}`
		return head + strings.Repeat("1", size-len(head)-len(tail)) + tail
	}
	tests := map[string]struct {
		size      int
		chunked   bool
		wantClass error
	}{
		"exactly the limit":          {size: limit},
		"one byte over, with length": {size: limit + 1, wantClass: ErrUnavailable},
		"one byte over, chunked":     {size: limit + 1, chunked: true, wantClass: ErrUnavailable},
		"a megabyte, chunked":        {size: 1 << 20, chunked: true, wantClass: ErrUnavailable},
		"exactly the limit, chunked": {size: limit, chunked: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := identity(tc.size)
			_, srv := startRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if !tc.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				}
				w.WriteHeader(200)
				if tc.chunked {
					w.(http.Flusher).Flush()
				}
				fmt.Fprint(w, body)
			})
			c, err := New(Options{Endpoint: srv.URL, MaxBodyBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetCallerIdentity(context.Background(), presignedFromURL(t, oddURL), ourCluster)
			wantClass(t, err, tc.wantClass)
			var e *Error
			if tc.wantClass != nil && (!errors.As(err, &e) || e.Reason != "oversize") {
				t.Errorf("err = %v, want reason oversize", err)
			}
		})
	}
}

// Timeouts are asserted by error class, not by wall clock.
func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stall := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	stallBody := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		fmt.Fprint(w, `{"GetCallerIdentityResponse":`)
		w.(http.Flusher).Flush()
		stall(w, r)
	}
	tests := map[string]struct {
		handler    func(http.ResponseWriter, *http.Request)
		timeout    time.Duration
		ctx        func() (context.Context, context.CancelFunc)
		wantReason string
		wantCause  error
	}{
		"no headers within the timeout": {handler: stall, timeout: 50 * time.Millisecond, wantReason: "timeout"},
		"body stalls":                   {handler: stallBody, timeout: 50 * time.Millisecond, wantReason: "timeout"},
		"caller's deadline first": {handler: stall, timeout: time.Minute, wantReason: "timeout", wantCause: context.DeadlineExceeded,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			}},
		"caller cancels": {handler: stall, timeout: time.Minute, wantReason: "canceled", wantCause: context.Canceled,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, srv := startRecorder(t, tc.handler)
			c, err := New(Options{Endpoint: srv.URL, Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			p := presignedFromURL(t, oddURL)
			_, err = c.GetCallerIdentity(ctx, p, ourCluster)
			wantClass(t, err, ErrUnavailable)
			wantNoLeak(t, err, p)
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.wantReason {
				t.Errorf("err = %v, want reason %q", err, tc.wantReason)
			}
			if tc.wantCause != nil && !errors.Is(err, tc.wantCause) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.wantCause)
			}
		})
	}
}

func TestNetworkFailures(t *testing.T) {
	// A port nobody listens on: take one, then close it.
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	tests := map[string]struct {
		endpoint   string
		caFile     bool
		wantReason string
	}{
		"connection refused":           {endpoint: dead, wantReason: "network"},
		"TLS to an untrusted stand-in": {endpoint: "stand-in", wantReason: "network"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			endpoint := tc.endpoint
			if endpoint == "stand-in" {
				endpoint = stsfixture.Start(t, time.Now).URL
			}
			c, err := New(Options{Endpoint: endpoint})
			if err != nil {
				t.Fatal(err)
			}
			p := presignedFromURL(t, oddURL)
			_, err = c.GetCallerIdentity(context.Background(), p, ourCluster)
			wantClass(t, err, ErrUnavailable)
			wantNoLeak(t, err, p)
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.wantReason {
				t.Errorf("err = %v, want reason %q", err, tc.wantReason)
			}
		})
	}
}

func TestBadArguments(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := presignedFromURL(t, oddURL)
	tests := map[string]struct {
		p         *token.Presigned
		clusterID string
	}{
		"nil presigned":    {p: nil, clusterID: ourCluster},
		"empty cluster id": {p: p, clusterID: ""},
		"no URL":           {p: &token.Presigned{Host: "sts.amazonaws.com"}, clusterID: ourCluster},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := c.GetCallerIdentity(context.Background(), tc.p, tc.clusterID)
			wantClass(t, err, ErrUnavailable)
		})
	}
}

// The limiter runs on the injected clock, so the test is exact.
func TestRateLimit(t *testing.T) {
	rec, srv := startRecorder(t, okAnswer)
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Endpoint: srv.URL, RateLimit: 2, RateBurst: 2, Metrics: m, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	p := presignedFromURL(t, oddURL)
	steps := []struct {
		advance        time.Duration
		wantLocal      bool
		wantRetryAfter time.Duration
	}{
		{},
		{},
		{wantLocal: true, wantRetryAfter: 500 * time.Millisecond},
		{advance: 200 * time.Millisecond, wantLocal: true, wantRetryAfter: 300 * time.Millisecond},
		{advance: 300 * time.Millisecond},
		{wantLocal: true, wantRetryAfter: 500 * time.Millisecond},
	}
	for i, s := range steps {
		clock = clock.Add(s.advance)
		_, err := c.GetCallerIdentity(context.Background(), p, ourCluster)
		var thr *ThrottledError
		if s.wantLocal {
			if !errors.As(err, &thr) || !thr.Local || thr.RetryAfter != s.wantRetryAfter {
				t.Fatalf("step %d: err = %v, want local throttling, retry after %s", i, err, s.wantRetryAfter)
			}
			wantClass(t, err, ErrThrottled)
		} else if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if n := rec.requests.Load(); n != 3 {
		t.Errorf("STS received %d requests, want 3 (refusals send nothing)", n)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues(resultRateLimited, "eu-west-1")); got != 3 {
		t.Errorf("rate_limited = %v, want 3", got)
	}
}

func TestMetrics(t *testing.T) {
	fake := stsfixture.Start(t, time.Now)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Endpoint: fake.URL, CAFile: fake.CAFile, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	good := signed(t, userCreds, "sts.amazonaws.com", ourCluster, time.Now())
	regional := signed(t, userCreds, "sts.eu-west-1.amazonaws.com", ourCluster, time.Now())
	bad := signed(t, userCreds, "sts.amazonaws.com", "cluster-b", time.Now())
	for _, p := range []*token.Presigned{good, good, regional, bad} {
		_, _ = c.GetCallerIdentity(context.Background(), p, ourCluster)
	}
	_ = fake.Server.SetFault(stsfake.Fault{Kind: stsfake.FaultThrottle, Count: 1})
	_, _ = c.GetCallerIdentity(context.Background(), good, ourCluster)
	_ = fake.Server.SetFault(stsfake.Fault{Kind: stsfake.FaultServerError, Count: 1})
	_, _ = c.GetCallerIdentity(context.Background(), regional, ourCluster)

	tests := map[string]struct {
		result, region string
		want           float64
	}{
		"ok global":                  {result: resultOK, region: "global", want: 2},
		"ok regional":                {result: resultOK, region: "eu-west-1", want: 1},
		"unauthenticated global":     {result: resultUnauthenticated, region: "global", want: 1},
		"throttled global":           {result: resultThrottled, region: "global", want: 1},
		"unavailable regional":       {result: resultUnavailable, region: "eu-west-1", want: 1},
		"nothing unavailable global": {result: resultUnavailable, region: "global", want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.result, tc.region)); got != tc.want {
				t.Errorf("requests{%s,%s} = %v, want %v", tc.result, tc.region, got, tc.want)
			}
		})
	}
	if n := testutil.CollectAndCount(m.duration); n != 4 {
		t.Errorf("duration series = %d, want the 4 pre-initialised results", n)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := map[string]struct {
		o         Options
		wantError []string
	}{
		"defaults":               {o: Options{}},
		"https vpc endpoint":     {o: Options{Endpoint: "https://vpce-0123-abcd.sts.eu-west-1.vpce.amazonaws.com"}},
		"http loopback":          {o: Options{Endpoint: "http://127.0.0.1:8080/"}},
		"http loopback v6":       {o: Options{Endpoint: "http://[::1]:8080"}},
		"http elsewhere":         {o: Options{Endpoint: "http://sts.example.com"}, wantError: []string{"loopback"}},
		"http localhost by name": {o: Options{Endpoint: "http://localhost:8080"}, wantError: []string{"loopback"}},
		"ftp":                    {o: Options{Endpoint: "ftp://x"}, wantError: []string{"scheme"}},
		"with path":              {o: Options{Endpoint: "https://x/sts"}, wantError: []string{"path"}},
		"with userinfo":          {o: Options{Endpoint: "https://u:p@x"}, wantError: []string{"userinfo"}},
		"with query":             {o: Options{Endpoint: "https://x/?a=b"}, wantError: []string{"query"}},
		"no host":                {o: Options{Endpoint: "https:///"}, wantError: []string{"no host"}},
		"everything wrong at once": {
			o:         Options{Endpoint: "http://10.0.0.1/x", Timeout: -1, MaxBodyBytes: 1 << 30, RateLimit: -1, RateBurst: -1},
			wantError: []string{"loopback", "path", "timeout", "max body", "rate limit", "rate burst"},
		},
		"burst without limit": {o: Options{RateBurst: 3}, wantError: []string{"needs a rate limit"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.o.Validate()
			if len(tc.wantError) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want errors")
			}
			for _, want := range tc.wantError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestNewRejectsBadCAFile(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		content   string
		missing   bool
		wantError string
	}{
		"missing":   {missing: true, wantError: "CA file"},
		"not a PEM": {content: "hello", wantError: "no PEM certificate"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := dir + "/" + strings.ReplaceAll(name, " ", "-")
			if !tc.missing {
				if err := writeFile(path, tc.content); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := New(Options{CAFile: path}); err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("New = %v, want %q", err, tc.wantError)
			}
		})
	}
}
