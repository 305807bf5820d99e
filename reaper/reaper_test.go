package reaper

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
)

// helperEnv, set, makes the test binary a worker process that takes jobs
// and never finishes them, to be killed.
const helperEnv = "GATEWAYQ_REAPER_HELPER"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestHelperProcess is the killed worker of TestJobsOfAKilledWorkerComeBack.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("child process of TestJobsOfAKilledWorkerComeBack")
	}
	queue := os.Getenv("REAPER_QUEUE")
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: os.Getenv("REDIS_ADDR")}, asynq.Config{
		Concurrency: 10, Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel,
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		rdb.SAdd(context.Background(), os.Getenv("REAPER_STARTED"), id)
		<-ctx.Done() // until killed
		return ctx.Err()
	}))
	if err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
}

// TestJobsOfAKilledWorkerComeBack: a worker process holding three jobs is
// killed with SIGKILL; a reaper puts its jobs back within seconds, and a
// live worker runs them. The live worker's own job, whose lease the
// reaper's (deliberately fast) clock also sees as stale, is left alone
// because a live server holds it.
func TestJobsOfAKilledWorkerComeBack(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := context.Background()
	queue := r.Queue("bulk")
	started := r.Prefix + "started"
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	defer insp.Close()

	child := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"=1", "REDIS_ADDR="+r.Addr, "REAPER_QUEUE="+queue, "REAPER_STARTED="+started)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	}()
	var victims []string
	for i := range 3 {
		info, err := client.Enqueue(asynq.NewTask("job", []byte(strconv.Itoa(i))), asynq.Queue(queue), asynq.MaxRetry(5), asynq.Retention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		victims = append(victims, info.ID)
	}
	waitUntil(t, 30*time.Second, "the child holds all three jobs", func() bool {
		n, _ := r.Client.SCard(ctx, started).Result()
		return n == 3
	})
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed = true

	// The live worker: it holds one job of its own until released, and
	// runs whatever comes back.
	var (
		mu   sync.Mutex
		runs = map[string]int{}
	)
	release := make(chan struct{})
	var own string
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: r.Addr}, asynq.Config{Concurrency: 5, Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		mu.Lock()
		runs[id]++
		mu.Unlock()
		if tk.Type() == "own" {
			<-release
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	info, err := client.Enqueue(asynq.NewTask("own", nil), asynq.Queue(queue), asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	own = info.ID
	waitUntil(t, 30*time.Second, "the live worker runs its own job", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return runs[own] == 1
	})
	// Let the live server's heartbeat list its job.
	waitUntil(t, 30*time.Second, "the live server lists its job", func() bool {
		servers, _ := insp.Servers()
		for _, s := range servers {
			for _, w := range s.ActiveWorkers {
				if w.TaskID == own {
					return true
				}
			}
		}
		return false
	})

	// A clock 30 s ahead sees every lease as stale: only asynq's list of
	// live servers tells the dead worker's jobs from the live one's.
	rp := New(r.Client, insp, Options{Queues: []string{queue}, KeyPrefix: r.Prefix, Logger: quiet(),
		now: func() time.Time { return time.Now().Add(30 * time.Second) }})
	total := 0
	waitUntil(t, 40*time.Second, "the killed worker's jobs are put back", func() bool {
		n, err := rp.Reap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		return total == 3
	})
	waitUntil(t, 30*time.Second, "the put-back jobs run on the live worker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range victims {
			if runs[id] != 1 {
				return false
			}
		}
		return true
	})
	if n, err := rp.Reap(ctx); err != nil || n != 0 {
		t.Fatalf("second look put back %d (%v): want 0, the live worker's job stays", n, err)
	}
	close(release)
	waitUntil(t, 30*time.Second, "all four complete", func() bool {
		qi, err := insp.GetQueueInfo(queue)
		return err == nil && qi.Completed == 4 && qi.Active == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for id, n := range runs {
		if n != 1 {
			t.Errorf("task %s ran %d times", id, n)
		}
	}
	for _, id := range victims {
		ti, err := insp.GetTaskInfo(queue, id)
		if err != nil {
			t.Fatal(err)
		}
		if ti.Retried != 0 {
			t.Errorf("task %s retried %d: a put-back job spends no retry", id, ti.Retried)
		}
	}
}

// TestRequeueGuards: the move leaves alone a job that is not active, one
// whose lease is fresh, and one put back too often already.
func TestRequeueGuards(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := context.Background()
	q := r.Queue("q")
	now := time.Now()
	threshold := now.Unix()
	keys := func(id string) []string {
		return []string{activeKey(q), leaseKey(q), pendingKey(q), taskKey(q, id)}
	}
	// Not active at all.
	if n, err := requeue.Run(ctx, r.Client, keys("gone"), "gone", threshold, now.UnixNano()).Int(); err != nil || n != 0 {
		t.Fatalf("absent job: %d %v", n, err)
	}
	// Active with a fresh lease.
	r.Client.LPush(ctx, activeKey(q), "fresh")
	r.Client.ZAdd(ctx, leaseKey(q), redis.Z{Score: float64(threshold + 20), Member: "fresh"})
	if n, _ := requeue.Run(ctx, r.Client, keys("fresh"), "fresh", threshold, now.UnixNano()).Int(); n != 0 {
		t.Fatal("a job with a fresh lease was moved")
	}
	// Stale lease: moved to the head of pending, state pending.
	r.Client.LPush(ctx, activeKey(q), "stale")
	r.Client.ZAdd(ctx, leaseKey(q), redis.Z{Score: float64(threshold - 20), Member: "stale"})
	r.Client.RPush(ctx, pendingKey(q), "older")
	if n, _ := requeue.Run(ctx, r.Client, keys("stale"), "stale", threshold, now.UnixNano()).Int(); n != 1 {
		t.Fatal("a job with a stale lease was not moved")
	}
	if head, _ := r.Client.LIndex(ctx, pendingKey(q), -1).Result(); head != "stale" {
		t.Fatalf("next to dequeue is %q, want the put-back job", head)
	}
	if st, _ := r.Client.HGet(ctx, taskKey(q, "stale"), "state").Result(); st != "pending" {
		t.Fatalf("state %q", st)
	}
	if n, _ := r.Client.ZScore(ctx, leaseKey(q), "stale").Result(); n != 0 {
		t.Fatal("lease left behind")
	}

	// Too many recoveries already: left for asynq.
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	defer insp.Close()
	r.Client.LPush(ctx, activeKey(q), "poison")
	r.Client.ZAdd(ctx, leaseKey(q), redis.Z{Score: float64(now.Unix() - 60), Member: "poison"})
	r.Client.Set(ctx, r.Prefix+"reaper:recoveries:"+q+":poison", 3, time.Minute)
	rp := New(r.Client, insp, Options{Queues: []string{q}, KeyPrefix: r.Prefix, Logger: quiet()})
	if n, err := rp.Reap(ctx); err != nil || n != 0 {
		t.Fatalf("poison job: put back %d (%v), want 0", n, err)
	}
	r.Client.Set(ctx, r.Prefix+"reaper:recoveries:"+q+":poison", 1, time.Minute)
	if n, err := rp.Reap(ctx); err != nil || n != 1 {
		t.Fatalf("job recovered once: put back %d (%v), want 1", n, err)
	}
	if c, _ := r.Client.Get(ctx, r.Prefix+"reaper:recoveries:"+q+":poison").Int(); c != 2 {
		t.Fatalf("recovery count %d, want 2", c)
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
