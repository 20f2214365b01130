//go:build integration

package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// groupMetadata is how the server hands groups to the reviewed route: one dynamic
// metadata key per group (envoy.GroupSlotKey), plus a decision id.
func groupMetadata(t *testing.T, groups ...string) *structpb.Struct {
	t.Helper()
	m := map[string]any{envoy.MetadataDecisionID: "d-1"}
	for i, g := range groups {
		m[envoy.GroupSlotKey(i)] = g
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEnvoyWireGroupSlots (F5): the reviewed route turns dynamic metadata slots into one
// Impersonate-Group line per group, in slot order, and nothing for empty slots. Every
// slot of the route is read (all GroupSlots groups arrive, also at the longest names
// the mapping admits); a key past the last slot is silently ignored, which is why the
// server refuses more groups instead of filling slots it knows are not read; and one
// slot cannot carry several lines (a list renders as one line of JSON).
func TestEnvoyWireGroupSlots(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	numbered := func(n int, format string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(format, i)
		}
		return out
	}
	all := numbered(envoy.GroupSlots, "group-%02d")
	// The mapping admits names up to 1024 bytes (docs/mapping.md name-chars): every
	// slot at that size is 64 KiB of Impersonate-Group lines.
	longest := numbered(envoy.GroupSlots, "%04d-"+strings.Repeat("g", 1019))
	onePast := map[string]any{}
	for i, g := range numbered(envoy.GroupSlots+1, "group-%02d") {
		onePast[envoy.GroupSlotKey(i)] = g
	}
	tests := map[string]struct {
		clientHeaders http.Header
		groups        []string
		metadata      map[string]any // instead of groups: the raw metadata fields
		wantLines     []string
	}{
		"three groups": {
			groups:    []string{"system:authenticated", "dev", "ops"},
			wantLines: []string{"system:authenticated", "dev", "ops"},
		},
		"every slot":                          {groups: all, wantLines: all},
		"every slot, 1024-byte names":         {groups: longest, wantLines: longest},
		"the old limit of 16, plus one":       {groups: all[:17], wantLines: all[:17]},
		"no groups":                           {groups: nil, wantLines: nil},
		"only the last slot":                  {metadata: map[string]any{envoy.GroupSlotKey(envoy.GroupSlots - 1): "last"}, wantLines: []string{"last"}},
		"a key past the last slot is ignored": {metadata: onePast, wantLines: all},
		// One slot holding several groups does not become several lines: Envoy renders
		// a list value as one line of JSON, which the API server would read as one
		// group. Groups need one slot each.
		"a list in one slot is one line": {
			metadata:  map[string]any{envoy.GroupSlotKey(0): []any{"dev", "ops"}},
			wantLines: []string{`["dev","ops"]`},
		},
		// A comma inside a group name stays one line = one group called "a,b": the
		// server must reject such names (C.7), Envoy will not split or escape them.
		"comma in a group name": {groups: []string{"a,b"}, wantLines: []string{"a,b"}},
		// The route appends: a client's own Impersonate-Group survives next to ours, so
		// the server must DENY requests carrying Impersonate-* (C.6), not ignore them.
		"client group survives": {
			clientHeaders: http.Header{"Impersonate-Group": {"system:masters"}},
			groups:        []string{"dev"},
			wantLines:     []string{"system:masters", "dev"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			md := groupMetadata(t, tc.groups...)
			if tc.metadata != nil {
				var err error
				if md, err = structpb.NewStruct(tc.metadata); err != nil {
					t.Fatal(err)
				}
			}
			s.authz.handle(name, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
				r := ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite)})
				r.DynamicMetadata = md
				return r, nil
			})
			resp := s.do(t, s.h1, "", http.MethodGet, "/api", name, tc.clientHeaders)
			if resp.status != http.StatusOK {
				t.Fatalf("status %d %q", resp.status, resp.body)
			}
			got := s.upstreams["apiserver"].requests(name)
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests", len(got))
			}
			if got[0].Head == "" {
				t.Fatal("the upstream request head was not captured")
			}
			if lines := got[0].lines("Impersonate-Group"); !slices.Equal(lines, tc.wantLines) {
				t.Fatalf("Impersonate-Group lines = %q, want %q\n%s", lines, tc.wantLines, got[0].Head)
			}
			if u := got[0].lines("Impersonate-User"); !slices.Equal(u, []string{"alice"}) {
				t.Fatalf("Impersonate-User lines = %q", u)
			}
		})
	}

	// A CR/LF smuggled into a slot value: Envoy refuses to build that header and fails
	// the request (503); no header injection reaches the upstream.
	t.Run("CR LF in a group", func(t *testing.T) {
		const c = "crlf-group"
		md := groupMetadata(t, "dev\r\nimpersonate-user: root")
		s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
			r := ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite)})
			r.DynamicMetadata = md
			return r, nil
		})
		resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, nil)
		if resp.status != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", resp.status)
		}
		if got := s.upstreams["apiserver"].requests(c); len(got) != 0 {
			t.Fatalf("upstream received:\n%s", got[0].Head)
		}
	})
}

// TestEnvoyWireGroupsViaLua records the alternative to slots (anchors C.7 option b): a
// Lua filter between ext_authz and the router adding one line per element of a list in
// the dynamic metadata. It works on 1.40 without a group limit, at the price of code in
// the proxy; the reviewed configs use the declarative slots instead.
func TestEnvoyWireGroupsViaLua(t *testing.T) {
	addLua := func(b *bootstrapv3.Bootstrap) error {
		lua, err := anypb.New(&luav3.Lua{DefaultSourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: `
function envoy_on_request(handle)
  local md = handle:streamInfo():dynamicMetadata():get("envoy.filters.http.ext_authz")
  if md ~= nil and md["groups"] ~= nil then
    for _, g in ipairs(md["groups"]) do handle:headers():add("impersonate-group", g) end
  end
end`}}})
		if err != nil {
			return err
		}
		return envoy.Edit(b, func(h *hcmv3.HttpConnectionManager) error {
			f := &hcmv3.HttpFilter{Name: "envoy.filters.http.lua", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: lua}}
			h.HttpFilters = slices.Insert(h.HttpFilters, 1, f)
			return nil
		})
	}
	s := newWireStack(t, stackOptions{edit: addLua})
	const c = "lua"
	md, err := structpb.NewStruct(map[string]any{"groups": []any{"system:authenticated", "dev", "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		r := ok(nil)
		r.DynamicMetadata = md
		return r, nil
	})
	if resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, nil); resp.status != http.StatusOK {
		t.Fatalf("status %d", resp.status)
	}
	got := s.upstreams["apiserver"].requests(c)
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests", len(got))
	}
	if lines := got[0].lines("Impersonate-Group"); !slices.Equal(lines, []string{"system:authenticated", "dev", "ops"}) {
		t.Fatalf("Impersonate-Group lines = %q", lines)
	}
}
