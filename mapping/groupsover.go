package mapping

import (
	"cmp"
	"fmt"
	"slices"
)

// GroupsOver returns a warning for each entry that maps every principal it
// matches to more than limit groups. The mapping admits up to 1000 groups
// per entry (RuleTooManyGroups); a consumer with a lower limit, such as the
// Envoy route's group slots (authz/check.MaxGroups), refuses those
// identities at request time, and a linter says so beforehand. Each group
// name, templated or not, renders exactly one group, so the count is exact.
// Dropped entries are left out: they already carry their error.
func (s *Snapshot) GroupsOver(limit int) []Problem {
	var out []Problem
	for _, m := range []map[string]*entry{s.roles, s.users, s.sso} {
		for _, e := range m {
			n := max(len(e.groups), len(e.literalGroups))
			if e.drop != nil || n <= limit {
				continue
			}
			out = append(out, Problem{
				Line:    e.line,
				Path:    indexPath(string(e.source), e.index),
				Message: fmt.Sprintf("maps to %d groups, more than the %d a request can carry: every principal this entry maps is refused (403), never truncated", n, limit),
				Entry:   true,
			})
		}
	}
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path))
	})
	return out
}
