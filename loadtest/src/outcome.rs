//! What one request came to: the classification of an HTTP answer (or of a
//! failure to get one) into the outcomes the report counts.

use serde::{Deserialize, Serialize};

/// The outcome of one request. The order here is the order of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 200: the `/healthz` answer, a page, a cart.
    Ok,
    /// 201: an order (or a checkout's orders) was acknowledged (committed).
    Created,
    /// 409 `sold_out`.
    SoldOut,
    /// 409 `insufficient_stock`: a checkout line's SKU has too few units left.
    InsufficientStock,
    /// 409 `limit_reached`: the buyer holds the per-user limit already.
    LimitReached,
    /// 409 `not_started`.
    NotStarted,
    /// 410 `ended`.
    Ended,
    /// 429 `rate_limited`.
    RateLimited,
    /// 503 `overloaded`.
    Overloaded,
    /// Anything else: other statuses, transport failures, timeouts.
    Error,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Created,
        Outcome::SoldOut,
        Outcome::InsufficientStock,
        Outcome::LimitReached,
        Outcome::NotStarted,
        Outcome::Ended,
        Outcome::RateLimited,
        Outcome::Overloaded,
        Outcome::Error,
    ];

    /// Position in [`Outcome::ALL`], for per-outcome arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in text and JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Created => "created",
            Outcome::SoldOut => "sold_out",
            Outcome::InsufficientStock => "insufficient_stock",
            Outcome::LimitReached => "limit_reached",
            Outcome::NotStarted => "not_started",
            Outcome::Ended => "ended",
            Outcome::RateLimited => "rate_limited",
            Outcome::Overloaded => "overloaded",
            Outcome::Error => "error",
        }
    }
}

/// The part of an error body we look at; borrowed, so classifying a refusal
/// allocates nothing.
#[derive(Deserialize)]
struct ErrorCode<'a> {
    #[serde(borrow)]
    code: &'a str,
}

/// Classifies an answer by status and, for refusals, the body's `code`.
/// A refusal whose code does not match its documented status is an error.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    match status {
        200 => return Outcome::Ok,
        201 => return Outcome::Created,
        _ => {}
    }
    let Ok(ErrorCode { code }) = serde_json::from_slice::<ErrorCode<'_>>(body) else {
        return Outcome::Error;
    };
    match (status, code) {
        (409, "sold_out") => Outcome::SoldOut,
        (409, "insufficient_stock") => Outcome::InsufficientStock,
        (409, "limit_reached") => Outcome::LimitReached,
        (409, "not_started") => Outcome::NotStarted,
        (410, "ended") => Outcome::Ended,
        (429, "rate_limited") => Outcome::RateLimited,
        (503, "overloaded") => Outcome::Overloaded,
        _ => Outcome::Error,
    }
}

/// A short key naming an unexpected answer, for the report's error breakdown:
/// `"500 internal"`, `"404"`.
pub fn error_key(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorCode<'_>>(body) {
        Ok(ErrorCode { code }) => format!("{status} {code}"),
        Err(_) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn classifies_documented_refusals() {
        let body = |code: &str| format!(r#"{{"code":"{code}","message":"x"}}"#).into_bytes();
        assert_eq!(classify(409, &body("sold_out")), Outcome::SoldOut);
        assert_eq!(classify(409, &body("insufficient_stock")), Outcome::InsufficientStock);
        assert_eq!(classify(409, &body("limit_reached")), Outcome::LimitReached);
        assert_eq!(classify(409, &body("not_started")), Outcome::NotStarted);
        assert_eq!(classify(410, &body("ended")), Outcome::Ended);
        assert_eq!(classify(429, &body("rate_limited")), Outcome::RateLimited);
        assert_eq!(classify(503, &body("overloaded")), Outcome::Overloaded);
    }

    #[test]
    fn success_statuses_ignore_the_body() {
        assert_eq!(classify(200, b"{\"status\":\"ok\"}"), Outcome::Ok);
        assert_eq!(classify(201, b""), Outcome::Created);
    }

    #[test]
    fn mismatched_or_unknown_answers_are_errors() {
        assert_eq!(classify(503, br#"{"code":"sold_out"}"#), Outcome::Error);
        assert_eq!(classify(500, br#"{"code":"internal"}"#), Outcome::Error);
        assert_eq!(classify(409, b"not json"), Outcome::Error);
        assert_eq!(classify(404, b""), Outcome::Error);
    }

    #[test]
    fn error_keys_name_status_and_code() {
        assert_eq!(error_key(500, br#"{"code":"internal"}"#), "500 internal");
        assert_eq!(error_key(502, b"<html>"), "502");
    }

    #[test]
    fn indexes_follow_report_order() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i);
        }
    }
}
