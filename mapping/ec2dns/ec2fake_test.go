package ec2dns

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// fakeEC2 is a local EC2 stand-in speaking the EC2 query protocol: a
// form-encoded POST with Action=DescribeInstances and the IDs either as
// InstanceId.N or as an instance-id filter (Filter.N.Name /
// Filter.N.Value.M), answered with DescribeInstancesResponse XML.
type fakeEC2 struct {
	t *testing.T
	// instances maps instance ID to private DNS name.
	instances map[string]string
	// failWith, if set, is the error code of every answer (503).
	failWith string
	// gate, if set, blocks each request until it is closed.
	gate chan struct{}

	mu       sync.Mutex
	requests [][]string // instance IDs asked, per request
	arrived  chan struct{}
}

func newFakeEC2(t *testing.T, instances map[string]string) (*fakeEC2, *httptest.Server) {
	f := &fakeEC2{t: t, instances: instances, arrived: make(chan struct{}, 1000)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// client is an SDK EC2 client whose BaseEndpoint is the stand-in. Retries
// are off so that tests count calls exactly; keep-alives are off because a
// reused loopback connection occasionally fails a whole call with "use of
// closed network connection" on a 200 (aws/aws-sdk-go-v2#1825, #2737), which
// the SDK's default retries absorb in production but would flake here.
func (f *fakeEC2) client(srv *httptest.Server) *ec2.Client {
	transport := srv.Client().Transport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true
	return ec2.New(ec2.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:       &http.Client{Transport: transport},
		RetryMaxAttempts: 1,
	})
}

func (f *fakeEC2) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.requests...)
}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeEC2Error(w, http.StatusBadRequest, "MissingAuthenticationToken", "expected a SigV4-signed POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeEC2Error(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	if a := r.PostForm.Get("Action"); a != "DescribeInstances" {
		writeEC2Error(w, http.StatusBadRequest, "InvalidAction", "unexpected action "+a)
		return
	}
	var ids []string
	for key, values := range r.PostForm {
		switch {
		case strings.HasPrefix(key, "InstanceId."):
			ids = append(ids, values...)
		case strings.HasPrefix(key, "Filter.") && strings.Contains(key, ".Value."):
			name := r.PostForm.Get(key[:strings.Index(key, ".Value.")] + ".Name")
			if name != "instance-id" {
				writeEC2Error(w, http.StatusBadRequest, "InvalidParameterValue", "unsupported filter "+name)
				return
			}
			ids = append(ids, values...)
		}
	}
	sort.Strings(ids)
	f.mu.Lock()
	f.requests = append(f.requests, ids)
	f.mu.Unlock()
	f.arrived <- struct{}{}
	if f.gate != nil {
		<-f.gate
	}
	if f.failWith != "" {
		writeEC2Error(w, http.StatusServiceUnavailable, f.failWith, "injected failure")
		return
	}
	var resp describeInstancesResponse
	resp.RequestID = "11111111-2222-3333-4444-555555555555"
	for _, id := range ids {
		if dns, ok := f.instances[id]; ok {
			resp.Reservations = append(resp.Reservations, reservation{
				ID: "r-" + id[2:], Owner: "111122223333",
				Instances: []instance{{ID: id, PrivateDNSName: dns}},
			})
		}
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprint(w, xml.Header)
	if err := xml.NewEncoder(w).Encode(resp); err != nil {
		f.t.Errorf("encoding the fake answer: %v", err)
	}
}

type describeInstancesResponse struct {
	XMLName      xml.Name      `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	RequestID    string        `xml:"requestId"`
	Reservations []reservation `xml:"reservationSet>item"`
}

type reservation struct {
	ID        string     `xml:"reservationId"`
	Owner     string     `xml:"ownerId"`
	Instances []instance `xml:"instancesSet>item"`
}

type instance struct {
	ID             string `xml:"instanceId"`
	PrivateDNSName string `xml:"privateDnsName"`
}

func writeEC2Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `%s<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>11111111-2222-3333-4444-555555555555</RequestID></Response>`, xml.Header, code, msg)
}
