package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
)

// Enqueue is the bulk-enqueue scenario: one JSON-lines file of demo
// returns enqueued three ways, side by side on the same Redis.
type Enqueue struct {
	Jobs   int     `json:"jobs"`
	FileMB float64 `json:"file_mb"`
	// Ours: jobfile.Enqueue, as `enqueue bulk` runs it: every line decoded
	// and validated (IR's XSD included), enqueued, marked queued in the
	// filing ledger and recorded in its batch.
	OursSeconds  float64 `json:"ours_seconds"`
	OursJobsPerS float64 `json:"ours_jobs_per_s"`
	// PeakHeapMB is how much the Go heap grew while ours ran: flat in the
	// file's size when the file is streamed.
	PeakHeapMB float64 `json:"peak_heap_mb"`
	// OneByOne does the same work for each line, one Enqueuer.Enqueue
	// (one asynq Client.Enqueue) at a time, over the first SampleJobs lines.
	OneByOneJobsPerS float64 `json:"one_by_one_jobs_per_s"`
	// Speedup is ours over one-by-one.
	Speedup float64 `json:"speedup"`
	// Bare is asynq's Client.Enqueue of the same lines as opaque payloads,
	// one at a time, with no decoding or validation: Redis's floor for
	// one enqueue per round trip.
	BareJobsPerS float64 `json:"bare_jobs_per_s"`
	SampleJobs   int     `json:"sample_jobs"`
}

func (b *Bench) enqueueScenario(ctx context.Context) (*Enqueue, error) {
	n, sample := 100_000, 20_000
	if b.opts.Quick {
		n, sample = 20_000, 5_000
	}
	if b.opts.enqueueJobs > 0 {
		n, sample = b.opts.enqueueJobs, b.opts.enqueueJobs/4
	}
	dir, err := os.MkdirTemp("", "gatewayq-bench-enqueue-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "returns.jsonl")
	size, err := writeJobFile(path, n)
	if err != nil {
		return nil, err
	}
	out := &Enqueue{Jobs: n, FileMB: float64(size) / 1e6, SampleJobs: sample}
	// As `enqueue bulk` runs, for all three ways alike.
	defer debug.SetGCPercent(debug.SetGCPercent(jobfile.BulkGCPercent))
	b.logf("enqueue: %d returns, %.0f MB", n, out.FileMB)

	if err := b.enqueueOurs(ctx, path, out); err != nil {
		return nil, fmt.Errorf("ours: %w", err)
	}
	b.logf("enqueue: ours %.0f jobs/s (%.1f s), heap grew %.1f MB", out.OursJobsPerS, out.OursSeconds, out.PeakHeapMB)
	if out.OneByOneJobsPerS, err = b.enqueueOneByOne(ctx, path, sample, false); err != nil {
		return nil, fmt.Errorf("one by one: %w", err)
	}
	if out.BareJobsPerS, err = b.enqueueOneByOne(ctx, path, sample, true); err != nil {
		return nil, fmt.Errorf("bare: %w", err)
	}
	if out.OneByOneJobsPerS > 0 {
		out.Speedup = out.OursJobsPerS / out.OneByOneJobsPerS
	}
	b.logf("enqueue: one by one %.0f jobs/s, bare asynq %.0f jobs/s (%d lines each); ours is %.2fx one by one",
		out.OneByOneJobsPerS, out.BareJobsPerS, sample, out.Speedup)
	return out, nil
}

// writeJobFile writes n demo returns (GST and payday, all valid) as a job
// file, a thousand at a time so the generator never holds the file.
func writeJobFile(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	const chunk = 1000
	for first := 0; first < n; first += chunk {
		// A return takes at most three IRD numbers, and about one in
		// eleven bases has none: 3,400 bases a chunk keep chunks apart.
		bt, _, err := demo.Generate(demo.GenerateOptions{Returns: min(chunk, n-first), TokenSets: []string{"bench-a", "bench-b", "bench-c"},
			Seed: uint64(first), FirstBase: 12_300_000 + first/chunk*3400})
		if err != nil {
			return 0, err
		}
		for _, j := range bt.Jobs {
			line, err := json.Marshal(j)
			if err != nil {
				return 0, err
			}
			_, _ = w.Write(line)
			_ = w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

func (b *Bench) enqueueOurs(ctx context.Context, path string, out *Enqueue) error {
	s, err := b.newStack("enqueue-ours", sandbox.Options{}, nil)
	if err != nil {
		return err
	}
	defer s.close()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	stop := sampleHeap()
	rep, err := jobfile.Enqueue(ctx, f, s.enq, jobfile.EnqueueOptions{
		Queue:    tasks.QueueBulk,
		Recorder: batch.New(s.rdb, s.cfg.Redis.KeyPrefix, batch.Options{}),
	})
	grew := stop()
	if err != nil {
		return err
	}
	if rep.Enqueued != out.Jobs || rep.Rejected != 0 {
		return fmt.Errorf("enqueued %d, duplicates %d, rejected %d of %d lines (first error: %v)", rep.Enqueued, rep.Duplicates, rep.Rejected, out.Jobs, firstLineError(rep))
	}
	out.OursSeconds = rep.Elapsed.Seconds()
	out.OursJobsPerS = rep.JobsPerSecond()
	out.PeakHeapMB = float64(grew) / 1e6
	return nil
}

func firstLineError(rep jobfile.Report) error {
	if len(rep.Errors) == 0 {
		return nil
	}
	return rep.Errors[0]
}

// enqueueOneByOne enqueues the file's first n lines one at a time: through
// our Enqueuer (decoded and validated), or bare, as opaque asynq payloads.
func (b *Bench) enqueueOneByOne(ctx context.Context, path string, n int, bare bool) (float64, error) {
	name := "enqueue-one"
	if bare {
		name = "enqueue-bare"
	}
	s, err := b.newStack(name, sandbox.Options{}, nil)
	if err != nil {
		return 0, err
	}
	defer s.close()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), jobfile.DefaultMaxLineBytes)
	// Reading the file is not what is measured: the lines are read first
	// (n lines of a few KB each).
	lines := make([][]byte, 0, n)
	for len(lines) < n && sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	start := time.Now()
	for i, line := range lines {
		if bare {
			t := asynq.NewTask(tasks.TypeGatewayCall, line, asynq.Queue(s.queue()), asynq.TaskID(fmt.Sprintf("bare-%d", i)))
			if _, err := s.client.EnqueueContext(ctx, t); err != nil {
				return 0, err
			}
			continue
		}
		j, err := tasks.Decode(line)
		if err != nil {
			return 0, fmt.Errorf("line %d: %w", i+1, err)
		}
		if _, err := s.enq.Enqueue(ctx, j, tasks.QueueBulk); err != nil {
			return 0, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	return float64(len(lines)) / time.Since(start).Seconds(), nil
}

// sampleHeap watches the Go heap until the returned function is called,
// which reports how far the heap in use rose above where it began.
func sampleHeap() func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak - base
	}
}
