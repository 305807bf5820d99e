package sandbox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// maxOAuthForm bounds an OAuth request body. IR's samples are about 1.1 kB
// (a JWT-sized token and a few parameters); 64 KiB leaves room and stops a
// client streaming megabytes into the token endpoint.
const maxOAuthForm = 64 << 10

// Errors of the OAuth request parsers. They never quote a parameter's
// value: a value may be a code, a token or a secret.
var (
	errFormMalformed   = errors.New("malformed application/x-www-form-urlencoded data")
	errFormContentType = errors.New("content type must be application/x-www-form-urlencoded")
	errFormTooLarge    = errors.New("request body too large")
	errBasicMalformed  = errors.New("malformed HTTP Basic credentials")
)

// oauthParams are the parameters of one OAuth request, each sent at most
// once. RFC 6749 §3.1 and §3.2: a parameter sent without a value is
// treated as omitted, and none may be sent more than once.
type oauthParams map[string]string

// parseOAuthParams parses a URL query or an application/x-www-form-urlencoded
// body. A parameter repeated (even with equal values) is refused, as RFC
// 6749 requires, so that a client sending redirect_uri or code twice is
// caught here rather than by IR.
func parseOAuthParams(raw string) (oauthParams, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		// url's error quotes the bad escape; ours does not, see above.
		return nil, errFormMalformed
	}
	p := make(oauthParams, len(vals))
	for k, v := range vals {
		if len(v) > 1 {
			return nil, fmt.Errorf("parameter %q sent more than once", clip(k))
		}
		if v[0] != "" {
			p[k] = v[0]
		}
	}
	return p, nil
}

// clip shortens a parameter name for an error message: names are not
// secret, but they are the caller's input and may be long.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// word returns parameter k with surrounding spaces removed. IR's own
// revocation sample sends "grant_type= oracle-idm:...", so the sandbox
// accepts a stray space around the grant type and token action rather than
// refusing a request IR documents.
func (p oauthParams) word(k string) string { return strings.Trim(p[k], " ") }

// readOAuthForm reads a POSTed form. Parameters in the URL query are not
// read: RFC 6749 §3.2 puts them in the body, and a token in a URL ends up
// in access logs.
func readOAuthForm(w http.ResponseWriter, r *http.Request) (oauthParams, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errFormContentType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOAuthForm))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errFormTooLarge
		}
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	return parseOAuthParams(string(body))
}

// parseBasic parses an Authorization header carrying HTTP Basic client
// credentials. RFC 6749 §2.3.1: the client id and secret are each
// form-urlencoded before they are joined with ":" and base64-encoded, so
// they are decoded here; for ids and secrets of letters, digits and "-._~"
// (IR's, and the sandbox's generated ones) the encoding changes nothing.
// ok is false when the header is not Basic at all.
func parseBasic(header string) (id, secret string, ok bool, err error) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", true, errBasicMalformed
	}
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", true, errBasicMalformed
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", true, errBasicMalformed
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", true, errBasicMalformed
	}
	if id == "" {
		return "", "", true, errBasicMalformed
	}
	return id, secret, true, nil
}
