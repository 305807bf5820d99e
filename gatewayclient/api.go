// Package gatewayclient talks to Inland Revenue's gateway services: it builds
// SOAP 1.2 envelopes (and REST requests) around the payload a DSP's software
// produced, sends them over mutual or one-way TLS with a per-call deadline,
// parses the answer into a typed Result, and classifies every outcome into
// one Class that the worker, the breaker and the limiter all act on.
package gatewayclient

import (
	"context"
	"time"
)

// Service names one IR gateway service. The SOAP services choose the
// operation with the WS-Addressing Action; the REST services with the path.
type Service string

const (
	ServiceReturns        Service = "returns"        // SOAP: GST, EI (payday), income tax... one endpoint
	ServiceEmployment     Service = "employment"     // SOAP: Employment v2
	ServiceIntermediation Service = "intermediation" // SOAP: Intermediation v1
	ServiceAccount        Service = "account"        // REST: Account API (JSON)
)

// EndpointKind is which of IR's two listeners a call goes to.
type EndpointKind string

const (
	// EndpointCloud is the mutual-TLS listener (port 4046 in IR's
	// environments); the client certificate identifies the DSP.
	EndpointCloud EndpointKind = "cloud"
	// EndpointDesktop is the one-way TLS listener (port 443), with tighter
	// throttling and no refresh tokens.
	EndpointDesktop EndpointKind = "desktop"
)

// AuthMode is how a call is authorised.
type AuthMode string

const (
	// AuthOAuth sends an end user's access token as "Bearer <token>".
	AuthOAuth AuthMode = "oauth"
	// AuthM2M sends an organisation-level JWT the DSP signed itself, bare.
	AuthM2M AuthMode = "m2m"
)

// Credentials yields the value of the Authorization header for one call.
// The client never logs it and never puts it in an error.
type Credentials interface {
	AuthorizationHeader(ctx context.Context) (string, error)
}

// Request is one gateway call.
type Request struct {
	Endpoint  EndpointKind
	Service   Service
	Operation string // SOAP: "File", "RetrieveStatus"...; REST: "account", "list", "status"
	// Payload is, for SOAP services, the payload element the DSP's software
	// produced (e.g. a GST <fileRequest>), which the client wraps in the
	// operation's envelope; for REST, the JSON request body.
	Payload     []byte
	Credentials Credentials
}

// Result is a parsed gateway answer. A Result is returned whenever IR
// answered with a well-formed body, whatever its statusCode; Classify turns
// it into a Class.
type Result struct {
	HTTPStatus    int
	Action        string // the response's WS-Addressing Action (SOAP)
	StatusCode    int    // statusMessage/statusCode; -1 when IR said "unknown"
	ErrorMessage  string
	GatewayID     string // File only
	SubmissionKey string // File only
	// Body is the inner response element (e.g. <fileResponse>) for SOAP, or
	// the whole JSON body for REST.
	Body []byte
	// RESTErrors holds a REST API's {"errors":[...]} entries.
	RESTErrors []RESTError
	Duration   time.Duration
	// RetryAfter is the delay a 429 (or 503) answer asked for in its
	// Retry-After header, 0 when absent; Classify copies it to the Error.
	RetryAfter time.Duration
}

// RESTError is one entry of a REST API's error list, e.g. EV1022.
type RESTError struct {
	Code    string `json:"code"`
	Type    string `json:"type"`
	Message string `json:"message"`
}
