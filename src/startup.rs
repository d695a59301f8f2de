//! Builds the application from settings. `main`, the integration tests, the
//! loadtest and the benches all go through [`Application::build`], so what
//! is tested is what runs.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::auth::session::Sessions;
use crate::blacklist::Blacklist;
use crate::cart::engine::CartEngine;
use crate::chat::engine::ChatEngine;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::extractors;
use crate::kv::Kv;
use crate::metrics::Metrics;
use crate::payment::service::Payments;
use crate::seckill::engine::SeckillEngine;
use crate::seckill::ratelimit::IDLE_BUCKET_TTL;
use crate::state::AppState;
use crate::storefront::cache::ProductCache;
use crate::{account, blacklist, db, demo, order, payment, routes, telemetry};

/// A bound, not yet running server and the state behind it.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Connects to Postgres and Redis (failing with one clear line if either
    /// is unreachable), migrates, starts the background tasks and binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = connect(settings).await?;
        start_background_tasks(&state);
        let listener = TcpListener::bind((state.settings.server.host.as_str(), state.settings.server.port))
            .with_context(|| {
            format!("cannot listen on {}:{}", state.settings.server.host, state.settings.server.port)
        })?;
        let port = listener.local_addr()?.port();
        state.payments.set_own_url(format!("http://127.0.0.1:{port}"));
        let server = serve(listener, state.clone())?;
        tracing::info!(port, "rs-cms listening");
        Ok(Self { port, server, state })
    }

    /// Stops the server from elsewhere (as SIGTERM does): tests of a clean stop.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The port actually bound (useful when configured as 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests that inspect it.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests and
    /// gives unsold leased stock back to the shared pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await.context("server failed");
        self.state.seckill.hand_back_leases().await;
        self.state.chat.leave().await;
        served
    }
}

async fn connect(settings: Settings) -> anyhow::Result<AppState> {
    let pool = db::create_pool(&settings.database)?;
    db::ping(&pool, &settings.database).await?;
    db::migrate(&pool).await?;
    let kv = Kv::connect(&settings.redis).await?;
    let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
    let sessions = Arc::new(Sessions::new(pool.clone(), kv.clone(), &settings.auth));
    let blacklist = Arc::new(Blacklist::new(pool.clone(), kv.clone()));
    blacklist.reload().await.map_err(|e| anyhow::anyhow!("cannot load the blacklist: {e}"))?;
    let seckill = SeckillEngine::start(pool.clone(), &kv, &settings.seckill, metrics.clone()).await?;
    let carts = CartEngine::start(pool.clone(), kv.clone(), &settings.cart, &metrics);
    let chat = ChatEngine::start(pool.clone(), &kv, &settings.chat, &metrics);
    chat.ready(Duration::from_secs(5)).await?;
    let products = Arc::new(ProductCache::new(
        kv.clone(),
        Duration::from_millis(settings.catalog.detail_cache_ttl_ms),
        settings.catalog.detail_cache_capacity,
    ));
    let payments = Arc::new(Payments::new(pool.clone(), &settings.payments));
    Ok(AppState {
        payments,
        settings: Arc::new(settings),
        db: pool,
        kv,
        sessions,
        blacklist,
        metrics,
        seckill,
        carts,
        chat,
        products,
        clock: Arc::new(Clock::default()),
        leadership: Arc::default(),
    })
}

fn start_background_tasks(state: &AppState) {
    actix_web::rt::spawn(state.sessions.clone().listen_for_invalidations());
    actix_web::rt::spawn(state.blacklist.clone().listen_for_changes());
    actix_web::rt::spawn(state.products.clone().listen_for_invalidations());
    actix_web::rt::spawn(state.seckill.clone().follow_pools());
    actix_web::rt::spawn(state.carts.clone().follow_other_nodes());
    let every = Duration::from_secs(state.settings.blacklist.refresh_secs);
    actix_web::rt::spawn(state.blacklist.clone().refresh_periodically(every));
    let sweep_every = Duration::from_millis(state.settings.orders.sweep_interval_ms);
    actix_web::rt::spawn(state.leadership.clone().run(state.db.clone(), sweep_every));
    actix_web::rt::spawn(order::service::run_sweepers(state.clone(), sweep_every));
    let refund_every = Duration::from_secs(state.settings.payments.refund_retry_secs.max(1));
    actix_web::rt::spawn(payment::service::run_refund_worker(state.clone(), refund_every));
    let (engine, sessions, products) =
        (state.seckill.clone(), state.sessions.clone(), state.products.clone());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(IDLE_BUCKET_TTL);
        loop {
            tick.tick().await;
            engine.limiter.sweep(std::time::Instant::now());
            engine.prune_missing();
            engine.retire_ended(chrono::Utc::now());
            sessions.prune();
            products.prune();
        }
    });
}

fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let workers = state.settings.server.worker_count();
    let shutdown = state.settings.server.shutdown_timeout_secs;
    let data = web::Data::new(state.clone());
    let metrics = web::Data::from(state.metrics.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(metrics.clone())
            .app_data(extractors::json_config())
            .app_data(extractors::query_config())
            .app_data(extractors::path_config())
            // Outermost last: telemetry sees (and counts) blacklist refusals too.
            .wrap(from_fn(blacklist::guard))
            .wrap(from_fn(telemetry::observe))
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .workers(workers)
    // Small writes go out at once: with Nagle's algorithm a chat frame
    // written while an earlier one is unacknowledged waits for that ACK,
    // which the peer may delay by up to 40 ms.
    .tcp_nodelay(true)
    .backlog(4096)
    .keep_alive(Duration::from_secs(75))
    .shutdown_timeout(shutdown)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The `migrate` subcommand.
pub async fn migrate_only(settings: &Settings) -> anyhow::Result<()> {
    let pool = db::create_pool(&settings.database)?;
    db::ping(&pool, &settings.database).await?;
    db::migrate(&pool).await?;
    println!("migrations applied to {}", db::describe(&settings.database));
    Ok(())
}

/// The `create-admin` subcommand: creates the account (or promotes an
/// existing one with that username) and grants it the `admin` role.
pub async fn create_admin(
    settings: &Settings,
    username: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<()> {
    let pool = db::create_pool(&settings.database)?;
    db::ping(&pool, &settings.database).await?;
    db::migrate(&pool).await?;
    let user_id = account::service::create_admin(&pool, &settings.auth, username, email, password)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create admin: {e}"))?;
    println!("administrator {username} (id {user_id}) is ready");
    Ok(())
}

/// The `demo-data` subcommand: loads a few shops, categories and listed
/// products with stock (see [`crate::demo`]).
pub async fn load_demo_data(settings: &Settings) -> anyhow::Result<()> {
    let pool = db::create_pool(&settings.database)?;
    db::ping(&pool, &settings.database).await?;
    db::migrate(&pool).await?;
    let summary =
        demo::load(&pool, &settings.auth).await.map_err(|e| anyhow::anyhow!("cannot load demo data: {e}"))?;
    if summary.created {
        println!("demo data loaded: {} shops, {} listed products", summary.shops, summary.products);
    } else {
        println!("demo data is already loaded");
    }
    println!("merchant logins (password {}): {}", demo::DEMO_PASSWORD, summary.merchants.join(", "));
    Ok(())
}
