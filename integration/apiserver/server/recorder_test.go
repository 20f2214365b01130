package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fixedClock() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func TestHeaderLines(t *testing.T) {
	tests := map[string]struct {
		header        http.Header
		wantLines     []HeaderLine
		wantTruncated bool
	}{
		"repeated lines stay separate and ordered": {
			header: http.Header{"Impersonate-Group": {"g2", "g1", "g3"}},
			wantLines: []HeaderLine{
				{"Impersonate-Group", "g2"}, {"Impersonate-Group", "g1"}, {"Impersonate-Group", "g3"},
			},
		},
		"comma-joined value is one line, not split": {
			header:    http.Header{"Impersonate-Group": {"g1,g2"}},
			wantLines: []HeaderLine{{"Impersonate-Group", "g1,g2"}},
		},
		"names sorted, values verbatim": {
			header:    http.Header{"X-B": {" spaced "}, "Impersonate-Extra-Example.com%2fteam": {"a"}},
			wantLines: []HeaderLine{{"Impersonate-Extra-Example.com%2fteam", "a"}, {"X-B", " spaced "}},
		},
		"bearer token redacted to its fingerprint": {
			header:    http.Header{"Authorization": {"Bearer abc"}},
			wantLines: []HeaderLine{{"Authorization", "Bearer sha256:ba7816bf8f01"}},
		},
		"schemeless credential redacted": {
			header:    http.Header{"Proxy-Authorization": {"abc"}},
			wantLines: []HeaderLine{{"Proxy-Authorization", "sha256:ba7816bf8f01"}},
		},
		"huge value truncated": {
			header:    http.Header{"X-Big": {strings.Repeat("v", maxHeaderValueLen+10)}},
			wantLines: []HeaderLine{{"X-Big", strings.Repeat("v", maxHeaderValueLen)}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, truncated := headerLines(tc.header)
			if !reflect.DeepEqual(got, tc.wantLines) {
				t.Errorf("lines = %q, want %q", got, tc.wantLines)
			}
			if truncated != tc.wantTruncated {
				t.Errorf("truncated = %v, want %v", truncated, tc.wantTruncated)
			}
		})
	}
}

func TestHeaderLinesBounded(t *testing.T) {
	h := http.Header{"X-Many": make([]string, maxHeaderLines+5)}
	got, truncated := headerLines(h)
	if len(got) != maxHeaderLines || !truncated {
		t.Fatalf("got %d lines truncated=%v, want %d and true", len(got), truncated, maxHeaderLines)
	}
}

func TestRecorderRing(t *testing.T) {
	tests := map[string]struct {
		capacity  int
		requests  int
		wantPaths []string
		wantTotal int64
	}{
		"under capacity keeps all in order": {capacity: 4, requests: 3, wantPaths: []string{"/0", "/1", "/2"}, wantTotal: 3},
		"exactly full":                      {capacity: 3, requests: 3, wantPaths: []string{"/0", "/1", "/2"}, wantTotal: 3},
		"overflow drops the oldest":         {capacity: 3, requests: 7, wantPaths: []string{"/4", "/5", "/6"}, wantTotal: 7},
		"capacity one":                      {capacity: 1, requests: 2, wantPaths: []string{"/1"}, wantTotal: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := NewRecorder(tc.capacity, fixedClock)
			h := r.WrapOutermost(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusTeapot)
			}))
			for i := range tc.requests {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/"+itoa(i), nil))
			}
			snap := r.Snapshot()
			var paths []string
			for _, rec := range snap.Requests {
				paths = append(paths, rec.Path)
				if rec.Status != http.StatusTeapot {
					t.Errorf("%s status = %d, want %d", rec.Path, rec.Status, http.StatusTeapot)
				}
			}
			if !reflect.DeepEqual(paths, tc.wantPaths) {
				t.Errorf("paths = %v, want %v", paths, tc.wantPaths)
			}
			if snap.Total != tc.wantTotal {
				t.Errorf("total = %d, want %d", snap.Total, tc.wantTotal)
			}
		})
	}
}

func TestRecorderStatus(t *testing.T) {
	tests := map[string]struct {
		handler    http.HandlerFunc
		wantStatus int
	}{
		"explicit status":           {handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }, wantStatus: http.StatusForbidden},
		"implicit 200 from Write":   {handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("x")) }, wantStatus: http.StatusOK},
		"nothing written means 200": {handler: func(http.ResponseWriter, *http.Request) {}, wantStatus: http.StatusOK},
		"first status wins": {handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			w.WriteHeader(http.StatusOK)
		}, wantStatus: http.StatusUnauthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := NewRecorder(2, fixedClock)
			r.WrapOutermost(tc.handler).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			if got := r.Snapshot().Requests[0].Status; got != tc.wantStatus {
				t.Errorf("status = %d, want %d", got, tc.wantStatus)
			}
		})
	}
}

func TestRecorderHandler(t *testing.T) {
	r := NewRecorder(8, fixedClock)
	h := r.WrapOutermost(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, p := range []string{"/a", "/b", "/a"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	api := r.Handler()

	tests := map[string]struct {
		query     string
		wantSeqs  []int64
		wantPaths []string
	}{
		"all":            {query: "", wantSeqs: []int64{1, 2, 3}, wantPaths: []string{"/a", "/b", "/a"}},
		"by exact path":  {query: "?path=/a", wantSeqs: []int64{1, 3}, wantPaths: []string{"/a", "/a"}},
		"since a seq":    {query: "?since=1", wantSeqs: []int64{2, 3}, wantPaths: []string{"/b", "/a"}},
		"path and since": {query: "?path=/a&since=1", wantSeqs: []int64{3}, wantPaths: []string{"/a"}},
		"no match":       {query: "?path=/zzz", wantSeqs: nil, wantPaths: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			api.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/requests"+tc.query, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			var got RequestsResponse
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			var paths []string
			for _, rec := range got.Requests {
				seqs = append(seqs, rec.Seq)
				paths = append(paths, rec.Path)
			}
			if !reflect.DeepEqual(seqs, tc.wantSeqs) || !reflect.DeepEqual(paths, tc.wantPaths) {
				t.Errorf("got seqs %v paths %v, want %v %v", seqs, paths, tc.wantSeqs, tc.wantPaths)
			}
		})
	}

	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/requests", nil))
	if w.Code != http.StatusNoContent {
		t.Fatalf("DELETE status %d, want 204", w.Code)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/after", nil))
	snap := r.Snapshot()
	if len(snap.Requests) != 1 || snap.Requests[0].Path != "/after" || snap.Requests[0].Seq != 4 || snap.Total != 4 {
		t.Fatalf("after reset: %+v", snap)
	}

	w = httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/requests", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d, want 405", w.Code)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }
