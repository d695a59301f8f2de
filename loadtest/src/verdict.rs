//! The correctness verdict: after the load, the database must agree with
//! every answer the server gave. Acknowledged means committed, so nothing is
//! awaited before checking.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::Client;

use crate::client::Ack;

/// An event's stock and orders as the database has them.
#[derive(Clone, Debug, Serialize)]
pub struct EventState {
    pub total_stock: i32,
    pub remaining_stock: i32,
    pub per_user_limit: i32,
    /// Units in the event's live (not cancelled) orders.
    pub live_quantity: i64,
    /// Order rows of the event, whatever their status.
    pub order_rows: i64,
}

/// Reads an event's state.
pub async fn snapshot(db: &Client, event_id: i64) -> anyhow::Result<EventState> {
    let row = db
        .query_opt(
            "SELECT e.total_stock, e.remaining_stock, e.per_user_limit,
                    (SELECT COALESCE(SUM(oi.quantity), 0)::int8
                       FROM orders o JOIN order_items oi ON oi.order_id = o.id
                      WHERE o.seckill_event_id = e.id AND o.status <> 'cancelled') AS live_quantity,
                    (SELECT count(*) FROM orders o WHERE o.seckill_event_id = e.id) AS order_rows
               FROM seckill_events e WHERE e.id = $1",
            &[&event_id],
        )
        .await
        .with_context(|| format!("reading seckill event {event_id}"))?
        .with_context(|| format!("seckill event {event_id} does not exist"))?;
    Ok(EventState {
        total_stock: row.try_get("total_stock")?,
        remaining_stock: row.try_get("remaining_stock")?,
        per_user_limit: row.try_get("per_user_limit")?,
        live_quantity: row.try_get("live_quantity")?,
        order_rows: row.try_get("order_rows")?,
    })
}

/// One check of a verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub pass: bool,
    pub detail: String,
}

/// What a verdict checked; its fields appear in the verdict's JSON.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Subject {
    /// A seckill event.
    Event { event_id: i64, stock: i32, per_user_limit: i32 },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Event { event_id, stock, per_user_limit } => {
                write!(f, "event {event_id} (stock {stock}, per-user limit {per_user_limit})")
            }
        }
    }
}

/// The checks of one load phase against what it touched.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The phase checked (`buy`, `naive`).
    pub name: String,
    #[serde(flatten)]
    pub subject: Subject,
    pub checks: Vec<Check>,
}

impl Verdict {
    /// True when every check passed.
    pub fn pass(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
}

/// What the load saw of one event.
pub struct Observed<'a> {
    /// Every 201.
    pub acks: &'a [Ack],
    /// How many requests were answered `sold_out`.
    pub sold_out: u64,
    /// Quantity each request asked for.
    pub quantity: i32,
}

/// Checks event `event_id` against what the load saw, given its state
/// `before` the load.
pub async fn check(
    db: &Client,
    name: &str,
    event_id: i64,
    before: &EventState,
    observed: &Observed<'_>,
) -> anyhow::Result<Verdict> {
    let after = snapshot(db, event_id).await?;
    let order_nos: Vec<&str> = observed.acks.iter().map(|a| a.order_no.as_str()).collect();
    let rows = db
        .query(
            "SELECT o.order_no, o.user_id, COALESCE(SUM(oi.quantity), 0)::int8 AS quantity
               FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.id
              WHERE o.seckill_event_id = $1 AND o.order_no = ANY($2)
              GROUP BY o.id",
            &[&event_id, &order_nos],
        )
        .await
        .context("reading acknowledged orders")?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        found.insert(
            row.try_get::<_, String>("order_no")?,
            (row.try_get("user_id")?, row.try_get("quantity")?),
        );
    }
    let over = db
        .query_one(
            "SELECT count(*) AS users, COALESCE(max(held), 0)::int8 AS worst FROM (
                 SELECT SUM(oi.quantity) AS held
                   FROM orders o JOIN order_items oi ON oi.order_id = o.id
                  WHERE o.seckill_event_id = $1 AND o.status <> 'cancelled'
                  GROUP BY o.user_id) AS per_user
              WHERE held > $2",
            &[&event_id, &i64::from(after.per_user_limit)],
        )
        .await
        .context("reading per-user quantities")?;
    let over_limit = OverLimit { users: over.try_get("users")?, worst: over.try_get("worst")? };
    Ok(Verdict {
        name: name.to_owned(),
        subject: Subject::Event { event_id, stock: after.total_stock, per_user_limit: after.per_user_limit },
        checks: checks(before, &after, observed, &found, over_limit),
    })
}

/// Users holding more than the per-user limit in live orders.
#[derive(Clone, Copy, Debug)]
struct OverLimit {
    users: i64,
    /// The most any of them holds.
    worst: i64,
}

/// The five checks, from the database facts; `found` maps the acknowledged
/// order numbers present in the event to their (user, quantity).
fn checks(
    before: &EventState,
    after: &EventState,
    observed: &Observed<'_>,
    found: &HashMap<String, (i64, i64)>,
    over_limit: OverLimit,
) -> Vec<Check> {
    let q = i64::from(observed.quantity);
    let sold = after.live_quantity - before.live_quantity;
    let acked: i64 = observed.acks.iter().map(|a| i64::from(a.quantity)).sum();
    let asked = acked + i64::try_from(observed.sold_out).unwrap_or(i64::MAX / 2) * q;
    let available = i64::from(before.remaining_stock);
    let expected = available.min(asked);
    // A sold-out answer for q units means fewer than q were left.
    let stock_exhausted_ok = if observed.sold_out > 0 { available - sold < q } else { sold <= available };
    let slack = if q > 1 && observed.sold_out > 0 {
        format!(" (quantity {q}: up to {} may stay unsold)", q - 1)
    } else {
        String::new()
    };

    let missing: Vec<&str> = observed
        .acks
        .iter()
        .filter(|a| found.get(&a.order_no) != Some(&(a.user_id, i64::from(a.quantity))))
        .map(|a| a.order_no.as_str())
        .collect();
    let distinct: HashSet<&str> = observed.acks.iter().map(|a| a.order_no.as_str()).collect();
    let new_rows = after.order_rows - before.order_rows;
    let total = i64::from(after.total_stock);

    vec![
        Check {
            name: "a. sold == acknowledged == min(stock, asked)",
            pass: sold == acked && stock_exhausted_ok,
            detail: format!(
                "sold {sold} (live units added), acknowledged {acked}, expected min(stock at start {available}, \
                 asked {asked}) = {expected}{slack}"
            ),
        },
        Check {
            name: "b. every 201 has its order",
            pass: missing.is_empty(),
            detail: format!(
                "{} of {} acknowledged orders found with their buyer and quantity{}",
                observed.acks.len() - missing.len(),
                observed.acks.len(),
                if missing.is_empty() { String::new() } else { format!("; missing e.g. {:?}", &missing[..missing.len().min(5)]) }
            ),
        },
        Check {
            name: "c. no user over the limit",
            pass: over_limit.users == 0,
            detail: if over_limit.users == 0 {
                format!("no user holds more than {} in live orders", after.per_user_limit)
            } else {
                format!("{} users hold more than {} (worst {})", over_limit.users, after.per_user_limit, over_limit.worst)
            },
        },
        Check {
            name: "d. no oversell: remaining + live == stock",
            pass: i64::from(after.remaining_stock) + after.live_quantity == total,
            detail: format!("remaining {} + live {} vs stock {total}", after.remaining_stock, after.live_quantity),
        },
        Check {
            name: "e. order rows == distinct 201s",
            pass: new_rows == i64::try_from(distinct.len()).unwrap_or(i64::MAX),
            detail: format!("{new_rows} new order rows, {} distinct acknowledged order numbers", distinct.len()),
        },
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state(remaining: i32, live: i64, rows: i64) -> EventState {
        EventState {
            total_stock: 10,
            remaining_stock: remaining,
            per_user_limit: 1,
            live_quantity: live,
            order_rows: rows,
        }
    }

    fn acks(n: i64) -> Vec<Ack> {
        (0..n).map(|i| Ack { user_id: i, quantity: 1, order_no: format!("o{i}") }).collect()
    }

    fn found(acks: &[Ack]) -> HashMap<String, (i64, i64)> {
        acks.iter().map(|a| (a.order_no.clone(), (a.user_id, i64::from(a.quantity)))).collect()
    }

    const NONE_OVER: OverLimit = OverLimit { users: 0, worst: 0 };

    #[test]
    fn a_clean_sold_out_run_passes() {
        let acks = acks(10);
        let observed = Observed { acks: &acks, sold_out: 90, quantity: 1 };
        let checks = checks(&state(10, 0, 0), &state(0, 10, 10), &observed, &found(&acks), NONE_OVER);
        assert!(checks.iter().all(|c| c.pass), "{checks:#?}");
    }

    #[test]
    fn lost_oversold_and_undersold_runs_fail() {
        let acks = acks(10);
        let observed = Observed { acks: &acks, sold_out: 5, quantity: 1 };
        // One acknowledged order is missing from the database.
        let mut lost = found(&acks);
        lost.remove("o3");
        let c = checks(&state(10, 0, 0), &state(1, 9, 9), &observed, &lost, NONE_OVER);
        let failed: Vec<_> = c.iter().filter(|c| !c.pass).map(|c| c.name).collect();
        assert_eq!(failed.len(), 3, "{c:#?}"); // a, b, e
                                               // Oversold: the live units exceed the stock.
        let c = checks(&state(10, 0, 0), &state(0, 11, 11), &observed, &found(&acks), NONE_OVER);
        assert!(c.iter().any(|c| !c.pass && c.name.starts_with("d.")), "{c:#?}");
        // Sold out answered while stock was left.
        let few = &acks[..8];
        let observed = Observed { acks: few, sold_out: 5, quantity: 1 };
        let c = checks(&state(10, 0, 0), &state(2, 8, 8), &observed, &found(few), NONE_OVER);
        assert!(c.iter().any(|c| !c.pass && c.name.starts_with("a.")), "{c:#?}");
    }

    #[test]
    fn per_user_violations_fail() {
        let acks = acks(2);
        let observed = Observed { acks: &acks, sold_out: 0, quantity: 1 };
        let c = checks(
            &state(10, 0, 0),
            &state(8, 2, 2),
            &observed,
            &found(&acks),
            OverLimit { users: 1, worst: 2 },
        );
        assert!(c.iter().any(|c| !c.pass && c.name.starts_with("c.")), "{c:#?}");
    }

    #[test]
    fn earlier_orders_of_an_existing_event_are_not_counted() {
        let acks = acks(3);
        let observed = Observed { acks: &acks, sold_out: 0, quantity: 1 };
        let c = checks(&state(6, 4, 4), &state(3, 7, 7), &observed, &found(&acks), NONE_OVER);
        assert!(c.iter().all(|c| c.pass), "{c:#?}");
    }

    #[test]
    fn subjects_show_in_text_and_flatten_into_json() {
        let verdict = |subject| Verdict { name: "x".into(), subject, checks: vec![] };
        let event = verdict(Subject::Event { event_id: 7, stock: 100, per_user_limit: 1 });
        assert_eq!(event.subject.to_string(), "event 7 (stock 100, per-user limit 1)");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!((json["event_id"].as_i64(), json["per_user_limit"].as_i64()), (Some(7), Some(1)));
    }

    #[test]
    fn larger_quantities_may_leave_a_remainder_below_one_request() {
        let acks: Vec<Ack> =
            (0..3).map(|i| Ack { user_id: i, quantity: 3, order_no: format!("o{i}") }).collect();
        let observed = Observed { acks: &acks, sold_out: 4, quantity: 3 };
        let c = checks(&state(10, 0, 0), &state(1, 9, 3), &observed, &found(&acks), NONE_OVER);
        assert!(c.iter().all(|c| c.pass), "{c:#?}");
    }
}
