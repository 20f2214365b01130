package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Health check bounds: a probe that hangs is a failed probe.
const (
	defaultHealthcheckURL     = "http://127.0.0.1:9090/readyz"
	defaultHealthcheckTimeout = 3 * time.Second
	maxHealthcheckTimeout     = time.Minute
	healthcheckBodyBytes      = 512
)

// healthcheckOptions are the healthcheck command's flags.
type healthcheckOptions struct {
	URL     string
	CAFile  string
	Timeout time.Duration
}

// Validate reports every problem at once.
func (o healthcheckOptions) Validate() error {
	var errs []error
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--url %q: want an http(s) URL with a host", o.URL))
	} else if o.CAFile != "" && u.Scheme != "https" {
		errs = append(errs, errors.New("--ca-file needs an https --url"))
	}
	if o.Timeout <= 0 || o.Timeout > maxHealthcheckTimeout {
		errs = append(errs, fmt.Errorf("--timeout %s: must be in (0, %s]", o.Timeout, maxHealthcheckTimeout))
	}
	return errors.Join(errs...)
}

// newHealthcheckCommand is the container health probe. Distroless and
// scratch images have no shell, curl or wget, so a Docker or Compose
// HEALTHCHECK needs the binary itself to ask its own /readyz (the same
// pattern as `traefik healthcheck`). Kubernetes does not need it: the
// kubelet's httpGet and grpc probes do this job there.
func newHealthcheckCommand(streams Streams) *cobra.Command {
	o := healthcheckOptions{URL: defaultHealthcheckURL, Timeout: defaultHealthcheckTimeout}
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if a health URL answers 2xx (container HEALTHCHECK for images without curl)",
		Example: `  # Docker/Compose HEALTHCHECK of serve (readiness):
  kube-iam-authz healthcheck --url http://127.0.0.1:9090/readyz

  # Liveness only (the process answers), over TLS with its own CA:
  kube-iam-authz healthcheck --url https://127.0.0.1:9443/healthz --ca-file ca.pem --timeout 2s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return runHealthcheck(cmd.Context(), o, streams.Out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", o.URL, "Health URL to GET; 2xx is healthy. Redirects are not followed.")
	f.StringVar(&o.CAFile, "ca-file", o.CAFile, "PEM CA bundle to verify an https --url with, instead of the system roots.")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "Deadline of the whole probe.")
	return cmd
}

func runHealthcheck(ctx context.Context, o healthcheckOptions, out io.Writer) error {
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %s: no PEM certificate", o.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   o.Timeout,
		// A redirect from a health endpoint is a misconfiguration, not health.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, healthcheckBodyBytes))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unhealthy: %s answered %d %s", o.URL, resp.StatusCode, msg)
	}
	fmt.Fprintf(out, "healthy: %s answered %d\n", o.URL, resp.StatusCode)
	return nil
}
