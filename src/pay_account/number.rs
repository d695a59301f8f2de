//! Account numbers by provider: what a plausible one looks like and how it
//! is masked. Only the mask is kept; the full number never leaves the
//! request. The checks catch typos, not every invalid address.

use crate::payment::gateway::ProviderName;
use crate::validate;

/// The kind of number a provider's accounts have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// A bank card: 12-19 digits (spaces allowed) passing the Luhn check.
    Card,
    /// An Alipay or WeChat Pay login: a phone number or an email.
    PhoneOrEmail,
    /// Bitcoin: base58 (`1…`, `3…`) or bech32 (`bc1…`), 26-62 characters.
    Bitcoin,
    /// Ethereum and ERC-20 tokens (USDT): `0x` and 40 hex digits.
    Ethereum,
    /// Dogecoin: `D` and base58, 25-34 characters.
    Dogecoin,
}

/// Longest accepted number (an email's limit); checked before the format.
pub const NUMBER_MAX_CHARS: usize = 254;
const PHONE_MAX_CHARS: usize = 20;
const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

impl AccountKind {
    /// The kind of `provider`'s accounts; `None` for an unknown provider.
    pub fn of(provider: &str) -> Option<Self> {
        Some(match ProviderName::parse(provider)? {
            ProviderName::Alipay | ProviderName::Wechat => Self::PhoneOrEmail,
            ProviderName::Bank | ProviderName::Sandbox => Self::Card,
            ProviderName::Btc => Self::Bitcoin,
            ProviderName::Eth | ProviderName::Usdt => Self::Ethereum,
            ProviderName::Doge => Self::Dogecoin,
        })
    }

    /// The masked form of `number` when it is a plausible account of this
    /// kind, else the problem to report (`invalid_format`, `invalid_checksum`).
    pub fn mask(self, number: &str) -> Result<String, &'static str> {
        match self {
            Self::Card => mask_card(number),
            Self::PhoneOrEmail if number.contains('@') => {
                validate::is_email(number).then(|| mask_email(number)).ok_or("invalid_format")
            }
            Self::PhoneOrEmail => (number.chars().count() <= PHONE_MAX_CHARS && validate::is_phone(number))
                .then(|| mask_phone(number))
                .ok_or("invalid_format"),
            Self::Bitcoin => wallet(number, is_bitcoin_address(number)),
            Self::Ethereum => wallet(
                number,
                number.len() == 42
                    && number
                        .strip_prefix("0x")
                        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit())),
            ),
            Self::Dogecoin => wallet(
                number,
                (25..=34).contains(&number.len()) && number.starts_with('D') && all_in(number, BASE58),
            ),
        }
    }
}

fn all_in(value: &str, charset: &str) -> bool {
    value.chars().all(|c| charset.contains(c))
}

fn is_bitcoin_address(number: &str) -> bool {
    if !(26..=62).contains(&number.len()) {
        return false;
    }
    // bech32 is all lower case or all upper case, never mixed.
    let bech32 = number.strip_prefix("bc1").is_some_and(|rest| all_in(rest, BECH32))
        || number.strip_prefix("BC1").is_some_and(|rest| all_in(&rest.to_ascii_lowercase(), BECH32));
    bech32 || (number.starts_with(['1', '3']) && all_in(number, BASE58))
}

/// A wallet address shown as its first 6 and last 4 characters.
fn wallet(number: &str, plausible: bool) -> Result<String, &'static str> {
    if !plausible {
        return Err("invalid_format");
    }
    // Every plausible address is ASCII and longer than 10 characters.
    Ok(format!("{}…{}", &number[..6], &number[number.len() - 4..]))
}

/// A card number shown as `**** **** **** 4242`.
fn mask_card(number: &str) -> Result<String, &'static str> {
    let digits: String = number.chars().filter(|c| *c != ' ').collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid_format");
    }
    if !luhn_valid(&digits) {
        return Err("invalid_checksum");
    }
    Ok(format!("**** **** **** {}", &digits[digits.len() - 4..]))
}

/// The Luhn check digit test of card numbers (ISO/IEC 7812): it catches
/// every single mistyped digit and most swapped neighbours.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(d) = c.to_digit(10) else { return false };
        sum += match (i % 2, d) {
            (0, d) => d,
            (_, d) if d > 4 => d * 2 - 9,
            (_, d) => d * 2,
        };
    }
    !digits.is_empty() && sum % 10 == 0
}

/// A phone number's digits shown as `138****0000`: the first 3 and last 4,
/// fewer for short numbers so that at least 4 stay hidden.
fn mask_phone(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let tail = n.saturating_sub(4).min(4);
    let head = n.saturating_sub(4 + tail).min(3);
    format!("{}****{}", &digits[..head], &digits[n - tail..])
}

/// An email shown as `a***@example.com`.
fn mask_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_valid_card_numbers_and_rejects_typos() {
        for valid in ["4242424242424242", "79927398713", "5555555555554444", "378282246310005"] {
            assert!(luhn_valid(valid), "{valid}");
        }
        for invalid in ["4242424242424241", "79927398710", "4242424242424224", "", "4242 4242"] {
            assert!(!luhn_valid(invalid), "{invalid}");
        }
    }

    #[test]
    fn cards_keep_only_their_last_four_digits() {
        assert_eq!(AccountKind::Card.mask("4242 4242 4242 4242"), Ok("**** **** **** 4242".to_owned()));
        assert_eq!(AccountKind::Card.mask("6011111111111117"), Ok("**** **** **** 1117".to_owned()));
        assert_eq!(AccountKind::Card.mask("4242 4242 4242 4241"), Err("invalid_checksum"));
        assert_eq!(AccountKind::Card.mask("4242-4242-4242-4242"), Err("invalid_format"));
        assert_eq!(AccountKind::Card.mask("42424242"), Err("invalid_format"));
    }

    #[test]
    fn phones_and_emails_keep_a_few_characters() {
        let kind = AccountKind::PhoneOrEmail;
        assert_eq!(kind.mask("13800000000"), Ok("138****0000".to_owned()));
        assert_eq!(kind.mask("+86 139 1234 5678"), Ok("861****5678".to_owned()));
        assert_eq!(kind.mask("12345678"), Ok("****5678".to_owned()));
        assert_eq!(kind.mask("12345"), Ok("****5".to_owned()));
        assert_eq!(kind.mask("alice@example.com"), Ok("a***@example.com".to_owned()));
        assert_eq!(kind.mask("call me"), Err("invalid_format"));
        assert_eq!(kind.mask("alice@nowhere"), Err("invalid_format"));
    }

    #[test]
    fn wallets_keep_their_first_six_and_last_four_characters() {
        let eth = "0x52908400098527886E0F7030069857D2E4169EE7";
        assert_eq!(AccountKind::Ethereum.mask(eth), Ok("0x5290…9EE7".to_owned()));
        assert_eq!(AccountKind::Ethereum.mask(&eth[..41]), Err("invalid_format"));
        assert_eq!(AccountKind::Ethereum.mask(&eth.replace('E', "G")), Err("invalid_format"));
        for btc in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        ] {
            assert!(AccountKind::Bitcoin.mask(btc).is_ok(), "{btc}");
        }
        assert_eq!(
            AccountKind::Bitcoin.mask("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
            Ok("1A1zP1…vfNa".to_owned())
        );
        // 0, O, I and l are not base58; b is not bech32.
        assert_eq!(AccountKind::Bitcoin.mask("1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0O"), Err("invalid_format"));
        assert_eq!(
            AccountKind::Bitcoin.mask("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdb"),
            Err("invalid_format")
        );
        assert_eq!(
            AccountKind::Dogecoin.mask("DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L"),
            Ok("DH5yai…mr7L".to_owned())
        );
        assert_eq!(AccountKind::Dogecoin.mask("XH5yaieqoZN36fDVciNyRueRGvGLR3mr7L"), Err("invalid_format"));
    }

    #[test]
    fn only_known_providers_have_a_kind() {
        assert_eq!(AccountKind::of("usdt"), Some(AccountKind::Ethereum));
        assert_eq!(AccountKind::of("sandbox"), Some(AccountKind::Card));
        assert_eq!(AccountKind::of("paypal"), None);
        assert_eq!(AccountKind::of("Alipay"), None);
    }
}
