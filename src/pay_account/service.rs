//! Saved-account rules: at most [`MAX_PAY_ACCOUNTS`] per user; numbers are
//! checked and masked per provider before anything is written; a payment
//! password is a six-digit PIN hashed like a login password, and wrong
//! PINs are throttled per account like failed logins.

use serde::Deserialize;
use utoipa::ToSchema;

use super::number::{AccountKind, NUMBER_MAX_CHARS};
use super::store::{self, NewPayAccount, PayAccountRow};
use crate::account;
use crate::auth::password;
use crate::auth::throttle::{self, FailureLimit};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::Validator;

/// Most payment accounts one user can save.
pub const MAX_PAY_ACCOUNTS: i64 = 10;
/// Digits of a payment password.
pub const PIN_DIGITS: usize = 6;

/// A payment account as the shopper enters it. Deliberately not `Debug`:
/// the full number and the PIN must never reach a log.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayAccountInput {
    /// `alipay`, `wechat`, `bank`, `btc`, `eth`, `usdt`, `doge` or `sandbox`.
    pub provider: String,
    /// 1-60 characters.
    pub holder_name: String,
    /// `bank`, `sandbox`: a card number of 12-19 digits (spaces allowed)
    /// passing the Luhn check; `alipay`, `wechat`: a phone number or an
    /// email; `btc`: a base58 or bech32 address; `eth`, `usdt`: `0x` and 40
    /// hex digits; `doge`: a `D…` base58 address. Only a masked form is kept.
    pub account_number: String,
    /// An optional payment password: six digits.
    #[serde(default)]
    pub payment_password: Option<String>,
}

impl PayAccountInput {
    /// Trims and checks every field, reporting all problems at once; the
    /// number comes back masked.
    fn validated(&self) -> ApiResult<NewPayAccount<'_>> {
        let provider = self.provider.trim();
        let holder_name = self.holder_name.trim();
        let number = self.account_number.trim();
        let mut v = Validator::new();
        let kind = AccountKind::of(provider);
        v.check("provider", kind.is_some(), "invalid_value")
            .length("holder_name", holder_name, 1, 60)
            .length("account_number", number, 1, NUMBER_MAX_CHARS);
        let mut account_masked = String::new();
        if let Some(kind) = kind.filter(|_| (1..=NUMBER_MAX_CHARS).contains(&number.chars().count())) {
            match kind.mask(number) {
                Ok(masked) => account_masked = masked,
                Err(problem) => v.problem("account_number", problem),
            }
        }
        if let Some(pin) = &self.payment_password {
            validate_pin(&mut v, "payment_password", pin);
        }
        v.finish()?;
        Ok(NewPayAccount { provider, holder_name, account_masked })
    }
}

/// Payment passwords are exactly [`PIN_DIGITS`] digits.
fn is_pin(pin: &str) -> bool {
    pin.len() == PIN_DIGITS && pin.bytes().all(|b| b.is_ascii_digit())
}

fn validate_pin(v: &mut Validator, field: &str, pin: &str) {
    v.check(field, is_pin(pin), "invalid_format");
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such payment account")
}

fn wrong_password(message: &str) -> ApiError {
    ApiError::new(ErrorCode::WrongPassword).with_message(message)
}

/// Saves a payment account for the caller.
pub async fn create(state: &AppState, user_id: i64, input: &PayAccountInput) -> ApiResult<PayAccountRow> {
    let account = input.validated()?;
    let pin_hash = match &input.payment_password {
        Some(pin) => Some(password::hash(&state.settings.auth, pin.clone()).await?),
        None => None,
    };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    account::store::lock_user(&tx, user_id).await?;
    if store::count_for_user(&tx, user_id).await? >= MAX_PAY_ACCOUNTS {
        return Err(ApiError::new(ErrorCode::PayAccountsFull)
            .with_message(format!("at most {MAX_PAY_ACCOUNTS} payment accounts can be saved")));
    }
    let row = store::insert(&tx, user_id, &account, pin_hash.as_deref()).await?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes one of the caller's payment accounts.
pub async fn delete(state: &AppState, user_id: i64, account_id: i64) -> ApiResult<()> {
    let client = state.db.get().await?;
    if !store::delete(&client, user_id, account_id).await? {
        return Err(not_found());
    }
    Ok(())
}

/// Sets an account's payment password, or changes it: then `current` must
/// be the present one (it is ignored while there is none).
pub async fn set_payment_password(
    state: &AppState,
    user_id: i64,
    account_id: i64,
    current: Option<String>,
    new: String,
) -> ApiResult<()> {
    let mut v = Validator::new();
    validate_pin(&mut v, "new_password", &new);
    v.finish()?;
    let stored = find_payment_password_hash(state, user_id, account_id).await?;
    if let Some(stored) = stored {
        let current =
            current.ok_or_else(|| wrong_password("the current payment password is needed to change it"))?;
        check_pin(state, account_id, stored, current).await?;
    }
    let hash = password::hash(&state.settings.auth, new).await?;
    let client = state.db.get().await?;
    if !store::set_payment_password_hash(&client, user_id, account_id, &hash).await? {
        return Err(not_found());
    }
    Ok(())
}

/// Checks the payment password of one of `user_id`'s saved accounts before
/// paying from it: 404 `not_found` for an unknown or another user's
/// account, 403 `wrong_password` on a mismatch or when the account has no
/// payment password, 429 `rate_limited` after the login limit of failures
/// (`auth.login_max_failures` per `auth.login_failure_window_secs`) for
/// that account.
pub async fn verify_payment_password(
    state: &AppState,
    user_id: i64,
    account_id: i64,
    password: String,
) -> ApiResult<()> {
    let stored = find_payment_password_hash(state, user_id, account_id)
        .await?
        .ok_or_else(|| wrong_password("this payment account has no payment password; set one first"))?;
    check_pin(state, account_id, stored, password).await
}

/// The account's payment password hash (`None` when it has none); 404 if
/// it is not the user's. The connection goes back before any hashing.
async fn find_payment_password_hash(
    state: &AppState,
    user_id: i64,
    account_id: i64,
) -> ApiResult<Option<String>> {
    let client = state.db.get().await?;
    store::find_payment_password_hash(&client, user_id, account_id).await?.ok_or_else(not_found)
}

/// Verifies `pin` against `stored`, counting failures per account so a
/// six-digit PIN cannot be guessed; a success clears the count.
async fn check_pin(state: &AppState, account_id: i64, stored: String, pin: String) -> ApiResult<()> {
    let key = state.kv.key(format_args!("pay_pin_fail:account:{account_id}"));
    let limit = FailureLimit::login(&state.settings.auth);
    // A PIN of the wrong shape cannot match: no need to hash it.
    let check = async { Ok(is_pin(&pin) && password::verify(pin, stored).await?) };
    let message = "too many wrong payment passwords; try again later";
    let right = limit.checked(&state.kv, &key, &[], message, check).await?;
    if !right {
        return Err(wrong_password("the payment password is wrong"));
    }
    throttle::clear(&state.kv, &key).await
}
