package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/sandboxtest"
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
	r := redistest.New(t) // a unique prefix; nothing is written to it
	sb, cfg := sandboxtest.Start(t, r, sandbox.Options{}, demo.Options{})
	cfg.Redis.Addr, cfg.Redis.Cluster = cc.Options().Addrs[0], true
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		t.Fatal(err)
	}
	rdb := worker.NewRedis(cfg.Redis)
	t.Cleanup(func() { _ = rdb.Close() })
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("worker.NewRedis with redis.cluster made a %T", rdb)
	}
	store, err := worker.TokenStore(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ts := auth.TokenSet{ID: "ts-cluster", AccessToken: sb.IssueToken("cluster-user", time.Hour), Expiry: time.Now().Add(time.Hour), Endpoint: gatewayclient.EndpointCloud, User: "cluster-user"}
	if err := store.Put(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	t.Cleanup(func() { _ = insp.Close() })
	s := &stack{r: r, sb: sb, cfg: cfg, insp: insp, token: ts.ID, enq: worker.Enqueuer(cfg, rdb)}

	jobs := s.returns(t, 12)
	s.enqueueAll(t, jobs)
	stop := s.runWorker(t)
	s.waitFor(t, time.Minute, "all filed", func(qi *asynq.QueueInfo) bool { return qi.Completed == len(jobs) })
	stop()
	if st := sb.Stats(); st.DuplicateFilings != 0 || st.Filed != int64(len(jobs)) {
		t.Fatalf("sandbox filed %d (want %d), duplicates %d", st.Filed, len(jobs), st.DuplicateFilings)
	}
	l := ledger.New(rdb, cfg.Redis.KeyPrefix)
	stats, err := l.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Entries[ledger.StateFiled] != int64(len(jobs)) {
		t.Fatalf("ledger entries %v, want %d filed", stats.Entries, len(jobs))
	}
}
