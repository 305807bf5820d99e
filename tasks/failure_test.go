package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ratelimit"
)

// recorder is a FailureRecorder that keeps what it is told.
type recorder struct {
	mu sync.Mutex
	fs []Failure
}

func (r *recorder) RecordFailure(_ context.Context, f Failure) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fs = append(r.fs, f)
	return nil
}

func (r *recorder) got() []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Failure(nil), r.fs...)
}

func TestHandlerRecordsParkedJobsOnly(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name      string
		err       error
		wantClass string
		wantCode  int
	}{
		{name: "success records nothing"},
		{name: "parked permission is recorded", err: &gatewayclient.Error{Class: gatewayclient.ClassPermission, Operation: OpFile, StatusCode: 4, Message: "Unauthorised delegation"},
			wantClass: "permission", wantCode: 4},
		{name: "parked invalid is recorded", err: &gatewayclient.Error{Class: gatewayclient.ClassInvalid, Operation: OpFile, StatusCode: 131, Message: "period"},
			wantClass: "invalid", wantCode: 131},
		// Outside asynq there is no retry count: a retryable failure is
		// not final, so nothing is recorded.
		{name: "transient is not final", err: &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: OpFile}},
		{name: "throttled is not final", err: &gatewayclient.Error{Class: gatewayclient.ClassThrottled, Operation: OpFile, HTTPStatus: 429}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			c := &fakeCaller{res: &gatewayclient.Result{GatewayID: "g", SubmissionKey: "1"}, err: tc.err}
			h := &Handler{Client: c, Credentials: fakeCreds{}, Logger: quiet, Budget: Budget{Call: time.Second}, Failures: rec}
			j := gstJob(t)
			j.Batch, j.Ref = "b-1", "ref-1"
			tk := task(t, j)
			_ = h.ProcessTask(context.Background(), tk)
			got := rec.got()
			if tc.wantClass == "" {
				if len(got) != 0 {
					t.Fatalf("recorded %+v, want nothing", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("recorded %d failures, want 1", len(got))
			}
			f := got[0]
			if f.Class != tc.wantClass || f.StatusCode != tc.wantCode || f.Reason == "" || f.Job == nil || f.Job.Batch != "b-1" ||
				f.TaskID != j.ID() || string(f.Payload) != string(tk.Payload()) || f.At.IsZero() {
				t.Fatalf("recorded %+v", f)
			}
		})
	}
}

func TestHandlerRecordsUndecodablePayload(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	h := &Handler{Credentials: fakeCreds{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Failures: rec}
	err := h.ProcessTask(context.Background(), asynq.NewTask(TypeGatewayCall, []byte(`{"oops"`)))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("err %v, want parked", err)
	}
	got := rec.got()
	if len(got) != 1 || got[0].Class != "invalid" || got[0].Job != nil || string(got[0].Payload) != `{"oops"` {
		t.Fatalf("recorded %+v", got)
	}
}

// TestHandlerRecordsExhaustedRetriesUnderAsynq runs the handler in a real
// asynq server: a job failing transiently is recorded once, on the
// attempt asynq archives, with asynq's task ID, queue and retry counts.
func TestHandlerRecordsExhaustedRetriesUnderAsynq(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	queue := r.Queue("bulk")
	rec := &recorder{}
	c := &fakeCaller{err: &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: OpFile, StatusCode: 108, Message: "locked"}}
	h := &Handler{Client: c, Credentials: fakeCreds{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Budget: Budget{Call: time.Second}, Failures: rec}

	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: r.Addr}, asynq.Config{
		Concurrency: 1, Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel,
		IsFailure: IsFailure, RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 0 },
		DelayedTaskCheckInterval: 100 * time.Millisecond,
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeGatewayCall, h)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	j := gstJob(t)
	// MaxRetry 2 is what the Enqueuer gives a budget of one retry.
	tk, err := NewTask(j, asynq.Queue(queue), asynq.MaxRetry(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(tk); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	defer insp.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := insp.GetTaskInfo(queue, j.ID())
		if err == nil && info.State == asynq.TaskStateArchived {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task never archived: %+v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("recorded %d failures over two attempts, want 1 (the last)", len(got))
	}
	f := got[0]
	if f.TaskID != j.ID() || f.Queue != queue || f.Retried != 1 || f.MaxRetry != 1 || f.Class != "retry_later" || f.StatusCode != 108 || f.Reason != "retries ran out (2 failed attempts)" {
		t.Fatalf("recorded %+v", f)
	}
}

// TestNoRetryBudgetKeepsDelays: with no retries allowed (worker.max_retry
// 0), a job delayed by the rate limiter is delayed, not archived, while a
// job that really fails is parked at its first failure with an outcome
// saying its retries ran out. asynq alone would archive both: it archives
// any error once the retry count reaches MaxRetry.
func TestNoRetryBudgetKeepsDelays(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	defer insp.Close()
	enq := NewEnqueuer(client, EnqueueOptions{QueuePrefix: r.Prefix, MaxRetry: NoRetry})

	run := func(queue string, h *Handler) {
		srv := asynq.NewServer(asynq.RedisClientOpt{Addr: r.Addr}, asynq.Config{
			Concurrency: 1, Queues: map[string]int{QueueName(r.Prefix, queue): 1}, LogLevel: asynq.FatalLevel,
			IsFailure: IsFailure, RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 0 },
			DelayedTaskCheckInterval: 100 * time.Millisecond,
		})
		mux := asynq.NewServeMux()
		mux.Handle(TypeGatewayCall, h)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
	delayed := &countingLimiter{}
	run(QueueBulk, &Handler{Client: &fakeCaller{}, Credentials: fakeCreds{}, Limiter: delayed, Logger: quiet, Budget: Budget{Call: time.Second}})
	failing := &fakeCaller{err: &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: OpFile, StatusCode: 108, Message: "locked"}}
	run(QueueRealtime, &Handler{Client: failing, Credentials: fakeCreds{}, Logger: quiet, Budget: Budget{Call: time.Second}})

	j := gstJob(t)
	if _, err := enq.Enqueue(ctx, j, QueueBulk); err != nil {
		t.Fatal(err)
	}
	if _, err := enq.Enqueue(ctx, j, QueueRealtime); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := insp.GetTaskInfo(QueueName(r.Prefix, QueueRealtime), j.ID())
		if err == nil && info.State == asynq.TaskStateArchived {
			var o Outcome
			if jerr := json.Unmarshal(info.Result, &o); jerr != nil || o.Class != "retry_later" || o.Reason != "retries ran out (1 failed attempt)" || o.StatusCode != 108 {
				t.Fatalf("failing job archived with outcome %+v (%v)", o, jerr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failing job never archived: %+v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for delayed.calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("delayed job tried only %d times", delayed.calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	info, err := insp.GetTaskInfo(QueueName(r.Prefix, QueueBulk), j.ID())
	if err != nil || info.State == asynq.TaskStateArchived || info.Retried != 0 {
		t.Fatalf("delayed job: %+v %v; want it waiting, not archived, no retry spent", info, err)
	}
}

// countingLimiter refuses every permit for a moment, counting the asks.
type countingLimiter struct{ calls atomic.Int32 }

func (l *countingLimiter) Acquire(context.Context, string, ratelimit.Priority, time.Duration) (*ratelimit.Permit, error) {
	l.calls.Add(1)
	return nil, &ratelimit.DelayError{Key: "cloud", RetryIn: 10 * time.Millisecond, Reason: "rate"}
}

func (l *countingLimiter) Throttled(context.Context, string, time.Duration) error { return nil }
