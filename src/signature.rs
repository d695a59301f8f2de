//! Signed server-to-server requests (payment gateway callbacks, carrier
//! webhooks): the sender puts a Unix timestamp in one header and, in
//! another, the hex HMAC-SHA256 of `"{timestamp}.{raw body}"` under a
//! shared secret. The receiver checks both, so a body cannot be altered and
//! an old request cannot be replayed outside a short window.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` signs `body` at `timestamp` under `secret`, and the
/// timestamp is within `max_age_secs` of `now_unix`. Constant-time.
pub fn verify(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
    max_age_secs: u64,
) -> bool {
    let Ok(sent_at) = timestamp.parse::<i64>() else { return false };
    if now_unix.abs_diff(sent_at) > max_age_secs {
        return false;
    }
    let (Ok(tag), Ok(mut mac)) = (hex::decode(signature), Hmac::<Sha256>::new_from_slice(secret.as_bytes()))
    else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_secret_time_and_body() {
        let signature = sign("s", "1000", b"{}");
        assert!(verify("s", "1000", &signature, b"{}", 1100, 300));
        assert!(!verify("s", "1000", &signature, b"{} ", 1100, 300), "body changed");
        assert!(!verify("other", "1000", &signature, b"{}", 1100, 300), "other secret");
        assert!(!verify("s", "1000", &signature, b"{}", 1400, 300), "too old");
        assert!(!verify("s", "1001", &signature, b"{}", 1100, 300), "timestamp changed");
        assert!(!verify("s", "x", "zz", b"{}", 1100, 300));
    }
}
