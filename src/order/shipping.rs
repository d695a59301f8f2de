//! Shipping: a shipment (carrier, tracking number, items) moves a paid
//! order to `shipped`; tracking events come from the merchant or from the
//! carrier's signed webhook, and a `delivered` event moves the order on.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::lifecycle::{OrderEvent, OrderStatus};
use super::service::{self, Step};
use super::store::{self, OrderRow};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::Validator;

/// A tracking status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    InTransit,
    OutForDelivery,
    Delivered,
    /// Lost, damaged, refused: needs attention.
    Exception,
}

impl TrackingStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::Exception => "exception",
        }
    }
}

/// What went into the box.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippedItem {
    pub sku_id: i64,
    pub quantity: i32,
}

/// One tracking event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackingEvent {
    pub status: String,
    pub location: String,
    pub description: String,
    pub occurred_at: DateTime<Utc>,
    /// `merchant` or `carrier`.
    pub source: String,
}

/// A shipment with its tracking so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_no: String,
    pub items: Vec<ShippedItem>,
    pub shipped_at: DateTime<Utc>,
    pub events: Vec<TrackingEvent>,
}

/// The shipment of an order, if it has shipped.
pub async fn shipment_of(client: &impl GenericClient, order_id: i64) -> ApiResult<Option<Shipment>> {
    let stmt = client
        .prepare_cached(
            "SELECT id, carrier, tracking_no, items, created_at FROM shipments WHERE order_id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&order_id]).await? else { return Ok(None) };
    let shipment_id: i64 = row.try_get("id")?;
    let items: serde_json::Value = row.try_get("items")?;
    let events = client
        .prepare_cached(
            "SELECT status, location, description, occurred_at, source FROM tracking_events
             WHERE shipment_id = $1 ORDER BY occurred_at, id",
        )
        .await?;
    let events = client
        .query(&events, &[&shipment_id])
        .await?
        .iter()
        .map(|row| {
            Ok(TrackingEvent {
                status: row.try_get("status")?,
                location: row.try_get("location")?,
                description: row.try_get("description")?,
                occurred_at: row.try_get("occurred_at")?,
                source: row.try_get("source")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(Some(Shipment {
        carrier: row.try_get("carrier")?,
        tracking_no: row.try_get("tracking_no")?,
        items: serde_json::from_value(items).unwrap_or_default(),
        shipped_at: row.try_get("created_at")?,
        events,
    }))
}

/// A shipment as the merchant records it.
pub struct NewShipment {
    pub carrier: String,
    pub tracking_no: String,
    /// Defaults to everything in the order.
    pub items: Option<Vec<ShippedItem>>,
}

/// Ships a paid order: records the shipment and moves the order to
/// `shipped`, in one transaction.
pub async fn ship(
    state: &AppState,
    order: &OrderRow,
    actor_id: i64,
    shipment: NewShipment,
) -> ApiResult<OrderRow> {
    let carrier = shipment.carrier.trim();
    let tracking_no = shipment.tracking_no.trim();
    let mut v = Validator::new();
    v.length("carrier", carrier, 1, 40).length("tracking_no", tracking_no, 1, 60);
    v.finish()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let step = Step { event: OrderEvent::Ship, actor_id: Some(actor_id), note: "shipped", reason: None };
    let aftermath = service::apply(&tx, state, order, step).await?;
    // Read under the order's row lock, which the step took: a refund
    // request or refund that committed meanwhile is seen.
    if crate::after_sale::store::has_open(&tx, order.id, Some("refund")).await? {
        return Err(ApiError::new(ErrorCode::AfterSaleOpen)
            .with_message("the shopper asked for a refund; decide it before shipping"));
    }
    // Refunded units stay behind.
    let to_ship: Vec<ShippedItem> = store::items(&tx, order.id)
        .await?
        .iter()
        .map(|i| ShippedItem { sku_id: i.sku_id, quantity: i.quantity - i.refunded_quantity })
        .filter(|i| i.quantity > 0)
        .collect();
    let items = match shipment.items {
        None => to_ship,
        Some(items) => {
            let mut v = Validator::new();
            v.check("items", !items.is_empty(), "required");
            for (n, item) in items.iter().enumerate() {
                let left =
                    to_ship.iter().filter(|i| i.sku_id == item.sku_id).map(|i| i.quantity).sum::<i32>();
                v.check(&format!("items[{n}]"), item.quantity > 0 && item.quantity <= left, "not_in_order");
            }
            v.finish()?;
            items
        }
    };
    let stmt = tx
        .prepare_cached(
            "INSERT INTO shipments (order_id, carrier, tracking_no, items, shipped_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let items_json = serde_json::to_value(&items).map_err(ApiError::internal)?;
    tx.execute(&stmt, &[&order.id, &carrier, &tracking_no, &items_json, &actor_id]).await.map_err(|err| {
        match db::violated_unique(&err) {
            Some("shipments_carrier_tracking_no_key") => {
                ApiError::new(ErrorCode::Conflict).with_message("that tracking number is already in use")
            }
            _ => err.into(),
        }
    })?;
    tx.commit().await?;
    // Settling may need connections of its own (refunds): hold none meanwhile.
    drop(client);
    aftermath.settle(state).await;
    let client = state.db.get().await?;
    store::find(&client, order.id).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound))
}

/// A tracking event to append.
pub struct NewTrackingEvent<'a> {
    pub status: TrackingStatus,
    pub location: &'a str,
    pub description: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// `merchant` or `carrier`.
    pub source: &'a str,
    /// The carrier's own id of the event: a redelivery is a no-op.
    pub external_id: Option<&'a str>,
    pub actor_id: Option<i64>,
}

/// Appends a tracking event to the order's shipment; a `delivered` event
/// moves a shipped order to `delivered`. Returns whether the event was new.
pub async fn track(state: &AppState, order: &OrderRow, event: &NewTrackingEvent<'_>) -> ApiResult<bool> {
    let mut v = Validator::new();
    v.length("location", event.location, 0, 120).length("description", event.description, 0, 500);
    v.finish()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO tracking_events (shipment_id, status, location, description, occurred_at, source, external_id)
             SELECT id, $2, $3, $4, $5, $6, $7 FROM shipments WHERE order_id = $1
             ON CONFLICT (shipment_id, external_id) WHERE external_id IS NOT NULL DO NOTHING",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &order.id,
        &event.status.as_str(),
        &event.location,
        &event.description,
        &event.occurred_at,
        &event.source,
        &event.external_id,
    ];
    if tx.execute(&stmt, &params).await? == 0 {
        // Either no shipment (the order has not shipped) or a redelivery.
        return match shipment_of(&tx, order.id).await? {
            None => Err(ApiError::new(ErrorCode::InvalidState).with_message("the order has not shipped")),
            Some(_) => Ok(false),
        };
    }
    let mut aftermath = None;
    if event.status == TrackingStatus::Delivered && order.view.status == OrderStatus::Shipped.as_str() {
        let step = Step {
            event: OrderEvent::Deliver,
            actor_id: event.actor_id,
            note: "delivered (tracking)",
            reason: None,
        };
        aftermath = match service::apply(&tx, state, order, step).await {
            Ok(aftermath) => Some(aftermath),
            // Someone else's "delivered" (or the shopper's receipt) won the
            // race: the event is still worth keeping.
            Err(err) if matches!(err.code(), ErrorCode::OrderDelivered | ErrorCode::OrderCompleted) => None,
            Err(err) => return Err(err),
        };
    }
    tx.commit().await?;
    if let Some(aftermath) = aftermath {
        aftermath.settle(state).await;
    }
    Ok(true)
}

/// The order shipped with `carrier` under `tracking_no`.
pub async fn order_by_tracking(state: &AppState, carrier: &str, tracking_no: &str) -> ApiResult<OrderRow> {
    let client = state.db.get().await?;
    let stmt = client
        .prepare_cached("SELECT order_id FROM shipments WHERE carrier = $1 AND tracking_no = $2")
        .await?;
    let order_id: i64 = client
        .query_opt(&stmt, &[&carrier, &tracking_no])
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such shipment"))?
        .try_get(0)?;
    store::find(&client, order_id).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound))
}
