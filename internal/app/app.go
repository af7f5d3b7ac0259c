// Package app assembles a running creditgate from a validated configuration: the
// Redis (or embedded) store, the metering proxy on the data-plane listener, the admin
// API on the control-plane listener, configuration hot reload and graceful shutdown.
// The command line (cmd/creditgate) only parses flags and calls it; tests start whole
// instances with it.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/proxy"
)

// Options adjust how an App runs.
type Options struct {
	// ConfigPath is the file to watch for hot reload; "" disables reloading.
	ConfigPath string
	// Logger, when set, replaces the logger built from the configuration.
	Logger *zap.Logger
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

	data, admin     *http.Server
	dataLn, adminLn net.Listener
	cancelWatch     context.CancelFunc
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

	a.conn, err = redisstore.Connect(ctx, redisstore.ConnOptions{
		URL: cfg.Redis.URL, ClusterAddrs: cfg.Redis.ClusterAddrs, SentinelMaster: cfg.Redis.SentinelMaster,
		Username: cfg.Redis.Username, Password: cfg.Redis.Password, Timeout: cfg.Redis.Timeout,
	})
	if err != nil {
		return nil, err
	}
	if a.conn.Embedded {
		a.log.Warn("EMBEDDED STORE (redis.url: memory://): balances and the ledger live in this process only and are LOST when it stops. Use a real Redis with AOF for anything but trying creditgate out.")
	}
	a.store, err = redisstore.New(a.conn.Client, redisstore.Options{Prefix: cfg.Redis.KeyPrefix})
	if err != nil {
		a.conn.Close()
		return nil, err
	}
	a.apply(cfg)

	p, err := proxy.New(proxy.Options{
		Upstream:     upstream,
		UpstreamKey:  cfg.Upstream.APIKey,
		Timeout:      cfg.Upstream.Timeout,
		Ledger:       a.store,
		Keys:         a.store,
		Settings:     a.settings.Load,
		Logger:       a.log.Named("proxy"),
		MaxBodyBytes: int64(cfg.Limits.MaxBodyBytes),
		KeyCacheTTL:  cfg.Auth.KeyCacheTTL,
	})
	if err != nil {
		a.conn.Close()
		return nil, err
	}
	adminSrv := &admin.Server{
		Ledger: a.store,
		Keys:   a.store,
		Policy: func() billing.Policy { return *a.policy.Load() },
		Tokens: cfg.Tokens,
		Ready:  a.store.Ping,
		Logger: a.log.Named("admin"),
	}
	a.data = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: zap.NewStdLog(a.log.Named("http"))}
	a.admin = &http.Server{Handler: adminSrv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: zap.NewStdLog(a.log.Named("http"))}

	if a.dataLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		a.conn.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	if a.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		a.dataLn.Close()
		a.conn.Close()
		return nil, fmt.Errorf("admin.listen: %w", err)
	}

	if o.ConfigPath != "" {
		wctx, cancel := context.WithCancel(context.Background())
		a.cancelWatch = cancel
		if err := config.Watch(wctx, o.ConfigPath, a.reload, func(err error) {
			a.log.Error("config reload rejected; the running configuration stays in force", zap.Error(err))
		}); err != nil {
			a.log.Warn("config hot reload disabled", zap.Error(err))
		}
	}
	return a, nil
}

// apply installs the hot-reloadable parts of cfg.
func (a *App) apply(cfg *config.Config) {
	pol := cfg.Policy()
	a.policy.Store(&pol)
	a.settings.Store(&proxy.Settings{
		Policy:         pol,
		Pricing:        cfg.Pricing(),
		ClampMaxTokens: cfg.Billing.ClampMaxTokens,
		DriftTolerance: cfg.Metering.DriftTolerance,
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
	a.log.Info("config reloaded", zap.Int("models", len(cfg.Pricing().Models())))
}

// Store is the ledger and key store (for the quickstart's demo account and tests).
func (a *App) Store() *redisstore.Store { return a.store }

// Logger is the app's logger.
func (a *App) Logger() *zap.Logger { return a.log }

// DataAddr and AdminAddr are the listeners' addresses.
func (a *App) DataAddr() net.Addr  { return a.dataLn.Addr() }
func (a *App) AdminAddr() net.Addr { return a.adminLn.Addr() }

// Serve serves both listeners until Shutdown; it returns the first serving error.
func (a *App) Serve() error {
	a.log.Info("creditgate serving",
		zap.String("listen", a.dataLn.Addr().String()),
		zap.String("admin_listen", a.adminLn.Addr().String()),
		zap.String("upstream", a.cfg.Upstream.BaseURL),
		zap.Bool("embedded_store", a.conn.Embedded))
	errc := make(chan error, 2)
	go func() { errc <- a.data.Serve(a.dataLn) }()
	go func() { errc <- a.admin.Serve(a.adminLn) }()
	err := <-errc
	if errors.Is(err, http.ErrServerClosed) {
		err = <-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, lets in-flight requests and streams finish
// (and settle) until ctx ends, then closes the store.
func (a *App) Shutdown(ctx context.Context) error {
	if a.cancelWatch != nil {
		a.cancelWatch()
	}
	a.admin.SetKeepAlivesEnabled(false)
	errData := a.data.Shutdown(ctx)
	errAdmin := a.admin.Shutdown(ctx)
	errConn := a.conn.Close()
	_ = a.log.Sync()
	return errors.Join(errData, errAdmin, errConn)
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
