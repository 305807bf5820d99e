package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// DefaultTokenTTL is how long an access token lives when IssueToken is
// given no TTL: IR's access tokens live 8 hours.
const DefaultTokenTTL = 8 * time.Hour

// M2MUser is the user name delegation rules apply to for calls authorised
// with an M2M JWT: the DSP acting as itself. Deny(M2MUser, ...) refuses the
// DSP's organisation-level access to an identifier.
const M2MUser = "m2m"

// accessToken is one row of the token table. The table is keyed by the
// token's SHA-256, so a dump of it (or a stray log line) holds no usable
// token. Fields beyond the user and lifetime are there for the OAuth server
// (authorization-code grant, rotating refresh tokens, reuse detection) that
// will issue rows into the same table.
type accessToken struct {
	user     string
	issued   time.Time
	expires  time.Time
	clientID string // OAuth client that obtained it; "" for IssueToken
	setID    string // token set (access + refresh lineage) it belongs to
	revoked  bool
}

// tokenTable holds the access tokens the sandbox accepts.
type tokenTable struct {
	mu   sync.Mutex
	rows map[[sha256.Size]byte]*accessToken
}

func newTokenTable() *tokenTable {
	return &tokenTable{rows: map[[sha256.Size]byte]*accessToken{}}
}

// issue mints an opaque token for user.
func (t *tokenTable) issue(user string, ttl time.Duration, now time.Time) string {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	t.mu.Lock()
	t.rows[sha256.Sum256([]byte(tok))] = &accessToken{user: user, issued: now, expires: now.Add(ttl)}
	t.mu.Unlock()
	return tok
}

// lookup returns the user a live token belongs to.
func (t *tokenTable) lookup(tok string, now time.Time) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	row, ok := t.rows[sha256.Sum256([]byte(tok))]
	if !ok || row.revoked || !now.Before(row.expires) {
		return "", false
	}
	return row.user, true
}

// delegation is the table of what myIR users may act for. By default a user
// may act for everything; Deny adds exceptions.
type delegation struct {
	mu     sync.RWMutex
	denied map[denyKey]bool
}

type denyKey struct{ user, identifier, accountType string }

func newDelegation() *delegation { return &delegation{denied: map[denyKey]bool{}} }

func (d *delegation) deny(user, identifier, accountType string) {
	d.mu.Lock()
	d.denied[denyKey{user, identifier, accountType}] = true
	d.mu.Unlock()
}

// allowed reports whether user may act for (identifier, accountType). A
// denial with an empty account type covers every account of the identifier.
func (d *delegation) allowed(user, identifier, accountType string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.denied[denyKey{user, identifier, ""}] {
		return false
	}
	return accountType == "" || !d.denied[denyKey{user, identifier, accountType}]
}
