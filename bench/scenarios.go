package bench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/sandbox"
)

// FleetRate compares ours with two per-process limiters at the same R.
type FleetRate struct {
	LimitRPS       float64 `json:"limit_rps"`
	Jobs           int     `json:"jobs"`
	AchievedRatio  float64 `json:"achieved_ratio"`
	Throttled      int64   `json:"throttled"`
	P50MS          float64 `json:"p50_ms"`
	P99MS          float64 `json:"p99_ms"`
	NaiveRatio     float64 `json:"naive_ratio"`
	NaiveThrottled int64   `json:"naive_throttled"`
	NaiveP50MS     float64 `json:"naive_p50_ms"`
	NaiveP99MS     float64 `json:"naive_p99_ms"`
	StaticRatio    float64 `json:"static_ratio"`
	// StaticThrottled should be 0: R/P each never exceeds R together.
	StaticThrottled int64   `json:"static_throttled"`
	StaticP50MS     float64 `json:"static_p50_ms"`
	StaticP99MS     float64 `json:"static_p99_ms"`
}

// Adapt is the fleet finding a lowered, then raised, limit.
type Adapt struct {
	LimitRPS                  float64 `json:"limit_rps"`
	SettleSeconds             float64 `json:"settle_seconds"`
	ThrottledDuringChange     int64   `json:"throttled_during_change"`
	ThrottledAfterSettle      int64   `json:"throttled_after_settle"`
	ThrottledAfterSettleRatio float64 `json:"throttled_after_settle_ratio"`
	// HalfRateRatio is the rate achieved after settling over R/2.
	HalfRateRatio   float64 `json:"half_rate_ratio"`
	RecoverySeconds float64 `json:"recovery_seconds"`
	PhaseSeconds    float64 `json:"phase_seconds"`
}

// Outage is a mid-batch 503 outage.
type Outage struct {
	OutageSeconds float64 `json:"outage_seconds"`
	// TripSeconds is from the outage's start until the fleet breaker
	// opened in Redis.
	TripSeconds float64 `json:"trip_seconds"`
	// StopSeconds is from the trip until the last call of every process
	// (the half-open probes aside).
	StopSeconds float64 `json:"stop_seconds"`
	// StopSecondsFromOutage is the same from the outage's start.
	StopSecondsFromOutage float64 `json:"stop_seconds_from_outage"`
	CallsWhileOpen        int64   `json:"calls_while_open"`
	Archived              int     `json:"archived"`
	RetriesSpent          int     `json:"retries_spent"`
	Completed             int     `json:"completed"`
	Jobs                  int     `json:"jobs"`
	// CompletedSecondsAfterOutage is from the outage's end to the last job.
	CompletedSecondsAfterOutage float64 `json:"completed_seconds_after_outage"`
}

// Overhead compares our whole path with a bare asynq handler.
type Overhead struct {
	Jobs                int     `json:"jobs"`
	OursJobsPerS        float64 `json:"ours_jobs_per_s"`
	BareJobsPerS        float64 `json:"bare_jobs_per_s"`
	Ratio               float64 `json:"ratio"`
	RedisCommandsPerJob float64 `json:"redis_commands_per_job"`
	BareRedisCmdsPerJob float64 `json:"bare_redis_commands_per_job"`
}

func (b *Bench) sandboxBurst() int { return max(1, int(b.opts.Rate/10)) }
func (b *Bench) ourBurst() int     { return max(1, int(b.opts.Rate/50)) }
func (b *Bench) throttled() sandbox.Options {
	return sandbox.Options{ThrottleRPS: b.opts.Rate, ThrottleBurst: b.sandboxBurst(), Latency: b.opts.Latency, LatencyJitter: b.opts.Latency / 4}
}

type rateRun struct {
	ratio     float64
	throttled int64
	p50, p99  float64
}

func (b *Bench) fleetRate(ctx context.Context) (*FleetRate, error) {
	r, p := b.opts.Rate, b.opts.Procs
	n := int(r * 20)
	if b.opts.Quick {
		n = int(r * 3)
	}
	variants := []struct {
		name  string
		tweak func(*config.Config)
	}{
		{"ours", func(c *config.Config) {
			c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitFleet, r, b.ourBurst()
		}},
		{"naive", func(c *config.Config) {
			c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitLocal, r, b.ourBurst()
		}},
		{"static", func(c *config.Config) {
			c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitLocal, r/float64(p), max(1, b.ourBurst()/p)
		}},
	}
	out := &FleetRate{LimitRPS: r, Jobs: n}
	for i, v := range variants {
		m, err := b.runRate(ctx, "rate-"+v.name, n, uint64(i+1), v.tweak)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		b.logf("%s: achieved %.3f of R, %d throttled, p50 %.0f ms, p99 %.0f ms", v.name, m.ratio, m.throttled, m.p50, m.p99)
		switch v.name {
		case "ours":
			out.AchievedRatio, out.Throttled, out.P50MS, out.P99MS = m.ratio, m.throttled, m.p50, m.p99
		case "naive":
			out.NaiveRatio, out.NaiveThrottled, out.NaiveP50MS, out.NaiveP99MS = m.ratio, m.throttled, m.p50, m.p99
		case "static":
			out.StaticRatio, out.StaticThrottled, out.StaticP50MS, out.StaticP99MS = m.ratio, m.throttled, m.p50, m.p99
		}
	}
	return out, nil
}

func (b *Bench) runRate(ctx context.Context, name string, n int, seed uint64, tweak func(*config.Config)) (rateRun, error) {
	s, err := b.newStack(name, b.throttled(), tweak)
	if err != nil {
		return rateRun{}, err
	}
	defer s.close()
	if _, _, err := s.enqueue(ctx, n, seed); err != nil {
		return rateRun{}, err
	}
	enqueuedAt := time.Now()
	if err := s.startWorkers(ModeOurs, b.opts.Procs); err != nil {
		return rateRun{}, err
	}
	if _, err := s.waitFinished(ctx, n, time.Duration(float64(n)/b.opts.Rate*4+60)*time.Second); err != nil {
		return rateRun{}, err
	}
	s.stopWorkers()
	results, _, err := s.outcomes()
	if err != nil {
		return rateRun{}, err
	}
	var lat []float64
	for _, o := range results {
		lat = append(lat, float64(o.FinishedAt.Sub(enqueuedAt).Milliseconds()))
	}
	return rateRun{
		ratio:     steadyRate(s.sb.Timeline()) / b.opts.Rate,
		throttled: s.sb.Stats().Throttled,
		p50:       percentile(lat, 50),
		p99:       percentile(lat, 99),
	}, nil
}

// steadyRate is the rate of accepted calls between the times 10% and 90%
// of them had been answered: the ramp-up burst and the tail are left out.
func steadyRate(tl []sandbox.Bucket) float64 {
	var total int64
	for _, bk := range tl {
		total += bk.OK
	}
	if total == 0 {
		return 0
	}
	var cum int64
	var t10, t90 time.Time
	var c10, c90 int64
	for _, bk := range tl {
		cum += bk.OK
		if t10.IsZero() && cum >= total/10 {
			t10, c10 = bucketEnd(bk), cum
		}
		if t90.IsZero() && cum >= total*9/10 {
			t90, c90 = bucketEnd(bk), cum
		}
	}
	d := t90.Sub(t10).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(c90-c10) / d
}

// bucketEnd is when a timeline bucket ends; the bench keeps the
// sandbox's default resolution.
func bucketEnd(bk sandbox.Bucket) time.Time { return bk.Start.Add(sandbox.DefaultTimelineResolution) }

// window sums the timeline over [from, to).
func window(tl []sandbox.Bucket, from, to time.Time) (sum sandbox.Bucket) {
	for _, bk := range tl {
		if !bk.Start.Before(from) && bk.Start.Before(to) {
			sum.Calls += bk.Calls
			sum.OK += bk.OK
			sum.Throttled += bk.Throttled
			sum.Unavailable += bk.Unavailable
			sum.Faulted += bk.Faulted
			sum.Other += bk.Other
			sum.Filed += bk.Filed
		}
	}
	return sum
}

func firstCall(tl []sandbox.Bucket) time.Time {
	for _, bk := range tl {
		if bk.Calls > 0 {
			return bk.Start
		}
	}
	return time.Time{}
}

func (b *Bench) waitFirstCall(ctx context.Context, s *stack) (time.Time, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if t := firstCall(s.sb.Timeline()); !t.IsZero() {
			return t, nil
		}
		if err := s.err(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: no gateway call within 30s", s.name)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (b *Bench) adapt(ctx context.Context) (*Adapt, error) {
	r := b.opts.Rate
	phase := 10 * time.Second
	if b.opts.Quick {
		phase = 3 * time.Second
	}
	n := int(r * phase.Seconds() * 4)
	s, err := b.newStack("adapt", b.throttled(), func(c *config.Config) {
		c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitFleet, r, b.ourBurst()
	})
	if err != nil {
		return nil, err
	}
	defer s.close()
	if _, _, err := s.enqueue(ctx, n, 11); err != nil {
		return nil, err
	}
	if err := s.startWorkers(ModeOurs, b.opts.Procs); err != nil {
		return nil, err
	}
	if _, err := b.waitFirstCall(ctx, s); err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, phase); err != nil {
		return nil, err
	}
	t1 := time.Now()
	s.sb.SetThrottle(r/2, max(1, b.sandboxBurst()/2))
	b.logf("limit lowered to %.0f/s", r/2)
	if err := sleepCtx(ctx, phase+phase/2); err != nil {
		return nil, err
	}
	t2 := time.Now()
	s.sb.SetThrottle(r, b.sandboxBurst())
	b.logf("limit back to %.0f/s", r)
	if err := sleepCtx(ctx, phase); err != nil {
		return nil, err
	}
	t3 := time.Now()
	s.stopWorkers()
	if err := s.err(); err != nil {
		return nil, err
	}
	tl := s.sb.Timeline()
	out := &Adapt{LimitRPS: r, PhaseSeconds: phase.Seconds(), SettleSeconds: math.NaN(), RecoverySeconds: math.NaN()}
	step := 100 * time.Millisecond
	for at := t1; at.Add(time.Second).Before(t2); at = at.Add(step) {
		w := window(tl, at, at.Add(time.Second))
		if w.Throttled == 0 && float64(w.OK) <= 1.05*r/2 {
			out.SettleSeconds = at.Sub(t1).Seconds()
			break
		}
	}
	if math.IsNaN(out.SettleSeconds) {
		out.SettleSeconds = t2.Sub(t1).Seconds()
	}
	settled := t1.Add(time.Duration(out.SettleSeconds * float64(time.Second)))
	out.ThrottledDuringChange = window(tl, t1, settled).Throttled
	after := window(tl, settled, t2)
	out.ThrottledAfterSettle = after.Throttled
	if after.Calls > 0 {
		out.ThrottledAfterSettleRatio = float64(after.Throttled) / float64(after.Calls)
	}
	if d := t2.Sub(settled).Seconds(); d > 0 {
		out.HalfRateRatio = float64(after.OK) / d / (r / 2)
	}
	for at := t2; at.Add(time.Second).Before(t3); at = at.Add(step) {
		if float64(window(tl, at, at.Add(time.Second)).OK) >= 0.9*r {
			out.RecoverySeconds = at.Sub(t2).Seconds()
			break
		}
	}
	if math.IsNaN(out.RecoverySeconds) {
		out.RecoverySeconds = -1 // did not recover within the phase
	}
	b.logf("settled in %.1fs, %d throttled during the change, %.2f%% after; recovered in %.1fs", out.SettleSeconds, out.ThrottledDuringChange, 100*out.ThrottledAfterSettleRatio, out.RecoverySeconds)
	return out, nil
}

func (b *Bench) outage(ctx context.Context) (*Outage, error) {
	r := b.opts.Rate
	d, pre, n := 30*time.Second, 3*time.Second, int(r*8)
	if b.opts.Quick {
		d, pre, n = 5*time.Second, 2*time.Second, int(r*4)
	}
	s, err := b.newStack("outage", b.throttled(), func(c *config.Config) {
		c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitFleet, r, b.ourBurst()
		c.Breaker.OpenFor = 3 * time.Second
	})
	if err != nil {
		return nil, err
	}
	defer s.close()
	if _, _, err := s.enqueue(ctx, n, 21); err != nil {
		return nil, err
	}
	if err := s.startWorkers(ModeOurs, b.opts.Procs); err != nil {
		return nil, err
	}
	if _, err := b.waitFirstCall(ctx, s); err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, pre); err != nil {
		return nil, err
	}
	tripped := make(chan time.Time, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.watchTrip(watchCtx, tripped)
	t0 := time.Now()
	s.sb.SetOutage(503, d)
	b.logf("outage: 503 for %s", d)
	qi, err := s.waitFinished(ctx, n, d+3*time.Minute)
	if err != nil {
		return nil, err
	}
	stopWatch()
	var tripAt time.Time
	select {
	case tripAt = <-tripped:
	default:
		return nil, fmt.Errorf("the breaker never opened during the outage")
	}
	s.stopWorkers()
	_, retried, err := s.outcomes()
	if err != nil {
		return nil, err
	}
	tl := s.sb.Timeline()
	end := t0.Add(d)
	out := &Outage{OutageSeconds: d.Seconds(), Jobs: n, Completed: qi.Completed, Archived: qi.Archived, RetriesSpent: retried}
	// The fleet has stopped at the end of the last bucket with calls before
	// the first full second without any; later calls are probes.
	var lastCall time.Time
	for at := t0; at.Before(end); at = at.Add(100 * time.Millisecond) {
		if window(tl, at, at.Add(100*time.Millisecond)).Calls > 0 {
			if !lastCall.IsZero() && at.Sub(lastCall) >= time.Second {
				break
			}
			lastCall = at.Add(100 * time.Millisecond)
		}
	}
	if lastCall.IsZero() {
		lastCall = t0
	}
	out.TripSeconds = tripAt.Sub(t0).Seconds()
	out.StopSeconds = max(0, lastCall.Sub(tripAt).Seconds())
	out.StopSecondsFromOutage = lastCall.Sub(t0).Seconds()
	out.CallsWhileOpen = window(tl, lastCall, end).Calls
	var lastOK time.Time
	for _, bk := range tl {
		if bk.OK > 0 {
			lastOK = bucketEnd(bk)
		}
	}
	out.CompletedSecondsAfterOutage = lastOK.Sub(end).Seconds()
	b.logf("tripped %.2fs after the outage began; every process stopped %.2fs after the trip; %d calls while open, %d archived, %d retries spent, %d/%d completed", out.TripSeconds, out.StopSeconds, out.CallsWhileOpen, out.Archived, out.RetriesSpent, out.Completed, n)
	return out, nil
}

func (b *Bench) overhead(ctx context.Context) (*Overhead, error) {
	n, rounds := 4000, 3
	if b.opts.Quick {
		n, rounds = 1000, 1
	}
	out := &Overhead{Jobs: n}
	for round := range rounds {
		for _, mode := range []string{ModeBare, ModeOurs} {
			rate, cmds, err := b.runOverhead(ctx, mode, n, uint64(31+round))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", mode, err)
			}
			b.logf("%s: %.0f jobs/s, %.1f Redis commands a job", mode, rate, cmds)
			// Best of the rounds: the machine is shared and noise only slows.
			if mode == ModeOurs && rate > out.OursJobsPerS {
				out.OursJobsPerS, out.RedisCommandsPerJob = rate, cmds
			}
			if mode == ModeBare && rate > out.BareJobsPerS {
				out.BareJobsPerS, out.BareRedisCmdsPerJob = rate, cmds
			}
		}
	}
	if out.BareJobsPerS > 0 {
		out.Ratio = out.OursJobsPerS / out.BareJobsPerS
	}
	return out, nil
}

func (b *Bench) runOverhead(ctx context.Context, mode string, n int, seed uint64) (jobsPerS, cmdsPerJob float64, err error) {
	s, err := b.newStack("overhead-"+mode, sandbox.Options{}, func(c *config.Config) {
		c.Limits.Mode, c.Limits.CloudRPS, c.Limits.CloudBurst = config.LimitFleet, 1e6, 1000
		c.Limits.CloudMaxInFlight = 1000
	})
	if err != nil {
		return 0, 0, err
	}
	defer s.close()
	if _, _, err := s.enqueue(ctx, n, seed); err != nil {
		return 0, 0, err
	}
	before, err := b.redisCommands(ctx)
	if err != nil {
		return 0, 0, err
	}
	if err := s.startWorkers(mode, b.opts.Procs, envBareToken+"="+s.sb.IssueToken("bench-user", time.Hour)); err != nil {
		return 0, 0, err
	}
	if _, err := s.waitFinished(ctx, n, 5*time.Minute); err != nil {
		return 0, 0, err
	}
	after, err := b.redisCommands(ctx)
	if err != nil {
		return 0, 0, err
	}
	s.stopWorkers()
	tl := s.sb.Timeline()
	first, last := firstCall(tl), time.Time{}
	for _, bk := range tl {
		if bk.Calls > 0 {
			last = bucketEnd(bk)
		}
	}
	secs := last.Sub(first).Seconds()
	if secs <= 0 {
		return 0, 0, fmt.Errorf("no calls recorded")
	}
	// The progress polling of waitFinished is ours, not the workers': a
	// few commands a poll, negligible against n jobs.
	return float64(n) / secs, float64(after-before) / float64(n), nil
}
