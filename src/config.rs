//! Settings: `config/default.toml`, then `config/{RSCMS_ENV}.toml`, then
//! environment variables `RSCMS__SECTION__KEY`. Every struct rejects unknown
//! keys so a typo in a deployment fails loudly instead of being ignored.
//! Settings are passed explicitly (no global), so each test builds its own.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// All settings of one rs-cms process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub blacklist: BlacklistSettings,
    pub seckill: SeckillSettings,
    pub catalog: CatalogSettings,
    pub cart: CartSettings,
    pub chat: ChatSettings,
    pub orders: OrderSettings,
    pub payments: PaymentSettings,
    pub finance: FinanceSettings,
    pub log: LogSettings,
}

/// HTTP listener and worker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// 0 means one worker per CPU core.
    pub workers: usize,
    /// Trust the right-most `X-Forwarded-For` entry (appended by our proxy) as the client address.
    pub trust_forwarded_for: bool,
    pub shutdown_timeout_secs: u64,
}

impl ServerSettings {
    /// HTTP worker threads to run: `workers`, or one per CPU core.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            n => n,
        }
    }
}

/// PostgreSQL connection settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
}

impl std::fmt::Debug for DatabaseSettings {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Redis connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key and channel, so deployments and tests can share a Redis.
    pub key_prefix: String,
}

/// Sessions, login throttling and password hashing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub session_ttl_secs: u64,
    pub session_cache_ttl_secs: u64,
    pub login_max_failures: u32,
    pub login_failure_window_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub email_token_ttl_secs: u64,
}

/// The in-memory IP/account blacklist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistSettings {
    pub refresh_secs: u64,
}

/// The flash-sale engine.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeckillSettings {
    pub batch_max_rows: usize,
    pub batch_max_delay_us: u64,
    pub writer_queue_capacity: usize,
    /// Batches written at the same time, each on its own connection.
    pub writer_max_in_flight: usize,
    pub actor_mailbox_capacity: usize,
    pub reserve_timeout_ms: u64,
    pub user_rate_per_sec: u32,
    pub ip_rate_per_sec: u32,
    pub purchase_token_secret: String,
    pub purchase_token_ttl_secs: u64,
    /// Serve the naive one-transaction-per-request baseline for load tests.
    pub naive_baseline: bool,
    /// Who owns an event's stock: this node's actor, or a pool in Redis
    /// that several nodes lease from.
    pub stock_authority: StockAuthority,
    /// Units a node leases from the pool at a time (`redis` only).
    pub lease_chunk: u32,
    /// A lease not renewed for this long is reclaimed into the pool by any
    /// node: how long a dead node's units stay unsellable (`redis` only).
    pub lease_ttl_ms: u64,
    /// Requests one actor parks while its lease is refilled (`redis` only).
    pub lease_park_capacity: usize,
}

/// Who owns a flash sale's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StockAuthority {
    /// One node: the event's stock actor owns all of it.
    Local,
    /// Several nodes: Redis holds the pool and the per-user counts; each
    /// node's actor sells from a lease.
    Redis,
}

impl std::fmt::Debug for SeckillSettings {
    // Keeps the token secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeckillSettings")
            .field("batch_max_rows", &self.batch_max_rows)
            .field("batch_max_delay_us", &self.batch_max_delay_us)
            .field("writer_queue_capacity", &self.writer_queue_capacity)
            .field("actor_mailbox_capacity", &self.actor_mailbox_capacity)
            .field("stock_authority", &self.stock_authority)
            .field("lease_chunk", &self.lease_chunk)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .finish_non_exhaustive()
    }
}

/// Shops and catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// Longest a rendered product detail is served from memory.
    pub detail_cache_ttl_ms: u64,
    /// Most product details held in memory.
    pub detail_cache_capacity: usize,
}

/// Carts: the per-shopper cart actors and their writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartSettings {
    /// Most distinct lines in one cart.
    pub max_lines: usize,
    /// Most units of one SKU in one cart line.
    pub max_line_quantity: u32,
    /// A cart actor idle this long is stopped; the next request rebuilds it
    /// from Postgres.
    pub idle_evict_secs: u64,
    /// Messages waiting in one cart actor; beyond this, 503 overloaded.
    pub mailbox_capacity: usize,
    /// Group-commit writer of cart changes (as for flash sales).
    pub batch_max_rows: usize,
    pub batch_max_delay_us: u64,
    pub writer_queue_capacity: usize,
    pub writer_max_in_flight: usize,
}

/// Customer-service chat: the hub's shards, routing, connections and the
/// chat's group-commit writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// Conversation, directory and router shards, each (0: two per core).
    pub shards: usize,
    /// Requests waiting in one shard before senders are refused.
    pub mailbox_capacity: usize,
    /// Client message ids each conversation remembers for instant dedup.
    pub dedup_window: usize,
    /// Most open conversations routing gives one agent.
    pub agent_cap: u32,
    /// Events waiting for one connection; a client letting more pile up is disconnected.
    pub outbound_capacity: usize,
    /// Sends one connection may have waiting for their ack.
    pub max_in_flight: usize,
    /// Seconds between server pings.
    pub heartbeat_secs: u64,
    /// Seconds without any frame from a client before it is dropped.
    pub client_timeout_secs: u64,
    /// Messages one resume returns per conversation.
    pub resume_limit: i64,
    /// Largest message payload, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// Group-commit writer of messages and read receipts (as for carts).
    pub batch_max_rows: usize,
    pub batch_max_delay_us: u64,
    pub writer_queue_capacity: usize,
    pub writer_max_in_flight: usize,
    /// Several nodes serve chat: ownership, events and routing go through Redis.
    pub cluster: bool,
    /// How long a node's ownership of a conversation (and its presence)
    /// outlives its last renewal, in milliseconds.
    pub owner_ttl_ms: u64,
}

/// Normal (cart and buy-now) orders and shipping.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSettings {
    /// How long a new order may stay unpaid before it is cancelled.
    pub payment_window_secs: u64,
    /// Days after delivery when an order completes by itself.
    pub auto_complete_days: u32,
    /// How often the sweepers look for expired and completable orders.
    pub sweep_interval_ms: u64,
    /// HMAC-SHA256 key carriers sign tracking webhooks with. Set it in production.
    pub carrier_webhook_secret: String,
    /// Oldest webhook timestamp accepted (replay window).
    pub carrier_webhook_max_age_secs: u64,
}

impl std::fmt::Debug for OrderSettings {
    // Keeps the webhook secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderSettings")
            .field("payment_window_secs", &self.payment_window_secs)
            .field("auto_complete_days", &self.auto_complete_days)
            .field("sweep_interval_ms", &self.sweep_interval_ms)
            .finish_non_exhaustive()
    }
}

/// Payments through gateways.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// Where gateways send shoppers and callbacks, e.g.
    /// `https://mall.example.com`; empty means this server's own address.
    pub public_base_url: String,
    /// Offer the sandbox gateway (a stand-in that behaves like a real one).
    pub sandbox_enabled: bool,
    /// HMAC-SHA256 key the sandbox signs its callbacks with.
    pub sandbox_secret: String,
    /// Oldest callback timestamp accepted (replay window).
    pub callback_max_age_secs: u64,
    /// Serve `POST /api/orders/{order_no}/pay`, which marks an order paid
    /// with no gateway at all. For tests and demos only.
    pub direct_pay_enabled: bool,
    /// How often refunds the gateway has not taken yet are retried.
    pub refund_retry_secs: u64,
}

impl std::fmt::Debug for PaymentSettings {
    // Keeps the secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("public_base_url", &self.public_base_url)
            .field("sandbox_enabled", &self.sandbox_enabled)
            .field("direct_pay_enabled", &self.direct_pay_enabled)
            .finish_non_exhaustive()
    }
}

/// The platform's cut and the after-sale rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinanceSettings {
    /// Commission on completed orders, in basis points (500 = 5 %), 0..=10000.
    pub commission_bps: u16,
    /// Days after delivery during which a shopper may ask to return goods.
    pub return_window_days: u32,
}

impl FinanceSettings {
    /// The commission rate as stored with a settled order.
    pub fn commission_bps(&self) -> i32 {
        i32::from(self.commission_bps)
    }
}

/// Log format and filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// A `tracing` env-filter directive, e.g. `info,rs_cms=debug`.
    pub filter: String,
}

/// Shortest signing secret accepted in production.
pub const MIN_SECRET_LEN: usize = 32;

impl Settings {
    /// Loads settings for the environment named by `RSCMS_ENV` (default
    /// `development`) from the directory `RSCMS_CONFIG_DIR` (default `config`).
    pub fn load() -> Result<Self, config::ConfigError> {
        let dir = std::env::var("RSCMS_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let env = std::env::var("RSCMS_ENV").unwrap_or_else(|_| "development".into());
        let settings = Self::load_from(Path::new(&dir), &env)?;
        if env == "production" {
            settings.check_production_secrets().map_err(config::ConfigError::Message)?;
        }
        Ok(settings)
    }

    /// Refuses the shipped placeholder (or a short) signing secret, with
    /// which anyone could mint purchase tokens or forge carrier deliveries,
    /// and the sandbox and direct-pay stand-ins for real payments.
    pub fn check_production_secrets(&self) -> Result<(), String> {
        if self.payments.sandbox_enabled || self.payments.direct_pay_enabled {
            return Err(
                "payments.sandbox_enabled and payments.direct_pay_enabled must be off in production: \
                        both mark orders paid without real money"
                    .to_owned(),
            );
        }
        let secrets = [
            ("seckill.purchase_token_secret", &self.seckill.purchase_token_secret),
            ("orders.carrier_webhook_secret", &self.orders.carrier_webhook_secret),
        ];
        for (key, secret) in secrets {
            if secret.len() < MIN_SECRET_LEN || secret.starts_with("change-me") {
                return Err(format!("{key} must be set to a secret of at least {MIN_SECRET_LEN} characters"));
            }
        }
        Ok(())
    }

    /// Loads `default.toml` and `{env}.toml` from `dir`, then the environment.
    pub fn load_from(dir: &Path, env: &str) -> Result<Self, config::ConfigError> {
        let file = |name: &str| -> PathBuf { dir.join(name) };
        config::Config::builder()
            .add_source(config::File::from(file("default.toml")).required(true))
            .add_source(config::File::from(file(&format!("{env}.toml"))).required(false))
            .add_source(
                config::Environment::with_prefix("RSCMS")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()
            .and_then(|settings: Self| {
                if settings.finance.commission_bps > 10_000 {
                    return Err(config::ConfigError::Message(
                        "finance.commission_bps must be at most 10000 (100 %)".to_owned(),
                    ));
                }
                Ok(settings)
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn production_refuses_placeholder_secrets_and_payment_stand_ins() {
        let mut settings = Settings::load_from(Path::new("config"), "test").unwrap();
        assert!(settings.check_production_secrets().unwrap_err().contains("payments.sandbox_enabled"));
        settings.payments.sandbox_enabled = false;
        settings.payments.direct_pay_enabled = false;
        assert!(settings.check_production_secrets().unwrap_err().contains("seckill.purchase_token_secret"));
        settings.seckill.purchase_token_secret = "x".repeat(MIN_SECRET_LEN);
        assert!(settings.check_production_secrets().unwrap_err().contains("orders.carrier_webhook_secret"));
        settings.orders.carrier_webhook_secret = "y".repeat(MIN_SECRET_LEN);
        assert!(settings.check_production_secrets().is_ok());
    }
}
