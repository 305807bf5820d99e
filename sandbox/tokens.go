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
// token.
type accessToken struct {
	user     string
	issued   time.Time
	expires  time.Time
	clientID string // OAuth client that obtained it; "" for IssueToken
	setID    string // token set (one authorization's lineage); "" for IssueToken
	scope    string
	revoked  bool
}

// tokenTable holds the access tokens the sandbox accepts: those of
// IssueToken and those the OAuth server issues, so both work on every
// gateway path through the one lookup.
type tokenTable struct {
	mu    sync.Mutex
	rows  map[[sha256.Size]byte]*accessToken
	bySet map[string][]*accessToken
}

func newTokenTable() *tokenTable {
	return &tokenTable{rows: map[[sha256.Size]byte]*accessToken{}, bySet: map[string][]*accessToken{}}
}

// newOpaqueToken returns 256 random bits, base64url: unguessable, and
// opaque on purpose (IR's are JWTs, but a client must never read them).
func newOpaqueToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// issue mints an opaque token for user.
func (t *tokenTable) issue(user string, ttl time.Duration, now time.Time) string {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return t.add(&accessToken{user: user, issued: now, expires: now.Add(ttl)})
}

// add mints a token for row and files it (under its set, if any).
func (t *tokenTable) add(row *accessToken) string {
	tok := newOpaqueToken()
	t.mu.Lock()
	t.rows[sha256.Sum256([]byte(tok))] = row
	if row.setID != "" {
		t.bySet[row.setID] = append(t.bySet[row.setID], row)
	}
	t.mu.Unlock()
	return tok
}

// lookup returns the user a live token belongs to.
func (t *tokenTable) lookup(tok string, now time.Time) (string, bool) {
	row, ok := t.live(tok, now)
	return row.user, ok
}

// live returns a copy of a live token's row.
func (t *tokenTable) live(tok string, now time.Time) (accessToken, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	row, ok := t.rows[sha256.Sum256([]byte(tok))]
	if !ok || row.revoked || !now.Before(row.expires) {
		return accessToken{}, false
	}
	return *row, true
}

// revoke revokes one live token, reporting whether there was one.
func (t *tokenTable) revoke(tok string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	row, ok := t.rows[sha256.Sum256([]byte(tok))]
	if !ok || row.revoked || !now.Before(row.expires) {
		return false
	}
	row.revoked = true
	return true
}

// revokeSet revokes every access token of a token set at once: the next
// gateway call with any of them is refused.
func (t *tokenTable) revokeSet(setID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, row := range t.bySet[setID] {
		row.revoked = true
	}
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
