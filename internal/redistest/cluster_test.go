package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCluster: three masters own every slot, keys of one hash tag go
// together, and keys of different slots are refused as Redis Cluster
// refuses them (the point of the helper).
func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := Cluster(t)
	t.Logf("three-master Redis Cluster ready in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	masters, slots := 0, 0
	for _, s := range shards {
		for _, n := range s.Nodes {
			if n.Role == "master" {
				masters++
			}
		}
		for _, r := range s.Slots {
			slots += int(r.End-r.Start) + 1
		}
	}
	if masters != ClusterSize || slots != clusterSlots {
		t.Fatalf("%d masters owning %d slots, want %d owning %d: %+v", masters, slots, ClusterSize, clusterSlots, shards)
	}

	if err := c.MSet(ctx, "{t}:a", "1", "{t}:b", "2").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.MGet(ctx, "{t}:a", "{t}:b").Result(); err != nil || v[0] != "1" || v[1] != "2" {
		t.Fatalf("MGET of one hash tag = %v, %v", v, err)
	}
	// "a" and "b" hash to slots 15495 and 3300: two masters.
	if err := c.MGet(ctx, "a", "b").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MGET across slots = %v, want CROSSSLOT", err)
	}
	script := redis.NewScript(`return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])`)
	if err := script.Run(ctx, c, []string{"a", "b"}).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("a script on keys of two slots = %v, want CROSSSLOT", err)
	}
	if v, err := script.Run(ctx, c, []string{"{t}:a", "{t}:b"}).Text(); err != nil || v != "12" {
		t.Fatalf("a script on one hash tag = %q, %v", v, err)
	}
}
