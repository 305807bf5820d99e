package schedule

import "time"

// Clock is the time the scheduler reads cron occurrences against. Tests
// give a fake one so they need not wait for a real 01:30. Leases are
// Redis TTLs and run on Redis's clock, whatever the Clock says.
type Clock interface {
	Now() time.Time
	// After sends the time on the returned channel once d has passed, as
	// time.After does.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the real time.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var _ Clock = systemClock{}
