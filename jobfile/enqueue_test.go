package jobfile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/tcpproxy"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

// setup gives a test its own queues on the real Redis.
func setup(t *testing.T) (*redistest.Redis, *tasks.Enqueuer, *asynq.Inspector) {
	t.Helper()
	r := redistest.New(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() {
		_ = client.Close()
		_ = insp.Close()
	})
	return r, tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: r.Prefix}), insp
}

// taskIDs returns the task ID of each valid line, by line number.
func taskIDs(t *testing.T, lines []string) map[int]string {
	t.Helper()
	ids := map[int]string{}
	for i, s := range lines {
		l := jobfile.ParseLine(i+1, []byte(s))
		if l.Job != nil {
			ids[i+1] = l.Job.ID()
		}
	}
	return ids
}

// mixedFile is n GST and payday lines with a bad line every 10th.
func mixedFile(t *testing.T, n int) (lines []string, good int) {
	t.Helper()
	for i := range n {
		switch {
		case i%10 == 9:
			lines = append(lines, badSchemaLine(t, i))
		case i%2 == 0:
			lines = append(lines, gstLine(t, i))
			good++
		default:
			lines = append(lines, eiLine(t, i))
			good++
		}
	}
	return lines, good
}

func pending(t *testing.T, insp *asynq.Inspector, queue string) int {
	t.Helper()
	// GetQueueInfo's error for a queue never used wraps no sentinel.
	qs, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(qs, queue) {
		return 0
	}
	qi, err := insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	return qi.Pending
}

func TestEnqueue(t *testing.T) {
	t.Parallel()

	t.Run("enqueues exactly the good lines, then re-running enqueues nothing", func(t *testing.T) {
		t.Parallel()
		r, enq, insp := setup(t)
		lines, good := mixedFile(t, 60)
		lines = append([]string{"# nightly run", ""}, lines...)
		path := writeFile(t, lines)

		var mu sync.Mutex
		var last jobfile.Progress
		open := func() *os.File {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = f.Close() })
			return f
		}
		rep, err := jobfile.Enqueue(t.Context(), open(), enq, jobfile.EnqueueOptions{
			Batch: "b-test-1",
			OnProgress: func(p jobfile.Progress) {
				mu.Lock()
				last = p
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if rep.Lines != 60 || rep.Enqueued != good || rep.Duplicates != 0 || rep.Rejected != 6 || rep.Valid != good {
			t.Fatalf("report %+v; want 60 lines, %d enqueued, 6 rejected", rep, good)
		}
		if rep.Batch != "b-test-1" || rep.LastLine != 62 {
			t.Errorf("batch %q, last line %d", rep.Batch, rep.LastLine)
		}
		if len(rep.Errors) != 6 {
			t.Fatalf("kept %d errors, want 6", len(rep.Errors))
		}
		for i, e := range rep.Errors {
			// Data line i%10==9 is file line i+3 (two header lines).
			if want := 10*i + 12; e.Line != want {
				t.Errorf("error %d is of line %d, want %d (in line order)", i, e.Line, want)
			}
			if !errors.Is(e, tasks.ErrInvalidJob) || !strings.Contains(e.Error(), "XSD") {
				t.Errorf("error %d: %v", i, e)
			}
		}
		if got := pending(t, insp, r.Prefix+tasks.QueueBulk); got != good {
			t.Errorf("%d tasks pending, want %d", got, good)
		}
		ids := taskIDs(t, lines)
		for _, id := range []string{ids[3], ids[4]} {
			info, err := insp.GetTaskInfo(r.Prefix+tasks.QueueBulk, id)
			if err != nil {
				t.Fatalf("task %s: %v", id, err)
			}
			j, err := tasks.Decode(info.Payload)
			if err != nil || j.Batch != "b-test-1" {
				t.Errorf("task %s: batch %q, err %v; want the run's batch stamped", id, j.Batch, err)
			}
		}
		mu.Lock()
		if last.Lines != 60 || last.Enqueued != good || last.Rejected != 6 || last.TotalBytes == 0 || last.BytesRead != last.TotalBytes {
			t.Errorf("last progress %+v; want the final counts and all bytes of the file", last)
		}
		mu.Unlock()

		// The same file again: task IDs are deterministic, nothing is new.
		rep2, err := jobfile.Enqueue(t.Context(), open(), enq, jobfile.EnqueueOptions{})
		if err != nil {
			t.Fatalf("second Enqueue: %v", err)
		}
		if rep2.Enqueued != 0 || rep2.Duplicates != good || rep2.Rejected != 6 {
			t.Errorf("re-run report %+v; want 0 enqueued, %d duplicates", rep2, good)
		}
		if rep2.Batch == "" || rep2.Batch == "b-test-1" {
			t.Errorf("re-run batch %q; want a new generated one", rep2.Batch)
		}
		if got := pending(t, insp, r.Prefix+tasks.QueueBulk); got != good {
			t.Errorf("%d tasks pending after the re-run, want still %d", got, good)
		}
	})

	t.Run("dry run validates and enqueues nothing", func(t *testing.T) {
		t.Parallel()
		r, _, insp := setup(t)
		lines, good := mixedFile(t, 20)
		lines = append(lines, `{"ref":"`+strings.Repeat("r", 64<<10)+`"}`)
		rep, err := jobfile.Enqueue(t.Context(), strings.NewReader(strings.Join(lines, "\n")), nil, jobfile.EnqueueOptions{DryRun: true, MaxLineBytes: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lines != 21 || rep.Valid != good || rep.Rejected != 3 || rep.Enqueued != 0 || rep.Duplicates != 0 {
			t.Errorf("dry-run report %+v", rep)
		}
		if last := rep.Errors[len(rep.Errors)-1]; last.Line != 21 || !errors.Is(last, jobfile.ErrLineTooLong) {
			t.Errorf("last error %v; want line 21 too long", last)
		}
		if got := pending(t, insp, r.Prefix+tasks.QueueBulk); got != 0 {
			t.Errorf("dry run left %d tasks", got)
		}
	})

	t.Run("queue, start line and max errors", func(t *testing.T) {
		t.Parallel()
		r, enq, insp := setup(t)
		lines, _ := mixedFile(t, 40) // bad lines 10, 20, 30, 40
		rep, err := jobfile.Enqueue(t.Context(), strings.NewReader(strings.Join(lines, "\n")), enq, jobfile.EnqueueOptions{
			Queue: tasks.QueueRedrive, StartLine: 15, MaxErrors: 2, Concurrency: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lines != 26 || rep.Enqueued != 23 || rep.Rejected != 3 {
			t.Errorf("report %+v; want lines 15-40: 26 read, 23 enqueued, 3 rejected", rep)
		}
		if len(rep.Errors) != 2 || rep.Errors[0].Line != 20 || rep.Errors[1].Line != 30 {
			t.Errorf("kept errors %v; want lines 20 and 30", rep.Errors)
		}
		if got := pending(t, insp, r.Prefix+tasks.QueueRedrive); got != 23 {
			t.Errorf("%d pending on redrive, want 23", got)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		t.Parallel()
		_, enq, _ := setup(t)
		for _, o := range []jobfile.EnqueueOptions{{Queue: "nightly"}, {Batch: "has space"}, {Batch: strings.Repeat("b", 65)}} {
			if _, err := jobfile.Enqueue(t.Context(), strings.NewReader(""), enq, o); err == nil {
				t.Errorf("options %+v accepted", o)
			}
		}
		if _, err := jobfile.Enqueue(t.Context(), strings.NewReader(""), nil, jobfile.EnqueueOptions{}); err == nil {
			t.Error("nil enqueuer accepted without DryRun")
		}
	})

	t.Run("unreachable Redis gives a clear error", func(t *testing.T) {
		t.Parallel()
		client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: time.Second})
		t.Cleanup(func() { _ = client.Close() })
		enq := tasks.NewEnqueuer(client, tasks.EnqueueOptions{})
		lines := []string{"# header", gstLine(t, 1), gstLine(t, 2)}
		rep, err := jobfile.Enqueue(t.Context(), strings.NewReader(strings.Join(lines, "\n")), enq, jobfile.EnqueueOptions{})
		var se *jobfile.StoppedError
		if !errors.As(err, &se) {
			t.Fatalf("err = %v, want a *StoppedError", err)
		}
		if se.ResumeLine != 2 || se.Enqueued != 0 || rep.Enqueued != 0 {
			t.Errorf("resume line %d, enqueued %d; want 2 and 0", se.ResumeLine, se.Enqueued)
		}
		msg := err.Error()
		for _, want := range []string{"stopped after enqueuing 0 jobs", "resume from line 2", "deterministic", "127.0.0.1:1"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
	})

	t.Run("cancelled context stops before the first line", func(t *testing.T) {
		t.Parallel()
		_, enq, _ := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		lines, _ := mixedFile(t, 30)
		rep, err := jobfile.Enqueue(ctx, strings.NewReader(strings.Join(lines, "\n")), enq, jobfile.EnqueueOptions{})
		var se *jobfile.StoppedError
		if !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want a *StoppedError wrapping context.Canceled", err)
		}
		if se.ResumeLine != 1 || rep.Enqueued != 0 {
			t.Errorf("resume line %d, enqueued %d; want 1 and 0", se.ResumeLine, rep.Enqueued)
		}
	})

	t.Run("I/O error stops the run", func(t *testing.T) {
		t.Parallel()
		_, enq, _ := setup(t)
		boom := errors.New("disk on fire")
		in := &failingReader{data: []byte(gstLine(t, 1) + "\n" + gstLine(t, 2) + "\n" + `{"serv`), err: boom}
		rep, err := jobfile.Enqueue(t.Context(), in, enq, jobfile.EnqueueOptions{})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "resume from line 3") {
			t.Fatalf("err = %v, want %v and where to resume", err, boom)
		}
		if rep.Enqueued != 2 {
			t.Errorf("enqueued %d, want the 2 whole lines", rep.Enqueued)
		}
	})
}

// TestEnqueueRedisDiesMidRun cuts Redis off half way through a file and
// checks the promise of StoppedError: every line before ResumeLine is
// queued, and resuming there completes the file without enqueuing a job
// twice.
func TestEnqueueRedisDiesMidRun(t *testing.T) {
	t.Parallel()
	r, enq, insp := setup(t)
	proxy := tcpproxy.New(t, r.Addr)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: proxy.Addr(), DialTimeout: time.Second})
	t.Cleanup(func() { _ = client.Close() })
	viaProxy := tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: r.Prefix})

	var lines []string
	for i := range 200 {
		lines = append(lines, gstLine(t, i))
	}
	data := strings.Join(lines, "\n") + "\n"
	// The proxy dies when the reader has handed over half the file.
	in := &hookReader{r: strings.NewReader(data), at: len(data) / 2, hook: proxy.Cut}
	rep, err := jobfile.Enqueue(t.Context(), in, viaProxy, jobfile.EnqueueOptions{Concurrency: 4})
	var se *jobfile.StoppedError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (report %+v), want a *StoppedError", err, rep)
	}
	t.Logf("stopped: %v", err)
	if se.ResumeLine < 1 || se.ResumeLine > 200 {
		t.Fatalf("resume line %d out of range", se.ResumeLine)
	}
	ids := taskIDs(t, lines)
	for line := 1; line < se.ResumeLine; line++ {
		if _, err := insp.GetTaskInfo(r.Prefix+tasks.QueueBulk, ids[line]); err != nil {
			t.Fatalf("line %d is before the resume line %d but its task is not queued: %v", line, se.ResumeLine, err)
		}
	}
	// A job whose answer was cut off with the connection may be queued
	// without being counted: never the other way round.
	queued := pending(t, insp, r.Prefix+tasks.QueueBulk)
	if queued < se.Enqueued {
		t.Errorf("%d tasks queued, but the error says %d were enqueued", queued, se.Enqueued)
	}

	// Resume through the healthy Redis.
	rep2, err := jobfile.Enqueue(t.Context(), strings.NewReader(data), enq, jobfile.EnqueueOptions{StartLine: se.ResumeLine})
	if err != nil {
		t.Fatal(err)
	}
	if want := 200 - (se.ResumeLine - 1); rep2.Lines != want || rep2.Enqueued+rep2.Duplicates != want {
		t.Errorf("resume report %+v; want %d lines, all enqueued or duplicates", rep2, want)
	}
	if want := queued - (se.ResumeLine - 1); rep2.Duplicates != want {
		t.Errorf("resume saw %d duplicates, want %d (the tasks queued after the resume line before the stop)", rep2.Duplicates, want)
	}
	if got := pending(t, insp, r.Prefix+tasks.QueueBulk); got != 200 {
		t.Errorf("%d tasks queued, want 200", got)
	}
}

// hookReader calls hook once, when at bytes have been read.
type hookReader struct {
	r    io.Reader
	at   int
	n    int
	hook func()
	once sync.Once
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n < h.at && len(p) > h.at-h.n {
		p = p[:h.at-h.n]
	}
	n, err := h.r.Read(p)
	h.n += n
	if h.n >= h.at {
		h.once.Do(h.hook)
	}
	return n, err
}

// BenchmarkEnqueue compares the goroutine pool with enqueuing one job at a
// time (Concurrency 1), over the same file of GST and payday returns.
func BenchmarkEnqueue(b *testing.B) {
	r := redistest.New(b)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	b.Cleanup(func() { _ = client.Close() })
	const jobs = 2000
	var sb strings.Builder
	for i := range jobs {
		if i%2 == 0 {
			sb.WriteString(gstLine(b, i))
		} else {
			sb.WriteString(eiLine(b, i))
		}
		sb.WriteByte('\n')
	}
	data := sb.String()
	for _, conc := range []int{1, jobfile.DefaultConcurrency} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			n := 0
			for b.Loop() {
				// A fresh prefix each round, so every job is new.
				n++
				enq := tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: fmt.Sprintf("%sc%d-%d:", r.Prefix, conc, n)})
				rep, err := jobfile.Enqueue(b.Context(), strings.NewReader(data), enq, jobfile.EnqueueOptions{Concurrency: conc})
				if err != nil || rep.Enqueued != jobs {
					b.Fatalf("report %+v, err %v", rep, err)
				}
			}
			b.ReportMetric(float64(jobs*b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
