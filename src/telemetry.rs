//! Logging (`tracing`) set-up and the per-request middleware that assigns a
//! request id, opens a span and records Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;
use crate::metrics::Metrics;

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if settings.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Header carrying the request id, taken from the client or generated.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

fn request_id(req: &ServiceRequest) -> HeaderValue {
    if let Some(given) = req.headers().get(&REQUEST_ID_HEADER) {
        if given.len() <= 64 && given.to_str().is_ok() {
            return given.clone();
        }
    }
    // A process-local counter is unique enough to join log lines and costs
    // nothing on the hot path; the process id tells nodes apart.
    let n = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:x}-{n:x}", std::process::id());
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"))
}

/// Request id, span and metrics for every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let metrics = req.app_data::<actix_web::web::Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or(""), %method, path = req.path());
    let result = next.call(req).instrument(span.clone()).await;
    let mut res = result?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let status = res.status();
    if let Some(metrics) = metrics {
        metrics.observe_request(method.as_str(), &route, status.as_u16(), started.elapsed());
    }
    span.in_scope(|| tracing::debug!(status = status.as_u16(), elapsed_us = started.elapsed().as_micros() as u64, %route, "done"));
    res.headers_mut().insert(REQUEST_ID_HEADER, id);
    Ok(res)
}
