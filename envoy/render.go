package envoy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
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
	// logs, SDS files and the files they name) to a local path.
	Files map[string]string
	// Dirs maps watched directories (SDS file and secret watches) to local ones. A
	// directory left out follows the files it is watched for: the one local directory
	// they map into (a test that swaps files the kubelet way maps them into one).
	Dirs map[string]string
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
	for _, from := range sortedKeys(p.Dirs) {
		if p.Dirs[from] == "" {
			errs = append(errs, fmt.Errorf("local path for directory %q is empty", from))
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Rendered is a reviewed config made runnable on this machine.
type Rendered struct {
	// Bootstrap is the config for `envoy -c`, as JSON (which is also YAML).
	Bootstrap []byte
	// SDS maps each local SDS file path (LocalPorts.Files of a path the bootstrap
	// reads secrets from) to its rendered content. They must be written before Envoy
	// starts (WriteSDS): Envoy requires the path to exist at load time.
	SDS map[string][]byte
}

// WriteSDS writes the rendered SDS files (mode 0600: they name key files).
func (r *Rendered) WriteSDS() error {
	for _, p := range sortedKeys(r.SDS) {
		if err := os.WriteFile(p, r.SDS[p], 0o600); err != nil {
			return err
		}
	}
	return nil
}

// RenderLocal returns b and its SDS files s (LoadSecrets) with only their addresses,
// ports and paths replaced as p says: the admin and listener addresses, each cluster's
// single endpoint (and its discovery type, STATIC, since local addresses are IP
// literals; admin clusters follow AdminAddr), file data sources, SDS file paths and
// watched directories. Policy, TLS settings such as SNI and SAN matchers, timeouts and
// filters stay exactly as reviewed. b and s are not modified.
func RenderLocal(b *bootstrapv3.Bootstrap, s Secrets, p LocalPorts) (*Rendered, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	out := proto.Clone(b).(*bootstrapv3.Bootstrap)
	var errs []error
	sources, err := SecretSources(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	for _, sp := range sortedKeys(sources) {
		if _, ok := s[sp]; !ok {
			errs = append(errs, fmt.Errorf("SDS file %q was not loaded (LoadSecrets)", sp))
		}
	}
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

	localFile := func(path string) (string, bool) {
		local, ok := p.Files[path]
		if ok {
			used["file/"+path] = true
		} else {
			errs = append(errs, fmt.Errorf("file %q has no local path", path))
		}
		return local, ok
	}
	localDir := func(dir string, files ...string) (string, bool) {
		if local, ok := p.Dirs[dir]; ok {
			used["dir/"+dir] = true
			return local, true
		}
		locals := map[string]bool{}
		for _, f := range files {
			if l, ok := p.Files[f]; ok && path.Dir(f) == dir {
				locals[filepath.Dir(l)] = true
			}
		}
		if len(locals) != 1 {
			errs = append(errs, fmt.Errorf("watched directory %q has no local directory (its files map into %d; set LocalPorts.Dirs)", dir, len(locals)))
			return "", false
		}
		for l := range locals {
			return l, true
		}
		return "", false
	}
	if err := walkFiles(out, localFile, localDir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	r := &Rendered{SDS: map[string][]byte{}}
	for _, sp := range sortedKeys(s) {
		local, ok := localFile(sp)
		if !ok {
			continue
		}
		secrets := make([]*tlsv3.Secret, 0, len(s[sp]))
		for _, sec := range s[sp] {
			sec = proto.Clone(sec).(*tlsv3.Secret)
			if err := walkFiles(sec, localFile, localDir); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrRender, sp, err)
			}
			secrets = append(secrets, sec)
		}
		js, err := marshalSecrets(secrets)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRender, sp, err)
		}
		r.SDS[local] = js
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
	for _, dir := range sortedKeys(p.Dirs) {
		if !used["dir/"+dir] {
			errs = append(errs, fmt.Errorf("LocalPorts.Dirs[%q]: the config watches no such directory", dir))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrRender, errors.Join(errs...))
	}
	js, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	r.Bootstrap = js
	return r, nil
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

// walkFiles calls local for every file path in m (DataSource filenames, file access log
// paths and SDS file paths, including inside typed_config blocks) and localDir for every
// watched directory (with the files it is watched for), and replaces them with the
// answers.
func walkFiles(m proto.Message, local func(string) (string, bool), localDir func(dir string, files ...string) (string, bool)) error {
	// Directories first: their defaults follow the production file paths.
	steps := []error{
		Edit(m, func(c *tlsv3.TlsCertificate) error {
			if w := c.GetWatchedDirectory(); w != nil {
				if to, ok := localDir(w.GetPath(), c.GetCertificateChain().GetFilename(), c.GetPrivateKey().GetFilename()); ok {
					w.Path = to
				}
			}
			return nil
		}),
		Edit(m, func(v *tlsv3.CertificateValidationContext) error {
			if w := v.GetWatchedDirectory(); w != nil {
				if to, ok := localDir(w.GetPath(), v.GetTrustedCa().GetFilename(), v.GetCrl().GetFilename()); ok {
					w.Path = to
				}
			}
			return nil
		}),
		Edit(m, func(pc *corev3.PathConfigSource) error {
			if w := pc.GetWatchedDirectory(); w != nil {
				if to, ok := localDir(w.GetPath(), pc.GetPath()); ok {
					w.Path = to
				}
			}
			if to, ok := local(pc.GetPath()); ok {
				pc.Path = to
			}
			return nil
		}),
		Edit(m, func(ds *corev3.DataSource) error {
			if f, ok := ds.GetSpecifier().(*corev3.DataSource_Filename); ok {
				if to, ok := local(f.Filename); ok {
					f.Filename = to
				}
			}
			if w := ds.GetWatchedDirectory(); w != nil {
				if to, ok := localDir(w.GetPath(), ds.GetFilename()); ok {
					w.Path = to
				}
			}
			return nil
		}),
		Edit(m, func(fl *fileaccesslogv3.FileAccessLog) error {
			if to, ok := local(fl.GetPath()); ok {
				fl.Path = to
			}
			return nil
		}),
	}
	return errors.Join(steps...)
}
