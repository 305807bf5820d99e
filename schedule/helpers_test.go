package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/tasks"
)

// fakeClock is a Clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan struct{} // a value each time After registers a waiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, added: make(chan struct{}, 100)}
}

var _ Clock = (*fakeClock)(nil)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

// Set moves the clock to t and fires the waiters it passes.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// waitForWaiter blocks until some goroutine is in After.
func (c *fakeClock) waitForWaiter(t *testing.T) {
	t.Helper()
	select {
	case <-c.added:
	case <-time.After(30 * time.Second):
		t.Fatal("the scheduler never waited on the clock")
	}
}

// auckland is the default zone.
func auckland(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// jobLine is a valid job: an Account API look-up with M2M, whose body
// (and so task ID) differs with n.
func jobLine(n int) string {
	return fmt.Sprintf(`{"service":"account","operation":"list","auth":{"mode":"m2m"},"body":"{\"CustomerID\":\"%09d\",\"CustomerIDType\":\"IRD\"}"}`, 100_000_000+n)
}

// writeJobs writes lines n=from..to-1 (plus any extra lines) to dir/name.
func writeJobs(t testing.TB, dir, name string, from, to int, extra ...string) string {
	t.Helper()
	var b strings.Builder
	for n := from; n < to; n++ {
		b.WriteString(jobLine(n) + "\n")
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is one test's Redis, queue prefix and config.
type env struct {
	r   *redistest.Redis
	cfg config.Schedule
	dir string
}

func newEnv(t *testing.T, batches ...config.ScheduledBatch) *env {
	t.Helper()
	r := redistest.New(t)
	dir := t.TempDir()
	for i := range batches {
		if batches[i].Dir == "" {
			batches[i].Dir = dir
		}
	}
	cfg := config.Default(config.ProfileSandbox).Schedule
	cfg.Batches = batches
	return &env{r: r, cfg: cfg, dir: dir}
}

// scheduler is a Scheduler with its own Redis and asynq clients, as a
// separate worker process would have.
func (e *env) scheduler(t *testing.T, clock Clock, mod ...func(*Options)) *Scheduler {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.r.Addr})
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.r.Addr})
	t.Cleanup(func() {
		_ = client.Close()
		_ = rdb.Close()
	})
	o := Options{
		Config:    e.cfg,
		Redis:     rdb,
		KeyPrefix: e.r.Prefix,
		Enqueuer:  tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: e.r.Prefix}),
		Clock:     clock,
		Logger:    discardLogger(),
	}
	for _, m := range mod {
		m(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queued returns the task IDs in the test's queue q.
func (e *env) queued(t *testing.T, q string) []string {
	t.Helper()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: e.r.Addr})
	defer insp.Close()
	var ids []string
	for page := 1; ; page++ {
		tis, err := insp.ListPendingTasks(tasks.QueueName(e.r.Prefix, q), asynq.Page(page), asynq.PageSize(500))
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return nil
			}
			t.Fatal(err)
		}
		for _, ti := range tis {
			ids = append(ids, ti.ID)
		}
		if len(tis) < 500 {
			return ids
		}
	}
}

// runs lists the recorded runs of name.
func (e *env) runs(t *testing.T, name string) []Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := Runs(ctx, e.r.Client, e.r.Prefix, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
