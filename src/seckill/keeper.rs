//! The lease keeper: one task per event per node in `stock_authority =
//! "redis"`, the only part of the node that waits on the shared pool, so
//! the stock actor never does.
//!
//! It wakes when the actor runs low (or has requests parked) and on a
//! timer (three times per lease life). Each time it applies an open or
//! close made on another node (announced over pub/sub, which can miss
//! it, so the database is read again), reports units sold,
//! renews the lease, reclaims leases of nodes that stopped renewing (dead
//! ones) into the pool, tells the actor the pool's level, and when asked
//! leases another chunk. Once the sale is over here it gives back whatever
//! the actor did not sell.

use std::sync::{Arc, Weak};

use actors::gate::Admission;
use actors::stock::{LeaseLink, Restock, TakeBackStock};

use super::engine::LiveEvent;
use super::pool::{PoolError, PoolKeys, StockPool};
use super::store;

/// An event's lease on this node: its keys and the link to its actor.
pub struct Lease {
    /// The event's keys in Redis.
    pub keys: PoolKeys,
    /// Shared with the event's actor: its "need more" signal and sales.
    pub link: Arc<LeaseLink>,
}

/// Pause after a failed round before the next, so a Redis outage is not
/// hammered (parked requests time out meanwhile with a 503).
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Creates the event's pool from the database unless it exists (the first
/// node to load the event wins; later ones find it).
async fn init_pool(
    pool: &StockPool,
    db: &deadpool_postgres::Pool,
    keys: &PoolKeys,
    event_id: i64,
) -> anyhow::Result<()> {
    let client = db.get().await?;
    let Some(event) = store::find_event(&client, event_id).await? else {
        anyhow::bail!("event {event_id} is gone");
    };
    let snapshot = store::load_snapshot(&client, &event).await?;
    pool.init(keys, snapshot.remaining, &snapshot.held_by_user).await?;
    Ok(())
}

/// Keeps the lease of `live` until the event is retired from this node.
pub async fn keep(pool: Arc<StockPool>, db: deadpool_postgres::Pool, live: Weak<LiveEvent>) {
    let mut held = 0u32;
    let mut tick = tokio::time::interval(pool.renew_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let link = match live.upgrade().and_then(|l| l.lease.as_ref().map(|lease| lease.link.clone())) {
            Some(link) => link,
            None => return,
        };
        let wanted = tokio::select! {
            () = link.need.notified() => true,
            _ = tick.tick() => false,
        };
        let Some(live) = live.upgrade() else { return };
        let Some(lease) = &live.lease else { return };
        // Bounded: the lease must be renewed even while the pool is busy
        // with order writes (a skipped read is made good next round).
        let _ = tokio::time::timeout(pool.renew_every() / 4, follow_switches(&db, &live)).await;
        if let Err(err) = round(&pool, &live, lease, &mut held, wanted).await {
            match err.downcast_ref::<PoolError>() {
                Some(PoolError::Missing(event_id)) => {
                    tracing::warn!(event_id, "stock pool missing in Redis; rebuilding it from the database");
                    if let Err(err) = init_pool(&pool, &db, &lease.keys, *event_id).await {
                        tracing::warn!(event_id, error = %err, "cannot rebuild the stock pool");
                    }
                }
                _ => tracing::warn!(event_id = live.event.id, error = %err, "stock lease round failed"),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            if wanted {
                lease.link.need.notify_one();
            }
        }
    }
}

/// Applies an early open or a close stored by any node to this node's
/// gate. A failed read is only logged: the lease must be kept (and sold
/// units reported) through a database hiccup, and the next round reads
/// again.
async fn follow_switches(db: &deadpool_postgres::Pool, live: &LiveEvent) {
    let switches = match db.get().await {
        Ok(client) => store::find_switches(&client, live.event.id).await.map_err(anyhow::Error::from),
        Err(err) => Err(err.into()),
    };
    match switches {
        Ok(Some((opened, closed))) => {
            if opened {
                live.gate.open_now();
            }
            if closed {
                live.gate.close();
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(event_id = live.event.id, error = %err, "cannot read a sale's open/close"),
    }
}

/// One round of keeping (see the module docs). `held` is what this node's
/// lease holds in Redis, as far as this keeper knows.
async fn round(
    pool: &StockPool,
    live: &LiveEvent,
    lease: &Lease,
    held: &mut u32,
    wanted: bool,
) -> anyhow::Result<()> {
    report_sold(pool, lease, held).await?;
    if live.gate.admit(chrono::Utc::now().timestamp_millis()) == Admission::Ended {
        // Units still in flight come back to the actor if their write
        // fails: later rounds give those back too.
        give_back_unsold(pool, live, lease, held).await?;
        return Ok(());
    }
    if *held > 0 && !pool.renew(&lease.keys).await? {
        // Our lease expired and was reclaimed (a long pause, or Redis was
        // unreachable): its units are back in the pool, so stop selling them.
        let dropped = live.actor.send(TakeBackStock).await?;
        tracing::warn!(event_id = live.event.id, dropped, "stock lease lost; its units were reclaimed");
        *held = 0;
    }
    let mut level = pool.reclaim(&lease.keys).await?;
    if level.units > 0 {
        tracing::info!(event_id = live.event.id, units = level.units, "reclaimed expired stock leases");
    }
    let mut leased = 0;
    if wanted && level.pool.units > 0 {
        level = pool.lease(&lease.keys).await?;
        leased = level.units;
        *held += leased;
    }
    live.actor.send(Restock { leased, pool: level.pool }).await?;
    Ok(())
}

async fn report_sold(pool: &StockPool, lease: &Lease, held: &mut u32) -> Result<(), PoolError> {
    let sold = lease.link.take_sold();
    if sold > 0 {
        match pool.report_sold(&lease.keys, sold).await {
            Ok(taken) => *held = held.saturating_sub(taken),
            Err(err) => {
                lease.link.add_sold(sold);
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Reports what was sold and gives every unit the actor still has back to
/// the pool. If Redis fails here the lease is simply left to expire, and
/// any node's keeper reclaims it.
async fn give_back_unsold(
    pool: &StockPool,
    live: &LiveEvent,
    lease: &Lease,
    held: &mut u32,
) -> anyhow::Result<()> {
    let unsold = live.actor.send(TakeBackStock).await?;
    if unsold > 0 {
        let moved = pool.give_back(&lease.keys, unsold).await?;
        *held = held.saturating_sub(moved.units);
    }
    Ok(())
}

/// On a clean shutdown: reports sales and gives back every unsold unit of
/// `live`, so other nodes can sell them at once rather than after expiry.
pub async fn hand_back(pool: &StockPool, live: &LiveEvent) -> anyhow::Result<()> {
    let Some(lease) = &live.lease else { return Ok(()) };
    let mut held = u32::MAX;
    report_sold(pool, lease, &mut held).await?;
    give_back_unsold(pool, live, lease, &mut held).await
}
