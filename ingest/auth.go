package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// Key is one producer's API key.
type Key struct {
	// Name identifies the producer in logs and to extra handlers (Caller);
	// it is not secret.
	Name string
	// Secret is what the producer sends. Never logged.
	Secret string
}

// keyring holds the SHA-256 of every key. Comparing hashes of equal length
// keeps the comparison's time independent of the keys' lengths, and
// checking every key without stopping at a match keeps it independent of
// which key (if any) matched.
type keyring struct {
	names  []string
	hashes [][sha256.Size]byte
}

func newKeyring(keys []Key) (*keyring, error) {
	kr := &keyring{}
	seen := map[string]bool{}
	for _, k := range keys {
		switch {
		case k.Name == "":
			return nil, errors.New("an API key has no name")
		case k.Secret == "":
			return nil, errors.New("API key " + k.Name + " is empty")
		case seen[k.Name]:
			return nil, errors.New("API key name " + k.Name + " given twice")
		}
		seen[k.Name] = true
		kr.names = append(kr.names, k.Name)
		kr.hashes = append(kr.hashes, sha256.Sum256([]byte(k.Secret)))
	}
	return kr, nil
}

// SetKeys replaces the producers' API keys from the next request on, so
// that a key can be rotated without a restart: add the new key, move the
// producer to it, drop the old one. It refuses a set it cannot take (an
// unnamed, empty or repeated key), and an empty one when the Handler does
// not accept client certificates (ErrNoAuth); the keys in use then stay.
func (h *Handler) SetKeys(keys []Key) error {
	if len(keys) == 0 && !h.opts.ClientCerts {
		return ErrNoAuth
	}
	kr, err := newKeyring(keys)
	if err != nil {
		return err
	}
	h.keys.Store(kr)
	return nil
}

// match returns the name of the key secret is, in time that depends only
// on how many keys there are.
func (kr *keyring) match(secret string) (string, bool) {
	h := sha256.Sum256([]byte(secret))
	found, idx := 0, 0
	for i := range kr.hashes {
		eq := subtle.ConstantTimeCompare(h[:], kr.hashes[i][:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return "", false
	}
	return kr.names[idx], true
}

// presentedKey returns the API key of a request: "Authorization: Bearer
// <key>" or "X-API-Key: <key>". ok is false when neither header is there;
// a header of the wrong form gives ok with an empty key, which matches
// nothing.
func presentedKey(r *http.Request) (key string, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", true
		}
		return strings.TrimSpace(rest), true
	}
	if h := r.Header.Get("X-API-Key"); h != "" {
		return strings.TrimSpace(h), true
	}
	return "", false
}

// authenticate names the caller of r, or says why it is refused. A client
// certificate verified against the listener's client CAs authenticates
// when client certificates are accepted; an API key sent along must still
// be right, so that a wrong key is never silently ignored.
func (h *Handler) authenticate(r *http.Request) (caller string, refusal string) {
	keys := h.keys.Load()
	key, sentKey := presentedKey(r)
	if sentKey {
		name, ok := keys.match(key)
		if !ok {
			return "", "unknown API key"
		}
		return "key:" + name, ""
	}
	if h.opts.ClientCerts && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName, ""
	}
	switch {
	case len(keys.names) > 0 && h.opts.ClientCerts:
		return "", "no API key and no client certificate"
	case h.opts.ClientCerts:
		return "", "no client certificate"
	}
	return "", "no API key"
}

type callerKey struct{}

// Caller returns the authenticated caller of a request the Handler
// passed on: "key:<name>" for an API key, "cert:<common name>" for a
// client certificate. Handlers added with Handle use it to log who called.
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}
