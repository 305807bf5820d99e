package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
)

func TestStatsCountEveryStateChange(t *testing.T) {
	t.Parallel()
	l, _ := setup(t)
	ctx := context.Background()
	must := func(_ ledger.Entry, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// a: queued, sending, filed. b: sending, uncertain, reopened, sending,
	// filed by reconciliation. c: sending, rejected. d: sending. e: queued.
	must(l.Queued(ctx, "a", "t1", "h"))
	must(l.BeginSend(ctx, "a", "t1", "h"))
	must(l.Filed(ctx, "a", "t1", ledger.Filing{SubmissionKey: "1"}))
	must(l.Filed(ctx, "a", "t1", ledger.Filing{SubmissionKey: "1"})) // filed again: no state change
	must(l.BeginSend(ctx, "b", "t2", "h"))
	seen, err := l.Uncertain(ctx, "b", "t2", "deadline")
	must(seen, err)
	must(l.Uncertain(ctx, "b", "t2", "deadline again")) // no state change
	must(l.Reopen(ctx, "b", "t2", seen))
	must(l.BeginSend(ctx, "b", "t2", "h"))
	must(l.Filed(ctx, "b", "t2", ledger.Filing{Reconciled: true}))
	must(l.BeginSend(ctx, "c", "t3", "h"))
	must(l.Rejected(ctx, "c", "t3", ledger.Rejection{Class: "invalid"}))
	must(l.BeginSend(ctx, "d", "t4", "h"))
	must(l.Queued(ctx, "e", "t5", "h"))
	// Refused transitions count nothing.
	if _, err := l.BeginSend(ctx, "a", "t9", "h"); !errors.Is(err, ledger.ErrFiled) {
		t.Fatalf("BeginSend of a filed entry: %v", err)
	}

	s, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[ledger.State]int64{ledger.StateQueued: 1, ledger.StateSending: 1, ledger.StateFiled: 2, ledger.StateRejected: 1, ledger.StateUncertain: 0}
	if !maps.Equal(s.Entries, want) {
		t.Errorf("entries %v, want %v", s.Entries, want)
	}
	moves := map[string]int64{}
	for tr, n := range s.Transitions {
		moves[tr.String()] = n
	}
	wantMoves := map[string]int64{
		"absent>queued": 2, "absent>sending": 3, "queued>sending": 2, "sending>filed": 2,
		"sending>uncertain": 1, "uncertain>queued": 1, "sending>rejected": 1,
	}
	if !maps.Equal(moves, wantMoves) {
		t.Errorf("transitions %v, want %v", moves, wantMoves)
	}
}

func TestStatsUnderConcurrentSends(t *testing.T) {
	t.Parallel()
	l, _ := setup(t)
	ctx := context.Background()
	// 32 returns, 4 workers racing for each: exactly one send each is counted.
	var wg sync.WaitGroup
	for i := range 32 {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := fmt.Sprintf("r%d", i)
				if _, err := l.BeginSend(ctx, k, fmt.Sprintf("t%d", w), "h"); err == nil {
					if _, err := l.Filed(ctx, k, fmt.Sprintf("t%d", w), ledger.Filing{}); err != nil {
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	s, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries[ledger.StateFiled] != 32 || s.Entries[ledger.StateSending] != 0 {
		t.Fatalf("entries %v, want 32 filed", s.Entries)
	}
}

func TestStatsRefusesAnUnreadableHash(t *testing.T) {
	t.Parallel()
	l, r := setup(t)
	ctx := context.Background()
	if err := r.Client.HSet(ctx, l.StatsKeys()[7], "queued>nowhere", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Stats(ctx); err == nil || !strings.Contains(err.Error(), "queued>nowhere") {
		t.Fatalf("Stats of a corrupt hash: %v", err)
	}
}

func TestCollector(t *testing.T) {
	t.Parallel()
	l, _ := setup(t)
	ctx := context.Background()
	if _, err := l.BeginSend(ctx, "a", "t1", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginSend(ctx, "b", "t1", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Filed(ctx, "b", "t1", ledger.Filing{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(ledger.NewCollector(l, nil))
	got := gather(t, reg)
	want := map[string]float64{
		`gatewayq_ledger_entries{state="filed"}`:                        1,
		`gatewayq_ledger_entries{state="queued"}`:                       0,
		`gatewayq_ledger_entries{state="rejected"}`:                     0,
		`gatewayq_ledger_entries{state="sending"}`:                      1,
		`gatewayq_ledger_entries{state="uncertain"}`:                    0,
		`gatewayq_ledger_transitions_total{from="absent",to="sending"}`: 2,
		`gatewayq_ledger_transitions_total{from="sending",to="filed"}`:  1,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("collected %v\nwant %v", got, want)
	}

	// Redis unreachable: the scrape goes on without the ledger's series.
	closed := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	_ = closed.Close()
	reg2 := prometheus.NewPedanticRegistry()
	reg2.MustRegister(ledger.NewCollector(ledger.New(closed, "x:"), slog.New(slog.NewTextHandler(io.Discard, nil))))
	if got := gather(t, reg2); len(got) != 0 {
		t.Fatalf("with Redis down: %v; want no series", got)
	}
}

// gather returns every series of reg as `name{label="value",...}` → value.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}
