package e2e

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/worker"
)

// consent runs the sandbox's authorization-code flow with PKCE as user
// and stores the token set as id, the way `enqueue auth login` does.
func (s *stack) consent(t *testing.T, id, user string) {
	t.Helper()
	client := s.sb.OAuthClients()[0]
	s.cfg.OAuth.BaseURL = s.sb.DesktopURL()
	s.cfg.OAuth.ClientID, s.cfg.OAuth.ClientSecret = client.ID, client.Secret
	s.cfg.OAuth.RedirectURL = sandbox.DefaultOAuthRedirectURI
	oc, err := worker.OAuthClient(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge := oc.NewPKCE()
	u := oc.AuthCodeURL("st", challenge, s.cfg.OAuth.RedirectURL) + "&login_hint=" + url.QueryEscape(user)
	resp, err := oc.HTTPClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: HTTP %d %v", resp.StatusCode, err)
	}
	ts, err := oc.Exchange(context.Background(), loc.Query().Get("code"), verifier, s.cfg.OAuth.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	ts.ID, ts.User, ts.Endpoint, ts.ConsentedAt = id, user, gatewayclient.EndpointCloud, time.Now()
	rdb := redis.NewClient(worker.RedisOptions(s.cfg.Redis))
	defer rdb.Close()
	store, err := worker.TokenStore(s.cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredTokenRefreshedOnceFleetWide: a batch is running on two
// workers when IR's access token expires. Every job in flight is refused
// with statusCode 1 at once; the token set is refreshed exactly once for
// the whole fleet (IR kills a set whose refresh token comes back twice),
// and every return is then filed once.
func TestExpiredTokenRefreshedOnceFleetWide(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{AccessTokenTTL: 30 * time.Minute, Latency: 20 * time.Millisecond}, demo.Options{Concurrency: 8})
	s.consent(t, "ts-alice", "alice")
	// The access token expires at IR; our copy still looks fresh for 30
	// minutes, so only IR's statusCode 1 can tell the workers.
	s.sb.Advance(31 * time.Minute)
	b, _, err := demo.Generate(demo.GenerateOptions{Returns: 40, TokenSets: []string{"ts-alice"}, Seed: 3, BatchID: "refresh"})
	if err != nil {
		t.Fatal(err)
	}
	s.enqueueAll(t, b.Jobs)
	s.runWorker(t)
	s.runWorker(t)
	qi := s.waitFor(t, time.Minute, "all filed", func(qi *asynq.QueueInfo) bool { return qi.Completed+qi.Archived == len(b.Jobs) })
	if qi.Archived != 0 {
		t.Fatalf("%d jobs parked: %+v", qi.Archived, archivedOutcomes(t, s))
	}
	st := s.sb.Stats()
	if st.OAuthCalls["token/refresh_token"] != 1 || st.RefreshReuse != 0 || st.TokenSetsKilled != 0 {
		t.Fatalf("refreshes %d, reused refresh tokens %d, sets killed %d: want 1, 0, 0", st.OAuthCalls["token/refresh_token"], st.RefreshReuse, st.TokenSetsKilled)
	}
	for k, n := range st.RefreshPresentations {
		if n > 1 {
			t.Fatalf("refresh token %s presented %d times", k, n)
		}
	}
	if st.Filed != int64(len(b.Jobs)) || st.DuplicateFilings != 0 {
		t.Fatalf("filed %d of %d, duplicates %d", st.Filed, len(b.Jobs), st.DuplicateFilings)
	}
	t.Logf("%d calls refused for the expired token (statusCode 1); one refresh; %d returns filed once", st.StatusCodes[1], st.Filed)
}

// TestRevokedConsentParksForReconsent: when the user's consent is gone
// (the refresh token was revoked), jobs are parked as needing re-consent,
// not retried in a loop, and no refresh token is presented again.
func TestRevokedConsentParksForReconsent(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{AccessTokenTTL: 30 * time.Minute}, demo.Options{})
	s.consent(t, "ts-bob", "bob")
	rdb := redis.NewClient(worker.RedisOptions(s.cfg.Redis))
	defer rdb.Close()
	store, _ := worker.TokenStore(s.cfg, rdb)
	ts, err := store.Get(context.Background(), "ts-bob")
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := worker.OAuthClient(s.cfg)
	if err := oc.Revoke(context.Background(), ts.RefreshToken, "refresh_token"); err != nil {
		t.Fatal(err)
	}
	b, _, _ := demo.Generate(demo.GenerateOptions{Returns: 6, TokenSets: []string{"ts-bob"}, Seed: 4, BatchID: "revoked"})
	s.enqueueAll(t, b.Jobs)
	s.runWorker(t)
	s.waitFor(t, time.Minute, "all parked", func(qi *asynq.QueueInfo) bool { return qi.Archived == len(b.Jobs) })
	for _, o := range archivedOutcomes(t, s) {
		if o.Class != gatewayclient.ClassAuth.String() {
			t.Fatalf("parked as %s (%s), want auth", o.Class, o.Reason)
		}
	}
	// One attempt to refresh (IR answers invalid_grant for the revoked
	// token), after which the set is marked dead and no worker asks again.
	st := s.sb.Stats()
	if st.Filed != 0 || st.OAuthCalls["token/refresh_token"] != 1 {
		t.Fatalf("filed %d, refresh attempts %d: want 0 and 1", st.Filed, st.OAuthCalls["token/refresh_token"])
	}
	for k, n := range st.RefreshPresentations {
		if n > 1 {
			t.Fatalf("refresh token %s presented %d times", k, n)
		}
	}
}

// TestLostRefreshAnswerParksForReconsent: IR honours a refresh (the
// refresh token is spent, a new set issued) and the answer is lost on the
// way. Presenting the old refresh token again would be a reuse, which
// kills the user's set at IR; the workers never do it. The next one to
// need the set asks IR whether the token is still active (it is not),
// marks the set dead, and every job is parked as needing re-consent.
func TestLostRefreshAnswerParksForReconsent(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{AccessTokenTTL: 30 * time.Minute}, demo.Options{Concurrency: 4})
	s.consent(t, "ts-carol", "carol")
	s.sb.Advance(31 * time.Minute) // the access token is dead at IR; our copy looks fresh
	if err := s.sb.SetFaults(sandbox.Faults{LoseRefresh: 1}); err != nil {
		t.Fatal(err)
	}
	b, _, err := demo.Generate(demo.GenerateOptions{Returns: 4, TokenSets: []string{"ts-carol"}, Seed: 5, BatchID: "lost-refresh"})
	if err != nil {
		t.Fatal(err)
	}
	s.enqueueAll(t, b.Jobs)
	s.runWorker(t)
	s.runWorker(t)
	s.waitFor(t, 2*time.Minute, "all parked", func(qi *asynq.QueueInfo) bool { return qi.Archived == len(b.Jobs) })
	for _, o := range archivedOutcomes(t, s) {
		if o.Class != gatewayclient.ClassAuth.String() {
			t.Fatalf("parked as %s (%s), want auth", o.Class, o.Reason)
		}
	}
	st := s.sb.Stats()
	if st.RefreshesLost != 1 || st.OAuthCalls["token/refresh_token"] != 1 || st.RefreshReuse != 0 || st.TokenSetsKilled != 0 || st.Filed != 0 {
		t.Fatalf("lost refreshes %d, refresh calls %d, reused %d, sets killed %d, filed %d: want 1, 1, 0, 0, 0",
			st.RefreshesLost, st.OAuthCalls["token/refresh_token"], st.RefreshReuse, st.TokenSetsKilled, st.Filed)
	}
	for k, n := range st.RefreshPresentations {
		if n > 1 {
			t.Fatalf("refresh token %s presented %d times", k, n)
		}
	}
	t.Logf("OAuth calls %v; parked: %s", st.OAuthCalls, archivedOutcomes(t, s)[0].Reason)
}
