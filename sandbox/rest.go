package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// REST error codes, from the Account API's Swagger file and samples.
const (
	codeInvalidToken  = "EV1020"
	codeNoToken       = "EV1021"
	codeNoDelegation  = "EV1022"
	codeInvalidInput  = "EV1100"
	codeNotFound      = "CST404"
	msgRESTInvalidTok = "Authentication failure means the token (JWT or OAuth) provided is not valid"
	msgRESTNoToken    = "No OAuth or JWT token is present as an HTTP header"
	msgRESTNoDeleg    = "Access is not permitted for the requester to perform this operation for the submitted identifier"
	msgRESTInvalid    = "Invalid input parameters. Please check documentation: "
	msgRESTNotFound   = "A record could not be located for the given identifier."
)

type restError struct {
	Code    string `json:"code"`
	Type    string `json:"type"`
	Message string `json:"message"`
}

type restErrors struct {
	Errors []restError `json:"errors"`
}

// serveAccount answers the Account API: POST account, POST list, GET status.
func (s *Sandbox) serveAccount(kind listenerKind, opName string) gatewayHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		c.rec.label = "account/" + opName
		if !s.admit(w, r, c) {
			return
		}
		if opName == "status" {
			// IR: "sends a 200 HTTP response with a message body of OK".
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("OK"))
			return
		}
		user, ok := s.authREST(w, r, c, kind)
		if !ok {
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"body")
			return
		}
		switch opName {
		case "account":
			s.accountRetrieve(w, c, user, body)
		case "list":
			s.accountList(w, c, user, body)
		}
	}
}

// authREST accepts an OAuth bearer token, or on the cloud listener an M2M
// JWT sent bare. Failures answer 401 with EV1021 (no token) or EV1020.
func (s *Sandbox) authREST(w http.ResponseWriter, r *http.Request, c *call, kind listenerKind) (string, bool) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		c.rec.authFail = true
		s.restError(w, c, http.StatusUnauthorized, codeNoToken, "security", msgRESTNoToken)
		return "", false
	}
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		if u, ok := s.tokens.lookup(strings.TrimSpace(tok), s.now()); ok {
			return u, true
		}
	} else if kind == listenerCloud && looksLikeJWT(h) {
		_, err := verifyM2M(h, s.pki.signingPub, s.pki.SigningThumbprint, s.opts.M2MIssuer, s.now)
		if err == nil {
			return M2MUser, true
		}
		// The reason helps whoever is debugging their JWT minting; the
		// token itself is never logged.
		s.log.Info("sandbox: M2M JWT refused", "reason", err.Error())
	}
	c.rec.authFail = true
	s.restError(w, c, http.StatusUnauthorized, codeInvalidToken, "security", msgRESTInvalidTok)
	return "", false
}

func (s *Sandbox) restError(w http.ResponseWriter, c *call, status int, code, typ, msg string) {
	c.rec.restCode = code
	s.writeJSON(w, status, restErrors{Errors: []restError{{Code: code, Type: typ, Message: msg}}})
}

func (s *Sandbox) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Sandbox) writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// accountSamples maps an account type (the letters after the IRD number in
// an ACC identifier such as 132243158GST004) to IR's sample answer and the
// identifier it carries.
var accountSamples = map[string]struct{ path, id string }{
	"GST": {"rest-account/POST_200_Account_with_GST_account_response.json", "132243158GST004"},
	"FAM": {"rest-account/POST_200_Account_with_FAM_account_response.json", "132243158FAM005"},
	"INC": {"rest-account/POST_200_Account_with_INC_account_response.json", "132243158INC002"},
}

func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	return dec.Decode(v)
}

func (s *Sandbox) accountRetrieve(w http.ResponseWriter, c *call, user string, body []byte) {
	var req struct {
		AccountID     string
		AccountIDType string
	}
	if err := decodeJSON(body, &req); err != nil {
		s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"body")
		return
	}
	switch {
	case len(req.AccountID) < 7 || len(req.AccountID) > 15:
		s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"AccountID")
		return
	case req.AccountIDType != "ACC" && req.AccountIDType != "CMPF" && req.AccountIDType != "KSF":
		s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"AccountIDType")
		return
	}
	accountType := ""
	if len(req.AccountID) >= 12 {
		accountType = req.AccountID[9:12]
	}
	if !s.deleg.allowed(user, req.AccountID, accountType) ||
		(len(req.AccountID) >= 9 && !s.deleg.allowed(user, req.AccountID[:9], accountType)) {
		// IR's sample answers 400 (its Swagger file says 403); the sample wins.
		s.restError(w, c, http.StatusBadRequest, codeNoDelegation, "security", msgRESTNoDeleg)
		return
	}
	smp, ok := accountSamples[accountType]
	if !ok {
		s.restError(w, c, http.StatusBadRequest, codeNotFound, "validation", msgRESTNotFound)
		return
	}
	id, _ := json.Marshal(req.AccountID)
	s.writeRawJSON(w, bytes.ReplaceAll(sample(smp.path), []byte(`"`+smp.id+`"`), id))
}

func (s *Sandbox) accountList(w http.ResponseWriter, c *call, user string, body []byte) {
	var req struct {
		CustomerID     string
		CustomerIDType string
	}
	if err := decodeJSON(body, &req); err != nil {
		s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"body")
		return
	}
	switch {
	case len(req.CustomerID) < 9 || len(req.CustomerID) > 10 || !digits(req.CustomerID):
		s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"CustomerID")
		return
	case req.CustomerIDType != "IRD" && req.CustomerIDType != "CST":
		s.restError(w, c, http.StatusBadRequest, codeInvalidInput, "validation", msgRESTInvalid+"CustomerIDType")
		return
	}
	if !s.deleg.allowed(user, req.CustomerID, "") {
		s.restError(w, c, http.StatusBadRequest, codeNoDelegation, "security", msgRESTNoDeleg)
		return
	}
	// IR's sample lists the accounts of customer 1512100301 as
	// 512100301REB001...: its last nine digits, the IRD number.
	ird := req.CustomerID[len(req.CustomerID)-9:]
	s.writeRawJSON(w, bytes.ReplaceAll(sample("rest-account/POST_200_list_response.json"), []byte("512100301"), []byte(ird)))
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
