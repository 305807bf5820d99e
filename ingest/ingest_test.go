package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

func TestPostJobs(t *testing.T) {
	t.Parallel()
	keysOnly := setupOpts{keys: testKeys}

	t.Run("one job is accepted with its ID", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		job := gstJob(t, 1)
		res := e.post("/v1/jobs", mustJSON(t, job))
		if res.code != http.StatusAccepted {
			t.Fatalf("status %d: %s", res.code, res.body)
		}
		var got ingest.JobResult
		res.json(t, &got)
		want := ingest.JobResult{ID: taskID(t, job), Queue: "realtime", State: "pending", Ref: "gst-1"}
		if got != want {
			t.Errorf("answer = %+v, want %+v", got, want)
		}
		if loc := res.header.Get("Location"); loc != ingest.JobPath(want.ID) {
			t.Errorf("Location = %q, want %q", loc, ingest.JobPath(want.ID))
		}
		if n := e.tasksOn("realtime"); n != 1 {
			t.Errorf("%d tasks on realtime, want 1", n)
		}
		if !strings.Contains(e.logs.String(), want.ID) || !strings.Contains(e.logs.String(), "caller=key:payroll") {
			t.Errorf("log does not name the job and its caller:\n%s", e.logs)
		}
		if strings.Contains(e.logs.String(), "fileRequest") {
			t.Errorf("log holds the job's body:\n%s", e.logs)
		}
	})

	t.Run("a list, as an array or wrapped, on the queue asked for", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		jobs := []any{gstJob(t, 1), gstJob(t, 2), gstJob(t, 3)}
		res := e.post("/v1/jobs", mustJSON(t, jobs))
		if res.code != http.StatusAccepted {
			t.Fatalf("status %d: %s", res.code, res.body)
		}
		var got ingest.ListResult
		res.json(t, &got)
		if got.Accepted != 3 || got.Duplicates != 0 || len(got.Jobs) != 3 {
			t.Fatalf("answer = %+v", got)
		}
		for i, j := range got.Jobs {
			if j.Index != i || j.ID != taskID(t, jobs[i].(map[string]any)) || j.Duplicate || j.State != "pending" || j.Queue != "realtime" {
				t.Errorf("job %d: %+v", i, j)
			}
		}

		res = e.post("/v1/jobs?queue=bulk", mustJSON(t, map[string]any{"jobs": []any{gstJob(t, 4), gstJob(t, 5)}}))
		if res.code != http.StatusAccepted {
			t.Fatalf("status %d: %s", res.code, res.body)
		}
		res.json(t, &got)
		if got.Accepted != 2 || got.Jobs[1].Queue != "bulk" || got.Jobs[1].Ref != "gst-5" {
			t.Errorf("answer = %+v", got)
		}
		if r, b := e.tasksOn("realtime"), e.tasksOn("bulk"); r != 3 || b != 2 {
			t.Errorf("tasks: %d realtime, %d bulk; want 3 and 2", r, b)
		}
	})

	t.Run("a duplicate answers the existing job and enqueues nothing", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		job := gstJob(t, 7)
		first := e.post("/v1/jobs", mustJSON(t, job))
		if first.code != http.StatusAccepted {
			t.Fatalf("first: status %d: %s", first.code, first.body)
		}
		want := ingest.JobResult{ID: taskID(t, job), Queue: "realtime", State: "pending", Duplicate: true, Ref: "gst-7"}
		for _, path := range []string{"/v1/jobs", "/v1/jobs?queue=bulk", "/v1/jobs?queue=redrive"} {
			res := e.post(path, mustJSON(t, job))
			if res.code != http.StatusOK {
				t.Fatalf("%s: status %d: %s", path, res.code, res.body)
			}
			var got ingest.JobResult
			res.json(t, &got)
			if got != want {
				t.Errorf("%s: answer = %+v, want %+v", path, got, want)
			}
		}
		// The same job twice in one list, and a list of only duplicates.
		res := e.post("/v1/jobs", mustJSON(t, []any{gstJob(t, 8), gstJob(t, 8), job}))
		if res.code != http.StatusAccepted {
			t.Fatalf("list: status %d: %s", res.code, res.body)
		}
		var list ingest.ListResult
		res.json(t, &list)
		if list.Accepted != 1 || list.Duplicates != 2 || list.Jobs[0].Duplicate || !list.Jobs[1].Duplicate || !list.Jobs[2].Duplicate {
			t.Errorf("list answer = %+v", list)
		}
		res = e.post("/v1/jobs", mustJSON(t, []any{gstJob(t, 8), job}))
		if res.code != http.StatusOK {
			t.Errorf("all duplicates: status %d, want 200: %s", res.code, res.body)
		}
		if n := e.allTasks(); n != 2 {
			t.Errorf("%d tasks in Redis, want 2", n)
		}
	})

	t.Run("posts of one job to every queue at once make one task", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		const jobs, posts = 4, 9
		for n := range jobs {
			body := mustJSON(t, gstJob(t, 20+n))
			start := make(chan struct{})
			type answer struct {
				res response
				err error
			}
			answers := make([]answer, posts)
			var wg sync.WaitGroup
			for i := range posts {
				wg.Go(func() {
					<-start
					res, err := e.request(client(nil), http.MethodPost, "/v1/jobs?queue="+tasks.Queues[i%len(tasks.Queues)], body,
						"Content-Type", "application/json", "X-API-Key", payrollKey)
					answers[i] = answer{res, err}
				})
			}
			close(start)
			wg.Wait()
			accepted := 0
			for i, a := range answers {
				switch {
				case a.err != nil:
					t.Fatalf("job %d, post %d: %v", n, i, a.err)
				case a.res.code == http.StatusAccepted:
					accepted++
				case a.res.code != http.StatusOK:
					t.Fatalf("job %d, post %d: status %d: %s", n, i, a.res.code, a.res.body)
				}
			}
			if accepted != 1 {
				t.Errorf("job %d: %d posts accepted, want 1", n, accepted)
			}
		}
		if got := e.allTasks(); got != jobs {
			t.Errorf("%d tasks on the queues, want %d", got, jobs)
		}
	})

	t.Run("an invalid job is refused with its fields, nothing enqueued", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		res := e.post("/v1/jobs", mustJSON(t, badJob(t, 1)))
		if res.code != http.StatusUnprocessableEntity {
			t.Fatalf("status %d: %s", res.code, res.body)
		}
		var got ingest.ErrorResponse
		res.json(t, &got)
		if len(got.Fields) != 1 || got.Fields[0].Field != "body" || !strings.Contains(got.Fields[0].Reason, "XSD") {
			t.Errorf("answer = %+v", got)
		}

		// One bad job spoils the list: none is enqueued.
		res = e.post("/v1/jobs", mustJSON(t, []any{gstJob(t, 1), badJob(t, 2), gstJob(t, 3), map[string]any{"service": "returns", "oepration": "File"}}))
		if res.code != http.StatusUnprocessableEntity {
			t.Fatalf("list: status %d: %s", res.code, res.body)
		}
		got = ingest.ErrorResponse{}
		res.json(t, &got)
		if !strings.Contains(got.Error, "2 of 4 jobs invalid") || len(got.Invalid) != 2 {
			t.Fatalf("list answer = %+v", got)
		}
		if bad := got.Invalid[0]; bad.Index != 1 || bad.Ref != "gst-2" || bad.Fields[0].Field != "body" {
			t.Errorf("first invalid = %+v", bad)
		}
		if bad := got.Invalid[1]; bad.Index != 3 || bad.Fields[0].Field != "" || !strings.Contains(bad.Fields[0].Reason, "oepration") {
			t.Errorf("second invalid = %+v", bad)
		}
		// Auth that the service cannot take: named field, every problem.
		res = e.post("/v1/jobs", mustJSON(t, map[string]any{"service": "returns", "operation": "File", "auth": map[string]any{"mode": "m2m"}, "body": gstBody(t, 1, "1.00")}))
		got = ingest.ErrorResponse{}
		res.json(t, &got)
		if res.code != http.StatusUnprocessableEntity || len(got.Fields) == 0 || got.Fields[0].Field != "auth.mode" {
			t.Errorf("m2m returns job: %d %+v", res.code, got)
		}
		if n := e.allTasks(); n != 0 {
			t.Errorf("%d tasks enqueued, want none", n)
		}
		if strings.Contains(e.logs.String(), "lots") {
			t.Errorf("log quotes the payload:\n%s", e.logs)
		}
	})

	t.Run("malformed JSON is a 400 with its offset", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		for _, tt := range []struct {
			body   string
			offset int64
		}{
			{`{"service": "returns",`, 22},
			{`[{"service": "returns"}, {]`, 27},
			{`{"service": "returns"} {}`, 24},
			{`{"jobs": [1, 2}`, 15},
		} {
			res := e.post("/v1/jobs", []byte(tt.body))
			var got ingest.ErrorResponse
			res.json(t, &got)
			if res.code != http.StatusBadRequest || got.Offset == nil || *got.Offset != tt.offset || !strings.Contains(got.Error, "malformed JSON") {
				t.Errorf("%s: %d %s (want offset %d)", tt.body, res.code, res.body, tt.offset)
			}
		}
		for _, body := range []string{``, `  `, `"a job"`, `[]`, `{"jobs": {}}`, `{"jobs": [], "batch": "b"}`, `null`} {
			res := e.post("/v1/jobs", []byte(body))
			var got ingest.ErrorResponse
			res.json(t, &got)
			if res.code != http.StatusBadRequest || got.Error == "" {
				t.Errorf("%q: %d %s", body, res.code, res.body)
			}
		}
		res := e.post("/v1/jobs?queue=nightly", mustJSON(t, gstJob(t, 1)))
		if res.code != http.StatusBadRequest || !strings.Contains(string(res.body), "unknown queue") {
			t.Errorf("unknown queue: %d %s", res.code, res.body)
		}
		if n := e.allTasks(); n != 0 {
			t.Errorf("%d tasks enqueued, want none", n)
		}
	})

	t.Run("oversized bodies and lists are refused with 413", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{keys: testKeys, maxBody: 16 << 10, maxJobs: 2})
		big := mustJSON(t, []any{gstJob(t, 1), gstJob(t, 2), gstJob(t, 3), gstJob(t, 4), gstJob(t, 5), gstJob(t, 6)})
		if len(big) <= 16<<10 {
			t.Fatalf("test body of %d bytes is not over the limit", len(big))
		}
		// With a Content-Length, and streamed (chunked) without one.
		for name, body := range map[string]io.Reader{"sized": strings.NewReader(string(big)), "chunked": io.MultiReader(strings.NewReader(string(big)))} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.base+"/v1/jobs", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+payrollKey)
			resp, err := client(nil).Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got ingest.ErrorResponse
			if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || got.Limit != 16<<10 {
				t.Errorf("%s: %d %s", name, resp.StatusCode, b)
			}
		}
		res := e.post("/v1/jobs", mustJSON(t, []any{gstJob(t, 1), gstJob(t, 2), gstJob(t, 3)}))
		var got ingest.ErrorResponse
		res.json(t, &got)
		if res.code != http.StatusRequestEntityTooLarge || got.Limit != 2 {
			t.Errorf("3 jobs over a limit of 2: %d %s", res.code, res.body)
		}
		if n := e.allTasks(); n != 0 {
			t.Errorf("%d tasks enqueued, want none", n)
		}
	})

	t.Run("wrong content type is a 415", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "application/json-seq"} {
			res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 1)), "Content-Type", ct, "Authorization", "Bearer "+payrollKey)
			if err != nil {
				t.Fatal(err)
			}
			if res.code != http.StatusUnsupportedMediaType || res.header.Get("Content-Type") != "application/json" {
				t.Errorf("%q: %d %s", ct, res.code, res.body)
			}
		}
		res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 1)), "Content-Type", "application/json; charset=utf-8", "Authorization", "Bearer "+payrollKey)
		if err != nil || res.code != http.StatusAccepted {
			t.Errorf("with a charset: %d %s %v", res.code, res.body, err)
		}
	})

	t.Run("wrong method and unknown paths answer JSON", func(t *testing.T) {
		t.Parallel()
		e := setup(t, keysOnly)
		for _, tt := range []struct {
			method, path string
			code         int
			allow        string
		}{
			{http.MethodGet, "/v1/jobs", http.StatusMethodNotAllowed, "POST"},
			{http.MethodDelete, "/v1/jobs/x", http.StatusMethodNotAllowed, "GET, HEAD"},
			{http.MethodGet, "/v1/nope", http.StatusNotFound, ""},
			{http.MethodGet, "/", http.StatusNotFound, ""},
		} {
			res, err := e.request(client(nil), tt.method, tt.path, nil, "X-API-Key", hrKey)
			if err != nil {
				t.Fatal(err)
			}
			var got ingest.ErrorResponse
			res.json(t, &got)
			if res.code != tt.code || got.Allow != tt.allow || got.Error == "" || res.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: %d %s", tt.method, tt.path, res.code, res.body)
			}
		}
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()

	t.Run("API keys", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{keys: testKeys})
		body := mustJSON(t, gstJob(t, 1))
		for _, tt := range []struct {
			name    string
			headers []string
		}{
			{"no key", nil},
			{"wrong key", []string{"Authorization", "Bearer " + strings.Repeat("x", len(payrollKey))}},
			{"a prefix of a key", []string{"X-API-Key", payrollKey[:20]}},
			{"not bearer", []string{"Authorization", "Basic " + payrollKey}},
			{"bearer without key", []string{"Authorization", "Bearer"}},
		} {
			res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", body, append([]string{"Content-Type", "application/json"}, tt.headers...)...)
			if err != nil {
				t.Fatal(err)
			}
			var got ingest.ErrorResponse
			res.json(t, &got)
			if res.code != http.StatusUnauthorized || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") || !strings.HasPrefix(got.Error, "unauthenticated") {
				t.Errorf("%s: %d %v %s", tt.name, res.code, res.header, res.body)
			}
		}
		// GET and unknown paths are behind the same door.
		for _, p := range []string{"/v1/jobs/x", "/nope"} {
			res, err := e.request(client(nil), http.MethodGet, p, nil)
			if err != nil || res.code != http.StatusUnauthorized {
				t.Errorf("GET %s without a key: %d %v", p, res.code, err)
			}
		}
		if n := e.allTasks(); n != 0 {
			t.Fatalf("%d tasks enqueued by unauthenticated calls", n)
		}
		res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", body, "Content-Type", "application/json", "X-API-Key", hrKey)
		if err != nil || res.code != http.StatusAccepted {
			t.Fatalf("X-API-Key: %d %s %v", res.code, res.body, err)
		}
		logs := e.logs.String()
		if !strings.Contains(logs, "caller=key:hr") || !strings.Contains(logs, `reason="unknown API key"`) {
			t.Errorf("log does not say who called or why a call was refused:\n%s", logs)
		}
		for _, k := range []string{payrollKey, hrKey, payrollKey[:20]} {
			if strings.Contains(logs, k) {
				t.Errorf("log holds a key:\n%s", logs)
			}
		}
	})

	t.Run("API keys or client certificates", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{keys: testKeys, clientCerts: true})
		good, stranger := pki().client, pki().stranger

		res, err := e.request(client(&good), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 1)), "Content-Type", "application/json")
		if err != nil || res.code != http.StatusAccepted {
			t.Fatalf("client certificate: %d %s %v", res.code, res.body, err)
		}
		if !strings.Contains(e.logs.String(), "caller=cert:payroll-service") {
			t.Errorf("log does not name the certificate:\n%s", e.logs)
		}
		// A key is enough without a certificate.
		if res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 2)), "Content-Type", "application/json", "X-API-Key", payrollKey); err != nil || res.code != http.StatusAccepted {
			t.Fatalf("API key: %d %s %v", res.code, res.body, err)
		}
		// A wrong key is refused even with a good certificate.
		if res, err := e.request(client(&good), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 3)), "Content-Type", "application/json", "X-API-Key", "wrong-key-wrong-key-wrong"); err != nil || res.code != http.StatusUnauthorized {
			t.Errorf("good certificate, wrong key: %d %s %v", res.code, res.body, err)
		}
		// A certificate from another CA fails the handshake.
		if res, err := e.request(client(&stranger), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 4)), "Content-Type", "application/json", "X-API-Key", payrollKey); err == nil {
			t.Errorf("certificate from another CA: got %d %s, want a TLS error", res.code, res.body)
		}
		// Neither: 401.
		if res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 5)), "Content-Type", "application/json"); err != nil || res.code != http.StatusUnauthorized {
			t.Errorf("nothing: %d %s %v", res.code, res.body, err)
		}
		if n := e.allTasks(); n != 2 {
			t.Errorf("%d tasks, want 2", n)
		}
	})

	t.Run("mutual TLS only", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{clientCerts: true})
		good, stranger := pki().client, pki().stranger
		if res, err := e.request(client(&good), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 1)), "Content-Type", "application/json"); err != nil || res.code != http.StatusAccepted {
			t.Fatalf("client certificate: %d %s %v", res.code, res.body, err)
		}
		if res, err := e.request(client(&good), http.MethodGet, "/v1/jobs/"+taskID(t, gstJob(t, 1)), nil); err != nil || res.code != http.StatusOK {
			t.Errorf("GET with a client certificate: %d %s %v", res.code, res.body, err)
		}
		for name, c := range map[string]*http.Client{"no certificate": client(nil), "another CA": client(&stranger)} {
			if res, err := e.request(c, http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 2)), "Content-Type", "application/json", "X-API-Key", payrollKey); err == nil {
				t.Errorf("%s: got %d %s, want a TLS error", name, res.code, res.body)
			}
		}
		if n := e.allTasks(); n != 1 {
			t.Errorf("%d tasks, want 1", n)
		}
	})

	t.Run("refuses to serve without authentication", func(t *testing.T) {
		t.Parallel()
		rdb := redis.NewClient(&redis.Options{})
		defer rdb.Close()
		_, err := ingest.New(ingest.Options{Enqueuer: &tasks.Enqueuer{}, Finder: &jobstatus.Finder{}, Redis: rdb})
		if !errors.Is(err, ingest.ErrNoAuth) {
			t.Errorf("New without keys or certificates: %v, want ErrNoAuth", err)
		}
		_, err = ingest.New(ingest.Options{Enqueuer: &tasks.Enqueuer{}, Finder: &jobstatus.Finder{}, Redis: rdb,
			Keys: []ingest.Key{{Name: "a", Secret: payrollKey}, {Name: "a", Secret: hrKey}}})
		if err == nil || strings.Contains(err.Error(), payrollKey) || strings.Contains(err.Error(), hrKey) {
			t.Errorf("two keys named alike: %v", err)
		}
	})
}

func TestGetJob(t *testing.T) {
	t.Parallel()

	t.Run("pending, by its ID raw or escaped", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{keys: testKeys})
		job := gstJob(t, 3)
		id := taskID(t, job)
		if res := e.post("/v1/jobs?queue=bulk", mustJSON(t, job)); res.code != http.StatusAccepted {
			t.Fatalf("post: %d %s", res.code, res.body)
		}
		for _, p := range []string{"/v1/jobs/" + id, "/v1/jobs/" + url.PathEscape(id), ingest.JobPath(id), "/v1/jobs/" + id + "?queue=bulk"} {
			res := e.get(p)
			if res.code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", p, res.code, res.body)
			}
			var st jobstatus.Status
			res.json(t, &st)
			if st.ID != id || st.Queue != "bulk" || st.State != "pending" || st.Job == nil || st.Job.Ref != "gst-3" || st.Job.Key != "GST/123000003/GST/2026-09-30" || st.MaxRetry != 25 {
				t.Errorf("GET %s: %+v", p, st)
			}
		}
		res := e.get("/v1/jobs/" + id + "?queue=realtime")
		if res.code != http.StatusNotFound {
			t.Errorf("on another queue: %d %s", res.code, res.body)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{keys: testKeys})
		for _, p := range []string{"/v1/jobs/returns:File:nope", "/v1/jobs/"} {
			res := e.get(p)
			var got ingest.ErrorResponse
			res.json(t, &got)
			if res.code != http.StatusNotFound || got.Error == "" {
				t.Errorf("GET %s: %d %s", p, res.code, res.body)
			}
		}
		if res := e.get("/v1/jobs/x?queue=nightly"); res.code != http.StatusBadRequest {
			t.Errorf("unknown queue: %d %s", res.code, res.body)
		}
	})

	t.Run("completed, with the worker's outcome and the ledger entry", func(t *testing.T) {
		t.Parallel()
		e := setup(t, setupOpts{keys: testKeys})
		job := gstJob(t, 4)
		id := taskID(t, job)
		if res := e.post("/v1/jobs", mustJSON(t, job)); res.code != http.StatusAccepted {
			t.Fatalf("post: %d %s", res.code, res.body)
		}
		// A worker stand-in that files the return as tasks.Handler does:
		// ledger entry, then the outcome as the task's result.
		l := ledger.New(e.r.Client, e.r.Prefix)
		srv := asynq.NewServer(asynq.RedisClientOpt{Addr: e.r.Addr}, asynq.Config{
			Concurrency: 1, Queues: map[string]int{e.r.Queue("realtime"): 1}, LogLevel: asynq.FatalLevel,
		})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeGatewayCall, func(ctx context.Context, task *asynq.Task) error {
			j, err := tasks.Decode(task.Payload())
			if err != nil {
				return err
			}
			if _, err := l.Filed(ctx, tasks.LedgerKey(j), id, ledger.Filing{GatewayID: "GW-1", SubmissionKey: "SK-2"}); err != nil {
				return err
			}
			b, _ := json.Marshal(tasks.Outcome{Class: "ok", GatewayID: "GW-1", SubmissionKey: "SK-2", Ref: j.Ref, FinishedAt: time.Now().UTC()})
			_, err = task.ResultWriter().Write(b)
			return err
		})
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()

		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		var st jobstatus.Status
		for st.State != "completed" {
			select {
			case <-ctx.Done():
				t.Fatalf("never completed: %+v", st)
			case <-time.After(50 * time.Millisecond):
			}
			res := e.get(ingest.JobPath(id))
			if res.code != http.StatusOK {
				t.Fatalf("GET: %d %s", res.code, res.body)
			}
			res.json(t, &st)
		}
		var out tasks.Outcome
		if err := json.Unmarshal(st.Result, &out); err != nil || out.GatewayID != "GW-1" || out.SubmissionKey != "SK-2" || out.Ref != "gst-4" {
			t.Errorf("result = %s (%v)", st.Result, err)
		}
		if st.CompletedAt == nil || st.NextRunAt != nil {
			t.Errorf("times: completed %v, next run %v", st.CompletedAt, st.NextRunAt)
		}
		if st.Ledger == nil || st.Ledger.State != "filed" || st.Ledger.GatewayID != "GW-1" || st.Ledger.Key != "GST/123000004/GST/2026-09-30" {
			t.Errorf("ledger = %+v", st.Ledger)
		}
		// Posting the filed job again answers the completed job.
		res := e.post("/v1/jobs", mustJSON(t, job))
		var again ingest.JobResult
		res.json(t, &again)
		if res.code != http.StatusOK || !again.Duplicate || again.State != "completed" {
			t.Errorf("post again: %d %+v", res.code, again)
		}
	})
}
