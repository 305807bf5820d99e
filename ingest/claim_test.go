package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/internal/redistest"
)

func TestClaims(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	c := claims{rdb: r.Client, prefix: r.Prefix}
	ctx := context.Background()

	release, err := c.acquire(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	// Another post of the job waits; one of another job does not.
	short, cancel := context.WithTimeout(ctx, 3*claimPoll)
	defer cancel()
	if _, err := c.acquire(short, "job-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second claim of a held job: %v, want the context's deadline", err)
	}
	other, err := c.acquire(ctx, "job-2")
	if err != nil {
		t.Fatalf("claim of another job: %v", err)
	}
	other()

	got := make(chan error, 1)
	go func() {
		rel, err := c.acquire(ctx, "job-1")
		if err == nil {
			rel()
		}
		got <- err
	}()
	time.Sleep(2 * claimPoll)
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting claim after release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting claim did not get the job after its release")
	}

	// A claim that outlived its TTL and was taken by another post is not
	// released by its first holder.
	stale, err := c.acquire(ctx, "job-3")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, c.key("job-3"), "another post", claimTTL).Err(); err != nil {
		t.Fatal(err)
	}
	stale()
	if v, err := r.Client.Get(ctx, c.key("job-3")).Result(); err != nil || v != "another post" {
		t.Fatalf("after a stale release the claim is %q (%v), want the other post's", v, err)
	}
	if n := r.Client.Exists(ctx, c.key("job-1")).Val(); n != 0 {
		t.Fatal("job-1's claim was left behind after its release")
	}
}
