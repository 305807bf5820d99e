package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
)

const key = "GST/123039858/GST/2017-07-31"

func setup(t *testing.T) (*ledger.Ledger, *redistest.Redis) {
	t.Helper()
	r := redistest.New(t)
	clock := time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)
	return ledger.New(r.Client, r.Prefix, ledger.WithClock(func() time.Time { return clock })), r
}

func TestBeginSendConcurrentExactlyOneWins(t *testing.T) {
	t.Parallel()
	l, _ := setup(t)
	ctx := context.Background()
	const n = 64
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		won      []string
		refusals int
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			task := fmt.Sprintf("task-%d", i)
			_, err := l.BeginSend(ctx, key, task, "h")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, task)
			case errors.Is(err, ledger.ErrMustReconcile):
				refusals++
			default:
				t.Errorf("%s: %v", task, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(won) != 1 || refusals != n-1 {
		t.Fatalf("%d winners (%v), %d refused: want exactly one winner", len(won), won, refusals)
	}
	e, err := l.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != ledger.StateSending || e.TaskID != won[0] || e.Attempts != 1 {
		t.Fatalf("entry %+v, want sending by %s, attempt 1", e, won[0])
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type step struct {
		do      func(l *ledger.Ledger) (ledger.Entry, error)
		wantErr error
		want    ledger.State
	}
	queued := func(task string) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) { return l.Queued(ctx, key, task, "h1") }
	}
	begin := func(task string) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) { return l.BeginSend(ctx, key, task, "h1") }
	}
	filed := func(task string) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) {
			return l.Filed(ctx, key, task, ledger.Filing{GatewayID: "0000 002G M22W 9", SubmissionKey: "235067864"})
		}
	}
	rejected := func(task string) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) {
			return l.Rejected(ctx, key, task, ledger.Rejection{Class: "invalid", Code: "131", Message: "bad period"})
		}
	}
	uncertain := func(task string) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) { return l.Uncertain(ctx, key, task, "deadline") }
	}
	release := func(task string) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) { return l.Release(ctx, key, task) }
	}
	reopen := func(seenAttempts int) func(*ledger.Ledger) (ledger.Entry, error) {
		return func(l *ledger.Ledger) (ledger.Entry, error) {
			return l.Reopen(ctx, key, "r", ledger.Entry{Attempts: seenAttempts})
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"queue, send, file", []step{{do: queued("a"), want: ledger.StateQueued}, {do: begin("a"), want: ledger.StateSending}, {do: filed("a"), want: ledger.StateFiled}}},
		{"filed refuses queue and send", []step{{do: begin("a"), want: ledger.StateSending}, {do: filed("a"), want: ledger.StateFiled},
			{do: queued("b"), wantErr: ledger.ErrFiled, want: ledger.StateFiled}, {do: begin("b"), wantErr: ledger.ErrFiled, want: ledger.StateFiled},
			{do: uncertain("b"), wantErr: ledger.ErrFiled, want: ledger.StateFiled}}},
		{"sending refuses a second send, even by the same task", []step{{do: begin("a"), want: ledger.StateSending},
			{do: begin("a"), wantErr: ledger.ErrMustReconcile, want: ledger.StateSending}, {do: queued("a"), wantErr: ledger.ErrMustReconcile, want: ledger.StateSending}}},
		{"uncertain refuses until reopened", []step{{do: begin("a"), want: ledger.StateSending}, {do: uncertain("a"), want: ledger.StateUncertain},
			{do: begin("a"), wantErr: ledger.ErrMustReconcile, want: ledger.StateUncertain}, {do: reopen(1), want: ledger.StateQueued}, {do: begin("a"), want: ledger.StateSending}}},
		{"reopen refuses when another attempt began since", []step{{do: begin("a"), want: ledger.StateSending}, {do: reopen(0), wantErr: ledger.ErrConflict, want: ledger.StateSending}}},
		{"reconciliation files an uncertain entry", []step{{do: begin("a"), want: ledger.StateSending}, {do: uncertain("a"), want: ledger.StateUncertain}, {do: filed("r"), want: ledger.StateFiled}}},
		{"rejected may be sent again", []step{{do: begin("a"), want: ledger.StateSending}, {do: rejected("a"), want: ledger.StateRejected}, {do: begin("b"), want: ledger.StateSending}}},
		{"only the sender rejects or releases", []step{{do: begin("a"), want: ledger.StateSending}, {do: rejected("b"), wantErr: ledger.ErrConflict, want: ledger.StateSending},
			{do: release("b"), wantErr: ledger.ErrConflict, want: ledger.StateSending}, {do: release("a"), want: ledger.StateQueued}}},
		{"reject needs a send", []step{{do: rejected("a"), wantErr: ledger.ErrConflict}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, _ := setup(t)
			for i, s := range tt.steps {
				e, err := s.do(l)
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
					t.Fatalf("step %d: err %v, want %v", i, err, s.wantErr)
				}
				if e.State != s.want {
					t.Fatalf("step %d: state %q, want %q (%+v)", i, e.State, s.want, e)
				}
			}
		})
	}
}

func TestEntryRecordsTheSend(t *testing.T) {
	t.Parallel()
	l, r := setup(t)
	ctx := context.Background()
	if _, err := l.Get(ctx, key); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Get of nothing: %v", err)
	}
	if _, err := l.BeginSend(ctx, key, "t1", "abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Rejected(ctx, key, "t1", ledger.Rejection{Class: "permission", Code: "4", Message: "Unauthorised Delegation"}); err != nil {
		t.Fatal(err)
	}
	e, err := l.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if e.Class != "permission" || e.Code != "4" || e.Attempts != 1 || e.BodyHash != "abc" || e.CreatedAt.IsZero() || e.SendingAt.IsZero() {
		t.Fatalf("rejected entry %+v", e)
	}
	e, err = l.BeginSend(ctx, key, "t2", "def")
	if err != nil {
		t.Fatal(err)
	}
	if e.Class != "" || e.Attempts != 2 || e.TaskID != "t2" || e.BodyHash != "def" {
		t.Fatalf("second send %+v: rejection must be cleared, attempt 2", e)
	}
	e, err = l.Filed(ctx, key, "t2", ledger.Filing{GatewayID: "G", SubmissionKey: "S"})
	if err != nil {
		t.Fatal(err)
	}
	// A later reconciliation that learns no gateway ID keeps the one known.
	e, err = l.Filed(ctx, key, "t3", ledger.Filing{SubmissionKey: "S", Reconciled: true})
	if err != nil || e.GatewayID != "G" || e.SubmissionKey != "S" || !e.Reconciled || e.FiledAt.IsZero() {
		t.Fatalf("re-filed %+v, %v", e, err)
	}
	ttl, err := r.Client.TTL(ctx, l.RedisKey(key)).Result()
	if err != nil || ttl != -1 {
		t.Fatalf("TTL %v (%v): entries must not expire", ttl, err)
	}
}

func TestListByState(t *testing.T) {
	t.Parallel()
	l, _ := setup(t)
	ctx := context.Background()
	want := map[ledger.State]int{}
	for i := range 25 {
		k := fmt.Sprintf("GST/1230%05d/GST/2026-09-30", i)
		if _, err := l.BeginSend(ctx, k, "t", "h"); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			_, _ = l.Filed(ctx, k, "t", ledger.Filing{SubmissionKey: fmt.Sprint(i)})
			want[ledger.StateFiled]++
		case 1:
			_, _ = l.Uncertain(ctx, k, "t", "lost")
			want[ledger.StateUncertain]++
		default:
			want[ledger.StateSending]++
		}
	}
	for state, n := range want {
		seen := map[string]bool{}
		var cursor uint64
		for {
			page, next, err := l.List(ctx, state, cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				if e.State != state {
					t.Fatalf("listed %s entry %s as %s", e.State, e.Key, state)
				}
				seen[e.Key] = true
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		if len(seen) != n {
			t.Errorf("%s: listed %d, want %d", state, len(seen), n)
		}
	}
	if _, _, err := l.List(ctx, "lost", 0, 10); err == nil {
		t.Fatal("List accepted an unknown state")
	}
}

// TestMarkQueued: a batch of marks creates new entries and refreshes
// queued ones in one call, and leaves filed, in-flight and rejected
// entries as they are (a worker's outcome stands).
func TestMarkQueued(t *testing.T) {
	t.Parallel()
	l, _ := setup(t)
	ctx := context.Background()
	if _, err := l.Queued(ctx, "queued", "t0", "h0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginSend(ctx, "sending", "t0", "h0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginSend(ctx, "filed", "t0", "h0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Filed(ctx, "filed", "t0", ledger.Filing{SubmissionKey: "S"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginSend(ctx, "rejected", "t0", "h0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Rejected(ctx, "rejected", "t0", ledger.Rejection{Class: "permission", Code: "4"}); err != nil {
		t.Fatal(err)
	}
	var marks []ledger.Mark
	for _, k := range []string{"new-1", "new-2", "queued", "sending", "filed", "rejected"} {
		marks = append(marks, ledger.Mark{Key: k, TaskID: "t1", BodyHash: "h1"})
	}
	n, err := l.MarkQueued(ctx, marks)
	if err != nil || n != 3 {
		t.Fatalf("MarkQueued = %d, %v; want 3 recorded", n, err)
	}
	want := map[string]ledger.State{"new-1": ledger.StateQueued, "new-2": ledger.StateQueued, "queued": ledger.StateQueued,
		"sending": ledger.StateSending, "filed": ledger.StateFiled, "rejected": ledger.StateRejected}
	for k, st := range want {
		e, err := l.Get(ctx, k)
		if err != nil || e.State != st {
			t.Errorf("%s: %+v, %v; want %s", k, e, err, st)
		}
		if st == ledger.StateQueued && e.TaskID != "t1" {
			t.Errorf("%s: task %s, want the mark's t1", k, e.TaskID)
		}
	}
	s, err := l.Stats(ctx)
	if err != nil || s.Entries[ledger.StateQueued] != 3 {
		t.Fatalf("stats %v, %v; want 3 queued", s.Entries, err)
	}
	if n, err := l.MarkQueued(ctx, []ledger.Mark{{Key: "", TaskID: "t"}}); n != 0 || err == nil {
		t.Fatalf("an empty key: %d, %v", n, err)
	}
}
