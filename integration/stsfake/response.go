package stsfake

import (
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// stsNamespace is the XML namespace of STS answers.
const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// apiError is an STS error answer.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// wantsJSON mirrors STS: JSON when the client accepts application/json
// (aws-iam-authenticator sends exactly that), XML otherwise.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

type callerIdentity struct {
	Arn     string `json:"Arn" xml:"Arn"`
	UserID  string `json:"UserId" xml:"UserId"`
	Account string `json:"Account" xml:"Account"`
}

type responseMetadata struct {
	RequestID string `json:"RequestId" xml:"RequestId"`
}

type jsonIdentityResponse struct {
	GetCallerIdentityResponse struct {
		GetCallerIdentityResult callerIdentity   `json:"GetCallerIdentityResult"`
		ResponseMetadata        responseMetadata `json:"ResponseMetadata"`
	} `json:"GetCallerIdentityResponse"`
}

type xmlIdentityResponse struct {
	XMLName                 xml.Name         `xml:"GetCallerIdentityResponse"`
	Xmlns                   string           `xml:"xmlns,attr"`
	GetCallerIdentityResult callerIdentity   `xml:"GetCallerIdentityResult"`
	ResponseMetadata        responseMetadata `xml:"ResponseMetadata"`
}

type errorBody struct {
	Type    string `json:"Type" xml:"Type"`
	Code    string `json:"Code" xml:"Code"`
	Message string `json:"Message" xml:"Message"`
}

type jsonErrorResponse struct {
	Error     errorBody `json:"Error"`
	RequestID string    `json:"RequestId"`
}

type xmlErrorResponse struct {
	XMLName   xml.Name  `xml:"ErrorResponse"`
	Xmlns     string    `xml:"xmlns,attr"`
	Error     errorBody `xml:"Error"`
	RequestID string    `xml:"RequestId"`
}

func writeIdentity(w http.ResponseWriter, r *http.Request, id callerIdentity, requestID string) {
	if wantsJSON(r) {
		var body jsonIdentityResponse
		body.GetCallerIdentityResponse.GetCallerIdentityResult = id
		body.GetCallerIdentityResponse.ResponseMetadata.RequestID = requestID
		writeJSON(w, http.StatusOK, requestID, body)
		return
	}
	writeXML(w, http.StatusOK, requestID, xmlIdentityResponse{
		Xmlns:                   stsNamespace,
		GetCallerIdentityResult: id,
		ResponseMetadata:        responseMetadata{RequestID: requestID},
	})
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError, requestID string) {
	body := errorBody{Type: "Sender", Code: e.Code, Message: e.Message}
	if e.Status >= 500 {
		body.Type = "Receiver"
	}
	if wantsJSON(r) {
		writeJSON(w, e.Status, requestID, jsonErrorResponse{Error: body, RequestID: requestID})
		return
	}
	writeXML(w, e.Status, requestID, xmlErrorResponse{Xmlns: stsNamespace, Error: body, RequestID: requestID})
}

func writeJSON(w http.ResponseWriter, status int, requestID string, v any) {
	data, _ := json.Marshal(v) // plain structs of strings cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func writeXML(w http.ResponseWriter, status int, requestID string, v any) {
	data, _ := xml.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(status)
	_, _ = w.Write(data)
	_, _ = w.Write([]byte("\n"))
}

// newRequestID makes a UUID-shaped request id like STS's.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
