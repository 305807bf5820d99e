package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterSize is how many masters Cluster starts.
const ClusterSize = 3

// clusterSlots is Redis Cluster's fixed number of hash slots.
const clusterSlots = 16384

// Cluster starts a real Redis Cluster of ClusterSize masters, local
// redis-server processes in the test's temporary directory on free ports,
// with the 16384 slots split between them, and returns a client of it. The
// processes are killed when the test ends.
//
// It exists because gatewayq's design promises that its own Lua scripts
// and multi-key commands touch the keys of one hash slot only (hash tags
// such as "{limit:cloud:<cn>}"), so they run unchanged on Redis Cluster; a
// single Redis accepts any keys and cannot catch a script that breaks that
// promise, a cluster answers it with CROSSSLOT.
//
// The client has go-redis's routing policies off, so a multi-key command
// across slots (MGET, DEL...) fails with CROSSSLOT as Redis Cluster itself
// answers it, instead of being split per shard behind the caller's back
// (which is not atomic, and which other clients do not do).
//
// redis-server is REDIS_SERVER, else the one on PATH; without one the test
// fails — never skips — saying what to install. Starting takes about two
// seconds: a new cluster master waits that long before it serves.
func Cluster(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			tb.Fatalf("redistest: cannot start a Redis Cluster: no redis-server on PATH (install it, e.g. `apt-get install redis-server`, or set REDIS_SERVER to its path; `make test` installs it): %v", err)
		}
		bin = p
	} else if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("redistest: cannot start a Redis Cluster: REDIS_SERVER=%s: %v (point it at a redis-server, or unset it to use the one on PATH)", bin, err)
	}

	dir := tb.TempDir()
	var (
		mu    sync.Mutex
		procs []*process
	)
	// Registered before anything starts, so that a failure half way
	// kills whatever did start.
	tb.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nodes := make([]*clusterNode, ClusterSize)
	errs := make([]error, ClusterSize)
	taken := map[int]bool{}
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			n, err := startNode(ctx, bin, dir, &mu, taken, func(p *process) { procs = append(procs, p) })
			nodes[i], errs[i] = n, err
		})
	}
	wg.Wait()
	defer func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.c.Close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("redistest: cannot start a Redis Cluster with %s: %v", bin, err)
	}

	// As `redis-cli --cluster create` does: distinct config epochs, the
	// slots split in ranges, and every node introduced to the others.
	for i, n := range nodes {
		lo, hi := i*clusterSlots/ClusterSize, (i+1)*clusterSlots/ClusterSize-1
		if err := n.c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			tb.Fatalf("redistest: Redis Cluster node %s: CLUSTER SET-CONFIG-EPOCH: %v", n.addr, err)
		}
		if err := n.c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			tb.Fatalf("redistest: Redis Cluster node %s: CLUSTER ADDSLOTSRANGE %d %d: %v", n.addr, lo, hi, err)
		}
	}
	for i, n := range nodes {
		for _, m := range nodes[i+1:] {
			if err := n.c.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(m.port)).Err(); err != nil {
				tb.Fatalf("redistest: Redis Cluster node %s: CLUSTER MEET %s: %v", n.addr, m.addr, err)
			}
		}
	}

	const readyWithin = 15 * time.Second
	deadline := time.Now().Add(readyWithin)
	for _, n := range nodes {
		for {
			info, err := n.c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(ClusterSize)+"\r") &&
				strings.Contains(info, "cluster_slots_assigned:"+strconv.Itoa(clusterSlots)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: the Redis Cluster was not ready within %s: node %s reports (err %v):\n%s\nits log, %s:\n%s",
					readyWithin, n.addr, err, info, n.log, tail(n.log))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DisableRoutingPolicies: true})
	tb.Cleanup(func() { _ = c.Close() })
	if err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() }); err != nil {
		tb.Fatalf("redistest: Redis Cluster at %v does not answer its client: %v", addrs, err)
	}
	return c
}

// process is a started redis-server; exited is closed once it has been
// waited for.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// clusterNode is one started redis-server.
type clusterNode struct {
	port int
	addr string
	log  string
	c    *redis.Client
}

// startNode starts one cluster node on free ports and waits for it to
// answer. A port taken by someone else between the look and the start is
// tried again with others.
func startNode(ctx context.Context, bin, dir string, mu *sync.Mutex, taken map[int]bool, started func(*process)) (*clusterNode, error) {
	var errs []error
	for range 5 {
		mu.Lock()
		port, err := freeClusterPort(taken)
		if err == nil {
			taken[port], taken[port+10000] = true, true
		}
		mu.Unlock()
		if err != nil {
			return nil, err
		}
		p := strconv.Itoa(port)
		log := filepath.Join(dir, "redis-"+p+".log")
		cmd := exec.Command(bin,
			"--port", p, "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+p+".conf"),
			"--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", log)
		setDeathSignal(cmd)
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		mu.Lock()
		started(&process{cmd: cmd, exited: exited})
		mu.Unlock()
		n := &clusterNode{port: port, addr: "127.0.0.1:" + p, log: log}
		n.c = redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1, DialTimeout: time.Second})
		for {
			err := n.c.Ping(ctx).Err()
			if err == nil {
				return n, nil
			}
			select {
			case <-exited:
				// Most likely the port was taken meanwhile; the log says.
				_ = n.c.Close()
				errs = append(errs, fmt.Errorf("redis-server on port %d exited: %s", port, tail(log)))
			case <-ctx.Done():
				_ = n.c.Close()
				return nil, fmt.Errorf("redis-server on port %d did not answer: %w (log %s: %s)", port, err, log, tail(log))
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
	}
	return nil, errors.Join(errs...)
}

// freeClusterPort finds a port that is free, as is its cluster bus port
// (port+10000), and that no other node of this cluster uses either way.
func freeClusterPort(taken map[int]bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 || taken[port] || taken[port+10000] {
			_ = l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port, nil
	}
	return 0, errors.New("no free port whose cluster bus port (+10000) is free too")
}

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
