package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1 // bad flags or input, invalid job, Redis unreachable
	exitRejected = 2 // bulk: some lines rejected, the good ones enqueued
)

// app is the whole CLI, with its outside world injected so tests run it in
// process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	now            func() time.Time
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	configPath  string
	redisAddr   string
	queuePrefix string
}

// register adds the global flags to fs. The values already in g (from
// flags before the command) are the defaults, so registering again for the
// command's own flag set keeps them.
func (g *globals) register(fs *flag.FlagSet, environ []string) {
	if g.configPath == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "GATEWAYQ_CONFIG="); ok {
				g.configPath = v
			}
		}
	}
	fs.StringVar(&g.configPath, "config", g.configPath, "config `file` (YAML; GATEWAYQ_* variables override it; default $GATEWAYQ_CONFIG)")
	fs.StringVar(&g.redisAddr, "redis", g.redisAddr, "Redis `host:port`, overriding redis.addr")
	fs.StringVar(&g.queuePrefix, "queue-prefix", g.queuePrefix, "`prefix` of the queue names, overriding redis.queue_prefix; the workers must use the same")
}

const usage = `enqueue puts gatewayq jobs on the queues and looks them up.

Usage:
  enqueue [global flags] <command> [flags] [arguments]

Commands:
  submit   enqueue one job, from a JSON file or from flags
  bulk     enqueue a JSON-lines file of jobs (one a line), streaming
  status   show a task's state and its result
  batch    a batch's progress (status), its morning report (report), recent batches (list)
  failed   list failed jobs with counts per cause, filtered by queue, batch, class, code, ...
  redrive  re-drive failed jobs (same filters; --dry-run first); "redrive history" lists re-drives
  auth     manage end users' OAuth token sets: login, import, list, revoke
  schedule recent runs of a scheduled nightly batch (schedule runs NAME)

Global flags (accepted before or after the command):
  --config FILE         config file (default $GATEWAYQ_CONFIG); GATEWAYQ_* variables override it
  --redis HOST:PORT     Redis address, overriding redis.addr
  --queue-prefix P      prefix of the queue names, overriding redis.queue_prefix

Run "enqueue <command> -h" for a command's flags.

Exit codes: 0 done; 1 error (bad flags or input, invalid job, Redis
unreachable); 2 bulk only: some lines were rejected, the good ones enqueued.
`

// Run runs the CLI with args (without the program name) and returns the
// exit code.
func (a *app) Run(ctx context.Context, args []string) int {
	var g globals
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() { fmt.Fprint(a.stderr, usage) }
	g.register(fs, a.environ)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if fs.NArg() == 0 {
		fmt.Fprint(a.stderr, usage)
		return exitError
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "submit":
		return a.submit(ctx, &g, rest)
	case "bulk":
		return a.bulk(ctx, &g, rest)
	case "status":
		return a.status(ctx, &g, rest)
	case "batch":
		return a.batch(ctx, &g, rest)
	case "failed":
		return a.failed(ctx, &g, rest)
	case "redrive":
		return a.redrive(ctx, &g, rest)
	case "auth":
		return a.auth(ctx, &g, rest)
	case "schedule":
		return a.schedule(ctx, &g, rest)
	case "help":
		fmt.Fprint(a.stdout, usage)
		return exitOK
	}
	fmt.Fprintf(a.stderr, "enqueue: unknown command %q\n\n%s", cmd, usage)
	return exitError
}

// newFlagSet makes a command's flag set, with the global flags.
func (a *app) newFlagSet(g *globals, name, synopsis, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("enqueue "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: enqueue %s\n\n%s\nFlags:\n", synopsis, help)
		fs.PrintDefaults()
	}
	g.register(fs, a.environ)
	return fs
}

// parse parses flags and arguments in any order ("bulk FILE --queue bulk"
// as well as "bulk --queue bulk FILE"), which the flag package alone does
// not; "--" ends the flags. It returns the arguments, or the exit code to
// end with.
func parse(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitError, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		// fs.Parse stops at the first argument, or just after a "--".
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// session is what a command needs to reach the queues.
type session struct {
	cfg    *config.Config
	prefix string
	redis  asynq.RedisConnOpt
}

// connect loads and validates the configuration. It does not dial Redis:
// the first command that needs it does, and reports a failure with the
// address it tried.
func (a *app) connect(g *globals) (*session, error) {
	cfg, err := config.Load(g.configPath, a.environ)
	if err != nil {
		return nil, err
	}
	if g.redisAddr != "" {
		cfg.Redis.Addr = g.redisAddr
	}
	if err := cfg.ValidateFor(config.RoleEnqueue); err != nil {
		return nil, fmt.Errorf("config:\n%w", err)
	}
	if cfg.Redis.Addr == "" {
		// The sandbox profile allows no address (the demo runs an
		// in-process Redis), but the CLI must reach the workers' Redis.
		return nil, errors.New("no Redis address: give --redis HOST:PORT, set redis.addr in the config file, or GATEWAYQ_REDIS_ADDR")
	}
	if g.queuePrefix != "" {
		cfg.Redis.QueuePrefix = g.queuePrefix
	}
	return &session{cfg: cfg, prefix: cfg.Redis.QueuePrefix, redis: worker.AsynqRedis(cfg.Redis)}, nil
}

// enqueuer returns an enqueuer with the workers' retry, retention and time
// budget, marking new Files queued in the ledger; close its Redis client
// when done.
func (s *session) enqueuer() (*tasks.Enqueuer, io.Closer) {
	rdb := s.rdb()
	return worker.Enqueuer(s.cfg, rdb), rdb
}

// fail prints err and returns exitError.
func (a *app) fail(err error) int {
	fmt.Fprintf(a.stderr, "enqueue: %v\n", err)
	return exitError
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
