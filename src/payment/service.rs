//! Payment rules: opening a payment at a gateway, applying its signed
//! callback exactly once, and refunding money that arrives for an order
//! that can no longer take it.

use std::sync::OnceLock;

use chrono::Utc;
use deadpool_postgres::Pool;
use rand::Rng;
use serde_json::json;

use super::gateway::{Gateways, Outcome, ProviderName, SignedCallback};
use super::store::{self, NewPayment, PaymentRow};
use crate::config::PaymentSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::finance::order_money;
use crate::order::lifecycle::{self, OrderEvent, OrderStatus};
use crate::order::service::{self as orders, Step};
use crate::order::store as order_store;
use crate::state::AppState;

/// The gateways and where they reach this server.
pub struct Payments {
    pub gateways: Gateways,
    public_base_url: String,
    own_url: OnceLock<String>,
}

impl Payments {
    /// Sets up the configured gateways.
    pub fn new(db: Pool, settings: &PaymentSettings) -> Self {
        Self {
            gateways: Gateways::new(db, settings),
            public_base_url: settings.public_base_url.trim_end_matches('/').to_owned(),
            own_url: OnceLock::new(),
        }
    }

    /// Tells where this server listens, once bound (used when no public
    /// base URL is configured).
    pub fn set_own_url(&self, url: String) {
        let _ = self.own_url.set(url);
    }

    /// The base URL gateways send shoppers back to and post callbacks to.
    pub fn base_url(&self) -> &str {
        if self.public_base_url.is_empty() {
            self.own_url.get().map_or("", String::as_str)
        } else {
            &self.public_base_url
        }
    }

    /// Where `provider` posts its callbacks.
    pub fn callback_url(&self, provider: ProviderName) -> String {
        format!("{}/api/payments/callbacks/{}", self.base_url(), provider.as_str())
    }
}

/// A new payment number: `P` + `yymmdd` + 14 random digits. Readable and
/// not guessable from its neighbours.
fn new_payment_no() -> String {
    let random: u64 = rand::thread_rng().gen_range(0..100_000_000_000_000);
    format!("P{}{random:014}", Utc::now().format("%y%m%d"))
}

/// A saved account to pay with, unlocked by its payment password.
pub struct SavedAccount {
    pub account_id: i64,
    pub payment_password: String,
}

/// Opens a payment of one of the shopper's orders at `provider`, from a
/// saved account of that provider when one is given (its payment password
/// checked first): the order must be waiting for payment inside its
/// window. Each call is a new attempt with its own record.
pub async fn start(
    state: &AppState,
    user_id: i64,
    order_no: &str,
    provider: ProviderName,
    saved: Option<SavedAccount>,
) -> ApiResult<PaymentRow> {
    let gateway = state.payments.gateways.get(provider)?;
    if let Some(saved) = saved {
        let client = state.db.get().await?;
        let saved_provider =
            crate::pay_account::store::provider_of(&client, user_id, saved.account_id).await?;
        drop(client);
        match saved_provider {
            None => return Err(ApiError::invalid_field("pay_account_id", "not_found")),
            Some(name) if name != provider.as_str() => {
                return Err(ApiError::invalid_field("pay_account_id", "other_provider"));
            }
            Some(_) => {
                let password = saved.payment_password;
                crate::pay_account::service::verify_payment_password(
                    state,
                    user_id,
                    saved.account_id,
                    password,
                )
                .await?;
            }
        }
    }
    let order = orders::own_order(state, user_id, order_no).await?;
    let status = OrderStatus::parse(&order.view.status).unwrap_or(OrderStatus::Cancelled);
    lifecycle::next(status, OrderEvent::Pay)?;
    if order.view.pay_before.is_some_and(|deadline| deadline <= state.clock.now()) {
        return Err(ErrorCode::OrderExpired.into());
    }
    if order.view.total_cents <= 0 {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("the order has nothing to pay"));
    }
    let payment_no = new_payment_no();
    let collection = gateway.collect(&payment_no, order.view.total_cents, &order.view.currency).await?;
    let pay_url = if collection.pay_url.starts_with('/') {
        format!("{}{}", state.payments.base_url(), collection.pay_url)
    } else {
        collection.pay_url
    };
    let client = state.db.get().await?;
    let new = NewPayment {
        payment_no: &payment_no,
        user_id,
        order_id: order.id,
        provider: provider.as_str(),
        amount_cents: order.view.total_cents,
        currency: &order.view.currency,
        provider_payment_id: &collection.provider_payment_id,
        pay_url: &pay_url,
    };
    store::insert(&client, &new).await?;
    store::find_by_no(&client, &payment_no).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound))
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEffect {
    /// The payment succeeded and the order is paid.
    Paid,
    /// The payment failed; the order still waits.
    Failed,
    /// The money arrived for an order that could not take it (expired,
    /// cancelled, or already paid by another attempt): refunded.
    Refunded,
    /// A redelivery of a callback already applied: nothing changed.
    Duplicate,
}

/// Applies a gateway's signed callback. Idempotent on the gateway's
/// transaction id; a bad signature is a 401 (and logged), an amount or
/// currency that does not match the payment a 422 (and logged in the
/// payment's events). Money for an order that cannot take it is recorded
/// and refunded; the order is never resurrected.
pub async fn apply_callback(
    state: &AppState,
    provider: ProviderName,
    signed: &SignedCallback<'_>,
) -> ApiResult<CallbackEffect> {
    let gateway = state.payments.gateways.get(provider)?;
    // Signatures age in wall-clock time, whatever the business clock says.
    let callback = gateway.read_callback(signed, Utc::now()).inspect_err(|err| {
        if err.code() == ErrorCode::InvalidSignature {
            tracing::warn!(provider = provider.as_str(), "payment callback refused: bad or stale signature");
            state.metrics.callbacks_refused.inc();
        }
    })?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let payment = store::lock_by_provider_id(&tx, provider.as_str(), &callback.provider_payment_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such payment"))?;
    let detail = json!({"txn_id": callback.txn_id, "amount_cents": callback.amount_cents, "currency": callback.currency});
    if payment.provider_txn_id.as_deref() == Some(callback.txn_id.as_str()) {
        return Ok(CallbackEffect::Duplicate);
    }
    if payment.view.status != "pending" {
        if callback.outcome == Outcome::Failed {
            return Ok(CallbackEffect::Duplicate);
        }
        // Money for a payment already settled (charged twice, or paid after
        // a decline): keep nothing that cannot be applied, and refund each
        // such transaction once however often the gateway redelivers it
        // (the payment row is locked, so the check cannot race).
        if store::refund_of_txn_exists(&tx, payment.id, &callback.txn_id).await? {
            return Ok(CallbackEffect::Duplicate);
        }
        let refund_id =
            owe_refund(&tx, &payment, &callback.txn_id, callback.amount_cents, "second settlement", &detail)
                .await?;
        tx.commit().await?;
        drop(client);
        send_refund_logged(state, refund_id).await;
        return Ok(CallbackEffect::Refunded);
    }
    if callback.outcome == Outcome::Failed {
        store::settle(&tx, payment.id, "failed", Some(&callback.txn_id), callback.occurred_at, &detail)
            .await?;
        tx.commit().await?;
        return Ok(CallbackEffect::Failed);
    }
    if callback.amount_cents != payment.view.amount_cents || callback.currency != payment.view.currency {
        // Refused, but the money the gateway took goes back; the txn is
        // stamped so the gateway's retries are duplicates.
        tracing::warn!(payment_no = %payment.view.payment_no, "payment callback refused: amount or currency mismatch");
        store::log_event(
            &tx,
            payment.id,
            "callback_rejected",
            &json!({"reason": "amount_mismatch", "callback": detail}),
        )
        .await?;
        store::settle(&tx, payment.id, "failed", Some(&callback.txn_id), callback.occurred_at, &detail)
            .await?;
        let refund_id =
            owe_refund(&tx, &payment, &callback.txn_id, callback.amount_cents, "amount_mismatch", &detail)
                .await?;
        tx.commit().await?;
        drop(client);
        send_refund_logged(state, refund_id).await;
        return Err(ErrorCode::AmountMismatch.into());
    }
    store::settle(&tx, payment.id, "succeeded", Some(&callback.txn_id), callback.occurred_at, &detail)
        .await?;
    let order =
        order_store::find(&tx, payment.order_id).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let note = format!("paid: {} via {}", payment.view.payment_no, provider.as_str());
    let step = Step { event: OrderEvent::Pay, actor_id: None, note: &note, reason: None };
    match orders::apply(&tx, state, &order, step).await {
        Ok(aftermath) => {
            store::mark_paying(&tx, order.id, payment.id).await?;
            tx.commit().await?;
            drop(client);
            aftermath.settle(state).await;
            Ok(CallbackEffect::Paid)
        }
        Err(err) if not_payable(err.code()) => {
            let reason = format!("order not payable: {}", err.code().as_str());
            let refund_id =
                owe_refund(&tx, &payment, &callback.txn_id, payment.view.amount_cents, &reason, &detail)
                    .await?;
            tx.commit().await?;
            drop(client);
            send_refund_logged(state, refund_id).await;
            Ok(CallbackEffect::Refunded)
        }
        Err(err) => Err(err),
    }
}

/// Records a refund owed on `payment` of money no order can take (the
/// gateway's transaction `txn_id`), with its event and its entry in the
/// books, in the caller's transaction; the refund worker (or the caller,
/// after commit) sends it.
async fn owe_refund(
    tx: &impl deadpool_postgres::GenericClient,
    payment: &PaymentRow,
    txn_id: &str,
    amount_cents: i64,
    reason: &str,
    callback: &serde_json::Value,
) -> ApiResult<i64> {
    let refund_id = store::insert_refund(tx, payment.id, amount_cents, reason, None, Some(txn_id)).await?;
    store::log_event(tx, payment.id, "refund_requested", &json!({"reason": reason, "callback": callback}))
        .await?;
    order_money::record_unapplied_receipt(tx, refund_id, amount_cents, reason).await?;
    Ok(refund_id)
}

/// Whether a refused Pay step means the money must go back.
fn not_payable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::OrderExpired
            | ErrorCode::OrderCancelled
            | ErrorCode::OrderPaid
            | ErrorCode::OrderShipped
            | ErrorCode::OrderDelivered
            | ErrorCode::OrderCompleted
    )
}

/// Sends refund `refund_id` through its gateway unless it is sent already
/// or being sent: the gateway's answer and our books change in one
/// transaction, and the refund's id is the gateway's idempotency key, so a
/// retry after a crash never refunds twice. A refused refund stays
/// `failed` (logged on the payment) for the worker to retry.
pub async fn send_refund(state: &AppState, refund_id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let Some(refund) = store::lock_unsent_refund(&tx, refund_id).await? else { return Ok(()) };
    let provider = ProviderName::parse(&refund.provider)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown provider {}", refund.provider)))?;
    let gateway = state.payments.gateways.get(provider)?;
    let key = format!("refund-{}", refund.id);
    match gateway.refund(&refund.provider_payment_id, refund.amount_cents, &key).await {
        Ok(provider_refund_id) => {
            store::finish_refund(&tx, refund.id, Some(&provider_refund_id)).await?;
            order_money::record_refund_sent(&tx, refund.id, refund.amount_cents).await?;
            // Refunds of one payment finish one at a time (never across the
            // gateway call), so the one that completes it sees the others.
            store::lock_payment(&tx, refund.payment_id).await?;
            let detail = json!({"refund_id": provider_refund_id, "amount_cents": refund.amount_cents});
            if store::refunded_total(&tx, refund.payment_id).await? >= refund.payment_amount_cents {
                store::settle(&tx, refund.payment_id, "refunded", None, state.clock.now(), &detail).await?;
            } else {
                store::log_event(&tx, refund.payment_id, "refunded", &detail).await?;
            }
        }
        Err(err) => {
            tracing::warn!(refund_id, error = %err, "the gateway refused a refund; it will be retried");
            store::finish_refund(&tx, refund.id, None).await?;
            store::log_event(&tx, refund.payment_id, "refund_failed", &json!({"error": err.code().as_str()}))
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// [`send_refund`] right after the decision: a failure is logged and left
/// to the refund worker, never turned into an error for the caller.
pub async fn send_refund_logged(state: &AppState, refund_id: i64) {
    if let Err(err) = send_refund(state, refund_id).await {
        tracing::warn!(refund_id, error = %err, "refund not sent yet; the refund worker will retry");
    }
}

/// Sends every refund not yet taken by its gateway, every `interval`,
/// forever, on the cluster's leader: refunds whose first attempt failed, or whose node stopped
/// between deciding and sending them.
pub async fn run_refund_worker(state: AppState, interval: std::time::Duration) {
    const BATCH: i64 = 100;
    loop {
        tokio::time::sleep(interval).await;
        if !state.leadership.is_leader() {
            continue;
        }
        let due = match state.db.get().await {
            Ok(client) => store::unsent_refunds(&client, interval.as_secs_f64(), BATCH).await,
            Err(err) => {
                tracing::warn!(error = %err, "refund worker: no database connection");
                continue;
            }
        };
        match due {
            Ok(ids) => {
                for refund_id in ids {
                    send_refund_logged(&state, refund_id).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "refund worker: cannot list refunds"),
        }
    }
}
