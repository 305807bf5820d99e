// Package worker assembles a gatewayq worker process from a config.Config:
// the gateway client, credentials, rate limiter and job handler, the asynq
// server that feeds it from the realtime, bulk and redrive queues, and the
// health endpoint. cmd/worker and the demo both run one.
package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/breaker"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/ratelimit"
	"github.com/gatewayq/gatewayq/reaper"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/webui"
)

// Options are what a Worker needs besides its config.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
}

// Worker is one worker process: it runs jobs until its context ends.
type Worker struct {
	cfg    *config.Config
	log    *slog.Logger
	rdb    redis.UniversalClient
	client *gatewayclient.Client
	srv    *asynq.Server
	mux    *asynq.ServeMux
	health *http.Server
	// healthCert is the health listener's certificate when it serves TLS
	// (worker.health_cert), swapped by Reload.
	healthCert atomic.Pointer[tls.Certificate]
	breaker    *breaker.Fleet
	reaper     *reaper.Reaper // gives dead workers' jobs back within seconds
	ui         *webui.Handler // the monitoring UI, when monitoring.enabled
	ingest     *ingest.Server // the HTTP ingest API, when ingest.enabled

	sched *batchScheduler // the scheduled batches, when schedule.batches is set

	mu       sync.Mutex
	listener net.Listener // set once Run has bound worker.health_addr

	reg   *prometheus.Registry // what /metrics serves
	certs []*certificate       // watched for expiry by /readyz
	// stopping is set once Run stops taking jobs: /readyz says not ready.
	stopping atomic.Bool
}

// RedisOptions maps the config onto go-redis options; asynq and our own
// state share one Redis.
func RedisOptions(c config.Redis) *redis.Options {
	return &redis.Options{
		Addr:        c.Addr,
		Username:    c.Username,
		Password:    c.Password,
		DB:          c.DB,
		DialTimeout: c.DialTimeout,
	}
}

// NewRedis opens a go-redis client of the configured Redis: a cluster
// client when redis.cluster is set (the other nodes are discovered from
// redis.addr), else a client of the one server. Close it when done.
func NewRedis(c config.Redis) redis.UniversalClient {
	if c.Cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:       c.Addrs(),
			Username:    c.Username,
			Password:    c.Password,
			DialTimeout: c.DialTimeout,
		})
	}
	return redis.NewClient(RedisOptions(c))
}

// AsynqRedis maps the config onto asynq's connection options.
func AsynqRedis(c config.Redis) asynq.RedisConnOpt {
	if c.Cluster {
		return asynq.RedisClusterClientOpt{Addrs: c.Addrs(), Username: c.Username, Password: c.Password, DialTimeout: c.DialTimeout}
	}
	return asynq.RedisClientOpt{Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, DialTimeout: c.DialTimeout}
}

// ClientOptions builds the gateway client's options from the config,
// loading the client certificate and CA bundle it names.
func ClientOptions(cfg *config.Config, log *slog.Logger) (gatewayclient.Options, error) {
	o := gatewayclient.Options{
		Endpoints: map[gatewayclient.EndpointKind]gatewayclient.Endpoint{
			gatewayclient.EndpointCloud:   endpoint(cfg.Endpoints.Cloud),
			gatewayclient.EndpointDesktop: endpoint(cfg.Endpoints.Desktop),
		},
		ServerName:          cfg.TLS.ServerName,
		InsecureSkipVerify:  cfg.TLS.InsecureSkipVerify,
		CallTimeout:         cfg.Gateway.CallTimeout,
		MaxIdleConnsPerHost: cfg.Gateway.MaxIdleConnsPerHost,
		Logger:              log,
	}
	if cfg.TLS.ClientCert != "" {
		cert, err := gatewayclient.LoadClientCertificate(cfg.TLS.ClientCert, cfg.TLS.ClientKey)
		if err != nil {
			return o, fmt.Errorf("tls.client_cert: %w", err)
		}
		o.ClientCertificate = &cert
	}
	if cfg.TLS.CABundle != "" {
		pool, err := gatewayclient.LoadCABundle(cfg.TLS.CABundle)
		if err != nil {
			return o, fmt.Errorf("tls.ca_bundle: %w", err)
		}
		o.RootCAs = pool
	}
	return o, nil
}

func endpoint(e config.Endpoint) gatewayclient.Endpoint {
	paths := map[gatewayclient.Service]string{}
	add := func(s gatewayclient.Service, p string) {
		if p != "" {
			paths[s] = p
		}
	}
	add(gatewayclient.ServiceReturns, e.ReturnsPath)
	add(gatewayclient.ServiceEmployment, e.EmploymentPath)
	add(gatewayclient.ServiceIntermediation, e.IntermediationPath)
	add(gatewayclient.ServiceAccount, e.AccountPath)
	return gatewayclient.Endpoint{BaseURL: e.BaseURL, MutualTLS: e.MutualTLS, Paths: paths}
}

// Credentials builds the credential source: the encrypted token store
// (when a token key is configured) and the M2M signer (when a signing key is).
func Credentials(cfg *config.Config, rdb redis.UniversalClient) (*tasks.Credentials, error) {
	var c tasks.Credentials
	if cfg.Tokens.EncryptionKey != "" {
		store, err := TokenStore(cfg, rdb)
		if err != nil {
			return nil, err
		}
		// A batch files many returns with one user's token set: reading it
		// from Redis once every couple of seconds, not for every call.
		store.CacheFor(2 * time.Second)
		oc, err := OAuthClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("oauth: %w", err)
		}
		if oc != nil {
			// Without an OAuth client a set is used until it expires, then
			// its jobs are parked for re-consent.
			store.SetOAuth(oc)
		}
		c.Tokens = store
	}
	if cfg.M2M.SigningKey != "" {
		key, cert, err := auth.LoadSigningKeyPair(cfg.M2M.SigningKey, cfg.M2M.SigningCert)
		if err != nil {
			return nil, fmt.Errorf("m2m.signing_key: %w", err)
		}
		s, err := auth.NewM2MSigner(auth.M2MConfig{
			Key: key, Cert: cert, Issuer: cfg.M2M.Issuer, Algorithm: cfg.M2M.Algorithm,
			ThumbprintHash: cfg.M2M.ThumbprintHash, Lifetime: cfg.M2M.Lifetime, StartLogon: cfg.M2M.StartLogon,
		})
		if err != nil {
			return nil, fmt.Errorf("m2m: %w", err)
		}
		c.M2M = s
	}
	return &c, nil
}

// TokenStore opens the encrypted token-set store the config describes.
func TokenStore(cfg *config.Config, rdb redis.UniversalClient) (*auth.Store, error) {
	key, err := cfg.Tokens.DecodeKey()
	if err != nil {
		return nil, fmt.Errorf("tokens.encryption_key: %w", err)
	}
	store, err := auth.NewStore(rdb, cfg.Redis.KeyPrefix, auth.Keyring{Current: cfg.Tokens.KeyID, Keys: map[string][]byte{cfg.Tokens.KeyID: key}})
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return store, nil
}

// EnqueueOptions are the enqueue defaults the config implies, for
// producers sharing the workers' config.
func EnqueueOptions(cfg *config.Config) tasks.EnqueueOptions {
	maxRetry := cfg.Worker.MaxRetry
	if maxRetry == 0 {
		maxRetry = tasks.NoRetry
	}
	return tasks.EnqueueOptions{Budget: Budget(cfg), MaxRetry: maxRetry, Retention: cfg.Worker.ResultRetention, QueuePrefix: cfg.Redis.QueuePrefix}
}

// Enqueuer is a producer's Enqueuer on rdb with the config's defaults,
// marking each new File queued in the filing ledger. It opens no
// connection of its own: close rdb when done.
func Enqueuer(cfg *config.Config, rdb redis.UniversalClient) *tasks.Enqueuer {
	o := EnqueueOptions(cfg)
	o.Ledger = ledger.New(rdb, cfg.Redis.KeyPrefix)
	return tasks.NewEnqueuer(asynq.NewClientFromRedisClient(rdb), o)
}

// Budget is the job time budget the config implies.
func Budget(cfg *config.Config) tasks.Budget {
	return tasks.Budget{LimiterWait: cfg.Limits.MaxWait, Call: cfg.Gateway.CallTimeout}
}

// LimitKeys names each endpoint's limit and breaker. IR throttles the cloud
// endpoint per client certificate, so its key carries the certificate's
// CN; every worker with the same certificate shares one limit.
func LimitKeys(o gatewayclient.Options) map[gatewayclient.EndpointKind]string {
	keys := map[gatewayclient.EndpointKind]string{
		gatewayclient.EndpointCloud:   string(gatewayclient.EndpointCloud),
		gatewayclient.EndpointDesktop: string(gatewayclient.EndpointDesktop),
	}
	if c := o.ClientCertificate; c != nil && len(c.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil && leaf.Subject.CommonName != "" {
			keys[gatewayclient.EndpointCloud] = "cloud:" + leaf.Subject.CommonName
		}
	}
	return keys
}

// Limiter builds the limiter the config asks for: the fleet-wide one in
// Redis, or a per-process one.
func Limiter(cfg *config.Config, rdb redis.UniversalClient, keys map[gatewayclient.EndpointKind]string, budget tasks.Budget, log *slog.Logger, m *ratelimit.Metrics) (tasks.Limiter, error) {
	l := cfg.Limits
	settings := func(rate float64, burst, inFlight int) ratelimit.Settings {
		return ratelimit.Settings{Rate: rate, Burst: burst, MaxInFlight: inFlight, RealtimeReserve: l.RealtimeReserve,
			DecreaseFactor: l.DecreaseFactor, Recovery: l.Recovery, MinFraction: l.MinFraction, DegradedFraction: l.DegradedFraction}
	}
	cloud, desktop := keys[gatewayclient.EndpointCloud], keys[gatewayclient.EndpointDesktop]
	if l.Mode == config.LimitLocal {
		return ratelimit.NewLocal(map[string]ratelimit.Limit{
			cloud:   {Rate: l.CloudRPS, Burst: l.CloudBurst},
			desktop: {Rate: l.DesktopRPS, Burst: l.DesktopBurst},
		}), nil
	}
	return ratelimit.NewFleet(rdb, cfg.Redis.KeyPrefix, map[string]ratelimit.Settings{
		cloud:   settings(l.CloudRPS, l.CloudBurst, l.CloudMaxInFlight),
		desktop: settings(l.DesktopRPS, l.DesktopBurst, l.DesktopMaxInFlight),
	}, ratelimit.FleetOptions{Logger: log.With("component", "ratelimit"), Metrics: m, Hold: budget.TaskTimeout()})
}

// New builds a worker. It connects to nothing until Run.
func New(opts Options) (*Worker, error) {
	cfg := opts.Config
	if cfg == nil {
		return nil, errors.New("worker: no config")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	budget := Budget(cfg)
	if cfg.Worker.ShutdownTimeout <= budget.TaskTimeout() {
		return nil, fmt.Errorf("worker.shutdown_timeout (%s) must exceed a job's whole budget (%s: limiter wait + gateway.call_timeout + margin), or a stopping worker abandons calls in flight", cfg.Worker.ShutdownTimeout, budget.TaskTimeout())
	}
	copts, err := ClientOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	client, err := gatewayclient.New(copts)
	if err != nil {
		return nil, err
	}
	rdb := NewRedis(cfg.Redis)
	creds, err := Credentials(cfg, rdb)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	keys := LimitKeys(copts)
	led := ledger.New(rdb, cfg.Redis.KeyPrefix)
	registerFleetMetrics(reg, cfg, keys, asynq.NewInspectorFromRedisClient(rdb), led, log)
	if refreshes := auth.NewMetrics(reg); creds.Tokens != nil {
		creds.Tokens.SetMetrics(refreshes)
	}
	certs, err := loadCertificates(cfg, copts)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	certMetric := newCertCollector(certs)
	reg.MustRegister(certMetric)
	limiter, err := Limiter(cfg, rdb, keys, budget, log, ratelimit.NewMetrics(reg))
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	br, err := breaker.New(rdb, cfg.Redis.KeyPrefix, breaker.Settings{
		FailureRatio:        cfg.Breaker.FailureRatio,
		MinRequests:         uint32(cfg.Breaker.MinRequests),
		ConsecutiveFailures: uint32(cfg.Breaker.ConsecutiveFailures),
		Window:              cfg.Breaker.Window,
		OpenFor:             cfg.Breaker.OpenFor,
		HalfOpenProbes:      cfg.Breaker.HalfOpenProbes,
		IsFailure:           gatewayclient.GatewayFailure,
		IsExcluded:          gatewayclient.BreakerExcluded,
	}, breaker.Options{Logger: log.With("component", "breaker"), Metrics: breaker.NewMetrics(reg)})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	h := &tasks.Handler{Client: client, Credentials: creds, Limiter: limiter, Breaker: br, Keys: keys, Budget: budget, Logger: log,
		Ledger: led, Metrics: tasks.NewMetrics(reg),
		Failures: failures.New(rdb, cfg.Redis.KeyPrefix, failures.Options{Retention: cfg.Worker.ReportRetention})}

	queues := map[string]int{}
	for q, p := range cfg.Worker.Queues {
		queues[tasks.QueueName(cfg.Redis.QueuePrefix, q)] = p
	}
	srv := asynq.NewServer(AsynqRedis(cfg.Redis), asynq.Config{
		Concurrency:     cfg.Worker.Concurrency,
		Queues:          queues,
		StrictPriority:  cfg.Worker.StrictPriority,
		IsFailure:       tasks.IsFailure,
		RetryDelayFunc:  tasks.RetryDelay,
		ShutdownTimeout: cfg.Worker.ShutdownTimeout,
		// Snoozed jobs (limiter, breaker, 429) come back within a second of
		// their time rather than asynq's default five.
		DelayedTaskCheckInterval: time.Second,
		Logger:                   asynqLogger{log.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeGatewayCall, h)
	qnames := make([]string, 0, len(queues))
	for q := range queues {
		qnames = append(qnames, q)
	}
	rp := reaper.New(rdb, asynq.NewInspectorFromRedisClient(rdb), reaper.Options{Queues: qnames, KeyPrefix: cfg.Redis.KeyPrefix,
		Logger: log.With("component", "reaper"), Registerer: reg})

	w := &Worker{cfg: cfg, log: log, rdb: rdb, client: client, srv: srv, mux: mux, breaker: br, reaper: rp}
	if w.ingest, err = newIngest(cfg, rdb, log); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	w.reg, w.certs = reg, certs
	hm := http.NewServeMux()
	hm.HandleFunc("GET /healthz", w.healthz)
	hm.HandleFunc("GET /readyz", w.readyz)
	hm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if m := cfg.Monitoring; m.Enabled {
		ui, err := webui.New(webui.Options{Redis: AsynqRedis(cfg.Redis), Username: m.Username, Password: m.Password,
			ReadOnly: m.ReadOnly, ShowPayloads: m.ShowPayloads, Logger: log.With("component", "monitoring")})
		if err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("monitoring: %w", err)
		}
		hm.Handle(webui.RootPath+"/", ui)
		w.ui = ui
	}
	w.health = &http.Server{Handler: hm, ReadHeaderTimeout: 5 * time.Second}
	hc, err := loadHealthCert(cfg.Worker)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	if hc != nil {
		w.healthCert.Store(hc)
		w.health.TLSConfig = w.healthTLS()
	}
	certMetric.listeners = w.listenerCerts
	if w.sched, err = newBatchScheduler(cfg, rdb, reg, log); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return w, nil
}

// Run serves jobs and the health endpoint until ctx ends, then stops
// taking jobs and waits (up to worker.shutdown_timeout) for those in flight.
func (w *Worker) Run(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, w.cfg.Redis.DialTimeout+time.Second)
	err := w.rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis at %s unreachable: %w", w.cfg.Redis.Addr, err)
	}
	if w.cfg.Worker.HealthAddr != "" {
		ln, err := net.Listen("tcp", w.cfg.Worker.HealthAddr)
		if err != nil {
			return fmt.Errorf("worker.health_addr: %w", err)
		}
		w.mu.Lock()
		w.listener = ln
		w.mu.Unlock()
		if w.ui != nil {
			w.log.Info("monitoring UI served", "url", w.healthScheme()+"://"+ln.Addr().String()+webui.RootPath+"/", "read_only", w.cfg.Monitoring.ReadOnly, "show_payloads", w.cfg.Monitoring.ShowPayloads)
		}
		go func() {
			serve := w.health.Serve
			if w.health.TLSConfig != nil {
				// ServeTLS takes the certificate from TLSConfig and adds HTTP/2.
				serve = func(ln net.Listener) error { return w.health.ServeTLS(ln, "", "") }
			}
			if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("health server stopped", "err", err)
			}
		}()
	}
	takesJobs := !w.cfg.Worker.AdminOnly
	if takesJobs {
		if err := w.breaker.Start(ctx); err != nil {
			w.closeHealth()
			return fmt.Errorf("start circuit breaker: %w", err)
		}
		if err := w.srv.Start(w.mux); err != nil {
			w.closeHealth()
			_ = w.breaker.Close()
			return fmt.Errorf("start asynq server: %w", err)
		}
		rctx, stopReaper := context.WithCancel(ctx)
		defer stopReaper()
		go w.reaper.Run(rctx)
	}
	checkCertificates(w.certs, time.Now(), w.log) // logs a certificate near or past its expiry
	if takesJobs {
		w.log.Info("worker running", "concurrency", w.cfg.Worker.Concurrency, "queues", w.cfg.Worker.Queues.String(), "health", w.HealthAddr())
	} else {
		w.log.Info("worker running admin-only: serving its listeners, taking no jobs", "health", w.HealthAddr())
	}
	stopJobs := func() {
		if takesJobs {
			w.srv.Shutdown()
			_ = w.breaker.Close()
		}
	}
	if err := w.startIngest(); err != nil {
		stopJobs()
		w.closeHealth()
		return err
	}
	stopSchedule := w.sched.start(ctx) // after every early return: it must stop before Redis closes
	<-ctx.Done()
	w.stopping.Store(true)
	w.log.Info("worker stopping: waiting for jobs in flight", "timeout", w.cfg.Worker.ShutdownTimeout)
	w.stopIngest() // no new triggers first
	stopSchedule() // a run in progress releases its claim to another worker
	stopJobs()
	w.closeHealth()
	w.client.CloseIdleConnections()
	_ = w.rdb.Close()
	w.log.Info("worker stopped")
	return nil
}

// HealthAddr is the address the health endpoint listens on, once running.
func (w *Worker) HealthAddr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.listener == nil {
		return ""
	}
	return w.listener.Addr().String()
}

func (w *Worker) closeHealth() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.health.Shutdown(ctx)
	if w.ui != nil {
		_ = w.ui.Close()
	}
}

func (w *Worker) healthz(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, code := map[string]string{"status": "ok", "redis": "ok"}, http.StatusOK
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		status["status"], status["redis"], code = "unavailable", err.Error(), http.StatusServiceUnavailable
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(status)
}

// asynqLogger routes asynq's own logging into slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
