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
	// InFlight is the number of gateway calls being handled now, hung
	// ones included.
	InFlight int64 `json:"inFlight"`
	// Outage counts calls answered by an outage (SetOutage); their HTTP
	// status is in HTTPStatus too.
	Outage int64 `json:"outage"`
	// Injected counts injected faults by kind: "hang", "reset", "http5xx",
	// "loseResponse", "hangAfterCommit" (see Faults). A hang is counted when
	// it ends. Hangs and resets send no HTTP answer, so they are not in
	// HTTPStatus; injected 5xx answers are.
	Injected map[string]int64 `json:"injected"`
	// LostResponses counts Files the ledger accepted whose answer was then
	// withheld (Faults.LoseResponse, Faults.HangAfterCommit): the return is
	// filed and the client cannot know it.
	LostResponses int64 `json:"lostResponses"`

	// OAuthCalls counts calls to the OAuth server: "authorize",
	// "token/authorization_code", "token/refresh_token", "token/validate",
	// "token/delete", "token/other" (unknown grant or refused before the
	// grant was read), "introspect", "revoke".
	OAuthCalls map[string]int64 `json:"oauthCalls"`
	// OAuthErrors counts OAuth error answers by error code
	// ("invalid_grant", "invalid_client"...), redirected ones included.
	OAuthErrors map[string]int64 `json:"oauthErrors"`
	// RefreshPresentations counts the presentations of each refresh token
	// the sandbox issued, keyed by RefreshTokenKey (a hash, never the
	// token). More than 1 is a reuse.
	RefreshPresentations map[string]int `json:"refreshPresentations"`
	// RefreshReuse counts refresh tokens presented again after being used
	// (each token once, however often it came back).
	RefreshReuse int `json:"refreshReuse"`
	// RefreshesLost counts refreshes honoured whose answer was then
	// withheld (Faults.LoseRefresh): their refresh tokens are spent.
	RefreshesLost int `json:"refreshesLost"`
	// TokenSetsIssued counts authorization codes redeemed: token sets
	// begun.
	TokenSetsIssued int `json:"tokenSetsIssued"`
	// TokenSetsKilled counts token sets killed by a used refresh token or
	// authorization code coming back; TokenSetsRevoked those ended by the
	// client revoking a refresh token.
	TokenSetsKilled  int `json:"tokenSetsKilled"`
	TokenSetsRevoked int `json:"tokenSetsRevoked"`
	// ConcurrentRefreshes is the most refresh_token grants of one token set
	// seen in flight at once (from the request's form read to its answer):
	// above 1, the client's refresh is not single-flight.
	ConcurrentRefreshes int `json:"concurrentRefreshes"`
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
		Injected:    map[string]int64{},
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
	httpStatus int // 0 when no HTTP answer was sent (hang, reset)
	statusCode int // SOAP statusCode; noStatus when none
	restCode   string
	throttled  bool
	fault      bool
	authFail   bool
	dupAttempt bool
	amendment  bool
	outage     bool
	injected   faultKind
}

const noStatus = -1 << 31

func (c *counters) end(r callRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.InFlight--
	c.s.Calls[r.label]++
	if r.httpStatus != 0 {
		c.s.HTTPStatus[r.httpStatus]++
	}
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
	if r.outage {
		c.s.Outage++
	}
	if r.injected != faultNone {
		c.s.Injected[r.injected.String()]++
		if r.injected.afterCommit() {
			c.s.LostResponses++
		}
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
	s.Injected = maps.Clone(c.s.Injected)
	return s
}
