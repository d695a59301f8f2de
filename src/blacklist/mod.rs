//! The IP/CIDR and account blacklist.
//!
//! Every request is checked against it, so it lives in memory: a snapshot
//! of the live entries behind a read-write lock, read without any database
//! or Redis round trip. A change reloads the snapshot on the node that made
//! it before answering, and is announced on the `blacklist:changed` channel
//! so every other node reloads too; a periodic reload
//! (`blacklist.refresh_secs`) catches missed messages. Expiry is also
//! checked at lookup time, so an entry stops applying the moment it expires.

pub mod handlers;
pub mod service;
pub mod store;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use ipnet::IpNet;
use redis::AsyncCommands;

use crate::auth::extract::client_ip;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::kv::Kv;
use crate::state::AppState;

/// The live entries at one moment.
#[derive(Default)]
struct Snapshot {
    nets: Vec<(IpNet, Option<DateTime<Utc>>)>,
    accounts: HashMap<i64, Option<DateTime<Utc>>>,
}

fn live(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    !matches!(expires_at, Some(at) if at <= now)
}

/// The in-memory blacklist of one node.
pub struct Blacklist {
    db: Pool,
    kv: Kv,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Blacklist {
    /// An empty blacklist; call [`reload`](Self::reload) before serving.
    pub fn new(db: Pool, kv: Kv) -> Self {
        Self { db, kv, snapshot: RwLock::new(Arc::new(Snapshot::default())) }
    }

    fn current(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a whole snapshot (it is only ever
        // replaced, never mutated), so reading through is safe.
        self.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether `ip` falls in a live blacklisted address or network.
    pub fn ip_blocked(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let now = Utc::now();
        self.current().nets.iter().any(|(net, expires_at)| net.contains(&ip) && live(*expires_at, now))
    }

    /// Whether the account is blacklisted right now.
    pub fn account_blocked(&self, user_id: i64) -> bool {
        self.current().accounts.get(&user_id).is_some_and(|expires_at| live(*expires_at, Utc::now()))
    }

    fn channel(&self) -> String {
        self.kv.key("blacklist:changed")
    }

    /// Reloads the live entries from Postgres.
    pub async fn reload(&self) -> ApiResult<()> {
        let client = self.db.get().await?;
        let mut snapshot = Snapshot::default();
        for entry in store::load_live(&client).await? {
            match (entry.ip_net, entry.user_id) {
                (Some(net), _) => match net.parse::<IpNet>() {
                    Ok(net) => snapshot.nets.push((net, entry.expires_at)),
                    Err(err) => tracing::warn!(net, error = %err, "unreadable blacklist network skipped"),
                },
                (None, Some(user_id)) => {
                    snapshot.accounts.insert(user_id, entry.expires_at);
                }
                (None, None) => {}
            }
        }
        *self.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    /// After a change: reload here, then tell every other node to reload.
    pub async fn changed(&self) -> ApiResult<()> {
        self.reload().await?;
        let _: () = self.kv.conn().publish(self.channel(), "reload").await?;
        Ok(())
    }

    /// Reloads whenever another node announces a change, resubscribing after
    /// any interruption (and reloading then, since messages may be lost).
    pub async fn listen_for_changes(self: Arc<Self>) {
        let channel = self.channel();
        self.kv.follow(&channel, async |_| self.reload_logged().await).await;
    }

    /// Reloads every `every`, so entries added or removed while a node
    /// missed a message still take effect.
    pub async fn refresh_periodically(self: Arc<Self>, every: Duration) {
        let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.reload_logged().await;
        }
    }

    async fn reload_logged(&self) {
        if let Err(err) = self.reload().await {
            tracing::warn!(error = %err, "blacklist reload failed; keeping the previous one");
        }
    }
}

/// Middleware: a request from a blacklisted IP gets 403 `blacklisted`
/// before any handler runs.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let blocked = req.app_data::<web::Data<AppState>>().is_some_and(|state| {
        client_ip(req.request(), state.settings.server.trust_forwarded_for)
            .is_some_and(|ip| state.blacklist.ip_blocked(ip))
    });
    if blocked {
        let response = ApiError::new(ErrorCode::Blacklisted).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}
