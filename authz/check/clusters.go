package check

import (
	"errors"
	"fmt"

	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
)

// Context extension keys a route may set (ext_authz per-route
// check_settings.context_extensions) to select the cluster for a request.
const (
	// ExtensionClusterID selects the cluster id sent to STS as
	// x-k8s-aws-id (and, unless ExtensionMapping is also set, that
	// cluster's mapping).
	ExtensionClusterID = "cluster_id"
	// ExtensionMapping selects a mapping by cluster name.
	ExtensionMapping = "mapping"
)

// Cluster is one Kubernetes cluster the server authenticates for.
type Cluster struct {
	// Name identifies the cluster's mapping in context_extensions.
	Name string
	// ID is the cluster id tokens must be signed for.
	ID string
	// Mapper maps verified identities with this cluster's aws-auth file.
	Mapper Mapper
	// Ready reports whether the mapping has been loaded; nil means ready.
	Ready func() bool
	// Upstream is this cluster's own credential for its API server, when
	// it differs from Options.Upstream (several API servers behind one
	// server rarely accept the same token). Nil uses Options.Upstream.
	Upstream BearerSource
}

func (c *Cluster) ready() bool { return c.Ready == nil || c.Ready() }

func (c *Cluster) upstream(def BearerSource) BearerSource {
	if c.Upstream != nil {
		return c.Upstream
	}
	return def
}

// clusters is the immutable registry built by New.
type clusters struct {
	list   []*Cluster // list[0] is the default
	byName map[string]int
	byID   map[string]int
}

func newClusters(list []Cluster) (*clusters, error) {
	if len(list) == 0 {
		return nil, errors.New("at least one cluster is required")
	}
	cs := &clusters{byName: map[string]int{}, byID: map[string]int{}}
	var errs []error
	for i := range list {
		c := list[i]
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("cluster %d: empty name", i))
		case c.ID == "":
			errs = append(errs, fmt.Errorf("cluster %q: empty cluster id", c.Name))
		case c.Mapper == nil:
			errs = append(errs, fmt.Errorf("cluster %q: no mapper", c.Name))
		}
		if _, dup := cs.byName[c.Name]; dup {
			errs = append(errs, fmt.Errorf("cluster %q: duplicate name", c.Name))
		}
		// One id, one mapping: if two entries shared an id, a route that
		// names only cluster_id would be ambiguous.
		if _, dup := cs.byID[c.ID]; dup {
			errs = append(errs, fmt.Errorf("cluster %q: duplicate cluster id %q", c.Name, c.ID))
		}
		cs.byName[c.Name] = i
		cs.byID[c.ID] = i
		cs.list = append(cs.list, &c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cs, nil
}

// resolve picks the cluster id to verify against and the cluster whose
// mapping applies. Without extensions it is the default cluster. An
// extension that is present but names nothing configured (including an
// empty value) is an error, never a silent fallback to the default.
func (cs *clusters) resolve(ext map[string]string) (clusterID string, mapping int, err error) {
	mapping = 0
	clusterID = cs.list[0].ID
	if len(ext) == 0 {
		return clusterID, mapping, nil
	}
	idValue, hasID := ext[ExtensionClusterID]
	nameValue, hasName := ext[ExtensionMapping]
	if hasID {
		i, ok := cs.byID[idValue]
		if !ok {
			return "", 0, fmt.Errorf("%w: %s %q", outcome.ErrUnknownCluster, ExtensionClusterID, idValue)
		}
		clusterID, mapping = idValue, i
	}
	if hasName {
		i, ok := cs.byName[nameValue]
		if !ok {
			return "", 0, fmt.Errorf("%w: %s %q", outcome.ErrUnknownCluster, ExtensionMapping, nameValue)
		}
		mapping = i
		if !hasID {
			clusterID = cs.list[i].ID
		}
	}
	return clusterID, mapping, nil
}

func (cs *clusters) ready() bool {
	for _, c := range cs.list {
		if !c.ready() {
			return false
		}
	}
	return true
}
