package envoy

import (
	"slices"
	"sort"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
)

// Inventory names what a config binds, dials and reads: exactly what LocalPorts must
// cover for RenderLocal.
type Inventory struct {
	Listeners      []string // listener names, except stats listeners
	StatsListeners []string // listeners that serve only Envoy's /stats/prometheus (RuleStatsListener)
	AuthzClusters  []string // clusters an ext_authz filter calls
	AdminClusters  []string // clusters whose endpoints are the admin interface (stats listeners' upstream)
	APIServers     []string // every other cluster
	Files          []string // file paths read (certificates, keys, CAs, file logs, SDS files)
	Dirs           []string // directories watched (SDS files and the secrets they name)
}

// InventorizeAll is Inventorize plus the files and directories that the SDS files s
// (LoadSecrets) name: everything a deployment must mount.
func InventorizeAll(b *bootstrapv3.Bootstrap, s Secrets) (Inventory, error) {
	inv, err := Inventorize(b)
	if err != nil {
		return Inventory{}, err
	}
	files, dirs, err := s.filesAndDirs()
	if err != nil {
		return Inventory{}, err
	}
	inv.Files = mergeSorted(inv.Files, files)
	inv.Dirs = mergeSorted(inv.Dirs, dirs)
	return inv, nil
}

func mergeSorted(a, b []string) []string {
	set := map[string]bool{}
	for _, s := range append(slices.Clone(a), b...) {
		set[s] = true
	}
	return sortedKeys(set)
}

// Inventorize lists the listeners, clusters and files of b, each sorted.
func Inventorize(b *bootstrapv3.Bootstrap) (Inventory, error) {
	var inv Inventory
	stats, admin := statsParts(b)
	for _, l := range b.GetStaticResources().GetListeners() {
		if stats[l.GetName()] {
			inv.StatsListeners = append(inv.StatsListeners, l.GetName())
			continue
		}
		inv.Listeners = append(inv.Listeners, l.GetName())
	}
	authz, err := authzClusterNames(b)
	if err != nil {
		return Inventory{}, err
	}
	for _, cl := range b.GetStaticResources().GetClusters() {
		switch {
		case authz[cl.GetName()]:
			inv.AuthzClusters = append(inv.AuthzClusters, cl.GetName())
		case admin[cl.GetName()]:
			inv.AdminClusters = append(inv.AdminClusters, cl.GetName())
		default:
			inv.APIServers = append(inv.APIServers, cl.GetName())
		}
	}
	files := map[string]bool{}
	sources, err := Find[*corev3.DataSource](b)
	if err != nil {
		return Inventory{}, err
	}
	for _, ds := range sources {
		if f := ds.GetFilename(); f != "" {
			files[f] = true
		}
	}
	logs, err := Find[*fileaccesslogv3.FileAccessLog](b)
	if err != nil {
		return Inventory{}, err
	}
	for _, fl := range logs {
		files[fl.GetPath()] = true
	}
	paths, err := Find[*corev3.PathConfigSource](b)
	if err != nil {
		return Inventory{}, err
	}
	dirs := map[string]bool{}
	for _, pc := range paths {
		files[pc.GetPath()] = true
	}
	watched, err := Find[*corev3.WatchedDirectory](b)
	if err != nil {
		return Inventory{}, err
	}
	for _, w := range watched {
		dirs[w.GetPath()] = true
	}
	inv.Files = sortedKeys(files)
	inv.Dirs = sortedKeys(dirs)
	for _, s := range [][]string{inv.Listeners, inv.StatsListeners, inv.AuthzClusters, inv.AdminClusters, inv.APIServers} {
		sort.Strings(s)
	}
	return inv, nil
}

// authzClusterNames returns the clusters named by any ext_authz filter's envoy_grpc.
func authzClusterNames(b *bootstrapv3.Bootstrap) (map[string]bool, error) {
	filters, err := Find[*extauthzv3.ExtAuthz](b)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, a := range filters {
		if name := a.GetGrpcService().GetEnvoyGrpc().GetClusterName(); name != "" {
			names[name] = true
		}
	}
	return names, nil
}
