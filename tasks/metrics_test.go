package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
)

// series returns every series of reg as `name{label="value",...}` → value
// (a histogram's count).
func series(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
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
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// checkSeries compares the series named in want; others are not looked at.
func checkSeries(t *testing.T, reg prometheus.Gatherer, want map[string]float64) {
	t.Helper()
	got := series(t, reg)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// inFlightCaller reports the in-flight gauge as the call sees it.
type inFlightCaller struct {
	reg  prometheus.Gatherer
	t    *testing.T
	seen float64
}

func (c *inFlightCaller) Do(context.Context, gatewayclient.Request) (*gatewayclient.Result, error) {
	c.seen = series(c.t, c.reg)["gatewayq_gateway_calls_in_flight{}"]
	return &gatewayclient.Result{GatewayID: "g", SubmissionKey: "1"}, nil
}

func TestMetricsRecordCallsAndJobs(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ge := func(c gatewayclient.Class) error {
		return &gatewayclient.Error{Class: c, Operation: OpFile, Message: "m"}
	}
	tests := []struct {
		name    string
		handler func(*Handler)
		want    map[string]float64
		noCall  bool
	}{
		{
			name:    "done",
			handler: func(h *Handler) { h.Client = &fakeCaller{res: &gatewayclient.Result{GatewayID: "g"}} },
			want: map[string]float64{
				`gatewayq_gateway_calls_total{class="ok",operation="File",service="returns"}`: 1,
				`gatewayq_gateway_call_duration_seconds{operation="File",service="returns"}`:  1,
				`gatewayq_jobs_total{outcome="done"}`:                                         1,
				`gatewayq_jobs_total{outcome="parked"}`:                                       0,
			},
		},
		{
			name:    "parked as invalid",
			handler: func(h *Handler) { h.Client = &fakeCaller{err: ge(gatewayclient.ClassInvalid)} },
			want: map[string]float64{
				`gatewayq_gateway_calls_total{class="invalid",operation="File",service="returns"}`: 1,
				`gatewayq_jobs_total{outcome="parked"}`:                                            1,
				`gatewayq_jobs_parked_total{class="invalid"}`:                                      1,
				`gatewayq_jobs_parked_total{class="permission"}`:                                   0,
			},
		},
		{
			name:    "throttled: a retry, counted under its class",
			handler: func(h *Handler) { h.Client = &fakeCaller{err: ge(gatewayclient.ClassThrottled)} },
			want: map[string]float64{
				`gatewayq_gateway_calls_total{class="throttled",operation="File",service="returns"}`: 1,
				`gatewayq_jobs_total{outcome="retry"}`:                                               1,
			},
		},
		{
			name: "snoozed by the limiter: no call", noCall: true,
			handler: func(h *Handler) {
				h.Client = &fakeCaller{}
				h.Limiter = refusingLimiter{retryIn: time.Second}
			},
			want: map[string]float64{
				`gatewayq_jobs_total{outcome="snoozed"}`: 1,
				`gatewayq_gateway_calls_in_flight{}`:     0,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewPedanticRegistry()
			h := &Handler{Credentials: fakeCreds{}, Logger: quiet, Budget: Budget{Call: time.Second}, Metrics: NewMetrics(reg)}
			tt.handler(h)
			_ = h.ProcessTask(context.Background(), task(t, gstJob(t)))
			checkSeries(t, reg, tt.want)
			for k := range series(t, reg) {
				if tt.noCall && strings.HasPrefix(k, "gatewayq_gateway_calls_total") {
					t.Errorf("%s counted, but no call was made", k)
				}
			}
		})
	}

	t.Run("in flight during the call", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewPedanticRegistry()
		c := &inFlightCaller{reg: reg, t: t}
		h := &Handler{Client: c, Credentials: fakeCreds{}, Logger: quiet, Budget: Budget{Call: time.Second}, Metrics: NewMetrics(reg)}
		if err := h.ProcessTask(context.Background(), task(t, gstJob(t))); err != nil {
			t.Fatal(err)
		}
		if c.seen != 1 {
			t.Errorf("in flight during the call = %v, want 1", c.seen)
		}
		checkSeries(t, reg, map[string]float64{`gatewayq_gateway_calls_in_flight{}`: 0})
	})
}

func TestMetricsRecordReconciliations(t *testing.T) {
	t.Parallel()
	const (
		gstStatus = "returns-gst/samples/body-gst-returnstatus-response.xml"
		gstReturn = "returns-gst/samples/body-gst-retrievereturn-response.xml"
		gstFile   = "returns-gst/samples/body-gst-returnfile-response.xml"
	)
	tests := []struct {
		name     string
		answers  func(t testing.TB) map[string][]func() (*gatewayclient.Result, error)
		decision string
		calls    map[string]float64
	}{
		{
			name: "filed", decision: ReconcileFiled,
			answers: func(t testing.TB) map[string][]func() (*gatewayclient.Result, error) {
				return map[string][]func() (*gatewayclient.Result, error){
					"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, gstStatus))},
					"RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, gstReturn))},
				}
			},
			calls: map[string]float64{
				`gatewayq_gateway_calls_total{class="ok",operation="RetrieveStatus",service="returns"}`: 1,
				`gatewayq_gateway_calls_total{class="ok",operation="RetrieveReturn",service="returns"}`: 1,
			},
		},
		{
			name: "nothing filed, then sent", decision: ReconcileNotFiled,
			answers: func(t testing.TB) map[string][]func() (*gatewayclient.Result, error) {
				return map[string][]func() (*gatewayclient.Result, error){
					"RetrieveStatus": {answer(t, "RetrieveStatus", nothingFiled(t, gstStatus))},
					OpFile:           {answer(t, OpFile, irSample(t, gstFile))},
				}
			},
			calls: map[string]float64{`gatewayq_gateway_calls_total{class="ok",operation="File",service="returns"}`: 1},
		},
		{
			name: "status call unavailable", decision: ReconcileFailed,
			answers: func(testing.TB) map[string][]func() (*gatewayclient.Result, error) {
				return map[string][]func() (*gatewayclient.Result, error){"RetrieveStatus": {failure(gatewayclient.ClassUnavailable, "RetrieveStatus", true)}}
			},
			calls: map[string]float64{`gatewayq_gateway_calls_total{class="unavailable",operation="RetrieveStatus",service="returns"}`: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			l := ledger.New(r.Client, r.Prefix)
			ctx := context.Background()
			j := gstJob(t)
			tk := task(t, j) // derives j's natural key
			if _, err := l.BeginSend(ctx, LedgerKey(j), j.ID(), BodyHash(j)); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Uncertain(ctx, LedgerKey(j), j.ID(), "response lost"); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewPedanticRegistry()
			c := &scripted{answers: tt.answers(t), calls: map[string]int{}}
			h := &Handler{Client: c, Credentials: fakeCreds{}, Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Budget: Budget{Call: time.Second}, Metrics: NewMetrics(reg)}
			_ = h.ProcessTask(ctx, tk)
			want := map[string]float64{}
			for _, d := range []string{ReconcileNotFiled, ReconcileFiled, ReconcileDifferent, ReconcileFailed, ReconcileParked, ReconcileDeferred} {
				want[`gatewayq_reconciliations_total{decision="`+d+`"}`] = 0
			}
			want[`gatewayq_reconciliations_total{decision="`+tt.decision+`"}`] = 1
			for k, v := range tt.calls {
				want[k] = v
			}
			checkSeries(t, reg, want)
		})
	}
}

func TestReconcileDecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		done bool
		err  error
		want string
	}{
		{false, nil, ReconcileNotFiled},
		{true, nil, ReconcileFiled},
		{true, &ParkedError{Class: gatewayclient.ClassAlreadyFiled}, ReconcileDifferent},
		{true, &ParkedError{Class: gatewayclient.ClassUncertain}, ReconcileParked},
		{true, &ParkedError{Class: gatewayclient.ClassAuth}, ReconcileParked},
		{true, &SnoozeError{Delay: time.Second}, ReconcileDeferred},
		{true, fmt.Errorf("reconcile with RetrieveStatus: %w", &gatewayclient.Error{Class: gatewayclient.ClassThrottled}), ReconcileFailed},
		{true, context.Canceled, ReconcileFailed},
	}
	for _, tt := range tests {
		if got := reconcileDecision(tt.done, tt.err); got != tt.want {
			t.Errorf("reconcileDecision(%v, %v) = %s, want %s", tt.done, tt.err, got, tt.want)
		}
	}
}

func TestJobOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, JobDone},
		{&ParkedError{Class: gatewayclient.ClassInvalid}, JobParked},
		{&SnoozeError{Delay: time.Second}, JobSnoozed},
		{&ReconcileError{Delay: time.Second}, JobReconcile},
		{&gatewayclient.Error{Class: gatewayclient.ClassUnavailable}, JobRetry},
		{errors.New("redis down"), JobRetry},
	}
	for _, tt := range tests {
		if got := JobOutcome(tt.err); got != tt.want {
			t.Errorf("JobOutcome(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
