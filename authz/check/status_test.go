package check

import (
	"errors"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
)

// TestEveryRowHasAWireShape: every row of the one table (authz/outcome) has
// an expected response in the tests' denials table, so no row can go
// untested on the wire.
func TestEveryRowHasAWireShape(t *testing.T) {
	rows := outcome.Denials()
	for _, o := range rows {
		if _, ok := denials[o.Label()]; !ok {
			t.Errorf("row %q has no expected response in the tests' denials table", o.Label())
		}
	}
	if len(denials) != len(rows) {
		t.Errorf("tests expect %d denial shapes, the table has %d rows", len(denials), len(rows))
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	if got := retryAfterSeconds(errors.New("x")); got != 1 {
		t.Errorf("retryAfterSeconds without a hint = %d, want 1", got)
	}
}
