// Package bench is gatewayq's benchmark: the sandbox with a throttle of R
// requests/s per client certificate and a realistic latency, a Redis, and P
// real worker OS processes, running six scenarios side by side in one run
// so that every figure is a ratio or a count measured on the same machine
// at the same time:
//
//   - fleet-rate: ours against a naive per-process x/time/rate at R and a
//     static per-process R/P: achieved rate over R, 429s, job latency.
//   - adapt: the sandbox's limit drops from R to R/2 mid-run and comes back:
//     time to settle under the new limit, 429s after settling, recovery.
//   - outage: the sandbox answers 503 for a while mid-batch: how fast every
//     process stops calling, calls while open, archived jobs, retry budget
//     spent, completion after recovery.
//   - overhead: an unlimited, instant sandbox: jobs/s through our whole path
//     against a bare asynq handler making the same HTTPS call, and Redis
//     commands per job.
//   - enqueue: a file of demo returns through `enqueue bulk`'s path
//     (decode, validate against IR's XSD, enqueue, ledger, batch record)
//     against the same work one Client.Enqueue at a time, and bare asynq
//     enqueues of the same lines: jobs/s, and how much the heap grew.
//   - chaos: a batch of returns across many OAuth token sets, through lost
//     and hung responses after IR committed them, every access token
//     expiring mid-batch and worker processes SIGKILLed every few seconds:
//     returns filed once, twice (must be 0), lost (must be 0), refresh
//     tokens presented twice (must be 0), parked jobs and their reasons.
//
// cmd/bench runs it; worker processes are that same executable re-run with
// --child.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Scenario names.
const (
	ScenarioFleetRate = "fleet-rate"
	ScenarioAdapt     = "adapt"
	ScenarioOutage    = "outage"
	ScenarioOverhead  = "overhead"
	ScenarioChaos     = "chaos"
	ScenarioEnqueue   = "enqueue"
)

// Scenarios lists every scenario in the order they run.
var Scenarios = []string{ScenarioFleetRate, ScenarioAdapt, ScenarioOutage, ScenarioOverhead, ScenarioEnqueue, ScenarioChaos}

// Options shape a benchmark run.
type Options struct {
	// Quick shortens every scenario to under a minute each on a 2-core
	// machine (the whole run about two minutes).
	Quick bool
	// RedisAddr is the Redis to use; "" starts a private redis-server on a
	// free port (so Redis command counts are ours alone).
	RedisAddr string
	// Procs is P, the worker processes per run. Default 4.
	Procs int
	// Concurrency is each worker process's concurrency. Default 8.
	Concurrency int
	// Rate is R, the sandbox's limit per client certificate and the
	// fleet's configured limit. Default 100.
	Rate float64
	// Latency is the sandbox's latency per call. Default 40ms.
	Latency time.Duration
	// Scenarios to run; default all.
	Scenarios []string
	// Self is the executable re-run as a worker process with --child.
	Self string
	// Progress receives a line per step; nil for none.
	Progress io.Writer

	chaos       *ChaosShape // the integration test's smaller chaos run
	enqueueJobs int         // the integration test's smaller enqueue run
}

// Bench runs scenarios.
type Bench struct {
	opts      Options
	redisAddr string
	rdb       *redis.Client
	quiet     *slog.Logger
}

// Report is the outcome of a run. Its JSON form is what `bench --json`
// prints.
type Report struct {
	Machine   Machine    `json:"machine"`
	Quick     bool       `json:"quick"`
	FleetRate *FleetRate `json:"fleet_rate,omitempty"`
	Adapt     *Adapt     `json:"adapt,omitempty"`
	Outage    *Outage    `json:"outage,omitempty"`
	Overhead  *Overhead  `json:"overhead,omitempty"`
	Enqueue   *Enqueue   `json:"enqueue,omitempty"`
	Chaos     *Chaos     `json:"chaos,omitempty"`
	Seconds   float64    `json:"seconds"`
}

// Machine says where the figures were measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Redis     string `json:"redis"`
	Procs     int    `json:"procs"`
}

func (o *Options) defaults() error {
	if o.Procs == 0 {
		o.Procs = 4
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.Rate == 0 {
		o.Rate = 100
	}
	if o.Latency == 0 {
		o.Latency = 40 * time.Millisecond
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = Scenarios
	}
	for _, s := range o.Scenarios {
		if !contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if o.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		o.Self = self
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run runs the chosen scenarios one after the other.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	b := &Bench{opts: o, quiet: slog.New(slog.NewTextHandler(io.Discard, nil))}
	start := time.Now()
	stopRedis, err := b.startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stopRedis()
	b.rdb = redis.NewClient(&redis.Options{Addr: b.redisAddr})
	defer b.rdb.Close()

	rep := &Report{Quick: o.Quick, Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Redis: b.redisVersion(ctx), Procs: o.Procs}}
	for _, sc := range o.Scenarios {
		b.logf("== %s", sc)
		var err error
		switch sc {
		case ScenarioFleetRate:
			rep.FleetRate, err = b.fleetRate(ctx)
		case ScenarioAdapt:
			rep.Adapt, err = b.adapt(ctx)
		case ScenarioOutage:
			rep.Outage, err = b.outage(ctx)
		case ScenarioOverhead:
			rep.Overhead, err = b.overhead(ctx)
		case ScenarioEnqueue:
			rep.Enqueue, err = b.enqueueScenario(ctx)
		case ScenarioChaos:
			rep.Chaos, err = b.chaos(ctx)
			if err == nil {
				err = rep.Chaos.Failed()
			}
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", sc, err)
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func (b *Bench) logf(format string, args ...any) {
	if b.opts.Progress != nil {
		fmt.Fprintf(b.opts.Progress, "bench: "+format+"\n", args...)
	}
}

// startRedis uses the given Redis or starts a private one.
func (b *Bench) startRedis(ctx context.Context) (stop func(), err error) {
	if b.opts.RedisAddr != "" {
		b.redisAddr = b.opts.RedisAddr
		return func() {}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no redis-server on PATH: install Debian's redis-server, or give --redis HOST:PORT")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "gatewayq-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	}
	c := redis.NewClient(&redis.Options{Addr: b.redisAddr})
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(ctx).Err() == nil {
			break
		}
		if i > 100 {
			stop()
			return nil, fmt.Errorf("private redis-server on %s did not start", b.redisAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.logf("private Redis at %s", b.redisAddr)
	return stop, nil
}

func (b *Bench) redisVersion(ctx context.Context) string {
	info, err := b.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}

// redisCommands is the total number of commands the Redis has processed.
func (b *Bench) redisCommands(ctx context.Context) (int64, error) {
	info, err := b.rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no total_commands_processed in INFO stats")
}
