package stsfake

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func signNow(t *testing.T, c Credentials, host string) string {
	t.Helper()
	tok, err := SignToken(context.Background(), TokenRequest{Credentials: c, Host: host, ClusterID: testCluster, SignedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAnswerFormats(t *testing.T) {
	_, r := startFake(t, time.Now)
	good := signNow(t, roleCreds, "")
	bad := signNow(t, Credentials{AccessKeyID: "AKIANOBODYEXAMPLE000", SecretAccessKey: "x"}, "")
	role := testPrincipals()[1]
	tests := map[string]struct {
		token           string
		accept          string
		wantStatus      int
		wantContentType string
		wantBody        []string // substrings in order of appearance
	}{
		"identity as JSON": {
			token: good, accept: "application/json", wantStatus: 200, wantContentType: "application/json",
			wantBody: []string{`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"` + role.ARN + `","UserId":"` + role.UserID + `","Account":"` + testAccount + `"},"ResponseMetadata":{"RequestId":"`},
		},
		"identity as XML by default": {
			token: good, wantStatus: 200, wantContentType: "text/xml",
			wantBody: []string{`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`, `<GetCallerIdentityResult>`, `<Arn>` + role.ARN + `</Arn>`, `<UserId>` + role.UserID + `</UserId>`, `<Account>` + testAccount + `</Account>`, `<ResponseMetadata>`, `<RequestId>`},
		},
		"error as JSON": {
			token: bad, accept: "application/json", wantStatus: 403, wantContentType: "application/json",
			wantBody: []string{`{"Error":{"Type":"Sender","Code":"InvalidClientTokenId","Message":"The security token included in the request is invalid."},"RequestId":"`},
		},
		"error as XML": {
			token: bad, accept: "text/xml", wantStatus: 403, wantContentType: "text/xml",
			wantBody: []string{`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`, `<Error>`, `<Type>Sender</Type>`, `<Code>InvalidClientTokenId</Code>`, `</Error>`, `<RequestId>`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp := send(t, http.DefaultClient, r.URL, tc.token, testCluster, tc.accept)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.wantContentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.wantContentType)
			}
			rest := string(body)
			for _, want := range tc.wantBody {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("body lacks %q (in order):\n%s", want, body)
				}
				rest = rest[i+len(want):]
			}
			if strings.Contains(tc.wantContentType, "xml") {
				if err := xml.Unmarshal(body, new(struct{})); err != nil {
					t.Errorf("body is not XML: %v", err)
				}
			} else if !json.Valid(body) {
				t.Errorf("body is not JSON: %s", body)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	good := signNow(t, roleCreds, "")
	tests := map[string]struct {
		fault           Fault
		wantStatus      int
		wantContentType string
		wantBody        string // substring
		wantBodyLen     int
		wantLocation    string
		wantConnError   bool
	}{
		"throttle":            {fault: Fault{Kind: FaultThrottle}, wantStatus: 400, wantContentType: "application/json", wantBody: `"Code":"Throttling","Message":"Rate exceeded"`},
		"server error":        {fault: Fault{Kind: FaultServerError}, wantStatus: 500, wantContentType: "application/json", wantBody: `"Type":"Receiver","Code":"InternalFailure"`},
		"service unavailable": {fault: Fault{Kind: FaultServerError, Status: 503}, wantStatus: 503, wantContentType: "application/json", wantBody: `"Code":"ServiceUnavailable"`},
		"html page":           {fault: Fault{Kind: FaultHTML}, wantStatus: 200, wantContentType: "text/html; charset=utf-8", wantBody: "<html>"},
		"truncated json":      {fault: Fault{Kind: FaultTruncated}, wantStatus: 200, wantContentType: "application/json", wantBody: `"Arn":"arn:aws:iam::1111`},
		"huge body":           {fault: Fault{Kind: FaultHugeBody, Size: 300 << 10}, wantStatus: 200, wantContentType: "application/json", wantBodyLen: 300 << 10},
		"redirect":            {fault: Fault{Kind: FaultRedirect, Location: "http://127.0.0.1:9/elsewhere"}, wantStatus: 302, wantLocation: "http://127.0.0.1:9/elsewhere"},
		"connection closed":   {fault: Fault{Kind: FaultCloseConn}, wantConnError: true},
		"wrong content type":  {fault: Fault{Kind: FaultWrongContent}, wantStatus: 200, wantContentType: "text/html", wantBody: `"Arn":"arn:aws:sts::111122223333:assumed-role/Dev/bob"`},
		"unparseable arn":     {fault: Fault{Kind: FaultBadARN}, wantStatus: 200, wantContentType: "application/json", wantBody: `"Arn":"arn:aws:not-an-identity"`},
		"account mismatch":    {fault: Fault{Kind: FaultAccountMismatch}, wantStatus: 200, wantContentType: "application/json", wantBody: `"Account":"999999999999"`},
		"userid mismatch":     {fault: Fault{Kind: FaultUserIDMismatch}, wantStatus: 200, wantContentType: "application/json", wantBody: `:someone-else"`},
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, r := startFake(t, time.Now)
			tc.fault.Count = 1
			if err := s.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			raw, _ := DecodeToken(good)
			_, query, _ := strings.Cut(raw, "?")
			req, _ := http.NewRequest(http.MethodGet, r.URL+"/?"+query, nil)
			req.Host = "sts.amazonaws.com"
			req.Header.Set(ClusterIDHeader, testCluster)
			req.Header.Set("Accept", "application/json")
			resp, err := noRedirect.Do(req)
			if tc.wantConnError {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got an answer %d, want a closed connection", resp.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
				}
				if got := resp.Header.Get("Content-Type"); tc.wantContentType != "" && got != tc.wantContentType {
					t.Errorf("Content-Type = %q, want %q", got, tc.wantContentType)
				}
				if !strings.Contains(string(body), tc.wantBody) {
					t.Errorf("body lacks %q: %.300s", tc.wantBody, body)
				}
				if tc.wantBodyLen != 0 && len(body) != tc.wantBodyLen {
					t.Errorf("body length = %d, want %d", len(body), tc.wantBodyLen)
				}
				if got := resp.Header.Get("Location"); got != tc.wantLocation {
					t.Errorf("Location = %q, want %q", got, tc.wantLocation)
				}
			}
			if got := s.Stats().Outcomes["fault:"+string(tc.fault.Kind)]; got != 1 {
				t.Errorf("fault outcome count = %d, want 1", got)
			}
			// Count 1: the next request is answered normally.
			resp = send(t, http.DefaultClient, r.URL, good, testCluster, "application/json")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("after the fault was used up: status %d, want 200", resp.StatusCode)
			}
		})
	}
}

func TestFaultValidate(t *testing.T) {
	tests := map[string]struct {
		fault     Fault
		wantError bool
	}{
		"none":                  {fault: Fault{}},
		"throttle thrice":       {fault: Fault{Kind: FaultThrottle, Count: 3}},
		"unknown kind":          {fault: Fault{Kind: "explode"}, wantError: true},
		"server error with 404": {fault: Fault{Kind: FaultServerError, Status: 404}, wantError: true},
		"relative redirect":     {fault: Fault{Kind: FaultRedirect, Location: "/x"}, wantError: true},
		"negative count":        {fault: Fault{Kind: FaultHTML, Count: -1}, wantError: true},
		"oversized body":        {fault: Fault{Kind: FaultHugeBody, Size: 1 << 30}, wantError: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.fault.Validate(); (err != nil) != tc.wantError {
				t.Errorf("Validate() = %v, wantError %v", err, tc.wantError)
			}
		})
	}
}

func TestLatencyStopsWhenClientLeaves(t *testing.T) {
	s, r := startFake(t, time.Now)
	if err := s.SetLatency(time.Hour); err != nil {
		t.Fatal(err)
	}
	tok := signNow(t, userCreds, "")
	raw, _ := DecodeToken(tok)
	_, query, _ := strings.Cut(raw, "?")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/?"+query, nil)
	req.Host = "sts.amazonaws.com"
	req.Header.Set(ClusterIDHeader, testCluster)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	// The handler notices the client left and records it.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Outcomes["client-gone"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v, want client-gone", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdminAPI(t *testing.T) {
	_, r := startFake(t, time.Now)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, r.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := signNow(t, userCreds, "")

	if code, body := do(http.MethodPut, "/_fake/fault", `{"kind":"throttle","count":2}`); code != 200 || !strings.Contains(body, `"throttle"`) {
		t.Fatalf("set fault: %d %s", code, body)
	}
	for range 2 {
		if resp := send(t, http.DefaultClient, r.URL, tok, testCluster, "application/json"); resp.StatusCode != 400 {
			t.Errorf("throttled request: status %d, want 400", resp.StatusCode)
		}
	}
	if resp := send(t, http.DefaultClient, r.URL, tok, "cluster-z", "application/json"); resp.StatusCode != 403 {
		t.Errorf("request after throttling with another cluster id: status %d, want 403", resp.StatusCode)
	}
	code, body := do(http.MethodGet, "/_fake/stats", "")
	var stats Stats
	if err := json.Unmarshal([]byte(body), &stats); code != 200 || err != nil {
		t.Fatalf("stats: %d %v %s", code, err, body)
	}
	wantStats := Stats{Total: 3, Outcomes: map[string]int64{"fault:throttle": 2, "SignatureDoesNotMatch": 1}, ClusterIDs: []string{testCluster, testCluster, "cluster-z"}}
	if fmt.Sprint(stats) != fmt.Sprint(wantStats) {
		t.Errorf("stats = %+v, want %+v", stats, wantStats)
	}

	tests := map[string]struct {
		method, path, body string
		wantCode           int
	}{
		"unknown fault":    {method: http.MethodPut, path: "/_fake/fault", body: `{"kind":"explode"}`, wantCode: 400},
		"unknown field":    {method: http.MethodPut, path: "/_fake/fault", body: `{"kind":"html","bogus":1}`, wantCode: 400},
		"clear fault":      {method: http.MethodDelete, path: "/_fake/fault", wantCode: 200},
		"set latency":      {method: http.MethodPut, path: "/_fake/latency", body: `{"latency":"1ms"}`, wantCode: 200},
		"bad latency":      {method: http.MethodPut, path: "/_fake/latency", body: `{"latency":"soon"}`, wantCode: 400},
		"negative latency": {method: http.MethodPut, path: "/_fake/latency", body: `{"latency":"-1s"}`, wantCode: 400},
		"reset":            {method: http.MethodPost, path: "/_fake/reset", wantCode: 200},
		"wrong method":     {method: http.MethodDelete, path: "/_fake/stats", wantCode: 405},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if code, body := do(tc.method, tc.path, tc.body); code != tc.wantCode {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.wantCode)
			}
		})
	}
	if _, body := do(http.MethodGet, "/_fake/stats", ""); !strings.Contains(body, `"total":0`) {
		t.Errorf("after reset: %s", body)
	}
}

func TestTLS(t *testing.T) {
	s, err := New(Options{Principals: testPrincipals()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Start(ServeOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !strings.HasPrefix(r.URL, "https://127.0.0.1:") {
		t.Fatalf("URL = %q", r.URL)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.CAPEM) {
		t.Fatal("CA PEM does not parse")
	}
	tests := map[string]struct {
		client    *http.Client
		wantError bool
	}{
		"trusting the CA":     {client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}},
		"not trusting the CA": {client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}, wantError: true},
	}
	tok := signNow(t, userCreds, "")
	raw, _ := DecodeToken(tok)
	_, query, _ := strings.Cut(raw, "?")
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, r.URL+"/?"+query, nil)
			req.Host = "sts.amazonaws.com" // signed; TLS still verifies 127.0.0.1
			req.Header.Set(ClusterIDHeader, testCluster)
			resp, err := tc.client.Do(req)
			if tc.wantError {
				var unknown x509.UnknownAuthorityError
				if !errors.As(err, &unknown) {
					t.Fatalf("err = %v, want an unknown authority error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d", resp.StatusCode)
			}
		})
	}
}

// Faults and principals change while requests are in flight (run with -race).
func TestConcurrentUse(t *testing.T) {
	s, r := startFake(t, time.Now)
	tok := signNow(t, userCreds, "")
	var wg sync.WaitGroup
	const workers, perWorker = 8, 20
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if w == 0 && i%2 == 0 {
					_ = s.SetFault(Fault{Kind: FaultThrottle, Count: 1})
					_ = s.AddPrincipal(IAMUser(testAccount, fmt.Sprint("u", i), Credentials{AccessKeyID: fmt.Sprintf("AKIACONCURRENT%06d", i), SecretAccessKey: "s"}))
				}
				raw, _ := DecodeToken(tok)
				_, query, _ := strings.Cut(raw, "?")
				req, _ := http.NewRequest(http.MethodGet, r.URL+"/?"+query, nil)
				req.Host = "sts.amazonaws.com"
				req.Header.Set(ClusterIDHeader, testCluster)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Total != workers*perWorker {
		t.Errorf("total = %d, want %d", st.Total, workers*perWorker)
	}
	var sum int64
	for _, n := range st.Outcomes {
		sum += n
	}
	if sum != st.Total || st.Outcomes["ok"] == 0 {
		t.Errorf("outcomes %v do not add up to %d or have no ok", st.Outcomes, st.Total)
	}
	if len(st.ClusterIDs) != 64 {
		t.Errorf("kept %d cluster ids, want the last 64", len(st.ClusterIDs))
	}
}

func TestParsePrincipals(t *testing.T) {
	tests := map[string]struct {
		yaml      string
		want      []Principal
		wantError string
	}{
		"shorthands and explicit": {
			yaml: `
principals:
- {accessKeyId: AKIA1, secretAccessKey: s1, account: "111122223333", user: alice}
- {accessKeyId: ASIA2, secretAccessKey: s2, sessionToken: t2, account: "111122223333", role: Dev, session: bob}
- {accessKeyId: AKIA3, secretAccessKey: s3, account: "111122223333", root: true}
- {accessKeyId: AKIA4, secretAccessKey: s4, account: "111122223333", arn: "arn:aws:sts::111122223333:federated-user/fed", userId: "111122223333:fed"}
`,
			want: []Principal{
				IAMUser("111122223333", "alice", Credentials{AccessKeyID: "AKIA1", SecretAccessKey: "s1"}),
				AssumedRole("111122223333", "Dev", "bob", Credentials{AccessKeyID: "ASIA2", SecretAccessKey: "s2", SessionToken: "t2"}),
				Root("111122223333", Credentials{AccessKeyID: "AKIA3", SecretAccessKey: "s3"}),
				{Credentials: Credentials{AccessKeyID: "AKIA4", SecretAccessKey: "s4"}, Account: "111122223333", ARN: "arn:aws:sts::111122223333:federated-user/fed", UserID: "111122223333:fed"},
			},
		},
		"unknown field":        {yaml: "principals:\n- {accessKeyId: A, secretAccessKey: s, account: '1', user: u, passwd: x}\n", wantError: "passwd"},
		"two kinds":            {yaml: "principals:\n- {accessKeyId: A, secretAccessKey: s, account: '1', user: u, root: true}\n", wantError: "exactly one"},
		"role without session": {yaml: "principals:\n- {accessKeyId: A, secretAccessKey: s, account: '1', role: R}\n", wantError: "session"},
		"missing secret":       {yaml: "principals:\n- {accessKeyId: A, account: '1', user: u}\n", wantError: "secretAccessKey is required"},
		"duplicate key":        {yaml: "principals:\n- {accessKeyId: A, secretAccessKey: s, account: '1', user: u}\n- {accessKeyId: A, secretAccessKey: s, account: '1', user: v}\n", wantError: "duplicate"},
		"not yaml":             {yaml: "principals: [", wantError: "principals file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePrincipals([]byte(tc.yaml))
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("got  %s\nwant %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestPrincipalHelpers(t *testing.T) {
	c := Credentials{AccessKeyID: "A", SecretAccessKey: "s"}
	tests := map[string]struct {
		p                       Principal
		wantARN, wantUserPrefix string
		wantUserSuffix          string
	}{
		"user":         {p: IAMUser("123456789012", "alice", c), wantARN: "arn:aws:iam::123456789012:user/alice", wantUserPrefix: "AIDA"},
		"assumed role": {p: AssumedRole("123456789012", "Dev", "s1", c), wantARN: "arn:aws:sts::123456789012:assumed-role/Dev/s1", wantUserPrefix: "AROA", wantUserSuffix: ":s1"},
		"root":         {p: Root("123456789012", c), wantARN: "arn:aws:iam::123456789012:root", wantUserPrefix: "123456789012"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.p.ARN != tc.wantARN || !strings.HasPrefix(tc.p.UserID, tc.wantUserPrefix) || !strings.HasSuffix(tc.p.UserID, tc.wantUserSuffix) {
				t.Errorf("got %s %s, want %s %s...%s", tc.p.ARN, tc.p.UserID, tc.wantARN, tc.wantUserPrefix, tc.wantUserSuffix)
			}
			if id, _, _ := strings.Cut(tc.p.UserID, ":"); tc.wantUserPrefix != "123456789012" && len(id) != 21 {
				t.Errorf("unique id %q is not 21 characters", id)
			}
		})
	}
}
