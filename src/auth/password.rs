//! argon2id password hashing. Hashing is deliberately slow (memory-hard), so
//! it runs on the blocking thread pool, never on an async worker.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult};

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

/// Hashes `password` into a PHC string (salt and parameters included).
pub async fn hash(settings: &AuthSettings, password: String) -> ApiResult<String> {
    let argon = hasher(settings)?;
    actix_web::web::block(move || {
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
    actix_web::web::block(move || {
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
    actix_web::web::block(move || {
        let salt = SaltString::generate(&mut OsRng);
        let _ = argon.hash_password(password.as_bytes(), &salt);
    })
    .await?;
    Ok(())
}
