// Package breaker is gatewayq's fleet-wide circuit breaker: one breaker per
// endpoint key (for example "cloud:<client certificate CN>"), whose open
// state is shared by every worker process through Redis, so that when IR's
// gateway fails the whole fleet stops calling it within a second.
//
// # What is per process and what is shared
//
// Accounting is per process. Each process keeps one
// github.com/sony/gobreaker/v2 TwoStepCircuitBreaker per key that counts
// that process's own calls over a rolling Window (ten gobreaker buckets) and
// trips when, past MinRequests calls with an outcome, the share of failures
// reaches FailureRatio. What counts as a failure, and what is excluded
// (throttling, the caller's own cancellation), is the caller's decision
// (Settings.IsFailure, Settings.IsExcluded), kept out of the state machine.
//
// The state is shared. When a process trips, it writes the fleet state to
// Redis (a hash at <prefix>{breaker:<key>}: state, open-until in Redis's own
// clock, and an epoch) and publishes the transition on
// <prefix>breaker:events, both in one Lua script. Every process subscribes
// to that channel and, because pub/sub messages are lost while a connection
// is re-established, also polls the hash every PollInterval (250 ms by
// default) and again on every re-subscription. Each process caches the
// fleet state locally, so Allow makes no Redis round trip while the breaker
// is closed or open. That is how the one-second bound is met: a trip reaches
// the other processes in a pub/sub delivery (milliseconds) and, if that
// message is lost, at the next poll (PollInterval); a process that starts
// during an outage reads the state before its first call to the key.
//
// The fleet state is the truth; local counts only decide when this process
// trips. The local gobreaker is therefore never left open: it is replaced by
// a fresh one whenever the fleet state changes (a trip, a re-open, a close),
// so calls made under an earlier state don't count under the new one (the
// same rule as gobreaker's generations), and a process that rejoins after
// the fleet closed starts from clean counts. gobreaker's own open and
// half-open states, Timeout and MaxRequests are not used.
//
// # Half-open
//
// Once open-until has passed, the fleet is half-open: only HalfOpenProbes
// calls at once, across the whole fleet, may go through. A probe takes a
// slot in a sorted set beside the state hash (same hash slot), scored by
// its lease expiry, so a probe whose process crashed frees its slot when
// the lease ends. The first probe that succeeds closes the breaker for
// everyone; a probe that fails re-opens it for another OpenFor; an excluded
// outcome just gives the slot back. Each probe outcome names the epoch it
// was granted in, so a late outcome from an earlier half-open period
// changes nothing. Half-open is the only state in which Allow goes to Redis.
//
// # Why not gobreaker's DistributedCircuitBreaker
//
// gobreaker v2's DistributedCircuitBreaker.Execute takes a Redis lock
// around every call and stores the full counts in Redis: with calls of up
// to 60 s that serialises the fleet behind one lock, and every call costs
// several round trips. Here no lock is held during a call; a call costs
// Redis nothing unless the breaker is half-open, and only transitions are
// written.
//
// # Time
//
// Open-until is computed by Redis's TIME inside the scripts, and each
// process converts "remaining" into its own clock on receipt, so clocks of
// worker hosts need not agree. Options.Now drives the open and half-open
// deadlines and RetryIn; the rolling window is gobreaker's and follows
// time.Now (tests roll it with testing/synctest).
//
// # When Redis is unreachable
//
// Allow never waits on a Redis that does not answer for longer than
// Options.RedisTimeout, and after a failure the hot path skips Redis until
// it answers again (checked every PollInterval). Meanwhile each process
// runs the same state machine on its own: it trips, refuses, probes and
// closes by itself, with HalfOpenProbes per process. A trip decided while
// Redis was down is written to Redis when it answers again, if the process
// is still open; from then on Redis's state wins.
//
// Every transition is logged with log/slog and exported through Metrics.
// Keys of one endpoint share one hash tag, so the scripts run unchanged on
// Redis Cluster.
package breaker
