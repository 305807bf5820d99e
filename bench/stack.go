package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/breaker"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// stack is one benchmark run: a fresh sandbox (so no run sees another's
// filings), a private key and queue prefix in the shared Redis, and the
// worker processes.
type stack struct {
	b        *Bench
	name     string
	sb       *sandbox.Sandbox
	cfg      *config.Config
	dir      string
	rdb      *redis.Client
	client   *asynq.Client
	insp     *asynq.Inspector
	enq      *tasks.Enqueuer
	tokenSet string

	mu       sync.Mutex
	children []*child
	childErr []error
}

// child is one worker process; done closes when it has exited.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (b *Bench) newStack(name string, so sandbox.Options, tweak func(*config.Config)) (*stack, error) {
	so.Logger = b.quiet
	sb, err := sandbox.New(so)
	if err != nil {
		return nil, err
	}
	if err := sb.Start(); err != nil {
		return nil, err
	}
	s := &stack{b: b, name: name, sb: sb}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "gatewayq-bench-"); err != nil {
		return nil, err
	}
	files, err := sb.PKI().WriteFiles(s.dir)
	if err != nil {
		return nil, err
	}
	cfg, err := demo.Config(b.redisAddr, sb, files, demo.Options{RateRPS: b.opts.Rate, Concurrency: b.opts.Concurrency})
	if err != nil {
		return nil, err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := "bench:" + name + ":" + hex.EncodeToString(rnd[:]) + ":"
	cfg.Redis.KeyPrefix, cfg.Redis.QueuePrefix = prefix, prefix
	cfg.Log.Format, cfg.Log.Level = "json", "warn"
	cfg.Worker.Queues = config.Queues{tasks.QueueRealtime: 6, tasks.QueueBulk: 3, tasks.QueueRedrive: 1}
	if tweak != nil {
		tweak(cfg)
	}
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		return nil, err
	}
	s.cfg = cfg
	s.rdb = redis.NewClient(worker.RedisOptions(cfg.Redis))
	store, err := worker.TokenStore(cfg, s.rdb)
	if err != nil {
		return nil, err
	}
	ts := auth.TokenSet{ID: "bench", AccessToken: sb.IssueToken("bench-user", 8*time.Hour), Expiry: time.Now().Add(8 * time.Hour),
		Endpoint: gatewayclient.EndpointCloud, User: "bench-user"}
	if err := store.Put(context.Background(), ts); err != nil {
		return nil, fmt.Errorf("store token set: %w", err)
	}
	s.tokenSet = ts.ID
	s.client = asynq.NewClient(worker.AsynqRedis(cfg.Redis))
	s.insp = asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	s.enq = worker.Enqueuer(cfg, s.rdb)
	ok = true
	return s, nil
}

func (s *stack) queue() string { return tasks.QueueName(s.cfg.Redis.QueuePrefix, tasks.QueueBulk) }

// enqueue puts n GST returns on the bulk queue, in parallel, and returns
// the jobs' task IDs with the time the last was enqueued.
func (s *stack) enqueue(ctx context.Context, n int, seed uint64) ([]string, time.Time, error) {
	batch, _, err := demo.Generate(demo.GenerateOptions{Returns: n, TokenSets: []string{s.tokenSet}, Seed: seed, BatchID: s.name})
	if err != nil {
		return nil, time.Time{}, err
	}
	ids := make([]string, len(batch.Jobs))
	jobs := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				res, err := s.enq.Enqueue(ctx, batch.Jobs[i], tasks.QueueBulk)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				ids[i] = res.ID
			}
		})
	}
	for i := range batch.Jobs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, time.Time{}, err
	default:
	}
	return ids, time.Now(), nil
}

// startWorkers starts n worker OS processes of the given mode (this
// executable re-run as a child), configured only through the environment.
func (s *stack) startWorkers(mode string, n int, extraEnv ...string) error {
	for i := range n {
		cmd := exec.Command(s.b.opts.Self, "--child", mode)
		cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, s.cfg.Environ()...), "GATEWAYQ_PROFILE="+string(s.cfg.Profile))
		cmd.Env = append(cmd.Env, extraEnv...)
		if v := os.Getenv(envCPUProfile); v != "" {
			cmd.Env = append(cmd.Env, envCPUProfile+"="+v)
		}
		cmd.Stdout = os.Stderr
		var stderr strings.Builder
		cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start worker %d: %w", i, err)
		}
		c := &child{cmd: cmd, done: make(chan struct{})}
		s.mu.Lock()
		s.children = append(s.children, c)
		s.mu.Unlock()
		go func() {
			defer close(c.done)
			err := cmd.Wait()
			if err != nil && !isSignalled(err) {
				s.mu.Lock()
				s.childErr = append(s.childErr, fmt.Errorf("worker %d: %v: %s", i, err, lastLines(stderr.String(), 5)))
				s.mu.Unlock()
			}
		}()
	}
	return nil
}

func isSignalled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}

// stopWorkers sends SIGTERM to every worker and waits for them to exit.
func (s *stack) stopWorkers() {
	s.mu.Lock()
	children := s.children
	s.children = nil
	s.mu.Unlock()
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Worker.ShutdownTimeout+5*time.Second)
	defer cancel()
	for _, c := range children {
		select {
		case <-c.done:
		case <-ctx.Done():
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

func (s *stack) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.childErr...)
}

// waitFinished waits until n jobs are completed or archived.
func (s *stack) waitFinished(ctx context.Context, n int, timeout time.Duration) (*asynq.QueueInfo, error) {
	deadline := time.Now().Add(timeout)
	for {
		qi, err := s.insp.GetQueueInfo(s.queue())
		if err == nil && qi.Completed+qi.Archived >= n {
			return qi, nil
		}
		if err := s.err(); err != nil {
			return qi, err
		}
		if time.Now().After(deadline) {
			return qi, fmt.Errorf("%s: %d jobs not finished within %s (queue %+v)", s.name, n, timeout, qi)
		}
		select {
		case <-ctx.Done():
			return qi, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// outcomes reads the results and retry counts of the finished jobs.
func (s *stack) outcomes() (results []tasks.Outcome, retried int, err error) {
	for page := 1; ; page++ {
		list, err := s.insp.ListCompletedTasks(s.queue(), asynq.PageSize(1000), asynq.Page(page))
		if err != nil {
			return nil, 0, err
		}
		for _, t := range list {
			retried += t.Retried
			var o tasks.Outcome
			if json.Unmarshal(t.Result, &o) == nil {
				results = append(results, o)
			}
		}
		if len(list) < 1000 {
			return results, retried, nil
		}
	}
}

// close stops everything and deletes the run's keys.
func (s *stack) close() {
	s.stopWorkers()
	if s.insp != nil {
		for _, q := range tasks.Queues {
			_ = s.insp.DeleteQueue(tasks.QueueName(s.cfg.Redis.QueuePrefix, q), true)
		}
		_ = s.insp.Close()
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	if s.rdb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		// asynq's DeleteQueue leaves completed tasks behind (v0.26): in a
		// shared Redis (--redis, the tests) a run's queues are swept by
		// their prefix too, with gatewayq's own keys.
		for _, pattern := range []string{s.cfg.Redis.KeyPrefix + "*", "asynq:{" + s.cfg.Redis.QueuePrefix + "*"} {
			iter := s.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				s.rdb.Unlink(ctx, iter.Val())
			}
		}
		cancel()
		_ = s.rdb.Close()
	}
	if s.sb != nil {
		_ = s.sb.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

type limitedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() < l.n {
		l.w.Write(p[:min(len(p), l.n-l.w.Len())])
	}
	return len(p), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// percentile of sorted-in-place values (p in [0,100]).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := int(float64(len(v)-1) * p / 100)
	return v[i]
}

// watchTrip sends the first moment the fleet breaker of the cloud
// endpoint is open in Redis, as every worker sees it.
func (s *stack) watchTrip(ctx context.Context, tripped chan<- time.Time) {
	keys := worker.LimitKeys(s.clientOptions())
	key := breaker.StateKey(s.cfg.Redis.KeyPrefix, keys[gatewayclient.EndpointCloud])
	for {
		if st, err := s.rdb.HGet(ctx, key, "state").Result(); err == nil && st == "open" {
			tripped <- time.Now()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *stack) clientOptions() gatewayclient.Options {
	o, err := worker.ClientOptions(s.cfg, s.b.quiet)
	if err != nil {
		return gatewayclient.Options{}
	}
	return o
}
