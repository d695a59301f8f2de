//! Login sessions.
//!
//! A session is an opaque random bearer token (256 bits). Only its SHA-256
//! is stored: in Redis under `session:{hash}` with the session's expiry, and
//! in the set `user_sessions:{user_id}` so a user's sessions can be listed
//! and revoked together.
//!
//! Authenticating must not cost a Redis round trip on the hot path (the
//! flash-sale buy path depends on it), so a validated session and its
//! principal stay in an in-process cache for a short time. Every revocation
//! (logout, password change, freeze, blacklist, role change) is published on
//! the `auth:invalidate` channel; every node drops the entries it names
//! within milliseconds. If the subscription breaks, the cache is cleared and
//! the cache TTL bounds staleness until it is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use deadpool_postgres::Pool;
use rand::RngCore;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::kv::{Kv, Signal};

/// Who is calling: the account behind a valid session, with its permissions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    /// The session's id (hash of its token), to revoke "this" session.
    pub session_id: String,
    pub roles: Vec<String>,
    permissions: HashSet<String>,
    /// The account row as of loading; every write to it refreshes the cache
    /// on every node, so `GET /api/me` is answered from memory.
    pub account: crate::account::store::UserRow,
    /// `account` as rendered for `GET /api/me`, made once per cached principal.
    pub rendered_account: std::sync::OnceLock<actix_web::web::Bytes>,
}

impl Principal {
    /// Whether any of the principal's roles grants `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// The principal's permissions, sorted.
    pub fn permissions(&self) -> Vec<String> {
        let mut all: Vec<String> = self.permissions.iter().cloned().collect();
        all.sort();
        all
    }
}

/// What Redis holds for one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRecord {
    user_id: i64,
    created_at: DateTime<Utc>,
    ip: String,
    user_agent: String,
}

/// One of the caller's sessions, as listed to them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// Id to revoke it with (the hash of its token, never the token).
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// A newly created session: the token is shown to the client once.
pub struct NewSession {
    pub token: String,
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

struct CachedPrincipal {
    principal: Arc<Principal>,
    /// The cache TTL from caching, but never past the session's own expiry.
    fresh_until: Instant,
}

/// Creates, validates, caches and revokes sessions.
pub struct Sessions {
    db: Pool,
    kv: Kv,
    ttl: Duration,
    cache_ttl: Duration,
    /// Keyed by the raw SHA-256 of the token: no hex string is built on a hit.
    cache: DashMap<TokenDigest, CachedPrincipal>,
    /// Bumped by every invalidation. A principal loaded while it changed may
    /// predate a logout or freeze, so it is not cached.
    generation: AtomicU64,
}

/// SHA-256 of a token.
type TokenDigest = [u8; 32];

fn token_digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Hex SHA-256 of a token: the only form in which a token is stored.
pub fn token_id(token: &str) -> String {
    hex::encode(token_digest(token))
}

impl Sessions {
    /// A session service over the given pool and Redis.
    pub fn new(db: Pool, kv: Kv, settings: &AuthSettings) -> Self {
        Self {
            db,
            kv,
            ttl: Duration::from_secs(settings.session_ttl_secs),
            cache_ttl: Duration::from_secs(settings.session_cache_ttl_secs),
            cache: DashMap::new(),
            generation: AtomicU64::new(0),
        }
    }

    fn session_key(&self, id: &str) -> String {
        self.kv.key(format_args!("session:{id}"))
    }

    fn user_sessions_key(&self, user_id: i64) -> String {
        self.kv.key(format_args!("user_sessions:{user_id}"))
    }

    fn channel(&self) -> String {
        self.kv.key("auth:invalidate")
    }

    /// Starts a session for `user_id` and returns its token; the session is
    /// cached on this node at once.
    pub async fn create(&self, user_id: i64, ip: &str, user_agent: &str) -> ApiResult<NewSession> {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let digest = token_digest(&token);
        let id = hex::encode(digest);
        let now = Utc::now();
        let record = SessionRecord {
            user_id,
            created_at: now,
            ip: ip.to_owned(),
            user_agent: user_agent.chars().take(256).collect(),
        };
        let json = serde_json::to_string(&record).map_err(ApiError::internal)?;
        let ttl = self.ttl.as_secs();
        let user_key = self.user_sessions_key(user_id);
        redis::pipe()
            .atomic()
            .set_ex(self.session_key(&id), json, ttl)
            .sadd(&user_key, &id)
            .expire(&user_key, i64::try_from(ttl).unwrap_or(i64::MAX))
            .query_async::<()>(&mut self.kv.conn())
            .await?;
        let expires_at = now + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX));
        // Warm the cache: the client's next request (often a burst of them
        // when a sale opens) is then answered without Redis or Postgres.
        let generation = self.generation.load(Ordering::Acquire);
        let principal = Arc::new(self.load_principal(user_id, &id).await?);
        self.cache_if_current(digest, principal, now, generation);
        Ok(NewSession { token, id, expires_at })
    }

    /// Resolves a bearer token to its principal: from the cache when fresh,
    /// else from Redis and Postgres. Frozen accounts are refused.
    pub async fn authenticate(&self, token: &str) -> ApiResult<Arc<Principal>> {
        let digest = token_digest(token);
        if let Some(hit) = self.cache.get(&digest) {
            if Instant::now() < hit.fresh_until {
                return Ok(hit.principal.clone());
            }
        }
        let id = hex::encode(digest);
        let generation = self.generation.load(Ordering::Acquire);
        let raw: Option<String> = self.kv.conn().get(self.session_key(&id)).await?;
        let record: SessionRecord = match raw.map(|r| serde_json::from_str(&r)) {
            Some(Ok(record)) => record,
            _ => {
                self.cache.remove(&digest);
                return Err(ErrorCode::Unauthenticated.into());
            }
        };
        let principal = Arc::new(self.load_principal(record.user_id, &id).await?);
        self.cache_if_current(digest, principal.clone(), record.created_at, generation);
        Ok(principal)
    }

    /// Caches a principal loaded since `generation`, unless an invalidation
    /// came in meanwhile (it might have been meant for this very session).
    fn cache_if_current(
        &self,
        digest: TokenDigest,
        principal: Arc<Principal>,
        created_at: DateTime<Utc>,
        generation: u64,
    ) {
        let entry = self.cache_entry(principal, created_at);
        self.cache.insert(digest, entry);
        if self.generation.load(Ordering::Acquire) != generation {
            self.cache.remove(&digest);
        }
    }

    /// Drops cache entries past their freshness (called periodically so
    /// sessions that are never used again do not stay in memory).
    pub fn prune(&self) {
        let now = Instant::now();
        self.cache.retain(|_, cached| now < cached.fresh_until);
    }

    /// A cache entry for a session created at `created_at`: fresh for the
    /// cache TTL, but a session about to expire is not kept past its expiry.
    fn cache_entry(&self, principal: Arc<Principal>, created_at: DateTime<Utc>) -> CachedPrincipal {
        let session_left = (created_at
            + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::TimeDelta::MAX)
            - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
        CachedPrincipal { principal, fresh_until: Instant::now() + self.cache_ttl.min(session_left) }
    }

    async fn load_principal(&self, user_id: i64, session_id: &str) -> ApiResult<Principal> {
        let client = self.db.get().await?;
        let row = crate::account::store::find_principal(&client, user_id)
            .await?
            .ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
        if row.account.status == "frozen" {
            return Err(ErrorCode::AccountFrozen.into());
        }
        Ok(Principal {
            user_id,
            username: row.account.username.clone(),
            session_id: session_id.to_owned(),
            roles: row.roles,
            permissions: row.permissions.into_iter().collect(),
            account: row.account,
            rendered_account: std::sync::OnceLock::new(),
        })
    }

    /// Lists the live sessions of a user; `current` marks the caller's.
    pub async fn list(&self, user_id: i64, current: &str) -> ApiResult<Vec<SessionInfo>> {
        let mut conn = self.kv.conn();
        let ids: Vec<String> = conn.smembers(self.user_sessions_key(user_id)).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.session_key(id)).collect();
        let records: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (id, raw) in ids.into_iter().zip(records) {
            match raw.and_then(|r| serde_json::from_str::<SessionRecord>(&r).ok()) {
                Some(rec) => live.push(SessionInfo {
                    current: id == current,
                    id,
                    created_at: rec.created_at,
                    ip: rec.ip,
                    user_agent: rec.user_agent,
                }),
                None => expired.push(id),
            }
        }
        if !expired.is_empty() {
            let _: () = conn.srem(self.user_sessions_key(user_id), expired).await?;
        }
        live.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(live)
    }

    /// Revokes one session of `user_id`. Returns false if it was not theirs.
    pub async fn revoke(&self, user_id: i64, session_id: &str) -> ApiResult<bool> {
        let mut conn = self.kv.conn();
        let removed: i64 = conn.srem(self.user_sessions_key(user_id), session_id).await?;
        if removed == 0 {
            return Ok(false);
        }
        let _: () = conn.del(self.session_key(session_id)).await?;
        self.broadcast(&format!("session:{session_id}")).await?;
        Ok(true)
    }

    /// Revokes every session of `user_id`, except `keep` when given.
    pub async fn revoke_all(&self, user_id: i64, keep: Option<&str>) -> ApiResult<()> {
        let mut conn = self.kv.conn();
        let ids: Vec<String> = conn.smembers(self.user_sessions_key(user_id)).await?;
        let doomed: Vec<&String> = ids.iter().filter(|id| Some(id.as_str()) != keep).collect();
        if !doomed.is_empty() {
            let keys: Vec<String> = doomed.iter().map(|id| self.session_key(id)).collect();
            redis::pipe()
                .atomic()
                .del(keys)
                .srem(self.user_sessions_key(user_id), doomed)
                .query_async::<()>(&mut conn)
                .await?;
        }
        self.broadcast(&format!("user:{user_id}")).await?;
        Ok(())
    }

    /// Drops every cached principal of `user_id` on every node (after a
    /// change of roles or status that keeps the sessions).
    pub async fn refresh_user(&self, user_id: i64) -> ApiResult<()> {
        self.broadcast(&format!("user:{user_id}")).await
    }

    /// Drops the whole cache on every node (after a role's permissions change).
    pub async fn refresh_all(&self) -> ApiResult<()> {
        self.broadcast("all").await
    }

    async fn broadcast(&self, what: &str) -> ApiResult<()> {
        self.apply_invalidation(what);
        let _: () = self.kv.conn().publish(self.channel(), what).await?;
        Ok(())
    }

    fn apply_invalidation(&self, what: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(id) = what.strip_prefix("session:") {
            let mut digest = TokenDigest::default();
            if hex::decode_to_slice(id, &mut digest).is_ok() {
                self.cache.remove(&digest);
            }
        } else if let Some(user) = what.strip_prefix("user:").and_then(|u| u.parse::<i64>().ok()) {
            self.cache.retain(|_, cached| cached.principal.user_id != user);
        } else {
            self.cache.clear();
        }
    }

    /// Listens for invalidations from every node until the process ends,
    /// resubscribing (and clearing the cache) after any interruption.
    pub async fn listen_for_invalidations(self: Arc<Self>) {
        let channel = self.channel();
        self.kv
            .follow(&channel, async |signal| match signal {
                // Anything missed while unsubscribed is unknown: start clean.
                Signal::Resync => self.cache.clear(),
                Signal::Message(what) => self.apply_invalidation(&what),
            })
            .await;
    }
}
