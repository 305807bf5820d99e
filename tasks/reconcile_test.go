package tasks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/schema"
)

func irSample(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ir-gws", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// answer parses an IR response envelope the way Client.Do does, so the
// handler sees exactly what it would get from the gateway.
func answer(t testing.TB, op string, envelope []byte) func() (*gatewayclient.Result, error) {
	t.Helper()
	o, err := gatewayclient.LookupOperation(gatewayclient.ServiceReturns, op)
	if err != nil {
		t.Fatal(err)
	}
	res, perr := gatewayclient.ParseSOAPResponse(o, 200, envelope)
	if perr == nil {
		if ge := gatewayclient.Classify(o, res, nil); ge != nil {
			perr = ge
		}
	}
	return func() (*gatewayclient.Result, error) { return res, perr }
}

func failure(class gatewayclient.Class, op string, sent bool) func() (*gatewayclient.Result, error) {
	return func() (*gatewayclient.Result, error) {
		return nil, &gatewayclient.Error{Class: class, Operation: op, Sent: sent, Message: "injected"}
	}
}

// nothingFiled is the sandbox's answer to RetrieveStatus for a return it
// has no filing of: IR's status sample with statusCode StatusNothingFiled
// and no responseBody.
func nothingFiled(t testing.TB, sample string) []byte {
	s := string(irSample(t, sample))
	s = strings.Replace(s, "<statusCode>0</statusCode>", "<statusCode>104</statusCode>", 1)
	s = strings.Replace(s, "<errorMessage/>", "<errorMessage>No return has been filed for this account and period</errorMessage>", 1)
	if i, j := strings.Index(s, "<responseBody>"), strings.Index(s, "</responseBody>"); i >= 0 && j > i {
		s = s[:i] + s[j+len("</responseBody>"):]
	}
	return []byte(s)
}

// scripted answers each operation from a queue of answers.
type scripted struct {
	mu      sync.Mutex
	answers map[string][]func() (*gatewayclient.Result, error)
	calls   map[string]int
}

func (s *scripted) Do(ctx context.Context, req gatewayclient.Request) (*gatewayclient.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("call without a deadline")
	}
	if req.Operation != OpFile {
		if err := schema.Validate(req.Payload); err != nil {
			return nil, &gatewayclient.Error{Class: gatewayclient.ClassInvalid, Operation: req.Operation, Message: "XSD: " + err.Error()}
		}
	}
	s.calls[req.Operation]++
	q := s.answers[req.Operation]
	if len(q) == 0 {
		return nil, errors.New("unexpected call " + req.Operation)
	}
	s.answers[req.Operation] = q[1:]
	return q[0]()
}

func eiJob(t testing.TB) *Job {
	return &Job{
		Service: gatewayclient.ServiceReturns, Operation: OpFile,
		Auth: Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "ts-1"},
		Body: samplePayload(t, "returns-ei/samples/body-ei-returnfile-request.xml"),
	}
}

func TestReconcileDecisions(t *testing.T) {
	t.Parallel()
	const (
		gstStatus   = "returns-gst/samples/body-gst-returnstatus-response.xml"
		gstReturn   = "returns-gst/samples/body-gst-retrievereturn-response.xml"
		gstFileResp = "returns-gst/samples/body-gst-returnfile-response.xml"
		eiStatus    = "returns-ei/samples/body-ei-returnstatus-response.xml"
		eiReturn    = "returns-ei/samples/body-ei-retrievereturn-response.xml"
	)
	changed := func(t testing.TB) []byte {
		return []byte(strings.Replace(string(irSample(t, gstReturn)), "<r:totalGST>3093.36</r:totalGST>", "<r:totalGST>3093.37</r:totalGST>", 1))
	}
	duplicate := func(t testing.TB, code string) func() (*gatewayclient.Result, error) {
		s := strings.Replace(string(irSample(t, gstFileResp)), "<statusCode>0</statusCode>", "<statusCode>"+code+"</statusCode>", 1)
		return answer(t, OpFile, []byte(s))
	}
	type script map[string][]func() (*gatewayclient.Result, error)
	tests := []struct {
		name       string
		job        func(testing.TB) *Job
		entry      ledger.State  // before the run; "" none
		otherTask  bool          // the entry was marked by another task
		sentAgo    time.Duration // how long ago the entry was marked sending
		refresh    *refreshing   // OAuth credentials that refresh when IR refuses them
		answers    func(t testing.TB) script
		wantErr    string // "" success; "parked:<class>", "reconcile", "retry", "snooze"
		wantReason string // in a parked job's reason
		wantState  ledger.State
		wantSub    string
		wantCalls  map[string]int
	}{
		{
			name: "status 0 and the same form fields: filed (reconciled), never re-sent", job: gstJob, entry: ledger.StateUncertain,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, gstStatus))}, "RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, gstReturn))}}
			},
			wantState: ledger.StateFiled, wantSub: "235067864", wantCalls: map[string]int{"RetrieveStatus": 1, "RetrieveReturn": 1},
		},
		{
			name: "status 0 and different form fields: parked for an operator", job: gstJob, entry: ledger.StateUncertain,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, gstStatus))}, "RetrieveReturn": {answer(t, "RetrieveReturn", changed(t))}}
			},
			wantErr: "parked:already_filed", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1, "RetrieveReturn": 1},
		},
		{
			name: "104 nothing filed: sent once, filed", job: gstJob, entry: ledger.StateUncertain,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", nothingFiled(t, gstStatus))}, OpFile: {answer(t, OpFile, irSample(t, gstFileResp))}}
			},
			wantState: ledger.StateFiled, wantSub: "1108852352", wantCalls: map[string]int{"RetrieveStatus": 1, OpFile: 1},
		},
		{
			name: "a worker that died mid-send: the task's own sending entry is reconciled once its call must have ended", job: gstJob, entry: ledger.StateSending, sentAgo: time.Minute,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, gstStatus))}, "RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, gstReturn))}}
			},
			wantState: ledger.StateFiled, wantSub: "235067864", wantCalls: map[string]int{"RetrieveStatus": 1, "RetrieveReturn": 1},
		},
		{
			name: "this task's own attempt sent it just now (its worker taken for dead, maybe still calling): wait, ask nothing", job: gstJob, entry: ledger.StateSending,
			answers: func(testing.TB) script { return script{} }, wantErr: "snooze", wantState: ledger.StateSending, wantCalls: map[string]int{},
		},
		{
			name: "another job sending the same return long ago: reconciled", job: gstJob, entry: ledger.StateSending, otherTask: true, sentAgo: time.Minute,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, gstStatus))}, "RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, gstReturn))}}
			},
			wantState: ledger.StateFiled, wantSub: "235067864", wantCalls: map[string]int{"RetrieveStatus": 1, "RetrieveReturn": 1},
		},
		{
			name: "another job sending the same return right now: wait, ask nothing", job: gstJob, entry: ledger.StateSending, otherTask: true,
			answers: func(testing.TB) script { return script{} }, wantErr: "snooze", wantState: ledger.StateSending, wantCalls: map[string]int{},
		},
		{
			name: "107 on File: uncertain, reconciled on the next attempt", job: gstJob,
			answers: func(t testing.TB) script { return script{OpFile: {duplicate(t, "107")}} },
			wantErr: "reconcile", wantState: ledger.StateUncertain, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "160 on a payday File: uncertain, reconciled on the next attempt", job: eiJob,
			answers: func(t testing.TB) script { return script{OpFile: {duplicate(t, "160")}} },
			wantErr: "reconcile", wantState: ledger.StateUncertain, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "payday return: IR's sample filing differs from ours: parked", job: eiJob, entry: ledger.StateUncertain,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, eiStatus))}, "RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, eiReturn))}}
			},
			wantErr: "parked:already_filed", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1, "RetrieveReturn": 1},
		},
		{
			name: "reconciliation call fails transiently: retried, nothing sent", job: gstJob, entry: ledger.StateUncertain,
			answers: func(testing.TB) script {
				return script{"RetrieveStatus": {failure(gatewayclient.ClassUnavailable, "RetrieveStatus", false)}}
			},
			wantErr: "retry", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1},
		},
		{
			name: "malformed status answer: retried, nothing sent", job: gstJob, entry: ledger.StateUncertain,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", []byte("<html><body>Bad gateway</body></html>"))}}
			},
			wantErr: "retry", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1},
		},
		{
			name: "File cut at its deadline: uncertain, reconciled on the next attempt", job: gstJob,
			answers: func(testing.TB) script { return script{OpFile: {failure(gatewayclient.ClassUncertain, OpFile, true)}} },
			wantErr: "reconcile", wantState: ledger.StateUncertain, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "malformed answer to a File: uncertain", job: gstJob,
			answers: func(t testing.TB) script { return script{OpFile: {answer(t, OpFile, []byte("<html/>"))}} },
			wantErr: "reconcile", wantState: ledger.StateUncertain, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "503 after the request was written: uncertain, retried like an outage", job: gstJob,
			answers: func(testing.TB) script {
				return script{OpFile: {failure(gatewayclient.ClassUnavailable, OpFile, true)}}
			},
			wantErr: "retry", wantState: ledger.StateUncertain, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "connection refused: nothing sent, released", job: gstJob,
			answers: func(testing.TB) script {
				return script{OpFile: {failure(gatewayclient.ClassUnavailable, OpFile, false)}}
			},
			wantErr: "retry", wantState: ledger.StateQueued, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "invalid: rejected", job: gstJob,
			answers: func(testing.TB) script { return script{OpFile: {failure(gatewayclient.ClassInvalid, OpFile, true)}} },
			wantErr: "parked:invalid", wantState: ledger.StateRejected, wantCalls: map[string]int{OpFile: 1},
		},
		{
			name: "access token expired during reconciliation: refreshed once, asked again, filed", job: gstJob, entry: ledger.StateUncertain, refresh: &refreshing{},
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {failure(gatewayclient.ClassAuth, "RetrieveStatus", true), answer(t, "RetrieveStatus", irSample(t, gstStatus))}, "RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, gstReturn))}}
			},
			wantState: ledger.StateFiled, wantSub: "235067864", wantCalls: map[string]int{"RetrieveStatus": 2, "RetrieveReturn": 1},
		},
		{
			name: "consent withdrawn during reconciliation: parked for re-consent, never re-sent", job: gstJob, entry: ledger.StateUncertain,
			refresh: &refreshing{err: &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: "needs re-consent: token set \"u\""}},
			answers: func(testing.TB) script {
				return script{"RetrieveStatus": {failure(gatewayclient.ClassAuth, "RetrieveStatus", true)}}
			},
			wantErr: "parked:auth", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1},
		},
		{
			name: "a worker died sending a File its user has no delegation for: parked as permission, left uncertain for a re-drive to reconcile", job: gstJob, entry: ledger.StateSending, sentAgo: time.Minute,
			answers: func(testing.TB) script {
				return script{"RetrieveStatus": {failure(gatewayclient.ClassPermission, "RetrieveStatus", true)}}
			},
			wantErr: "parked:permission", wantReason: "lacks delegated access to identifier 123039858, account type GST; IR refused RetrieveStatus, so the File's outcome is still unknown",
			wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1},
		},
		{
			name: "DSP not onboarded for the look-up: parked as configuration, left uncertain", job: gstJob, entry: ledger.StateUncertain,
			answers: func(t testing.TB) script {
				return script{"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, gstStatus))}, "RetrieveReturn": {failure(gatewayclient.ClassConfig, "RetrieveReturn", true)}}
			},
			wantErr: "parked:config", wantReason: "not onboarded", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1, "RetrieveReturn": 1},
		},
		{
			name: "IR calls the look-up itself invalid: parked uncertain for an operator", job: gstJob, entry: ledger.StateUncertain,
			answers: func(testing.TB) script {
				return script{"RetrieveStatus": {failure(gatewayclient.ClassInvalid, "RetrieveStatus", true)}}
			},
			wantErr: "parked:uncertain", wantReason: "reconcile by hand", wantState: ledger.StateUncertain, wantCalls: map[string]int{"RetrieveStatus": 1},
		},
		{
			name: "already filed in the ledger: done without a call", job: gstJob, entry: ledger.StateFiled,
			answers: func(testing.TB) script { return script{} }, wantState: ledger.StateFiled, wantCalls: map[string]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			l := ledger.New(r.Client, r.Prefix)
			ctx := context.Background()
			j := tt.job(t)
			tk := task(t, j)
			key := LedgerKey(j)
			sender := j.ID()
			if tt.otherTask {
				sender = "another-task"
			}
			marker := ledger.New(r.Client, r.Prefix, ledger.WithClock(func() time.Time { return time.Now().Add(-tt.sentAgo) }))
			switch tt.entry {
			case ledger.StateSending, ledger.StateUncertain, ledger.StateFiled:
				if _, err := marker.BeginSend(ctx, key, sender, BodyHash(j)); err != nil {
					t.Fatal(err)
				}
			}
			switch tt.entry {
			case ledger.StateUncertain:
				_, _ = l.Uncertain(ctx, key, sender, "response lost")
			case ledger.StateFiled:
				_, _ = l.Filed(ctx, key, sender, ledger.Filing{GatewayID: "G", SubmissionKey: "S"})
			}
			c := &scripted{answers: tt.answers(t), calls: map[string]int{}}
			var creds CredentialSource = fakeCreds{}
			if tt.refresh != nil {
				creds = tt.refresh
			}
			h := &Handler{Client: c, Credentials: creds, Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Budget: Budget{Call: time.Second}}
			err := h.ProcessTask(ctx, tk)
			checkErr(t, err, tt.wantErr)
			if p := (*ParkedError)(nil); tt.wantReason != "" && (!errors.As(err, &p) || !strings.Contains(p.Reason, tt.wantReason)) {
				t.Fatalf("parked for %v, want a reason with %q", err, tt.wantReason)
			}
			e, gerr := l.Get(ctx, key)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if e.State != tt.wantState || (tt.wantSub != "" && e.SubmissionKey != tt.wantSub) {
				t.Fatalf("ledger %s (submission key %q), want %s (%q); %+v", e.State, e.SubmissionKey, tt.wantState, tt.wantSub, e)
			}
			if tt.refresh != nil && tt.refresh.rejected.Load() != 1 {
				t.Errorf("Rejected called %d times, want once", tt.refresh.rejected.Load())
			}
			for op, n := range tt.wantCalls {
				if c.calls[op] != n {
					t.Errorf("%s called %d times, want %d", op, c.calls[op], n)
				}
			}
			for op, n := range c.calls {
				if _, ok := tt.wantCalls[op]; !ok && n > 0 {
					t.Errorf("unexpected %d %s calls", n, op)
				}
			}
		})
	}
}

// refreshing is a token set's credentials: Rejected refreshes it (or
// fails with err).
type refreshing struct {
	err      error
	rejected atomic.Int32
}

func (r *refreshing) For(context.Context, Auth) (gatewayclient.Credentials, error) { return r, nil }

func (r *refreshing) AuthorizationHeader(context.Context) (string, error) { return "Bearer t", nil }

func (r *refreshing) Rejected(context.Context) error {
	r.rejected.Add(1)
	return r.err
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	var (
		p  *ParkedError
		re *ReconcileError
		se *SnoozeError
	)
	switch {
	case want == "":
		if err != nil {
			t.Fatalf("want done, got %v", err)
		}
	case strings.HasPrefix(want, "parked:"):
		if !errors.As(err, &p) || p.Class.String() != strings.TrimPrefix(want, "parked:") || !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("want %s, got %v", want, err)
		}
		if p.Class == gatewayclient.ClassAlreadyFiled && !strings.Contains(p.Reason, "a different return is already filed for this period") {
			t.Fatalf("reason %q", p.Reason)
		}
	case want == "reconcile":
		if !errors.As(err, &re) || errors.Is(err, asynq.SkipRetry) || !IsFailure(err) {
			t.Fatalf("want a ReconcileError that spends the retry budget, got %v", err)
		}
		if d := RetryDelay(3, err, nil); d > 5*time.Second {
			t.Fatalf("reconciliation delayed %v", d)
		}
	case want == "snooze":
		if !errors.As(err, &se) || IsFailure(err) {
			t.Fatalf("want a snooze, got %v", err)
		}
	case want == "retry":
		if err == nil || errors.Is(err, asynq.SkipRetry) || errors.As(err, &re) || errors.As(err, &p) {
			t.Fatalf("want a plain retry, got %v", err)
		}
	default:
		t.Fatalf("bad want %q", want)
	}
}

// TestReconcileAfter107 runs both attempts: the File gets 107, the next
// attempt finds IR holds this very return, and completes without a resend.
func TestReconcileAfter107(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := ledger.New(r.Client, r.Prefix)
	j := gstJob(t)
	dup := strings.Replace(string(irSample(t, "returns-gst/samples/body-gst-returnfile-response.xml")), "<statusCode>0</statusCode>", "<statusCode>107</statusCode>", 1)
	c := &scripted{calls: map[string]int{}, answers: map[string][]func() (*gatewayclient.Result, error){
		OpFile:           {answer(t, OpFile, []byte(dup))},
		"RetrieveStatus": {answer(t, "RetrieveStatus", irSample(t, "returns-gst/samples/body-gst-returnstatus-response.xml"))},
		"RetrieveReturn": {answer(t, "RetrieveReturn", irSample(t, "returns-gst/samples/body-gst-retrievereturn-response.xml"))},
	}}
	h := &Handler{Client: c, Credentials: fakeCreds{}, Ledger: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Budget: Budget{Call: time.Second}}
	var re *ReconcileError
	if err := h.ProcessTask(context.Background(), task(t, j)); !errors.As(err, &re) {
		t.Fatalf("first attempt: %v", err)
	}
	if err := h.ProcessTask(context.Background(), task(t, j)); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	e, _ := l.Get(context.Background(), LedgerKey(j))
	if e.State != ledger.StateFiled || !e.Reconciled || e.SubmissionKey != "235067864" || c.calls[OpFile] != 1 {
		t.Fatalf("ledger %+v, File calls %d", e, c.calls[OpFile])
	}
}

func TestRetrieveRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, submissionKey string
		wantRoot                  string
	}{
		{"GST v1", "returns-gst/samples/body-gst-returnfile-request-GST101A.xml", "", "<rc:retrieveFormInfoRequest"},
		{"EI v2", "returns-ei/samples/body-ei-returnfile-request.xml", "", "<ei:retrieveEIRequest"},
		{"EI v2 with a submission key", "returns-ei/samples/body-ei-returnfile-request.xml", "987654321", "<ei:retrieveEIRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := samplePayload(t, tt.file)
			req, err := RetrieveRequest([]byte(file), tt.submissionKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(req); err != nil {
				t.Fatalf("does not validate: %v\n%s", err, req)
			}
			if !strings.HasPrefix(string(req), tt.wantRoot) || !strings.Contains(string(req), "<cmn:softwareProvider>SoftwareProvider</cmn:softwareProvider>") {
				t.Fatalf("request %s", req)
			}
			if tt.submissionKey != "" && !strings.Contains(string(req), "<ei:submissionKey>"+tt.submissionKey+"<") {
				t.Fatalf("no submission key in %s", req)
			}
			want, _ := ExtractNaturalKey([]byte(file))
			got, err := ExtractNaturalKey(req)
			if err != nil || !got.Equal(want) {
				t.Fatalf("request's key %v (%v), want %v", got, err, want)
			}
		})
	}
	t.Run("not a File payload", func(t *testing.T) {
		t.Parallel()
		if _, err := RetrieveRequest([]byte(samplePayload(t, "returns-gst/samples/body-gst-returnstatus-request.xml")), ""); err == nil {
			t.Fatal("built a request from a status request")
		}
	})
}

func TestSameFormFields(t *testing.T) {
	t.Parallel()
	gstFile := samplePayload(t, "returns-gst/samples/body-gst-returnfile-request-GST101A.xml")
	gstAnswer := string(irSample(t, "returns-gst/samples/body-gst-retrievereturn-response.xml"))
	tests := []struct {
		name         string
		sent, answer string
		want         bool
		wantErr      bool
	}{
		{"IR's GST sample answer holds IR's GST101A filing", gstFile, gstAnswer, true, false},
		{"IR's EI sample answer is another payday filing", samplePayload(t, "returns-ei/samples/body-ei-returnfile-request.xml"), string(irSample(t, "returns-ei/samples/body-ei-retrievereturn-response.xml")), false, false},
		{"one amount differs", gstFile, strings.Replace(gstAnswer, "<r:totalSales>1000.00<", "<r:totalSales>1000.01<", 1), false, false},
		{"decimals compare by value", gstFile, strings.ReplaceAll(gstAnswer, ">1000.00<", ">1000<"), true, false},
		{"children in another order", gstFile, strings.Replace(strings.Replace(gstAnswer, "<r:totalSales>1000.00</r:totalSales>", "", 1), "<r:totalGST>", "<r:totalSales>1000.00</r:totalSales><r:totalGST>", 1), true, false},
		{"a field missing", gstFile, strings.Replace(gstAnswer, "<r:totalExpenses>1000.00</r:totalExpenses>", "", 1), false, false},
		{"an answer without formFields", gstFile, "<retrieveReturnResponse/>", false, true},
		{"an answer that is not XML", gstFile, "<formFields><a>1</b></formFields>", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SameFormFields([]byte(tt.sent), []byte(tt.answer))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("SameFormFields = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLedgerKeyVersions(t *testing.T) {
	t.Parallel()
	orig := gstJob(t)
	amend := func(total string) *Job {
		j := gstJob(t)
		j.Body = strings.Replace(strings.Replace(j.Body, "<ret2:isAmended>false<", "<ret2:isAmended>true<", 1), "3093.36", total, 1)
		if err := j.Normalize(); err != nil {
			t.Fatal(err)
		}
		return j
	}
	if err := orig.Normalize(); err != nil {
		t.Fatal(err)
	}
	a1, a1again, a2 := amend("1.00"), amend("1.00"), amend("2.00")
	if LedgerKey(orig) != "GST/123039858/GST/2017-07-31" {
		t.Fatalf("original's key %q", LedgerKey(orig))
	}
	if !strings.HasPrefix(LedgerKey(a1), "GST/123039858/GST/2017-07-31/amended/") || LedgerKey(a1) != LedgerKey(a1again) || LedgerKey(a1) == LedgerKey(a2) {
		t.Fatalf("amendments' keys %q %q %q: one version per amended body", LedgerKey(a1), LedgerKey(a1again), LedgerKey(a2))
	}
}

func FuzzSameFormFields(f *testing.F) {
	f.Add([]byte(samplePayload(f, "returns-gst/samples/body-gst-returnfile-request-GST101A.xml")), irSample(f, "returns-gst/samples/body-gst-retrievereturn-response.xml"))
	f.Add([]byte("<formFields/>"), []byte("<formFields><a>1.0</a></formFields>"))
	f.Fuzz(func(t *testing.T, sent, answer []byte) {
		same, err := SameFormFields(sent, answer)
		if err == nil {
			back, err2 := SameFormFields(answer, sent)
			if err2 == nil && back != same {
				t.Fatalf("not symmetric: %v then %v", same, back)
			}
		}
	})
}

func FuzzReadStatus(f *testing.F) {
	o, _ := gatewayclient.LookupOperation(gatewayclient.ServiceReturns, "RetrieveStatus")
	f.Add(irSample(f, "returns-gst/samples/body-gst-returnstatus-response.xml"))
	f.Add(irSample(f, "returns-ei/samples/body-ei-returnstatus-response.xml"))
	f.Add([]byte("<html/>"))
	f.Fuzz(func(t *testing.T, envelope []byte) {
		res, err := gatewayclient.ParseSOAPResponse(o, 200, envelope)
		if err == nil {
			if ge := gatewayclient.Classify(o, res, nil); ge != nil {
				err = ge
			}
		}
		st, rerr := ReadStatus(res, err)
		if rerr == nil && err != nil && !st.NothingFiled {
			t.Fatalf("a failed call read as a status: %+v", st)
		}
	})
}
