package jobfile_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// TestEnqueueRecordsTheBatch: every enqueued job, duplicate and refused
// line is recorded with its line number, so the batch's status and report
// cover the whole file, in file order.
func TestEnqueueRecordsTheBatch(t *testing.T) {
	t.Parallel()
	r, enq, _ := setup(t)
	store := batch.New(r.Client, r.Prefix, batch.Options{})
	lines, good := mixedFile(t, 300) // more than one recording round trip
	path := writeFile(t, lines)
	ctx := t.Context()

	run := func() jobfile.Report {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rep, err := jobfile.Enqueue(ctx, f, enq, jobfile.EnqueueOptions{Batch: "b-rec", Recorder: store})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	run()
	st, err := store.Status(ctx, "b-rec")
	if err != nil {
		t.Fatal(err)
	}
	if st.Jobs != good || st.Pending != good || st.Refused != len(lines)-good || st.Lines != len(lines) || st.Progress != 0 {
		t.Fatalf("status %+v: want %d pending jobs and %d refused lines", st, good, len(lines)-good)
	}

	// Running the file again (duplicates) records nothing new.
	if rep := run(); rep.Duplicates != good {
		t.Fatalf("re-run: %d duplicates, want %d", rep.Duplicates, good)
	}
	ids := taskIDs(t, lines)
	n := 0
	err = store.Report(ctx, "b-rec", func(l batch.Line) error {
		n++
		if l.Line != n {
			t.Fatalf("report line %d at position %d: not in file order", l.Line, n)
		}
		switch id, ok := ids[l.Line]; {
		case ok && (l.TaskID != id || l.Outcome != batch.OutcomePending || l.NaturalKey == ""):
			t.Fatalf("line %d: %+v, want pending task %s", l.Line, l, id)
		case !ok && (l.Outcome != batch.OutcomeRefused || !strings.Contains(l.Message, "XSD")):
			t.Fatalf("line %d: %+v, want refused by the XSD", l.Line, l)
		}
		return nil
	})
	if err != nil || n != len(lines) {
		t.Fatalf("report: %d lines, %v", n, err)
	}
}

// failingRecorder records once, then fails.
type failingRecorder struct {
	mu      sync.Mutex
	failing bool
	lines   map[int]bool
}

func (f *failingRecorder) Record(_ context.Context, _ string, ms []batch.Member) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("redis went away")
	}
	for _, m := range ms {
		f.lines[m.Line] = true
	}
	f.failing = true // after the first call

	return nil
}

// TestEnqueueStopsWhenRecordingFails: a line counts as done only once
// recorded, so the resume line leaves no enqueued line unrecorded.
func TestEnqueueStopsWhenRecordingFails(t *testing.T) {
	t.Parallel()
	_, enq, _ := setup(t)
	var lines []string
	for i := range 400 {
		lines = append(lines, gstLine(t, i))
	}
	rec := &failingRecorder{lines: map[int]bool{}}
	rep, err := jobfile.Enqueue(t.Context(), strings.NewReader(strings.Join(lines, "\n")), enq,
		jobfile.EnqueueOptions{Batch: "b-fail", Recorder: rec, Concurrency: 4})
	var se *jobfile.StoppedError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "recording batch b-fail") {
		t.Fatalf("err %v, want a StoppedError naming the recording", err)
	}
	if se.ResumeLine > len(lines) || rep.Enqueued+rep.Duplicates == 0 {
		t.Fatalf("resume line %d of %d, %d enqueued: want some enqueued lines left to record", se.ResumeLine, len(lines), rep.Enqueued)
	}
	for l := 1; l < se.ResumeLine; l++ {
		if !rec.lines[l] {
			t.Fatalf("line %d is before the resume line %d but was never recorded", l, se.ResumeLine)
		}
	}
}

// TestEnqueueMarksFilesQueuedInBatches: with an Enqueuer that keeps the
// filing ledger, every enqueued File ends marked queued under its task,
// though the marks are written a few hundred at a time.
func TestEnqueueMarksFilesQueuedInBatches(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	l := ledger.New(r.Client, r.Prefix)
	enq := tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: r.Prefix, Ledger: l})
	lines, good := mixedFile(t, 600) // more than two batches of marks
	rep, err := jobfile.Enqueue(t.Context(), strings.NewReader(strings.Join(lines, "\n")), enq, jobfile.EnqueueOptions{})
	if err != nil || rep.Enqueued != good {
		t.Fatalf("report %+v, %v", rep, err)
	}
	for line, id := range taskIDs(t, lines) {
		j, err := tasks.Decode([]byte(lines[line-1]))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Normalize(); err != nil {
			t.Fatal(err)
		}
		e, err := l.Get(t.Context(), tasks.LedgerKey(j))
		if err != nil || e.State != ledger.StateQueued || e.TaskID != id || e.BodyHash != tasks.BodyHash(j) {
			t.Fatalf("line %d: ledger %+v, %v; want queued by %s", line, e, err, id)
		}
	}
	s, err := l.Stats(t.Context())
	if err != nil || s.Entries[ledger.StateQueued] != int64(good) {
		t.Fatalf("ledger stats %v, %v; want %d queued", s.Entries, err, good)
	}
}
