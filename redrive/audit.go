package redrive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/failures"
)

// Run states.
const (
	RunRunning = "running"
	RunDone    = "done"
	// RunStopped: the run ended part way (its context, Redis); Err says
	// why. Running the same re-drive again finishes it.
	RunStopped = "stopped"
)

// Run is the audit record of one re-drive: who asked, when, for what, and
// what became of each job.
type Run struct {
	ID         string          `json:"id"`
	Who        string          `json:"who"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	Filter     failures.Filter `json:"filter"`
	FilterText string          `json:"filter_text"`
	DryRun     bool            `json:"dry_run"`
	Rate       float64         `json:"rate_per_second"`
	// Corrected is the task ID of the corrected job, for a re-drive with a
	// corrected payload.
	Corrected string `json:"corrected_task_id,omitempty"`
	// Selected is how many failures the filter selected; ByCause counts
	// them by cause, Outcomes counts the jobs by Job.Outcome.
	Selected int            `json:"selected"`
	ByCause  map[string]int `json:"by_cause"`
	Outcomes map[string]int `json:"outcomes"`
	State    string         `json:"state"`
	Err      string         `json:"error,omitempty"`
	// Jobs is every job's outcome, in the order handled. It is filled by
	// Run; History leaves it empty (see Jobs).
	Jobs []Job `json:"-"`
}

// Causes lists ByCause, most frequent first.
func (r *Run) Causes() []CauseCount { return sortCounts(r.ByCause) }

// OutcomeCounts lists Outcomes, most frequent first (the outcome in
// CauseCount.Cause).
func (r *Run) OutcomeCounts() []CauseCount { return sortCounts(r.Outcomes) }

// auditEvery is how many jobs of a dry run are written to the audit at
// once; a real re-drive writes each job as it is done.
const auditEvery = 200

func (r *Redriver) runsKey() string          { return r.cfg.KeyPrefix + "redrive:runs" }
func (r *Redriver) runKey(id string) string  { return r.cfg.KeyPrefix + "redrive:run:" + id }
func (r *Redriver) jobsKey(id string) string { return r.cfg.KeyPrefix + "redrive:run:" + id + ":jobs" }

// cutoff is the score before which listed runs are past the retention.
func (r *Redriver) cutoff() string {
	return "(" + strconv.FormatInt(r.cfg.Now().Add(-r.cfg.Retention).UnixMilli(), 10)
}

// saveRun writes the run's record and lists it, trimming runs past the
// retention from the list (their records expire on their own).
func (r *Redriver) saveRun(ctx context.Context, run *Run) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = r.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.runKey(run.ID), b, r.cfg.Retention)
		p.ZAdd(ctx, r.runsKey(), redis.Z{Score: float64(run.StartedAt.UnixMilli()), Member: run.ID})
		p.ZRemRangeByScore(ctx, r.runsKey(), "-inf", r.cutoff())
		return nil
	})
	if err != nil {
		return fmt.Errorf("redrive: record run %s: %w", run.ID, err)
	}
	return nil
}

func (r *Redriver) appendJobs(ctx context.Context, id string, jobs []Job) error {
	vals := make([]any, len(jobs))
	for i, j := range jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		vals[i] = b
	}
	_, err := r.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, r.jobsKey(id), vals...)
		p.Expire(ctx, r.jobsKey(id), r.cfg.Retention)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redrive: record jobs of run %s: %w", id, err)
	}
	return nil
}

// ErrRunNotFound is returned by Jobs and GetRun for an unknown (or
// expired) run.
var ErrRunNotFound = errors.New("redrive: no such run")

// History returns the recorded re-drives, newest first, at most limit
// (every one within the retention when limit <= 0).
func (r *Redriver) History(ctx context.Context, limit int) ([]Run, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	ids, err := r.cfg.Redis.ZRevRange(ctx, r.runsKey(), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("redrive: history: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.runKey(id)
	}
	// One GET each, pipelined: MGET would cross Redis Cluster slots.
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = r.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redrive: history: %w", err)
	}
	out := make([]Run, 0, len(ids))
	for _, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			continue // expired since it was listed
		}
		var run Run
		if err := json.Unmarshal(b, &run); err != nil {
			return nil, fmt.Errorf("redrive: history: %w", err)
		}
		out = append(out, run)
	}
	return out, nil
}

// GetRun returns one run's record, with its jobs.
func (r *Redriver) GetRun(ctx context.Context, id string) (*Run, error) {
	b, err := r.cfg.Redis.Get(ctx, r.runKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", ErrRunNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("redrive: run %s: %w", id, err)
	}
	var run Run
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, fmt.Errorf("redrive: run %s: %w", id, err)
	}
	vals, err := r.cfg.Redis.LRange(ctx, r.jobsKey(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redrive: jobs of run %s: %w", id, err)
	}
	for _, v := range vals {
		var j Job
		if err := json.Unmarshal([]byte(v), &j); err != nil {
			return nil, fmt.Errorf("redrive: jobs of run %s: %w", id, err)
		}
		run.Jobs = append(run.Jobs, j)
	}
	return &run, nil
}
