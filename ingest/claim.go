package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimTTL bounds how long one post holds a task ID: far more than a
// look-up on two queues and an enqueue take, and short enough that a
// worker dying while it holds one delays the others only briefly.
const claimTTL = 10 * time.Second

// claimPoll is how often a post waiting for a task ID asks again.
const claimPoll = 20 * time.Millisecond

// releaseClaim deletes a claim only if it is still the caller's: one that
// outlived claimTTL may be another post's by now.
var releaseClaim = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// claims serialise the posts of one task ID across the fleet. asynq's task
// IDs are unique per queue only, and a post looks on the other queues
// before it enqueues on its own: without a claim, two posts of one job to
// different queues could both look, find nothing, and make two tasks.
type claims struct {
	rdb    redis.UniversalClient
	prefix string
}

func (c claims) key(id string) string { return c.prefix + "ingest:claim:" + id }

// acquire waits until this post holds id, or ctx ends. The release func
// gives the claim up.
func (c claims) acquire(ctx context.Context, id string) (release func(), err error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := c.key(id)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another post of job %s: %w", id, context.Cause(ctx))
		case <-t.C:
		}
		ok, err := c.rdb.SetNX(ctx, key, token, claimTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("claiming job %s: %w", id, err)
		}
		if ok {
			return func() {
				// Even when the request's context has ended: a claim left
				// behind makes the next post of this job wait claimTTL.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				// On failure the claim expires within claimTTL.
				_ = releaseClaim.Run(rctx, c.rdb, []string{key}, token).Err()
			}, nil
		}
		t.Reset(claimPoll)
	}
}
