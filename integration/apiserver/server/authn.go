package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	requestunion "k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	tokenunion "k8s.io/apiserver/pkg/authentication/token/union"
	"k8s.io/apiserver/pkg/authentication/user"
)

// maxTokenFileBytes bounds what we read from --proxy-token-file; a
// ServiceAccount JWT is about 1 KiB.
const maxTokenFileBytes = 16 << 10

// errTokenFile is returned when the proxy token file cannot be read; the
// request then fails authentication (fail closed) rather than falling back
// to anonymous.
var errTokenFile = errors.New("proxy token file unreadable")

// proxyTokenAuthenticator accepts the proxy's static token and/or the
// current content of a token file. The file is read on every request: it is
// tiny, and reading it each time gives exact rotation semantics (the moment
// the file changes the old token is rejected) without a watch or a
// stale-cache window, which is what a rotation test needs to observe.
type proxyTokenAuthenticator struct {
	user       *user.DefaultInfo
	static     []byte
	tokenFile  string
	readTokens func(path string) ([]byte, error)
}

func newProxyTokenAuthenticator(o *Options) *proxyTokenAuthenticator {
	return &proxyTokenAuthenticator{
		user: &user.DefaultInfo{
			Name:   o.ProxyUser,
			UID:    o.ProxyUID,
			Groups: append([]string{}, o.ProxyGroups...),
		},
		static:     []byte(o.ProxyToken),
		tokenFile:  o.ProxyTokenFile,
		readTokens: readBoundedFile,
	}
}

// AuthenticateToken implements authenticator.Token.
func (a *proxyTokenAuthenticator) AuthenticateToken(_ context.Context, token string) (*authenticator.Response, bool, error) {
	presented := []byte(token)
	if len(a.static) > 0 && subtle.ConstantTimeCompare(presented, a.static) == 1 {
		return a.response(), true, nil
	}
	if a.tokenFile == "" {
		return nil, false, nil
	}
	raw, err := a.readTokens(a.tokenFile)
	if err != nil {
		// The error names the file, never the token.
		return nil, false, fmt.Errorf("%w: %v", errTokenFile, err)
	}
	current := bytes.TrimSpace(raw)
	if len(current) > 0 && subtle.ConstantTimeCompare(presented, current) == 1 {
		return a.response(), true, nil
	}
	return nil, false, nil
}

func (a *proxyTokenAuthenticator) response() *authenticator.Response {
	// A copy per request: later filters must not be able to mutate the
	// template through the returned user.Info.
	u := *a.user
	u.Groups = append([]string(nil), a.user.Groups...)
	return &authenticator.Response{User: &u}
}

func readBoundedFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTokenFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxTokenFileBytes)
	}
	return data, nil
}

// newAuthenticator builds the request authenticator the way kube-apiserver
// composes its own: bearer token authenticators first (behind the
// system:authenticated group adder), then anonymous behind
// a fail-on-error union, so a request that presents a bad token gets 401 and
// is never downgraded to system:anonymous.
func newAuthenticator(o *Options) (authenticator.Request, error) {
	tokens := []authenticator.Token{newProxyTokenAuthenticator(o)}
	if o.TokenAuthFile != "" {
		// The stock static token file authenticator (kube-apiserver
		// --token-auth-file): CSV token,user,uid,"group1,group2".
		csv, err := tokenfile.NewCSV(o.TokenAuthFile)
		if err != nil {
			return nil, fmt.Errorf("token auth file: %w", err)
		}
		tokens = append(tokens, csv)
	}
	// Like kube-apiserver, every token authenticator's users get
	// system:authenticated from one adder rather than each adding it.
	bearer := group.NewAuthenticatedGroupAdder(bearertoken.New(tokenunion.New(tokens...)))
	// Anonymous requests are authorized only for the health and version
	// endpoints, like the system:public-info-viewer role of a real cluster.
	anon := anonymous.NewAuthenticator([]apiserver.AnonymousAuthCondition{
		{Path: "/healthz"}, {Path: "/livez"}, {Path: "/readyz"}, {Path: "/version"},
	})
	return requestunion.NewFailOnError(bearer, anon), nil
}

// recordingAuthenticator notes who authenticated (before impersonation) on
// the request's record, so the recorder can show requestor and impersonated
// user side by side.
type recordingAuthenticator struct {
	next authenticator.Request
}

func (r recordingAuthenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	resp, ok, err := r.next.AuthenticateRequest(req)
	if rec := recordFrom(req.Context()); rec != nil {
		switch {
		case ok && resp != nil && resp.User != nil:
			rec.setAuthenticated(resp.User)
		case err != nil:
			rec.setAuthError(err)
		}
	}
	return resp, ok, err
}
