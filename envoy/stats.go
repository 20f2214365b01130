package envoy

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// StatsPath is the only admin path a stats listener may forward: Envoy's metrics in the
// Prometheus text format. Every other admin path can read config or change state.
const StatsPath = "/stats/prometheus"

// statsParts finds the admin clusters (clusters whose every endpoint is the admin
// interface: see isAdminCluster) and the stats listeners (listeners with a route to an admin
// cluster). A stats listener serves Envoy's metrics to Prometheus; RuleStatsListener
// holds it to exactly that, and the API-listener rules do not apply to it.
func statsParts(b *bootstrapv3.Bootstrap) (listeners, adminClusters map[string]bool) {
	listeners, adminClusters = map[string]bool{}, map[string]bool{}
	admin := b.GetAdmin().GetAddress().GetSocketAddress()
	if admin == nil {
		return listeners, adminClusters
	}
	for _, cl := range b.GetStaticResources().GetClusters() {
		if isAdminCluster(cl, admin.GetAddress(), admin.GetPortValue()) {
			adminClusters[cl.GetName()] = true
		}
	}
	if len(adminClusters) == 0 {
		return listeners, adminClusters
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, h := range listenerHCMs(l) {
			for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
				for _, r := range vh.GetRoutes() {
					if adminClusters[r.GetRoute().GetCluster()] {
						listeners[l.GetName()] = true
					}
				}
			}
		}
	}
	return listeners, adminClusters
}

// isAdminCluster: every endpoint is the admin's port, on the admin's host or on
// loopback (where an admin bound to a wildcard address also answers).
func isAdminCluster(cl *clusterv3.Cluster, host string, port uint32) bool {
	n := 0
	for _, lle := range cl.GetLoadAssignment().GetEndpoints() {
		for _, lbe := range lle.GetLbEndpoints() {
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetPortValue() != port || (sa.GetAddress() != host && !isLoopback(sa.GetAddress())) {
				return false
			}
			n++
		}
	}
	return n > 0
}

// listenerHCMs returns the HTTP connection managers of a listener's filter chains.
func listenerHCMs(l *listenerv3.Listener) []*hcmv3.HttpConnectionManager {
	var out []*hcmv3.HttpConnectionManager
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			h := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(h) == nil {
				out = append(out, h)
			}
		}
	}
	return out
}

// checkStatsListener holds a stats listener to its one job: one HTTP connection
// manager, the router as its only filter, and routes that either answer directly or
// forward exactly GET StatsPath, unrewritten, to an admin cluster. Nothing else of the
// admin interface (quitquitquit, runtime_modify, config_dump, ...) and no other
// cluster (an API server reached this way would be reached without ext_authz) is
// reachable through it.
func (c *checker) checkStatsListener(l *listenerv3.Listener) {
	where := fmt.Sprintf("stats listener %q", l.GetName())
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
	}
	if len(chains) != 1 || len(chains[0].GetFilters()) != 1 {
		c.add(RuleStatsListener, where, "want exactly one filter chain with one network filter (http_connection_manager)")
	}
	hcms := listenerHCMs(l)
	if len(hcms) != 1 {
		c.add(RuleStatsListener, where, "want exactly one http_connection_manager, got %d", len(hcms))
		return
	}
	h := hcms[0]
	filters := h.GetHttpFilters()
	if len(filters) != 1 || filters[0].GetTypedConfig() == nil || filters[0].GetTypedConfig().UnmarshalTo(&routerv3.Router{}) != nil {
		c.add(RuleStatsListener, where, "the router must be the only HTTP filter")
	}
	rc := h.GetRouteConfig()
	if rc == nil {
		c.add(RuleStatsListener, where, "route_config must be inline")
		return
	}
	for _, vh := range rc.GetVirtualHosts() {
		for i, r := range vh.GetRoutes() {
			c.checkStatsRoute(fmt.Sprintf("%s virtual_host %q route[%d]", where, vh.GetName(), i), r)
		}
	}
}

func (c *checker) checkStatsRoute(where string, r *routev3.Route) {
	if r.GetDirectResponse() != nil {
		return
	}
	ra := r.GetRoute()
	if ra == nil {
		c.add(RuleStatsListener, where, "only direct responses and routes to the admin cluster are allowed")
		return
	}
	if !c.adminClusters[ra.GetCluster()] {
		c.add(RuleStatsListener, where, "routes to %q, which is not the admin interface (a stats listener has no ext_authz)", ra.GetCluster())
		return
	}
	m := r.GetMatch()
	if m.GetPath() != StatsPath {
		c.add(RuleStatsListener, where, "must match exactly path %s (no prefix or regex: the admin interface can quit Envoy)", StatsPath)
	}
	get := false
	for _, hm := range m.GetHeaders() {
		if hm.GetName() == ":method" && hm.GetStringMatch().GetExact() == "GET" && !hm.GetInvertMatch() {
			get = true
		}
	}
	if !get {
		c.add(RuleStatsListener, where, "must match only :method GET")
	}
	if ra.GetPrefixRewrite() != "" || ra.GetRegexRewrite() != nil || ra.GetPathRewritePolicy() != nil {
		c.add(RuleStatsListener, where, "must not rewrite the path")
	}
}
