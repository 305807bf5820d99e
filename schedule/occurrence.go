package schedule

import (
	"time"

	"github.com/robfig/cron/v3"

	"github.com/gatewayq/gatewayq/config"
)

// batch is one configured batch with its cron spec and zone parsed.
type batch struct {
	config.ScheduledBatch
	sched cron.Schedule
	loc   *time.Location
}

func newBatch(b config.ScheduledBatch) (*batch, error) {
	sched, err := config.ParseCron(b.Cron)
	if err != nil {
		return nil, err
	}
	loc, err := b.Location()
	if err != nil {
		return nil, err
	}
	return &batch{ScheduledBatch: b, sched: sched, loc: loc}, nil
}

// latest is the last occurrence at or before now that is at most window
// old, in the batch's zone; false when there is none. Every worker works
// it out alike from the config and the time alone, so an occurrence names
// the same Redis keys on all of them, whatever their clocks' small skew.
func (b *batch) latest(now time.Time, window time.Duration) (time.Time, bool) {
	// cron's Next returns the first occurrence strictly after its argument,
	// from the next whole second: start just before the window opens.
	t := now.Add(-window).Add(-time.Nanosecond).In(b.loc)
	var last time.Time
	found := false
	for {
		n := b.sched.Next(t)
		if n.IsZero() || n.After(now) {
			return last, found
		}
		last, found = n, true
		t = n
	}
}

// next is the first occurrence after now; zero if it never fires again.
func (b *batch) next(now time.Time) time.Time { return b.sched.Next(now.In(b.loc)) }

// batchID is the batch ID of the occurrence at occ: "<name>-YYYY-MM-DD"
// (the day in the batch's zone), with "THHMM" added when the schedule
// fires more than once that day, so each run of an hourly batch can be
// followed on its own.
func (b *batch) batchID(occ time.Time) string {
	occ = occ.In(b.loc)
	id := b.Name + "-" + occ.Format(time.DateOnly)
	y, m, d := occ.Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, b.loc)
	first := b.sched.Next(start.Add(-time.Nanosecond))
	if second := b.sched.Next(first); !second.IsZero() && second.Before(start.AddDate(0, 0, 1)) {
		id += "T" + occ.Format("1504")
	}
	return id
}

// Due reports the occurrence of batch b that a scheduler would run at now:
// the latest at or before now, if it is at most catchUp old. Older missed
// occurrences are never run. The time is in the batch's zone.
func Due(b config.ScheduledBatch, now time.Time, catchUp time.Duration) (time.Time, bool, error) {
	pb, err := newBatch(b)
	if err != nil {
		return time.Time{}, false, err
	}
	occ, ok := pb.latest(now, catchUp)
	return occ, ok, nil
}

// BatchID is the batch ID stamped on the jobs of batch b's occurrence at
// occ: "<name>-YYYY-MM-DD", plus "THHMM" for a schedule that fires more
// than once a day. The same occurrence always gets the same ID, so a
// takeover or a re-run continues the same batch.
func BatchID(b config.ScheduledBatch, occ time.Time) (string, error) {
	pb, err := newBatch(b)
	if err != nil {
		return "", err
	}
	return pb.batchID(occ), nil
}
