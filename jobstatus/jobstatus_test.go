package jobstatus_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	job := &tasks.Job{Version: 1, Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile, Endpoint: gatewayclient.EndpointCloud,
		Key: &tasks.NaturalKey{Identifier: "123039858", AccountType: "GST", PeriodEndDate: "2026-09-30", MajorFormType: "GST"}, Batch: "b-1", Ref: "r-1"}
	payload, err := job.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 2, 30, 0, 0, time.FixedZone("NZDT", 13*3600))

	tests := []struct {
		name  string
		info  asynq.TaskInfo
		check func(t *testing.T, st *jobstatus.Status)
	}{
		{"pending, queue prefix taken off, retry budget without asynq's spare attempt", asynq.TaskInfo{ID: "id-1", Queue: "env1:bulk", State: asynq.TaskStatePending, Payload: payload, MaxRetry: 26, NextProcessAt: at},
			func(t *testing.T, st *jobstatus.Status) {
				if st.Queue != "bulk" || st.TaskQueue != "env1:bulk" || st.State != "pending" || st.MaxRetry != 25 {
					t.Errorf("%+v", st)
				}
				if st.NextRunAt == nil || !st.NextRunAt.Equal(at) || st.NextRunAt.Location() != time.UTC {
					t.Errorf("next run = %v, want %v in UTC", st.NextRunAt, at)
				}
				want := jobstatus.Job{Service: "returns", Operation: "File", Endpoint: "cloud", Key: "GST/123039858/GST/2026-09-30", Batch: "b-1", Ref: "r-1"}
				if st.Job == nil || *st.Job != want {
					t.Errorf("job = %+v, want %+v", st.Job, want)
				}
				if st.CompletedAt != nil || st.LastFailedAt != nil || st.Result != nil {
					t.Errorf("unset fields set: %+v", st)
				}
			}},
		{"completed with a result", asynq.TaskInfo{ID: "id-2", Queue: "realtime", State: asynq.TaskStateCompleted, Payload: payload, CompletedAt: at, NextProcessAt: at,
			Result: []byte(`{"class":"ok","gateway_id":"GW-1"}`)},
			func(t *testing.T, st *jobstatus.Status) {
				if st.NextRunAt != nil || st.CompletedAt == nil || string(st.Result) != `{"class":"ok","gateway_id":"GW-1"}` {
					t.Errorf("%+v", st)
				}
			}},
		{"archived with a result that is not JSON", asynq.TaskInfo{ID: "id-3", Queue: "realtime", State: asynq.TaskStateArchived, Payload: []byte("not a job"),
			Retried: 3, LastErr: "boom", LastFailedAt: at, Result: []byte("half {")},
			func(t *testing.T, st *jobstatus.Status) {
				if st.Job != nil || st.Retried != 3 || st.LastError != "boom" || st.LastFailedAt == nil {
					t.Errorf("%+v", st)
				}
				var s string
				if err := json.Unmarshal(st.Result, &s); err != nil || s != "half {" {
					t.Errorf("result = %s (%v), want a JSON string", st.Result, err)
				}
				if _, err := json.Marshal(st); err != nil {
					t.Errorf("status does not encode: %v", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info := tt.info
			tt.check(t, jobstatus.Describe(&info, "env1:"))
		})
	}
}

// brokenLedger fails every read.
type brokenLedger struct{}

func (brokenLedger) Get(context.Context, string) (ledger.Entry, error) {
	return ledger.Entry{}, errors.New("ledger down")
}

func TestFind(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ac := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer ac.Close()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	defer insp.Close()
	enq := tasks.NewEnqueuer(ac, tasks.EnqueueOptions{QueuePrefix: r.Prefix})
	res, err := enq.Enqueue(t.Context(), newJob(), tasks.QueueBulk)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(r.Client, r.Prefix)
	f := jobstatus.New(insp, jobstatus.Options{QueuePrefix: r.Prefix, Ledger: l})

	st, err := f.Find(t.Context(), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != res.ID || st.Queue != "bulk" || st.State != "pending" || st.Ledger != nil {
		t.Errorf("before the ledger knows it: %+v", st)
	}
	for _, qs := range [][]string{{tasks.QueueRealtime}, {tasks.QueueRealtime, tasks.QueueRedrive}} {
		if _, err := f.Find(t.Context(), res.ID, qs...); !errors.Is(err, jobstatus.ErrNotFound) {
			t.Errorf("on %v: %v, want ErrNotFound", qs, err)
		}
	}
	if _, err := f.Find(t.Context(), "no-such-task"); !errors.Is(err, jobstatus.ErrNotFound) {
		t.Errorf("unknown: %v, want ErrNotFound", err)
	}

	if _, err := l.Queued(t.Context(), "GST/123039858/GST/2026-09-30", res.ID, "hash"); err != nil {
		t.Fatal(err)
	}
	st, err = f.Find(t.Context(), res.ID, tasks.QueueBulk)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ledger == nil || st.Ledger.State != "queued" || st.Ledger.TaskID != res.ID || st.Ledger.Key != "GST/123039858/GST/2026-09-30" {
		t.Errorf("ledger = %+v", st.Ledger)
	}

	broken := jobstatus.New(insp, jobstatus.Options{QueuePrefix: r.Prefix, Ledger: brokenLedger{}})
	if _, err := broken.Find(t.Context(), res.ID); err == nil {
		t.Error("a ledger that cannot be read: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Find(ctx, res.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func newJob() *tasks.Job {
	return &tasks.Job{
		Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile,
		Auth: tasks.Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "acme-user-17"},
		Body: gstPayload, Ref: "payslip-4411",
	}
}
