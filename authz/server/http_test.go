package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// TestReadyzDetail: /readyz adds the detail lines (a mapping kept after a
// failed reload) without changing its status.
func TestReadyzDetail(t *testing.T) {
	kept := []string{"mapping default: last reload invalid at 2026-01-01T00:00:00Z; serving the last good mapping sha256 abc"}
	tests := map[string]struct {
		ready    bool
		detail   func() []string
		wantCode int
		wantBody string
	}{
		"ready, nothing to say":      {ready: true, detail: func() []string { return nil }, wantCode: 200, wantBody: "ok\n"},
		"ready, no detail function":  {ready: true, wantCode: 200, wantBody: "ok\n"},
		"ready, serving last good":   {ready: true, detail: func() []string { return kept }, wantCode: 200, wantBody: "ok\n" + kept[0] + "\n"},
		"not ready, with the reason": {ready: false, detail: func() []string { return kept }, wantCode: 503, wantBody: "not ready: mapping not loaded\n" + kept[0] + "\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := newHTTPServer(prometheus.NewRegistry(), func() bool { return tc.ready }, tc.detail, zap.NewNop())
			rec := httptest.NewRecorder()
			srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Errorf("/readyz = %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}
