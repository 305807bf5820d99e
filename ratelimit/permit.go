package ratelimit

import (
	"context"
	"sync"
	"time"
)

// releaseTimeout bounds the one command a release costs. Release runs when
// a call ends, often because its context ended, so it cannot use the
// caller's context.
const releaseTimeout = 2 * time.Second

// Permit is one granted call. Release it when the call really ends (its
// response read or its context ended) so that its in-flight slot frees for
// the fleet; a permit never released frees itself at its expiry.
type Permit struct {
	once    sync.Once
	release func(ctx context.Context)
}

// Release gives back the permit's in-flight slot, if it holds one. It is
// safe on a nil *Permit and to call more than once; it blocks for at most a
// couple of seconds (one Redis command) and never fails: a slot that could
// not be released expires on its own.
func (p *Permit) Release() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		if p.release == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		p.release(ctx)
	})
}
