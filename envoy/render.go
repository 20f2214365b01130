package envoyconfig

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// ErrRender is wrapped by every RenderLocal error.
var ErrRender = errors.New("cannot render envoy config for local use")

// LocalPorts says where a reviewed config runs on this machine. Every address must be a
// loopback IP with a port, and every listener, cluster and file of the config must be
// covered: a rendered config can then never bind a production port or dial a production
// host.
type LocalPorts struct {
	// AdminAddr is the admin interface, e.g. "127.0.0.1:19901".
	AdminAddr string
	// Listeners maps each listener name to its local address. A stats listener
	// (Inventory.StatsListeners) left out is left out of the rendering too: it serves
	// only Envoy's own metrics, which a caller that does not scrape them has no use for.
	Listeners map[string]string
	// AuthzAddr is the ext_authz gRPC server: every cluster an ext_authz filter calls.
	AuthzAddr string
	// APIServers maps each other cluster name to its local address.
	APIServers map[string]string
	// Files maps each file path the config reads (certificates, keys, CAs, file access
	// logs) to a local path.
	Files map[string]string
}

// Validate reports every problem with p (not with its fit to a config; RenderLocal
// does that).
func (p LocalPorts) Validate() error {
	var errs []error
	check := func(what, addr string) {
		if err := checkLoopback(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	check("AdminAddr", p.AdminAddr)
	check("AuthzAddr", p.AuthzAddr)
	for _, name := range sortedKeys(p.Listeners) {
		check(fmt.Sprintf("Listeners[%q]", name), p.Listeners[name])
	}
	for _, name := range sortedKeys(p.APIServers) {
		check(fmt.Sprintf("APIServers[%q]", name), p.APIServers[name])
	}
	for _, from := range sortedKeys(p.Files) {
		if p.Files[from] == "" {
			errs = append(errs, fmt.Errorf("local path for file %q is empty", from))
		}
	}
	return errors.Join(errs...)
}

func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("%q is not a loopback IP", host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q has no usable port", addr)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// RenderLocal returns b as JSON (which is also YAML) for `envoy -c`, with only its
// addresses, ports and file paths replaced as p says: the admin and listener addresses,
// each cluster's single endpoint (and its discovery type, STATIC, since local addresses
// are IP literals; admin clusters follow AdminAddr), and file data sources. Policy, TLS settings such as SNI and SAN
// matchers, timeouts and filters stay exactly as reviewed. b is not modified.
func RenderLocal(b *bootstrapv3.Bootstrap, p LocalPorts) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	out := proto.Clone(b).(*bootstrapv3.Bootstrap)
	var errs []error
	// Classified before any address changes: admin clusters are recognised by the
	// admin address.
	stats, adminClusters := statsParts(out)

	if out.GetAdmin() != nil {
		out.Admin.Address = socketAddress(p.AdminAddr)
	}

	used := map[string]bool{}
	kept := out.GetStaticResources().GetListeners()[:0]
	for _, l := range out.GetStaticResources().GetListeners() {
		addr, ok := p.Listeners[l.GetName()]
		switch {
		case !ok && stats[l.GetName()]:
			continue // not asked for: dropped
		case !ok:
			errs = append(errs, fmt.Errorf("listener %q has no local address", l.GetName()))
			continue
		}
		used["listener/"+l.GetName()] = true
		l.Address = socketAddress(addr)
		kept = append(kept, l)
	}
	if out.GetStaticResources() != nil {
		out.StaticResources.Listeners = kept
	}

	authzClusters, err := authzClusterNames(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	for _, cl := range out.GetStaticResources().GetClusters() {
		addr, ok := p.APIServers[cl.GetName()]
		switch {
		case authzClusters[cl.GetName()]:
			addr, ok = p.AuthzAddr, true
		case adminClusters[cl.GetName()]:
			addr, ok = p.AdminAddr, true
		case ok:
			used["cluster/"+cl.GetName()] = true
		}
		if !ok {
			errs = append(errs, fmt.Errorf("cluster %q has no local address", cl.GetName()))
			continue
		}
		setEndpoint(cl, addr)
	}

	err = walkFiles(out, func(path string) (string, bool) {
		local, ok := p.Files[path]
		if ok {
			used["file/"+path] = true
		} else {
			errs = append(errs, fmt.Errorf("file %q has no local path", path))
		}
		return local, ok
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}

	// A name the config does not have is a caller mistake (a typo would otherwise leave
	// a test silently exercising something else).
	for _, name := range sortedKeys(p.Listeners) {
		if !used["listener/"+name] {
			errs = append(errs, fmt.Errorf("LocalPorts.Listeners[%q]: no such listener", name))
		}
	}
	for _, name := range sortedKeys(p.APIServers) {
		if !used["cluster/"+name] {
			errs = append(errs, fmt.Errorf("LocalPorts.APIServers[%q]: no such cluster (or it is the authz cluster)", name))
		}
	}
	for _, path := range sortedKeys(p.Files) {
		if !used["file/"+path] {
			errs = append(errs, fmt.Errorf("LocalPorts.Files[%q]: the config reads no such file", path))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrRender, errors.Join(errs...))
	}
	js, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	return js, nil
}

// socketAddress turns a validated "ip:port" into an Envoy address.
func socketAddress(addr string) *corev3.Address {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.ParseUint(port, 10, 16)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(n)},
	}}}
}

func setEndpoint(cl *clusterv3.Cluster, addr string) {
	cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	cl.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: cl.GetName(),
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr)}},
			}},
		}},
	}
}

// walkFiles calls local for every file path in b (DataSource filenames and file access
// log paths, including inside typed_config blocks) and replaces it with the answer.
func walkFiles(b *bootstrapv3.Bootstrap, local func(string) (string, bool)) error {
	err := Edit(b, func(ds *corev3.DataSource) error {
		if f, ok := ds.GetSpecifier().(*corev3.DataSource_Filename); ok {
			if to, ok := local(f.Filename); ok {
				f.Filename = to
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return Edit(b, func(fl *fileaccesslogv3.FileAccessLog) error {
		if to, ok := local(fl.GetPath()); ok {
			fl.Path = to
		}
		return nil
	})
}
