//! Failure counters for secrets people type (login passwords, payment
//! PINs), kept in Redis so guessing is slow across every node: a key that
//! reached the limit is refused with 429 until its window passes. Each
//! attempt restarts the window, so a steady guesser stays locked out.

use std::future::Future;

use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::kv::Kv;

/// How many failures a key may have, within how long.
#[derive(Debug, Clone, Copy)]
pub struct FailureLimit {
    pub max_failures: u32,
    pub window_secs: u64,
}

impl FailureLimit {
    /// The configured login limit (`auth.login_max_failures` per
    /// `auth.login_failure_window_secs`).
    pub fn login(auth: &AuthSettings) -> Self {
        Self { max_failures: auth.login_max_failures, window_secs: auth.login_failure_window_secs }
    }

    /// Runs `check` (checking a secret) as one attempt at `key` (the
    /// secret's own counter: an account, a payment account), counted
    /// before the check, so guesses at one secret sent in parallel cannot
    /// all pass one look at the count while the slow hash runs. Refused
    /// with a 429 `rate_limited` (with `message` and a Retry-After of the
    /// window) when `key` is then over the limit or any of `shared`
    /// (counters many accounts' attempts share, such as the client's IP)
    /// has reached it; `shared` keys are only looked at, so many people
    /// logging in at once from one address are not refused for being in
    /// flight together. An attempt whose check failed to run (the hash
    /// queue was full, the database failed) is given back: it was no
    /// guess. A wrong secret leaves its attempt counted (record it against
    /// `shared` with [`record_failure`](Self::record_failure)); a right
    /// one [`clear`]s `key`.
    pub async fn checked<T>(
        &self,
        kv: &Kv,
        key: &str,
        shared: &[&str],
        message: &str,
        check: impl Future<Output = ApiResult<T>>,
    ) -> ApiResult<T> {
        self.attempt(kv, key, shared, message).await?;
        let outcome = check.await;
        if outcome.is_err() {
            give_back(kv, key).await;
        }
        outcome
    }

    async fn attempt(&self, kv: &Kv, key: &str, shared: &[&str], message: &str) -> ApiResult<()> {
        let window = i64::try_from(self.window_secs).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.incr(key, 1).expire(key, window).ignore();
        for other in shared {
            pipe.get(*other);
        }
        let (attempts, failures): (u64, Vec<Option<u64>>) = {
            let mut counts: Vec<Option<u64>> = pipe.query_async(&mut kv.conn()).await?;
            let attempts = if counts.is_empty() { 0 } else { counts.remove(0).unwrap_or(0) };
            (attempts, counts)
        };
        let limit = u64::from(self.max_failures);
        if attempts > limit || failures.into_iter().any(|n| n.unwrap_or(0) >= limit) {
            return Err(ApiError::new(ErrorCode::RateLimited)
                .with_message(message)
                .retry_after(self.window_secs));
        }
        Ok(())
    }

    /// Counts one failure against each of `keys`.
    pub async fn record_failure(&self, kv: &Kv, keys: &[&str]) -> ApiResult<()> {
        let window = i64::try_from(self.window_secs).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.incr(*key, 1).expire(*key, window);
        }
        pipe.query_async::<()>(&mut kv.conn()).await?;
        Ok(())
    }
}

/// Takes back the attempt counted on `key`, never below zero.
async fn give_back(kv: &Kv, key: &str) {
    let script = "if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end return 0";
    if let Err(err) = redis::Script::new(script).key(key).invoke_async::<i64>(&mut kv.conn()).await {
        tracing::warn!(error = %err, "cannot give back a login attempt");
    }
}

/// Forgets `key`'s failures, after the secret was right.
pub async fn clear(kv: &Kv, key: &str) -> ApiResult<()> {
    redis::cmd("DEL").arg(key).query_async::<()>(&mut kv.conn()).await?;
    Ok(())
}
