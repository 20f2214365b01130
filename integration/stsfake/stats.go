package stsfake

import "maps"

// Stats counts what the stand-in answered.
type Stats struct {
	// Total is the number of STS requests received (admin calls excluded).
	Total int64 `json:"total"`
	// Outcomes counts requests per outcome: "ok", an STS error code such as
	// "SignatureDoesNotMatch", or "fault:<kind>".
	Outcomes map[string]int64 `json:"outcomes"`
	// ClusterIDs are the most recent x-k8s-aws-id values received, oldest
	// first.
	ClusterIDs []string `json:"clusterIds"`
}

// counters is guarded by Server.mu.
type counters struct {
	total      int64
	outcomes   map[string]int64
	clusterIDs []string
	keep       int
}

func (c *counters) record(outcome string) {
	c.total++
	if c.outcomes == nil {
		c.outcomes = map[string]int64{}
	}
	c.outcomes[outcome]++
}

func (c *counters) sawClusterID(id string) {
	c.clusterIDs = append(c.clusterIDs, id)
	if len(c.clusterIDs) > c.keep {
		c.clusterIDs = append([]string(nil), c.clusterIDs[len(c.clusterIDs)-c.keep:]...)
	}
}

func (c *counters) snapshot() Stats {
	out := Stats{Total: c.total, Outcomes: maps.Clone(c.outcomes), ClusterIDs: append([]string{}, c.clusterIDs...)}
	if out.Outcomes == nil {
		out.Outcomes = map[string]int64{}
	}
	return out
}
