// Package redistest gives tests a real Redis: the address comes from
// REDIS_ADDR (default 127.0.0.1:6379), each test gets its own key prefix and
// asynq queue names, everything under the prefix is deleted when the test
// ends, and a test fails — never skips — when no Redis answers.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAddr is used when REDIS_ADDR is unset.
const DefaultAddr = "127.0.0.1:6379"

// Addr is the Redis address tests use.
func Addr() string {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	return DefaultAddr
}

// Redis is one test's view of the shared server.
type Redis struct {
	Addr   string
	Client *redis.Client
	// Prefix is unique to the test, e.g. "t:3f9a1c2d:"; use it for every key
	// the test (and the code under test) writes.
	Prefix string
}

// New connects to the test Redis, failing the test loudly if it cannot, and
// deletes every key under the test's prefix when the test ends.
func New(tb testing.TB) *Redis {
	tb.Helper()
	addr := Addr()
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		tb.Fatalf("redistest: no Redis at %s (set REDIS_ADDR, or run `make test`, which starts one): %v", addr, err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	r := &Redis{Addr: addr, Client: c, Prefix: "t:" + name + ":" + hex.EncodeToString(b[:]) + ":"}
	tb.Cleanup(func() {
		r.DeletePrefix(tb, r.Prefix)
		_ = c.Close()
	})
	return r
}

// Queue returns a queue name unique to this test, so asynq servers of
// parallel tests never take each other's tasks.
func (r *Redis) Queue(name string) string { return r.Prefix + name }

// DeletePrefix removes every key matching prefix*, and asynq's keys of the
// test's queues (asynq keys them "asynq:{<queue>}:...").
func (r *Redis) DeletePrefix(tb testing.TB, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pattern := range []string{prefix + "*", "asynq:{" + prefix + "*"} {
		iter := r.Client.Scan(ctx, 0, pattern, 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 500 {
				r.Client.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			r.Client.Unlink(ctx, keys...)
		}
	}
	// asynq keeps a set of all queue names; drop ours from it.
	qs, _ := r.Client.SMembers(ctx, "asynq:queues").Result()
	for _, q := range qs {
		if strings.HasPrefix(q, prefix) {
			r.Client.SRem(ctx, "asynq:queues", q)
		}
	}
}
