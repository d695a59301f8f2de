//! Prometheus metrics: HTTP requests and latency per route and status, pool
//! usage, the batch sizes, commit latency and queues of the flash-sale and
//! cart writers, live cart actors, how often the product-detail cache
//! answers, and the chat's writer, connections and cross-node traffic.

use std::sync::Arc;
use std::time::Duration;

use actors::writer::BatchReport;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets of rows per group-commit batch.
const BATCH_ROW_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// Buckets of seconds per group commit.
const COMMIT_BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

/// The process's metric families, registered once and shared by reference.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    /// Connections of the Postgres pool by state (`size`, `available`, `waiting`).
    pub db_pool: IntGaugeVec,
    /// Rows per group-commit batch.
    pub batch_rows: Histogram,
    /// Seconds one group commit took.
    pub commit_seconds: Histogram,
    /// Reservations waiting for the writer.
    pub writer_queue_depth: IntGauge,
    /// Flash-sale requests refused, by reason.
    pub seckill_rejected: IntCounterVec,
    /// Product-detail reads by `result`: `hit` (served from memory, or
    /// from another request's load) or `miss` (this request loaded it).
    pub product_detail_cache: IntCounterVec,
    /// Product details held in memory.
    pub product_cache_entries: IntGauge,
    /// Rows per cart group-commit batch.
    pub cart_batch_rows: Histogram,
    /// Seconds one cart group commit took.
    pub cart_commit_seconds: Histogram,
    /// Cart changes waiting for the writer.
    pub cart_writer_queue_depth: IntGauge,
    /// Cart actors registered on this node.
    pub cart_actors: IntGauge,
    /// Flash-sale events with a stock actor on this node.
    pub seckill_live_events: IntGauge,
    /// Gateway callbacks and carrier webhooks refused for a bad or stale
    /// signature (a spike means forgery attempts or a wrong secret).
    pub callbacks_refused: IntCounter,
    /// Messages and read receipts per chat group-commit batch.
    pub chat_batch_rows: Histogram,
    /// Seconds one chat group commit took.
    pub chat_commit_seconds: Histogram,
    /// Chat WebSocket connections open on this node.
    pub chat_connections: IntGauge,
    /// Chat requests this node forwarded to the owner of their conversation.
    pub chat_forwarded: IntCounter,
    /// Chat events not handed to the other nodes (the publishing queue was
    /// full, or Redis failed twice): their receivers there get a message
    /// when the next one of its conversation arrives, or on resume.
    pub chat_events_dropped: IntCounter,
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("rscms".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP latency by method, route and status")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["method", "route", "status"],
        )?;
        let db_pool =
            IntGaugeVec::new(Opts::new("db_pool_connections", "Postgres pool connections"), &["state"])?;
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        };
        let batch_rows = histogram("seckill_batch_rows", "Rows per group-commit batch", BATCH_ROW_BUCKETS)?;
        let commit_seconds = histogram("seckill_commit_seconds", "Seconds per group commit", COMMIT_BUCKETS)?;
        let cart_batch_rows =
            histogram("cart_batch_rows", "Rows per cart group-commit batch", BATCH_ROW_BUCKETS)?;
        let cart_commit_seconds =
            histogram("cart_commit_seconds", "Seconds per cart group commit", COMMIT_BUCKETS)?;
        let cart_writer_queue_depth =
            IntGauge::new("cart_writer_queue_depth", "Cart changes waiting for the writer")?;
        let cart_actors = IntGauge::new("cart_actors", "Cart actors registered on this node")?;
        let seckill_live_events =
            IntGauge::new("seckill_live_events", "Flash-sale events with a stock actor on this node")?;
        registry.register(Box::new(seckill_live_events.clone()))?;
        let writer_queue_depth =
            IntGauge::new("seckill_writer_queue_depth", "Reservations waiting for the writer")?;
        let seckill_rejected = IntCounterVec::new(
            Opts::new("seckill_rejected_total", "Refused buy requests by reason"),
            &["reason"],
        )?;
        let product_detail_cache = IntCounterVec::new(
            Opts::new("product_detail_cache_total", "Product-detail reads by cache result (hit or miss)"),
            &["result"],
        )?;
        let product_cache_entries =
            IntGauge::new("product_detail_cache_entries", "Product details held in memory")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        registry.register(Box::new(batch_rows.clone()))?;
        registry.register(Box::new(commit_seconds.clone()))?;
        registry.register(Box::new(writer_queue_depth.clone()))?;
        registry.register(Box::new(seckill_rejected.clone()))?;
        registry.register(Box::new(product_detail_cache.clone()))?;
        registry.register(Box::new(product_cache_entries.clone()))?;
        registry.register(Box::new(cart_batch_rows.clone()))?;
        registry.register(Box::new(cart_commit_seconds.clone()))?;
        registry.register(Box::new(cart_writer_queue_depth.clone()))?;
        registry.register(Box::new(cart_actors.clone()))?;
        let callbacks_refused = IntCounter::new(
            "signed_callbacks_refused_total",
            "Gateway callbacks and carrier webhooks refused for a bad or stale signature",
        )?;
        registry.register(Box::new(callbacks_refused.clone()))?;
        let chat_batch_rows =
            histogram("chat_batch_rows", "Rows per chat group-commit batch", BATCH_ROW_BUCKETS)?;
        let chat_commit_seconds =
            histogram("chat_commit_seconds", "Seconds per chat group commit", COMMIT_BUCKETS)?;
        let chat_connections = IntGauge::new("chat_connections", "Chat WebSocket connections on this node")?;
        let chat_forwarded = IntCounter::new(
            "chat_forwarded_total",
            "Chat requests forwarded to the node owning their conversation",
        )?;
        let chat_events_dropped = IntCounter::new(
            "chat_events_dropped_total",
            "Chat events not published to other nodes (queue full, or Redis failed twice)",
        )?;
        registry.register(Box::new(chat_batch_rows.clone()))?;
        registry.register(Box::new(chat_commit_seconds.clone()))?;
        registry.register(Box::new(chat_connections.clone()))?;
        registry.register(Box::new(chat_forwarded.clone()))?;
        registry.register(Box::new(chat_events_dropped.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            db_pool,
            batch_rows,
            commit_seconds,
            writer_queue_depth,
            seckill_rejected,
            product_detail_cache,
            product_cache_entries,
            cart_batch_rows,
            cart_commit_seconds,
            cart_writer_queue_depth,
            cart_actors,
            seckill_live_events,
            callbacks_refused,
            chat_batch_rows,
            chat_commit_seconds,
            chat_connections,
            chat_forwarded,
            chat_events_dropped,
        })
    }

    /// Records one finished HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_latency.with_label_values(&labels).observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A group-commit writer's `on_batch` hook recording each batch's rows and
/// commit time.
pub fn batch_observer(rows: Histogram, seconds: Histogram) -> Arc<dyn Fn(BatchReport) + Send + Sync> {
    Arc::new(move |report: BatchReport| {
        rows.observe(report.rows as f64);
        seconds.observe(report.elapsed.as_secs_f64());
    })
}
