package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fleet-wide refresh of token sets.
//
// IR's refresh tokens are single-use and rotate, and presenting a used one
// kills the user's whole token set. So across every worker process a
// refresh token is presented at most once, and the set it yields is stored
// before anyone uses it. Per token set, beside its value
// "<prefix>tokenset:{<id>}", all in the set's hash slot:
//
//	...:lock        "<fence>:<owner>", SET NX PX: who may present the refresh token now
//	...:fence       INCR counter: a number no earlier lock holder had
//	...:refreshing  "<sha256(refresh token)>|<fence>|<unix ms>": this refresh token is being presented
//	...:dead        why the set is dead (no secret): park every job at once
//
// Versions of a set are compared by their stored (encrypted) value: every
// write seals under a fresh nonce, so any change, a refresh or an operator's
// Put of a new consent, changes it.
//
// The refresh itself (Store.refreshLocked):
//
//  1. Read the set. Fresh enough (or, for ForceAfter, not the token IR
//     rejected): use it. Nothing can refresh it: use it until ExpirySkew
//     before its expiry, then ErrNeedsConsent.
//  2. One script: if the value is still the one read in 1 and no lock is
//     held, take the lock with a new fence and record the "refreshing"
//     marker for the refresh token about to be presented. If the value
//     changed, someone else refreshed: back to 1, without calling IR. If
//     the lock is held, poll until the value changes or the lock frees,
//     then back to 1.
//  3. Present the refresh token, with a deadline, and detached from the
//     caller's cancellation: once presented, its answer must be stored,
//     whether or not the job that asked is still waiting.
//  4. One script stores the new set only if the value is still the one we
//     refreshed from and the marker still carries our fence; it clears the
//     marker and the lock. Only then is the new set used.
//
// Why the marker, and not only the lock, fences the store: the lock's TTL
// exceeds two OAuth call timeouts, so a live holder keeps it; it is lost
// only by a process paused or cut off past that. A later holder then finds
// the marker for the refresh token still in the set (nothing stored since):
// the dead or paused holder may or may not have presented it, and
// presenting it a second time would kill the set. So it does not present
// it blindly: it asks IR (Introspect). Active: IR never consumed it, so the
// new holder records its own marker (replacing the old holder's fence) and
// presents it. Inactive: it was consumed and the set it bought is lost:
// the set is marked dead and the user must consent again. A paused holder
// that wakes up can store its set as long as no later holder has replaced
// its marker, since then nobody else has presented anything; once a later
// holder has (or has marked the set dead, or a new set was stored), its
// store is refused and its set is never used.
//
// A refresh that fails with a transient error (network, 5xx) leaves the
// marker: IR may have consumed the token, and the next holder finds out by
// introspection. invalid_grant marks the set dead. Nothing is retried in a
// loop: the error goes back to the caller (and the job is retried later).

// ErrNeedsConsent: the token set cannot be used or refreshed any more (the
// refresh token was refused, the set was killed, or it expired with no
// refresh token, as on the desktop endpoint); the user must consent again
// in myIR. Credentials turns it into a *gatewayclient.Error of ClassAuth.
var ErrNeedsConsent = errors.New("needs re-consent")

// consentError is an ErrNeedsConsent with the set's ID and why.
type consentError struct {
	id, reason string
	err        error // ErrTokenExpired, ErrInvalidGrant... or nil
}

func (e *consentError) Error() string {
	return fmt.Sprintf("auth: token set %q: needs re-consent: %s", e.id, e.reason)
}
func (e *consentError) Is(target error) bool { return target == ErrNeedsConsent }
func (e *consentError) Unwrap() error        { return e.err }

// errRetry: the set changed under a holder; read it again.
var errRetry = errors.New("token set changed during refresh")

// RefreshPolicy tunes Store.Fresh. Each zero field takes its default.
type RefreshPolicy struct {
	// RefreshBefore: a set whose access token expires within this is
	// refreshed before use. Default 5 min.
	RefreshBefore time.Duration
	// Timeout bounds each call to IR's OAuth server (validate, refresh).
	// Default 30 s.
	Timeout time.Duration
	// LockTTL is how long a refresh lock lives: more than 2 Timeouts (a
	// holder may validate, then refresh), so a live holder never loses it.
	// Default 2 Timeouts + 10 s.
	LockTTL time.Duration
	// PollInterval is how often a caller waiting for another holder's
	// refresh looks again. Default 50 ms.
	PollInterval time.Duration
}

func (p RefreshPolicy) withDefaults() RefreshPolicy {
	if p.RefreshBefore == 0 {
		p.RefreshBefore = 5 * time.Minute
	}
	if p.Timeout == 0 {
		p.Timeout = 30 * time.Second
	}
	if p.LockTTL == 0 {
		p.LockTTL = 2*p.Timeout + 10*time.Second
	}
	if p.PollInterval == 0 {
		p.PollInterval = 50 * time.Millisecond
	}
	return p
}

// Validate names each bad field of p (after defaults).
func (p RefreshPolicy) Validate() error {
	d := p.withDefaults()
	var errs []error
	for name, v := range map[string]time.Duration{"RefreshBefore": p.RefreshBefore, "Timeout": p.Timeout, "LockTTL": p.LockTTL, "PollInterval": p.PollInterval} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s is negative", name, v))
		}
	}
	if d.LockTTL <= 2*d.Timeout {
		errs = append(errs, fmt.Errorf("LockTTL: %s must exceed 2 x Timeout (%s), or a live holder could lose its lock", d.LockTTL, 2*d.Timeout))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("auth: invalid refresh policy: %w", errors.Join(errs...))
}

// SetOAuth gives the store the OAuth client it refreshes with. Without
// one, a set near expiry is used until ExpirySkew before it expires, then
// fails with ErrNeedsConsent. Call before the store is used.
func (s *Store) SetOAuth(c *OAuthClient) { s.oauth = c }

// SetRefreshPolicy replaces the refresh policy. Call before the store is used.
func (s *Store) SetRefreshPolicy(p RefreshPolicy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.policy = p.withDefaults()
	return nil
}

// SetLogger sets where refreshes and dead sets are logged (never a token);
// nil means slog.Default(). Call before the store is used.
func (s *Store) SetLogger(l *slog.Logger) { s.log = l }

func (s *Store) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}

func (s *Store) lockKey(id string) string   { return s.key(id) + ":lock" }
func (s *Store) fenceKey(id string) string  { return s.key(id) + ":fence" }
func (s *Store) markerKey(id string) string { return s.key(id) + ":refreshing" }
func (s *Store) deadKey(id string) string   { return s.key(id) + ":dead" }

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Fresh returns token set id with an access token good for at least
// RefreshBefore, refreshing it (once for the whole fleet) when needed. It
// fails with an error wrapping ErrNeedsConsent when the set is dead or
// cannot be refreshed, ErrTokenSetNotFound, ErrUnknownKey or ErrDecrypt as
// Get does, an *OAuthError when IR's OAuth server failed (transient or
// not; see OAuthError.Temporary), or a Redis or context error.
func (s *Store) Fresh(ctx context.Context, id string) (TokenSet, error) {
	return s.fresh(ctx, id, "")
}

// ForceAfter refreshes token set id because IR refused staleAccessToken
// (statusCode 1 or 2), unless the stored set has already moved on from that
// token, in which case it returns the stored set without calling IR. So
// any number of jobs failing with the same token, in any process, cause
// one refresh.
func (s *Store) ForceAfter(ctx context.Context, id, staleAccessToken string) (TokenSet, error) {
	if staleAccessToken == "" {
		return TokenSet{}, fmt.Errorf("auth: token set %q: ForceAfter needs the refused access token", id)
	}
	return s.fresh(ctx, id, tokenHash(staleAccessToken))
}

// Refresh is ForceAfter for a handler holding the Authorization header
// value ("Bearer <token>") IR refused with statusCode 1 or 2.
func (s *Store) Refresh(ctx context.Context, id, staleAuthorization string) error {
	tok, ok := strings.CutPrefix(staleAuthorization, "Bearer ")
	if !ok || tok == "" {
		return fmt.Errorf("auth: token set %q: Refresh needs the refused \"Bearer <token>\" header value", id)
	}
	_, err := s.ForceAfter(ctx, id, tok)
	return err
}

// maxRounds bounds how often one call goes back to reading the set because
// it changed under it; each round follows somebody else's progress.
const maxRounds = 8

func (s *Store) fresh(ctx context.Context, id, staleHash string) (TokenSet, error) {
	pol := s.policy
	for range maxRounds {
		raw, dead, err := s.read(ctx, id)
		if err != nil {
			return TokenSet{}, err
		}
		if dead != "" {
			return TokenSet{}, &consentError{id: id, reason: dead}
		}
		ts, _, err := s.decode(id, raw)
		if err != nil {
			return TokenSet{}, err
		}
		now := s.now()
		rejected := staleHash != "" && subtle.ConstantTimeCompare([]byte(tokenHash(ts.AccessToken)), []byte(staleHash)) == 1
		if !rejected && now.Before(ts.Expiry.Add(-pol.RefreshBefore)) {
			return ts, nil
		}
		if ts.RefreshToken == "" || s.oauth == nil {
			why := "it has no refresh token"
			if ts.RefreshToken != "" {
				why = "no OAuth client is configured to refresh it"
			}
			if rejected {
				return TokenSet{}, &consentError{id: id, reason: "IR refused its access token and " + why}
			}
			if now.Before(ts.Expiry.Add(-ExpirySkew)) {
				return ts, nil
			}
			return TokenSet{}, &consentError{id: id, err: ErrTokenExpired,
				reason: fmt.Sprintf("access token expired at %s and %s", ts.Expiry.UTC().Format(time.RFC3339), why)}
		}

		lk, err := s.acquire(ctx, id, raw, ts.RefreshToken)
		if err != nil {
			return TokenSet{}, err
		}
		switch lk.state {
		case "dead", "changed":
			continue // the next read says what happened
		case "held":
			if err := s.wait(ctx, id, raw, lk.pttl); err != nil {
				return TokenSet{}, err
			}
			continue
		}
		next, err := s.runLocked(ctx, id, raw, ts, lk)
		if errors.Is(err, errRetry) {
			continue
		}
		return next, err
	}
	return TokenSet{}, fmt.Errorf("auth: token set %q: %w %d times in a row; try later", id, errRetry, maxRounds)
}

// read returns the stored value of set id and its dead reason ("" if alive).
func (s *Store) read(ctx context.Context, id string) (string, string, error) {
	var val, dead *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		val = p.Get(ctx, s.key(id))
		dead = p.Get(ctx, s.deadKey(id))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", "", fmt.Errorf("auth: token set %q: %w", id, err)
	}
	if errors.Is(val.Err(), redis.Nil) {
		return "", "", fmt.Errorf("auth: token set %q: %w", id, ErrTokenSetNotFound)
	}
	return val.Val(), dead.Val(), nil
}

type lockResult struct {
	state  string // "ok", "suspect", "held", "changed", "dead"
	pttl   time.Duration
	lock   string // our lock value, "<fence>:<owner>"
	fence  int64
	marker string // ok: ours; suspect: the earlier holder's
}

// acquireScript takes the set's refresh lock if the set is still the one
// the caller read (ARGV[1]) and records the marker for the refresh token
// about to be presented (ARGV[4], its hash), in one step: nobody can take
// the lock and present without the marker being there. A marker already
// there for the same refresh token means an earlier holder may have
// presented it: "suspect", the lock is ours but the marker stays.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[5]) == 1 then return {'dead'} end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'changed'} end
local pttl = redis.call('PTTL', KEYS[2])
if pttl ~= -2 then return {'held', pttl} end
local fence = redis.call('INCR', KEYS[3])
local lock = fence .. ':' .. ARGV[2]
redis.call('SET', KEYS[2], lock, 'PX', ARGV[3])
local m = redis.call('GET', KEYS[4])
if m and string.sub(m, 1, string.len(ARGV[4]) + 1) == ARGV[4] .. '|' then
  return {'suspect', fence, lock, m}
end
m = ARGV[4] .. '|' .. fence .. '|' .. ARGV[5]
redis.call('SET', KEYS[4], m)
return {'ok', fence, lock, m}
`)

func (s *Store) acquire(ctx context.Context, id, raw, refreshToken string) (lockResult, error) {
	owner := make([]byte, 12)
	_, _ = rand.Read(owner)
	v, err := acquireScript.Run(ctx, s.rdb,
		[]string{s.key(id), s.lockKey(id), s.fenceKey(id), s.markerKey(id), s.deadKey(id)},
		raw, hex.EncodeToString(owner), s.policy.LockTTL.Milliseconds(), tokenHash(refreshToken), s.now().UnixMilli(),
	).Slice()
	if err != nil {
		return lockResult{}, fmt.Errorf("auth: token set %q: refresh lock: %w", id, err)
	}
	r := lockResult{state: v[0].(string)}
	switch r.state {
	case "held":
		r.pttl = time.Duration(v[1].(int64)) * time.Millisecond
	case "ok", "suspect":
		r.fence, r.lock, r.marker = v[1].(int64), v[2].(string), v[3].(string)
	}
	return r, nil
}

// wait polls until set id's value is no longer raw, its lock is free, or
// it is dead; bounded by ctx.
func (s *Store) wait(ctx context.Context, id, raw string, pttl time.Duration) error {
	interval := s.policy.PollInterval
	if pttl > 0 && pttl < interval {
		interval = pttl
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("auth: token set %q: waiting for another worker's refresh: %w", id, ctx.Err())
		case <-t.C:
		}
		var val *redis.StringCmd
		var locked, dead *redis.IntCmd
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			val = p.Get(ctx, s.key(id))
			locked = p.Exists(ctx, s.lockKey(id))
			dead = p.Exists(ctx, s.deadKey(id))
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("auth: token set %q: %w", id, err)
		}
		if val.Val() != raw || locked.Val() == 0 || dead.Val() == 1 {
			return nil
		}
		t.Reset(s.policy.PollInterval)
	}
}

// runLocked does the holder's part in a goroutine detached from ctx's
// cancellation (bounded by LockTTL): a refresh token, once presented, must
// have its answer stored even if the caller gives up. The caller still
// returns at ctx's end.
func (s *Store) runLocked(ctx context.Context, id, raw string, ts TokenSet, lk lockResult) (TokenSet, error) {
	type result struct {
		ts  TokenSet
		err error
	}
	done := make(chan result, 1)
	go func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.policy.LockTTL)
		defer cancel()
		next, err := s.refreshLocked(dctx, id, raw, ts, lk)
		s.metrics.refreshed(err)
		done <- result{next, err}
	}()
	select {
	case r := <-done:
		return r.ts, r.err
	case <-ctx.Done():
		return TokenSet{}, fmt.Errorf("auth: token set %q: refresh continues without this caller: %w", id, ctx.Err())
	}
}

// commitScript replaces an earlier holder's marker with ours, once IR said
// the refresh token is still active, provided we still hold the lock and
// nothing changed since.
var commitScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 'lost' end
if redis.call('EXISTS', KEYS[4]) == 1 then return 'dead' end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'changed' end
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return 'changed' end
redis.call('SET', KEYS[3], ARGV[4])
return 'ok'
`)

// storeScript stores a refreshed set if the set is still the one refreshed
// from and the marker still carries the presenter's fence, then clears the
// marker and (if still ours) the lock.
var storeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'changed' end
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return 'fenced' end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 'ok'
`)

// killScript marks a set dead, on the same conditions as storeScript.
var killScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'changed' end
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return 'fenced' end
redis.call('SET', KEYS[4], ARGV[4])
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 'ok'
`)

// releaseScript frees the lock if it is still ours; the marker stays.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (s *Store) release(ctx context.Context, id, lock string) {
	if err := releaseScript.Run(ctx, s.rdb, []string{s.lockKey(id)}, lock).Err(); err != nil {
		// The lock frees itself at its TTL; waiters wait until then.
		s.logger().Warn("token set refresh lock not released", "token_set", id, "err", err)
	}
}

func (s *Store) refreshLocked(ctx context.Context, id, raw string, ts TokenSet, lk lockResult) (TokenSet, error) {
	log := s.logger().With("token_set", id, "fence", lk.fence)
	marker := lk.marker
	if lk.state == "suspect" {
		// An earlier holder recorded that it was presenting this very
		// refresh token, and stored nothing: it died or stalled, or IR's
		// answer never reached it. Presenting
		// the token again would kill the set if IR consumed it; ask IR.
		log.Warn("an earlier refresh of this token set did not finish; validating its refresh token before presenting it")
		ictx, cancel := context.WithTimeout(ctx, s.policy.Timeout)
		active, err := s.oauth.Introspect(ictx, ts.RefreshToken)
		cancel()
		if err != nil {
			s.release(ctx, id, lk.lock)
			return TokenSet{}, fmt.Errorf("auth: token set %q: validating an interrupted refresh: %w", id, err)
		}
		if !active {
			return s.kill(ctx, id, raw, lk, marker, "an earlier refresh presented the refresh token and never stored the set it bought (its answer was lost, or its worker stopped), and IR no longer accepts the token", ErrInvalidGrant)
		}
		ours := fmt.Sprintf("%s|%d|%d", tokenHash(ts.RefreshToken), lk.fence, s.now().UnixMilli())
		st, err := commitScript.Run(ctx, s.rdb,
			[]string{s.key(id), s.lockKey(id), s.markerKey(id), s.deadKey(id)}, raw, lk.lock, marker, ours).Text()
		if err != nil {
			s.release(ctx, id, lk.lock)
			return TokenSet{}, fmt.Errorf("auth: token set %q: refresh marker: %w", id, err)
		}
		if st != "ok" {
			s.release(ctx, id, lk.lock)
			return TokenSet{}, errRetry
		}
		marker = ours
	}

	rctx, cancel := context.WithTimeout(ctx, s.policy.Timeout)
	g, err := s.oauth.Refresh(rctx, ts.RefreshToken)
	cancel()
	if errors.Is(err, ErrInvalidGrant) {
		return s.kill(ctx, id, raw, lk, marker, "IR refused the refresh token (invalid_grant: revoked, consent expired or reuse detected)", err)
	}
	if err != nil {
		// The marker stays: IR may have consumed the token before the
		// failure, and the next holder validates it before presenting it.
		s.release(ctx, id, lk.lock)
		return TokenSet{}, fmt.Errorf("auth: token set %q: refresh: %w", id, err)
	}
	next := ts.Renew(g)
	value, err := s.sealSet(next)
	if err != nil {
		s.release(ctx, id, lk.lock)
		return TokenSet{}, err
	}
	st, err := storeScript.Run(ctx, s.rdb,
		[]string{s.key(id), s.lockKey(id), s.markerKey(id)}, raw, lk.lock, marker, value).Text()
	if err != nil {
		// Unknown whether it was stored; the marker (if it stayed) makes
		// the next holder validate before presenting anything.
		return TokenSet{}, fmt.Errorf("auth: token set %q: storing the refreshed set: %w", id, err)
	}
	if st != "ok" {
		log.Warn("refreshed token set not stored: another worker or a new consent took over; its tokens are dropped unused", "why", st)
		return TokenSet{}, errRetry
	}
	s.forget(id)
	log.Info("token set refreshed", "expiry", next.Expiry)
	return next, nil
}

func (s *Store) kill(ctx context.Context, id, raw string, lk lockResult, marker, reason string, cause error) (TokenSet, error) {
	why := reason + "; marked dead at " + s.now().UTC().Format(time.RFC3339)
	st, err := killScript.Run(ctx, s.rdb,
		[]string{s.key(id), s.lockKey(id), s.markerKey(id), s.deadKey(id)}, raw, lk.lock, marker, why).Text()
	if err != nil {
		s.release(ctx, id, lk.lock)
		return TokenSet{}, fmt.Errorf("auth: token set %q: marking dead: %w", id, err)
	}
	if st != "ok" {
		// Someone stored a newer set meanwhile: that one decides.
		s.release(ctx, id, lk.lock)
		return TokenSet{}, errRetry
	}
	s.forget(id)
	s.logger().Warn("token set is dead; its jobs need the user to consent again", "token_set", id, "reason", reason)
	return TokenSet{}, &consentError{id: id, reason: why, err: cause}
}
