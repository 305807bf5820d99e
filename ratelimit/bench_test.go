package ratelimit

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
)

// countHook counts the commands a client sends.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// BenchmarkFleetAcquire measures permits per second and Redis commands per
// permit (release included) through the whole Acquire path.
func BenchmarkFleetAcquire(b *testing.B) {
	for _, bc := range []struct {
		name string
		s    Settings
	}{
		// Never limited: the cost of the script itself.
		{name: "unlimited", s: Settings{Rate: 1e7, Burst: 1e6}},
		// With an in-flight cap: the script, then one ZREM at release.
		{name: "in-flight cap", s: Settings{Rate: 1e7, Burst: 1e6, MaxInFlight: 1 << 20}},
		// Bulk work saturating a 2000/s limit with a 20% realtime
		// reserve: it gets 1600/s; waiting callers poll, about one extra
		// command per permit for a single process.
		{name: "saturated bulk 2000/s reserve 0.2", s: Settings{Rate: 2000, Burst: 20, RealtimeReserve: 0.2}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := redistest.New(b)
			rdb := redis.NewClient(&redis.Options{Addr: r.Addr, PoolSize: 32})
			defer rdb.Close()
			hook := &countHook{}
			rdb.AddHook(hook)
			f := newRedisFleetClient(b, rdb, r.Prefix, bc.s, FleetOptions{})
			ctx := context.Background()
			var permits atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			start := time.Now()
			hook.n.Store(0)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					for {
						pm, err := f.Acquire(ctx, testKey, PriorityBulk, time.Second)
						var de *DelayError
						if errors.As(err, &de) {
							continue
						}
						if err != nil {
							b.Error(err)
							return
						}
						pm.Release()
						permits.Add(1)
						break
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			n := float64(permits.Load())
			b.ReportMetric(n/elapsed.Seconds(), "permits/s")
			b.ReportMetric(float64(hook.n.Load())/n, "cmds/permit")
		})
	}
}
