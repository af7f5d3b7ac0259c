// Package app assembles a running creditgate from a validated configuration: the
// Redis (or embedded) store with bounded timeouts, the settlement spool (replayed
// before serving, then whenever Redis is back), the metering proxy on the
// data-plane listener, beside the payment provider's webhook endpoint
// (payments.go: the provider, the purchase service, the auto-recharge charger),
// the admin API on the control-plane listener (each optionally over TLS),
// configuration hot reload and graceful shutdown. The
// command line (cmd/creditgate) only parses flags and calls it; tests start whole
// instances with it.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/activity"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/spool"
	"github.com/creditgate/creditgate/internal/stdlog"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/metrics"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/pgarchive"
	"github.com/creditgate/creditgate/proxy"
)

// holdRecordRetention is how long Redis remembers a settled or released hold
// after its settlement: the window in which a resent or replayed settlement is
// recognised by its hold id. The spool searches the ledger for older ones.
const holdRecordRetention = time.Hour

// After the graceful drain of a shutdown: how long requests cut short get to
// settle, and how long the final replay of the spool may take.
const (
	settleGrace = 15 * time.Second
	flushGrace  = 10 * time.Second
)

// adminShutdownGrace is how long the admin and metrics listeners' requests get
// to finish at shutdown. It must exceed the 5 s (counted in whole seconds) for
// which net/http's Shutdown waits on a connection that is open but has sent no
// request yet: HTTP clients dial spare connections (a browser's preconnect, a
// Transport's dial that another connection overtook), and with a 5 s budget one
// of those alone made Shutdown fail with "context deadline exceeded" (seen in CI,
// TestSentinelFailoverLosesNoAcknowledgedTopUp).
const adminShutdownGrace = 10 * time.Second

// Options adjust how an App runs.
type Options struct {
	// ConfigPath is the file to watch for hot reload; "" disables reloading.
	ConfigPath string
	// Logger, when set, replaces the logger built from the configuration.
	Logger *zap.Logger
	// RedisHooks are added to the Redis client (metrics, test guards).
	RedisHooks []redis.Hook
	// Purchases and Portal, when set, keep purchases and Billing page links
	// instead of the ledger's store (tests; and builds whose store keeps none).
	Purchases billing.PurchaseStore
	Portal    billing.PortalStore
	// Archive, when set, is the ledger of record every reader reads history
	// from (with the store's unshipped tail): see App.archive.
	Archive billing.EventArchive
	// BatchPollInterval, when set, replaces how often ended batches are
	// looked for (batchPollInterval; tests).
	BatchPollInterval time.Duration
}

// App is a running creditgate. Create it with New, run it with Serve, stop it with
// Shutdown.
type App struct {
	cfg      *config.Config
	log      *zap.Logger
	level    zap.AtomicLevel
	conn     *redisstore.Conn
	store    *redisstore.Store
	settings atomic.Pointer[proxy.Settings]
	policy   atomic.Pointer[billing.Policy]
	// expiringWithin is notify.expiring_within (a time.Duration), hot-reloadable.
	expiringWithin atomic.Int64

	metrics     *metrics.Metrics
	activity    *activity.Recorder // the console's aggregate across accounts
	stopRecord  context.CancelFunc
	recordDone  chan struct{}
	worker      *recharge.Worker // auto-recharge, notices, expiry sweeps
	charger     recharge.Charger // nil: auto-recharge off
	sales       *sales           // payments: the provider, the purchase service
	stopWorker  context.CancelFunc
	workerDone  chan struct{}
	batches     *batchPoller // settles ended batches (batches.go)
	spool       *spool.Spool
	stopReplay  context.CancelFunc
	replayDone  chan struct{}
	draining    atomic.Bool
	inflight    tracker
	shutdownMu  sync.Mutex
	shutdownErr error
	shutDown    bool

	data, admin       *http.Server
	dataLn, adminLn   *limitListener
	metricsSrv        *http.Server   // metrics.listen; nil when off
	metricsLn         *limitListener // nil when off
	dataTLS, adminTLS bool
	cancelWatch       context.CancelFunc

	// history is where readers find the ledger's past (nil: the store alone):
	// Options.Archive, else the PostgreSQL archive. reads is the ledger every
	// reader uses: the store with its history (billing.NewArchivedLedger).
	history billing.EventArchive
	reads   billing.Ledger
	archive *pgarchive.Archive // the ledger of record (archive.go); nil: none
	// archiveReady: the archive's schema is known up to date (shipping may start).
	archiveReady atomic.Bool
	stopLedger   context.CancelFunc
	ledgerDone   chan struct{}
}

// New connects the store, builds the servers and opens both listeners, so their
// addresses are known before Serve.
func New(ctx context.Context, cfg *config.Config, o Options) (*App, error) {
	a := &App{cfg: cfg}
	if o.Logger != nil {
		a.log, a.level = o.Logger, zap.NewAtomicLevelAt(zapcore.DebugLevel)
	} else {
		var err error
		if a.log, a.level, err = NewLogger(cfg.Logging); err != nil {
			return nil, err
		}
	}
	for _, w := range cfg.Warnings() {
		a.log.Warn("config: " + w)
	}

	upstream, err := url.Parse(cfg.Upstream.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("upstream.base_url: %w", err)
	}
	// Load the token encodings now rather than on the first request (~1s each).
	for _, enc := range []string{metering.O200kBase, metering.CL100kBase} {
		if _, err := metering.TokenizerFor(enc); err != nil {
			return nil, fmt.Errorf("loading tokenizer %s: %w", enc, err)
		}
	}

	dataTLS, err := serverTLS(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	adminTLS, err := serverTLS(cfg.Admin.TLS)
	if err != nil {
		return nil, fmt.Errorf("admin.tls: %w", err)
	}

	a.metrics, err = metrics.New(metrics.Options{Pricing: func() *metering.Pricing {
		if s := a.settings.Load(); s != nil {
			return s.Pricing
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}

	// http.Transport (and HTTP/2) log through the log package's default logger.
	stdlog.RouteDefault(a.log.Named("stdlib"))
	redisLogger.Store(a.log.Named("redis"))
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLog{}) })
	a.conn, err = redisstore.Connect(ctx, redisstore.ConnOptions{
		URL: cfg.Redis.URL, ClusterAddrs: cfg.Redis.ClusterAddrs, SentinelMaster: cfg.Redis.SentinelMaster,
		Username: cfg.Redis.Username, Password: cfg.Redis.Password, Timeout: cfg.Redis.Timeout,
		MaxRetries: int(cfg.Redis.MaxRetries), OperationTimeout: cfg.Redis.OperationTimeout,
	})
	if err != nil {
		return nil, err
	}
	a.conn.Client.AddHook(a.metrics.RedisHook())
	for _, h := range o.RedisHooks {
		a.conn.Client.AddHook(h)
	}
	if a.conn.Embedded {
		a.log.Warn("EMBEDDED STORE (redis.url: memory://): balances and the ledger live in this process only and are LOST when it stops. Use a real Redis with AOF for anything but trying creditgate out.")
	}
	w := cfg.Redis.Wait
	a.store, err = redisstore.New(a.conn.Client, redisstore.Options{Prefix: cfg.Redis.KeyPrefix, HoldRecordRetention: holdRecordRetention,
		Durability: redisstore.Durability{Replicas: int(w.Replicas), Timeout: w.Timeout, AOF: w.AOF},
		Pipeline:   redisstore.PipelineOptions{MaxBatch: int(cfg.Redis.Pipeline.MaxBatch), Workers: int(cfg.Redis.Pipeline.Workers)}})
	if err != nil {
		a.conn.Close()
		return nil, err
	}
	if !a.conn.Embedded {
		a.checkDurability(ctx)
	}
	if err := a.openArchive(ctx, cfg); err != nil {
		a.store.Close()
		a.conn.Close()
		return nil, err
	}
	// Every reader (and the spool's replay) reads through a.reads.
	a.history = o.Archive
	if a.history == nil && a.archive != nil { // never a typed nil
		a.history = a.archive
	}
	a.reads = billing.NewArchivedLedger(a.store, a.history)
	if err := a.openSpool(ctx, cfg.SpoolDir()); err != nil {
		a.closeStore()
		return nil, err
	}
	if a.sales, err = a.newSales(cfg, o); err == nil {
		a.charger, err = a.newCharger(cfg)
	}
	if err != nil {
		a.closeStore()
		return nil, err
	}
	if a.activity, err = activity.NewRecorder(activity.RecorderOptions{Client: a.conn.Client, Prefix: cfg.Redis.KeyPrefix,
		Logger: a.log.Named("activity")}); err != nil {
		a.closeStore()
		return nil, err
	}
	a.metrics.SetActivityDropped(a.activity.Dropped)
	ledger := recordingLedger{Ledger: a.reads, rec: a.activity}
	a.apply(cfg)
	a.metrics.SetSpoolDepth(a.SpoolDepth)
	if err := a.newWorker(cfg); err != nil {
		a.closeStore()
		return nil, err
	}
	a.finishSales(cfg)

	budget, err := a.planConnections(cfg)
	if err != nil {
		a.closeStore()
		return nil, err
	}

	// Nil interfaces (never typed nils) when there is no spool.
	var sp proxy.Spool
	var inflight proxy.InFlightLog
	if a.spool != nil {
		sp, inflight = a.spool, a.spool
	}
	p, err := proxy.New(proxy.Options{
		Upstream:         upstream,
		UpstreamKey:      cfg.Upstream.APIKey,
		Timeout:          cfg.Upstream.Timeout,
		MaxUpstreamConns: budget.Data,
		Ledger:           ledger,
		RateLimiter:      a.store,
		KeyUsage:         a.store,
		Keys:             a.store,
		Settings:         a.settings.Load,
		Logger:           a.log.Named("proxy"),
		MaxBodyBytes:     int64(cfg.Limits.MaxBodyBytes),
		MaxMessages:      int(cfg.Limits.MaxMessages),
		MaxMessageBytes:  int64(cfg.Limits.MaxMessageBytes),
		KeyCacheTTL:      cfg.Auth.KeyCacheTTL,
		Spool:            sp,
		InFlight:         inflight,
		Observer:         a.metrics,
		OnSettled:        a.worker.OnSettled,
		Objects:          a.store,
		Batches:          a.store,
		CORS:             proxy.CORS{AllowedOrigins: cfg.CORS.AllowedOrigins, AllowCredentials: cfg.CORS.AllowCredentials, MaxAge: cfg.CORS.MaxAge},
	})
	if err != nil {
		a.closeStore()
		return nil, err
	}
	adminSrv := &admin.Server{
		Ledger:       a.reads,
		Keys:         a.store,
		Directory:    a.store,
		Policy:       func() billing.Policy { return *a.policy.Load() },
		ScopedTokens: adminTokens(cfg.AdminTokens()),
		Ready:        a.ready,
		Logger:       a.log.Named("admin"),
		Metrics:      a.metrics.Handler(),
		// Purchases and Billing page links.
		Portal:        a.sales.portal,
		PortalURL:     cfg.PortalURL(),
		PortalLinkTTL: cfg.Portal.LinkTTL,
		Observer:      a.metrics,
		Activity:      &activity.Reader{Client: a.conn.Client, Prefix: cfg.Redis.KeyPrefix},
		ArchiveCheck:  a.archiveCheck(),
	}
	if a.sales.service != nil {
		adminSrv.Purchases = a.sales.service
	}
	// The customer's Billing page (/billing/) beside the proxy and the provider's
	// webhook, once the store keeps portal sessions (billing.PortalStore).
	dataHandler := a.dataHandler(p)
	if sessions := a.sales.portal; sessions != nil {
		dataHandler = withPortal(dataHandler, a.newPortal(cfg, sessions))
	}
	// /healthz and /readyz on the data plane, as on the admin listener.
	dataHandler = withProbes(dataHandler, admin.Probes{Ready: a.ready, Logger: a.log.Named("probe")})
	// Both listeners: headers (and the TLS handshake) within header_timeout,
	// bodies at body_min_rate within body_idle_timeout, keep-alive connections
	// closed after idle_timeout; no write timeout, which would cut streams.
	lim := cfg.Limits
	pace := bodyPace{idle: lim.BodyIdleTimeout, minRate: int64(lim.BodyMinRate), now: time.Now}
	a.data = &http.Server{Handler: pace.wrap(a.inflight.wrap(dataHandler)), TLSConfig: dataTLS,
		ReadHeaderTimeout: lim.HeaderTimeout, IdleTimeout: lim.IdleTimeout, ErrorLog: stdlog.New(a.log.Named("http"))}
	a.admin = &http.Server{Handler: pace.wrap(adminSrv.Handler()), TLSConfig: adminTLS,
		ReadHeaderTimeout: lim.HeaderTimeout, IdleTimeout: lim.IdleTimeout, ErrorLog: stdlog.New(a.log.Named("http"))}
	a.dataTLS, a.adminTLS = dataTLS != nil, adminTLS != nil

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.closeStore()
		return nil, fmt.Errorf("listen: %w", err)
	}
	a.dataLn = newLimitListener(ln, "listen", budget.Data, a.log)
	if ln, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		a.dataLn.Close()
		a.closeStore()
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	a.adminLn = newLimitListener(ln, "admin.listen", int(cfg.Admin.MaxConnections), a.log)
	if a.metricsSrv, a.metricsLn, err = a.newMetricsServer(cfg.Metrics.Listen); err != nil {
		a.adminLn.Close()
		a.dataLn.Close()
		a.closeStore()
		return nil, err
	}

	if a.spool != nil {
		rctx, cancel := context.WithCancel(context.Background())
		a.stopReplay, a.replayDone = cancel, make(chan struct{})
		go func() {
			defer close(a.replayDone)
			a.spool.Run(rctx, ledger, cfg.Spool.ReplayInterval)
		}()
	}

	actx, stopRecord := context.WithCancel(context.Background())
	a.stopRecord, a.recordDone = stopRecord, make(chan struct{})
	go func() {
		defer close(a.recordDone)
		a.activity.Run(actx)
	}()

	wctx, stopWorker := context.WithCancel(context.Background())
	a.stopWorker, a.workerDone = stopWorker, make(chan struct{})
	go func() {
		defer close(a.workerDone)
		_ = a.worker.Run(wctx)
	}()
	a.batches = startBatchPoller(p, cmp.Or(o.BatchPollInterval, batchPollInterval))
	a.startLedgerLoop(cfg)

	if o.ConfigPath != "" {
		wctx, cancel := context.WithCancel(context.Background())
		a.cancelWatch = cancel
		if err := config.Watch(wctx, o.ConfigPath, a.reload, func(err error) {
			a.metrics.ConfigReloaded(err)
			a.log.Error("config reload rejected; the running configuration stays in force", zap.Error(err))
		}); err != nil {
			a.log.Warn("config hot reload disabled", zap.Error(err))
		}
	}
	return a, nil
}

// planConnections raises RLIMIT_NOFILE's soft limit to the hard one and sizes
// the listeners' connection caps from it (connBudget), logging the figures; a
// cap lowered to fit is warned about.
func (a *App) planConnections(cfg *config.Config) (connBudget, error) {
	before, soft, hard, err := raiseFileLimit()
	if err != nil {
		a.log.Warn("could not raise RLIMIT_NOFILE's soft limit to its hard limit", zap.Uint64("soft", soft), zap.Uint64("hard", hard), zap.Error(err))
	}
	b, err := planConnections(soft, processDescriptors, redisConnections(a.conn.Client, cfg.Redis, a.conn.Embedded),
		int(cfg.Admin.MaxConnections)+metricsBudget(cfg.Metrics.Listen), int(cfg.Limits.MaxConnections))
	b.FileLimitBefore, b.FileLimitHard = before, hard
	if err != nil {
		return b, err
	}
	fields := append(b.logFields(), zap.Duration("header_timeout", cfg.Limits.HeaderTimeout),
		zap.Duration("body_idle_timeout", cfg.Limits.BodyIdleTimeout), zap.Int64("body_min_rate", int64(cfg.Limits.BodyMinRate)),
		zap.Duration("idle_timeout", cfg.Limits.IdleTimeout))
	if b.Data < b.Configured {
		a.log.Warn("limits.max_connections lowered to what RLIMIT_NOFILE pays for (two descriptors per connection); raise the limit (ulimit -n, LimitNOFILE=) to serve more", fields...)
	} else {
		a.log.Info("connection limits", fields...)
	}
	return b, nil
}

// newWorker builds the background worker: the auto-recharge charger (a.charger)
// and the notice webhook when configured, and the periodic sweep (expiry, stale
// recharges, notices) always.
func (a *App) newWorker(cfg *config.Config) error {
	var notifier recharge.Sender // a nil interface when unset (never a typed nil)
	if wh := cfg.Notify.Webhook; wh.URL != "" {
		s, err := notify.New(notify.Options{URL: wh.URL, Secret: wh.Secret, Secrets: wh.Secrets, Timeout: wh.Timeout,
			Observer: a.metrics.WebhookObserver(metrics.WebhookNotices)})
		if err != nil {
			return fmt.Errorf("notify.webhook: %w", err)
		}
		notifier = s
	}
	w, err := recharge.New(recharge.Options{Store: a.store, Charger: a.charger, Notifier: notifier, Observer: rechargeObservers{a.metrics, a.activity},
		OnHoldsExpired: a.metrics.HoldsExpired,
		Logger:         a.log.Named("billing"), Settings: func() recharge.Settings {
			s := a.settings.Load()
			return recharge.Settings{CreditTTL: s.Policy.CreditTTL, LowBalance: s.Triggers.LowBalance,
				ExpiringWithin: time.Duration(a.expiringWithin.Load()), Ladder: s.Policy.Ladder()}
		}})
	if err != nil {
		return err
	}
	a.worker = w
	return nil
}

// apply installs the hot-reloadable parts of cfg (config.ReloadDiff lists the
// others). Whether recharges and notices are triggered follows the charger and
// the notice webhook the worker was built with (a.charger, a.cfg), not cfg: a
// webhook added by a reload has no sender until a restart, and its notices would
// be queued for nobody.
func (a *App) apply(cfg *config.Config) {
	a.expiringWithin.Store(int64(cfg.Notify.ExpiringWithin))
	pol := cfg.Policy()
	a.policy.Store(&pol)
	a.settings.Store(&proxy.Settings{
		Policy:             pol,
		Pricing:            cfg.Pricing(),
		ClampMaxTokens:     cfg.Billing.ClampMaxTokens,
		DriftTolerance:     cfg.Metering.DriftTolerance,
		CountPromptsAlways: cfg.Metering.CountPrompts == config.CountPromptsAlways,
		BatchDiscount:      int64(cfg.Prices.BatchDiscount),
		Triggers: billing.Triggers{
			AutoRecharge: a.charger != nil,
			Notices:      a.cfg.Notify.Webhook.URL != "",
			LowBalance:   cfg.Notify.LowBalance,
		},
	})
	if lvl, err := zapcore.ParseLevel(cfg.Logging.Level); err == nil {
		a.level.SetLevel(lvl)
	}
}

// reload applies a changed, valid configuration file.
func (a *App) reload(cfg *config.Config) {
	if keys := config.ReloadDiff(a.cfg, cfg); len(keys) > 0 {
		a.log.Warn("config changed keys that only take effect after a restart", zap.Strings("keys", keys))
	}
	a.apply(cfg)
	a.metrics.ConfigReloaded(nil)
	a.log.Info("config reloaded", zap.Int("models", len(cfg.Pricing().Models())))
}

// openSpool opens the settlement spool in dir ("" for none) and replays what an
// earlier run left in it before anything else touches the ledger, so balances
// are right before the first request is admitted.
func (a *App) openSpool(ctx context.Context, dir string) error {
	if dir == "" {
		if !a.conn.Embedded {
			a.log.Warn("no settlement spool (spool.dir: off): a request served while Redis fails at settlement time is not charged")
		}
		return nil
	}
	sp, err := spool.Open(dir, spool.Options{Logger: a.log.Named("spool")})
	if err != nil {
		return fmt.Errorf("spool.dir: %w", err)
	}
	a.spool = sp
	depth := sp.Depth()
	a.log.Info("settlement spool", zap.String("dir", dir), zap.Int("pending", depth),
		// Requests a crashed process left in flight, now spooled to be settled for
		// what they relayed (or released when nothing was).
		zap.Int("recovered_in_flight", sp.Recovered()))
	if depth == 0 {
		return nil
	}
	res, err := sp.Replay(ctx, a.reads)
	if err != nil {
		a.log.Warn("spool: replay at start-up stopped; the rest is retried while serving",
			zap.Int("applied", res.Applied), zap.Int("left", res.Left), zap.Error(err))
	}
	return nil
}

// closeStore closes the spool and the store connection (New failing half-way).
// checkDurability logs how money coming in is acknowledged, and warns where the
// Redis disagrees with redis.wait (replicas that a failover promotes while
// WAIT is off, fewer replicas than asked for, no WAITAOF).
func (a *App) checkDurability(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rep, err := a.store.CheckDurability(cctx)
	if err != nil {
		a.log.Warn("could not read the Redis replication state; money coming in is acknowledged as redis.wait says", zap.Error(err))
		return
	}
	d := a.store.Durability()
	a.log.Info("redis durability", zap.Int("replicas", rep.Replicas), zap.Bool("waitaof", rep.WaitAOF), zap.Bool("appendonly", rep.AppendOnly),
		zap.Int("wait_replicas", d.Replicas), zap.Bool("wait_aof", d.AOF), zap.Duration("wait_timeout", d.Timeout))
	for _, w := range rep.Warnings {
		a.log.Warn(w)
	}
}

func (a *App) closeStore() {
	if a.archive != nil {
		a.archive.Close()
	}
	if a.spool != nil {
		a.spool.Close()
	}
	a.store.Close()
	a.conn.Close()
}

// ready answers /readyz: not ready while shutting down (load balancers stop
// sending), nor while Redis does not answer.
func (a *App) ready(ctx context.Context) error {
	if a.draining.Load() {
		return errors.New("shutting down")
	}
	return a.store.Ping(ctx)
}

// SpoolDepth is the number of settlements waiting in the spool for Redis (0
// without a spool), for metrics.
func (a *App) SpoolDepth() int {
	if a.spool == nil {
		return 0
	}
	return a.spool.Depth()
}

// Metrics is the app's Prometheus registry and observer.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// Store is the ledger and key store (for the quickstart's demo account and tests).
func (a *App) Store() *redisstore.Store { return a.store }

// Logger is the app's logger.
func (a *App) Logger() *zap.Logger { return a.log }

// DataAddr and AdminAddr are the listeners' addresses.
func (a *App) DataAddr() net.Addr  { return a.dataLn.Addr() }
func (a *App) AdminAddr() net.Addr { return a.adminLn.Addr() }

// MetricsAddr is the metrics listener's address; nil when metrics.listen is "".
func (a *App) MetricsAddr() net.Addr {
	if a.metricsLn == nil {
		return nil
	}
	return a.metricsLn.Addr()
}

// Serve serves both listeners until Shutdown; it returns the first serving error.
func (a *App) Serve() error {
	a.log.Info("creditgate serving",
		zap.String("listen", a.dataLn.Addr().String()),
		zap.String("admin_listen", a.adminLn.Addr().String()),
		zap.Bool("tls", a.dataTLS),
		zap.Bool("admin_tls", a.adminTLS),
		zap.String("upstream", a.cfg.Upstream.BaseURL),
		zap.Bool("embedded_store", a.conn.Embedded))
	if a.metricsLn != nil {
		a.log.Info("metrics listener", zap.String("metrics_listen", a.metricsLn.Addr().String()))
	}
	errc := make(chan error, 3)
	serve := func(srv *http.Server, ln net.Listener, useTLS bool) error {
		if useTLS {
			return srv.ServeTLS(ln, "", "") // certificates are in srv.TLSConfig
		}
		return srv.Serve(ln)
	}
	go func() { errc <- serve(a.data, a.dataLn, a.dataTLS) }()
	go func() { errc <- serve(a.admin, a.adminLn, a.adminTLS) }()
	servers := 2
	if a.metricsSrv != nil {
		servers++
		go func() { errc <- serve(a.metricsSrv, a.metricsLn, false) }()
	}
	// The first error that is not a server's closing, once every server ended
	// or one failed.
	for range servers {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}

// Shutdown stops the App gracefully:
//
//  1. /readyz answers 503 and the data plane stops accepting connections;
//  2. in-flight requests and streams may finish until ctx ends or
//     shutdown_timeout passes, whichever is first; each settles as it ends;
//  3. streams still running then are cut: the proxy bills each for the prompt and
//     the output relayed so far, as for an app that hung up (at most settleGrace
//     more);
//  4. the spool is flushed to Redis (at most flushGrace more; what Redis refuses
//     stays on disk for the next start);
//  5. the admin API, the spool and the Redis connection are closed, after the
//     console's aggregate (billing/activity) wrote what it holds (at most 2 s).
//
// It returns ctx's error when requests had to be cut. Calling it again returns
// the first call's result.
func (a *App) Shutdown(ctx context.Context) error {
	a.shutdownMu.Lock()
	defer a.shutdownMu.Unlock()
	if a.shutDown {
		return a.shutdownErr
	}
	a.shutDown = true
	if a.cancelWatch != nil {
		a.cancelWatch()
	}
	a.draining.Store(true)
	a.admin.SetKeepAlivesEnabled(false)

	dctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
	errData := a.data.Shutdown(dctx)
	cancel()
	if errData != nil {
		n := a.inflight.count()
		a.log.Warn("shutdown: cutting requests still running at the deadline; each is billed for what was relayed",
			zap.Int("requests", n), zap.Error(errData))
		a.data.Close()
		if !a.inflight.wait(settleGrace) {
			a.log.Error("shutdown: requests still settling after the grace period", zap.Int("requests", a.inflight.count()))
		}
	}

	var errSpool error
	if a.spool != nil {
		a.stopReplay()
		<-a.replayDone
		if a.spool.Depth() > 0 {
			fctx, cancel := context.WithTimeout(context.Background(), flushGrace)
			res, err := a.spool.Replay(fctx, a.reads)
			cancel()
			if err != nil {
				a.log.Warn("shutdown: spool not fully flushed; the rest is replayed at the next start",
					zap.Int("left", res.Left), zap.String("dir", a.spool.Dir()), zap.Error(err))
			}
		}
		errSpool = a.spool.Close()
	}

	actx, cancel := context.WithTimeout(context.Background(), adminShutdownGrace)
	errAdmin := a.admin.Shutdown(actx)
	if a.metricsSrv != nil {
		errAdmin = errors.Join(errAdmin, a.metricsSrv.Shutdown(actx))
	}
	cancel()
	a.stopWorker()
	<-a.workerDone
	a.batches.Stop()
	a.stopLedgerLoop()
	a.stopRecord() // its last flush, before the connection closes
	<-a.recordDone
	errConn := a.conn.Close()
	_ = a.log.Sync()
	a.shutdownErr = errors.Join(errData, errAdmin, errSpool, errConn)
	return a.shutdownErr
}

// go-redis logs connection trouble (failed dials while Redis is down) through a
// process-wide logger; these route it to the newest App's zap logger, at warn,
// instead of its default of plain lines on stderr.
var (
	redisLogger     atomic.Pointer[zap.Logger]
	redisLoggerOnce sync.Once
)

type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...interface{}) {
	if l := redisLogger.Load(); l != nil {
		l.Warn(fmt.Sprintf(format, v...))
	}
}

// serverTLS builds a listener's TLS configuration; nil when TLS is off.
func serverTLS(t config.TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pool, err := config.LoadCertPool(t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// tracker counts running data-plane handlers, so a shutdown that had to cut
// connections can wait for the cut requests to settle (http.Server.Close does
// not wait for handlers).
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n is 0
}

func (t *tracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.mu.Lock()
		if t.n == 0 {
			t.zero = make(chan struct{})
		}
		t.n++
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			if t.n--; t.n == 0 {
				close(t.zero)
			}
			t.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// wait returns true once no handler runs, false after d.
func (t *tracker) wait(d time.Duration) bool {
	t.mu.Lock()
	zero := t.zero
	n := t.n
	t.mu.Unlock()
	if n == 0 {
		return true
	}
	select {
	case <-zero:
		return true
	case <-time.After(d):
		return false
	}
}

// NewLogger builds the zap logger the configuration asks for: JSON (or console)
// lines on stderr, at an adjustable level.
func NewLogger(l config.Logging) (*zap.Logger, zap.AtomicLevel, error) {
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	if l.Level != "" {
		lvl, err := zapcore.ParseLevel(l.Level)
		if err != nil {
			return nil, level, fmt.Errorf("logging.level: %w", err)
		}
		level.SetLevel(lvl)
	}
	zc := zap.NewProductionConfig()
	zc.Level = level
	zc.Sampling = nil // one line per request means one line per request
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	zc.EncoderConfig.EncodeDuration = millis
	if strings.EqualFold(l.Format, "console") {
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	log, err := zc.Build()
	return log, level, err
}

// millis encodes durations as milliseconds with microsecond precision (12.345):
// latency and time to first token are read in milliseconds.
func millis(d time.Duration, enc zapcore.PrimitiveArrayEncoder) {
	enc.AppendFloat64(float64(d.Microseconds()) / 1000)
}

// adminTokens are admin.tokens as the admin API checks them: a bare token is
// full admin (named after its hash), an entry keeps its name and scopes.
func adminTokens(entries []config.AdminToken) func() []admin.Token {
	tokens := make([]admin.Token, len(entries))
	for i, e := range entries {
		t := admin.Token{Secret: e.Token, Name: e.ActorName()}
		for _, sc := range e.EffectiveScopes() {
			t.Scopes = append(t.Scopes, admin.Scope(sc))
		}
		tokens[i] = t
	}
	return func() []admin.Token { return tokens }
}
