package sandbox

import (
	"crypto/subtle"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// admin guards an admin endpoint: 404 when Options.AdminToken is empty (the
// endpoint does not exist), 401 unless the caller presents it as a Bearer
// token.
func (s *Sandbox) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken == "" {
			http.NotFound(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AdminToken)) != 1 {
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// outageState is /sandbox/outage's answer.
type outageState struct {
	On     bool       `json:"on"`
	Status int        `json:"status,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
}

func (s *Sandbox) writeOutage(w http.ResponseWriter) {
	status, until, on := s.Outage()
	st := outageState{On: on, Status: status}
	if on && !until.IsZero() {
		st.Until = &until
	}
	s.writeJSON(w, http.StatusOK, st)
}

// serveSetOutage answers POST /sandbox/outage?status=503&for=30s; status
// defaults to 503, and without for the outage lasts until DELETE
// /sandbox/outage.
func (s *Sandbox) serveSetOutage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := http.StatusServiceUnavailable
	if v := q.Get("status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 500 || n > 599 {
			http.Error(w, "query parameter status: an HTTP status 500-599", http.StatusBadRequest)
			return
		}
		status = n
	}
	var d time.Duration
	if v := q.Get("for"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			http.Error(w, "query parameter for: a positive Go duration such as 30s", http.StatusBadRequest)
			return
		}
	}
	s.SetOutage(status, d)
	s.writeOutage(w)
}

// serveEndOutage answers DELETE /sandbox/outage.
func (s *Sandbox) serveEndOutage(w http.ResponseWriter, _ *http.Request) {
	s.EndOutage()
	s.writeOutage(w)
}

// serveGetFaults answers GET /sandbox/faults with the rates in force.
func (s *Sandbox) serveGetFaults(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, http.StatusOK, s.Faults())
}

// serveSetFaults answers POST /sandbox/faults with a Faults JSON object as
// the body; it replaces the rates in force (an omitted field is 0).
func (s *Sandbox) serveSetFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultsBody))
	if err != nil {
		http.Error(w, "reading request body failed", http.StatusBadRequest)
		return
	}
	f, err := decodeFaults(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.SetFaults(f); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.writeJSON(w, http.StatusOK, f)
}

// throttleState is /sandbox/throttle's answer.
type throttleState struct {
	RPS   float64 `json:"rps"`
	Burst int     `json:"burst"`
}

// serveSetThrottle answers POST /sandbox/throttle?rps=..&burst=..; rps 0
// is unlimited, and burst defaults to the one in force.
func (s *Sandbox) serveSetThrottle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rps, burst := s.Throttle()
	v := q.Get("rps")
	if v == "" {
		http.Error(w, "query parameter rps is required (0 = unlimited)", http.StatusBadRequest)
		return
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		http.Error(w, "query parameter rps: a number ≥ 0", http.StatusBadRequest)
		return
	}
	rps = n
	if v := q.Get("burst"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b < 1 {
			http.Error(w, "query parameter burst: an integer ≥ 1", http.StatusBadRequest)
			return
		}
		burst = b
	}
	s.SetThrottle(rps, burst)
	rps, burst = s.Throttle()
	s.writeJSON(w, http.StatusOK, throttleState{RPS: rps, Burst: burst})
}

// serveTimeline answers GET /sandbox/timeline[?last=30s] with the timeline
// as a JSON array of Buckets, the last stretch only when asked.
func (s *Sandbox) serveTimeline(w http.ResponseWriter, r *http.Request) {
	buckets := s.Timeline()
	if v := r.URL.Query().Get("last"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			http.Error(w, "query parameter last: a positive Go duration such as 30s", http.StatusBadRequest)
			return
		}
		from := s.now().Add(-d)
		i := 0
		for i < len(buckets) && buckets[i].Start.Add(s.timeline.res).Before(from) {
			i++
		}
		buckets = buckets[i:]
	}
	if buckets == nil {
		buckets = []Bucket{}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, http.StatusOK, buckets)
}
