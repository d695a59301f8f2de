//! Command-line arguments.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::drive::{Load, Mode, Stop};

/// Requests per phase when neither a count nor a duration is given.
const DEFAULT_REQUESTS: u64 = 10_000;

/// Load tests of rs-cms with a correctness verdict and a latency report.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare buyers and a live event, measure /healthz, drive buys, check
    /// the database; exits 1 if any check fails.
    FlashSale(FlashSaleArgs),
    /// Measure /healthz only: the baseline of every ratio.
    Healthz(HealthzArgs),
    /// Prepare accounts, then measure /healthz, the authenticated
    /// `GET /api/me`, and login throughput (argon2id on the server).
    Accounts(AccountsArgs),
    /// Prepare listed products, then measure /healthz and the public
    /// `GET /api/products/{id}` spread over them.
    ProductDetail(ProductDetailArgs),
    /// Prepare shoppers with an address each and stocked products, measure
    /// /healthz, cart adds and buy-now checkouts, check carts and stock in
    /// the database; exits 1 if any check fails.
    Cart(CartArgs),
    /// Prepare shoppers, agents and shops, hold one WebSocket per account,
    /// send chat messages at a fixed rate (then again across a reconnect of
    /// every client); report delivery rate, latency, server memory per
    /// connection, lost and duplicated messages; exits 1 if any was lost or
    /// duplicated.
    Chat(ChatArgs),
}

/// `loadtest chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The server's base URL.
    #[arg(long, env = "LOADTEST_TARGET", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// The server's database, for preparing shops and reading the routing.
    #[arg(long, env = "LOADTEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/rscms")]
    pub database_url: String,
    /// Shoppers: one connection and one conversation each.
    #[arg(long, default_value_t = 9000)]
    pub shoppers: u32,
    /// Agents (shop staff): one connection each.
    #[arg(long, default_value_t = 1000)]
    pub agents: u32,
    /// Shops the agents serve (each shopper talks to shop i mod N).
    #[arg(long, default_value_t = 100)]
    pub shops: u32,
    /// Messages per second over all connections.
    #[arg(long, default_value_t = 20000.0)]
    pub rate: f64,
    /// Seconds of each sending phase.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Client threads, each with its own runtime. One holds 10,000
    /// connections at 20,000 msg/s on 2 cores, with less CPU than two
    /// (one epoll set, fewer wake-ups) left to the server it measures.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Logins and conversation openings in flight while preparing.
    #[arg(long, default_value_t = 16)]
    pub login_concurrency: usize,
    /// The server's process id, to read its memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Skip the phase that reconnects every client mid-load.
    #[arg(long)]
    pub skip_reconnect: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a phase is driven; shared by every scenario.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Server base URLs, comma-separated, used round-robin by request.
    #[arg(long, env = "LOADTEST_TARGET", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Closed loop: requests in flight (one connection each). Open loop: most connections.
    #[arg(long, short = 'c', default_value_t = 256)]
    pub concurrency: usize,
    /// Open loop: requests per second on a fixed schedule; latency counts
    /// from each request's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests per phase [default: 10000 unless --duration is given].
    #[arg(long, short = 'n', conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Seconds per phase, instead of a request count.
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Client threads, each with its own runtime and connection pool.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds before a request counts as a `timeout` error.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// The load these arguments describe, ending at `stop`.
    pub fn load(&self, stop: Stop) -> anyhow::Result<Load> {
        let mode = match self.rate {
            Some(rate) => Mode::Open { rate, connections: self.concurrency },
            None => Mode::Closed { concurrency: self.concurrency },
        };
        let timeout =
            Duration::try_from_secs_f64(self.timeout).context("--timeout must be a positive number")?;
        let load = Load { mode, stop, threads: self.threads, timeout };
        load.validate()?;
        Ok(load)
    }

    /// The end of a phase from `--requests` / `--duration`.
    pub fn stop(&self) -> anyhow::Result<Stop> {
        stop(self.requests, self.duration, DEFAULT_REQUESTS)
    }
}

/// A phase's end from a request count or a duration (in seconds), else `default` requests.
fn stop(requests: Option<u64>, duration: Option<f64>, default: u64) -> anyhow::Result<Stop> {
    Ok(match (requests, duration) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(secs)) => Stop::Duration(
            Duration::try_from_secs_f64(secs).context("a duration must be a positive number of seconds")?,
        ),
        (None, None) => Stop::Requests(default),
    })
}

/// `loadtest healthz`.
#[derive(Debug, Args)]
pub struct HealthzArgs {
    #[command(flatten)]
    pub load: LoadArgs,
}

/// The server's database; shared by the scenarios that prepare data in it.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The server's database, for preparing data (and the verdict).
    #[arg(long, env = "LOADTEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/rscms")]
    pub database_url: String,
}

/// Where prepared accounts come from; shared by the scenarios that log users in.
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Distinct accounts (the cart scenario's shoppers); each request picks
    /// the next one round-robin.
    #[arg(long, short = 'u', visible_alias = "shoppers", default_value_t = 1000)]
    pub users: u32,
    /// Logins in flight while preparing (each is an argon2id hash on the server).
    #[arg(long, default_value_t = 4)]
    pub login_concurrency: usize,
}

/// `loadtest accounts`.
#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Logins of the login phase (closed loop at --login-concurrency).
    #[arg(long, default_value_t = 500)]
    pub login_requests: u64,
}

/// `loadtest product-detail`.
#[derive(Debug, Args)]
pub struct ProductDetailArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Listed products to prepare; request i reads product i mod N.
    #[arg(long, short = 'p', default_value_t = 100)]
    pub products: u32,
}

/// `loadtest cart`.
#[derive(Debug, Args)]
pub struct CartArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Listed products to prepare, three SKUs each; request i uses SKU i mod 3N.
    #[arg(long, short = 'p', default_value_t = 100)]
    pub products: u32,
    /// Units in stock of every prepared SKU; checkouts past it are answered
    /// `insufficient_stock`.
    #[arg(long, short = 's', default_value_t = 1_000_000, value_parser = clap::value_parser!(i32).range(1..))]
    pub stock: i32,
}

/// `loadtest flash-sale`.
#[derive(Debug, Args)]
pub struct FlashSaleArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Stock S of the created event(s).
    #[arg(long, short = 's', default_value_t = 100)]
    pub stock: i32,
    /// Per-user limit L of the created event(s).
    #[arg(long, short = 'l', default_value_t = 1)]
    pub per_user_limit: i32,
    /// Units each buy request asks for.
    #[arg(long, short = 'q', default_value_t = 1)]
    pub quantity: i32,
    /// Use this existing event instead of creating one (S and L come from the database).
    #[arg(long)]
    pub event_id: Option<i64>,
    /// Also drive the same load at a second, identical event through the
    /// naive path (`.../orders-naive`) and print the throughput ratios.
    #[arg(long)]
    pub compare_naive: bool,
    /// Requests of the /healthz phase [default: as for the buy phase].
    #[arg(long, conflicts_with = "healthz_duration")]
    pub healthz_requests: Option<u64>,
    /// Seconds of the /healthz phase [default: as for the buy phase].
    #[arg(long)]
    pub healthz_duration: Option<f64>,
    /// Per-user token-bucket limit of created events, requests/s (0 = off).
    #[arg(long, default_value_t = 0)]
    pub user_rate: i32,
    /// Per-IP token-bucket limit of created events, requests/s (0 = off; all
    /// the load comes from one IP).
    #[arg(long, default_value_t = 0)]
    pub ip_rate: i32,
    /// SKU id of created events.
    #[arg(long, default_value_t = 1)]
    pub sku_id: i64,
    /// Sale price of created events, in cents.
    #[arg(long, default_value_t = 100)]
    pub price_cents: i64,
    /// Seconds created events stay open.
    #[arg(long, default_value_t = 3600)]
    pub sale_secs: i64,
    /// Payment window of created events; long, so no order expires mid-run.
    #[arg(long, default_value_t = 3600)]
    pub payment_window_secs: i32,
}

impl FlashSaleArgs {
    /// The /healthz phase's end: its own flags, else the buy phase's.
    pub fn healthz_stop(&self) -> anyhow::Result<Stop> {
        match (self.healthz_requests, self.healthz_duration) {
            (None, None) => self.load.stop(),
            (requests, duration) => stop(requests, duration, DEFAULT_REQUESTS),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(args: &str) -> Command {
        Cli::try_parse_from(args.split_whitespace()).unwrap().command
    }

    #[test]
    fn flash_sale_defaults_and_overrides() {
        let Command::FlashSale(args) = parse("loadtest flash-sale --duration 5 --healthz-requests 300")
        else {
            panic!("not flash-sale")
        };
        assert!(matches!(args.load.stop().unwrap(), Stop::Duration(d) if d == Duration::from_secs(5)));
        assert!(matches!(args.healthz_stop().unwrap(), Stop::Requests(300)));
        assert!(matches!(args.load.load(Stop::Requests(1)).unwrap().mode, Mode::Closed { concurrency: 256 }));
        assert_eq!((args.stock, args.per_user_limit, args.quantity, args.accounts.users), (100, 1, 1, 1000));
    }

    #[test]
    fn rate_selects_the_open_loop() {
        let Command::Healthz(args) = parse("loadtest healthz --rate 500 -c 64") else {
            panic!("not healthz")
        };
        let load = args.load.load(args.load.stop().unwrap()).unwrap();
        assert!(matches!(load.mode, Mode::Open { rate, connections: 64 } if rate == 500.0));
        assert!(matches!(load.stop, Stop::Requests(DEFAULT_REQUESTS)));
    }

    #[test]
    fn product_detail_defaults_and_overrides() {
        let Command::ProductDetail(args) = parse("loadtest product-detail") else {
            panic!("not product-detail")
        };
        assert_eq!(args.products, 100);
        assert!(args.database.database_url.starts_with("postgres://"));
        assert!(matches!(args.load.stop().unwrap(), Stop::Requests(DEFAULT_REQUESTS)));
        let Command::ProductDetail(args) = parse("loadtest product-detail --products 7 -d 3") else {
            panic!("not product-detail")
        };
        assert_eq!(args.products, 7);
        assert!(matches!(args.load.stop().unwrap(), Stop::Duration(d) if d == Duration::from_secs(3)));
    }

    #[test]
    fn cart_defaults_and_overrides() {
        let Command::Cart(args) = parse("loadtest cart") else { panic!("not cart") };
        assert_eq!((args.accounts.users, args.products, args.stock), (1000, 100, 1_000_000));
        let Command::Cart(args) = parse("loadtest cart --shoppers 50 --products 4 --stock 10 -d 2") else {
            panic!("not cart")
        };
        assert_eq!((args.accounts.users, args.products, args.stock), (50, 4, 10));
        assert!(matches!(args.load.stop().unwrap(), Stop::Duration(d) if d == Duration::from_secs(2)));
        assert!(Cli::try_parse_from(["loadtest", "cart", "--stock", "0"]).is_err());
    }

    #[test]
    fn chat_defaults_and_overrides() {
        let Command::Chat(args) = parse("loadtest chat") else { panic!("not chat") };
        assert_eq!((args.shoppers, args.agents, args.shops, args.rate), (9000, 1000, 100, 20000.0));
        assert!(!args.skip_reconnect && args.server_pid.is_none());
        let Command::Chat(args) = parse(
            "loadtest chat --shoppers 9 --agents 2 --shops 1 --rate 50 -d 2 --server-pid 7 --skip-reconnect",
        ) else {
            panic!("not chat")
        };
        assert_eq!((args.shoppers, args.agents, args.shops, args.duration), (9, 2, 1, 2.0));
        assert_eq!((args.server_pid, args.skip_reconnect), (Some(7), true));
    }

    #[test]
    fn requests_and_duration_conflict() {
        assert!(Cli::try_parse_from(["loadtest", "healthz", "-n", "5", "-d", "5"]).is_err());
    }
}
