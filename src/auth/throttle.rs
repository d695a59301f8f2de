//! Failure counters for secrets people type (login passwords, payment
//! PINs), kept in Redis so guessing is slow across every node: a key that
//! reached the limit is refused with 429 until its window passes. Each
//! attempt restarts the window, so a steady guesser stays locked out.

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

    /// Counts an attempt against each of `keys` before the secret is
    /// checked, and refuses it with a 429 `rate_limited` (with `message`
    /// and a Retry-After of the window) when any key is then over the
    /// limit. Counted first, so guesses sent in parallel cannot all pass
    /// one look at the count while the slow hash runs. A wrong secret
    /// leaves its attempt counted; a right one calls [`clear`] or
    /// [`give_back`].
    pub async fn attempt(&self, kv: &Kv, keys: &[&str], message: &str) -> ApiResult<()> {
        let window = i64::try_from(self.window_secs).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.incr(*key, 1).expire(*key, window).ignore();
        }
        let attempts: Vec<u64> = pipe.query_async(&mut kv.conn()).await?;
        if attempts.into_iter().any(|n| n > u64::from(self.max_failures)) {
            return Err(ApiError::new(ErrorCode::RateLimited)
                .with_message(message)
                .retry_after(self.window_secs));
        }
        Ok(())
    }
}

/// Takes one attempt back from `key` (the secret was right), never below
/// zero.
pub async fn give_back(kv: &Kv, key: &str) -> ApiResult<()> {
    redis::Script::new("if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end return 0")
        .key(key)
        .invoke_async::<i64>(&mut kv.conn())
        .await?;
    Ok(())
}

/// Forgets `key`'s failures, after the secret was right.
pub async fn clear(kv: &Kv, key: &str) -> ApiResult<()> {
    redis::cmd("DEL").arg(key).query_async::<()>(&mut kv.conn()).await?;
    Ok(())
}
