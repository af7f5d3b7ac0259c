// Package config loads, checks and watches creditgate's configuration.
//
// A configuration is a YAML file overlaid with environment variables named
// CREDITGATE_<KEY>, the key's dots written as underscores (CREDITGATE_BILLING_GRACE,
// CREDITGATE_ADMIN_TOKENS=a,b for lists). Loading is strict: an unknown key at any
// depth is an error naming its full path, money is parsed exactly from the
// literal text (never through a float), and a validation pass then reports every
// problem at once, each with its key, so an operator fixes a file in one round.
// Dangerous but legal settings are returned as warnings for the caller to log.
// Watch reloads the file when it changes; ReloadDiff says which changes need a
// restart. Configuration is parsed and checked once, at start-up or reload, and
// handed to the rest of the program as typed values (billing.Policy,
// metering.Pricing); nothing else reads the file or the environment.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// Config is creditgate's whole configuration. Nested structs mirror the YAML; the
// `yaml` tag of each field is its key. Build one with Load, LoadBytes or Default;
// a Config built by hand should pass Validate before use.
type Config struct {
	// Listen is the data-plane (app-facing) address, host:port. Default ":8080".
	Listen string `yaml:"listen"`
	// TLS, when it names a certificate, serves the data plane over HTTPS.
	TLS TLS `yaml:"tls"`
	// ShutdownTimeout is how long a stopping creditgate lets in-flight requests and
	// streams finish; streams still running then are cut, and every request is
	// settled (or spooled) before the process exits. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Admin is the control plane.
	Admin Admin `yaml:"admin"`
	// Upstream is the OpenAI-compatible API requests are forwarded to.
	Upstream Upstream `yaml:"upstream"`
	// Redis is the ledger's store.
	Redis Redis `yaml:"redis"`
	// Spool keeps settlements Redis could not take, on local disk, until it can.
	Spool Spool `yaml:"spool"`
	// Billing holds the ledger's rules: credit lifetime, minimum purchase, grace, tiers.
	Billing Billing `yaml:"billing"`
	// Notify configures the notice webhook (low balance, exhausted, expiring credit).
	Notify Notify `yaml:"notify"`
	// Payments is how customers pay for credit: the payment provider.
	Payments Payments `yaml:"payments"`
	// Portal is the customers' Billing page on the data-plane listener.
	Portal Portal `yaml:"portal"`
	// Prices prices models per token class (YAML key "pricing"; the field has
	// another name because Config.Pricing is the built table).
	Prices Prices `yaml:"pricing"`
	// Metering tunes token counting.
	Metering Metering `yaml:"metering"`
	// Logging configures the structured logger.
	Logging Logging `yaml:"logging"`
	// Limits bounds what clients may send.
	Limits Limits `yaml:"limits"`
	// Auth tunes app-key authentication.
	Auth Auth `yaml:"auth"`
	// CORS lets browser apps on other origins call the data plane.
	CORS CORS `yaml:"cors"`
	// Metrics places the Prometheus endpoint.
	Metrics Metrics `yaml:"metrics"`
	// Ledger bounds the ledger in Redis and ships it to its archive.
	Ledger Ledger `yaml:"ledger"`

	// pricing is built by Validate from Prices.
	pricing *metering.Pricing
	// strayEnv lists CREDITGATE_* variables that matched no key (names only).
	strayEnv []string
}

// Admin configures the control-plane API.
type Admin struct {
	// Listen is the admin API's address. Default "127.0.0.1:8081": loopback only,
	// because admin tokens can mint keys and credit accounts.
	Listen string `yaml:"listen"`
	// Tokens are the accepted admin bearer tokens, at least 16 characters each:
	// a bare string is a full-admin token, a mapping {token, name, scopes} a
	// named one that may do what its scopes allow (see AdminToken).
	// CREDITGATE_ADMIN_TOKENS is a comma-separated list of full-admin tokens.
	// Default ["change-me"], which is rejected on purpose: set CREDITGATE_ADMIN_TOKENS.
	Tokens []AdminToken `yaml:"tokens"`
	// TLS, when it names a certificate, serves the admin API over HTTPS, and with
	// a client CA, only to clients holding a certificate it signed.
	TLS TLS `yaml:"tls"`
	// MaxConnections caps the admin listener's open connections, as
	// limits.max_connections does the data plane's; its descriptors are set
	// aside at start, so a flood of the data plane cannot take /healthz down.
	// Default 64.
	MaxConnections int64 `yaml:"max_connections"`
}

// AdminToken is one admin.tokens entry. A bare string in the file or in
// CREDITGATE_ADMIN_TOKENS is a token with no name and no scopes: full admin,
// named after its hash (see ActorName). A mapping names the token (the actor
// recorded on every ledger event its calls cause) and lists its scopes.
type AdminToken struct {
	// Token is the secret bearer token, at least 16 characters.
	Token string `yaml:"token"`
	// Name names the token in the ledger and the access log; required in a
	// mapping, unique.
	Name string `yaml:"name"`
	// Scopes are what the token may do: read (every GET), keys (create and
	// revoke app keys), billing (credits, adjustments, auto-recharge,
	// purchases, Billing page links), admin (everything, account creation
	// and changes included). Required in a mapping.
	Scopes []string `yaml:"scopes"`
}

// AdminScopes are the scopes an admin token may carry.
var AdminScopes = []string{"read", "keys", "billing", "admin"}

// ActorName is the token's name: Name, or for a bare token "admin-" and the
// first 8 hex digits of its SHA-256 (not a secret: it tells tokens apart in the
// ledger without naming them).
func (t AdminToken) ActorName() string {
	if t.Name != "" {
		return t.Name
	}
	sum := sha256.Sum256([]byte(t.Token))
	return "admin-" + hex.EncodeToString(sum[:4])
}

// EffectiveScopes are the token's scopes; a bare token's are ["admin"].
func (t AdminToken) EffectiveScopes() []string {
	if len(t.Scopes) == 0 && t.Name == "" {
		return []string{"admin"}
	}
	return append([]string(nil), t.Scopes...)
}

// BareTokens are full-admin tokens, as CREDITGATE_ADMIN_TOKENS lists them.
func BareTokens(tokens ...string) []AdminToken {
	out := make([]AdminToken, len(tokens))
	for i, t := range tokens {
		out[i] = AdminToken{Token: t}
	}
	return out
}

// TLS configures HTTPS on a listener. Both files or neither: with neither the
// listener speaks plain HTTP. TLS 1.2 is the oldest version accepted.
type TLS struct {
	// CertFile is a PEM certificate chain, leaf first. Default "" (plain HTTP).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the certificate. Default "".
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, is a PEM bundle of CAs; clients must then present a
	// certificate signed by one of them (mutual TLS). Default "" (no client
	// certificate asked for).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the listener serves HTTPS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Upstream is the API creditgate forwards to.
type Upstream struct {
	// BaseURL is what an OpenAI SDK would use as its base URL: a request for
	// /v1/<rest> is forwarded to <BaseURL>/<rest>. Default "https://api.openai.com/v1".
	BaseURL string `yaml:"base_url"`
	// APIKey is sent upstream as the bearer token in place of the client's key.
	// Default "" (no Authorization header), warned about unless the upstream is
	// on this machine. Prefer CREDITGATE_UPSTREAM_API_KEY.
	APIKey string `yaml:"api_key"`
	// Timeout bounds a whole upstream exchange, streaming included. Default 10m.
	Timeout time.Duration `yaml:"timeout"`
}

// Redis locates the ledger store. Exactly one of URL and ClusterAddrs is used.
type Redis struct {
	// URL is a single Redis: redis://[user:pass@]host:port/db, rediss:// for TLS,
	// unix:///path, or memory:// for an embedded in-process store that is not
	// durable (for trying creditgate out). Default "redis://127.0.0.1:6379/0";
	// cleared when ClusterAddrs is set and URL is not.
	URL string `yaml:"url"`
	// ClusterAddrs are Redis Cluster seed nodes (host:port), or sentinel addresses
	// when SentinelMaster is set. Default none.
	ClusterAddrs []string `yaml:"cluster_addrs"`
	// KeyPrefix starts every key creditgate writes, so several deployments can
	// share one Redis. It must not contain '{' or '}' (hash tags). Default "cg:".
	KeyPrefix string `yaml:"key_prefix"`
	// Username for cluster and sentinel connections (a URL carries its own). Default "".
	Username string `yaml:"username"`
	// Password for cluster and sentinel connections (a URL carries its own). Default "".
	Password string `yaml:"password"`
	// Timeout is the dial, read and write timeout, so a request fails fast (503)
	// rather than hangs when Redis is gone. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// SentinelMaster, when set, is the sentinel master name and ClusterAddrs are
	// the sentinels. Default "" (no sentinel).
	SentinelMaster string `yaml:"sentinel_master"`
	// MaxRetries is how many times a command is resent after a network error or a
	// timeout (every ledger script is idempotent, so a resent one is never applied
	// twice); 0 never resends. Default 2.
	MaxRetries int64 `yaml:"max_retries"`
	// OperationTimeout bounds one Redis command from its first try to its last
	// retry, so a request that cannot reach Redis is answered 503 after at most
	// this long (twice this when its key is not cached yet). At least Timeout.
	// Default 5s.
	OperationTimeout time.Duration `yaml:"operation_timeout"`
	// Wait says when money coming in (top-ups, adjustments, recharges' credits)
	// is acknowledged: after how many replicas have it.
	Wait RedisWait `yaml:"wait"`
	// Pipeline batches the ledger scripts that concurrent requests run at the
	// same moment into shared pipelines (one write and one read per batch).
	Pipeline RedisPipeline `yaml:"pipeline"`
}

// RedisPipeline is automatic pipelining (redisstore.PipelineOptions): nothing
// waits for a batch to fill, so a request alone goes at once; a batch forms
// only while earlier ones are in flight. Each script stays atomic on its own.
type RedisPipeline struct {
	// MaxBatch is the most scripts one pipeline carries; 1 sends each on its
	// own. From 1 to 1024. Default 64.
	MaxBatch int64 `yaml:"max_batch"`
	// Workers is how many pipelines may be in flight at once. From 1 to 1024.
	// Default 4.
	Workers int64 `yaml:"workers"`
}

// RedisWait makes money coming in survive a failover: a top-up, an adjustment
// or a recharge's credit is answered only once Replicas replicas have it (Redis
// WAIT), else 503 with "retry with the same Idempotency-Key". Settlements are
// not waited for (see docs/reliability.md). See redisstore.Durability.
type RedisWait struct {
	// Replicas is how many replicas must confirm; 0 (the default) acknowledges on
	// the master's reply alone. Set 1 with Sentinel or a cluster with replicas.
	Replicas int64 `yaml:"replicas"`
	// Timeout bounds the wait; when anything is waited for, shorter than
	// redis.timeout, within which its answer is read. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// AOF also waits for the fsync of the append-only file, the master's and
	// the counted replicas' (WAITAOF, Redis 7.2 and later; earlier versions count
	// replicas with WAIT, warned at start). Default false.
	AOF bool `yaml:"aof"`
}

// Spool is the durable local spool of settlements: when Redis fails after the
// upstream has answered, the request's charge (or the release of its hold) is
// appended to a file and fsync'd, then replayed, idempotently, once Redis
// answers again, and first of all at the next start-up.
type Spool struct {
	// Dir is the spool's directory, created if missing; one creditgate process at a
	// time may use it. "" (the default) chooses $XDG_STATE_HOME/creditgate/spool,
	// else $HOME/.local/state/creditgate/spool; "off" disables the spool (a
	// settlement that fails is then only logged). Use persistent storage: a spool
	// on a disk that is lost with the machine loses its settlements with it (in a
	// container, a spool not on a volume is warned about). No spool is kept for
	// the embedded store (redis.url: memory://).
	Dir string `yaml:"dir"`
	// ReplayInterval is how often a non-empty spool is replayed while Redis is
	// failing. Default 5s.
	ReplayInterval time.Duration `yaml:"replay_interval"`
}

// Billing holds the ledger's rules (see billing.Policy).
type Billing struct {
	// CreditTTL is a grant's lifetime from purchase; expired credit is forfeited.
	// Default 8760h (one year); days such as "365d" are accepted.
	CreditTTL time.Duration `yaml:"credit_ttl"`
	// MinPurchase is the smallest top-up. Default "5.00".
	MinPurchase money.Micros `yaml:"min_purchase"`
	// Grace is how far past zero a request admitted while credit remained may take
	// the balance. Default "0.50".
	Grace money.Micros `yaml:"grace"`
	// HoldTTL is how long a reservation lives if it is never settled; it should
	// exceed Upstream.Timeout. Default 15m.
	HoldTTL time.Duration `yaml:"hold_ttl"`
	// ClampMaxTokens lets the proxy lower a request's output cap to what the
	// account can pay for, which is what keeps the overdraft within Grace.
	// Default true.
	ClampMaxTokens bool `yaml:"clamp_max_tokens"`
	// DefaultTier is the tier of accounts created without one; it must be a key
	// of Tiers. Default "tier-1".
	DefaultTier string `yaml:"default_tier"`
	// Tiers are the usage tiers by name. Setting tiers in the file replaces the
	// default table, BuiltinTiers: OpenAI's usage tiers 1 to 5.
	Tiers map[string]Tier `yaml:"tiers"`
	// AutoRecharge configures automatic top-ups.
	AutoRecharge AutoRecharge `yaml:"auto_recharge"`
}

// Tier limits what an account of the tier may buy and use, and says how an
// account earns it.
type Tier struct {
	// MaxTopUp is the largest single top-up; "0" or absent means no limit.
	MaxTopUp money.Micros `yaml:"max_topup"`
	// MaxBalance is the largest credit a top-up may lead to; "0" or absent means no limit.
	MaxBalance money.Micros `yaml:"max_balance"`
	// RPM and TPM are the account's requests and tokens per minute (README "Rate
	// limits": GCRA, a minute's allowance at once then refilled continuously;
	// tokens are the prompt plus max output); 0 or absent means no limit, at
	// most 1e11.
	RPM int64 `yaml:"rpm"`
	TPM int64 `yaml:"tpm"`
	// MonthlyUsageLimit caps an account's usage in a calendar month (UTC);
	// "0" or absent means no limit.
	MonthlyUsageLimit money.Micros `yaml:"monthly_usage_limit"`
	// Qualify, when set, puts the tier on the promotion ladder: an account on a
	// lower tier of the ladder moves up to it once it has paid Paid in total
	// (purchases, auto-recharges and operators' top-ups; not promotions or
	// adjustments) and its first payment is Days days old. Tiers of the ladder
	// are ordered by paid, then days, then name; a tier without qualify is off
	// the ladder (nobody is promoted into or out of it). See billing.Ladder.
	Qualify *Qualify `yaml:"qualify"`
}

// Qualify is a tier's promotion rule (Tier.Qualify).
type Qualify struct {
	// Paid is the total paid that qualifies ("50.00").
	Paid money.Micros `yaml:"paid"`
	// Days is how old the first payment must be (0: at once).
	Days int64 `yaml:"days"`
}

// AutoRecharge configures automatic top-ups and their charger.
type AutoRecharge struct {
	// MinAmount is the smallest amount an account may auto-recharge.
	// Default: Billing.MinPurchase.
	MinAmount money.Micros `yaml:"min_amount"`
	// Charger pays the recharges: "webhook" (the charger webhook below),
	// "stripe" or "demo" (an off-session charge of the card the customer saved,
	// at payments.provider, which must be the same). Default "": webhook when
	// Webhook.URL is set, else payments.provider when it is not none, else no
	// charger (auto-recharge off). See Config.Charger.
	Charger string `yaml:"charger"`
	// Webhook is the webhook charger: a 2xx answer means paid.
	Webhook Webhook `yaml:"webhook"`
}

// The chargers of billing.auto_recharge.charger.
const (
	ChargerWebhook = "webhook"
	ChargerStripe  = ProviderStripe
	ChargerDemo    = ProviderDemo
)

// Payments configures the payment provider customers buy credit through.
type Payments struct {
	// Provider is "stripe", "demo" (a local checkout page that charges nobody,
	// for trying creditgate out) or "none" (no purchases: credit only through
	// the admin API). Default "none".
	Provider string `yaml:"provider"`
	// Currency is the ISO 4217 code of a two-decimal currency, in which the
	// ledger's amounts are then read (payments.ParseCurrency). Default "usd".
	Currency string `yaml:"currency"`
	// Stripe holds the Stripe account's keys.
	Stripe Stripe `yaml:"stripe"`
}

// The payment providers of payments.provider.
const (
	ProviderNone   = "none"
	ProviderStripe = "stripe"
	ProviderDemo   = "demo"
)

// Stripe configures the Stripe provider. Prefer the environment for the keys:
// CREDITGATE_PAYMENTS_STRIPE_SECRET_KEY, CREDITGATE_PAYMENTS_STRIPE_WEBHOOK_SECRET.
type Stripe struct {
	// SecretKey is the API key: sk_test_…, sk_live_… or a restricted rk_…. Default "".
	SecretKey string `yaml:"secret_key"`
	// WebhookSecret is the signing secret (whsec_…) of the webhook endpoint
	// <portal.public_url>/webhooks/stripe. Default "".
	WebhookSecret string `yaml:"webhook_secret"`
	// APIBase is Stripe's API root. Default "https://api.stripe.com"; tests point
	// it at a local stand-in (plain http only for a loopback host).
	APIBase string `yaml:"api_base"`
	// ProductName is the line item customers see on Stripe's page and receipt.
	// Default "creditgate credit".
	ProductName string `yaml:"product_name"`
}

// Portal configures the Billing page (/billing/ on the data-plane listener).
type Portal struct {
	// PublicURL is the data plane's address as customers reach it, e.g.
	// "https://api.example.com": portal links, the checkout's return addresses
	// and the Stripe webhook URL are built on it. Default "": derived from
	// listen (http://localhost:8080, https with tls), which only works on this
	// machine. See Config.PortalURL.
	PublicURL string `yaml:"public_url"`
	// LinkTTL is how long a portal link (single use) can be opened. Default 10m.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// SessionTTL is how long a Billing page session lasts. Default 1h.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Webhook is an HTTP endpoint creditgate POSTs signed JSON to.
type Webhook struct {
	// URL is an absolute http(s) URL; "" disables the webhook. Default "".
	URL string `yaml:"url"`
	// Secret signs every delivery per Standard Webhooks (webhook-signature); a
	// "whsec_<base64>" secret, required when URL is set. Any other string is a
	// legacy secret used as raw bytes for one release (warned about at start).
	Secret string `yaml:"secret"`
	// Secrets are more secrets that sign every delivery too, for a rotation:
	// configure the new one beside the old until every receiver has moved.
	Secrets []string `yaml:"secrets"`
	// Timeout bounds one delivery. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Notify configures notices: balance.low, balance.exhausted, credits.expiring,
// auto_recharge.failed.
type Notify struct {
	// Webhook receives the notices; no URL means no notices.
	Webhook Webhook `yaml:"webhook"`
	// LowBalance is the balance below which balance.low is sent. Default "1.00".
	LowBalance money.Micros `yaml:"low_balance"`
	// ExpiringWithin is how far ahead credits.expiring warns. Default 168h (a week).
	ExpiringWithin time.Duration `yaml:"expiring_within"`
}

// Prices is the pricing section: models priced in USD per 1M tokens. What
// requests are billed by is the built-in table (BuiltinPricesSource, checked on
// BuiltinPricesChecked) with Models and Aliases merged over it; Config.PriceTable
// lists the result.
type Prices struct {
	// Builtin starts the table from the built-in one (OpenAI's list prices).
	// false uses Models, Aliases and Default alone. Default true.
	Builtin bool `yaml:"builtin"`
	// Models maps a model name to its price. An entry replaces the built-in entry
	// of that name whole; every other built-in price stays. Names are matched
	// exactly (case and dots kept); a dated snapshot such as gpt-4o-2024-08-06
	// falls back to its family's entry. Default none.
	Models map[string]ModelPrice `yaml:"models"`
	// Aliases maps a model name to a priced model (built-in or in Models) it is
	// billed as; an alias named like a built-in model replaces it. Default none.
	Aliases map[string]string `yaml:"aliases"`
	// Default, when set, prices every model that has no entry; when absent such
	// requests are rejected (400). Default absent.
	Default *ModelPrice `yaml:"default"`
	// BatchDiscount is the share of the list price a batch (/v1/batches) is
	// billed at, from above 0 to 1: its worst case is held at that share when it
	// is created and its usage billed at it when it ends. Default 0.5 (OpenAI
	// bills batches at half price).
	BatchDiscount Fraction `yaml:"batch_discount"`
}

// ModelPrice is one model's price per token class, in USD per 1M tokens, written
// as YAML numbers or strings ("0.15") and parsed exactly. Input is required; a
// class left unset costs what its parent class costs (CachedInput and AudioInput
// that of Input; Reasoning and AudioOutput that of Output). An embeddings model
// sets only Input.
type ModelPrice struct {
	// Input prices input (prompt) tokens. Required.
	Input *money.Micros `yaml:"input"`
	// CachedInput prices input tokens served from the prompt cache. Default: Input.
	CachedInput *money.Micros `yaml:"cached_input"`
	// Output prices output (completion) tokens. Default: 0 (embeddings).
	Output *money.Micros `yaml:"output"`
	// Reasoning prices hidden reasoning tokens. Default: Output.
	Reasoning *money.Micros `yaml:"reasoning"`
	// AudioInput prices audio input tokens. Default: Input.
	AudioInput *money.Micros `yaml:"audio_input"`
	// AudioOutput prices audio output tokens. Default: Output.
	AudioOutput *money.Micros `yaml:"audio_output"`
	// AudioMinute prices a minute of audio sent to /v1/audio/transcriptions or
	// translations (whisper-1), billed per second; such a model may leave Input
	// unset. Default: none (billed by tokens).
	AudioMinute *money.Micros `yaml:"audio_minute"`
	// MaxOutputTokens is the model's largest output, assumed by the estimate when a
	// request sets no cap. 0 or absent: metering.DefaultMaxOutputTokens.
	MaxOutputTokens int64 `yaml:"max_output_tokens"`
	// Encoding is the tiktoken encoding for local counts: "o200k_base" or
	// "cl100k_base"; absent: chosen from the model name.
	Encoding string `yaml:"encoding"`
	// The media endpoints' units (README "Images, speech and moderations"):
	// ImageInput prices 1M image input tokens (gpt-image-1; default Input);
	// Images prices an image model per image instead (dall-e); Characters prices
	// a speech model per 1M input characters instead of per token (tts-1). With
	// Images or Characters set, Input is not required.
	ImageInput *money.Micros `yaml:"image_input"`
	Images     *ImagePrice   `yaml:"images"`
	Characters *money.Micros `yaml:"characters"`
}

// ImagePrice prices an image model per image: USD per image by quality, then
// size ("standard": {"1024x1024": "0.040"}), and the size and quality the model
// makes when a request names none (absent: the dearest entry).
type ImagePrice struct {
	PerImage       map[string]map[string]money.Micros `yaml:"per_image"`
	DefaultSize    string                             `yaml:"default_size"`
	DefaultQuality string                             `yaml:"default_quality"`
}

// Metering tunes token counting.
type Metering struct {
	// DriftTolerance is the relative difference between upstream-reported and
	// locally counted tokens beyond which a drift is logged. Default 0.10.
	DriftTolerance float64 `yaml:"drift_tolerance"`
	// CountPrompts is when prompts are counted with the tokenizer: "when_needed"
	// (the default: admitted on their byte bound, counted only when a bill, a
	// clamp or a TPM limit needs it) or "always" (at admission, as before).
	CountPrompts string `yaml:"count_prompts"`
}

// The values of metering.count_prompts.
const (
	CountPromptsWhenNeeded = "when_needed"
	CountPromptsAlways     = "always"
)

// Logging configures the structured logger.
type Logging struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or console. Default json.
	Format string `yaml:"format"`
}

// Limits bounds what clients may send.
type Limits struct {
	// MaxBodyBytes is the largest request body; larger ones get 413. An integer or
	// a size such as "16MiB" (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000).
	// Default 16MiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// MaxMessages is the most messages (chat), input items (responses), prompts
	// (completions) or inputs (embeddings) one request may carry; more get 400.
	// Default 10000.
	MaxMessages int64 `yaml:"max_messages"`
	// MaxMessageBytes is the largest one message or input item may be, as JSON;
	// a larger one gets 400. Default 10MiB (OpenAI's own limit on a string).
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// MaxConnections caps the data plane's open connections: beyond it, new
	// connections wait in the kernel's backlog until one closes. Lowered at start
	// when RLIMIT_NOFILE cannot pay for it (two descriptors each: the app's and an
	// upstream's) after the admin listener, Redis and the spool. Default 4096.
	MaxConnections int64 `yaml:"max_connections"`
	// HeaderTimeout bounds the TLS handshake and the request headers, on both
	// listeners; a connection that sends nothing is closed after it. Default 10s.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	// BodyIdleTimeout bounds how slowly a request body may arrive, on both
	// listeners, with BodyMinRate: the body may pause, or fall behind
	// BodyMinRate, by at most this long; one that falls further behind is cut
	// (408). Streamed answers are not affected. Default 30s.
	BodyIdleTimeout time.Duration `yaml:"body_idle_timeout"`
	// BodyMinRate is the rate, in bytes a second, a request body must keep up
	// with (within BodyIdleTimeout); 0 leaves only the bound on pauses.
	// Default 8KiB (a second).
	BodyMinRate ByteSize `yaml:"body_min_rate"`
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request, on both listeners. Default 2m (longer than common clients' own
	// idle timeouts, so a client is not caught sending on a closing connection).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Auth tunes app-key authentication.
type Auth struct {
	// KeyCacheTTL is how long a looked-up app key is cached in process, which is
	// also how long a revoked key may keep working. 0 disables the cache. Default 5s.
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
}

// CORS answers browsers' cross-origin requests to the data plane (/v1/…). With
// no allowed origin (the default) nothing changes: browsers then refuse to let a
// page on another origin read any answer.
type CORS struct {
	// AllowedOrigins are the origins allowed, each exact ("https://app.example.com",
	// scheme, host and port as the browser sends them, no path), or "*" alone for
	// any origin. Default none.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowCredentials sends Access-Control-Allow-Credentials: true, letting a page
	// send cookies or TLS client certificates along; never with "*". Apps
	// authenticate with a bearer key, which needs no credentials. Default false.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight's answer (at most 24h;
	// browsers cap it lower). Default 10m.
	MaxAge time.Duration `yaml:"max_age"`
}

// Metrics places GET /metrics. The admin listener always serves it; Listen
// adds a listener of its own, so Prometheus scrapes without reaching the admin
// API (which mints keys and credits accounts).
type Metrics struct {
	// Listen is the metrics listener's address, host:port, serving GET /metrics
	// only, in plain HTTP (the figures carry no secret and no account id).
	// Default "": no listener of its own.
	Listen string `yaml:"listen"`
}

// Ledger is where the ledger's history lives: Redis keeps a recent tail of
// each account's events, the archive (PostgreSQL) all of them.
type Ledger struct {
	// RedisRetention is how long an event stays in Redis; older ones are
	// trimmed (each account's checkpoint keeps the audit whole). With an
	// archive only shipped events are trimmed. 0 (the default) means 24h with
	// an archive and no trimming without one: without an archive, trimming
	// discards history, so it happens only when set.
	RedisRetention time.Duration `yaml:"redis_retention"`
	// Archive is the ledger of record in PostgreSQL.
	Archive LedgerArchive `yaml:"archive"`
}

// LedgerArchive is the ledger of record in PostgreSQL (package pgarchive).
type LedgerArchive struct {
	// PostgresURL is the PostgreSQL (a postgres:// URL or a libpq DSN) every
	// ledger event is shipped to. "" (the default): no archive, the ledger stays
	// in Redis. Prefer CREDITGATE_LEDGER_ARCHIVE_POSTGRES_URL: it carries a password.
	PostgresURL string `yaml:"postgres_url"`
	// Schema is the PostgreSQL schema the archive's tables live in. Default "creditgate".
	Schema string `yaml:"schema"`
	// Migrate is "auto" (the default: apply missing migrations at start) or
	// "manual" (refuse to start on an old schema; run creditgate migrate).
	Migrate string `yaml:"migrate"`
	// BatchSize is the most events one shipping transaction archives. Default 500.
	BatchSize int64 `yaml:"batch_size"`
	// Interval is the pause between shipping rounds. Default 10s.
	Interval time.Duration `yaml:"interval"`
}

// Archive migration modes (ledger.archive.migrate).
const (
	MigrateAuto   = "auto"
	MigrateManual = "manual"
)

// DefaultRedisRetention is ledger.redis_retention's meaning when it is 0 and
// an archive is configured.
const DefaultRedisRetention = 24 * time.Hour

// EffectiveRedisRetention is how long events stay in Redis: 0 means never
// trimmed (no archive, ledger.redis_retention unset).
func (c *Config) EffectiveRedisRetention() time.Duration {
	if c.Ledger.RedisRetention == 0 && c.Ledger.Archive.PostgresURL != "" {
		return DefaultRedisRetention
	}
	return c.Ledger.RedisRetention
}

// ByteSize is a number of bytes; in YAML an integer or a size such as "16MiB".
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// Default returns a Config holding every default, as if loaded from an empty
// file with no environment. It does not validate: its admin token is the
// placeholder "change-me", which Validate rejects.
func Default() *Config {
	return &Config{
		Listen:          ":8080",
		ShutdownTimeout: 30 * time.Second,
		Admin: Admin{
			Listen:         "127.0.0.1:8081",
			Tokens:         BareTokens(exampleAdminToken),
			MaxConnections: 64,
		},
		Upstream: Upstream{
			BaseURL: "https://api.openai.com/v1",
			Timeout: 10 * time.Minute,
		},
		Redis: Redis{
			URL:              "redis://127.0.0.1:6379/0",
			KeyPrefix:        "cg:",
			Timeout:          2 * time.Second,
			MaxRetries:       2,
			OperationTimeout: 5 * time.Second,
			Wait:             RedisWait{Timeout: time.Second},
			Pipeline:         RedisPipeline{MaxBatch: 64, Workers: 4},
		},
		Spool: Spool{ReplayInterval: 5 * time.Second},
		Billing: Billing{
			CreditTTL:      8760 * time.Hour,
			MinPurchase:    5 * money.Dollar,
			Grace:          50 * money.Cent,
			HoldTTL:        15 * time.Minute,
			ClampMaxTokens: true,
			DefaultTier:    "tier-1",
			Tiers:          BuiltinTiers(),
			AutoRecharge: AutoRecharge{
				MinAmount: 5 * money.Dollar,
				Webhook:   Webhook{Timeout: 10 * time.Second},
			},
		},
		Notify: Notify{
			Webhook:        Webhook{Timeout: 10 * time.Second},
			LowBalance:     1 * money.Dollar,
			ExpiringWithin: 168 * time.Hour,
		},
		Payments: Payments{
			Provider: ProviderNone,
			Currency: "usd",
			Stripe:   Stripe{APIBase: "https://api.stripe.com", ProductName: "creditgate credit"},
		},
		Portal: Portal{LinkTTL: 10 * time.Minute, SessionTTL: time.Hour},
		Prices: Prices{
			Builtin:       true,
			Models:        map[string]ModelPrice{},
			Aliases:       map[string]string{},
			BatchDiscount: FractionOne / 2,
		},
		Metering: Metering{DriftTolerance: 0.10, CountPrompts: CountPromptsWhenNeeded},
		Logging:  Logging{Level: "info", Format: "json"},
		Limits: Limits{MaxBodyBytes: 16 * MiB, MaxMessages: 10000, MaxMessageBytes: 10 * MiB,
			MaxConnections: 4096, HeaderTimeout: 10 * time.Second, BodyIdleTimeout: 30 * time.Second,
			BodyMinRate: 8 * KiB, IdleTimeout: 2 * time.Minute},
		Auth:   Auth{KeyCacheTTL: 5 * time.Second},
		CORS:   CORS{MaxAge: 10 * time.Minute},
		Ledger: Ledger{Archive: LedgerArchive{Schema: "creditgate", Migrate: MigrateAuto, BatchSize: 500, Interval: 10 * time.Second}},
	}
}

// Charger is the auto-recharge charger in force: billing.auto_recharge.charger,
// or when that is empty, "webhook" if the charger webhook has a URL, else
// payments.provider unless it is none; "" means no charger (auto-recharge off).
func (c *Config) Charger() string {
	switch {
	case c.Billing.AutoRecharge.Charger != "":
		return c.Billing.AutoRecharge.Charger
	case c.Billing.AutoRecharge.Webhook.URL != "":
		return ChargerWebhook
	case c.Payments.Provider != ProviderNone && c.Payments.Provider != "":
		return c.Payments.Provider
	}
	return ""
}

// PortalURL is the base URL customers reach the data plane at, without a
// trailing slash: portal.public_url, or one derived from listen (https under
// tls; a listen address without a host, or on all interfaces, is localhost).
func (c *Config) PortalURL() string {
	if c.Portal.PublicURL != "" {
		return strings.TrimRight(c.Portal.PublicURL, "/")
	}
	scheme := "http"
	if c.TLS.Enabled() {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return scheme + "://localhost"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// exampleAdminToken is the placeholder token of the documented example; it is
// public, so Validate refuses it.
const exampleAdminToken = "change-me"

// SpoolOff as spool.dir disables the spool.
const SpoolOff = "off"

// SpoolDir is the spool directory to use: spool.dir, or the default location
// when it is "", or "" when there is to be no spool (spool.dir "off", or the
// embedded store, which cannot fail independently of the process).
func (c *Config) SpoolDir() string {
	switch {
	case c.Spool.Dir == SpoolOff || c.Redis.URL == memoryURL:
		return ""
	case c.Spool.Dir != "":
		return c.Spool.Dir
	}
	return defaultSpoolDir()
}

// defaultSpoolDir follows the XDG base directory convention for state that must
// survive restarts: $XDG_STATE_HOME, else ~/.local/state; the temporary directory
// only when there is no home at all.
func defaultSpoolDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "creditgate", "spool")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "creditgate", "spool")
	}
	return filepath.Join(os.TempDir(), "creditgate-spool")
}
