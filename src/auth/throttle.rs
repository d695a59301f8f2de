//! Failure counters for secrets people type (login passwords, payment
//! PINs), kept in Redis so guessing is slow across every node: a key that
//! reached the limit is refused with 429 until its window passes. Each
//! failure restarts the window, so a steady guesser stays locked out.

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

    /// `Ok` while every one of `keys` is under the limit, else a 429
    /// `rate_limited` with `message` and a Retry-After of the window.
    pub async fn check(&self, kv: &Kv, keys: &[&str], message: &str) -> ApiResult<()> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.get(*key);
        }
        let failures: Vec<Option<u32>> = pipe.query_async(&mut kv.conn()).await?;
        if failures.into_iter().any(|n| n.unwrap_or(0) >= self.max_failures) {
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

/// Forgets `key`'s failures, after the secret was right.
pub async fn clear(kv: &Kv, key: &str) -> ApiResult<()> {
    redis::cmd("DEL").arg(key).query_async::<()>(&mut kv.conn()).await?;
    Ok(())
}
