// Package demo runs gatewayq's whole path on one machine: a Redis (an
// embedded miniredis unless one is given), the built-in IR gateway sandbox
// over real TLS, worker processes' worth of workers, and a realistic batch
// of GST and payday returns plus M2M account look-ups. It is what
// `go run ./cmd/demo` shows a newcomer.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/termui"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/schema"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// Options shape a demo run. The zero value is a sensible demo.
type Options struct {
	// RedisAddr is a Redis to use; "" starts an embedded miniredis.
	RedisAddr string
	// QueuePrefix isolates the demo's queues in a shared Redis.
	QueuePrefix string
	Returns     int     // default 300
	Accounts    int     // default 40
	Workers     int     // in-process workers, default 2
	Concurrency int     // per worker, default 16
	RateRPS     float64 // the fleet's limit (all workers together), default 80
	// SandboxRPS is the sandbox's throttle per client certificate, default
	// 100 (above what the workers are allowed, so nothing is throttled).
	SandboxRPS float64
	Latency    time.Duration // sandbox latency per call, default 30ms
	Timeout    time.Duration // whole run, default 5m
	// Progress receives a progress line while the batch runs; nil for none.
	Progress io.Writer
	Logger   *slog.Logger
}

func (o *Options) defaults() {
	if o.Returns == 0 {
		o.Returns = 300
	}
	if o.Accounts == 0 {
		o.Accounts = 40
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.RateRPS == 0 {
		o.RateRPS = 80
	}
	if o.SandboxRPS == 0 {
		o.SandboxRPS = 100
	}
	if o.Latency == 0 {
		o.Latency = 30 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Summary is the demo's report.
type Summary struct {
	Redis             string         `json:"redis"`
	Jobs              int            `json:"jobs"`
	Enqueued          int            `json:"enqueued"`
	RejectedAtEnqueue int            `json:"rejected_at_enqueue"`
	RejectReasons     map[string]int `json:"rejected_by_reason"`
	Filed             int            `json:"filed"`
	LookedUp          int            `json:"looked_up"`
	Failed            int            `json:"failed"`
	FailedByCause     map[string]int `json:"failed_by_cause"`
	Seconds           float64        `json:"seconds"`
	JobsPerSecond     float64        `json:"jobs_per_second"`
	GatewayCalls      int64          `json:"gateway_calls"`
	Throttled         int64          `json:"throttled"`
	DuplicateFilings  int            `json:"duplicate_filings"`
	// DuplicateAttempts counts Files the sandbox refused as already filed
	// (107, 160): a second send that IR caught.
	DuplicateAttempts int64 `json:"duplicate_attempts"`
	// Expected holds what the batch was built to provoke, to compare with.
	Expected map[string]int `json:"expected"`
	// Batch is the batch's status as `enqueue batch status` shows it, and
	// ReportFailures the first failed lines of its morning report.
	Batch          *batch.Status `json:"batch,omitempty"`
	ReportFailures []batch.Line  `json:"report_failures,omitempty"`
}

// maxReportFailures bounds the report lines the summary shows.
const maxReportFailures = 10

// Run runs the demo and returns its summary.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	log := o.Logger
	sum := &Summary{RejectReasons: map[string]int{}, FailedByCause: map[string]int{}}

	redisAddr := o.RedisAddr
	if redisAddr == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		redisAddr = mr.Addr()
		sum.Redis = "embedded (miniredis)"
	} else {
		sum.Redis = redisAddr
	}

	sb, err := sandbox.New(sandbox.Options{ThrottleRPS: o.SandboxRPS, ThrottleBurst: int(o.SandboxRPS), Latency: o.Latency, LatencyJitter: o.Latency / 2, Logger: log.With("component", "sandbox")})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := sb.Start(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer sb.Close()
	dir, err := os.MkdirTemp("", "gatewayq-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	files, err := sb.PKI().WriteFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("write sandbox PKI: %w", err)
	}

	cfg, err := Config(redisAddr, sb, files, o)
	if err != nil {
		return nil, err
	}

	rdb := redis.NewClient(worker.RedisOptions(cfg.Redis))
	defer rdb.Close()
	store, err := worker.TokenStore(cfg, rdb)
	if err != nil {
		return nil, err
	}
	var tokenSets []string
	users := map[string]string{}
	for i := 1; i <= 5; i++ {
		id, user := fmt.Sprintf("demo-ts-%d", i), fmt.Sprintf("myir-user-%d", i)
		ts := auth.TokenSet{ID: id, AccessToken: sb.IssueToken(user, 8*time.Hour), Expiry: time.Now().Add(8 * time.Hour),
			Endpoint: gatewayclient.EndpointCloud, Scope: "MYIR.Services", User: user, ConsentedAt: time.Now()}
		if err := store.Put(ctx, ts); err != nil {
			return nil, fmt.Errorf("store token set: %w", err)
		}
		tokenSets = append(tokenSets, id)
		users[id] = user
	}

	batchID := "demo-" + time.Now().UTC().Format("20060102T150405")
	gen, denials, err := Generate(GenerateOptions{Returns: o.Returns, Accounts: o.Accounts, TokenSets: tokenSets, Seed: 7, BatchID: batchID, DenyEvery: 25})
	if err != nil {
		return nil, err
	}
	for _, d := range denials {
		sb.Deny(users[d.User], d.Identifier, d.AccountType)
	}
	sum.Jobs = len(gen.Jobs)
	sum.Expected = map[string]int{"permission": gen.Denied, "invalid_period": gen.BadPeriod, "rejected_at_enqueue": gen.BadSchema, "account_lookups": gen.AccountJobs}

	// Workers first, so the batch starts moving while it is enqueued.
	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < o.Workers; i++ {
		w, err := worker.New(worker.Options{Config: cfg, Logger: log.With("worker", i)})
		if err != nil {
			stopWorkers()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(wctx); err != nil {
				log.Error("worker failed", "err", err)
			}
		}()
	}
	defer func() { stopWorkers(); wg.Wait() }()

	start := time.Now()
	enq := worker.Enqueuer(cfg, rdb)
	// The batch's membership, for its status and morning report.
	var members []batch.Member
	for i, j := range gen.Jobs {
		q := tasks.QueueBulk
		if j.Service == gatewayclient.ServiceAccount {
			q = tasks.QueueRealtime // look-ups stand in for event triggers
		}
		res, err := enq.Enqueue(ctx, j, q)
		if err != nil {
			if errors.Is(err, tasks.ErrInvalidJob) {
				sum.RejectedAtEnqueue++
				sum.RejectReasons[rejectReason(err)]++
				members = append(members, batch.Member{Line: i + 1, Refused: err.Error()})
				continue
			}
			return nil, err
		}
		members = append(members, batch.MemberOf(i+1, j, res))
		sum.Enqueued++
	}
	batches := batch.New(rdb, cfg.Redis.KeyPrefix, batch.Options{Retention: cfg.Worker.ReportRetention})
	if err := batches.Record(ctx, batchID, members); err != nil {
		return nil, fmt.Errorf("record the batch: %w", err)
	}

	insp := asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	defer insp.Close()
	queues := []string{tasks.QueueName(o.QueuePrefix, tasks.QueueRealtime), tasks.QueueName(o.QueuePrefix, tasks.QueueBulk)}
	if err := waitDone(ctx, insp, queues, sum.Enqueued, start, o.Progress); err != nil {
		return nil, err
	}
	sum.Seconds = time.Since(start).Seconds()
	if termui.IsTerminal(o.Progress) {
		fmt.Fprintln(o.Progress)
	}

	for _, q := range queues {
		if err := collect(insp, q, sum); err != nil {
			return nil, err
		}
	}
	sum.JobsPerSecond = float64(sum.Enqueued) / sum.Seconds
	bst, err := batches.Status(ctx, batchID)
	if err != nil {
		return nil, fmt.Errorf("batch status: %w", err)
	}
	sum.Batch = &bst
	// The morning report's failed lines: what an operator looks at first.
	err = batches.Report(ctx, batchID, func(l batch.Line) error {
		switch l.Outcome {
		case batch.OutcomeRejected, batch.OutcomeParked, batch.OutcomeUncertain, batch.OutcomeRefused:
			if len(sum.ReportFailures) < maxReportFailures {
				sum.ReportFailures = append(sum.ReportFailures, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("batch report: %w", err)
	}
	st := sb.Stats()
	for _, n := range st.Calls {
		sum.GatewayCalls += n
	}
	sum.Throttled = st.Throttled
	sum.DuplicateFilings = st.DuplicateFilings
	sum.DuplicateAttempts = st.DuplicateAttempts
	return sum, nil
}

// Config is the worker configuration the demo uses against sb.
func Config(redisAddr string, sb *sandbox.Sandbox, files sandbox.PKIFiles, o Options) (*config.Config, error) {
	cfg := config.Default(config.ProfileSandbox)
	cfg.Redis.Addr = redisAddr
	cfg.Redis.QueuePrefix = o.QueuePrefix
	// Each run files its returns with a fresh sandbox: its filing ledger and
	// token sets must not meet an earlier run's in a shared Redis.
	var run [4]byte
	if _, err := rand.Read(run[:]); err != nil {
		return nil, err
	}
	cfg.Redis.KeyPrefix = "gatewayq:demo:" + hex.EncodeToString(run[:]) + ":"
	cfg.Endpoints.Cloud.BaseURL = sb.CloudURL()
	cfg.Endpoints.Desktop.BaseURL = sb.DesktopURL()
	cfg.OAuth.BaseURL = sb.DesktopURL()
	cfg.TLS.ClientCert, cfg.TLS.ClientKey, cfg.TLS.CABundle = files.ClientCert, files.ClientKey, files.CA
	cfg.M2M.SigningKey, cfg.M2M.SigningCert = files.SigningKey, files.SigningCert
	cfg.M2M.Issuer, cfg.M2M.Algorithm = "gatewayq-sandbox", "ES256"
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
	}
	cfg.Tokens.EncryptionKey = base64.StdEncoding.EncodeToString(k[:])
	cfg.Limits.CloudRPS, cfg.Limits.CloudBurst = o.RateRPS, max(1, int(o.RateRPS/20))
	cfg.Worker.Concurrency = o.Concurrency
	cfg.Worker.HealthAddr = "127.0.0.1:0"
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	return cfg, nil
}

func rejectReason(err error) string {
	var ve *schema.ValidationError
	switch {
	case errors.As(err, &ve):
		return "payload fails IR's XSD"
	case errors.Is(err, schema.ErrNotWellFormed):
		return "payload is not well-formed XML"
	}
	return "invalid job"
}

func waitDone(ctx context.Context, insp *asynq.Inspector, queues []string, want int, start time.Time, progress io.Writer) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastLine time.Time
	for {
		var done, failed, pending, retry int
		for _, q := range queues {
			qi, err := insp.GetQueueInfo(q)
			if err != nil {
				if errors.Is(err, asynq.ErrQueueNotFound) {
					continue
				}
				return fmt.Errorf("queue %s: %w", q, err)
			}
			done += qi.Completed
			failed += qi.Archived
			pending += qi.Pending + qi.Active + qi.Scheduled
			retry += qi.Retry
		}
		finished := done+failed >= want && pending+retry == 0
		if progress != nil {
			line := fmt.Sprintf("%s  %d/%d finished (%d done, %d parked), %d queued or running, %d waiting to retry, %.0fs",
				termui.Bar(done+failed, want, 30), done+failed, want, done, failed, pending, retry, time.Since(start).Seconds())
			switch {
			case termui.IsTerminal(progress):
				fmt.Fprint(progress, "\r"+line+" ")
			case finished || time.Since(lastLine) >= 2*time.Second:
				// A log file gets a line every few seconds, not a redraw.
				fmt.Fprintln(progress, line)
				lastLine = time.Now()
			}
		}
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo did not finish: %d of %d jobs done: %w", done+failed, want, ctx.Err())
		case <-tick.C:
		}
	}
}

func collect(insp *asynq.Inspector, q string, sum *Summary) error {
	for page := 1; ; page++ {
		list, err := insp.ListCompletedTasks(q, asynq.PageSize(500), asynq.Page(page))
		if err != nil {
			return err
		}
		for _, t := range list {
			var j tasks.Job
			_ = json.Unmarshal(t.Payload, &j)
			if j.Operation == tasks.OpFile {
				sum.Filed++
			} else {
				sum.LookedUp++
			}
		}
		if len(list) < 500 {
			break
		}
	}
	for page := 1; ; page++ {
		list, err := insp.ListArchivedTasks(q, asynq.PageSize(500), asynq.Page(page))
		if err != nil {
			return err
		}
		for _, t := range list {
			var out tasks.Outcome
			cause := "unknown"
			if json.Unmarshal(t.Result, &out) == nil && out.Class != "" {
				cause = out.Class
				if out.StatusCode != 0 {
					cause = fmt.Sprintf("%s (IR statusCode %d: %s)", out.Class, out.StatusCode, out.ErrorMessage)
				}
			}
			sum.Failed++
			sum.FailedByCause[cause]++
		}
		if len(list) < 500 {
			break
		}
	}
	return nil
}

// Print writes the summary for a person.
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "gatewayq demo — Redis: %s\n\n", s.Redis)
	fmt.Fprintf(w, "  jobs                 %d (%d enqueued, %d rejected at enqueue)\n", s.Jobs, s.Enqueued, s.RejectedAtEnqueue)
	for _, k := range sortedKeys(s.RejectReasons) {
		fmt.Fprintf(w, "    rejected: %-40s %d\n", k, s.RejectReasons[k])
	}
	fmt.Fprintf(w, "  returns filed        %d\n", s.Filed)
	fmt.Fprintf(w, "  account look-ups     %d\n", s.LookedUp)
	fmt.Fprintf(w, "  failed               %d\n", s.Failed)
	for _, k := range sortedKeys(s.FailedByCause) {
		fmt.Fprintf(w, "    %-60s %d\n", k, s.FailedByCause[k])
	}
	fmt.Fprintf(w, "  time                 %.1fs (%.1f jobs/s)\n", s.Seconds, s.JobsPerSecond)
	fmt.Fprintf(w, "  gateway calls        %d\n", s.GatewayCalls)
	fmt.Fprintf(w, "  throttled (HTTP 429) %d\n", s.Throttled)
	fmt.Fprintf(w, "  duplicate filings    %d (second sends refused by IR: %d)\n", s.DuplicateFilings, s.DuplicateAttempts)
	if b := s.Batch; b != nil {
		fmt.Fprintf(w, "\n  batch %s: %d filed, %d done, %d rejected by IR, %d parked, %d uncertain; %d lines refused at enqueue\n",
			b.ID, b.Filed, b.Done, b.Rejected, b.Parked, b.Uncertain, b.Refused)
	}
	if len(s.ReportFailures) > 0 {
		fmt.Fprintln(w, "  its morning report, failed lines (enqueue batch report ID has every line):")
		for _, l := range s.ReportFailures {
			what := l.NaturalKey
			if what == "" {
				what = "-"
			}
			msg := []rune(l.Message)
			if len(msg) > 60 {
				msg = append(msg[:59], '…')
			}
			fmt.Fprintf(w, "    line %-4d %-9s %-40s %-10s %4s  %s\n", l.Line, l.Outcome, what, l.Class, l.StatusCode, string(msg))
		}
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
