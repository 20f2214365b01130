package aiadiff

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
)

// watchServer answers the one request AIA's ConfigMap mapper makes, a watch
// on kube-system/aws-auth, with the events the test sends.
type watchServer struct {
	*httptest.Server
	events  chan []byte
	version int
}

func newWatchServer(t *testing.T) *watchServer {
	ws := &watchServer{events: make(chan []byte)}
	done := make(chan struct{})
	ws.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/kube-system/configmaps" || r.URL.Query().Get("watch") == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-ws.events:
				_, _ = w.Write(append(ev, '\n'))
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			case <-done:
				return
			}
		}
	}))
	// The watch never ends on its own: end it, then close.
	t.Cleanup(func() {
		close(done)
		ws.CloseClientConnections()
		ws.Close()
	})
	return ws
}

// send delivers data as a MODIFIED event of the aws-auth ConfigMap.
func (ws *watchServer) send(t *testing.T, data map[string]string) {
	t.Helper()
	ws.version++
	ev, err := json.Marshal(map[string]any{"type": "MODIFIED", "object": map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "aws-auth", "namespace": "kube-system", "resourceVersion": fmt.Sprint(ws.version)},
		"data":     data,
	}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ws.events <- ev:
	case <-time.After(30 * time.Second):
		t.Fatal("AIA's mapper did not watch the ConfigMap")
	}
}

// sentinelAccount is in no fixture: its presence tells which ConfigMap the
// real mapper holds.
const sentinelAccount = "999999999999"

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestOracleIsTheRealConfigMapMapper proves the restated part of the oracle
// (the store and Map's order): the real ConfigMapMapper, fed every fixture
// through a watch as the API server would, answers each principal with an
// entry the oracle lists, or not at all where the oracle finds none, and
// allows the same accounts.
func TestOracleIsTheRealConfigMapMapper(t *testing.T) {
	ws := newWatchServer(t)
	m, err := configmap.NewConfigMapMapper(config.Config{Master: ws.URL})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	if err := m.Start(stop); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range fixtureFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data, ok := dataOf(raw)
		if !ok {
			continue
		}
		ws.send(t, map[string]string{"mapAccounts": "- \"" + sentinelAccount + "\"\n"})
		waitUntil(t, "the sentinel ConfigMap", func() bool { return m.IsAccountAllowed(sentinelAccount) })
		ws.send(t, data)
		waitUntil(t, f+" to be loaded", func() bool { return !m.IsAccountAllowed(sentinelAccount) })
		store := aiaLoad(data)
		for _, p := range principals(data) {
			checked++
			_, canonical, err := arnCanonicalize(p.arn)
			if err != nil {
				t.Fatalf("%s: %v", p.arn, err)
			}
			id := aiaIdentity(p, canonical)
			want := store.matches(canonical)
			got, err := m.Map(id)
			switch {
			case err != nil && len(want) > 0:
				t.Errorf("%s: %s: real mapper: %v, oracle: %d matches", f, p.arn, err, len(want))
			case err == nil && !slices.ContainsFunc(want, func(w rawMatch) bool {
				return w.username == got.Username && slices.Equal(w.groups, got.Groups)
			}):
				t.Errorf("%s: %s: real mapper %s %v is not among the oracle's %v", f, p.arn, got.Username, got.Groups, want)
			}
			if m.IsAccountAllowed(p.account) != store.accounts[p.account] {
				t.Errorf("%s: account %s: real mapper allows %v, oracle %v", f, p.account, m.IsAccountAllowed(p.account), store.accounts[p.account])
			}
		}
	}
	t.Logf("real ConfigMapMapper agrees with the oracle for %d principals", checked)
}
