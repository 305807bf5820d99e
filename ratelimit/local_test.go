package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLocal(t *testing.T) {
	t.Parallel()
	t.Run("unlisted key is unlimited", func(t *testing.T) {
		t.Parallel()
		l := NewLocal(nil)
		for i := 0; i < 1000; i++ {
			if err := l.Wait(context.Background(), "cloud", 0); err != nil {
				t.Fatalf("permit %d: %v", i, err)
			}
		}
	})
	t.Run("past the burst a long wait is a DelayError and takes no permit", func(t *testing.T) {
		t.Parallel()
		now := time.Unix(1_700_000_000, 0)
		l := NewLocal(map[string]Limit{"cloud": {Rate: 1, Burst: 2}})
		l.now = func() time.Time { return now }
		for i := 0; i < 2; i++ {
			if err := l.Wait(context.Background(), "cloud", 0); err != nil {
				t.Fatalf("burst permit %d: %v", i, err)
			}
		}
		for i := 0; i < 3; i++ {
			err := l.Wait(context.Background(), "cloud", 100*time.Millisecond)
			var de *DelayError
			if !errors.As(err, &de) {
				t.Fatalf("want DelayError, got %v", err)
			}
			// Cancelled reservations give their permit back, so repeated
			// refusals keep asking for the same ~1 s, not a growing debt.
			if de.RetryIn <= 900*time.Millisecond || de.RetryIn > time.Second {
				t.Fatalf("RetryIn = %v, want about 1s", de.RetryIn)
			}
		}
		now = now.Add(time.Second)
		if err := l.Wait(context.Background(), "cloud", 0); err != nil {
			t.Fatalf("after a second: %v", err)
		}
	})
	t.Run("a wait past the context deadline is refused up front", func(t *testing.T) {
		t.Parallel()
		l := NewLocal(map[string]Limit{"cloud": {Rate: 0.1, Burst: 1}})
		_ = l.Wait(context.Background(), "cloud", 0)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		var de *DelayError
		if err := l.Wait(ctx, "cloud", time.Hour); !errors.As(err, &de) {
			t.Fatalf("want DelayError, got %v", err)
		}
	})
	t.Run("a short wait happens in process", func(t *testing.T) {
		t.Parallel()
		l := NewLocal(map[string]Limit{"cloud": {Rate: 100, Burst: 1}})
		_ = l.Wait(context.Background(), "cloud", 0)
		if err := l.Wait(context.Background(), "cloud", time.Second); err != nil {
			t.Fatalf("want a short in-process wait, got %v", err)
		}
	})
}

func TestLocalAcquire(t *testing.T) {
	t.Parallel()
	t.Run("grants a releasable permit within the rate", func(t *testing.T) {
		t.Parallel()
		now := time.Unix(1_700_000_000, 0)
		l := NewLocal(map[string]Limit{"cloud": {Rate: 1, Burst: 1}})
		l.now = func() time.Time { return now }
		pm, err := l.Acquire(context.Background(), "cloud", PriorityBulk, 0)
		if err != nil || pm == nil {
			t.Fatalf("Acquire = %v, %v", pm, err)
		}
		pm.Release()
		pm.Release()
		_, err = l.Acquire(context.Background(), "cloud", PriorityRealtime, 0)
		var de *DelayError
		if !errors.As(err, &de) || de.Reason != ReasonRate {
			t.Fatalf("second Acquire: want a rate DelayError, got %v", err)
		}
	})
	t.Run("Throttled changes nothing", func(t *testing.T) {
		t.Parallel()
		now := time.Unix(1_700_000_000, 0)
		l := NewLocal(map[string]Limit{"cloud": {Rate: 1, Burst: 3}})
		l.now = func() time.Time { return now }
		if err := l.Throttled(context.Background(), "cloud", time.Minute); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := l.Acquire(context.Background(), "cloud", PriorityBulk, 0); err != nil {
				t.Fatalf("permit %d after a throttle signal: %v", i, err)
			}
		}
	})
}
