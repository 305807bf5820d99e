package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// world is one test's Redis, queues and stores.
type world struct {
	t      *testing.T
	r      *redistest.Redis
	client *asynq.Client
	insp   *asynq.Inspector
	store  *Store
	ledger *ledger.Ledger
	index  *failures.Index
	// idle holds tasks nobody runs; work is served by a server that
	// completes tasks, or fails those whose ID starts with "retry".
	idle, work string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	r := redistest.New(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr}
	w := &world{t: t, r: r, client: asynq.NewClient(opt), insp: asynq.NewInspector(opt),
		store: New(r.Client, r.Prefix, Options{}), ledger: ledger.New(r.Client, r.Prefix),
		index: failures.New(r.Client, r.Prefix, failures.Options{}), idle: r.Queue("bulk"), work: r.Queue("work")}
	t.Cleanup(func() { _ = w.client.Close(); _ = w.insp.Close() })
	return w
}

// enqueue puts a task with id on queue; opts may schedule it.
func (w *world) enqueue(queue, id string, opts ...asynq.Option) {
	w.t.Helper()
	opts = append([]asynq.Option{asynq.Queue(queue), asynq.TaskID(id), asynq.Retention(time.Hour), asynq.MaxRetry(5)}, opts...)
	if _, err := w.client.Enqueue(asynq.NewTask(tasks.TypeGatewayCall, []byte(`{}`), opts...)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) archive(queue, id string) {
	w.t.Helper()
	w.enqueue(queue, id)
	if err := w.insp.ArchiveTask(queue, id); err != nil {
		w.t.Fatal(err)
	}
}

// serve runs the work queue until the tasks named reach their states.
func (w *world) serve(want map[string]asynq.TaskState) {
	w.t.Helper()
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: w.r.Addr}, asynq.Config{
		Concurrency: 2, Queues: map[string]int{w.work: 1}, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeGatewayCall, func(ctx context.Context, t *asynq.Task) error {
		if id, _ := asynq.GetTaskID(ctx); strings.HasPrefix(id, "retry") {
			return errors.New("transient")
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		w.t.Fatal(err)
	}
	defer srv.Shutdown()
	deadline := time.Now().Add(time.Minute)
	for id, st := range want {
		for {
			info, err := w.insp.GetTaskInfo(w.work, id)
			if err == nil && info.State == st {
				break
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("task %s never reached %s: %+v %v", id, st, info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (w *world) filed(key, task, gw, sk string) {
	w.t.Helper()
	ctx := w.t.Context()
	if _, err := w.ledger.BeginSend(ctx, key, task, "h"); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.ledger.Filed(ctx, key, task, ledger.Filing{GatewayID: gw, SubmissionKey: sk}); err != nil {
		w.t.Fatal(err)
	}
}

// seedBatch builds a batch with one member in each situation a morning
// report meets.
func seedBatch(t *testing.T, w *world) {
	ctx := t.Context()
	var ms []Member
	add := func(m Member) { m.Line = len(ms) + 1; ms = append(ms, m) }
	file := func(id, queue, key string) Member {
		return Member{TaskID: id, Queue: queue, Operation: tasks.OpFile, Key: key, LedgerKey: key, Ref: "ref-" + id}
	}

	w.enqueue(w.work, "t-filed")
	w.enqueue(w.work, "t-lookup")
	w.enqueue(w.work, "retry-1")
	w.serve(map[string]asynq.TaskState{"t-filed": asynq.TaskStateCompleted, "t-lookup": asynq.TaskStateCompleted, "retry-1": asynq.TaskStateRetry})
	w.filed("GST/1/GST/2026-09-30", "t-filed", "GW-1", "SK-1")
	add(file("t-filed", w.work, "GST/1/GST/2026-09-30"))                             // 1 filed
	add(Member{TaskID: "t-lookup", Queue: w.work, Operation: "list", Ref: "acct-1"}) // 2 done
	w.enqueue(w.idle, "t-pending")
	add(file("t-pending", w.idle, "GST/3/GST/2026-09-30")) // 3 pending
	w.enqueue(w.idle, "t-sched", asynq.ProcessIn(time.Hour))
	add(file("t-sched", w.idle, "GST/4/GST/2026-09-30")) // 4 scheduled
	add(file("retry-1", w.work, "GST/5/GST/2026-09-30")) // 5 retry

	// 6 rejected by IR (permission), archived, in the ledger and the index.
	w.archive(w.idle, "t-perm")
	if _, err := w.ledger.BeginSend(ctx, "GST/6/GST/2026-09-30", "t-perm", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ledger.Rejected(ctx, "GST/6/GST/2026-09-30", "t-perm", ledger.Rejection{Class: "permission", Code: "4", Message: "Unauthorised delegation"}); err != nil {
		t.Fatal(err)
	}
	put := func(r failures.Record) {
		if err := w.index.Put(ctx, r, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	put(failures.Record{TaskID: "t-perm", Queue: w.idle, Class: "permission", StatusCode: 4, Message: "Unauthorised delegation"})
	add(file("t-perm", w.idle, "GST/6/GST/2026-09-30"))
	// 7 parked: needs re-consent.
	w.archive(w.idle, "t-auth")
	put(failures.Record{TaskID: "t-auth", Queue: w.idle, Class: "auth", Reason: "needs re-consent"})
	add(file("t-auth", w.idle, "GST/7/GST/2026-09-30"))
	// 8 uncertain: the ledger says so too.
	w.archive(w.idle, "t-unc")
	if _, err := w.ledger.BeginSend(ctx, "GST/8/GST/2026-09-30", "t-unc", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ledger.Uncertain(ctx, "GST/8/GST/2026-09-30", "t-unc", "deadline after sending"); err != nil {
		t.Fatal(err)
	}
	put(failures.Record{TaskID: "t-unc", Queue: w.idle, Class: "uncertain", Reason: "reconcile"})
	add(file("t-unc", w.idle, "GST/8/GST/2026-09-30"))
	// 9 refused at enqueue.
	add(Member{Refused: "body: payload fails IR's XSD"})
	// 10 archived by asynq with no record anywhere.
	w.archive(w.idle, "t-bare")
	add(file("t-bare", w.idle, "GST/10/GST/2026-09-30"))
	// 11 gone from asynq, unknown to all.
	add(file("t-gone", w.idle, "GST/11/GST/2026-09-30"))
	// 12 still queued, but its return is filed (by another job): filed.
	w.enqueue(w.idle, "t-dup")
	w.filed("GST/12/GST/2026-09-30", "t-other", "GW-12", "SK-12")
	add(file("t-dup", w.idle, "GST/12/GST/2026-09-30"))
	// 13 re-driven: its archived copy is gone, it waits on the redrive queue.
	w.enqueue(w.r.Queue("redrive"), "t-moved")
	add(file("t-moved", w.idle, "GST/13/GST/2026-09-30"))

	// Recorded in two calls, the second repeating a member: harmless.
	if err := w.store.Record(ctx, "b-1", ms[:7]); err != nil {
		t.Fatal(err)
	}
	if err := w.store.Record(ctx, "b-1", ms[6:]); err != nil {
		t.Fatal(err)
	}
	if err := w.store.Move(ctx, "b-1", "t-moved", Location{Queue: w.r.Queue("redrive"), TaskID: "t-moved"}); err != nil {
		t.Fatal(err)
	}
}

func TestStatusAndReport(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	seedBatch(t, w)
	ctx := t.Context()

	st, err := w.store.Status(ctx, "b-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Status{ID: "b-1", CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt, Lines: 13, Jobs: 12, Refused: 1,
		Pending: 2, Scheduled: 1, Retry: 1, Filed: 2, Done: 1, Rejected: 1, Parked: 2, Uncertain: 1, Unknown: 1,
		FailedByClass: map[string]int{"permission": 1, "auth": 1, "uncertain": 1, "unknown": 1},
		Finished:      8, Progress: 66.6}
	gotJSON, _ := json.Marshal(st)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("status\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	if st.CreatedAt.IsZero() || st.Complete {
		t.Fatalf("created %v, complete %v", st.CreatedAt, st.Complete)
	}

	var buf bytes.Buffer
	cw, _ := NewWriter(&buf, FormatCSV)
	var lines []Line
	if err := w.store.Report(ctx, "b-1", func(l Line) error { lines = append(lines, l); return cw.Write(l) }); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	outcomes := make([]string, len(lines))
	for i, l := range lines {
		outcomes[i] = string(l.Outcome)
	}
	if got := strings.Join(outcomes, " "); got != "filed done pending scheduled retry rejected parked uncertain refused parked unknown filed pending" {
		t.Fatalf("outcomes in line order: %s", got)
	}
	csv := buf.String()
	for _, want := range []string{
		"line,natural_key,ref,task_id,outcome,class,gateway_id,submission_key,status_code,message\n",
		"1,GST/1/GST/2026-09-30,ref-t-filed,t-filed,filed,,GW-1,SK-1,0,\n",
		"2,,acct-1,t-lookup,done,,,,0,\n",
		"6,GST/6/GST/2026-09-30,ref-t-perm,t-perm,rejected,permission,,,4,Unauthorised delegation\n",
		"7,GST/7/GST/2026-09-30,ref-t-auth,t-auth,parked,auth,,,,needs re-consent\n",
		"9,,,,refused,,,,,body: payload fails IR's XSD\n",
		"10,GST/10/GST/2026-09-30,ref-t-bare,t-bare,parked,,,,,archived without a recorded outcome\n",
		"12,GST/12/GST/2026-09-30,ref-t-dup,t-dup,filed,,GW-12,SK-12,0,\n",
	} {
		if !strings.Contains(csv, want) {
			t.Errorf("CSV lacks %q:\n%s", want, csv)
		}
	}

	buf.Reset()
	jw, _ := NewWriter(&buf, FormatJSON)
	for _, l := range lines[:2] {
		_ = jw.Write(l)
	}
	if got := buf.String(); got != `{"line":1,"natural_key":"GST/1/GST/2026-09-30","ref":"ref-t-filed","task_id":"t-filed","outcome":"filed","gateway_id":"GW-1","submission_key":"SK-1","status_code":"0"}`+"\n"+
		`{"line":2,"ref":"acct-1","task_id":"t-lookup","outcome":"done","status_code":"0"}`+"\n" {
		t.Errorf("JSON lines:\n%s", got)
	}
	if _, err := NewWriter(&buf, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestUnknownBatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.store.Status(ctx, "b-none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status of an unknown batch: %v", err)
	}
	if err := w.store.Report(ctx, "b-none", func(Line) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("report of an unknown batch: %v", err)
	}
	if _, err := w.store.Status(ctx, "b}bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status of a malformed ID: %v", err)
	}
	if err := w.store.Record(ctx, "b}bad", []Member{{TaskID: "x"}}); err == nil {
		t.Fatal("recorded under a malformed batch ID")
	}
}

func TestListAndRetention(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC)
	s := New(w.r.Client, w.r.Prefix, Options{Retention: 48 * time.Hour, Now: func() time.Time { return now }})
	for i, id := range []string{"b-old", "b-mid", "b-new"} {
		now = now.Add(time.Duration(i) * 24 * time.Hour)
		if err := s.Record(ctx, id, []Member{{Line: 1, TaskID: "t"}}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "b-new" || list[1].ID != "b-mid" {
		t.Fatalf("list %+v: want b-new, b-mid (b-old is past the retention)", list)
	}
	ttl, err := w.r.Client.TTL(ctx, s.key("b-new", "jobs")).Result()
	if err != nil || ttl <= 47*time.Hour || ttl > 48*time.Hour {
		t.Fatalf("batch keys expire in %s (%v), want the retention", ttl, err)
	}
}

// TestAsynqTaskKey checks the key and field the status reads against
// asynq's Inspector, so an asynq upgrade that moves them fails here.
func TestAsynqTaskKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.enqueue(w.idle, "t-1", asynq.ProcessIn(time.Hour))
	w.archive(w.idle, "t-2")
	for _, id := range []string{"t-1", "t-2"} {
		info, err := w.insp.GetTaskInfo(w.idle, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.r.Client.HGet(t.Context(), asynqTaskKey(w.idle, id), "state").Result()
		if err != nil || got != info.State.String() {
			t.Errorf("%s: state %q (%v) at %s, asynq says %s", id, got, err, asynqTaskKey(w.idle, id), info.State)
		}
	}
}
