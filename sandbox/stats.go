package sandbox

import (
	"maps"
	"sync"
)

// Stats is a consistent snapshot of what the sandbox has seen since New.
type Stats struct {
	// Calls counts gateway calls by "service/operation": "returns/File",
	// "employment/Create", "account/list"... Calls the sandbox could not
	// attribute to an operation count as "<service>/unknown".
	Calls map[string]int64 `json:"calls"`
	// StatusCodes counts the statusCode of SOAP answers.
	StatusCodes map[int]int64 `json:"statusCodes"`
	// HTTPStatus counts the HTTP status of every gateway answer.
	HTTPStatus map[int]int64 `json:"httpStatus"`
	// RESTErrors counts REST error codes answered (EV1020, EV1022...).
	RESTErrors map[string]int64 `json:"restErrors"`
	// Throttled counts calls answered 429.
	Throttled int64 `json:"throttled"`
	// Faults counts SOAP Faults.
	Faults int64 `json:"faults"`
	// AuthFailures counts calls refused for their credentials: statusCode
	// 1 or 2, REST EV1020 or EV1021.
	AuthFailures int64 `json:"authFailures"`
	// Filed counts accepted Files: originals and amendments.
	Filed int64 `json:"filed"`
	// Amendments counts accepted amendments.
	Amendments int64 `json:"amendments"`
	// Originals maps a natural key (NaturalKey.String) to the number of
	// originals accepted for it.
	Originals map[string]int `json:"originals"`
	// DuplicateFilings counts natural keys with more than one accepted
	// original. The ledger's rules make it 0 by construction; it is here so
	// tests and benchmarks can assert it.
	DuplicateFilings int `json:"duplicateFilings"`
	// DuplicateAttempts counts Files refused as already filed (107, 160):
	// the client sent a return twice, which reconciliation should prevent.
	DuplicateAttempts int64 `json:"duplicateAttempts"`
	// InFlight is the number of gateway calls being handled now.
	InFlight int64 `json:"inFlight"`
}

// counters accumulates Stats. One mutex: the sandbox's own cost is not what
// a load test measures, and a snapshot must be consistent.
type counters struct {
	mu sync.Mutex
	s  Stats
}

func newCounters() *counters {
	return &counters{s: Stats{
		Calls:       map[string]int64{},
		StatusCodes: map[int]int64{},
		HTTPStatus:  map[int]int64{},
		RESTErrors:  map[string]int64{},
	}}
}

func (c *counters) begin() {
	c.mu.Lock()
	c.s.InFlight++
	c.mu.Unlock()
}

// callRecord is what one finished call adds.
type callRecord struct {
	label      string
	httpStatus int
	statusCode int // SOAP statusCode; noStatus when none
	restCode   string
	throttled  bool
	fault      bool
	authFail   bool
	dupAttempt bool
	amendment  bool
}

const noStatus = -1 << 31

func (c *counters) end(r callRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.InFlight--
	c.s.Calls[r.label]++
	c.s.HTTPStatus[r.httpStatus]++
	if r.statusCode != noStatus {
		c.s.StatusCodes[r.statusCode]++
	}
	if r.restCode != "" {
		c.s.RESTErrors[r.restCode]++
	}
	if r.throttled {
		c.s.Throttled++
	}
	if r.fault {
		c.s.Faults++
	}
	if r.authFail {
		c.s.AuthFailures++
	}
	if r.dupAttempt {
		c.s.DuplicateAttempts++
	}
	if r.amendment {
		c.s.Amendments++
	}
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.Calls = maps.Clone(c.s.Calls)
	s.StatusCodes = maps.Clone(c.s.StatusCodes)
	s.HTTPStatus = maps.Clone(c.s.HTTPStatus)
	s.RESTErrors = maps.Clone(c.s.RESTErrors)
	return s
}
