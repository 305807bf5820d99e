package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// Outcome is where one line of a batch stands.
type Outcome string

// Outcomes. Pending, active, scheduled and retry are still moving; the
// others are final until an operator re-drives the job.
const (
	OutcomePending   Outcome = "pending"
	OutcomeActive    Outcome = "active"
	OutcomeScheduled Outcome = "scheduled"
	OutcomeRetry     Outcome = "retry"
	// OutcomeFiled: the filing ledger says IR holds the return.
	OutcomeFiled Outcome = "filed"
	// OutcomeDone: a job other than a File completed.
	OutcomeDone Outcome = "done"
	// OutcomeRejected: IR refused it (invalid, permission, configuration):
	// nothing was filed; fix the cause and re-drive.
	OutcomeRejected Outcome = "rejected"
	// OutcomeParked: archived for another reason (needs re-consent,
	// retries ran out).
	OutcomeParked Outcome = "parked"
	// OutcomeUncertain: the return may have been filed; a re-drive
	// reconciles it with IR before anything is sent.
	OutcomeUncertain Outcome = "uncertain"
	// OutcomeRefused: the line was refused at enqueue (not a valid job).
	OutcomeRefused Outcome = "refused"
	// OutcomeUnknown: the task is gone (past asynq's retention) and
	// neither the ledger nor the failure index knows it.
	OutcomeUnknown Outcome = "unknown"
)

// Line is one line of the morning report.
type Line struct {
	Line       int    `json:"line,omitempty"`
	NaturalKey string `json:"natural_key,omitempty"`
	Ref        string `json:"ref,omitempty"`
	// TaskID is the task the job runs under now (a corrected job's new
	// ID after a re-drive).
	TaskID  string  `json:"task_id,omitempty"`
	Outcome Outcome `json:"outcome"`
	// Class is the failure's class (invalid, permission, auth, ...).
	Class         string `json:"class,omitempty"`
	GatewayID     string `json:"gateway_id,omitempty"`
	SubmissionKey string `json:"submission_key,omitempty"`
	// StatusCode is IR's statusCode ("0" for a filing), or its REST or
	// SOAP fault code.
	StatusCode string `json:"status_code,omitempty"`
	Message    string `json:"message,omitempty"`
}

// Report calls fn with one line per member of batch id, in line order,
// reading a page of members at a time (memory stays flat). It returns
// ErrNotFound for an unknown batch, and fn's error when fn fails.
func (s *Store) Report(ctx context.Context, id string, fn func(Line) error) error {
	if _, _, err := s.meta(ctx, id); err != nil {
		return err
	}
	return s.walk(ctx, id, func(page []Member) error {
		lines, err := s.resolve(ctx, page)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	})
}

// ledgerReaders bounds the concurrent ledger reads of one page.
const ledgerReaders = 16

// resolve works out each member's line: asynq's state for the task, the
// ledger's entry and the failure index's record, in a few round trips a
// page.
func (s *Store) resolve(ctx context.Context, page []Member) ([]Line, error) {
	n := len(page)
	states := make([]string, n)
	ids := make([]string, n)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i, m := range page {
		if m.TaskID == "" {
			continue
		}
		q, id := m.where()
		ids[i] = id
		cmds[i] = pipe.HGet(ctx, asynqTaskKey(q, id), "state")
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("batch: task states: %w", err)
		}
	}
	for i, c := range cmds {
		if c != nil {
			states[i] = c.Val()
		}
	}
	recs, err := s.failures.GetMany(ctx, compact(ids))
	if err != nil {
		return nil, err
	}
	byTask := make(map[string]failures.Record, len(recs))
	for _, r := range recs {
		if r.TaskID != "" {
			byTask[r.TaskID] = r
		}
	}
	entries, err := s.ledgerEntries(ctx, page)
	if err != nil {
		return nil, err
	}

	lines := make([]Line, n)
	var unexplained []int // archived with no record: read the result asynq kept
	for i, m := range page {
		rec, hasRec := byTask[ids[i]]
		e, hasEntry := entries[i]
		lines[i] = decide(m, ids[i], states[i], rec, hasRec, e, hasEntry)
		if lines[i].Outcome == OutcomeParked && !hasRec {
			unexplained = append(unexplained, i)
		}
	}
	if len(unexplained) > 0 {
		if err := s.explain(ctx, page, lines, unexplained); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

func compact(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// ledgerEntries reads the ledger entries of the page's Files, a few at a
// time. A missing entry is simply absent from the map.
func (s *Store) ledgerEntries(ctx context.Context, page []Member) (map[int]ledger.Entry, error) {
	var (
		mu   sync.Mutex
		out  = map[int]ledger.Entry{}
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, ledgerReaders)
	)
	for i, m := range page {
		if m.LedgerKey == "" || m.TaskID == "" {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			e, err := s.ledger.Get(ctx, m.LedgerKey)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[i] = e
			case !errors.Is(err, ledger.ErrNotFound):
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("batch: ledger: %w", errors.Join(errs...))
	}
	return out, nil
}

// decide is one member's line. The ledger is the truth about a File; an
// asynq state still moving says so; otherwise the failure index tells why
// the job stopped.
func decide(m Member, taskID, state string, rec failures.Record, hasRec bool, e ledger.Entry, hasEntry bool) Line {
	l := Line{Line: m.Line, NaturalKey: m.Key, Ref: m.Ref, TaskID: taskID}
	if m.Refused != "" {
		l.Outcome, l.Message = OutcomeRefused, m.Refused
		return l
	}
	switch state {
	case statePending, stateAggregating:
		l.Outcome = OutcomePending
	case stateActive:
		l.Outcome = OutcomeActive
	case stateScheduled:
		l.Outcome = OutcomeScheduled
	case stateRetry:
		l.Outcome = OutcomeRetry
	}
	if hasEntry && e.State == ledger.StateFiled {
		// Filed is final whatever the task is doing: a job still queued for
		// a filed return completes without a File.
		l.Outcome, l.GatewayID, l.SubmissionKey, l.StatusCode = OutcomeFiled, e.GatewayID, e.SubmissionKey, "0"
		if e.Reconciled {
			l.Message = "filed (reconciled with IR)"
		}
		return l
	}
	if l.Outcome != "" {
		return l
	}
	if state == stateCompleted {
		l.Outcome, l.StatusCode = OutcomeDone, "0"
		return l
	}
	// Archived, or gone from asynq.
	switch {
	case hasRec && rec.State == failures.StateFailed:
		l.Class, l.StatusCode, l.Message = rec.Class, codeOf(rec.StatusCode, rec.Code), rec.Message
		if l.Message == "" {
			l.Message = rec.Reason
		}
		l.Outcome = outcomeOfClass(rec.Class)
		if hasEntry && (e.State == ledger.StateUncertain || e.State == ledger.StateSending) {
			l.Outcome = OutcomeUncertain
		}
	case hasEntry && e.State == ledger.StateRejected:
		l.Outcome, l.Class, l.StatusCode, l.Message = OutcomeRejected, e.Class, e.Code, e.Message
	case hasEntry && (e.State == ledger.StateUncertain || e.State == ledger.StateSending):
		l.Outcome, l.Class, l.Message = OutcomeUncertain, gatewayclient.ClassUncertain.String(), e.Why
	case state == stateArchived:
		l.Outcome = OutcomeParked
	default:
		l.Outcome = OutcomeUnknown
	}
	return l
}

func outcomeOfClass(class string) Outcome {
	switch class {
	case gatewayclient.ClassInvalid.String(), gatewayclient.ClassPermission.String(), gatewayclient.ClassConfig.String():
		return OutcomeRejected
	case gatewayclient.ClassUncertain.String(), gatewayclient.ClassAlreadyFiled.String():
		return OutcomeUncertain
	}
	return OutcomeParked
}

func codeOf(status int, code string) string {
	if status != 0 {
		return strconv.Itoa(status)
	}
	return code
}

// explain fills the lines of archived tasks the failure index does not
// know (archived by a worker without the index, or by asynq itself on a
// deadline or panic) from the outcome asynq kept as the task's result.
func (s *Store) explain(ctx context.Context, page []Member, lines []Line, idx []int) error {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(idx))
	for k, i := range idx {
		q, id := page[i].where()
		cmds[k] = pipe.HGet(ctx, asynqTaskKey(q, id), "result")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("batch: task results: %w", err)
	}
	for k, i := range idx {
		var out tasks.Outcome
		if err := json.Unmarshal([]byte(cmds[k].Val()), &out); err != nil {
			lines[i].Message = "archived without a recorded outcome"
			continue
		}
		l := &lines[i]
		l.Class, l.StatusCode, l.Message = out.Class, codeOf(out.StatusCode, ""), out.ErrorMessage
		if l.Message == "" {
			l.Message = out.Reason
		}
		l.Outcome = outcomeOfClass(out.Class)
	}
	return nil
}

// Status is a batch's progress and outcome counts: what
// `enqueue batch status` prints and GET /v1/batches/{id} returns.
type Status struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Lines counts the batch's recorded lines: Jobs on the queues plus
	// Refused at enqueue.
	Lines   int `json:"lines"`
	Jobs    int `json:"jobs"`
	Refused int `json:"refused_at_enqueue"`
	// Still moving.
	Pending   int `json:"pending"`
	Active    int `json:"active"`
	Scheduled int `json:"scheduled"`
	Retry     int `json:"retry"`
	// Final.
	Filed     int `json:"filed"`
	Done      int `json:"done"`
	Rejected  int `json:"rejected"`
	Parked    int `json:"parked"`
	Uncertain int `json:"uncertain"`
	Unknown   int `json:"unknown"`
	// FailedByClass counts the rejected, parked and uncertain jobs by
	// class (invalid, permission, auth, uncertain, ...).
	FailedByClass map[string]int `json:"failed_by_class"`
	// Finished counts the jobs in a final outcome; Progress is Finished
	// as a percentage of Jobs (100 for a batch with no jobs).
	Finished int     `json:"finished"`
	Progress float64 `json:"progress_percent"`
	Complete bool    `json:"complete"`
}

// Failed is how many jobs of the batch ended in a failure.
func (st Status) Failed() int { return st.Rejected + st.Parked + st.Uncertain }

// Status counts where batch id's jobs stand. It reads every member (a few
// round trips per 500), so it costs in proportion to the batch's size;
// nothing is scanned beyond the batch. It returns ErrNotFound for an
// unknown or expired batch.
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	created, updated, err := s.meta(ctx, id)
	if err != nil {
		return Status{}, err
	}
	st := Status{ID: id, CreatedAt: created, UpdatedAt: updated, FailedByClass: map[string]int{}}
	err = s.walk(ctx, id, func(page []Member) error {
		lines, err := s.resolve(ctx, page)
		if err != nil {
			return err
		}
		for _, l := range lines {
			st.add(l)
		}
		return nil
	})
	if err != nil {
		return Status{}, err
	}
	st.Finished = st.Filed + st.Done + st.Failed() + st.Unknown
	st.Progress = 100
	if st.Jobs > 0 {
		// Rounded down: 99.96% is not yet 100%.
		st.Progress = math.Floor(1000*float64(st.Finished)/float64(st.Jobs)) / 10
	}
	st.Complete = st.Finished == st.Jobs
	return st, nil
}

func (st *Status) add(l Line) {
	st.Lines++
	if l.Outcome == OutcomeRefused {
		st.Refused++
		return
	}
	st.Jobs++
	switch l.Outcome {
	case OutcomePending:
		st.Pending++
	case OutcomeActive:
		st.Active++
	case OutcomeScheduled:
		st.Scheduled++
	case OutcomeRetry:
		st.Retry++
	case OutcomeFiled:
		st.Filed++
	case OutcomeDone:
		st.Done++
	case OutcomeRejected:
		st.Rejected++
	case OutcomeParked:
		st.Parked++
	case OutcomeUncertain:
		st.Uncertain++
	default:
		st.Unknown++
	}
	switch l.Outcome {
	case OutcomeRejected, OutcomeParked, OutcomeUncertain:
		class := l.Class
		if class == "" {
			class = "unknown"
		}
		st.FailedByClass[class]++
	}
}
