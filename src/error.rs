//! The one error contract of the API: every failure is a JSON body
//! `{"code": "...", "message": "..."}` (plus `details` for per-field
//! validation errors) with a stable code and the right HTTP status.
//!
//! All codes are listed once, in [`ErrorCode`], with their status and default
//! message. 5xx bodies never carry internal text: the cause chain goes to the
//! log only.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use utoipa::ToSchema;

macro_rules! error_codes {
    ($($variant:ident => ($status:literal, $code:literal, $message:literal),)*) => {
        /// Every error code the API can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// The stable machine-readable code clients match on.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }
            /// The HTTP status that goes with the code.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => match StatusCode::from_u16($status) {
                        Ok(status) => status,
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    },)*
                }
            }
            /// The message used when the caller gives none.
            pub fn default_message(self) -> &'static str {
                match self { $(Self::$variant => $message,)* }
            }
            /// The whole table, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant,)*];
        }
    };
}

error_codes! {
    MalformedJson        => (400, "malformed_json", "the request body is not valid JSON"),
    InvalidQuery         => (400, "invalid_query", "the query string is invalid"),
    InvalidPath          => (400, "invalid_path", "a path parameter is invalid"),
    InvalidHeader        => (400, "invalid_header", "a request header is invalid"),
    PayloadTooLarge      => (413, "payload_too_large", "the request body is too large"),
    InvalidBody          => (422, "invalid_body", "the request body does not match the expected shape"),
    ValidationFailed     => (422, "validation_failed", "some fields are invalid"),
    Unauthenticated      => (401, "unauthenticated", "a valid bearer token is required"),
    InvalidCredentials   => (401, "invalid_credentials", "wrong username, email or password"),
    WrongPassword        => (403, "wrong_password", "the current password is wrong"),
    InvalidToken         => (422, "invalid_token", "the token is unknown, expired or already used"),
    Forbidden            => (403, "forbidden", "you lack the permission for this action"),
    AccountFrozen        => (403, "account_frozen", "this account is frozen"),
    Blacklisted          => (403, "blacklisted", "access denied"),
    NotFound             => (404, "not_found", "no such resource"),
    UsernameTaken        => (409, "username_taken", "that username is already registered"),
    EmailTaken           => (409, "email_taken", "that email is already registered"),
    Conflict             => (409, "conflict", "the resource already exists"),
    InvalidState         => (409, "invalid_state", "the resource is not in a state that allows this"),
    SoldOut              => (409, "sold_out", "the sale is sold out"),
    LimitReached         => (409, "limit_reached", "you have reached the per-user limit of this sale"),
    NotStarted           => (409, "not_started", "the sale has not started yet"),
    IdempotencyInProgress => (409, "idempotency_in_progress", "a request with this idempotency key is still being processed"),
    IdempotencyKeyReused => (422, "idempotency_key_reused", "this idempotency key was used for a different request"),
    PurchaseTokenInvalid => (403, "purchase_token_invalid", "a valid purchase token is required for this sale"),
    OrderExpired         => (409, "order_expired", "the order's payment window has passed"),
    ShopInactive         => (403, "shop_inactive", "the shop is not active (pending review, rejected or suspended)"),
    ShopNameTaken        => (409, "shop_name_taken", "a shop with that name already exists"),
    ApplicationPending   => (409, "application_pending", "you already have a shop application under review"),
    SkuCodeTaken         => (409, "sku_code_taken", "another active SKU of this shop has that code"),
    StaleRevision        => (409, "stale_revision", "the product changed since that revision; review the latest"),
    InsufficientStock    => (409, "insufficient_stock", "not enough stock for this change"),
    OrderPendingPayment  => (409, "order_pending_payment", "the order is waiting for payment"),
    OrderPaid            => (409, "order_paid", "the order is paid"),
    OrderShipped         => (409, "order_shipped", "the order has shipped"),
    OrderDelivered       => (409, "order_delivered", "the order has been delivered"),
    OrderCompleted       => (409, "order_completed", "the order is completed"),
    OrderCancelled       => (409, "order_cancelled", "the order is cancelled"),
    ItemUnavailable      => (409, "item_unavailable", "an item is no longer on sale"),
    ProviderUnavailable  => (422, "provider_unavailable", "that payment method is not available here"),
    AmountMismatch       => (422, "amount_mismatch", "the amount or currency does not match the payment"),
    InvalidSignature     => (401, "invalid_signature", "the request signature is missing, stale or wrong"),
    MembersOnly          => (403, "members_only", "this product is for verified members; verify your email first"),
    CartFull             => (409, "cart_full", "the cart holds the most lines allowed"),
    LineQuantityLimit    => (409, "line_quantity_limit", "a cart line cannot hold that many units"),
    AddressBookFull      => (409, "address_book_full", "the address book holds the most addresses allowed"),
    PayAccountsFull      => (409, "pay_accounts_full", "the most payment accounts allowed are saved"),
    ExceedsRefundable    => (409, "exceeds_refundable", "that is more than is left to refund of the order or line"),
    AfterSaleOpen        => (409, "after_sale_open", "a refund request on this order is still open"),
    ReturnWindowClosed   => (409, "return_window_closed", "the order is past its return window"),
    InsufficientBalance  => (409, "insufficient_balance", "the shop's balance does not cover that amount"),
    Ended                => (410, "ended", "the sale has ended"),
    RateLimited          => (429, "rate_limited", "too many requests; slow down"),
    Overloaded           => (503, "overloaded", "the service is overloaded; retry shortly"),
    Unavailable          => (503, "unavailable", "a backing service is unavailable; retry shortly"),
    Internal             => (500, "internal", "internal error"),
}

/// One invalid field of a request, reported in `details`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name as sent by the client.
    pub field: String,
    /// What is wrong with it, e.g. `too_long`, `required`, `invalid_format`.
    pub problem: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `sold_out`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field problems, present for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
}

/// An error answered to a client. Build it from a code; attach a message,
/// field details, a Retry-After, or (for 5xx) the cause for the log.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: Option<String>,
    details: Option<Vec<FieldError>>,
    retry_after_secs: Option<u64>,
    cause: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        Self { code, message: None, details: None, retry_after_secs: None, cause: None }
    }

    /// Replaces the default message (never used for 5xx bodies).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A 422 listing every invalid field.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let mut err = Self::new(ErrorCode::ValidationFailed);
        err.details = Some(fields);
        err
    }

    /// A 422 for one invalid field, found after the up-front checks (a
    /// referenced row that does not exist, say).
    pub fn invalid_field(field: &str, problem: &str) -> Self {
        Self::validation(vec![FieldError { field: field.to_owned(), problem: problem.to_owned() }])
    }

    /// A 500 whose cause is logged but never shown.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(ErrorCode::Internal);
        err.cause = Some(cause.into());
        err
    }

    /// A 503 for a backing service (Postgres, Redis) that did not answer.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(ErrorCode::Unavailable).retry_after(1);
        err.cause = Some(cause.into());
        err
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The per-field problems of a validation error.
    pub fn details(&self) -> &[FieldError] {
        self.details.as_deref().unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code.as_str())?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause:#}")?;
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::error!(code = self.code.as_str(), error = %self, "request failed");
        }
        let message = match (&self.message, status.is_server_error()) {
            (Some(message), false) => message.clone(),
            _ => self.code.default_message().to_owned(),
        };
        let mut response = HttpResponse::build(status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody { code: self.code.as_str(), message, details: self.details.clone() })
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::unavailable(err)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        let refused_text = [SqlState::CHARACTER_NOT_IN_REPERTOIRE, SqlState::UNTRANSLATABLE_CHARACTER];
        if err.is_closed() {
            Self::unavailable(err)
        } else if err.code().is_some_and(|code| refused_text.contains(code)) {
            // A NUL (or an escape of one) that validation let through: the
            // client's input, not a server fault; the statement wrote nothing.
            Self::new(ErrorCode::ValidationFailed).with_message("text may not contain NUL characters")
        } else {
            Self::internal(err)
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(err: redis::RedisError) -> Self {
        Self::unavailable(err)
    }
}

/// Result of a handler or service call.
pub type ApiResult<T> = Result<T, ApiError>;

/// Extractor configs that turn malformed JSON, query strings and path
/// parameters into the same error shape as everything else.
pub mod extractors {
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::web;

    use super::{ApiError, ErrorCode};

    /// Largest JSON body accepted.
    pub const JSON_LIMIT_BYTES: usize = 64 * 1024;

    /// JSON body errors: syntax -> 400, shape (missing/unknown field, wrong type) -> 422.
    pub fn json_config() -> web::JsonConfig {
        web::JsonConfig::default().limit(JSON_LIMIT_BYTES).error_handler(|err, _req| {
            let api = match &err {
                JsonPayloadError::Deserialize(e) if e.is_data() => {
                    ApiError::new(ErrorCode::InvalidBody).with_message(e.to_string())
                }
                JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::new(ErrorCode::PayloadTooLarge)
                }
                JsonPayloadError::ContentType => ApiError::new(ErrorCode::MalformedJson)
                    .with_message("expected Content-Type: application/json"),
                JsonPayloadError::Deserialize(e) => {
                    ApiError::new(ErrorCode::MalformedJson).with_message(e.to_string())
                }
                _ => ApiError::new(ErrorCode::MalformedJson),
            };
            api.into()
        })
    }

    /// Query string errors -> 400 `invalid_query`.
    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|err, _req| {
            let QueryPayloadError::Deserialize(e) = &err else {
                return ApiError::new(ErrorCode::InvalidQuery).into();
            };
            ApiError::new(ErrorCode::InvalidQuery).with_message(e.to_string()).into()
        })
    }

    /// Path parameter errors -> 400 `invalid_path`.
    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default().error_handler(|err, _req| {
            let PathError::Deserialize(e) = &err else {
                return ApiError::new(ErrorCode::InvalidPath).into();
            };
            ApiError::new(ErrorCode::InvalidPath).with_message(e.to_string()).into()
        })
    }
}
