package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/worker"
)

// TestWorkerOnRedisCluster runs the whole path with redis.cluster set: a
// producer enqueues returns and a worker files them, limiter, breaker,
// token store, ledger and asynq all on a real three-master Redis Cluster,
// reached through one node's address.
func TestWorkerOnRedisCluster(t *testing.T) {
	t.Parallel()
	cc := redistest.Cluster(t)
	s := newStackWith(t, sandbox.Options{}, demo.Options{}, func(cfg *config.Config) {
		// A dead seed node first: the others are found through the live one.
		cfg.Redis.Addr, cfg.Redis.Cluster = "127.0.0.1:1, "+cc.Options().Addrs[0], true
	})
	if err := s.cfg.ValidateFor(config.RoleWorker); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("worker.NewRedis with redis.cluster made a %T", s.rdb)
	}
	s.enq = worker.Enqueuer(s.cfg, s.rdb) // marking Files queued in the ledger, on the cluster too

	jobs := s.returns(t, 12)
	s.enqueueAll(t, jobs)
	stop := s.runWorker(t)
	s.waitFor(t, time.Minute, "all filed", func(qi *asynq.QueueInfo) bool { return qi.Completed == len(jobs) })
	stop()
	if st := s.sb.Stats(); st.DuplicateFilings != 0 || st.Filed != int64(len(jobs)) {
		t.Fatalf("sandbox filed %d (want %d), duplicates %d", st.Filed, len(jobs), st.DuplicateFilings)
	}
	l := ledger.New(s.rdb, s.cfg.Redis.KeyPrefix)
	stats, err := l.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Entries[ledger.StateFiled] != int64(len(jobs)) {
		t.Fatalf("ledger entries %v, want %d filed", stats.Entries, len(jobs))
	}
}
