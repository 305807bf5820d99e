package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ratelimit"
)

func ExampleFleet() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	prefix := fmt.Sprintf("example:%d:", time.Now().UnixNano())

	// One limit per endpoint and client certificate, shared by every worker.
	key := "cloud:0123456789abcdef0123456789abcdef.irdgws.example.com"
	fleet, err := ratelimit.NewFleet(rdb, prefix, map[string]ratelimit.Settings{
		key: {Rate: 1, Burst: 1, MaxInFlight: 4, RealtimeReserve: 0.2},
	}, ratelimit.FleetOptions{Logger: slog.New(slog.DiscardHandler)}) // quiet for the example
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rdb.Del(ctx, prefix+"{limit:"+key+"}:state", prefix+"{limit:"+key+"}:inflight")

	permit, err := fleet.Acquire(ctx, key, ratelimit.PriorityRealtime, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("first call: permit granted")
	// ... call the gateway, then free the in-flight slot:
	permit.Release()

	// The burst is spent and the next permit is a second away: more than
	// this caller will wait, so it takes nothing and is told when to come
	// back (a task snoozes for RetryIn).
	_, err = fleet.Acquire(ctx, key, ratelimit.PriorityBulk, 100*time.Millisecond)
	var de *ratelimit.DelayError
	if errors.As(err, &de) {
		fmt.Println("second call: delayed by", de.Reason)
	}

	// IR answered 429: the whole fleet slows down.
	if err := fleet.Throttled(ctx, key, 0); err != nil {
		fmt.Println(err)
		return
	}
	eff, err := fleet.Effective(ctx, key)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("effective rate after a 429: %.1f/s\n", eff)
	// Output:
	// first call: permit granted
	// second call: delayed by rate
	// effective rate after a 429: 0.5/s
}
