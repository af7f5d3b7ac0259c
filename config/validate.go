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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"

	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/payments"
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
	for _, s := range sections {
		s.validate(c, &ps)
	}
	return ps
}

// sections is how a Config is validated: one function per section of the file,
// as oauth2-proxy validates its options. Each appends every problem it finds to
// one list, each naming its key, so an operator sees all of them in one round;
// a function never stops at its first problem. Keys lists the top-level keys a
// function is responsible for (TestSectionsCoverEveryKey holds each key of Config
// to exactly one), so a new section is one new function and one line here.
var sections = []struct {
	keys     []string
	validate func(c *Config, ps *Problems)
}{
	{[]string{"listen", "tls", "shutdown_timeout", "admin"}, validateListeners},
	{[]string{"upstream"}, validateUpstream},
	{[]string{"redis"}, validateRedis},
	{[]string{"spool"}, validateSpool},
	{[]string{"billing"}, validateBilling},
	{[]string{"notify"}, validateNotify},
	{[]string{"payments"}, validatePayments},
	{[]string{"portal"}, validatePortal},
	{[]string{"pricing"}, validatePricing},
	{[]string{"metering"}, validateMetering},
	{[]string{"logging"}, validateLogging},
	{[]string{"limits"}, validateLimits},
	{[]string{"auth"}, validateAuth},
	{[]string{"cors"}, validateCORS},
	{[]string{"metrics"}, validateMetrics},
	{[]string{"ledger"}, validateLedger},
}

// add records a problem with key.
func (ps *Problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// positive records a problem unless d is a positive duration.
func (ps *Problems) positive(key string, d time.Duration) {
	if d <= 0 {
		ps.add(key, "must be a positive duration, got %s", d)
	}
}

// amount records a problem unless m is an amount creditgate accepts (0 to
// money.MaxAmount).
func (ps *Problems) amount(key string, m money.Micros) {
	if m < 0 || m > money.MaxAmount {
		ps.add(key, "amount %s is out of range (0 to %s)", m, money.MaxAmount)
	}
}

// validateListeners checks both listeners, their TLS, the admin tokens and the
// shutdown timeout.
func validateListeners(c *Config, ps *Problems) {
	if err := checkListenAddr(c.Listen); err != nil {
		ps.add("listen", "%v", err)
	}
	checkTLS(ps, "tls", c.TLS)
	ps.positive("shutdown_timeout", c.ShutdownTimeout)

	if err := checkListenAddr(c.Admin.Listen); err != nil {
		ps.add("admin.listen", "%v", err)
	} else if c.Admin.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		ps.add("admin.listen", "same address as listen (%s); the admin API needs its own", c.Listen)
	}
	checkTLS(ps, "admin.tls", c.Admin.TLS)
	if n := c.Admin.MaxConnections; n < 1 || n > maxConnectionsLimit {
		ps.add("admin.max_connections", "must be from 1 to %d, got %d", maxConnectionsLimit, n)
	}
	if len(c.Admin.Tokens) == 0 {
		ps.add("admin.tokens", "no admin token: set CREDITGATE_ADMIN_TOKENS to one or more secret tokens (comma-separated, %d+ characters each)", minTokenLen)
	}
	names := make(map[string]int, len(c.Admin.Tokens))
	for i, entry := range c.Admin.Tokens {
		key, tok := fmt.Sprintf("admin.tokens[%d]", i), entry.Token
		switch {
		case tok == "":
			ps.add(key+".token", "missing: each entry needs its secret token")
		case tok == exampleAdminToken:
			ps.add(key, "the example token %q must be replaced: set CREDITGATE_ADMIN_TOKENS to one or more secret tokens (comma-separated, %d+ characters each, e.g. from `openssl rand -hex 32`)", exampleAdminToken, minTokenLen)
		case len(tok) < minTokenLen:
			// Never echo a token, not even a short one.
			ps.add(key, "too short (%d characters): use at least %d random characters, e.g. from `openssl rand -hex 32`", len(tok), minTokenLen)
		case strings.TrimSpace(tok) != tok:
			ps.add(key, "has leading or trailing spaces")
		}
		if entry.Name == "" && entry.Scopes == nil {
			continue // a bare token: full admin
		}
		switch {
		case entry.Name == "":
			ps.add(key+".name", "missing: a token with scopes needs a name (the actor its calls are recorded under)")
		case len(entry.Name) > 64 || strings.ContainsFunc(entry.Name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			ps.add(key+".name", "%q must be 1 to 64 characters without spaces", entry.Name)
		default:
			if j, dup := names[entry.Name]; dup {
				ps.add(key+".name", "%q is also the name of admin.tokens[%d]: names tell tokens apart in the ledger", entry.Name, j)
			}
			names[entry.Name] = i
		}
		if len(entry.Scopes) == 0 {
			ps.add(key+".scopes", "missing: list what the token may do, among %s", strings.Join(AdminScopes, ", "))
		}
		for j, sc := range entry.Scopes {
			if !slices.Contains(AdminScopes, sc) {
				ps.add(fmt.Sprintf("%s.scopes[%d]", key, j), "%q is not a scope: want %s", sc, strings.Join(AdminScopes, ", "))
			}
		}
	}
}

func validateUpstream(c *Config, ps *Problems) {
	if err := checkHTTPURL(c.Upstream.BaseURL); err != nil {
		ps.add("upstream.base_url", "%v", err)
	}
	ps.positive("upstream.timeout", c.Upstream.Timeout)
}

// validateRedis checks that exactly one store is configured, and its settings.
func validateRedis(c *Config, ps *Problems) {
	r := c.Redis
	switch {
	case r.URL != "" && len(r.ClusterAddrs) > 0:
		ps.add("redis.url", "set together with redis.cluster_addrs; use one: url for a single Redis, cluster_addrs for a cluster or sentinels")
	case r.URL == "" && len(r.ClusterAddrs) == 0:
		ps.add("redis.url", "no Redis configured: set redis.url (or memory:// to try creditgate without Redis) or redis.cluster_addrs")
	case r.URL != "":
		if err := checkRedisURL(r.URL); err != nil {
			ps.add("redis.url", "%v", err)
		}
	}
	for i, addr := range r.ClusterAddrs {
		if err := checkHostPort(addr); err != nil {
			ps.add(fmt.Sprintf("redis.cluster_addrs[%d]", i), "%v", err)
		}
	}
	if r.SentinelMaster != "" && len(r.ClusterAddrs) == 0 {
		ps.add("redis.sentinel_master", "set, but redis.cluster_addrs (the sentinel addresses) is empty")
	}
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		ps.add("redis.key_prefix", "must not contain '{' or '}': creditgate adds its own hash tags, one per account")
	}
	ps.positive("redis.timeout", r.Timeout)
	if n := r.MaxRetries; n < 0 || n > maxRedisRetries {
		ps.add("redis.max_retries", "must be from 0 (never resend) to %d, got %d", maxRedisRetries, n)
	}
	if d := r.OperationTimeout; d <= 0 {
		ps.add("redis.operation_timeout", "must be a positive duration, got %s", d)
	} else if d < r.Timeout {
		ps.add("redis.operation_timeout", "%s is shorter than redis.timeout (%s): one attempt alone may take redis.timeout", d, r.Timeout)
	}
	if n := r.Pipeline.MaxBatch; n < 1 || n > maxPipeline {
		ps.add("redis.pipeline.max_batch", "must be from 1 (no pipelining) to %d, got %d", maxPipeline, n)
	}
	if n := r.Pipeline.Workers; n < 1 || n > maxPipeline {
		ps.add("redis.pipeline.workers", "must be from 1 to %d, got %d", maxPipeline, n)
	}
	w := r.Wait
	if w.Replicas < 0 || w.Replicas > maxWaitReplicas {
		ps.add("redis.wait.replicas", "must be from 0 (acknowledge on the master's reply) to %d, got %d", maxWaitReplicas, w.Replicas)
	}
	// The bound matters only while something is waited for: a short redis.timeout
	// with the wait off stays valid, as it was before the wait existed.
	waiting := w.Replicas > 0 || w.AOF
	if w.Timeout <= 0 {
		ps.add("redis.wait.timeout", "must be a positive duration, got %s", w.Timeout)
	} else if waiting && r.Timeout > 0 && w.Timeout >= r.Timeout {
		ps.add("redis.wait.timeout", "%s is not shorter than redis.timeout (%s), within which the wait's answer is read", w.Timeout, r.Timeout)
	}
	if waiting && r.URL == memoryURL {
		ps.add("redis.wait", "the embedded store (memory://) has no replicas and no append-only file: set redis.wait.replicas: 0 and redis.wait.aof: false")
	}
}

// maxPipeline bounds redis.pipeline's figures (redisstore's own bound).
const maxPipeline = 1024

// maxWaitReplicas bounds redis.wait.replicas: more is surely a typo.
const maxWaitReplicas = 100

func validateSpool(c *Config, ps *Problems) {
	if strings.TrimSpace(c.Spool.Dir) != c.Spool.Dir {
		ps.add("spool.dir", "has leading or trailing spaces")
	}
	ps.positive("spool.replay_interval", c.Spool.ReplayInterval)
}

// archiveSchemaName is what ledger.archive.schema may be: an identifier that
// needs no quoting (pgarchive.ValidSchema says the same).
func archiveSchemaName(s string) bool {
	if s == "" || len(s) > 63 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// minRedisRetention bounds ledger.redis_retention from below: a settlement
// replayed from the spool looks for its hold's events in Redis.
const minRedisRetention = 10 * time.Second

// maxArchiveBatch bounds ledger.archive.batch_size: one transaction's events.
const maxArchiveBatch = 10000

func validateLedger(c *Config, ps *Problems) {
	l := c.Ledger
	if l.RedisRetention < 0 {
		ps.add("ledger.redis_retention", "must be 0 (the default) or a positive duration, got %s", l.RedisRetention)
	} else if l.RedisRetention > 0 && l.RedisRetention < minRedisRetention {
		ps.add("ledger.redis_retention", "%s is under %s: the spool and hold outcomes read recent events from Redis", l.RedisRetention, minRedisRetention)
	}
	a := l.Archive
	if a.PostgresURL != "" {
		if u, err := url.Parse(a.PostgresURL); strings.Contains(a.PostgresURL, "://") && (err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql")) {
			ps.add("ledger.archive.postgres_url", "want a postgres:// or postgresql:// URL (or a libpq key=value DSN)")
		}
		if l.RedisRetention > 0 && l.RedisRetention < a.Interval {
			ps.add("ledger.redis_retention", "%s is shorter than ledger.archive.interval (%s): events would be due for trimming before a round ships them", l.RedisRetention, a.Interval)
		}
	}
	if !archiveSchemaName(a.Schema) {
		ps.add("ledger.archive.schema", "%q: want lower-case letters, digits and _ (at most 63, not starting with a digit)", a.Schema)
	}
	if a.Migrate != MigrateAuto && a.Migrate != MigrateManual {
		ps.add("ledger.archive.migrate", "must be %q or %q, got %q", MigrateAuto, MigrateManual, a.Migrate)
	}
	if a.BatchSize < 1 || a.BatchSize > maxArchiveBatch {
		ps.add("ledger.archive.batch_size", "must be from 1 to %d, got %d", maxArchiveBatch, a.BatchSize)
	}
	ps.positive("ledger.archive.interval", a.Interval)
}

// maxQualifyDays bounds a qualify rule's days (ten years).
const maxQualifyDays = 3650

// validTierName: the names of tiers on the promotion ladder go into Lua
// arguments and notice records separated by spaces, so they are kept to the
// characters of account ids.
func validTierName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validateBilling checks the ledger's rules: lifetimes, amounts, tiers and the
// auto-recharge charger.
func validateBilling(c *Config, ps *Problems) {
	b := c.Billing
	ps.positive("billing.credit_ttl", b.CreditTTL)
	ps.positive("billing.hold_ttl", b.HoldTTL)
	ps.amount("billing.min_purchase", b.MinPurchase)
	ps.amount("billing.grace", b.Grace)
	ps.amount("billing.auto_recharge.min_amount", b.AutoRecharge.MinAmount)
	if len(b.Tiers) == 0 {
		ps.add("billing.tiers", "no tier configured; at least the default tier %q is needed", b.DefaultTier)
	} else if _, ok := b.Tiers[b.DefaultTier]; !ok {
		ps.add("billing.default_tier", "%q is not a configured tier (billing.tiers has %s)", b.DefaultTier, quotedKeys(b.Tiers))
	}
	rules := make(map[Qualify]string)
	for _, name := range sortedKeys(b.Tiers) {
		t, key := b.Tiers[name], "billing.tiers."+name
		ps.amount(key+".max_topup", t.MaxTopUp)
		ps.amount(key+".max_balance", t.MaxBalance)
		ps.amount(key+".monthly_usage_limit", t.MonthlyUsageLimit)
		if t.RPM < 0 || t.RPM > billing.MaxRateLimit {
			ps.add(key+".rpm", "must be 0 (no limit) to %d, got %d", int64(billing.MaxRateLimit), t.RPM)
		}
		if t.TPM < 0 || t.TPM > billing.MaxRateLimit {
			ps.add(key+".tpm", "must be 0 (no limit) to %d, got %d", int64(billing.MaxRateLimit), t.TPM)
		}
		if q := t.Qualify; q != nil {
			if !validTierName(name) {
				ps.add(key+".qualify", "a tier with qualify is named in the ledger scripts' arguments: %q must be 1 to 64 letters, digits, '.', '_' or '-'", name)
			}
			ps.amount(key+".qualify.paid", q.Paid)
			if q.Days < 0 || q.Days > maxQualifyDays {
				ps.add(key+".qualify.days", "must be from 0 to %d, got %d", maxQualifyDays, q.Days)
			}
			if other, dup := rules[*q]; dup {
				ps.add(key+".qualify", "the same rule as billing.tiers.%s.qualify (paid %s, %d days): which tier an account reaches would be a toss-up", other, q.Paid, q.Days)
			}
			rules[*q] = name
		}
		if t.MaxTopUp > 0 && t.MaxTopUp < b.MinPurchase {
			ps.add(key+".max_topup", "%s is below billing.min_purchase (%s): no top-up could succeed", t.MaxTopUp, b.MinPurchase)
		}
		if t.MaxBalance > 0 && t.MaxBalance < b.MinPurchase {
			ps.add(key+".max_balance", "%s is below billing.min_purchase (%s): no top-up could succeed", t.MaxBalance, b.MinPurchase)
		}
	}
	if b.AutoRecharge.MinAmount < b.MinPurchase {
		ps.add("billing.auto_recharge.min_amount", "%s is below billing.min_purchase (%s); an auto-recharge buys at least the minimum purchase", b.AutoRecharge.MinAmount, b.MinPurchase)
	}
	checkWebhook(ps, "billing.auto_recharge.webhook", b.AutoRecharge.Webhook)
	checkCharger(ps, c)
}

// checkCharger checks billing.auto_recharge.charger against the charger webhook
// and payments.provider.
func checkCharger(ps *Problems, c *Config) {
	const key = "billing.auto_recharge.charger"
	ar, provider := c.Billing.AutoRecharge, c.Payments.Provider
	switch ar.Charger {
	case "":
	case ChargerWebhook:
		if ar.Webhook.URL == "" {
			ps.add(key, "webhook, but billing.auto_recharge.webhook.url is not set: set the charger's URL, or choose the payment provider (%s)", ChargerStripe)
		}
	case ChargerStripe, ChargerDemo:
		if provider != ar.Charger {
			ps.add(key, "%s charges the card customers saved at payments.provider, but payments.provider is %q: set payments.provider to %s", ar.Charger, provider, ar.Charger)
		}
		if ar.Webhook.URL != "" {
			ps.add(key, "%s, but billing.auto_recharge.webhook.url is set too: one charger pays the recharges; remove the webhook or choose %s", ar.Charger, ChargerWebhook)
		}
	default:
		ps.add(key, "%q is not a charger: want %s, %s or %s (or leave it out)", ar.Charger, ChargerWebhook, ChargerStripe, ChargerDemo)
	}
}

// validatePayments checks the payment provider and, for Stripe, its keys. The
// keys' values are never repeated in a problem.
func validatePayments(c *Config, ps *Problems) {
	p := c.Payments
	switch p.Provider {
	case ProviderNone, ProviderStripe, ProviderDemo:
	default:
		ps.add("payments.provider", "%q is not a provider: want %s, %s or %s", p.Provider, ProviderStripe, ProviderDemo, ProviderNone)
	}
	if _, err := payments.ParseCurrency(p.Currency); err != nil {
		ps.add("payments.currency", "%s", strings.TrimPrefix(err.Error(), "payments: "))
	}
	st := p.Stripe
	if err := checkStripeAPIBase(st.APIBase); err != nil {
		ps.add("payments.stripe.api_base", "%v", err)
	}
	if n := len(st.ProductName); n == 0 || n > 250 || strings.ContainsFunc(st.ProductName, unicode.IsControl) {
		ps.add("payments.stripe.product_name", "must be 1 to 250 bytes without control characters (customers read it on Stripe's page and receipt)")
	}
	if p.Provider != ProviderStripe {
		return
	}
	switch {
	case st.SecretKey == "":
		ps.add("payments.stripe.secret_key", "required with payments.provider: stripe: the API key from the Stripe Dashboard (sk_test_…, sk_live_… or a restricted rk_…); set CREDITGATE_PAYMENTS_STRIPE_SECRET_KEY")
	case !strings.HasPrefix(st.SecretKey, "sk_") && !strings.HasPrefix(st.SecretKey, "rk_"):
		ps.add("payments.stripe.secret_key", "not a Stripe secret key: want sk_test_…, sk_live_… or rk_… (the publishable pk_… key cannot take payments)")
	}
	switch {
	case st.WebhookSecret == "":
		ps.add("payments.stripe.webhook_secret", "required with payments.provider: stripe: the signing secret (whsec_…) of the webhook endpoint %s/webhooks/stripe; set CREDITGATE_PAYMENTS_STRIPE_WEBHOOK_SECRET", c.PortalURL())
	case !strings.HasPrefix(st.WebhookSecret, "whsec_"):
		ps.add("payments.stripe.webhook_secret", "not a webhook signing secret: want whsec_… (Stripe Dashboard → Developers → Webhooks → the endpoint → Signing secret)")
	}
}

// checkStripeAPIBase accepts Stripe's API root: an absolute URL without a path,
// plain http only for a loopback host (a local stand-in), so the secret key never
// crosses a network in the clear.
func checkStripeAPIBase(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("want an absolute https URL such as https://api.stripe.com")
	}
	if u.Path != "" && u.Path != "/" {
		return errors.New("want the API's root, without a path (requests go to <api_base>/v1/…)")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return errors.New("plain http is only accepted for a loopback host (a local stand-in); use https")
	}
	return nil
}

// maxPortalLinkTTL bounds portal.link_ttl: a link is a bearer credential for an
// account's Billing page, meant to be opened at once.
const maxPortalLinkTTL = 24 * time.Hour

func validatePortal(c *Config, ps *Problems) {
	p := c.Portal
	if p.PublicURL != "" {
		if err := checkHTTPURL(p.PublicURL); err != nil {
			ps.add("portal.public_url", "%v", err)
		}
	}
	if p.LinkTTL <= 0 || p.LinkTTL > maxPortalLinkTTL {
		ps.add("portal.link_ttl", "must be a positive duration of at most %s, got %s", maxPortalLinkTTL, p.LinkTTL)
	}
	ps.positive("portal.session_ttl", p.SessionTTL)
}

func validateNotify(c *Config, ps *Problems) {
	checkWebhook(ps, "notify.webhook", c.Notify.Webhook)
	ps.amount("notify.low_balance", c.Notify.LowBalance)
	ps.positive("notify.expiring_within", c.Notify.ExpiringWithin)
}

// validatePricing checks every price and alias of the file and, when all are
// sound, builds the price table (Config.Pricing) from them merged over the
// built-in table; otherwise leaves it nil.
func validatePricing(c *Config, ps *Problems) {
	p := c.Prices
	t := p.resolved()
	ok := true
	if len(t.models) == 0 && p.Default == nil {
		ps.add("pricing.models", "no model is priced and pricing.default is not set (pricing.builtin is false): every request would be rejected")
		ok = false
	}
	for _, name := range sortedKeys(p.Models) {
		if !checkModelPrice(ps, "pricing.models."+name, p.Models[name]) {
			ok = false
		}
	}
	if p.Default != nil && !checkModelPrice(ps, "pricing.default", *p.Default) {
		ok = false
	}
	for _, from := range sortedKeys(p.Aliases) {
		to := p.Aliases[from]
		key := "pricing.aliases." + from
		if _, priced := p.Models[from]; priced {
			ps.add(key, "%q is also priced in pricing.models, so the alias would never apply", from)
			ok = false
		}
		switch _, priced := t.models[to]; {
		case priced:
		case t.aliases[to] != "":
			ps.add(key, "points to %q, which is itself an alias here: point it at a priced model", to)
			ok = false
		case !p.Builtin:
			ps.add(key, "points to %q, which is not priced in pricing.models (pricing.builtin is false)", to)
			ok = false
		default:
			ps.add(key, "points to %q, which is priced neither in pricing.models nor in the built-in table (creditgate check-config lists it)", to)
			ok = false
		}
	}
	if d := p.BatchDiscount; d <= 0 || d > FractionOne {
		ps.add("pricing.batch_discount", "must be above 0 and at most 1 (the share of the list price a batch is billed at: 0.5 = half price), got %s", d)
	}
	c.pricing = nil
	if !ok {
		return
	}
	table, err := p.build()
	if err != nil {
		ps.add("pricing", "%v", err) // unreachable after the checks above
		return
	}
	c.pricing = table
}

func validateMetering(c *Config, ps *Problems) {
	if t := c.Metering.DriftTolerance; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		ps.add("metering.drift_tolerance", "must be 0 or more (a fraction: 0.10 = 10%%), got %v", t)
	}
	if m := c.Metering.CountPrompts; m != CountPromptsWhenNeeded && m != CountPromptsAlways {
		ps.add("metering.count_prompts", "must be %q or %q, got %q", CountPromptsWhenNeeded, CountPromptsAlways, m)
	}
}

func validateLogging(c *Config, ps *Problems) {
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add("logging.level", "%q is not a level: want debug, info, warn or error", c.Logging.Level)
	}
	switch c.Logging.Format {
	case "json", "console":
	default:
		ps.add("logging.format", "%q is not a format: want json or console", c.Logging.Format)
	}
}

func validateLimits(c *Config, ps *Problems) {
	l := c.Limits
	if l.MaxBodyBytes <= 0 {
		ps.add("limits.max_body_bytes", "must be positive, got %d", l.MaxBodyBytes)
	}
	if n := l.MaxMessages; n < 1 || n > maxMessagesLimit {
		ps.add("limits.max_messages", "must be from 1 to %d, got %d", maxMessagesLimit, n)
	}
	if l.MaxMessageBytes <= 0 {
		ps.add("limits.max_message_bytes", "must be positive, got %d", l.MaxMessageBytes)
	}
	if n := l.MaxConnections; n < 1 || n > maxConnectionsLimit {
		ps.add("limits.max_connections", "must be from 1 to %d, got %d", maxConnectionsLimit, n)
	}
	ps.positive("limits.header_timeout", l.HeaderTimeout)
	ps.positive("limits.body_idle_timeout", l.BodyIdleTimeout)
	ps.positive("limits.idle_timeout", l.IdleTimeout)
	if l.BodyMinRate < 0 {
		ps.add("limits.body_min_rate", "must be 0 (no rate) or positive, got %d", l.BodyMinRate)
	}
}

func validateAuth(c *Config, ps *Problems) {
	if c.Auth.KeyCacheTTL < 0 {
		ps.add("auth.key_cache_ttl", "must be 0 (no cache) or positive, got %s", c.Auth.KeyCacheTTL)
	}
}

// validateMetrics checks metrics.listen: off, or an address of its own.
func validateMetrics(c *Config, ps *Problems) {
	addr := c.Metrics.Listen
	if addr == "" {
		return
	}
	if err := checkListenAddr(addr); err != nil {
		ps.add("metrics.listen", "%v", err)
		return
	}
	if strings.HasSuffix(addr, ":0") {
		return // a port the kernel picks (tests)
	}
	for _, other := range []struct{ key, addr string }{{"listen", c.Listen}, {"admin.listen", c.Admin.Listen}} {
		if addr == other.addr {
			ps.add("metrics.listen", "same address as %s (%s); the metrics listener needs its own (or \"\" to serve /metrics on the admin listener only)", other.key, addr)
		}
	}
}

// minTokenLen is the shortest admin token accepted.
const minTokenLen = 16

// maxRedisRetries bounds redis.max_retries: more retries only stretch an outage's
// answer time, since redis.operation_timeout caps the whole command anyway.
const maxRedisRetries = 10

// maxMessagesLimit is the parser's own hard cap on messages and items.
const maxMessagesLimit = 100_000

// maxConnectionsLimit bounds limits.max_connections and admin.max_connections:
// far above what one process serves, low enough to catch a typo.
const maxConnectionsLimit = 1_000_000

// checkTLS checks a listener's certificate settings: both files or neither, and
// that they load (a typo in a path is found by check-config, not at the first
// handshake).
func checkTLS(ps *Problems, key string, t TLS) {
	switch {
	case !t.Enabled():
		if t.ClientCAFile != "" {
			ps.add(key+".client_ca_file", "set, but %s.cert_file and %s.key_file are not: client certificates need TLS", key, key)
		}
		return
	case t.CertFile == "":
		ps.add(key+".cert_file", "required when %s.key_file is set", key)
		return
	case t.KeyFile == "":
		ps.add(key+".key_file", "required when %s.cert_file is set", key)
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		ps.add(key+".cert_file", "cannot load the certificate and key: %v", err)
	}
	if t.ClientCAFile != "" {
		if _, err := LoadCertPool(t.ClientCAFile); err != nil {
			ps.add(key+".client_ca_file", "%v", err)
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

// checkWebhook checks a webhook's URL, its secret (required with a URL) and its
// timeout.
func checkWebhook(ps *Problems, key string, w Webhook) {
	if w.URL != "" {
		if err := checkHTTPURL(w.URL); err != nil {
			ps.add(key+".url", "%v", err)
		}
		if w.Secret == "" && len(w.Secrets) == 0 {
			ps.add(key+".secret", "required when %s.url is set: receivers verify the webhook-signature with it (generate one: echo whsec_$(openssl rand -base64 32))", key)
		}
	}
	if w.Secret != "" {
		if _, _, err := notify.ParseSecret(w.Secret); err != nil {
			ps.add(key+".secret", "%v", err)
		}
	}
	for i, sec := range w.Secrets {
		if _, _, err := notify.ParseSecret(sec); err != nil {
			ps.add(fmt.Sprintf("%s.secrets[%d]", key, i), "%v", err)
		}
	}
	if w.Timeout <= 0 {
		ps.add(key+".timeout", "must be a positive duration, got %s", w.Timeout)
	}
}

// encodings are the tiktoken encodings metering counts with.
var encodings = map[string]bool{"o200k_base": true, "cl100k_base": true}

// checkModelPrice checks one model's price and reports whether it is sound.
func checkModelPrice(ps *Problems, key string, mp ModelPrice) bool {
	ok := true
	if mp.Input == nil && mp.AudioMinute == nil && mp.Images == nil && mp.Characters == nil { // per minute, per image or per character: no tokens
		ps.add(key+".input", "required: the price of 1M input tokens in USD, e.g. \"0.15\"")
		ok = false
	}
	ok = checkMediaPrice(ps, key, mp) && ok
	for _, class := range []struct {
		name string
		m    *money.Micros
	}{
		{"input", mp.Input}, {"cached_input", mp.CachedInput}, {"output", mp.Output},
		{"reasoning", mp.Reasoning}, {"audio_input", mp.AudioInput}, {"audio_output", mp.AudioOutput},
		{"audio_minute", mp.AudioMinute},
	} {
		if class.m != nil && (*class.m < 0 || *class.m > money.MaxAmount) {
			ps.add(key+"."+class.name, "price %s is out of range", *class.m)
			ok = false
		}
	}
	if mp.MaxOutputTokens < 0 {
		ps.add(key+".max_output_tokens", "must be positive (or absent for the default %d), got %d", metering.DefaultMaxOutputTokens, mp.MaxOutputTokens)
		ok = false
	}
	if mp.Encoding != "" && !encodings[mp.Encoding] {
		ps.add(key+".encoding", "%q is not a supported encoding: want o200k_base or cl100k_base (or leave it out)", mp.Encoding)
		ok = false
	}
	return ok
}

// maxImagePrice bounds one image's price: $1,000,000.
const maxImagePrice = money.Micros(1_000_000_000_000)

// checkMediaPrice checks a model's image and speech prices.
func checkMediaPrice(ps *Problems, key string, mp ModelPrice) bool {
	ok := true
	for name, m := range map[string]*money.Micros{"image_input": mp.ImageInput, "characters": mp.Characters} {
		if m != nil && (*m < 0 || *m > money.MaxAmount) {
			ps.add(key+"."+name, "price %s is out of range", *m)
			ok = false
		}
	}
	if mp.Images == nil {
		return ok
	}
	if len(mp.Images.PerImage) == 0 {
		ps.add(key+".images.per_image", "required: USD per image by quality, then size, e.g. {standard: {1024x1024: \"0.040\"}}")
		return false
	}
	for q, sizes := range mp.Images.PerImage {
		if len(sizes) == 0 {
			ps.add(key+".images.per_image."+q, "lists no size")
			ok = false
		}
		for size, price := range sizes {
			if price < 0 || price > maxImagePrice {
				ps.add(key+".images.per_image."+q+"."+size, "price %s is out of range (0 to 1000000 USD per image)", price)
				ok = false
			}
		}
	}
	if q := mp.Images.DefaultQuality; q != "" && mp.Images.PerImage[q] == nil {
		ps.add(key+".images.default_quality", "%q is not a quality of images.per_image", q)
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
	if u, err := url.Parse(c.Upstream.BaseURL); err == nil && c.Upstream.APIKey == "" && u.Hostname() != "" && !isLoopback(u.Hostname()) {
		warn("upstream.api_key", "empty, so requests reach %s without an API key; its 401 (\"You didn't provide an API key\") then goes to apps, which will suspect their own creditgate key: set CREDITGATE_UPSTREAM_API_KEY", u.Hostname())
	}
	if dir := c.SpoolDir(); dir != "" && host.inContainer() {
		if onRoot, err := host.onRootFS(dir); err == nil && onRoot {
			warn("spool.dir", "%s is on the container's own filesystem, not on a volume: settlements spooled while Redis is down are lost when the container is replaced; mount a persistent volume there, one per instance (docker run -v, a StatefulSet volumeClaimTemplate)", dir)
		}
	}
	if c.Billing.HoldTTL <= c.Upstream.Timeout {
		warn("billing.hold_ttl", "%s is not longer than upstream.timeout (%s): a hold could expire while its request is still streaming, letting other requests spend the same credit", c.Billing.HoldTTL, c.Upstream.Timeout)
	}
	const noMaxOutput = "not set, so a request without an output cap is assumed to produce at most %d tokens; if the model can write more, such a request can overdraw past billing.grace: set the model's real limit"
	for _, name := range sortedKeys(c.Prices.Models) {
		mp := c.Prices.Models[name]
		if mediaModel(name, mp) {
			continue // its output is bounded by the request (README "Images, speech and moderations")
		}
		if mp.Output == nil && mp.AudioMinute == nil && !strings.Contains(name, "embedding") {
			warn("pricing.models."+name+".output", "not set, so this model's output tokens are free (right for embeddings models only)")
		}
		if mp.Output != nil && mp.MaxOutputTokens == 0 {
			warn("pricing.models."+name+".max_output_tokens", noMaxOutput, metering.DefaultMaxOutputTokens)
		}
	}
	if d := c.Prices.Default; d != nil && d.Output != nil && d.MaxOutputTokens == 0 {
		warn("pricing.default.max_output_tokens", noMaxOutput, metering.DefaultMaxOutputTokens)
	}
	for _, wh := range []struct {
		key string
		w   Webhook
	}{{"billing.auto_recharge.webhook", c.Billing.AutoRecharge.Webhook}, {"notify.webhook", c.Notify.Webhook}} {
		for i, sec := range append([]string{wh.w.Secret}, wh.w.Secrets...) {
			if _, legacy, err := notify.ParseSecret(sec); err == nil && legacy {
				k := wh.key + ".secret"
				if i > 0 {
					k = fmt.Sprintf("%s.secrets[%d]", wh.key, i-1)
				}
				warn(k, "not a Standard Webhooks secret (whsec_…): its raw bytes sign deliveries for this release only; generate one with `echo whsec_$(openssl rand -base64 32)` and give it to the receiver")
			}
		}
	}
	ws = append(ws, c.paymentWarnings()...)
	for _, name := range c.strayEnv {
		warn(name, "environment variable matches no config key and is ignored (billing.tiers, pricing.models, pricing.aliases and pricing.default have no environment overrides)")
	}
	sort.Strings(ws)
	return ws
}

// stripeMinimumCharge is Stripe's smallest charge in USD ($0.50).
const stripeMinimumCharge = 50 * money.Cent

// paymentWarnings are the legal but dangerous payment and portal settings.
func (c *Config) paymentWarnings() []string {
	var ws []string
	warn := func(key, format string, args ...any) { ws = append(ws, key+": "+fmt.Sprintf(format, args...)) }
	p := c.Payments
	if p.Provider == ProviderDemo {
		warn("payments.provider", "demo: purchases are paid on a local page that charges nobody, so anyone with a Billing page link gets credit for free; for trying creditgate out only")
	}
	if p.Provider != ProviderStripe && (p.Stripe.SecretKey != "" || p.Stripe.WebhookSecret != "") {
		warn("payments.stripe", "keys are set, but payments.provider is %q: Stripe is not used", p.Provider)
	}
	if p.Provider != ProviderNone {
		if c.Portal.PublicURL == "" {
			warn("portal.public_url", "not set, so Billing page links and the checkout's return addresses use %s, which only works on this machine: set the address customers reach this listener at", c.PortalURL())
		} else if u, err := url.Parse(c.Portal.PublicURL); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
			warn("portal.public_url", "plain http to %s: Billing page links and session cookies cross the network unencrypted; use https", u.Hostname())
		}
	}
	if p.Provider == ProviderStripe {
		if c.Billing.MinPurchase < stripeMinimumCharge {
			warn("billing.min_purchase", "%s is below Stripe's smallest charge (%s): smaller purchases are refused by Stripe", c.Billing.MinPurchase, stripeMinimumCharge)
		}
		if c.Charger() == ChargerStripe && c.Billing.AutoRecharge.MinAmount < stripeMinimumCharge {
			warn("billing.auto_recharge.min_amount", "%s is below Stripe's smallest charge (%s): smaller recharges are refused by Stripe", c.Billing.AutoRecharge.MinAmount, stripeMinimumCharge)
		}
	}
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
