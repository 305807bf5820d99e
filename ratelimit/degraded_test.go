package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/tcpproxy"
)

func TestFleetDegradedMode(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	proxy := tcpproxy.New(t, r.Addr)
	rdb := redis.NewClient(&redis.Options{
		Addr: proxy.Addr(), MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	defer rdb.Close()
	reg := prometheus.NewRegistry()
	// Fleet-wide 100/s; alone while degraded, this process allows 20/s,
	// burst 2, 2 in flight.
	s := Settings{Rate: 100, Burst: 10, MaxInFlight: 10, DegradedFraction: 0.2}
	f := newRedisFleetClient(t, rdb, r.Prefix, s, FleetOptions{Metrics: NewMetrics(reg), ProbeInterval: 200 * time.Millisecond})
	ctx := context.Background()

	pm, err := f.Acquire(ctx, testKey, PriorityBulk, 0)
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	pm.Release()
	if f.Degraded() {
		t.Fatal("degraded with Redis answering")
	}

	proxy.Cut()
	const dur = time.Second
	var peak, cur int
	var mu sync.Mutex
	got := hammer(t, f, PriorityBulk, 4, dur, func() {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		cur--
		mu.Unlock()
	})
	if !f.Degraded() {
		t.Fatal("Degraded() = false with Redis cut off")
	}
	if g := gaugeValue(t, reg, "gatewayq_ratelimit_degraded"); g != 1 {
		t.Fatalf("degraded gauge = %v, want 1", g)
	}
	// 20/s for a second plus a burst of 2: neither blocked nor unlimited.
	if got > 20+2+1 || got < 10 {
		t.Errorf("degraded: granted %d in %v, want about 20 (the local share)", got, dur)
	}
	if peak > 2 {
		t.Errorf("degraded: %d in flight, local share is 2", peak)
	}
	t.Logf("degraded: granted %d in %v, peak %d in flight", got, dur, peak)

	proxy.Restore()
	deadline := time.Now().Add(3 * time.Second)
	for f.Degraded() {
		if time.Now().After(deadline) {
			t.Fatal("still degraded 3 s after Redis came back")
		}
		pm, err := f.Acquire(ctx, testKey, PriorityBulk, time.Second)
		if err != nil {
			t.Fatalf("while recovering: %v", err)
		}
		pm.Release()
		time.Sleep(20 * time.Millisecond)
	}
	if g := gaugeValue(t, reg, "gatewayq_ratelimit_degraded"); g != 0 {
		t.Fatalf("degraded gauge = %v after recovery, want 0", g)
	}
	// Back on the fleet path: the grant landed in Redis.
	before := r.Client.HGet(ctx, stateKey(r.Prefix, testKey), "tat").Val()
	pm, err = f.Acquire(ctx, testKey, PriorityBulk, time.Second)
	if err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	pm.Release()
	if after := r.Client.HGet(ctx, stateKey(r.Prefix, testKey), "tat").Val(); after == before {
		t.Fatalf("after recovery the permit did not come from Redis (tat %s unchanged)", after)
	}
}
