package harness

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuditEvent is the part of an audit.k8s.io/v1 Event these tests read (the API
// server's audit log, one JSON event per line; k8s.io/apiserver's
// pkg/apis/audit/v1 is the source of truth, kept out of the root module).
type AuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	// User is who the credential authenticated as; ImpersonatedUser is who the
	// request acted as (nil without impersonation).
	User             authnv1.UserInfo  `json:"user"`
	ImpersonatedUser *authnv1.UserInfo `json:"impersonatedUser,omitempty"`
	SourceIPs        []string          `json:"sourceIPs"`
	UserAgent        string            `json:"userAgent"`
	ObjectRef        *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef,omitempty"`
	ResponseStatus *metav1.Status `json:"responseStatus,omitempty"`
	// RequestReceivedTimestamp has microseconds.
	RequestReceivedTimestamp metav1.MicroTime  `json:"requestReceivedTimestamp"`
	Annotations              map[string]string `json:"annotations,omitempty"`
}

// Code is the response code (0 when the event has none).
func (e AuditEvent) Code() int32 {
	if e.ResponseStatus == nil {
		return 0
	}
	return e.ResponseStatus.Code
}

// AuditEvents returns every event in the audit log so far, oldest first.
func (k *KubeAPIServer) AuditEvents(t testing.TB) []AuditEvent {
	t.Helper()
	f, err := os.Open(k.AuditLogPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("harness: audit log: %v", err)
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var e AuditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			// The API server writes whole lines; a partial last line is still being
			// written: the next read sees it whole.
			if !strings.HasSuffix(strings.TrimSpace(string(line)), "}") {
				break
			}
			t.Fatalf("harness: audit log line: %v: %s", err, line)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("harness: audit log: %v", err)
	}
	return out
}

// auditWait bounds how long an event takes to reach the log after its response.
const auditWait = 10 * time.Second

// Audit stages the policy records (RequestReceived is omitted).
const (
	// AuditResponseStarted is logged when a long-running request (a watch, an
	// exec session) starts its response.
	AuditResponseStarted = "ResponseStarted"
	// AuditResponseComplete is logged when the response is done.
	AuditResponseComplete = "ResponseComplete"
)

// WaitAuditEvents polls the audit log until match accepts at least one
// ResponseComplete event whose requestURI starts with uri and returns those it
// accepts, failing the test after auditWait with what the log holds for uri.
func (k *KubeAPIServer) WaitAuditEvents(t testing.TB, uri string, match func(AuditEvent) bool) []AuditEvent {
	t.Helper()
	return k.WaitAuditStage(t, AuditResponseComplete, uri, match)
}

// WaitAuditStage is WaitAuditEvents for events of stage.
func (k *KubeAPIServer) WaitAuditStage(t testing.TB, stage, uri string, match func(AuditEvent) bool) []AuditEvent {
	t.Helper()
	deadline := time.Now().Add(auditWait)
	for {
		var found, forURI []AuditEvent
		for _, e := range k.AuditEvents(t) {
			if e.Stage != stage || !strings.HasPrefix(e.RequestURI, uri) {
				continue
			}
			forURI = append(forURI, e)
			if match(e) {
				found = append(found, e)
			}
		}
		if len(found) > 0 {
			return found
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, e := range forURI {
				j, _ := json.Marshal(e)
				b.WriteString("\n  " + string(j))
			}
			t.Fatalf("harness: no matching audit event for %s within %s; events for it:%s", uri, auditWait, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
