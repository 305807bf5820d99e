package sandbox

import (
	"net/http"
	"sync"
	"time"
)

// Bucket is one interval of the timeline (Options.TimelineResolution long,
// starting at Start). Calls counts calls by arrival; the answer classes
// count calls by the time they ended; Filed counts Files the ledger
// accepted, by the time of the commit. Once no call is in flight, the
// answer classes summed over the timeline equal Calls summed over it.
type Bucket struct {
	Start time.Time `json:"start"`
	// Calls arrived.
	Calls int64 `json:"calls"`
	// OK: answered 2xx (whatever the SOAP statusCode).
	OK int64 `json:"ok"`
	// Throttled: answered 429.
	Throttled int64 `json:"throttled"`
	// Unavailable: answered by an outage, or 502, 503 or 504 otherwise
	// (the sandbox shutting down). Injected 5xx answers are Faulted.
	Unavailable int64 `json:"unavailable"`
	// Faulted: ended by an injected fault (Faults): hang, reset, 5xx, or a
	// lost response.
	Faulted int64 `json:"faulted"`
	// Other: any other answer (4xx, SOAP Faults).
	Other int64 `json:"other"`
	// Filed: Files accepted by the ledger, lost responses included.
	Filed int64 `json:"filed"`
}

// Answered is the number of calls that ended in the bucket.
func (b Bucket) Answered() int64 { return b.OK + b.Throttled + b.Unavailable + b.Faulted + b.Other }

func (b *Bucket) add(o Bucket) {
	b.Calls += o.Calls
	b.OK += o.OK
	b.Throttled += o.Throttled
	b.Unavailable += o.Unavailable
	b.Faulted += o.Faulted
	b.Other += o.Other
	b.Filed += o.Filed
}

// Timeline defaults.
const (
	DefaultTimelineResolution = 100 * time.Millisecond
	DefaultTimelineWindow     = 10 * time.Minute
	// maxTimelineBuckets bounds the ring's memory (about 64 bytes a bucket).
	maxTimelineBuckets = 1 << 20
)

// answerClass is the timeline column a finished call counts in.
type answerClass uint8

const (
	classOK answerClass = iota
	classThrottled
	classUnavailable
	classFaulted
	classOther
)

func (r callRecord) class() answerClass {
	switch {
	case r.injected != faultNone:
		return classFaulted
	case r.outage:
		return classUnavailable
	case r.httpStatus >= 200 && r.httpStatus < 300:
		return classOK
	case r.httpStatus == http.StatusTooManyRequests:
		return classThrottled
	case r.httpStatus == http.StatusBadGateway, r.httpStatus == http.StatusServiceUnavailable,
		r.httpStatus == http.StatusGatewayTimeout:
		return classUnavailable
	}
	return classOther
}

// timeline is a ring of buckets: slot i%len holds bucket i (its index
// since the Unix epoch in resolutions) while i is within the window.
type timeline struct {
	mu    sync.Mutex
	res   time.Duration
	slots []timelineSlot
	// lo and hi are the lowest and highest bucket indexes ever recorded;
	// lo > hi means nothing was.
	lo, hi int64
}

type timelineSlot struct {
	idx int64
	b   Bucket
}

func newTimeline(res, window time.Duration) *timeline {
	n := int(window / res)
	n = max(1, min(n, maxTimelineBuckets))
	return &timeline{res: res, slots: make([]timelineSlot, n), lo: 1, hi: 0}
}

// index is t's bucket: floor(t / res) since the epoch.
func (tl *timeline) index(t time.Time) int64 {
	ns := t.UnixNano()
	i := ns / int64(tl.res)
	if ns%int64(tl.res) < 0 {
		i--
	}
	return i
}

// record adds to t's bucket. A bucket already pushed out of the window
// (its slot holds a newer one) is dropped.
func (tl *timeline) record(t time.Time, f func(*Bucket)) {
	i := tl.index(t)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := int64(len(tl.slots))
	slot := &tl.slots[((i%n)+n)%n]
	if tl.lo > tl.hi {
		tl.lo, tl.hi = i, i
		*slot = timelineSlot{idx: i}
	} else if slot.idx != i {
		if i < slot.idx || i <= tl.hi-n {
			return
		}
		*slot = timelineSlot{idx: i}
	}
	tl.lo, tl.hi = min(tl.lo, i), max(tl.hi, i)
	f(&slot.b)
}

func (tl *timeline) arrived(t time.Time) { tl.record(t, func(b *Bucket) { b.Calls++ }) }

func (tl *timeline) filed(t time.Time) { tl.record(t, func(b *Bucket) { b.Filed++ }) }

func (tl *timeline) ended(t time.Time, c answerClass) {
	tl.record(t, func(b *Bucket) {
		switch c {
		case classOK:
			b.OK++
		case classThrottled:
			b.Throttled++
		case classUnavailable:
			b.Unavailable++
		case classFaulted:
			b.Faulted++
		default:
			b.Other++
		}
	})
}

// buckets returns every bucket from the oldest recorded one still in the
// window to now's (or the newest recorded, if later), empty ones included,
// so that rates over any stretch can be read off directly.
func (tl *timeline) buckets(now time.Time) []Bucket {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.lo > tl.hi {
		return nil
	}
	n := int64(len(tl.slots))
	end := max(tl.index(now), tl.hi)
	start := max(tl.lo, end-n+1)
	out := make([]Bucket, 0, end-start+1)
	for i := start; i <= end; i++ {
		var b Bucket
		if s := tl.slots[((i%n)+n)%n]; s.idx == i {
			b = s.b
		}
		b.Start = time.Unix(0, i*int64(tl.res))
		out = append(out, b)
	}
	return out
}

// Timeline returns the per-interval record of the last Options.TimelineWindow:
// one Bucket per Options.TimelineResolution, oldest first, from the first
// bucket with activity (or the window's start) to the current one, empty
// buckets included. Times are on Options.Now's clock.
func (s *Sandbox) Timeline() []Bucket { return s.timeline.buckets(s.now()) }

// TimelineBetween sums the timeline's buckets starting in [from, to):
// calls that arrived, answers by class and Files accepted in that stretch,
// to the timeline's resolution. Start is from.
func (s *Sandbox) TimelineBetween(from, to time.Time) Bucket {
	sum := Bucket{Start: from}
	for _, b := range s.Timeline() {
		if !b.Start.Before(from) && b.Start.Before(to) {
			sum.add(b)
		}
	}
	return sum
}

// TimelineResolution is the width of a timeline Bucket.
func (s *Sandbox) TimelineResolution() time.Duration { return s.timeline.res }
