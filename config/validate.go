package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the dotted path of the offending key ("billing.grace",
	// "pricing.models.gpt-4o.input", "admin.tokens[1]"); "" for the document as
	// a whole (a YAML syntax error).
	Key     string
	Message string
}

// String formats p as "key: message" (just the message when Key is "").
func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Problems is every problem found in a configuration. Load, LoadBytes and
// Validate return it as *Problems.
type Problems []Problem

// Error lists the problems one per line, sorted by key.
func (ps Problems) Error() string {
	sorted := append(Problems(nil), ps...)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, p := range sorted {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
}

// Validate checks c and builds its price table (see Pricing). It returns a
// *Problems listing every problem, or nil.
func (c *Config) Validate() error {
	ps := c.validate()
	if len(ps) == 0 {
		return nil
	}
	ps.sort()
	return &ps
}

// validate returns c's problems, in no particular order.
func (c *Config) validate() Problems {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "must be a positive duration, got %s", d)
		}
	}

	if err := checkListenAddr(c.Listen); err != nil {
		add("listen", "%v", err)
	}
	checkTLS("tls", c.TLS, add)
	positive("shutdown_timeout", c.ShutdownTimeout)

	// admin
	if err := checkListenAddr(c.Admin.Listen); err != nil {
		add("admin.listen", "%v", err)
	} else if c.Admin.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		add("admin.listen", "same address as listen (%s); the admin API needs its own", c.Listen)
	}
	checkTLS("admin.tls", c.Admin.TLS, add)
	if len(c.Admin.Tokens) == 0 {
		add("admin.tokens", "no admin token: set CREDITGATE_ADMIN_TOKENS to one or more secret tokens (comma-separated, %d+ characters each)", minTokenLen)
	}
	for i, tok := range c.Admin.Tokens {
		key := fmt.Sprintf("admin.tokens[%d]", i)
		switch {
		case tok == exampleAdminToken:
			add(key, "the example token %q must be replaced: set CREDITGATE_ADMIN_TOKENS to one or more secret tokens (comma-separated, %d+ characters each, e.g. from `openssl rand -hex 32`)", exampleAdminToken, minTokenLen)
		case len(tok) < minTokenLen:
			// Never echo a token, not even a short one.
			add(key, "too short (%d characters): use at least %d random characters, e.g. from `openssl rand -hex 32`", len(tok), minTokenLen)
		case strings.TrimSpace(tok) != tok:
			add(key, "has leading or trailing spaces")
		}
	}

	// upstream
	if err := checkHTTPURL(c.Upstream.BaseURL); err != nil {
		add("upstream.base_url", "%v", err)
	}
	positive("upstream.timeout", c.Upstream.Timeout)

	// redis
	switch {
	case c.Redis.URL != "" && len(c.Redis.ClusterAddrs) > 0:
		add("redis.url", "set together with redis.cluster_addrs; use one: url for a single Redis, cluster_addrs for a cluster or sentinels")
	case c.Redis.URL == "" && len(c.Redis.ClusterAddrs) == 0:
		add("redis.url", "no Redis configured: set redis.url (or memory:// to try creditgate without Redis) or redis.cluster_addrs")
	case c.Redis.URL != "":
		if err := checkRedisURL(c.Redis.URL); err != nil {
			add("redis.url", "%v", err)
		}
	}
	for i, addr := range c.Redis.ClusterAddrs {
		if err := checkHostPort(addr); err != nil {
			add(fmt.Sprintf("redis.cluster_addrs[%d]", i), "%v", err)
		}
	}
	if c.Redis.SentinelMaster != "" && len(c.Redis.ClusterAddrs) == 0 {
		add("redis.sentinel_master", "set, but redis.cluster_addrs (the sentinel addresses) is empty")
	}
	if strings.ContainsAny(c.Redis.KeyPrefix, "{}") {
		add("redis.key_prefix", "must not contain '{' or '}': creditgate adds its own hash tags, one per account")
	}
	positive("redis.timeout", c.Redis.Timeout)
	if n := c.Redis.MaxRetries; n < 0 || n > maxRedisRetries {
		add("redis.max_retries", "must be from 0 (never resend) to %d, got %d", maxRedisRetries, n)
	}
	if d := c.Redis.OperationTimeout; d <= 0 {
		add("redis.operation_timeout", "must be a positive duration, got %s", d)
	} else if d < c.Redis.Timeout {
		add("redis.operation_timeout", "%s is shorter than redis.timeout (%s): one attempt alone may take redis.timeout", d, c.Redis.Timeout)
	}

	// spool
	if strings.TrimSpace(c.Spool.Dir) != c.Spool.Dir {
		add("spool.dir", "has leading or trailing spaces")
	}
	positive("spool.replay_interval", c.Spool.ReplayInterval)

	// billing
	b := c.Billing
	positive("billing.credit_ttl", b.CreditTTL)
	positive("billing.hold_ttl", b.HoldTTL)
	checkAmount := func(key string, m money.Micros) {
		if m < 0 || m > money.MaxAmount {
			add(key, "amount %s is out of range (0 to %s)", m, money.MaxAmount)
		}
	}
	checkAmount("billing.min_purchase", b.MinPurchase)
	checkAmount("billing.grace", b.Grace)
	checkAmount("billing.auto_recharge.min_amount", b.AutoRecharge.MinAmount)
	checkAmount("notify.low_balance", c.Notify.LowBalance)
	if len(b.Tiers) == 0 {
		add("billing.tiers", "no tier configured; at least the default tier %q is needed", b.DefaultTier)
	} else if _, ok := b.Tiers[b.DefaultTier]; !ok {
		add("billing.default_tier", "%q is not a configured tier (billing.tiers has %s)", b.DefaultTier, quotedKeys(b.Tiers))
	}
	for _, name := range sortedKeys(b.Tiers) {
		t, key := b.Tiers[name], "billing.tiers."+name
		checkAmount(key+".max_topup", t.MaxTopUp)
		checkAmount(key+".max_balance", t.MaxBalance)
		if t.MaxTopUp > 0 && t.MaxTopUp < b.MinPurchase {
			add(key+".max_topup", "%s is below billing.min_purchase (%s): no top-up could succeed", t.MaxTopUp, b.MinPurchase)
		}
		if t.MaxBalance > 0 && t.MaxBalance < b.MinPurchase {
			add(key+".max_balance", "%s is below billing.min_purchase (%s): no top-up could succeed", t.MaxBalance, b.MinPurchase)
		}
	}
	if b.AutoRecharge.MinAmount < b.MinPurchase {
		add("billing.auto_recharge.min_amount", "%s is below billing.min_purchase (%s); an auto-recharge buys at least the minimum purchase", b.AutoRecharge.MinAmount, b.MinPurchase)
	}
	c.checkWebhook("billing.auto_recharge.webhook", b.AutoRecharge.Webhook, add)

	// notify
	c.checkWebhook("notify.webhook", c.Notify.Webhook, add)
	positive("notify.expiring_within", c.Notify.ExpiringWithin)

	// pricing
	pricingOK := true
	if len(c.Prices.Models) == 0 && c.Prices.Default == nil {
		add("pricing.models", "no model is priced and pricing.default is not set: every request would be rejected")
		pricingOK = false
	}
	for _, name := range sortedKeys(c.Prices.Models) {
		if !checkModelPrice("pricing.models."+name, c.Prices.Models[name], add) {
			pricingOK = false
		}
	}
	if c.Prices.Default != nil && !checkModelPrice("pricing.default", *c.Prices.Default, add) {
		pricingOK = false
	}
	for _, from := range sortedKeys(c.Prices.Aliases) {
		to := c.Prices.Aliases[from]
		key := "pricing.aliases." + from
		if _, ok := c.Prices.Models[from]; ok {
			add(key, "%q is also priced in pricing.models, so the alias would never apply", from)
			pricingOK = false
		}
		if _, ok := c.Prices.Models[to]; !ok {
			add(key, "points to %q, which is not priced in pricing.models", to)
			pricingOK = false
		}
	}
	c.pricing = nil
	if pricingOK {
		p, err := c.Prices.build()
		if err != nil {
			add("pricing", "%v", err) // unreachable after the checks above
		} else {
			c.pricing = p
		}
	}

	// metering, logging, limits, auth
	if t := c.Metering.DriftTolerance; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		add("metering.drift_tolerance", "must be 0 or more (a fraction: 0.10 = 10%%), got %v", t)
	}
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		add("logging.level", "%q is not a level: want debug, info, warn or error", c.Logging.Level)
	}
	switch c.Logging.Format {
	case "json", "console":
	default:
		add("logging.format", "%q is not a format: want json or console", c.Logging.Format)
	}
	if c.Limits.MaxBodyBytes <= 0 {
		add("limits.max_body_bytes", "must be positive, got %d", c.Limits.MaxBodyBytes)
	}
	if n := c.Limits.MaxMessages; n < 1 || n > maxMessagesLimit {
		add("limits.max_messages", "must be from 1 to %d, got %d", maxMessagesLimit, n)
	}
	if c.Limits.MaxMessageBytes <= 0 {
		add("limits.max_message_bytes", "must be positive, got %d", c.Limits.MaxMessageBytes)
	}
	if c.Auth.KeyCacheTTL < 0 {
		add("auth.key_cache_ttl", "must be 0 (no cache) or positive, got %s", c.Auth.KeyCacheTTL)
	}
	return ps
}

// minTokenLen is the shortest admin token accepted.
const minTokenLen = 16

// maxRedisRetries bounds redis.max_retries: more retries only stretch an outage's
// answer time, since redis.operation_timeout caps the whole command anyway.
const maxRedisRetries = 10

// maxMessagesLimit is the parser's own hard cap on messages and items.
const maxMessagesLimit = 100_000

// checkTLS checks a listener's certificate settings: both files or neither, and
// that they load (a typo in a path is found by check-config, not at the first
// handshake).
func checkTLS(key string, t TLS, add func(string, string, ...any)) {
	switch {
	case !t.Enabled():
		if t.ClientCAFile != "" {
			add(key+".client_ca_file", "set, but %s.cert_file and %s.key_file are not: client certificates need TLS", key, key)
		}
		return
	case t.CertFile == "":
		add(key+".cert_file", "required when %s.key_file is set", key)
		return
	case t.KeyFile == "":
		add(key+".key_file", "required when %s.cert_file is set", key)
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		add(key+".cert_file", "cannot load the certificate and key: %v", err)
	}
	if t.ClientCAFile != "" {
		if _, err := LoadCertPool(t.ClientCAFile); err != nil {
			add(key+".client_ca_file", "%v", err)
		}
	}
}

// LoadCertPool reads a PEM bundle of CA certificates.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func (c *Config) checkWebhook(key string, w Webhook, add func(string, string, ...any)) {
	if w.URL != "" {
		if err := checkHTTPURL(w.URL); err != nil {
			add(key+".url", "%v", err)
		}
		if w.Secret == "" {
			add(key+".secret", "required when %s.url is set: receivers verify X-Creditgate-Signature with it", key)
		}
	}
	if w.Timeout <= 0 {
		add(key+".timeout", "must be a positive duration, got %s", w.Timeout)
	}
}

// encodings are the tiktoken encodings metering counts with.
var encodings = map[string]bool{"o200k_base": true, "cl100k_base": true}

func checkModelPrice(key string, mp ModelPrice, add func(string, string, ...any)) bool {
	ok := true
	if mp.Input == nil {
		add(key+".input", "required: the price of 1M input tokens in USD, e.g. \"0.15\"")
		ok = false
	}
	for _, class := range []struct {
		name string
		m    *money.Micros
	}{
		{"input", mp.Input}, {"cached_input", mp.CachedInput}, {"output", mp.Output},
		{"reasoning", mp.Reasoning}, {"audio_input", mp.AudioInput}, {"audio_output", mp.AudioOutput},
	} {
		if class.m != nil && (*class.m < 0 || *class.m > money.MaxAmount) {
			add(key+"."+class.name, "price %s is out of range", *class.m)
			ok = false
		}
	}
	if mp.MaxOutputTokens < 0 {
		add(key+".max_output_tokens", "must be positive (or absent for the default %d), got %d", metering.DefaultMaxOutputTokens, mp.MaxOutputTokens)
		ok = false
	}
	if mp.Encoding != "" && !encodings[mp.Encoding] {
		add(key+".encoding", "%q is not a supported encoding: want o200k_base or cl100k_base (or leave it out)", mp.Encoding)
		ok = false
	}
	return ok
}

// checkListenAddr accepts host:port with a numeric port ("" host = all interfaces).
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port such as \":8080\" or \"127.0.0.1:8081\"", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid address %q: the port must be a number from 0 to 65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid address %q: bad host", addr)
	}
	return nil
}

// checkHostPort is checkListenAddr for addresses dialled: the host is required.
func checkHostPort(addr string) error {
	if err := checkListenAddr(addr); err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(addr); host == "" {
		return fmt.Errorf("invalid address %q: the host is missing", addr)
	}
	return nil
}

// checkHTTPURL accepts absolute http and https URLs. Errors show the URL without
// its password.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL such as \"https://api.openai.com/v1\"", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", u.Redacted())
	}
	return nil
}

// memoryURL selects the embedded, non-durable store.
const memoryURL = "memory://"

func checkRedisURL(raw string) error {
	if raw == memoryURL {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme == "memory" {
		return fmt.Errorf("write the embedded store as exactly %q", memoryURL)
	}
	if _, err := redis.ParseURL(raw); err != nil {
		return fmt.Errorf("%v (want redis://[user:password@]host:port/db, rediss:// for TLS, unix:///path, or %s)", err, memoryURL)
	}
	return nil
}

// Warnings lists legal but dangerous settings, each naming its key, for the
// caller to log at start-up and on reload.
func (c *Config) Warnings() []string {
	var ws []string
	warn := func(key, format string, args ...any) {
		ws = append(ws, key+": "+fmt.Sprintf(format, args...))
	}
	if host, _, err := net.SplitHostPort(c.Admin.Listen); err == nil && !isLoopback(host) {
		msg := "%q is reachable from other machines; admin tokens can mint keys and credit accounts, so keep it on 127.0.0.1 or behind a firewall"
		if !c.Admin.TLS.Enabled() {
			msg += ", and set admin.tls: without it admin tokens cross the network in clear text"
		}
		warn("admin.listen", msg, c.Admin.Listen)
	}
	if c.Spool.Dir == SpoolOff && c.Redis.URL != memoryURL {
		warn("spool.dir", "off: a request whose settlement fails while Redis is down is served but never charged")
	}
	if c.Redis.URL == memoryURL {
		warn("redis.url", "memory:// keeps balances in this process only: NOT DURABLE, lost on restart and not shared between instances; for trying creditgate out only")
	}
	if !c.Billing.ClampMaxTokens {
		warn("billing.clamp_max_tokens", "false: a request without an affordable output cap can overdraw past billing.grace; the overdraft bound is no longer guaranteed")
	}
	if u, err := url.Parse(c.Upstream.BaseURL); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		warn("upstream.base_url", "plain http to %s sends the upstream API key and every prompt unencrypted", u.Hostname())
	}
	if c.Billing.HoldTTL <= c.Upstream.Timeout {
		warn("billing.hold_ttl", "%s is not longer than upstream.timeout (%s): a hold could expire while its request is still streaming, letting other requests spend the same credit", c.Billing.HoldTTL, c.Upstream.Timeout)
	}
	const noMaxOutput = "not set, so a request without an output cap is assumed to produce at most %d tokens; if the model can write more, such a request can overdraw past billing.grace: set the model's real limit"
	for _, name := range sortedKeys(c.Prices.Models) {
		mp := c.Prices.Models[name]
		if mp.Output == nil && !strings.Contains(name, "embedding") {
			warn("pricing.models."+name+".output", "not set, so this model's output tokens are free (right for embeddings models only)")
		}
		if mp.Output != nil && mp.MaxOutputTokens == 0 {
			warn("pricing.models."+name+".max_output_tokens", noMaxOutput, metering.DefaultMaxOutputTokens)
		}
	}
	if d := c.Prices.Default; d != nil && d.Output != nil && d.MaxOutputTokens == 0 {
		warn("pricing.default.max_output_tokens", noMaxOutput, metering.DefaultMaxOutputTokens)
	}
	for _, name := range c.strayEnv {
		warn(name, "environment variable matches no config key and is ignored (billing.tiers and pricing.* have no environment overrides)")
	}
	sort.Strings(ws)
	return ws
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func quotedKeys[V any](m map[string]V) string {
	keys := sortedKeys(m)
	for i, k := range keys {
		keys[i] = strconv.Quote(k)
	}
	return strings.Join(keys, ", ")
}
