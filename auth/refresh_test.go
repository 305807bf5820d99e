package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
)

type refreshSetup struct {
	r     *redistest.Redis
	fake  *fakeOAuth
	store *Store
	keys  Keyring
	logs  *syncbuf.Buffer
	errs  *errSink
}

// errSink collects error strings for the secret scan.
type errSink struct {
	mu   sync.Mutex
	errs []string
}

func (e *errSink) add(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	e.errs = append(e.errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	e.mu.Unlock()
}

func setupRefresh(t *testing.T) *refreshSetup {
	t.Helper()
	r := redistest.New(t)
	keys := Keyring{Current: "k1", Keys: map[string][]byte{"k1": randomKey(t)}}
	st := &refreshSetup{r: r, fake: newFakeOAuth(t), keys: keys, logs: &syncbuf.Buffer{}, errs: &errSink{}}
	st.store = st.newStore(t, keys)
	t.Cleanup(func() {
		st.errs.mu.Lock()
		defer st.errs.mu.Unlock()
		st.fake.assertNoSecrets(t, append(st.errs.errs, st.logs.String())...)
	})
	return st
}

// newStore is another worker process's view of the same Redis and IR.
func (st *refreshSetup) newStore(t *testing.T, keys Keyring) *Store {
	t.Helper()
	s, err := NewStore(st.r.Client, st.r.Prefix, keys)
	must(t, err)
	s.SetOAuth(st.fake.client())
	s.SetLogger(slog.New(slog.NewTextHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	must(t, s.SetRefreshPolicy(RefreshPolicy{PollInterval: 5 * time.Millisecond}))
	return s
}

// nearExpiry puts a consented set whose access token expires within
// RefreshBefore.
func (st *refreshSetup) nearExpiry(t *testing.T, id string) TokenSet {
	t.Helper()
	ts := st.fake.grant(id, time.Now().Add(2*time.Minute))
	must(t, st.store.Put(context.Background(), ts))
	return ts
}

func TestFreshHerd(t *testing.T) {
	t.Parallel()
	st := setupRefresh(t)
	st.store.CacheFor(2 * time.Second)
	old := st.nearExpiry(t, "herd")
	other := st.newStore(t, st.keys) // a second process in the herd
	ctx := context.Background()

	const n = 50
	got := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s := st.store
			if i%3 == 2 {
				s = other
			}
			if i%2 == 0 {
				ts, err := s.Fresh(ctx, "herd")
				st.errs.add(err)
				got[i] = "Bearer " + ts.AccessToken
				return
			}
			h, err := s.Credentials("herd").AuthorizationHeader(ctx)
			st.errs.add(err)
			got[i] = h
		}()
	}
	close(start)
	wg.Wait()
	want := "Bearer " + st.fake.latestAccess(old.RefreshToken)
	for i, h := range got {
		if h != want {
			t.Errorf("caller %d got another token (old: %v)", i, h == "Bearer "+old.AccessToken)
		}
	}
	if p := st.fake.presentations(old.RefreshToken); p != 1 {
		t.Errorf("refresh token presented %d times, want 1", p)
	}
	if r, i := st.fake.counts(); r != 1 || i != 0 {
		t.Errorf("refreshes %d, introspections %d; want 1, 0", r, i)
	}
	stored, err := st.store.Get(ctx, "herd")
	must(t, err)
	if stored.AccessToken != strings.TrimPrefix(want, "Bearer ") || stored.User != old.User || !stored.ConsentedAt.Equal(old.ConsentedAt) || stored.Endpoint != old.Endpoint {
		t.Errorf("stored set %v lost fields of %v", stored, old)
	}
	if !stored.Expiry.After(time.Now().Add(7 * time.Hour)) {
		t.Errorf("stored expiry %s, want about 8 h ahead", stored.Expiry)
	}
	// The next caller uses the stored set: no refresh.
	if _, err := other.Fresh(ctx, "herd"); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.fake.counts(); r != 1 {
		t.Errorf("a fresh set was refreshed again")
	}
}

func TestForceAfterHerd(t *testing.T) {
	t.Parallel()
	st := setupRefresh(t)
	ctx := context.Background()
	old := st.fake.grant("force", time.Now().Add(6*time.Hour)) // far from expiry
	must(t, st.store.Put(ctx, old))
	other := st.newStore(t, st.keys)

	// 50 jobs all called IR with the same token and got statusCode 1.
	const n = 50
	creds := make([]gatewayclient.Credentials, n)
	for i := range creds {
		s := st.store
		if i%2 == 1 {
			s = other
		}
		creds[i] = s.Credentials("force")
		h, err := creds[i].AuthorizationHeader(ctx)
		if err != nil || h != "Bearer "+old.AccessToken {
			t.Fatalf("header before the herd: %v", err)
		}
	}
	got := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch i % 3 {
			case 0:
				ts, err := st.store.ForceAfter(ctx, "force", old.AccessToken)
				st.errs.add(err)
				got[i] = ts.AccessToken
			case 1:
				err := creds[i].(interface{ Rejected(context.Context) error }).Rejected(ctx)
				st.errs.add(err)
				h, err := creds[i].AuthorizationHeader(ctx)
				st.errs.add(err)
				got[i] = strings.TrimPrefix(h, "Bearer ")
			case 2:
				err := other.Refresh(ctx, "force", "Bearer "+old.AccessToken)
				st.errs.add(err)
				ts, err := other.Fresh(ctx, "force")
				st.errs.add(err)
				got[i] = ts.AccessToken
			}
		}()
	}
	close(start)
	wg.Wait()
	want := st.fake.latestAccess(old.RefreshToken)
	if want == old.AccessToken {
		t.Fatal("no refresh happened")
	}
	for i, tok := range got {
		if tok != want {
			t.Errorf("caller %d did not get the new token", i)
		}
	}
	if p := st.fake.presentations(old.RefreshToken); p != 1 {
		t.Errorf("refresh token presented %d times, want 1", p)
	}
	if r, _ := st.fake.counts(); r != 1 {
		t.Errorf("%d refreshes, want 1", r)
	}
	// A job that fails with the new token forces one more refresh.
	if _, err := st.store.ForceAfter(ctx, "force", want); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.fake.counts(); r != 2 {
		t.Errorf("%d refreshes after a second rejection, want 2", r)
	}
	// Argument errors never carry the header.
	if err := st.store.Refresh(ctx, "force", "Basic xyz"); err == nil || strings.Contains(err.Error(), "xyz") {
		t.Errorf("Refresh with a non-Bearer header: %v", err)
	}
}

// The helper process of TestFreshAcrossProcesses: the test binary re-run
// with refreshChildEnv set (see TestMain).
const refreshChildEnv = "GATEWAYQ_AUTH_TEST_REFRESH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(refreshChildEnv) == "1" {
		os.Exit(refreshChild())
	}
	os.Exit(m.Run())
}

func refreshChild() int {
	env := func(k string) string { return os.Getenv("GATEWAYQ_AUTH_TEST_" + k) }
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	caPEM, err := os.ReadFile(env("CA"))
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fail(errors.New("bad CA"))
	}
	key, err := base64.StdEncoding.DecodeString(env("KEY"))
	if err != nil {
		return fail(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env("REDIS")})
	defer rdb.Close()
	s, err := NewStore(rdb, env("PREFIX"), Keyring{Current: "k1", Keys: map[string][]byte{"k1": key}})
	if err != nil {
		return fail(err)
	}
	s.SetOAuth(&OAuthClient{BaseURL: env("URL"), ClientID: fakeClientID, ClientSecret: fakeSecret,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}})
	s.CacheFor(2 * time.Second)
	if err := s.SetRefreshPolicy(RefreshPolicy{PollInterval: 5 * time.Millisecond}); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Start together: the parent sets the go key once every child is up.
	for rdb.Exists(ctx, env("PREFIX")+"go").Val() == 0 {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		time.Sleep(2 * time.Millisecond)
	}
	var wg sync.WaitGroup
	out := make([]string, 10)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				ts, err := s.Fresh(ctx, env("ID"))
				out[i] = tokenHash(ts.AccessToken)
				if err != nil {
					out[i] = "error " + err.Error()
				}
				return
			}
			h, err := s.Credentials(env("ID")).AuthorizationHeader(ctx)
			out[i] = tokenHash(strings.TrimPrefix(h, "Bearer "))
			if err != nil {
				out[i] = "error " + err.Error()
			}
		}()
	}
	wg.Wait()
	for _, o := range out {
		fmt.Println(o) // hashes only: no token on stdout
	}
	return 0
}

func TestFreshAcrossProcesses(t *testing.T) {
	t.Parallel()
	st := setupRefresh(t)
	old := st.nearExpiry(t, "procs")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.fake.srv.Certificate().Raw}), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var outs, errOuts [3]bytes.Buffer
	var cmds []*exec.Cmd
	for i := range outs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), refreshChildEnv+"=1",
			"GATEWAYQ_AUTH_TEST_URL="+st.fake.srv.URL,
			"GATEWAYQ_AUTH_TEST_CA="+ca,
			"GATEWAYQ_AUTH_TEST_REDIS="+st.r.Addr,
			"GATEWAYQ_AUTH_TEST_PREFIX="+st.r.Prefix,
			"GATEWAYQ_AUTH_TEST_KEY="+base64.StdEncoding.EncodeToString(st.keys.Keys["k1"]),
			"GATEWAYQ_AUTH_TEST_ID=procs",
		)
		cmd.Stdout, cmd.Stderr = &outs[i], &errOuts[i]
		must(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	must(t, st.r.Client.Set(ctx, st.r.Prefix+"go", "1", 0).Err())
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, errOuts[i].String())
		}
	}
	want := tokenHash(st.fake.latestAccess(old.RefreshToken))
	lines := 0
	for i := range outs {
		for _, line := range strings.Fields(outs[i].String()) {
			lines++
			if line != want {
				t.Errorf("child %d: got %q, want the new token's hash", i, line)
			}
		}
	}
	if lines != 30 {
		t.Errorf("%d results from the children, want 30", lines)
	}
	if p := st.fake.presentations(old.RefreshToken); p != 1 {
		t.Errorf("refresh token presented %d times across 3 processes, want 1", p)
	}
	for i := range outs {
		st.fake.assertNoSecrets(t, outs[i].String(), errOuts[i].String()) // stderr: the children's logs
	}
}

func isConsent(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrNeedsConsent) {
		t.Fatalf("err = %v, want ErrNeedsConsent", err)
	}
}

func TestFreshDeadSets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("invalid_grant marks the set dead for every worker", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "revoked")
		st.fake.revokeFamilyOf(old.RefreshToken) // the user withdrew consent in myIR
		_, err := st.store.Fresh(ctx, "revoked")
		st.errs.add(err)
		isConsent(t, err)
		if !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("err = %v, want it to wrap ErrInvalidGrant", err)
		}
		if n := st.r.Client.Exists(ctx, st.store.deadKey("revoked")).Val(); n != 1 {
			t.Fatal("set not marked dead in Redis")
		}
		// Every other worker parks at once, presenting nothing.
		other := st.newStore(t, st.keys)
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := other.Credentials("revoked").AuthorizationHeader(ctx)
				st.errs.add(err)
				var ge *gatewayclient.Error
				if !errors.As(err, &ge) || ge.Class != gatewayclient.ClassAuth || !strings.HasPrefix(ge.Message, "needs re-consent: ") || !errors.Is(err, ErrNeedsConsent) {
					t.Errorf("err = %v, want ClassAuth needs re-consent", err)
				}
				_, err = other.ForceAfter(ctx, "revoked", old.AccessToken)
				st.errs.add(err)
				if !errors.Is(err, ErrNeedsConsent) {
					t.Errorf("ForceAfter on a dead set: %v", err)
				}
				// The handler tells credentials that handed out no token
				// (the set was dead) about IR's refusal too: the answer
				// must park the job for re-consent, not retry it forever.
				creds := other.Credentials("revoked")
				_, _ = creds.AuthorizationHeader(ctx)
				err = creds.(interface{ Rejected(context.Context) error }).Rejected(ctx)
				st.errs.add(err)
				if !errors.As(err, &ge) || ge.Class != gatewayclient.ClassAuth {
					t.Errorf("Rejected after no token was handed out: %v, want ClassAuth", err)
				}
			}()
		}
		wg.Wait()
		if r, i := st.fake.counts(); r != 1 || i != 0 {
			t.Errorf("refreshes %d, introspections %d after the set died; want 1, 0", r, i)
		}
		// A new consent brings it back.
		fresh := st.fake.grant("revoked", time.Now().Add(8*time.Hour))
		must(t, st.store.Put(ctx, fresh))
		if ts, err := other.Fresh(ctx, "revoked"); err != nil || ts.AccessToken != fresh.AccessToken {
			t.Fatalf("after a new consent: %v", err)
		}
	})

	t.Run("desktop set without refresh token", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		clk := newClock(now)
		st.store.now = clk.Now
		must(t, st.store.Put(ctx, TokenSet{ID: "desk", AccessToken: "AT-desk-s3cr3t", Expiry: now.Add(3 * time.Minute), Endpoint: gatewayclient.EndpointDesktop}))
		// Within RefreshBefore but not expired: used as it is.
		if ts, err := st.store.Fresh(ctx, "desk"); err != nil || ts.AccessToken != "AT-desk-s3cr3t" {
			t.Fatalf("near-expiry desktop set: %v", err)
		}
		clk.ns.Store(now.Add(2*time.Minute + time.Second).UnixNano()) // within ExpirySkew
		for range 3 {                                                 // never loops, never calls IR
			_, err := st.store.Fresh(ctx, "desk")
			st.errs.add(err)
			isConsent(t, err)
			if !errors.Is(err, ErrTokenExpired) {
				t.Errorf("err = %v, want ErrTokenExpired too", err)
			}
		}
		_, err := st.store.ForceAfter(ctx, "desk", "AT-desk-s3cr3t")
		st.errs.add(err)
		isConsent(t, err)
		_, err = st.store.Credentials("desk").AuthorizationHeader(ctx)
		st.errs.add(err)
		if ge := (*gatewayclient.Error)(nil); !errors.As(err, &ge) || ge.Class != gatewayclient.ClassAuth || !strings.HasPrefix(ge.Message, "needs re-consent: ") {
			t.Errorf("Credentials: %v", err)
		}
		if r, i := st.fake.counts(); r+i != 0 {
			t.Errorf("IR called %d times for a desktop set", r+i)
		}
	})

	t.Run("no OAuth client: used until expiry", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		st.store.SetOAuth(nil)
		old := st.nearExpiry(t, "nooauth")
		if ts, err := st.store.Fresh(ctx, "nooauth"); err != nil || ts.AccessToken != old.AccessToken {
			t.Fatalf("near-expiry set without OAuth: %v", err)
		}
		st.store.now = func() time.Time { return old.Expiry }
		_, err := st.store.Fresh(ctx, "nooauth")
		st.errs.add(err)
		isConsent(t, err)
		if r, _ := st.fake.counts(); r != 0 {
			t.Error("refreshed without an OAuth client")
		}
	})
}

func TestFreshTransientFailure(t *testing.T) {
	t.Parallel()
	st := setupRefresh(t)
	ctx := context.Background()
	old := st.nearExpiry(t, "flaky")
	st.fake.mu.Lock()
	st.fake.failNext = []int{http.StatusServiceUnavailable}
	st.fake.mu.Unlock()

	_, err := st.store.Credentials("flaky").AuthorizationHeader(ctx)
	st.errs.add(err)
	var oe *OAuthError
	if !errors.As(err, &oe) || !oe.Temporary() || gatewayclient.ClassOf(err) != gatewayclient.ClassRetryLater {
		t.Fatalf("err = %v, want a temporary OAuthError classed retry_later", err)
	}
	// The marker stayed: IR might have consumed the token, so the next
	// holder validates it first; it is active, so it is presented.
	ts, err := st.store.Fresh(ctx, "flaky")
	if err != nil || ts.AccessToken != st.fake.latestAccess(old.RefreshToken) {
		t.Fatalf("after the outage: %v", err)
	}
	if r, i := st.fake.counts(); r != 2 || i != 1 {
		t.Errorf("refreshes %d, introspections %d; want 2 (one refused with 503), 1", r, i)
	}
	if n := st.r.Client.Exists(ctx, st.store.markerKey("flaky"), st.store.lockKey("flaky")).Val(); n != 0 {
		t.Errorf("%d refresh keys left after a stored refresh", n)
	}
}

func TestRefreshInterrupted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// A holder that took the lock and the marker, and the lock expired
	// (simulated by deleting it: a holder paused or killed past the TTL).
	takeLock := func(t *testing.T, st *refreshSetup, id string, old TokenSet) lockResult {
		t.Helper()
		raw, _, err := st.store.read(ctx, id)
		must(t, err)
		lk, err := st.store.acquire(ctx, id, raw, old.RefreshToken)
		must(t, err)
		if lk.state != "ok" {
			t.Fatalf("acquire: %s", lk.state)
		}
		return lk
	}
	expireLock := func(t *testing.T, st *refreshSetup, id string) {
		t.Helper()
		must(t, st.r.Client.Del(ctx, st.store.lockKey(id)).Err())
	}

	t.Run("dead holder presented: inactive token parks the set, no second presentation", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "s")
		takeLock(t, st, "s", old)
		if _, err := st.fake.client().Refresh(ctx, old.RefreshToken); err != nil { // presented, then the holder died
			t.Fatal(err)
		}
		expireLock(t, st, "s")
		_, err := st.store.Fresh(ctx, "s")
		st.errs.add(err)
		isConsent(t, err)
		if p := st.fake.presentations(old.RefreshToken); p != 1 {
			t.Errorf("presented %d times, want 1", p)
		}
		if _, i := st.fake.counts(); i != 1 {
			t.Errorf("%d introspections, want 1", i)
		}
		// Dead for everyone now, without asking IR again.
		_, err = st.newStore(t, st.keys).Fresh(ctx, "s")
		isConsent(t, err)
		if r, i := st.fake.counts(); r != 1 || i != 1 {
			t.Errorf("IR called again for a dead set: %d, %d", r, i)
		}
	})

	t.Run("dead holder never presented: active token is presented once", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "s")
		takeLock(t, st, "s", old)
		expireLock(t, st, "s")
		ts, err := st.store.Fresh(ctx, "s")
		if err != nil || ts.AccessToken != st.fake.latestAccess(old.RefreshToken) {
			t.Fatalf("Fresh: %v", err)
		}
		if p := st.fake.presentations(old.RefreshToken); p != 1 {
			t.Errorf("presented %d times, want 1", p)
		}
	})

	t.Run("stalled holder cannot overwrite the next holder's set", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		st.nearExpiry(t, "s")
		arrived, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		st.fake.mu.Lock()
		st.fake.allowReuse = true // so the stalled request yields a set it will try to store
		st.fake.beforeRefresh = func(string) {
			first := false
			once.Do(func() { first = true })
			if first {
				close(arrived)
				<-release
			}
		}
		st.fake.mu.Unlock()

		a := st.newStore(t, st.keys)
		type res struct {
			ts  TokenSet
			err error
		}
		aDone := make(chan res, 1)
		go func() {
			ts, err := a.Fresh(ctx, "s")
			aDone <- res{ts, err}
		}()
		<-arrived // A holds the lock and its request hangs at IR
		expireLock(t, st, "s")
		b, err := st.store.Fresh(ctx, "s") // B validates (active), presents, stores
		must(t, err)
		close(release)
		ra := <-aDone
		must(t, ra.err)
		stored, err := st.store.Get(ctx, "s")
		must(t, err)
		if stored.AccessToken != b.AccessToken {
			t.Fatal("the stalled holder overwrote the newer set")
		}
		if ra.ts.AccessToken != b.AccessToken {
			t.Error("the stalled holder used its own, unstored set")
		}
		if _, i := st.fake.counts(); i != 1 {
			t.Errorf("%d introspections, want 1", i)
		}
	})

	t.Run("stalled holder whose token IR consumed: set dead, holder cannot revive it", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "s")
		arrived, release := make(chan struct{}), make(chan struct{})
		st.fake.mu.Lock()
		st.fake.afterRotate = func(string) { close(arrived); <-release }
		st.fake.mu.Unlock()

		a := st.newStore(t, st.keys)
		aErr := make(chan error, 1)
		go func() { _, err := a.Fresh(ctx, "s"); aErr <- err }()
		<-arrived // IR rotated; A's answer is stuck
		expireLock(t, st, "s")
		_, err := st.store.Fresh(ctx, "s") // B validates: inactive -> dead
		st.errs.add(err)
		isConsent(t, err)
		close(release)
		err = <-aErr
		st.errs.add(err)
		isConsent(t, err)
		if p := st.fake.presentations(old.RefreshToken); p != 1 {
			t.Errorf("presented %d times, want 1", p)
		}
		if n := st.r.Client.Exists(ctx, st.store.deadKey("s")).Val(); n != 1 {
			t.Error("set no longer dead")
		}
	})

	t.Run("stalled holder stores its set when nobody took over", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "s")
		arrived, release := make(chan struct{}), make(chan struct{})
		st.fake.mu.Lock()
		st.fake.afterRotate = func(string) { close(arrived); <-release }
		st.fake.mu.Unlock()
		aDone := make(chan error, 1)
		go func() { _, err := st.store.Fresh(ctx, "s"); aDone <- err }()
		<-arrived
		expireLock(t, st, "s") // lock lost, but no one else presented
		close(release)
		must(t, <-aDone)
		if stored, _ := st.store.Get(ctx, "s"); stored.AccessToken != st.fake.latestAccess(old.RefreshToken) {
			t.Error("the refreshed set was dropped though no one took over")
		}
	})

	t.Run("caller gives up mid-refresh: the answer is still stored", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "s")
		arrived, release := make(chan struct{}), make(chan struct{})
		st.fake.mu.Lock()
		st.fake.afterRotate = func(string) { close(arrived); <-release }
		st.fake.mu.Unlock()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := st.store.Fresh(cctx, "s"); done <- err }()
		<-arrived
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		close(release)
		ts, err := st.newStore(t, st.keys).Fresh(ctx, "s") // waits for the detached holder
		if err != nil || ts.AccessToken != st.fake.latestAccess(old.RefreshToken) {
			t.Fatalf("after the caller left: %v", err)
		}
		if p := st.fake.presentations(old.RefreshToken); p != 1 {
			t.Errorf("presented %d times, want 1", p)
		}
	})
}

func TestRefreshFencingScripts(t *testing.T) {
	t.Parallel()
	st := setupRefresh(t)
	ctx := context.Background()
	old := st.nearExpiry(t, "f")
	raw0, _, err := st.store.read(ctx, "f")
	must(t, err)
	a, err := st.store.acquire(ctx, "f", raw0, old.RefreshToken)
	must(t, err)
	if held, _ := st.store.acquire(ctx, "f", raw0, old.RefreshToken); held.state != "held" {
		t.Fatalf("second acquire: %s", held.state)
	}
	must(t, st.r.Client.Del(ctx, st.store.lockKey("f")).Err())
	b, err := st.store.acquire(ctx, "f", raw0, old.RefreshToken)
	must(t, err)
	if b.state != "suspect" || b.fence <= a.fence || b.marker != a.marker {
		t.Fatalf("after A's lock expired: %+v (A fence %d)", b.state, a.fence)
	}
	bMarker := fmt.Sprintf("%s|%d|0", tokenHash(old.RefreshToken), b.fence)
	if s, _ := commitScript.Run(ctx, st.r.Client, []string{st.store.key("f"), st.store.lockKey("f"), st.store.markerKey("f"), st.store.deadKey("f")}, raw0, a.lock, a.marker, "x").Text(); s != "lost" {
		t.Errorf("commit with A's expired lock: %s", s)
	}
	if s, _ := commitScript.Run(ctx, st.r.Client, []string{st.store.key("f"), st.store.lockKey("f"), st.store.markerKey("f"), st.store.deadKey("f")}, raw0, b.lock, b.marker, bMarker).Text(); s != "ok" {
		t.Fatalf("B's commit: %s", s)
	}
	newB, err := st.store.sealSet(old.Renew(TokenSet{AccessToken: "B", Expiry: time.Now().Add(time.Hour)}))
	must(t, err)
	newA, err := st.store.sealSet(old.Renew(TokenSet{AccessToken: "A", Expiry: time.Now().Add(time.Hour)}))
	must(t, err)
	keys := []string{st.store.key("f"), st.store.lockKey("f"), st.store.markerKey("f")}
	if s, _ := storeScript.Run(ctx, st.r.Client, keys, raw0, a.lock, a.marker, newA).Text(); s != "fenced" {
		t.Errorf("A's store after B committed: %s, want fenced", s)
	}
	if s, _ := storeScript.Run(ctx, st.r.Client, keys, raw0, b.lock, bMarker, newB).Text(); s != "ok" {
		t.Fatalf("B's store: %s", s)
	}
	if s, _ := storeScript.Run(ctx, st.r.Client, keys, raw0, a.lock, a.marker, newA).Text(); s != "changed" {
		t.Errorf("A's store after B's: %s, want changed", s)
	}
	if s, _ := killScript.Run(ctx, st.r.Client, append(keys, st.store.deadKey("f")), raw0, a.lock, a.marker, "x").Text(); s != "changed" {
		t.Errorf("A's kill after B's store: %s, want changed", s)
	}
	if got, _ := st.store.Get(ctx, "f"); got.AccessToken != "B" {
		t.Errorf("stored %q, want B's", got.AccessToken)
	}
	if n := st.r.Client.Exists(ctx, st.store.lockKey("f"), st.store.markerKey("f"), st.store.deadKey("f")).Val(); n != 0 {
		t.Errorf("%d refresh keys left", n)
	}
}

func TestFreshKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("wrong key: config error, nothing presented", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		st.nearExpiry(t, "k")
		wrong := st.newStore(t, Keyring{Current: "k1", Keys: map[string][]byte{"k1": randomKey(t)}})
		_, err := wrong.Fresh(ctx, "k")
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("err = %v, want ErrDecrypt", err)
		}
		_, err = wrong.Credentials("k").AuthorizationHeader(ctx)
		st.errs.add(err)
		if gatewayclient.ClassOf(err) != gatewayclient.ClassConfig {
			t.Errorf("class %v, want config", gatewayclient.ClassOf(err))
		}
		if r, i := st.fake.counts(); r+i != 0 {
			t.Error("IR called for a set that cannot be decrypted")
		}
	})

	t.Run("rotated keyring: refreshed set is rewritten under the current key", func(t *testing.T) {
		t.Parallel()
		st := setupRefresh(t)
		old := st.nearExpiry(t, "k") // under k1
		rotated := st.newStore(t, Keyring{Current: "k2", Keys: map[string][]byte{"k1": st.keys.Keys["k1"], "k2": randomKey(t)}})
		ts, err := rotated.Fresh(ctx, "k")
		if err != nil || ts.AccessToken != st.fake.latestAccess(old.RefreshToken) {
			t.Fatalf("Fresh under a rotated keyring: %v", err)
		}
		infos, err := rotated.List(ctx)
		must(t, err)
		if len(infos) != 1 || infos[0].KeyID != "k2" {
			t.Errorf("after refresh: %+v, want under k2", infos)
		}
		// A worker still on the old keyring cannot read it, and says so.
		if _, err := st.store.Fresh(ctx, "k"); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("old keyring: %v", err)
		}
	})
}

func TestRefreshPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    RefreshPolicy
		want string
	}{
		{"defaults", RefreshPolicy{}, ""},
		{"lock too short", RefreshPolicy{Timeout: 10 * time.Second, LockTTL: 15 * time.Second}, "LockTTL"},
		{"negative", RefreshPolicy{RefreshBefore: -time.Second}, "RefreshBefore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.p.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	if d := (RefreshPolicy{}).withDefaults(); d.LockTTL <= 2*d.Timeout || d.RefreshBefore != 5*time.Minute {
		t.Errorf("defaults %+v", d)
	}
}
