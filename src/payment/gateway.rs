//! Payment gateways behind one interface: collect a payment, ask about it,
//! read its signed callback, refund it. The seed's methods (Alipay, WeChat
//! Pay, bank cards, BTC, ETH, USDT, DOGE) are provider names; the sandbox
//! gateway ships working and behaves like a real one: its own books, a pay
//! page the shopper visits, a signed callback to rs-cms, refunds.

use std::future::Future;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::signature;

/// A payment method, as shoppers choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    Alipay,
    Wechat,
    Bank,
    Btc,
    Eth,
    Usdt,
    Doge,
    Sandbox,
}

impl ProviderName {
    /// Every provider name.
    pub const ALL: [ProviderName; 8] =
        [Self::Alipay, Self::Wechat, Self::Bank, Self::Btc, Self::Eth, Self::Usdt, Self::Doge, Self::Sandbox];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alipay => "alipay",
            Self::Wechat => "wechat",
            Self::Bank => "bank",
            Self::Btc => "btc",
            Self::Eth => "eth",
            Self::Usdt => "usdt",
            Self::Doge => "doge",
            Self::Sandbox => "sandbox",
        }
    }

    /// The provider named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|provider| provider.as_str() == name)
    }
}

/// What a gateway hands back when asked to collect: its id of the payment
/// and where the shopper pays (a page, or the payload of a QR code).
#[derive(Debug, Clone)]
pub struct Collection {
    pub provider_payment_id: String,
    pub pay_url: String,
}

/// How a payment ended, as the gateway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// A callback whose signature checked out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    pub provider_payment_id: String,
    /// The gateway's id of the money movement: the same for a redelivery.
    pub txn_id: String,
    pub outcome: Outcome,
    pub amount_cents: i64,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
}

/// A signed callback as received: raw body and the signature headers.
pub struct SignedCallback<'a> {
    pub timestamp: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// What every gateway does.
pub trait Gateway {
    /// Opens a payment of `amount_cents` for our `reference`.
    fn collect(
        &self,
        reference: &str,
        amount_cents: i64,
        currency: &str,
    ) -> impl Future<Output = ApiResult<Collection>>;

    /// Checks a callback's signature (401 `invalid_signature`) and reads it.
    fn read_callback(&self, signed: &SignedCallback<'_>, now: DateTime<Utc>) -> ApiResult<Callback>;

    /// Sends `amount_cents` of a settled payment back; the gateway's refund
    /// id. `key` is our idempotency key: asking again with the same key
    /// refunds once and answers the same id.
    fn refund(
        &self,
        provider_payment_id: &str,
        amount_cents: i64,
        key: &str,
    ) -> impl Future<Output = ApiResult<String>>;
}

fn random_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::thread_rng().gen();
    format!("{prefix}_{}", hex::encode(bytes))
}

/// The sandbox gateway. Its books live in `sandbox_gateway_payments`, as a
/// real gateway keeps its own; it talks to rs-cms only through signed
/// HTTP callbacks, like a real one.
#[derive(Clone)]
pub struct Sandbox {
    pub db: Pool,
    pub secret: String,
    pub max_age_secs: u64,
}

/// Path of the sandbox's pay page for a payment.
pub const SANDBOX_PAY_PATH: &str = "/api/sandbox/pay";

impl Sandbox {
    /// Plays the shopper on the sandbox's pay page: pays (or declines) the
    /// payment, then posts the signed callback to `callback_url` and
    /// returns the HTTP status rs-cms answered it with. Paying twice sends
    /// the same callback again (a redelivery).
    pub async fn shopper_pays(
        &self,
        provider_payment_id: &str,
        pay: bool,
        callback_url: &str,
    ) -> ApiResult<u16> {
        let client = self.db.get().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE sandbox_gateway_payments
                 SET status = CASE WHEN status = 'open' THEN $2 ELSE status END,
                     txn_id = COALESCE(txn_id, $3)
                 WHERE provider_payment_id = $1
                 RETURNING status, txn_id, amount_cents, currency",
            )
            .await?;
        let status = if pay { "paid" } else { "declined" };
        let row = client
            .query_opt(&stmt, &[&provider_payment_id, &status, &random_id("sbt")])
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such sandbox payment"))?;
        drop(client);
        let settled: String = row.try_get("status")?;
        let callback = Callback {
            provider_payment_id: provider_payment_id.to_owned(),
            txn_id: row.try_get("txn_id")?,
            outcome: if settled == "paid" { Outcome::Succeeded } else { Outcome::Failed },
            amount_cents: row.try_get("amount_cents")?,
            currency: row.try_get("currency")?,
            occurred_at: Utc::now(),
        };
        let body = serde_json::to_vec(&callback).map_err(ApiError::internal)?;
        let timestamp = Utc::now().timestamp().to_string();
        let signature = signature::sign(&self.secret, &timestamp, &body);
        let response = awc::Client::default()
            .post(callback_url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Pay-Timestamp", timestamp))
            .insert_header(("X-Pay-Signature", signature))
            .send_body(body)
            .await
            .map_err(|err| ApiError::unavailable(anyhow::anyhow!("sandbox callback failed: {err}")))?;
        Ok(response.status().as_u16())
    }
}

impl Gateway for Sandbox {
    async fn collect(&self, reference: &str, amount_cents: i64, currency: &str) -> ApiResult<Collection> {
        let provider_payment_id = random_id("sbx");
        let client = self.db.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO sandbox_gateway_payments (provider_payment_id, merchant_reference, amount_cents, currency, status)
                 VALUES ($1, $2, $3, $4, 'open')",
            )
            .await?;
        client.execute(&stmt, &[&provider_payment_id, &reference, &amount_cents, &currency]).await?;
        let pay_url = format!("{SANDBOX_PAY_PATH}/{provider_payment_id}");
        Ok(Collection { provider_payment_id, pay_url })
    }

    fn read_callback(&self, signed: &SignedCallback<'_>, now: DateTime<Utc>) -> ApiResult<Callback> {
        if !signature::verify(
            &self.secret,
            signed.timestamp,
            signed.signature,
            signed.body,
            now.timestamp(),
            self.max_age_secs,
        ) {
            return Err(ErrorCode::InvalidSignature.into());
        }
        serde_json::from_slice(signed.body)
            .map_err(|err| ApiError::new(ErrorCode::InvalidBody).with_message(err.to_string()))
    }

    async fn refund(&self, provider_payment_id: &str, amount_cents: i64, key: &str) -> ApiResult<String> {
        let mut client = self.db.get().await?;
        let tx = client.transaction().await?;
        let record = tx
            .prepare_cached(
                "INSERT INTO sandbox_gateway_refunds (refund_key, provider_payment_id, amount_cents)
                 VALUES ($1, $2, $3) ON CONFLICT (refund_key) DO NOTHING",
            )
            .await?;
        let refund_id = format!("sbr_{key}");
        if tx.execute(&record, &[&key, &provider_payment_id, &amount_cents]).await? == 0 {
            return Ok(refund_id);
        }
        let take = tx
            .prepare_cached(
                "UPDATE sandbox_gateway_payments SET refunded_cents = refunded_cents + $2
                 WHERE provider_payment_id = $1 AND status = 'paid' AND refunded_cents + $2 <= amount_cents",
            )
            .await?;
        if tx.execute(&take, &[&provider_payment_id, &amount_cents]).await? == 0 {
            return Err(ApiError::new(ErrorCode::InvalidState).with_message("the gateway refused the refund"));
        }
        tx.commit().await?;
        Ok(refund_id)
    }
}

/// The gateways this server is configured with, by provider name. A new
/// gateway is a new variant here and an `impl Gateway`.
#[derive(Clone)]
pub enum Configured {
    Sandbox(Sandbox),
}

impl Configured {
    /// Which provider this is.
    pub fn name(&self) -> ProviderName {
        match self {
            Self::Sandbox(_) => ProviderName::Sandbox,
        }
    }

    /// See [`Gateway::collect`].
    pub async fn collect(&self, reference: &str, amount_cents: i64, currency: &str) -> ApiResult<Collection> {
        match self {
            Self::Sandbox(gateway) => gateway.collect(reference, amount_cents, currency).await,
        }
    }

    /// See [`Gateway::read_callback`].
    pub fn read_callback(&self, signed: &SignedCallback<'_>, now: DateTime<Utc>) -> ApiResult<Callback> {
        match self {
            Self::Sandbox(gateway) => gateway.read_callback(signed, now),
        }
    }

    /// See [`Gateway::refund`].
    pub async fn refund(&self, provider_payment_id: &str, amount_cents: i64, key: &str) -> ApiResult<String> {
        match self {
            Self::Sandbox(gateway) => gateway.refund(provider_payment_id, amount_cents, key).await,
        }
    }
}

/// Every configured gateway.
pub struct Gateways {
    configured: Vec<Configured>,
}

impl Gateways {
    /// The gateways the settings turn on.
    pub fn new(db: Pool, settings: &crate::config::PaymentSettings) -> Self {
        let mut configured = Vec::new();
        if settings.sandbox_enabled {
            configured.push(Configured::Sandbox(Sandbox {
                db,
                secret: settings.sandbox_secret.clone(),
                max_age_secs: settings.callback_max_age_secs,
            }));
        }
        Self { configured }
    }

    /// The gateway for `provider`, or 422 `provider_unavailable` when this
    /// deployment has none for it.
    pub fn get(&self, provider: ProviderName) -> ApiResult<&Configured> {
        self.configured.iter().find(|g| g.name() == provider).ok_or_else(|| {
            ApiError::new(ErrorCode::ProviderUnavailable)
                .with_message(format!("{} payments are not available here", provider.as_str()))
        })
    }

    /// The sandbox, when it is on.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.configured.iter().map(|Configured::Sandbox(sandbox)| sandbox).next()
    }
}
