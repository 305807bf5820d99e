package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Transition is one edge of the ledger's state machine. From is "" for an
// entry created by the transition.
type Transition struct {
	From, To State
}

func (t Transition) String() string {
	from := string(t.From)
	if from == "" {
		from = absent
	}
	return from + ">" + string(t.To)
}

// Stats are the ledger's counts, kept by the transition script itself (one
// HINCRBY per state change, in the same atomic step), so reading them
// costs one pipelined HGETALL per shard however many entries the ledger holds.
type Stats struct {
	// Entries is how many entries are in each state now; every state is
	// present, zero when none.
	Entries map[State]int64
	// Transitions counts state changes by edge since the ledger began
	// counting.
	Transitions map[Transition]int64
}

// Stats reads the ledger's counts. Entries written before the ledger
// counted its transitions (gatewayq before the stats hash) are missing from
// them, and a state they later leave can show fewer entries than it has.
func (l *Ledger) Stats(ctx context.Context) (Stats, error) {
	keys := l.StatsKeys()
	// One round trip on a single Redis; go-redis splits the pipeline by
	// node on a cluster.
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Stats{}, fmt.Errorf("ledger: stats: %w", err)
	}
	s := Stats{Entries: make(map[State]int64, 5), Transitions: make(map[Transition]int64)}
	for _, st := range []State{StateQueued, StateSending, StateFiled, StateRejected, StateUncertain} {
		s.Entries[st] = 0
	}
	for i, c := range cmds {
		for field, v := range c.Val() {
			from, to, ok := strings.Cut(field, ">")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil || !State(to).Valid() || (from != absent && !State(from).Valid()) {
				return Stats{}, fmt.Errorf("ledger: stats: unreadable field %q = %q in %s", field, v, keys[i])
			}
			t := Transition{From: State(from), To: State(to)}
			if from == absent {
				t.From = ""
			} else {
				s.Entries[t.From] -= n
			}
			s.Entries[t.To] += n
			s.Transitions[t] += n
		}
	}
	return s, nil
}

// collector exports Stats at scrape time.
type collector struct {
	l       *Ledger
	log     *slog.Logger
	timeout time.Duration
	entries *prometheus.Desc
	moves   *prometheus.Desc
}

// NewCollector returns a Prometheus collector exporting l's Stats when
// scraped: gatewayq_ledger_entries{state} and
// gatewayq_ledger_transitions_total{from,to} (from="absent" for new
// entries). The counts are fleet-wide, so every worker exports the same
// values: aggregate them with max, not sum. A scrape that cannot read Redis
// (within 2 s) exports neither, and logs why to log (nil: slog.Default()).
func NewCollector(l *Ledger, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	return &collector{
		l: l, log: log, timeout: 2 * time.Second,
		entries: prometheus.NewDesc("gatewayq_ledger_entries",
			"Filing ledger entries in each state, fleet-wide (aggregate with max).", []string{"state"}, nil),
		moves: prometheus.NewDesc("gatewayq_ledger_transitions_total",
			"Filing ledger state changes by edge, fleet-wide (aggregate with max); from is absent for a new entry.", []string{"from", "to"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.moves
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := c.l.Stats(ctx)
	if err != nil {
		c.log.Warn("ledger metrics not exported in this scrape", "err", err)
		return
	}
	for st, n := range s.Entries {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(n), string(st))
	}
	for t, n := range s.Transitions {
		from := string(t.From)
		if from == "" {
			from = absent
		}
		ch <- prometheus.MustNewConstMetric(c.moves, prometheus.CounterValue, float64(n), from, string(t.To))
	}
}
