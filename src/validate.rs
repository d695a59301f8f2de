//! Field validation that reports every problem at once as a 422 with one
//! entry per field, before anything is written.

use crate::error::{ApiError, FieldError};

/// Collects field problems; `finish` turns them into one error.
#[derive(Default)]
pub struct Validator {
    problems: Vec<FieldError>,
}

impl Validator {
    /// An empty validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn problem(&mut self, field: &str, problem: &str) {
        self.problems.push(FieldError { field: field.to_owned(), problem: problem.to_owned() });
    }

    /// Checks that `value` has between `min` and `max` characters, none of
    /// them NUL (which Postgres text cannot hold).
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.chars().count();
        if value.contains('\0') {
            self.problem(field, "invalid_character");
        } else if n < min {
            self.problem(field, if n == 0 { "required" } else { "too_short" });
        } else if n > max {
            self.problem(field, "too_long");
        }
        self
    }

    /// Checks `rule` and records `problem` when it is false.
    pub fn check(&mut self, field: &str, rule: bool, problem: &str) -> &mut Self {
        if !rule {
            self.problem(field, problem);
        }
        self
    }

    /// `Ok(())` when nothing was wrong, else a 422 listing every problem.
    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(std::mem::take(&mut self.problems)))
        }
    }
}

/// Whether JSON text holds a `\u0000` escape (in a string or a key):
/// valid JSON, but `jsonb` refuses it, so it must be caught before a
/// statement (or a whole group-commit batch) fails on it.
pub fn json_has_nul(json: &str) -> bool {
    let mut bytes = json.as_bytes().iter();
    while let Some(&byte) = bytes.next() {
        if byte == b'\\' {
            // The escaped character; `u` is followed by four hex digits.
            if bytes.next() == Some(&b'u') && bytes.as_slice().starts_with(b"0000") {
                return true;
            }
        }
    }
    false
}

/// A plausible email address: one `@`, a dot in the domain, no spaces.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// Usernames: letters, digits, `_`, `-`, `.`; starting with a letter.
pub fn is_username(value: &str) -> bool {
    value.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// An http(s) URL, for avatars and images.
pub fn is_http_url(value: &str) -> bool {
    (value.starts_with("https://") || value.starts_with("http://")) && !value.contains(char::is_whitespace)
}

/// Serde helper for PATCH bodies: tells an absent field (`None`) from an
/// explicit `null` (`Some(None)`, which clears the value). Use with
/// `#[serde(default, deserialize_with = "validate::nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Phone numbers: 5-20 characters of digits, spaces, `+`, `-`, `(`, `)`,
/// with at least five digits.
pub fn is_phone(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')'))
        && value.chars().filter(char::is_ascii_digit).count() >= 5
}

/// An optional header of 1-`max_len` visible ASCII characters (an
/// `Idempotency-Key`, a purchase token); anything else is a 400
/// `invalid_header`.
pub fn header_value(
    headers: &actix_web::http::header::HeaderMap,
    name: &str,
    max_len: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    match value.to_str() {
        Ok(text)
            if !text.is_empty() && text.len() <= max_len && text.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(text.to_owned()))
        }
        _ => Err(ApiError::new(crate::error::ErrorCode::InvalidHeader)
            .with_message(format!("{name} must be 1-{max_len} visible ASCII characters"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_escape_is_found_in_strings_and_keys_but_an_escaped_backslash_is_text() {
        assert!(json_has_nul(r#"{"text":"a\u0000b"}"#));
        assert!(json_has_nul(r#"{"a\u0000":1}"#));
        assert!(!json_has_nul(r#"{"text":"a\\u0000b"}"#));
        assert!(json_has_nul(r#"{"text":"a\\\u0000b"}"#));
        assert!(!json_has_nul(r#"{"text":"\u1000 \u00e9 \\"}"#));
    }
}
