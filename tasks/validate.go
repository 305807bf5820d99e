package tasks

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/schema"
)

// MaxBodyBytes caps a job's body. IR's largest payloads (payday returns of
// big employers) are a few hundred KB; anything past this is a mistake that
// would bloat Redis.
const MaxBodyBytes = 4 << 20

// Validate checks everything that can be checked before a job costs a queue
// slot or a rate-limit permit: known service, operation and endpoint, an
// auth mode the service accepts, and a body that IR would accept (for SOAP
// services, a payload element legal for the operation that validates
// against IR's XSD). Every problem is reported, each naming its field; the
// errors wrap ErrInvalidJob.
func (j *Job) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if j.Version != PayloadVersion {
		bad("version", "unsupported payload version %d (this build reads %d)", j.Version, PayloadVersion)
	}
	op, opErr := gatewayclient.LookupOperation(j.Service, j.Operation)
	if opErr != nil {
		if j.Service == "" {
			bad("service", "missing")
		} else if j.Operation == "" {
			bad("operation", "missing")
		} else {
			bad("operation", "%v", opErr)
		}
	}
	switch j.Endpoint {
	case gatewayclient.EndpointCloud:
	case gatewayclient.EndpointDesktop:
		if j.Service == gatewayclient.ServiceIntermediation || j.Service == gatewayclient.ServiceAccount {
			bad("endpoint", "service %s is served on the cloud (mutual TLS) endpoint only", j.Service)
		}
	default:
		bad("endpoint", "unknown endpoint %q (want cloud or desktop)", j.Endpoint)
	}
	switch j.Auth.Mode {
	case gatewayclient.AuthOAuth:
		if j.Auth.TokenSet == "" {
			bad("auth.token_set", "missing: an oauth job names the end user's token set (never the token itself)")
		}
	case gatewayclient.AuthM2M:
		if j.Auth.TokenSet != "" {
			bad("auth.token_set", "must be empty for m2m: the JWT is minted by the worker")
		}
	case "":
		bad("auth.mode", "missing (oauth or m2m)")
	default:
		bad("auth.mode", "unknown auth mode %q (want oauth or m2m)", j.Auth.Mode)
	}
	if opErr == nil && j.Auth.Mode != "" && !j.Service.Accepts(j.Auth.Mode) {
		bad("auth.mode", "service %s cannot take %s auth: return filing, employment and intermediation need an end user's OAuth token", j.Service, j.Auth.Mode)
	}
	switch {
	case j.Body == "":
		bad("body", "missing")
	case len(j.Body) > MaxBodyBytes:
		bad("body", "%d bytes, over the %d-byte limit", len(j.Body), MaxBodyBytes)
	case opErr != nil:
		// Without a known operation the body can't be judged.
	case j.Service == gatewayclient.ServiceAccount:
		if !json.Valid([]byte(j.Body)) {
			bad("body", "not valid JSON")
		}
	default:
		if reason, err := validateXMLBody(op, []byte(j.Body)); err != nil {
			errs = append(errs, &FieldError{Field: "body", Reason: reason, Err: err})
		}
	}
	if j.Service == gatewayclient.ServiceReturns && j.Operation == OpFile && j.Key == nil {
		bad("key", "missing: call Normalize, which derives it from the payload")
	}
	return errors.Join(errs...)
}

func validateXMLBody(op gatewayclient.Operation, body []byte) (string, error) {
	if err := schema.Validate(body); err != nil {
		switch {
		case errors.Is(err, schema.ErrNotWellFormed):
			return "payload is not well-formed XML", err
		case errors.Is(err, schema.ErrUnknownElement):
			return "payload's root element is not one of IR's", err
		}
		return "payload fails IR's XSD", err
	}
	// The envelope builder knows which payload elements each operation
	// takes; asking it keeps that knowledge in one place.
	if _, err := gatewayclient.BuildEnvelope(op, body); err != nil {
		return "payload element is not one the operation takes", err
	}
	return "", nil
}
