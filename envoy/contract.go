package envoy

import "strconv"

// The contract between the reviewed Envoy configs and the ext_authz server. The server
// (authz/check) must answer in exactly these terms; docs/envoy-facts.md says why.
const (
	// MetadataNamespace is where Envoy stores CheckResponse.dynamic_metadata: the
	// ext_authz filter's name.
	MetadataNamespace = "envoy.filters.http.ext_authz"
	// MetadataDecisionID is the dynamic metadata key whose value the access log records
	// as decision_id, on OK and on Denied answers.
	MetadataDecisionID = "decision_id"
	// GroupSlots is how many Impersonate-Group lines the route adds, one per non-empty
	// dynamic metadata key GroupSlotKey(0..GroupSlots-1). An identity mapped to more
	// groups must be denied, never truncated (a dropped group could be a deny group in
	// the cluster's RBAC design, and silent truncation hides a mapping error). 64 covers
	// users with many SSO permission sets mapped to RBAC groups (aws-iam-authenticator has
	// no limit); each slot costs Envoy one format per request (docs/benchmarks.md).
	GroupSlots = 64
)

// GroupSlotKey is the dynamic metadata key carrying the i-th Impersonate-Group value.
func GroupSlotKey(i int) string { return "impersonate_group_" + strconv.Itoa(i) }

// groupSlotValue is the route header value that reads slot i.
func groupSlotValue(i int) string {
	return "%DYNAMIC_METADATA(" + MetadataNamespace + ":" + GroupSlotKey(i) + ")%"
}
