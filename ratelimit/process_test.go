package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
)

// helperEnv guards TestHelperProcess: set, the test binary is a child of
// TestFleetAcrossProcesses standing in for one worker process.
const helperEnv = "GATEWAYQ_RATELIMIT_HELPER"

// TestFleetAcrossProcesses runs three copies of the test binary hammering
// one key at once and checks that their grants together respect the rate.
func TestFleetAcrossProcesses(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const (
		rate     = 30.0
		burst    = 3
		children = 3
		dur      = 2 * time.Second
	)
	// A common start, late enough for every child to be running.
	start := time.Now().Add(1500 * time.Millisecond)
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
	)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			helperEnv+"=1",
			"REDIS_ADDR="+r.Addr,
			"RL_PREFIX="+r.Prefix,
			fmt.Sprintf("RL_RATE=%g", rate),
			fmt.Sprintf("RL_BURST=%d", burst),
			fmt.Sprintf("RL_START=%d", start.UnixNano()),
			fmt.Sprintf("RL_DUR=%s", dur),
		)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			err := cmd.Wait()
			n, perr := parseGrants(out.String())
			if err != nil || perr != nil {
				t.Errorf("child %d: %v %v\n%s", i, err, perr, out.String())
				return
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	want := rate * dur.Seconds()
	if float64(total) > want+burst+1 {
		t.Errorf("%d processes granted %d in %v, more than rate×time + burst = %v", children, total, dur, want+burst)
	}
	if float64(total) < 0.97*want {
		t.Errorf("%d processes granted %d in %v, less than 97%% of %v", children, total, dur, want)
	}
	t.Logf("%d processes granted %d in %v at %v/s", children, total, dur, rate)
}

func parseGrants(out string) (int, error) {
	for line := range strings.Lines(out) {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "grants "); ok {
			return strconv.Atoi(n)
		}
	}
	return 0, fmt.Errorf("no grants line")
}

// TestHelperProcess is one worker process of TestFleetAcrossProcesses. It
// does nothing unless that test started it.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("a child process of TestFleetAcrossProcesses")
	}
	rate, _ := strconv.ParseFloat(os.Getenv("RL_RATE"), 64)
	burst, _ := strconv.Atoi(os.Getenv("RL_BURST"))
	startNS, _ := strconv.ParseInt(os.Getenv("RL_START"), 10, 64)
	dur, err := time.ParseDuration(os.Getenv("RL_DUR"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	f := newRedisFleetClient(t, rdb, os.Getenv("RL_PREFIX"), Settings{Rate: rate, Burst: burst}, FleetOptions{})
	if err := sleepCtx(context.Background(), time.Until(time.Unix(0, startNS))); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("grants %d\n", hammer(t, f, PriorityBulk, 4, dur, nil))
}
