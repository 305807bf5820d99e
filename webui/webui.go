// Package webui serves the operators' web UI: asynqmon
// (github.com/hibiken/asynqmon), which shows gatewayq's queues, each job's
// payload, state and last error, and the archived (failed) jobs, mounted
// under RootPath behind HTTP Basic authentication.
//
// The UI is read-only unless told otherwise. asynqmon's own read-only
// mode only hides its buttons and refuses non-GET requests to the routes
// of its JSON API; Handler refuses every method but GET and HEAD on every
// path before asynqmon sees the request, so a route asynqmon adds later
// cannot become a way to change the queues.
//
// asynqmon lists every asynq queue in the Redis it is given, named as
// gatewayq names them: with redis.queue_prefix in front (e.g.
// "staging:bulk"). Environments sharing one Redis see each other's queues.
//
// Jobs' bodies and IR's responses are shown only as their sizes unless
// Options.ShowPayloads (monitoring.show_payloads) says otherwise.
//
// Basic authentication sends the password with every request; serve the UI
// over TLS (a worker does with worker.health_cert), on a private listener,
// or behind a proxy that terminates TLS.
package webui

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// RootPath is the URL path the UI lives under; mount Handler on
// RootPath + "/".
const RootPath = "/monitoring"

// Options configure a Handler.
type Options struct {
	// Redis is the Redis holding the queues. Required.
	Redis asynq.RedisConnOpt
	// Username and Password are the HTTP Basic credentials. Both required;
	// neither is kept in the clear by the Handler, only their SHA-256.
	Username string
	Password string
	// ReadOnly serves only GET and HEAD (anything else gets 405) and hides
	// asynqmon's buttons. Zero value false: operators can delete, run and
	// archive tasks and pause queues. gatewayq's config defaults it to
	// true.
	ReadOnly bool
	// ShowPayloads shows jobs' payloads and results whole. Zero value
	// false: a job's body and IR's response to a look-up are replaced by
	// their sizes, so the UI shows which jobs are where and why they
	// failed, but no return's figures.
	ShowPayloads bool
	// Logger receives a warning for each request with wrong credentials
	// (its remote address and path; never what was typed). Zero value:
	// slog.Default().
	Logger *slog.Logger
}

// Handler is the authenticated UI. It is safe for concurrent use.
type Handler struct {
	mon  *asynqmon.HTTPHandler
	next http.Handler
}

var _ http.Handler = (*Handler)(nil)
var _ io.Closer = (*Handler)(nil)

// New builds the UI. It connects to Redis lazily, on the first request
// that needs it; Close releases the connections.
func New(o Options) (*Handler, error) {
	var errs []error
	if o.Redis == nil {
		errs = append(errs, errors.New("webui: no Redis connection options"))
	}
	if o.Username == "" || strings.Contains(o.Username, ":") {
		errs = append(errs, errors.New(`webui: a user name is required, without ":"`))
	}
	if o.Password == "" {
		errs = append(errs, errors.New("webui: a password is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	mo := asynqmon.Options{
		RootPath:     RootPath,
		RedisConnOpt: o.Redis,
		ReadOnly:     o.ReadOnly,
	}
	if !o.ShowPayloads {
		mo.PayloadFormatter, mo.ResultFormatter = hiddenPayloads, hiddenResults
	}
	mon := asynqmon.New(mo)
	var next http.Handler = mon
	if o.ReadOnly {
		next = readOnly(next)
	} else {
		// A browser resends cached Basic credentials with any request to
		// the origin, including a form posted from another site: refuse
		// cross-origin requests that could change the queues.
		next = http.NewCrossOriginProtection().Handler(next)
	}
	next = basicAuth(newCredentials(o.Username, o.Password), log, next)
	return &Handler{mon: mon, next: headers(next)}, nil
}

// ServeHTTP serves the UI for paths under RootPath.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.next.ServeHTTP(w, r) }

// Close releases the UI's Redis connections.
func (h *Handler) Close() error { return h.mon.Close() }

// readOnly refuses everything but GET and HEAD, on every path.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the monitoring UI is read-only (monitoring.read_only): "+r.Method+" is not allowed", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headers sets the response headers every page and API answer gets.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY") // no clickjacking of the UI's buttons
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Job payloads (returns, IRD numbers) must not sit in a shared or
		// browser cache; asynqmon's hashed static bundles may.
		if !strings.HasPrefix(r.URL.Path, RootPath+"/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}
