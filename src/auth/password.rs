//! argon2id password hashing. Hashing is deliberately slow (memory-hard), so
//! it never runs on an async worker: it goes to a small dedicated pool of
//! hashing threads (one per core at most). That bounds both the CPU a login
//! flood can take from the rest of the server and the memory the allocator
//! keeps: each hash needs `argon2_memory_kib`, and a thread's allocator arena
//! keeps it after the hash, so few threads means little retained memory.

use std::sync::OnceLock;
use std::thread;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};

fn hasher(settings: &AuthSettings) -> ApiResult<Argon2<'static>> {
    let params = Params::new(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        settings.argon2_parallelism,
        None,
    )
    .map_err(|e| ApiError::internal(anyhow::anyhow!("bad argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes that may wait for a thread; beyond this a login is refused with
/// 503 at once instead of queueing without bound behind a login flood.
pub const MAX_WAITING_HASHES: usize = 256;

/// Runs `work` on the hashing pool and waits for its result.
async fn on_hashing_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    static POOL: OnceLock<crossbeam_channel::Sender<Job>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(MAX_WAITING_HASHES);
        let threads = thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = thread::Builder::new().name(format!("argon2-{n}")).spawn(move || {
                for job in queue {
                    job();
                }
            });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        jobs
    });
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // The request may have gone (client timeout): skip the work then.
        if !reply.is_closed() {
            let _ = reply.send(work());
        }
    });
    pool.try_send(job).map_err(|err| match err {
        crossbeam_channel::TrySendError::Full(_) => ApiError::new(ErrorCode::Overloaded).retry_after(1),
        crossbeam_channel::TrySendError::Disconnected(_) => {
            ApiError::internal(anyhow::anyhow!("password hashing pool is gone"))
        }
    })?;
    answer.await.map_err(|_| ApiError::internal(anyhow::anyhow!("password hashing job was dropped")))
}

/// Hashes `password` into a PHC string (salt and parameters included).
pub async fn hash(settings: &AuthSettings, password: String) -> ApiResult<String> {
    let argon = hasher(settings)?;
    on_hashing_pool(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing failed: {e}")))
    })
    .await?
}

/// Checks `password` against a stored PHC string. The parameters are read
/// from the hash itself, so old hashes keep verifying after a cost change.
pub async fn verify(password: String, stored_hash: String) -> ApiResult<bool> {
    on_hashing_pool(move || {
        let parsed = PasswordHash::new(&stored_hash)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await?
}

/// A hash of a random password, verified against when the account does not
/// exist so that a login costs the same either way (no user enumeration by timing).
pub async fn dummy_verify(settings: &AuthSettings, password: String) -> ApiResult<()> {
    let argon = hasher(settings)?;
    on_hashing_pool(move || {
        let salt = SaltString::generate(&mut OsRng);
        let _ = argon.hash_password(password.as_bytes(), &salt);
    })
    .await
}
