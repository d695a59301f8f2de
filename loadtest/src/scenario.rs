//! The scenarios: what is prepared, which phases run in which order, and how
//! their results become one report.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio_postgres::NoTls;

use crate::cli::{AccountArgs, AccountsArgs, CartArgs, FlashSaleArgs, HealthzArgs, ProductDetailArgs};
use crate::client::{pooled, Buyer, Call, Targets};
use crate::drive::{self, Load, Mode, Stop};
use crate::outcome::Outcome;
use crate::prepare::{self, EventSpec};
use crate::report::{PhaseReport, Ratio, Recorder, Report};
use crate::verdict::{self, Observed, Verdict};

/// Stock of each `product-detail` SKU: shown on the page, never bought.
const DETAIL_STOCK: i32 = 1000;

/// `loadtest healthz`: the baseline alone.
pub async fn healthz(args: HealthzArgs) -> anyhow::Result<Report> {
    let targets = Targets::parse(&args.load.target)?;
    let load = args.load.load(args.load.stop()?)?;
    let (healthz, _) = healthz_phase(&targets, load).await?;
    Ok(Report::new(vec![healthz], vec![], vec![]))
}

/// `loadtest accounts`: prepare accounts, then measure /healthz, the
/// authenticated profile read and logins.
pub async fn accounts(args: AccountsArgs) -> anyhow::Result<Report> {
    let targets = Targets::parse(&args.load.target)?;
    let load = args.load.load(args.load.stop()?)?;
    let (_db, _http, accounts) = prepared(&args.accounts, &targets, load.timeout).await?;
    let profile = Call::profile(&targets, accounts.buyers.clone())?;
    let (mut phases, ratio) = against_healthz(&targets, load, "profile", "GET /api/me", profile).await?;
    let login_load = Load {
        mode: Mode::Closed { concurrency: args.accounts.login_concurrency.max(1) },
        stop: Stop::Requests(args.login_requests),
        ..load
    };
    let login_call = Call::login(&targets, &accounts.buyer_names, &accounts.password)?;
    let (login, _) = phase("login", "POST /api/auth/login".to_owned(), login_call, login_load).await?;
    phases.push(login);
    Ok(Report::new(phases, vec![ratio], vec![]))
}

/// `loadtest product-detail`: prepare listed products, then measure
/// /healthz and the product page read spread over them.
pub async fn product_detail(args: ProductDetailArgs) -> anyhow::Result<Report> {
    let targets = Targets::parse(&args.load.target)?;
    let load = args.load.load(args.load.stop()?)?;
    let db = connect(&args.database.database_url).await?;
    let started = Instant::now();
    let catalog =
        prepare::products(&pooled(1, load.timeout), &db, targets.first(), args.products, DETAIL_STOCK)
            .await?;
    let n = catalog.product_ids.len();
    progress(format_args!(
        "prepared {n} listed products ({}_*) in {:.1} s",
        catalog.prefix,
        started.elapsed().as_secs_f64()
    ));
    let detail =
        Call::get_each(&targets, catalog.product_ids.iter().map(|id| format!("/api/products/{id}")))?;
    let request = format!("GET /api/products/{{id}} over {n} products");
    let (phases, ratio) = against_healthz(&targets, load, "detail", &request, detail).await?;
    Ok(Report::new(phases, vec![ratio], vec![]))
}

/// `loadtest cart`: prepare shoppers with an address each and listed,
/// stocked products; measure /healthz, cart adds and buy-now checkouts
/// under the same load; check the carts after the adds and the stock after
/// the checkouts.
pub async fn cart(args: CartArgs) -> anyhow::Result<Report> {
    let targets = Targets::parse(&args.load.target)?;
    let load = args.load.load(args.load.stop()?)?;
    let (db, http, accounts) = prepared(&args.accounts, &targets, load.timeout).await?;
    let started = Instant::now();
    let shoppers = prepare::addresses(&db, &accounts.buyers).await?;
    let catalog = prepare::products(&http, &db, targets.first(), args.products, args.stock).await?;
    let skus = catalog.sku_ids.len();
    progress(format_args!(
        "prepared {} addresses and {} listed products with {skus} SKUs of stock {} ({}_*) in {:.1} s",
        shoppers.len(),
        catalog.product_ids.len(),
        args.stock,
        catalog.prefix,
        started.elapsed().as_secs_f64()
    ));

    let (healthz, _) = healthz_phase(&targets, load).await?;
    let add_call = Call::cart_add(&targets, accounts.buyers.clone(), &catalog.sku_ids)?;
    let add_request = format!("POST /api/cart/lines, 1 unit of one of {skus} SKUs");
    let (add, adds, add_ratio) = measured_against(&healthz, "add", add_request, add_call, load).await?;
    let user_ids: Vec<i64> = accounts.buyers.iter().map(|b| b.user_id).collect();
    let cart_verdict =
        verdict::check_carts(&db, "add", &user_ids, skus, adds.adds(), adds.count(Outcome::Error)).await?;

    let checkout_call = Call::checkout(&targets, shoppers, catalog.sku_ids.clone())?;
    let checkout_request = format!("POST /api/checkout, buy now 1 unit of one of {skus} SKUs");
    let (checkout, checkouts, checkout_ratio) =
        measured_against(&healthz, "checkout", checkout_request, checkout_call, load).await?;
    let observed = Observed {
        acks: checkouts.acks(),
        sold_out: checkouts.count(Outcome::InsufficientStock),
        // `Call::checkout` buys one unit per request.
        quantity: 1,
    };
    let stock_verdict =
        verdict::check_stock(&db, "checkout", &catalog.sku_ids, args.stock, &observed).await?;
    Ok(Report::new(
        vec![healthz, add, checkout],
        vec![add_ratio, checkout_ratio],
        vec![cart_verdict, stock_verdict],
    ))
}

/// Connects to the server's database.
async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (db, connection) =
        tokio_postgres::connect(url, NoTls).await.with_context(|| format!("connecting to {url}"))?;
    actix_web::rt::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("loadtest: database connection: {e}");
        }
    });
    Ok(db)
}

/// Connects to the database and prepares logged-in accounts.
async fn prepared(
    args: &AccountArgs,
    targets: &Targets,
    timeout: std::time::Duration,
) -> anyhow::Result<(tokio_postgres::Client, awc::Client, prepare::Accounts)> {
    let db = connect(&args.database.database_url).await?;
    let http = pooled(args.login_concurrency, timeout);
    let started = Instant::now();
    let accounts = prepare::accounts(&http, &db, targets.first(), args.users, args.login_concurrency).await?;
    progress(format_args!(
        "prepared {} buyers and an admin ({}_*) in {:.1} s",
        accounts.buyers.len(),
        accounts.prefix,
        started.elapsed().as_secs_f64()
    ));
    Ok((db, http, accounts))
}

/// `loadtest flash-sale`: prepare, measure /healthz, drive the buys (and the
/// naive path), then check the database.
pub async fn flash_sale(args: FlashSaleArgs) -> anyhow::Result<Report> {
    let targets = Targets::parse(&args.load.target)?;
    let load = args.load.load(args.load.stop()?)?;
    let healthz_load = args.load.load(args.healthz_stop()?)?;
    let (db, http, accounts) = prepared(&args.accounts, &targets, load.timeout).await?;
    let base = targets.first();

    let mut spec = EventSpec {
        sku_id: args.sku_id,
        title: format!("loadtest {}", accounts.prefix),
        price_cents: args.price_cents,
        stock: args.stock,
        per_user_limit: args.per_user_limit,
        sale_secs: args.sale_secs,
        payment_window_secs: args.payment_window_secs,
        user_rate_per_sec: Some(args.user_rate),
        ip_rate_per_sec: Some(args.ip_rate),
    };
    let event_id = match args.event_id {
        Some(id) => {
            let state = verdict::snapshot(&db, id).await?;
            spec.stock = state.total_stock;
            spec.per_user_limit = state.per_user_limit;
            id
        }
        None => prepare::create_event(&http, base, &accounts.admin, &spec).await?,
    };
    progress(format_args!("event {event_id}: stock {}, per-user limit {}", spec.stock, spec.per_user_limit));
    let naive_event = if args.compare_naive {
        spec.title.push_str(" naive");
        let id = prepare::create_event(&http, base, &accounts.admin, &spec).await?;
        progress(format_args!("naive event {id}: same parameters"));
        Some(id)
    } else {
        None
    };

    let (healthz, _) = healthz_phase(&targets, healthz_load).await?;
    let buys =
        BuyLoad { targets: &targets, db: &db, load, buyers: &accounts.buyers, quantity: args.quantity };
    let (buy, buy_verdict) = buys.run("buy", event_id, "orders").await?;
    let mut ratios = vec![Ratio::new("buy / healthz req/s", buy.throughput, healthz.throughput)];
    let mut phases = vec![healthz, buy];
    let mut verdicts = vec![buy_verdict];
    if let Some(naive_event) = naive_event {
        let (naive, naive_verdict) = buys.run("naive", naive_event, "orders-naive").await?;
        let (healthz, buy) = (&phases[0], &phases[1]);
        ratios.extend([
            Ratio::new("naive / healthz req/s", naive.throughput, healthz.throughput),
            Ratio::new("buy / naive req/s", buy.throughput, naive.throughput),
            Ratio::new(
                "buy / naive created/s",
                buy.throughput_of(Outcome::Created),
                naive.throughput_of(Outcome::Created),
            ),
        ]);
        phases.push(naive);
        verdicts.push(naive_verdict);
    }
    Ok(Report::new(phases, ratios, verdicts))
}

/// Measures /healthz, then `call` (phase `name`, sending `request`) under
/// the same load, and the ratio of their throughputs.
async fn against_healthz(
    targets: &Targets,
    load: Load,
    name: &str,
    request: &str,
    call: Call,
) -> anyhow::Result<(Vec<PhaseReport>, Ratio)> {
    let (healthz, _) = healthz_phase(targets, load).await?;
    let (measured, _, ratio) = measured_against(&healthz, name, request.to_owned(), call, load).await?;
    Ok((vec![healthz, measured], ratio))
}

/// Runs phase `name` (sending `request`) and the ratio of its throughput to
/// the `/healthz` phase's, which ran under the same load.
async fn measured_against(
    healthz: &PhaseReport,
    name: &str,
    request: String,
    call: Call,
    load: Load,
) -> anyhow::Result<(PhaseReport, Recorder, Ratio)> {
    let (measured, recorder) = phase(name, request, call, load).await?;
    let ratio = Ratio::new(format!("{name} / healthz req/s"), measured.throughput, healthz.throughput);
    Ok((measured, recorder, ratio))
}

/// The /healthz phase.
async fn healthz_phase(targets: &Targets, load: Load) -> anyhow::Result<(PhaseReport, Recorder)> {
    phase("healthz", "GET /healthz".to_owned(), Call::healthz(targets)?, load).await
}

/// Runs one phase and summarises it.
async fn phase(
    name: &str,
    request: String,
    call: Call,
    load: Load,
) -> anyhow::Result<(PhaseReport, Recorder)> {
    progress(format_args!("{name}: {request} ({})", load.describe()));
    let result = drive::run(load, Arc::new(call)).await?;
    let report = PhaseReport::new(name, request, load.describe(), &result.recorder, result.elapsed);
    Ok((report, result.recorder))
}

/// What the buy phases share.
struct BuyLoad<'a> {
    targets: &'a Targets,
    db: &'a tokio_postgres::Client,
    load: Load,
    buyers: &'a [Buyer],
    quantity: i32,
}

impl BuyLoad<'_> {
    /// Drives buys at `/api/seckill/events/{event_id}/{route}` and checks the event.
    async fn run(&self, name: &str, event_id: i64, route: &str) -> anyhow::Result<(PhaseReport, Verdict)> {
        let before = verdict::snapshot(self.db, event_id).await?;
        let path = format!("/api/seckill/events/{event_id}/{route}");
        let call = Call::buy(self.targets, &path, self.buyers.to_vec(), self.quantity)?;
        let (report, recorder) = phase(name, format!("POST {path}"), call, self.load).await?;
        let observed = Observed {
            acks: recorder.acks(),
            sold_out: recorder.count(Outcome::SoldOut),
            quantity: self.quantity,
        };
        let verdict = verdict::check(self.db, name, event_id, &before, &observed).await?;
        Ok((report, verdict))
    }
}

/// A progress line on stderr, so `--json` output on stdout stays clean.
fn progress(line: std::fmt::Arguments<'_>) {
    eprintln!("loadtest: {line}");
}
