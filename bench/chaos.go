package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// Chaos is a batch of returns filed through every failure at once: lost
// and hung responses after IR committed the return, access tokens
// expiring mid-batch for every user at once, a revoked consent, refused
// delegations, and worker processes killed with SIGKILL every few seconds.
// The first six fields are the proof: every return filed exactly once,
// none lost, no refresh token presented twice.
type Chaos struct {
	Jobs int `json:"jobs"`
	// FiledOnce counts returns with exactly one original at the sandbox.
	FiledOnce int `json:"filed_once"`
	// DuplicateFilings counts returns with two originals or more.
	DuplicateFilings int `json:"duplicate_filings"`
	// Lost counts jobs that ended neither filed nor parked, or that were
	// reported done though the sandbox has no filing for them.
	Lost int `json:"lost"`
	// RefreshReuse counts refresh tokens the sandbox saw more than once.
	RefreshReuse int `json:"refresh_reuse"`
	// Parked counts archived jobs; ParkedWrong those whose class is not
	// the one their return called for (a refused delegation is
	// "permission", a bad period "invalid", a revoked consent "auth";
	// anything else should have been filed).
	Parked        int            `json:"parked"`
	ParkedWrong   int            `json:"parked_wrong"`
	ParkedByClass map[string]int `json:"parked_by_class"`
	Seconds       float64        `json:"seconds"`

	TokenSets int `json:"token_sets"`
	Workers   int `json:"workers"`
	// Kills counts worker processes killed with SIGKILL.
	Kills int `json:"kills"`
	// RefusedAtEnqueue counts jobs failing IR's XSD, never enqueued.
	RefusedAtEnqueue int `json:"refused_at_enqueue"`
	// LostResponses and HungAfterCommit count Files the sandbox committed
	// and then did not answer.
	LostResponses   int64 `json:"lost_responses"`
	HungAfterCommit int64 `json:"hung_after_commit"`
	// TokenExpiries counts the times every access token expired at once;
	// AuthRefusals the calls IR refused for an expired token; Refreshes
	// the refresh grants presented; TokenSetsKilled the sets the sandbox
	// killed for a reused refresh token.
	TokenExpiries   int   `json:"token_expiries"`
	AuthRefusals    int64 `json:"auth_refusals"`
	Refreshes       int64 `json:"refreshes"`
	TokenSetsKilled int   `json:"token_sets_killed"`
	// Reconciled counts returns whose filing was learned from IR
	// (RetrieveStatus/RetrieveReturn) rather than from the File's answer.
	Reconciled int64 `json:"reconciled"`
	// StatusCalls and ReturnCalls are the reconciliation's look-ups.
	StatusCalls int64 `json:"status_calls"`
	ReturnCalls int64 `json:"return_calls"`
}

// Failed says which of the guarantees the run broke, if any.
func (c *Chaos) Failed() error {
	var errs []error
	if c.DuplicateFilings > 0 {
		errs = append(errs, fmt.Errorf("%d returns filed twice", c.DuplicateFilings))
	}
	if c.Lost > 0 {
		errs = append(errs, fmt.Errorf("%d jobs lost", c.Lost))
	}
	if c.RefreshReuse > 0 || c.TokenSetsKilled > 0 {
		errs = append(errs, fmt.Errorf("%d refresh tokens presented twice, %d token sets killed", c.RefreshReuse, c.TokenSetsKilled))
	}
	if c.ParkedWrong > 0 {
		errs = append(errs, fmt.Errorf("%d jobs parked for the wrong reason", c.ParkedWrong))
	}
	return errors.Join(errs...)
}

// ChaosShape sizes a chaos run; the benchmark's full and quick runs and
// the integration test each pick one.
type ChaosShape struct {
	Returns   int
	TokenSets int
	// KillEvery is the pause between SIGKILLs; KillFor how long the
	// killing goes on (or until the batch is done).
	KillEvery, KillFor time.Duration
	// Expiries are the fractions of the batch done at which every access
	// token expires at IR.
	Expiries []float64
	Timeout  time.Duration
}

func (b *Bench) chaosShape() ChaosShape {
	switch {
	case b.opts.chaos != nil:
		return *b.opts.chaos
	case b.opts.Quick:
		// About 45 s here: lost responses are connection resets, which IR
		// means as "slow down", so the fleet runs below R throughout. The
		// timeout leaves room for a loaded machine.
		return ChaosShape{Returns: 1000, TokenSets: 12, KillEvery: 2 * time.Second, KillFor: 20 * time.Second, Expiries: []float64{0.25, 0.6}, Timeout: 2 * time.Minute}
	}
	return ChaosShape{Returns: 2000, TokenSets: 40, KillEvery: 3 * time.Second, KillFor: time.Minute, Expiries: []float64{0.2, 0.45, 0.7}, Timeout: 5 * time.Minute}
}

// expect is what a job's return calls for.
type expect struct {
	// class is the class it is parked with when IR refuses it ("" for a
	// return IR accepts).
	class gatewayclient.Class
	// revoked: the user withdrew consent, so the job may instead be
	// parked for re-consent once the access token has expired.
	revoked bool
}

func (b *Bench) chaos(ctx context.Context) (*Chaos, error) {
	return b.runChaos(ctx, b.chaosShape())
}

func (b *Bench) runChaos(ctx context.Context, shape ChaosShape) (*Chaos, error) {
	so := b.throttled()
	// 5% of Files answered by nobody after IR committed them, 2% held
	// past the call's deadline after the commit.
	so.Faults = sandbox.Faults{LoseResponse: 0.05, HangAfterCommit: 0.02}
	so.AccessTokenTTL = time.Hour
	s, err := b.newStack("chaos", so, func(c *config.Config) {
		c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitFleet, b.opts.Rate, b.ourBurst()
		// IR's 60 s deadline would make each hang a minute; the logic is
		// the same with 2 s.
		c.Gateway.CallTimeout, c.Limits.MaxWait = 2*time.Second, 2*time.Second
	})
	if err != nil {
		return nil, err
	}
	defer s.close()
	client := s.sb.OAuthClients()[0]
	s.cfg.OAuth.ClientID, s.cfg.OAuth.ClientSecret, s.cfg.OAuth.RedirectURL = client.ID, client.Secret, sandbox.DefaultOAuthRedirectURI

	// Every user consents through the sandbox's OAuth server: real
	// single-use refresh tokens, counted per presentation.
	oc, err := worker.OAuthClient(s.cfg)
	if err != nil {
		return nil, err
	}
	store, err := worker.TokenStore(s.cfg, s.rdb)
	if err != nil {
		return nil, err
	}
	users := make([]string, shape.TokenSets)
	for i := range users {
		users[i] = fmt.Sprintf("chaos-user-%02d", i)
		ts, err := oc.ConsentAs(ctx, users[i], s.cfg.OAuth.RedirectURL)
		if err != nil {
			return nil, fmt.Errorf("consent as %s: %w", users[i], err)
		}
		ts.ID, ts.User, ts.Endpoint, ts.ConsentedAt = users[i], users[i], gatewayclient.EndpointCloud, time.Now()
		if err := store.Put(ctx, ts); err != nil {
			return nil, err
		}
		if i == len(users)-1 {
			// The last user withdraws consent before the batch: once the
			// access token expires, the set cannot be refreshed.
			if err := oc.Revoke(ctx, ts.RefreshToken, "refresh_token"); err != nil {
				return nil, fmt.Errorf("revoke: %w", err)
			}
		}
	}
	revoked := users[len(users)-1]

	batch, denials, err := demo.Generate(demo.GenerateOptions{Returns: shape.Returns, TokenSets: users, Seed: 77, BatchID: "chaos", DenyEvery: 25})
	if err != nil {
		return nil, err
	}
	denied := map[string]bool{}
	for _, d := range denials {
		s.sb.Deny(d.User, d.Identifier, d.AccountType)
		denied[d.User+"|"+d.Identifier+"|"+d.AccountType] = true
	}
	out := &Chaos{TokenSets: len(users), Workers: b.opts.Procs, ParkedByClass: map[string]int{}}
	type entry struct {
		job    *tasks.Job
		id     string
		expect expect
	}
	var jobs []entry
	for _, j := range batch.Jobs {
		res, err := s.enq.Enqueue(ctx, j, tasks.QueueBulk)
		if errors.Is(err, tasks.ErrInvalidJob) {
			out.RefusedAtEnqueue++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		e := entry{job: j, id: res.ID, expect: expect{revoked: j.Auth.TokenSet == revoked}}
		k := j.Key
		switch {
		case denied[j.Auth.TokenSet+"|"+k.Identifier+"|"+k.AccountType]:
			e.expect.class = gatewayclient.ClassPermission
		case !monthEnd(k.PeriodEndDate):
			e.expect.class = gatewayclient.ClassInvalid
		}
		jobs = append(jobs, e)
	}
	out.Jobs = len(jobs)
	b.logf("chaos: %d returns across %d token sets (%d refused at enqueue), %d worker processes, SIGKILL every %s", out.Jobs, len(users), out.RefusedAtEnqueue, b.opts.Procs, shape.KillEvery)

	start := time.Now()
	if err := s.startWorkers(ModeOurs, b.opts.Procs); err != nil {
		return nil, err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var wg sync.WaitGroup
	var kills int
	wg.Go(func() { kills = s.killer(runCtx, shape.KillEvery, start.Add(shape.KillFor)) })
	wg.Go(func() { out.TokenExpiries = s.expireTokens(runCtx, len(jobs), shape.Expiries, so.AccessTokenTTL) })
	_, werr := s.waitFinished(ctx, len(jobs), shape.Timeout)
	stopRun()
	wg.Wait()
	out.Kills = kills
	out.Seconds = time.Since(start).Seconds()
	s.stopWorkers()
	if werr != nil {
		return nil, fmt.Errorf("after %d kills: %w; waiting: %s", kills, werr, s.waitingFor())
	}

	// What became of each job: its task's end state, and the sandbox's
	// filings of its return.
	completed, archived, err := s.finished()
	if err != nil {
		return nil, err
	}
	st := s.sb.Stats()
	for _, e := range jobs {
		originals := st.Originals[sandboxKey(e.job.Key).String()]
		switch {
		case originals == 1:
			out.FiledOnce++
		case originals > 1:
			out.DuplicateFilings++
		}
		o, parked := archived[e.id]
		_, done := completed[e.id]
		switch {
		case done && originals == 0:
			out.Lost++ // reported done, never filed
		case parked:
			out.Parked++
			out.ParkedByClass[o.Class]++
			if !parkedRightly(e.expect, o.Class) {
				out.ParkedWrong++
				b.logf("chaos: %s parked as %s (%s)", e.id, o.Class, o.Reason)
			}
		case !done:
			out.Lost++
		}
	}
	for _, n := range st.RefreshPresentations {
		if n > 1 {
			out.RefreshReuse++
		}
	}
	out.TokenSetsKilled = st.TokenSetsKilled
	out.LostResponses, out.HungAfterCommit = st.Injected["loseResponse"], st.Injected["hangAfterCommit"]
	out.AuthRefusals = st.StatusCodes[1] + st.StatusCodes[2]
	out.Refreshes = st.OAuthCalls["token/refresh_token"]
	out.StatusCalls, out.ReturnCalls = st.Calls["returns/RetrieveStatus"], st.Calls["returns/RetrieveReturn"]
	l := ledger.New(s.rdb, s.cfg.Redis.KeyPrefix)
	for _, e := range jobs {
		if le, err := l.Get(ctx, tasks.LedgerKey(e.job)); err == nil && le.Reconciled {
			out.Reconciled++
		}
	}
	if err := s.err(); err != nil {
		return out, err
	}
	b.logf("chaos: %d jobs in %.1fs, %d kills: %d filed once, %d filed twice, %d lost, %d refresh tokens reused, %d parked (%d wrongly) %v",
		out.Jobs, out.Seconds, out.Kills, out.FiledOnce, out.DuplicateFilings, out.Lost, out.RefreshReuse, out.Parked, out.ParkedWrong, out.ParkedByClass)
	return out, nil
}

func parkedRightly(e expect, class string) bool {
	if e.revoked && class == gatewayclient.ClassAuth.String() {
		return true
	}
	return e.class != gatewayclient.ClassOK && class == e.class.String()
}

// monthEnd tells a GST period IR's business rule accepts (the last day of
// a month) from the demo's deliberately bad ones; payday returns' periods
// are always month ends.
func monthEnd(date string) bool {
	t, err := time.Parse(time.DateOnly, date)
	return err == nil && t.AddDate(0, 0, 1).Day() == 1
}

func sandboxKey(k *tasks.NaturalKey) sandbox.NaturalKey {
	return sandbox.NaturalKey{Identifier: k.Identifier, AccountType: k.AccountType, PeriodEndDate: k.PeriodEndDate, MajorFormType: k.MajorFormType, PayDayDate: k.PayDayDate}
}

// killer kills a random worker process with SIGKILL every `every` until
// `until` or ctx ends, starting a replacement each time, as a supervisor
// would. It returns the number of kills.
func (s *stack) killer(ctx context.Context, every time.Duration, until time.Time) int {
	kills := 0
	for time.Now().Before(until) {
		select {
		case <-ctx.Done():
			return kills
		case <-time.After(every):
		}
		s.mu.Lock()
		var live []*child
		for _, c := range s.children {
			select {
			case <-c.done:
			default:
				live = append(live, c)
			}
		}
		s.mu.Unlock()
		if len(live) == 0 {
			continue
		}
		victim := live[rand.N(len(live))]
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			continue
		}
		<-victim.done
		kills++
		s.mu.Lock()
		s.children = slices.DeleteFunc(s.children, func(c *child) bool { return c == victim })
		s.mu.Unlock()
		if err := s.startWorkers(ModeOurs, 1); err != nil {
			s.mu.Lock()
			s.childErr = append(s.childErr, fmt.Errorf("restart a killed worker: %w", err))
			s.mu.Unlock()
			return kills
		}
	}
	return kills
}

// expireTokens fast-forwards the sandbox's clock past every access
// token's lifetime each time the batch crosses one of the fractions
// done: every job in flight is refused with statusCode 1 at once, while
// the workers' copies of the tokens still look fresh.
func (s *stack) expireTokens(ctx context.Context, n int, at []float64, ttl time.Duration) int {
	done := 0
	for _, f := range at {
		for {
			qi, err := s.insp.GetQueueInfo(s.queue())
			if err == nil && float64(qi.Completed+qi.Archived) >= f*float64(n) {
				break
			}
			select {
			case <-ctx.Done():
				return done
			case <-time.After(50 * time.Millisecond):
			}
		}
		s.sb.Advance(ttl + time.Minute)
		done++
		s.b.logf("chaos: every access token expired at IR (%.0f%% done)", f*100)
	}
	return done
}

// finished reads the outcomes of the completed and archived tasks by ID.
func (s *stack) finished() (completed, archived map[string]tasks.Outcome, err error) {
	completed, archived = map[string]tasks.Outcome{}, map[string]tasks.Outcome{}
	for _, l := range []struct {
		m    map[string]tasks.Outcome
		list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	}{{completed, s.insp.ListCompletedTasks}, {archived, s.insp.ListArchivedTasks}} {
		for page := 1; ; page++ {
			infos, err := l.list(s.queue(), asynq.PageSize(1000), asynq.Page(page))
			if err != nil {
				return nil, nil, err
			}
			for _, t := range infos {
				var o tasks.Outcome
				if json.Unmarshal(t.Result, &o) != nil || o.Class == "" {
					// No outcome of ours: say what asynq knows.
					o.Reason = fmt.Sprintf("no outcome written; asynq's last error after %d retries: %s", t.Retried, t.LastErr)
				}
				l.m[t.ID] = o
			}
			if len(infos) < 1000 {
				break
			}
		}
	}
	return completed, archived, nil
}

// waitingFor sums up why the unfinished jobs are waiting: their last
// errors, most common first.
func (s *stack) waitingFor() string {
	why := map[string]int{}
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){s.insp.ListRetryTasks, s.insp.ListScheduledTasks} {
		infos, err := list(s.queue(), asynq.PageSize(1000))
		if err != nil {
			continue
		}
		for _, t := range infos {
			msg := t.LastErr
			if len(msg) > 120 {
				msg = msg[:120]
			}
			why[msg]++
		}
	}
	if active, err := s.insp.ListActiveTasks(s.queue(), asynq.PageSize(1000)); err == nil {
		held := map[string]bool{}
		if servers, err := s.insp.Servers(); err == nil {
			for _, sv := range servers {
				for _, w := range sv.ActiveWorkers {
					held[w.TaskID] = true
				}
			}
		}
		for _, t := range active {
			why[fmt.Sprintf("active (held by a live worker %v, orphaned %v)", held[t.ID], t.IsOrphaned)]++
		}
	}
	keys := slices.SortedFunc(maps.Keys(why), func(a, b string) int { return why[b] - why[a] })
	var parts []string
	for _, k := range keys[:min(len(keys), 8)] {
		parts = append(parts, fmt.Sprintf("%d× %q", why[k], k))
	}
	return strings.Join(parts, "; ")
}
