//! Address-book rules: at most [`MAX_ADDRESSES`] per user; a non-empty
//! book always has exactly one default (the first address becomes it,
//! making another the default unmarks the old one, deleting the default
//! promotes the most recently added other address).

use serde::Deserialize;
use utoipa::ToSchema;

use super::store::{self, AddressFields, AddressRow};
use crate::account;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::{self, Validator};

/// Most addresses in one book.
pub const MAX_ADDRESSES: i64 = 20;
const PHONE_MIN_CHARS: usize = 5;
const PHONE_MAX_CHARS: usize = 20;
const POSTAL_CODE_MAX_CHARS: usize = 12;

/// An address as the shopper writes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// 1-60 characters.
    pub recipient: String,
    /// 5-20 characters: digits, spaces, `+`, `-`, `(`, `)`.
    pub phone: String,
    /// Province / city / district, 1-100 characters.
    pub region: String,
    /// Street, building, room: 1-200 characters.
    pub detail: String,
    /// Up to 12 letters, digits, spaces or `-`; empty means none.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// `true` makes it the default. The first address is the default
    /// whatever this says; `false` cannot unmark the default (make another
    /// address the default instead).
    #[serde(default)]
    pub is_default: Option<bool>,
}

impl AddressInput {
    /// Trims and checks every field, reporting all problems at once.
    fn validated(&self) -> ApiResult<AddressFields<'_>> {
        let fields = AddressFields {
            recipient: self.recipient.trim(),
            phone: self.phone.trim(),
            region: self.region.trim(),
            detail: self.detail.trim(),
            postal_code: self.postal_code.as_deref().map(str::trim).filter(|code| !code.is_empty()),
        };
        let mut v = Validator::new();
        v.length("recipient", fields.recipient, 1, 60)
            .length("phone", fields.phone, PHONE_MIN_CHARS, PHONE_MAX_CHARS)
            .length("region", fields.region, 1, 100)
            .length("detail", fields.detail, 1, 200);
        if (PHONE_MIN_CHARS..=PHONE_MAX_CHARS).contains(&fields.phone.chars().count()) {
            v.check("phone", validate::is_phone(fields.phone), "invalid_format");
        }
        if let Some(code) = fields.postal_code {
            v.length("postal_code", code, 1, POSTAL_CODE_MAX_CHARS).check(
                "postal_code",
                code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-')),
                "invalid_format",
            );
        }
        v.finish()?;
        Ok(fields)
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such address")
}

/// Adds an address to the caller's book.
pub async fn create(state: &AppState, user_id: i64, input: &AddressInput) -> ApiResult<AddressRow> {
    let fields = input.validated()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    account::store::lock_user(&tx, user_id).await?;
    let count = store::count_for_user(&tx, user_id).await?;
    if count >= MAX_ADDRESSES {
        return Err(ApiError::new(ErrorCode::AddressBookFull)
            .with_message(format!("an address book holds at most {MAX_ADDRESSES} addresses")));
    }
    let is_default = count == 0 || input.is_default == Some(true);
    if is_default && count > 0 {
        store::clear_default(&tx, user_id).await?;
    }
    let row = store::insert(&tx, user_id, &fields, is_default).await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces one of the caller's addresses.
pub async fn update(
    state: &AppState,
    user_id: i64,
    address_id: i64,
    input: &AddressInput,
) -> ApiResult<AddressRow> {
    let fields = input.validated()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    account::store::lock_user(&tx, user_id).await?;
    let current = store::find_for_user(&tx, user_id, address_id).await?.ok_or_else(not_found)?;
    let is_default = match (current.is_default, input.is_default) {
        (true, Some(false)) => {
            return Err(ApiError::new(ErrorCode::InvalidState)
                .with_message("this is the default address; make another address the default instead"));
        }
        (false, Some(true)) => {
            store::clear_default(&tx, user_id).await?;
            true
        }
        (current, _) => current,
    };
    let row = store::update(&tx, user_id, address_id, &fields, is_default).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(row)
}

/// Makes one of the caller's addresses the default.
pub async fn make_default(state: &AppState, user_id: i64, address_id: i64) -> ApiResult<AddressRow> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    account::store::lock_user(&tx, user_id).await?;
    let current = store::find_for_user(&tx, user_id, address_id).await?.ok_or_else(not_found)?;
    if current.is_default {
        return Ok(current);
    }
    store::clear_default(&tx, user_id).await?;
    let row = store::mark_default(&tx, user_id, address_id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes one of the caller's addresses; if it was the default, the most
/// recently added other address becomes the default.
pub async fn delete(state: &AppState, user_id: i64, address_id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    account::store::lock_user(&tx, user_id).await?;
    let deleted = store::delete(&tx, user_id, address_id).await?.ok_or_else(not_found)?;
    if deleted.is_default {
        store::promote_newest(&tx, user_id).await?;
    }
    tx.commit().await?;
    Ok(())
}
