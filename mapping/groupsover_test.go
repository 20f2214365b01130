package mapping

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestGroupsOver(t *testing.T) {
	groups := func(n int, name string) string {
		gs := make([]string, n)
		for i := range gs {
			gs[i] = fmt.Sprintf(name, i)
		}
		return "[" + strings.Join(gs, ", ") + "]"
	}
	const limit = 3
	tests := map[string]struct {
		file      string
		wantPaths []string
	}{
		"at the limit": {
			file: "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: a\n    groups: " + groups(limit, "g%d") + "\n",
		},
		"one over, a literal role": {
			file:      "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: a\n    groups: " + groups(limit+1, "g%d") + "\n",
			wantPaths: []string{"mapRoles[0]"},
		},
		// A template renders one group per name: the count is the same.
		"templated groups count one each": {
			file:      "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: a\n    groups: " + groups(limit+1, `"g%d-{{SessionName}}"`) + "\n",
			wantPaths: []string{"mapRoles[0]"},
		},
		// Duplicates stay duplicates (warned elsewhere): both lines are sent.
		"duplicates count": {
			file:      "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/u\n    username: u\n    groups: [a, a, a, a]\n",
			wantPaths: []string{"mapUsers[0]"},
		},
		"sso and users, in file order": {
			file: "mapRoles:\n  - sso: {permissionSetName: Admin, accountID: \"111122223333\"}\n    username: admin\n    groups: " + groups(limit+1, "g%d") + "\n" +
				"mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/u\n    username: u\n    groups: " + groups(limit+2, "g%d") + "\n",
			wantPaths: []string{"mapRoles[0]", "mapUsers[0]"},
		},
		// A dropped entry already carries its error and maps nobody.
		"a dropped entry is left out": {
			file: "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: \"{{Session}}\"\n    groups: " + groups(limit+1, "g%d") + "\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			snap, err := Parse([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, p := range snap.GroupsOver(limit) {
				paths = append(paths, p.Path)
				if p.Line == 0 || !p.Entry || !strings.Contains(p.Message, fmt.Sprintf("more than the %d a request can carry", limit)) {
					t.Errorf("problem %+v", p)
				}
			}
			if !reflect.DeepEqual(paths, tc.wantPaths) {
				t.Errorf("GroupsOver(%d) paths = %q, want %q", limit, paths, tc.wantPaths)
			}
		})
	}
}
