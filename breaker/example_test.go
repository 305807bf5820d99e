package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/breaker"
	"github.com/gatewayq/gatewayq/internal/redistest"
)

var errUnavailable = errors.New("HTTP 503 from the gateway")

// callGateway stands for a gateway call; IR is down in this example.
func callGateway(context.Context) error { return errUnavailable }

// Two worker processes share one breaker through Redis: when the first
// trips, the second refuses too, without having failed itself.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := fmt.Sprintf("example:%d:", time.Now().UnixNano())
	settings := breaker.Settings{
		FailureRatio: 0.5,
		MinRequests:  5,
		Window:       10 * time.Second,
		OpenFor:      15 * time.Second,
		// In gatewayq: gatewayclient.GatewayFailure and BreakerExcluded.
		IsFailure:  func(err error) bool { return errors.Is(err, errUnavailable) },
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	}
	var workers []*breaker.Fleet
	for range 2 {
		rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
		defer rdb.Close()
		f, err := breaker.New(rdb, prefix, settings, breaker.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := f.Start(ctx); err != nil { // returns at once
			fmt.Println(err)
			return
		}
		defer f.Close()
		workers = append(workers, f)
	}
	defer func() {
		rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
		defer rdb.Close()
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		rdb.Del(context.Background(), keys...)
	}()

	const key = "cloud:0123456789abcdef0123456789abcdef.irdgws.example.com"
	workers[1].State(key) // the second worker has used the endpoint before
	for range 5 {
		done, err := workers[0].Allow(ctx, key)
		if err != nil {
			break
		}
		done(callGateway(ctx))
	}
	// Within a second, usually milliseconds, the other worker knows.
	for deadline := time.Now().Add(2 * time.Second); workers[1].State(key) != breaker.Open && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	_, err := workers[1].Allow(ctx, key)
	var oe *breaker.OpenError
	if errors.As(err, &oe) {
		fmt.Println("refused:", errors.Is(err, breaker.ErrOpen), "- retry in about", oe.RetryIn.Round(5*time.Second))
	}
	// Output:
	// refused: true - retry in about 15s
}

// A call guarded by the breaker: Allow, make the call, report its outcome.
func ExampleFleet_Allow() {
	// nil Redis: a breaker of this process alone.
	f, err := breaker.New(nil, "", breaker.Settings{MinRequests: 3}, breaker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for i := range 4 {
		done, err := f.Allow(ctx, "desktop")
		if err != nil {
			// A job would snooze for RetryIn, keeping its retry budget.
			fmt.Printf("call %d: %v\n", i+1, err)
			continue
		}
		done(callGateway(ctx)) // done must always be called
		fmt.Printf("call %d: made\n", i+1)
	}
	fmt.Println(f.State("desktop"))
	// Output:
	// call 1: made
	// call 2: made
	// call 3: made
	// call 4: circuit breaker open for desktop: retry in 15s
	// open
}
