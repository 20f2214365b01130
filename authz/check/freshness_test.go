package check

import (
	"context"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// The response cache must never answer with a stale mapping or a stale
// upstream token.
func TestAnswersFollowMappingAndUpstreamToken(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	check := func() *authv3.CheckResponse {
		t.Helper()
		got, err := f.server.Check(context.Background(), request(bearer(tokBob), nil))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	bobAs := func(user string, groups []string, auth string) *authv3.CheckResponse {
		hs := []hdr{{"impersonate-user", user, setH}}
		hs = append(hs, bobHeaders[1:]...)
		return wantOK(append(hs, hdr{"authorization", "Bearer " + auth, setH}), groups)
	}

	assertResponse(t, check(), bobAs("bob", nil, proxySA))
	assertResponse(t, check(), bobAs("bob", nil, proxySA))

	f.mapper.set(bob.CanonicalARN, kubeuser.User{Username: "bob", Groups: []string{"admins"}})
	assertResponse(t, check(), bobAs("bob", []string{"admins"}, proxySA))

	f.mapper.set(bob.CanonicalARN, kubeuser.User{Username: "robert", Groups: []string{"admins"}})
	assertResponse(t, check(), bobAs("robert", []string{"admins"}, proxySA))

	f.bearer.set("rotated-token")
	assertResponse(t, check(), bobAs("robert", []string{"admins"}, "rotated-token"))

	f.mapper.mu.Lock()
	delete(f.mapper.users, bob.CanonicalARN)
	f.mapper.mu.Unlock()
	assertResponse(t, check(), wantDenied(t, "unmapped"))
}

func TestResponseCacheIsBounded(t *testing.T) {
	c := newResponseCache(2)
	u := kubeuser.User{Username: "u"}
	for i := 0; i < 5; i++ {
		id := bob
		id.AccessKeyID = string(rune('a' + i))
		resp, err := okResponse([]impersonate.Header{{Name: "impersonate-user", Value: "u"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		c.put(responseKey{id: id}, u, "", resp)
		if n := c.size.Load(); n > 2 {
			t.Fatalf("size %d after %d puts, bound 2", n, i+1)
		}
	}
	disabled := newResponseCache(-1)
	resp, _ := okResponse(nil, "")
	disabled.put(responseKey{id: bob}, u, "", resp)
	if disabled.get(responseKey{id: bob}, u, "") != nil {
		t.Error("a disabled cache returned an entry")
	}
}

// TestConcurrentChecks runs allowed and denied checks in parallel while the
// mapping and upstream token change; run with -race.
func TestConcurrentChecks(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				tok := tokAlice
				if i%3 == 0 {
					tok = tokBob
				}
				resp, err := f.server.Check(context.Background(), request(bearer(tok), nil))
				if err != nil || resp.GetOkResponse() == nil {
					t.Errorf("check %d: %v %v", i, err, resp)
					return
				}
				checkInvariants(t, resp)
			}
		}()
	}
	for i := 0; i < 50; i++ {
		f.bearer.set("tok-" + string(rune('a'+i%26)))
		f.mapper.set(bob.CanonicalARN, kubeuser.User{Username: "bob", Groups: []string{string(rune('a' + i%26))}})
	}
	wg.Wait()
}
