package token

import (
	"testing"
	"unsafe"
)

// TestParseAccessKeyIDOwnsItsMemory: the access key id ends up in every
// cached identity, so it must not be a substring of the decoded presigned
// URL, which would keep the whole URL (0.5-1.5 KB) alive per cache entry.
func TestParseAccessKeyIDOwnsItsMemory(t *testing.T) {
	p, err := newTestParser(t, Options{}).Parse(B(usw2()))
	if err != nil {
		t.Fatal(err)
	}
	q := p.URL.RawQuery
	start := uintptr(unsafe.Pointer(unsafe.StringData(q)))
	key := uintptr(unsafe.Pointer(unsafe.StringData(p.AccessKeyID)))
	if p.AccessKeyID == "" {
		t.Fatal("no access key id")
	}
	if key >= start && key < start+uintptr(len(q)) {
		t.Errorf("AccessKeyID %q shares memory with the decoded URL's query", p.AccessKeyID)
	}
}
