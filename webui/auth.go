package webui

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
)

// realm is what the browser's login prompt names.
const realm = `Basic realm="gatewayq monitoring", charset="UTF-8"`

// credentials holds the SHA-256 of the user name and password, never the
// password itself. Comparing fixed-length digests in constant time keeps
// the comparison's duration independent of how much of a guess is right,
// and of the password's length.
type credentials struct {
	user, pass [sha256.Size]byte
}

func newCredentials(user, pass string) credentials {
	return credentials{user: sha256.Sum256([]byte(user)), pass: sha256.Sum256([]byte(pass))}
}

// match reports whether the pair is the configured one. Both halves are
// always compared, so a wrong user name takes as long as a wrong password.
func (c credentials) match(user, pass string) bool {
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(u[:], c.user[:])&subtle.ConstantTimeCompare(p[:], c.pass[:]) == 1
}

// basicAuth lets through only requests carrying the right HTTP Basic
// credentials; the others get 401 and the challenge that makes a browser
// ask for them.
func basicAuth(c credentials, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if ok && c.match(user, pass) {
			next.ServeHTTP(w, r)
			return
		}
		if ok {
			// A browser's first request carries no credentials; only a
			// wrong pair is worth a line. Neither half of it is logged:
			// people type passwords into the user name field.
			log.Warn("monitoring: wrong credentials", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		}
		w.Header().Set("WWW-Authenticate", realm)
		http.Error(w, "authentication required", http.StatusUnauthorized)
	})
}
