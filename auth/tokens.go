package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// TokenSet is one end user's OAuth grant: what IR's token endpoint returned
// after the user consented in myIR, plus who and when. String, GoString and
// LogValue redact both tokens, so a TokenSet can be logged or printed.
type TokenSet struct {
	// ID names the set; jobs refer to it, never to a token. Letters,
	// digits and "-_.:@" only, at most 200 characters.
	ID           string
	AccessToken  string
	RefreshToken string // empty on the desktop endpoint, which issues none
	Expiry       time.Time
	Endpoint     gatewayclient.EndpointKind
	Scope        string
	User         string // the myIR user who consented
	ConsentedAt  time.Time
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// String describes t with its tokens redacted.
func (t TokenSet) String() string {
	return fmt.Sprintf("TokenSet{ID:%s User:%s Endpoint:%s Scope:%s Expiry:%s ConsentedAt:%s AccessToken:%s RefreshToken:%s}",
		t.ID, t.User, t.Endpoint, t.Scope, t.Expiry.Format(time.RFC3339), t.ConsentedAt.Format(time.RFC3339),
		redact(t.AccessToken), redact(t.RefreshToken))
}

// GoString keeps %#v from printing the tokens.
func (t TokenSet) GoString() string { return t.String() }

// LogValue implements slog.LogValuer with the tokens redacted.
func (t TokenSet) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", t.ID),
		slog.String("user", t.User),
		slog.String("endpoint", string(t.Endpoint)),
		slog.String("scope", t.Scope),
		slog.Time("expiry", t.Expiry),
		slog.Time("consented_at", t.ConsentedAt),
		slog.String("access_token", redact(t.AccessToken)),
		slog.String("refresh_token", redact(t.RefreshToken)),
	)
}

// TokenSetInfo is what an operator may see of a token set: no token.
type TokenSetInfo struct {
	ID              string
	Expiry          time.Time
	Endpoint        gatewayclient.EndpointKind
	Scope           string
	User            string
	ConsentedAt     time.Time
	HasRefreshToken bool
	// KeyID is the key the stored value is encrypted with; sets still under
	// a retired key are rewritten with the current one by any Put.
	KeyID string
}

// Keyring holds the AES-256 keys token sets are encrypted with. New values
// are written with Current; any key in Keys decrypts, so a key is rotated by
// adding a new one, making it Current, and removing the old one once no
// stored set uses it (see TokenSetInfo.KeyID).
type Keyring struct {
	Current string
	Keys    map[string][]byte // key ID -> 32-byte key
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate names each problem of k, never a key's bytes.
func (k Keyring) Validate() error {
	var errs []error
	if k.Current == "" {
		errs = append(errs, errors.New("Current: required"))
	} else if _, ok := k.Keys[k.Current]; !ok {
		errs = append(errs, fmt.Errorf("Current: key %q is not in Keys", k.Current))
	}
	for id, key := range k.Keys {
		if !keyIDPattern.MatchString(id) {
			errs = append(errs, fmt.Errorf("Keys: key ID %q must be 1-64 of A-Z a-z 0-9 _ -", id))
		}
		if len(key) != 32 {
			errs = append(errs, fmt.Errorf("Keys[%s]: %d bytes, want 32 (AES-256)", id, len(key)))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("auth: invalid keyring: %w", errors.Join(errs...))
}

// Errors of the token store.
var (
	ErrTokenSetNotFound = errors.New("token set not found")
	ErrTokenExpired     = errors.New("access token expired")
	// ErrUnknownKey: the value was written with a key ID not in the keyring.
	ErrUnknownKey = errors.New("encrypted with a key not in the keyring")
	// ErrDecrypt: the key ID is known but the value does not open with it:
	// a wrong key under that ID, or a tampered or swapped value.
	ErrDecrypt = errors.New("cannot decrypt: wrong key, or the value was tampered with")
)

// ExpirySkew is how long before its Expiry an access token is treated as
// expired, so it does not run out in the middle of a call.
const ExpirySkew = time.Minute

// Store keeps token sets in Redis, each value encrypted with AES-256-GCM
// under a random nonce, with the set's ID as additional data (a value moved
// to another ID does not decrypt) and prefixed with its key ID.
//
// Layout: "<prefix>tokenset:{<id>}" holds the value and "<prefix>tokensets"
// indexes the IDs. The hash tag keeps every key of one set (the value and
// the refresh lock, fence, marker and dead flag of refresh.go) in one Redis
// Cluster slot, so the refresh scripts run on a cluster unchanged.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	keys   Keyring
	aeads  map[string]cipher.AEAD
	now    func() time.Time

	// Refreshing (refresh.go); set before use.
	oauth   *OAuthClient
	policy  RefreshPolicy
	log     *slog.Logger
	metrics *Metrics

	cacheTTL time.Duration
	cacheMu  sync.Mutex
	cache    map[string]cachedSet
}

type cachedSet struct {
	ts      TokenSet
	fetched time.Time
}

// CacheFor lets Credentials reuse a token set read from Redis for up to
// ttl in this process (never past its expiry), saving a Redis round trip
// and a decryption on every gateway call of a batch that uses one set.
// Put and Delete through this Store drop its cached copy; another
// process's change is seen within ttl. Zero (the default) turns the cache
// off. Get never uses the cache.
func (s *Store) CacheFor(ttl time.Duration) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.cacheTTL = ttl
	s.cache = map[string]cachedSet{}
}

// cachedFresh returns this process's copy of set id if the cache is on,
// the copy is younger than the cache TTL, and its access token is good for
// more than RefreshBefore: a set nearing expiry always goes through Fresh.
func (s *Store) cachedFresh(id string) (TokenSet, bool) {
	now := s.now()
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	c, ok := s.cache[id]
	if !ok || s.cacheTTL <= 0 || now.Sub(c.fetched) >= s.cacheTTL || !now.Before(c.ts.Expiry.Add(-s.policy.RefreshBefore)) {
		return TokenSet{}, false
	}
	return c.ts, true
}

func (s *Store) remember(ts TokenSet, fetched time.Time) {
	s.cacheMu.Lock()
	if s.cache != nil && s.cacheTTL > 0 {
		s.cache[ts.ID] = cachedSet{ts: ts, fetched: fetched}
	}
	s.cacheMu.Unlock()
}

func (s *Store) forget(id string) {
	s.cacheMu.Lock()
	delete(s.cache, id)
	s.cacheMu.Unlock()
}

// NewStore validates keys and returns a Store using rdb. prefix starts every
// key the store writes.
func NewStore(rdb redis.UniversalClient, prefix string, keys Keyring) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("auth: NewStore: nil Redis client")
	}
	if err := keys.Validate(); err != nil {
		return nil, err
	}
	s := &Store{rdb: rdb, prefix: prefix, keys: keys, aeads: map[string]cipher.AEAD{}, now: time.Now, policy: RefreshPolicy{}.withDefaults()}
	for id, k := range keys.Keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("auth: key %q: %w", id, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("auth: key %q: %w", id, err)
		}
		s.aeads[id] = gcm
	}
	return s, nil
}

var tokenSetIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,200}$`)

func (s *Store) key(id string) string { return s.prefix + "tokenset:{" + id + "}" }
func (s *Store) index() string        { return s.prefix + "tokensets" }

// storedTokenSet is the plaintext of a stored value.
type storedTokenSet struct {
	ID           string    `json:"id"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Endpoint     string    `json:"endpoint"`
	Scope        string    `json:"scope,omitempty"`
	User         string    `json:"user,omitempty"`
	ConsentedAt  time.Time `json:"consented_at"`
}

const valueVersion = "v1"

func additionalData(id string) []byte {
	return []byte("gatewayq/tokenset/" + valueVersion + "\x00" + id)
}

// putScript writes a set's value and clears its dead flag and refresh
// marker: a new consent revives a dead set, and a refresh in flight from
// the old value can no longer store its result (the value changed).
var putScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`)

// Put stores ts, encrypted with the current key, replacing any set with
// its ID (a new consent): a dead set is alive again, and a refresh in
// flight for the old set is discarded.
func (s *Store) Put(ctx context.Context, ts TokenSet) error {
	defer s.forget(ts.ID)
	value, err := s.sealSet(ts)
	if err != nil {
		return err
	}
	// The index is another slot, so no MULTI (it would fail on Redis
	// Cluster). Value first: an index entry never points at nothing for
	// long, and List cleans up after a crash between the two.
	if err := putScript.Run(ctx, s.rdb, []string{s.key(ts.ID), s.deadKey(ts.ID), s.markerKey(ts.ID)}, value).Err(); err != nil {
		return fmt.Errorf("auth: token set %q: store: %w", ts.ID, err)
	}
	if err := s.rdb.SAdd(ctx, s.index(), ts.ID).Err(); err != nil {
		return fmt.Errorf("auth: token set %q: index: %w", ts.ID, err)
	}
	return nil
}

// sealSet validates ts and returns its encrypted stored value.
func (s *Store) sealSet(ts TokenSet) (string, error) {
	if !tokenSetIDPattern.MatchString(ts.ID) {
		return "", fmt.Errorf("auth: token set ID %q: must be 1-200 of A-Z a-z 0-9 _ . : @ -", ts.ID)
	}
	if ts.AccessToken == "" {
		return "", fmt.Errorf("auth: token set %q: no access token", ts.ID)
	}
	plain, err := json.Marshal(storedTokenSet{
		ID: ts.ID, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken, Expiry: ts.Expiry,
		Endpoint: string(ts.Endpoint), Scope: ts.Scope, User: ts.User, ConsentedAt: ts.ConsentedAt,
	})
	if err != nil {
		return "", fmt.Errorf("auth: token set %q: encode: %w", ts.ID, err)
	}
	value, err := s.seal(ts.ID, plain)
	clear(plain)
	return value, err
}

// Get returns the token set id, or an error wrapping ErrTokenSetNotFound,
// ErrUnknownKey or ErrDecrypt.
func (s *Store) Get(ctx context.Context, id string) (TokenSet, error) {
	ts, _, err := s.get(ctx, id)
	return ts, err
}

func (s *Store) get(ctx context.Context, id string) (TokenSet, string, error) {
	value, err := s.rdb.Get(ctx, s.key(id)).Result()
	if errors.Is(err, redis.Nil) {
		return TokenSet{}, "", fmt.Errorf("auth: token set %q: %w", id, ErrTokenSetNotFound)
	}
	if err != nil {
		return TokenSet{}, "", fmt.Errorf("auth: token set %q: %w", id, err)
	}
	return s.decode(id, value)
}

// decode opens a stored value of set id.
func (s *Store) decode(id, value string) (TokenSet, string, error) {
	plain, keyID, err := s.open(id, value)
	if err != nil {
		return TokenSet{}, keyID, err
	}
	var st storedTokenSet
	err = json.Unmarshal(plain, &st)
	clear(plain)
	if err != nil {
		return TokenSet{}, keyID, fmt.Errorf("auth: token set %q: decode: %w", id, errors.New("invalid JSON"))
	}
	if st.ID != id {
		// Unreachable unless the additional data check is broken.
		return TokenSet{}, keyID, fmt.Errorf("auth: token set %q: %w", id, ErrDecrypt)
	}
	return TokenSet{
		ID: st.ID, AccessToken: st.AccessToken, RefreshToken: st.RefreshToken, Expiry: st.Expiry,
		Endpoint: gatewayclient.EndpointKind(st.Endpoint), Scope: st.Scope, User: st.User, ConsentedAt: st.ConsentedAt,
	}, keyID, nil
}

// Delete removes the token set id, with its refresh lock, marker and dead
// flag; deleting a missing set is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	defer s.forget(id)
	if err := s.rdb.Del(ctx, s.key(id), s.lockKey(id), s.fenceKey(id), s.markerKey(id), s.deadKey(id)).Err(); err != nil {
		return fmt.Errorf("auth: token set %q: delete: %w", id, err)
	}
	if err := s.rdb.SRem(ctx, s.index(), id).Err(); err != nil {
		return fmt.Errorf("auth: token set %q: unindex: %w", id, err)
	}
	return nil
}

// List describes every stored token set, sorted by ID, without tokens. Sets
// that cannot be decrypted are left out and reported together in the error,
// alongside the sets that could be read.
func (s *Store) List(ctx context.Context) ([]TokenSetInfo, error) {
	ids, err := s.rdb.SMembers(ctx, s.index()).Result()
	if err != nil {
		return nil, fmt.Errorf("auth: list token sets: %w", err)
	}
	slices.Sort(ids)
	var (
		infos []TokenSetInfo
		errs  []error
	)
	for _, id := range ids {
		ts, keyID, err := s.get(ctx, id)
		switch {
		case errors.Is(err, ErrTokenSetNotFound):
			// The index outlived the value (a crash inside Put or Delete).
			_ = s.rdb.SRem(ctx, s.index(), id).Err()
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		infos = append(infos, TokenSetInfo{
			ID: ts.ID, Expiry: ts.Expiry, Endpoint: ts.Endpoint, Scope: ts.Scope, User: ts.User,
			ConsentedAt: ts.ConsentedAt, HasRefreshToken: ts.RefreshToken != "", KeyID: keyID,
		})
	}
	return infos, errors.Join(errs...)
}

// seal encrypts plain as "v1.<keyID>.<base64(nonce|ciphertext)>".
func (s *Store) seal(id string, plain []byte) (string, error) {
	aead := s.aeads[s.keys.Current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("auth: nonce: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, plain, additionalData(id))
	return valueVersion + "." + s.keys.Current + "." + base64.RawStdEncoding.EncodeToString(sealed), nil
}

func (s *Store) open(id, value string) ([]byte, string, error) {
	version, rest, ok1 := strings.Cut(value, ".")
	keyID, data, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || version != valueVersion {
		return nil, "", fmt.Errorf("auth: token set %q: %w (unrecognised format)", id, ErrDecrypt)
	}
	aead, ok := s.aeads[keyID]
	if !ok {
		return nil, keyID, fmt.Errorf("auth: token set %q: key %q: %w", id, keyID, ErrUnknownKey)
	}
	sealed, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil || len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, keyID, fmt.Errorf("auth: token set %q: key %q: %w", id, keyID, ErrDecrypt)
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], additionalData(id))
	if err != nil {
		return nil, keyID, fmt.Errorf("auth: token set %q: key %q: %w", id, keyID, ErrDecrypt)
	}
	return plain, keyID, nil
}

// Credentials returns the gatewayclient.Credentials of token set id: the
// header "Bearer <access token>" of a set good for more than RefreshBefore,
// from this process's cache (see CacheFor) or through Fresh, which
// refreshes it once for the whole fleet when needed.
//
// A missing set, or one that needs the user's consent again (errors.Is
// ErrNeedsConsent: dead, refused by IR, or expired without a refresh
// token), fails with a *gatewayclient.Error of ClassAuth whose Message
// starts "needs re-consent: "; a set the keyring cannot open, or an OAuth
// client IR refuses, with ClassConfig; IR's OAuth server being unreachable
// with ClassRetryLater; a Redis or context failure is returned
// unclassified, which the worker retries.
//
// The value returned also has a method
//
//	Rejected(ctx context.Context) error
//
// to call when IR refused the header it last returned (statusCode 1 or 2):
// it refreshes the set unless another job already did (Store.ForceAfter),
// so the job can be tried once more; its errors are classified the same way.
func (s *Store) Credentials(id string) gatewayclient.Credentials {
	return &bearerCredentials{store: s, id: id}
}

type bearerCredentials struct {
	store *Store
	id    string

	mu   sync.Mutex
	last string // the access token last handed out
}

var _ gatewayclient.Credentials = (*bearerCredentials)(nil)

func (b *bearerCredentials) AuthorizationHeader(ctx context.Context) (string, error) {
	ts, ok := b.store.cachedFresh(b.id)
	if !ok {
		fetched := b.store.now()
		var err error
		ts, err = b.store.Fresh(ctx, b.id)
		if err != nil {
			return "", classifyTokenError(b.id, err)
		}
		b.store.remember(ts, fetched)
	}
	b.mu.Lock()
	b.last = ts.AccessToken
	b.mu.Unlock()
	return "Bearer " + ts.AccessToken, nil
}

// Rejected refreshes the set after IR refused the access token this
// Credentials last returned, unless the stored set has already moved on.
func (b *bearerCredentials) Rejected(ctx context.Context) error {
	b.mu.Lock()
	last := b.last
	b.mu.Unlock()
	if last == "" {
		// No token went out: the failure was in getting one (a dead or
		// missing set), and there is nothing to refresh. Say what getting
		// one says now: the same failure, classified, or nil when the set
		// has meanwhile become usable.
		_, err := b.AuthorizationHeader(ctx)
		return err
	}
	fetched := b.store.now()
	b.store.forget(b.id)
	ts, err := b.store.ForceAfter(ctx, b.id, last)
	if err != nil {
		return classifyTokenError(b.id, err)
	}
	b.store.remember(ts, fetched)
	return nil
}

// classifyTokenError turns a token-set failure into what a job should do.
func classifyTokenError(id string, err error) error {
	var oe *OAuthError
	var ce *consentError
	switch {
	case errors.As(err, &ce):
		return &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: "needs re-consent: token set " + strconv.Quote(id) + ": " + ce.reason, Err: err}
	case errors.Is(err, ErrNeedsConsent):
		return &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: "needs re-consent: token set " + strconv.Quote(id), Err: err}
	case errors.Is(err, ErrTokenSetNotFound):
		return &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: fmt.Sprintf("needs re-consent: token set %q not found: the user must consent", id), Err: err}
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrDecrypt):
		return &gatewayclient.Error{Class: gatewayclient.ClassConfig, Message: "token set cannot be decrypted with the configured keyring", Err: err}
	case errors.As(err, &oe) && !oe.Temporary():
		return &gatewayclient.Error{Class: gatewayclient.ClassConfig, Message: "IR's OAuth server refused the client (check oauth.client_id, client_secret and paths)", Err: err}
	case errors.As(err, &oe):
		return &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Message: "IR's OAuth server is unavailable; token set not refreshed", Err: err}
	}
	return err
}
