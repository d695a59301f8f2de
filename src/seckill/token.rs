//! Short-lived signed purchase tokens (the "hidden URL"): issued to a
//! signed-in shopper only once a sale is live, bound to the event and the
//! user, and required by the buy endpoint for events that ask for them. Bots
//! that fire before the start cannot have one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, event_id: i64, user_id: i64, expires_unix: i64) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{event_id}:{user_id}:{expires_unix}").as_bytes());
    Some(mac)
}

/// `"{expires_unix}.{hex hmac}"` for this event and user.
pub fn issue(secret: &str, event_id: i64, user_id: i64, expires_unix: i64) -> Option<String> {
    let tag = mac(secret, event_id, user_id, expires_unix)?.finalize().into_bytes();
    Some(format!("{expires_unix}.{}", hex::encode(tag)))
}

/// Whether `token` was issued for this event and user and is unexpired.
/// The comparison is constant-time.
pub fn verify(secret: &str, event_id: i64, user_id: i64, token: &str, now_unix: i64) -> bool {
    let Some((expires, tag)) = token.split_once('.') else { return false };
    let (Ok(expires_unix), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else { return false };
    if expires_unix <= now_unix {
        return false;
    }
    mac(secret, event_id, user_id, expires_unix).is_some_and(|m| m.verify_slice(&tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_event_user_and_expiry() {
        let token = issue("s", 1, 2, 100).unwrap_or_default();
        assert!(verify("s", 1, 2, &token, 99));
        assert!(!verify("s", 1, 2, &token, 100), "expired");
        assert!(!verify("s", 1, 3, &token, 99), "other user");
        assert!(!verify("s", 9, 2, &token, 99), "other event");
        assert!(!verify("other", 1, 2, &token, 99), "other secret");
        assert!(!verify("s", 1, 2, "200.00", 99), "forged");
        assert!(!verify("s", 1, 2, "garbage", 99));
    }
}
