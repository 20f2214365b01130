package sts

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// throttlingCodes are the error codes AWS services use for rate limiting.
// STS itself answers 400 Throttling "Rate exceeded".
var throttlingCodes = map[string]bool{
	"Throttling":               true,
	"ThrottlingException":      true,
	"ThrottledException":       true,
	"RequestLimitExceeded":     true,
	"TooManyRequestsException": true,
	"RequestThrottled":         true,
}

type identityAnswer struct {
	GetCallerIdentityResponse *struct {
		GetCallerIdentityResult *struct {
			Account string `json:"Account"`
			Arn     string `json:"Arn"`
			UserID  string `json:"UserId"`
		} `json:"GetCallerIdentityResult"`
	} `json:"GetCallerIdentityResponse"`
}

type jsonError struct {
	Error struct {
		Code    string `json:"Code"`
		Message string `json:"Message"`
	} `json:"Error"`
}

type xmlError struct {
	Error struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
}

// interpret turns STS's answer into a Caller or a classified error.
func interpret(resp *http.Response, body []byte, secrets []string) (Caller, error) {
	status := resp.StatusCode
	switch {
	case status == http.StatusOK:
		return parseIdentity(resp, body)
	case status >= 300 && status < 400:
		// Not followed (CheckRedirect); not the client's fault either.
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "redirect", Status: status}
	case status == http.StatusTooManyRequests:
		return Caller{}, &ThrottledError{RetryAfter: retryAfter(resp), Status: status, Code: "TooManyRequests"}
	case status == http.StatusRequestTimeout:
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "status", Status: status}
	case status >= 400 && status < 500:
		code, message := errorCode(resp, body)
		if throttlingCodes[code] {
			return Caller{}, &ThrottledError{RetryAfter: retryAfter(resp), Status: status, Code: code}
		}
		// SignatureDoesNotMatch, InvalidClientTokenId, ExpiredToken,
		// AccessDenied, IncompleteSignature, ...: STS looked at the
		// signature and refused it.
		return Caller{}, &Error{Class: ErrUnauthenticated, Reason: "rejected", Status: status,
			Code: code, Message: sanitize(message, secrets)}
	default:
		code, message := errorCode(resp, body)
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "status", Status: status,
			Code: code, Message: sanitize(message, secrets)}
	}
}

func parseIdentity(resp *http.Response, body []byte) (Caller, error) {
	// We asked for JSON; anything else (an HTML login page from a proxy,
	// XML from something that ignored Accept) is not an answer we trust.
	mediaType, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "content-type", Status: resp.StatusCode,
			Err: fmt.Errorf("content type %.64q is not application/json", resp.Header.Get("Content-Type"))}
	}
	var a identityAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "decode", Status: resp.StatusCode, Err: err}
	}
	if a.GetCallerIdentityResponse == nil || a.GetCallerIdentityResponse.GetCallerIdentityResult == nil {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "incomplete", Status: resp.StatusCode,
			Err: errors.New("no GetCallerIdentityResult in the answer")}
	}
	r := a.GetCallerIdentityResponse.GetCallerIdentityResult
	if r.Arn == "" || r.Account == "" || r.UserID == "" {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "incomplete", Status: resp.StatusCode,
			Err: errors.New("the answer lacks one of Arn, Account and UserId")}
	}
	return Caller{ARN: r.Arn, Account: r.Account, UserID: r.UserID}, nil
}

// errorCode reads STS's error code from a JSON or XML error body, best
// effort: an unreadable body just has no code.
func errorCode(resp *http.Response, body []byte) (code, message string) {
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case strings.HasSuffix(mediaType, "json"):
		var e jsonError
		if json.Unmarshal(body, &e) == nil {
			code, message = e.Error.Code, e.Error.Message
		}
	case strings.HasSuffix(mediaType, "xml"):
		var e xmlError
		if xml.Unmarshal(body, &e) == nil {
			code, message = e.Error.Code, e.Error.Message
		}
	}
	if !validCode(code) {
		code = ""
	}
	return code, message
}

// validCode keeps error codes to what AWS uses, so a hostile body cannot put
// arbitrary text in logs through this field.
func validCode(code string) bool {
	if len(code) == 0 || len(code) > 64 {
		return false
	}
	for _, r := range code {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// retryAfter reads a Retry-After in seconds, capped; STS sends none.
func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return defaultRetryAfter
}

// maxMessage bounds an upstream message in our errors.
const maxMessage = 200

// sanitize shortens an upstream message to printable ASCII and withholds it
// if it echoes anything of the request's credentials (some AWS services
// quote the canonical request or the query in signature errors).
func sanitize(message string, secrets []string) string {
	if message == "" {
		return ""
	}
	lower := strings.ToLower(message)
	if strings.Contains(lower, "x-amz-") || strings.Contains(lower, token.Prefix) {
		return "[message withheld: it quotes the request]"
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(message, s) {
			return "[message withheld: it quotes the request]"
		}
	}
	var b strings.Builder
	for _, r := range message {
		if b.Len() >= maxMessage {
			b.WriteString("...")
			break
		}
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

// secretsOf lists the parts of a presigned URL that must never be echoed.
func secretsOf(p *token.Presigned) []string {
	q := p.URL.Query()
	return []string{q.Get("X-Amz-Signature"), q.Get("X-Amz-Security-Token"), p.URL.RawQuery}
}
