package check

import (
	"errors"
	"fmt"
	"testing"
)

// TestStatusTable: every row is reachable by its sentinel (also when
// wrapped), has a unique label and an expected wire shape in the test
// table, so no row can go untested.
func TestStatusTable(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range outcomes {
		if seen[o.label] {
			t.Errorf("duplicate label %q", o.label)
		}
		seen[o.label] = true
		if _, ok := denials[o.label]; !ok {
			t.Errorf("row %q has no expected response in the tests' denials table", o.label)
		}
		if o.message == "" || o.httpCode < 400 {
			t.Errorf("row %q: message %q, code %d", o.label, o.message, o.httpCode)
		}
		if got := classify(fmt.Errorf("outer: %w", o.err)); got != o {
			t.Errorf("classify(wrapped %v) = %q, want %q", o.err, got.label, o.label)
		}
	}
	if len(denials) != len(outcomes) {
		t.Errorf("tests expect %d denial shapes, the table has %d rows", len(denials), len(outcomes))
	}
	if got := classify(nil); got != outcomeOK {
		t.Errorf("classify(nil) = %q, want ok", got.label)
	}
	if got := classify(errors.New("never seen")); got != outcomeInternal {
		t.Errorf("classify(unknown) = %q, want internal", got.label)
	}
	labels := ReasonLabels()
	if labels[0] != "ok" || labels[1] != "impersonated" || labels[2] != "passthrough" || len(labels) != len(outcomes)+3 {
		t.Errorf("ReasonLabels = %v", labels)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	if got := retryAfterSeconds(errors.New("x")); got != 1 {
		t.Errorf("retryAfterSeconds without a hint = %d, want 1", got)
	}
}
