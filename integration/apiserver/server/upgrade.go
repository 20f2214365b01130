package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/endpoints/request"
)

// UpgradePath is a non-resource endpoint that accepts an HTTP/1.1 Upgrade,
// like exec/attach/port-forward do, so tests can prove upgrade requests
// cross the proxy with impersonation intact. After 101 it writes
// "user=<effective user>\n" and echoes what it receives.
const UpgradePath = "/upgrade-echo"

// Bounds for one upgraded connection.
const (
	upgradeIdleTimeout = 30 * time.Second
	upgradeMaxBytes    = 1 << 20
)

func upgradeEchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		proto := req.Header.Get("Upgrade")
		if proto == "" || !headerHasToken(req.Header, "Connection", "upgrade") {
			http.Error(w, "this endpoint needs Connection: Upgrade and an Upgrade header", http.StatusBadRequest)
			return
		}
		u, ok := request.UserFrom(req.Context())
		if !ok {
			http.Error(w, errNoUser.Error(), http.StatusInternalServerError)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "upgrade needs HTTP/1.1", http.StatusBadRequest)
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		if e := recordFrom(req.Context()); e != nil {
			e.setStatus(http.StatusSwitchingProtocols)
		}
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto)
		fmt.Fprintf(rw, "user=%s\n", u.GetName())
		if err := rw.Flush(); err != nil {
			return
		}
		echo(conn, rw.Reader)
	})
}

// echo copies lines back until EOF, the idle timeout or the byte cap.
func echo(conn interface {
	io.Writer
	SetDeadline(time.Time) error
}, r *bufio.Reader) {
	var total int
	for total < upgradeMaxBytes {
		if err := conn.SetDeadline(time.Now().Add(upgradeIdleTimeout)); err != nil {
			return
		}
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			total += len(line)
			if _, werr := conn.Write(line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
