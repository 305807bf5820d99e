package failures_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/tasks"
)

var t0 = time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC)

// seed writes a spread of failures: two batches, three classes, two
// queues, an hour apart each.
func seed(t *testing.T, x *failures.Index) []failures.Record {
	t.Helper()
	recs := []failures.Record{
		{TaskID: "t1", Queue: "q:bulk", Batch: "b-1", Class: "permission", StatusCode: 4, Identifier: "123000001", Key: "GST/123000001/GST/2026-09-30"},
		{TaskID: "t2", Queue: "q:bulk", Batch: "b-1", Class: "permission", StatusCode: 4, Identifier: "123000002"},
		{TaskID: "t3", Queue: "q:bulk", Batch: "b-1", Class: "invalid", StatusCode: 131, Identifier: "123000003"},
		{TaskID: "t4", Queue: "q:realtime", Batch: "b-2", Class: "invalid", Code: "EV1100"},
		{TaskID: "t5", Queue: "q:bulk", Batch: "b-2", Class: "uncertain", Identifier: "123000001"},
	}
	for i := range recs {
		recs[i].At = t0.Add(time.Duration(i) * time.Hour)
		if err := x.Put(t.Context(), recs[i], []byte(`{"n":`+fmt.Sprint(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

func ids(recs []failures.Record) string {
	s := ""
	for _, r := range recs {
		s += r.TaskID + " "
	}
	return s
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	x := failures.New(r.Client, r.Prefix, failures.Options{Now: func() time.Time { return t0.Add(24 * time.Hour) }})
	seed(t, x)
	tests := []struct {
		name string
		f    failures.Filter
		want string
	}{
		{"everything, oldest first", failures.Filter{}, "t1 t2 t3 t4 t5 "},
		{"queue", failures.Filter{Queue: "q:realtime"}, "t4 "},
		{"batch", failures.Filter{Batch: "b-1"}, "t1 t2 t3 "},
		{"class", failures.Filter{Class: "invalid"}, "t3 t4 "},
		{"status code", failures.Filter{Code: "4"}, "t1 t2 "},
		{"REST code, any case", failures.Filter{Code: "ev1100"}, "t4 "},
		{"identifier", failures.Filter{Identifier: "123000001"}, "t1 t5 "},
		{"task", failures.Filter{TaskID: "t3"}, "t3 "},
		{"since", failures.Filter{Since: t0.Add(3 * time.Hour)}, "t4 t5 "},
		{"until", failures.Filter{Until: t0.Add(time.Hour)}, "t1 t2 "},
		{"window and class", failures.Filter{Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour), Class: "invalid"}, "t3 t4 "},
		{"no match", failures.Filter{Batch: "b-1", Class: "uncertain"}, ""},
		{"other states only", failures.Filter{States: []failures.State{failures.StateRedriven}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := x.List(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != tc.want {
				t.Errorf("List(%s) = %q, want %q", tc.f, ids(got), tc.want)
			}
		})
	}
}

func TestSettleIsCompareAndSet(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := t.Context()
	x := failures.New(r.Client, r.Prefix, failures.Options{})
	seed(t, x)
	seen, err := x.Get(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	// The job fails again before the re-drive marks it: its new failure
	// must not be overwritten.
	again := seen
	again.At, again.Retried = seen.At.Add(time.Minute), 1
	if err := x.Put(ctx, again, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := x.Settle(ctx, seen, failures.StateRedriven, failures.Settlement{Run: "r-1"}); !errors.Is(err, failures.ErrChanged) {
		t.Fatalf("settling a changed record: %v, want ErrChanged", err)
	}
	cur, _ := x.Get(ctx, "t1")
	if cur.State != failures.StateFailed || cur.Retried != 1 {
		t.Fatalf("record %+v: the new failure was lost", cur)
	}
	if err := x.Settle(ctx, cur, failures.StateRedriven, failures.Settlement{Run: "r-2", Queue: "q:redrive", TaskID: "t1"}); err != nil {
		t.Fatal(err)
	}
	got, _ := x.Get(ctx, "t1")
	if got.State != failures.StateRedriven || got.Settled == nil || got.Settled.Run != "r-2" {
		t.Fatalf("settled record %+v", got)
	}
	if err := x.Settle(ctx, cur, failures.StateResolved, failures.Settlement{Run: "r-3"}); !errors.Is(err, failures.ErrChanged) {
		t.Fatalf("second settle of the same read: %v, want ErrChanged", err)
	}
	// Settled records leave the default listing, and show with their state.
	if got, _ := x.List(ctx, failures.Filter{TaskID: "t1"}); len(got) != 0 {
		t.Fatalf("re-driven record still listed as failed: %v", ids(got))
	}
	if got, _ := x.List(ctx, failures.Filter{TaskID: "t1", States: []failures.State{failures.StateRedriven}}); len(got) != 1 {
		t.Fatal("re-driven record not listed by its state")
	}
	if _, err := x.Get(ctx, "nope"); !errors.Is(err, failures.ErrNotFound) {
		t.Fatalf("Get of an unknown task: %v", err)
	}
}

func TestRetentionTrimsAndHides(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := t.Context()
	now := t0
	x := failures.New(r.Client, r.Prefix, failures.Options{Retention: 48 * time.Hour, Now: func() time.Time { return now }})
	seed(t, x)                                   // t0 .. t0+4h
	now = t0.Add(48*time.Hour + 150*time.Minute) // t1, t2, t3 are past the retention
	got, err := x.List(ctx, failures.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if ids(got) != "t4 t5 " {
		t.Fatalf("listed %q past the retention, want only t4 t5", ids(got))
	}
	if _, err := x.Payload(ctx, "t1"); err != nil {
		t.Fatalf("before any write t1's payload is still there (trimming happens on writes): %v", err)
	}
	if err := x.Put(ctx, failures.Record{TaskID: "t6", Class: "auth", At: now}, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2", "t3"} {
		if _, err := x.Get(ctx, id); !errors.Is(err, failures.ErrNotFound) {
			t.Errorf("%s not trimmed by the next write: %v", id, err)
		}
		if _, err := x.Payload(ctx, id); !errors.Is(err, failures.ErrNotFound) {
			t.Errorf("%s's payload not trimmed: %v", id, err)
		}
	}
	if p, err := x.Payload(ctx, "t5"); err != nil || string(p) != `{"n":4}` {
		t.Fatalf("t5's payload %q, %v", p, err)
	}
}

func TestRecordFailureFromHandler(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := t.Context()
	x := failures.New(r.Client, r.Prefix, failures.Options{})
	j := &tasks.Job{Service: "returns", Operation: tasks.OpFile, Batch: "b-9", Ref: "r-1",
		Key: &tasks.NaturalKey{Identifier: "123039858", AccountType: "GST", PeriodEndDate: "2017-07-31", MajorFormType: "GST"}}
	f := tasks.Failure{TaskID: "task-1", Queue: "q:bulk", Class: "permission", Reason: "grant it in myIR", StatusCode: 4,
		Message: "Unauthorised delegation", Job: j, Payload: []byte(`{"body":"x"}`), At: t0}
	if err := x.RecordFailure(ctx, f); err != nil {
		t.Fatal(err)
	}
	got, err := x.Get(ctx, "task-1")
	if err != nil {
		t.Fatal(err)
	}
	want := failures.Record{TaskID: "task-1", Queue: "q:bulk", Batch: "b-9", Service: "returns", Operation: "File", Key: "GST/123039858/GST/2017-07-31",
		LedgerKey: "GST/123039858/GST/2017-07-31", Identifier: "123039858", Ref: "r-1", Class: "permission", Reason: "grant it in myIR",
		StatusCode: 4, Message: "Unauthorised delegation", At: t0, State: failures.StateFailed}
	if fmt.Sprintf("%+v", stripRaw(got)) != fmt.Sprintf("%+v", want) {
		t.Fatalf("record\n%+v\nwant\n%+v", got, want)
	}
	if got.Cause() != "permission (code 4)" {
		t.Errorf("cause %q", got.Cause())
	}
	if p, _ := x.Payload(ctx, "task-1"); string(p) != `{"body":"x"}` {
		t.Errorf("payload %q", p)
	}
	if err := x.RecordFailure(ctx, tasks.Failure{}); err == nil {
		t.Error("a failure without a task ID was recorded")
	}
}

// stripRaw drops the unexported copy of the stored JSON for comparison.
func stripRaw(r failures.Record) failures.Record {
	var out failures.Record
	out.TaskID, out.Queue, out.Batch, out.Service, out.Operation = r.TaskID, r.Queue, r.Batch, r.Service, r.Operation
	out.Key, out.LedgerKey, out.Identifier, out.Ref, out.Class, out.Reason = r.Key, r.LedgerKey, r.Identifier, r.Ref, r.Class, r.Reason
	out.StatusCode, out.Code, out.Message, out.Err, out.Retried, out.MaxRetry = r.StatusCode, r.Code, r.Message, r.Err, r.Retried, r.MaxRetry
	out.At, out.State, out.Settled, out.FromArchive = r.At, r.State, r.Settled, r.FromArchive
	return out
}

func TestFilterString(t *testing.T) {
	t.Parallel()
	f := failures.Filter{Batch: "b-1", Class: "permission", Since: t0}
	if got := f.String(); got != "batch=b-1 class=permission since=2026-11-25T02:30:00Z" {
		t.Errorf("String() = %q", got)
	}
	if got := (failures.Filter{}).String(); got != "(every failure)" {
		t.Errorf("zero String() = %q", got)
	}
	if (failures.Filter{}).Selects() || !f.Selects() {
		t.Error("Selects is wrong")
	}
}
