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
// indexes the IDs. The hash tag keeps every key of one set (and the refresh
// lock that the fleet-wide single-flight refresh will add) in one Redis
// Cluster slot.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	keys   Keyring
	aeads  map[string]cipher.AEAD
	now    func() time.Time

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

func (s *Store) cached(ctx context.Context, id string) (TokenSet, error) {
	now := s.now()
	s.cacheMu.Lock()
	ttl := s.cacheTTL
	if c, ok := s.cache[id]; ok && ttl > 0 && now.Sub(c.fetched) < ttl {
		s.cacheMu.Unlock()
		return c.ts, nil
	}
	s.cacheMu.Unlock()
	ts, err := s.Get(ctx, id)
	if err != nil || ttl <= 0 {
		return ts, err
	}
	s.cacheMu.Lock()
	if s.cache != nil {
		s.cache[id] = cachedSet{ts: ts, fetched: now}
	}
	s.cacheMu.Unlock()
	return ts, nil
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
	s := &Store{rdb: rdb, prefix: prefix, keys: keys, aeads: map[string]cipher.AEAD{}, now: time.Now}
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

// Put stores ts, encrypted with the current key, replacing any set with
// its ID.
func (s *Store) Put(ctx context.Context, ts TokenSet) error {
	defer s.forget(ts.ID)
	if !tokenSetIDPattern.MatchString(ts.ID) {
		return fmt.Errorf("auth: token set ID %q: must be 1-200 of A-Z a-z 0-9 _ . : @ -", ts.ID)
	}
	if ts.AccessToken == "" {
		return fmt.Errorf("auth: token set %q: no access token", ts.ID)
	}
	plain, err := json.Marshal(storedTokenSet{
		ID: ts.ID, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken, Expiry: ts.Expiry,
		Endpoint: string(ts.Endpoint), Scope: ts.Scope, User: ts.User, ConsentedAt: ts.ConsentedAt,
	})
	if err != nil {
		return fmt.Errorf("auth: token set %q: encode: %w", ts.ID, err)
	}
	value, err := s.seal(ts.ID, plain)
	clear(plain)
	if err != nil {
		return err
	}
	// Two keys in different slots, so no MULTI (it would fail on Redis
	// Cluster). Value first: an index entry never points at nothing for
	// long, and List cleans up after a crash between the two.
	if err := s.rdb.Set(ctx, s.key(ts.ID), value, 0).Err(); err != nil {
		return fmt.Errorf("auth: token set %q: store: %w", ts.ID, err)
	}
	if err := s.rdb.SAdd(ctx, s.index(), ts.ID).Err(); err != nil {
		return fmt.Errorf("auth: token set %q: index: %w", ts.ID, err)
	}
	return nil
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

// Delete removes the token set id; deleting a missing set is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	defer s.forget(id)
	if err := s.rdb.Del(ctx, s.key(id)).Err(); err != nil {
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
// header "Bearer <access token>", read from the store on each call so a
// rotated token is picked up at once.
//
// A missing or expired set fails with a *gatewayclient.Error of ClassAuth
// (the worker refreshes, or parks the job as needing re-consent); a set the
// keyring cannot open with ClassConfig; a Redis failure is returned
// unclassified, which the worker retries. Refreshing an expired token is not
// done here yet: the fleet-wide single-flight refresh will sit behind this
// same method, so callers will not change.
func (s *Store) Credentials(id string) gatewayclient.Credentials {
	return &bearerCredentials{store: s, id: id}
}

type bearerCredentials struct {
	store *Store
	id    string
}

var _ gatewayclient.Credentials = (*bearerCredentials)(nil)

func (b *bearerCredentials) AuthorizationHeader(ctx context.Context) (string, error) {
	ts, err := b.store.cached(ctx, b.id)
	switch {
	case errors.Is(err, ErrTokenSetNotFound):
		return "", &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: fmt.Sprintf("token set %q not found: the user must consent", b.id), Err: err}
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrDecrypt):
		return "", &gatewayclient.Error{Class: gatewayclient.ClassConfig, Message: "token set cannot be decrypted with the configured keyring", Err: err}
	case err != nil:
		return "", err
	}
	if !b.store.now().Before(ts.Expiry.Add(-ExpirySkew)) {
		return "", &gatewayclient.Error{Class: gatewayclient.ClassAuth,
			Message: fmt.Sprintf("token set %q: access token expired at %s", b.id, ts.Expiry.Format(time.RFC3339)),
			Err:     ErrTokenExpired}
	}
	return "Bearer " + ts.AccessToken, nil
}
