//! The correctness verdicts: after the load, the database must agree with
//! every answer the server gave, for a seckill event (flash sale), for the
//! shoppers' carts, and for the stock of the prepared SKUs (cart
//! checkouts). Acknowledged means committed, so nothing is awaited before
//! checking.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::Client;

use crate::client::{Ack, Added};

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
    /// The carts of the prepared shoppers, over the prepared SKUs.
    Carts { shoppers: usize, skus: usize },
    /// The prepared SKUs, each stocked with `stock` units.
    Skus { skus: usize, stock: i32 },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Event { event_id, stock, per_user_limit } => {
                write!(f, "event {event_id} (stock {stock}, per-user limit {per_user_limit})")
            }
            Subject::Carts { shoppers, skus } => write!(f, "carts of {shoppers} shoppers over {skus} SKUs"),
            Subject::Skus { skus, stock } => write!(f, "{skus} SKUs (stock {stock} each at the start)"),
        }
    }
}

/// The checks of one load phase against what it touched.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The phase checked (`buy`, `naive`, `add`, `checkout`).
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

/// What the load saw of one event, or of the prepared SKUs.
pub struct Observed<'a> {
    /// Every 201.
    pub acks: &'a [Ack],
    /// How many requests were refused for lack of stock (`sold_out`,
    /// `insufficient_stock`).
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
    let found = found_orders(db, observed.acks, Some(event_id)).await?;
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

/// The acknowledged orders present in the database (of event `event_id`,
/// when given), by order number: (user, units).
async fn found_orders(
    db: &Client,
    acks: &[Ack],
    event_id: Option<i64>,
) -> anyhow::Result<HashMap<String, (i64, i64)>> {
    let order_nos: Vec<&str> = acks.iter().map(|a| a.order_no.as_str()).collect();
    let rows = db
        .query(
            "SELECT o.order_no, o.user_id, COALESCE(SUM(oi.quantity), 0)::int8 AS quantity
               FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.id
              WHERE ($1::int8 IS NULL OR o.seckill_event_id = $1) AND o.order_no = ANY($2)
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
    Ok(found)
}

/// Every 201's order is in `found` with the buyer who got the answer and
/// the answered quantity.
fn every_ack_found(name: &'static str, acks: &[Ack], found: &HashMap<String, (i64, i64)>) -> Check {
    let missing: Vec<&str> = acks
        .iter()
        .filter(|a| found.get(&a.order_no) != Some(&(a.user_id, i64::from(a.quantity))))
        .map(|a| a.order_no.as_str())
        .collect();
    Check {
        name,
        pass: missing.is_empty(),
        detail: format!(
            "{} of {} acknowledged orders found with their buyer and quantity{}",
            acks.len() - missing.len(),
            acks.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!("; missing e.g. {:?}", &missing[..missing.len().min(5)])
            }
        ),
    }
}

/// Units per (user, SKU) cart line.
type Lines = HashMap<(i64, i64), i64>;

/// Checks the shoppers' carts against the acknowledged adds: each line
/// holds one unit per 200 answered for it, no more and no less (the
/// shoppers are new, so their carts were empty). `failed` adds were
/// answered with an error; one that timed out may still have been stored.
pub async fn check_carts(
    db: &Client,
    name: &str,
    user_ids: &[i64],
    skus: usize,
    adds: &[Added],
    failed: u64,
) -> anyhow::Result<Verdict> {
    let rows = db
        .query(
            "SELECT user_id, sku_id, quantity::int8 AS quantity
               FROM cart_lines WHERE user_id = ANY($1) AND quantity > 0",
            &[&user_ids],
        )
        .await
        .context("reading the shoppers' cart lines")?;
    let mut stored = Lines::with_capacity(rows.len());
    for row in rows {
        stored.insert((row.try_get("user_id")?, row.try_get("sku_id")?), row.try_get("quantity")?);
    }
    let mut acked = Lines::new();
    for add in adds {
        *acked.entry((add.user_id, add.sku_id)).or_default() += 1;
    }
    Ok(Verdict {
        name: name.to_owned(),
        subject: Subject::Carts { shoppers: user_ids.len(), skus },
        checks: cart_checks(&acked, &stored, failed),
    })
}

/// The two cart checks, from the acknowledged and the stored units per line.
fn cart_checks(acked: &Lines, stored: &Lines, failed: u64) -> Vec<Check> {
    let of = |lines: &Lines, line: &(i64, i64)| lines.get(line).copied().unwrap_or(0);
    let mut short: Vec<(i64, i64)> = acked.keys().filter(|l| of(stored, l) < of(acked, l)).copied().collect();
    let mut over: Vec<(i64, i64)> = stored.keys().filter(|l| of(stored, l) > of(acked, l)).copied().collect();
    short.sort_unstable();
    over.sort_unstable();
    let examples = |lines: &[(i64, i64)]| {
        let shown: Vec<String> = lines
            .iter()
            .take(5)
            .map(|l| {
                format!("user {} SKU {}: {} stored, {} acknowledged", l.0, l.1, of(stored, l), of(acked, l))
            })
            .collect();
        if shown.is_empty() {
            String::new()
        } else {
            format!("; e.g. {}", shown.join(", "))
        }
    };
    let units = |lines: &Lines| lines.values().sum::<i64>();
    let maybe = if failed > 0 {
        format!(" ({failed} adds failed; a timed-out add may still have been stored)")
    } else {
        String::new()
    };
    vec![
        Check {
            name: "a. no lost add: every line holds its acknowledged units",
            pass: short.is_empty(),
            detail: format!(
                "{} lines hold fewer units than acknowledged; {} adds acknowledged on {} lines{}",
                short.len(),
                units(acked),
                acked.len(),
                examples(&short)
            ),
        },
        Check {
            name: "b. no phantom unit: no line holds more than acknowledged",
            pass: over.is_empty(),
            detail: format!(
                "{} lines hold more units than acknowledged; {} units stored on {} lines{maybe}{}",
                over.len(),
                units(stored),
                stored.len(),
                examples(&over)
            ),
        },
    ]
}

/// A prepared SKU after the run.
#[derive(Clone, Copy, Debug)]
struct SkuState {
    sku_id: i64,
    stock: i64,
    /// The sum of its inventory movements.
    ledger: i64,
    /// Units in its live (not cancelled) order items.
    live: i64,
}

/// Checks the prepared SKUs after checkouts: every unit is either in stock
/// or in a live order, the stock agrees with its ledger, and the orders
/// are exactly the acknowledged ones. Each SKU started with `stock` units
/// and no orders.
pub async fn check_stock(
    db: &Client,
    name: &str,
    sku_ids: &[i64],
    stock: i32,
    observed: &Observed<'_>,
) -> anyhow::Result<Verdict> {
    let rows = db
        .query(
            "WITH ledger AS (
                 SELECT sku_id, SUM(delta)::int8 AS total FROM inventory_movements
                  WHERE sku_id = ANY($1) GROUP BY sku_id),
             live AS (
                 SELECT oi.sku_id, SUM(oi.quantity)::int8 AS units
                   FROM order_items oi JOIN orders o ON o.id = oi.order_id
                  WHERE oi.sku_id = ANY($1) AND o.status <> 'cancelled' GROUP BY oi.sku_id)
             SELECT k.id AS sku_id, k.stock::int8 AS stock, COALESCE(l.total, 0)::int8 AS ledger,
                    COALESCE(v.units, 0)::int8 AS live
               FROM skus k LEFT JOIN ledger l ON l.sku_id = k.id LEFT JOIN live v ON v.sku_id = k.id
              WHERE k.id = ANY($1) ORDER BY k.id",
            &[&sku_ids],
        )
        .await
        .context("reading the prepared SKUs' stock, ledger and orders")?;
    let skus = rows
        .iter()
        .map(|row| {
            Ok(SkuState {
                sku_id: row.try_get("sku_id")?,
                stock: row.try_get("stock")?,
                ledger: row.try_get("ledger")?,
                live: row.try_get("live")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let order_rows: i64 = db
        .query_one("SELECT count(DISTINCT order_id) FROM order_items WHERE sku_id = ANY($1)", &[&sku_ids])
        .await
        .context("counting the prepared SKUs' orders")?
        .try_get(0)?;
    let found = found_orders(db, observed.acks, None).await?;
    Ok(Verdict {
        name: name.to_owned(),
        subject: Subject::Skus { skus: sku_ids.len(), stock },
        checks: stock_checks(&skus, i64::from(stock), observed, &found, order_rows),
    })
}

/// The five stock checks, from the SKUs' state, the stock each started
/// with, what the load saw, the acknowledged orders `found`, and the order
/// rows holding the SKUs.
fn stock_checks(
    skus: &[SkuState],
    initial: i64,
    observed: &Observed<'_>,
    found: &HashMap<String, (i64, i64)>,
    order_rows: i64,
) -> Vec<Check> {
    let q = i64::from(observed.quantity);
    let sold: i64 = skus.iter().map(|k| k.live).sum();
    let acked: i64 = observed.acks.iter().map(|a| i64::from(a.quantity)).sum();
    let sold_out = skus.iter().filter(|k| k.stock < q).count();
    let refusals_ok = observed.sold_out == 0 || sold_out > 0;
    let first = |bad: Vec<String>| match bad.first() {
        Some(example) => format!("; e.g. {example}"),
        None => String::new(),
    };
    let oversold: Vec<String> = skus
        .iter()
        .filter(|k| k.stock + k.live != initial)
        .map(|k| format!("SKU {}: stock {} + live {}", k.sku_id, k.stock, k.live))
        .collect();
    let off_ledger: Vec<String> = skus
        .iter()
        .filter(|k| k.stock != k.ledger)
        .map(|k| format!("SKU {}: stock {}, movements sum to {}", k.sku_id, k.stock, k.ledger))
        .collect();
    let distinct: HashSet<&str> = observed.acks.iter().map(|a| a.order_no.as_str()).collect();
    let stock_left: i64 = skus.iter().map(|k| k.stock).sum();
    vec![
        Check {
            name: "a. sold == acknowledged",
            pass: sold == acked && refusals_ok,
            detail: format!(
                "sold {sold} (units in live orders), acknowledged {acked}; {} insufficient_stock answers, \
                 {sold_out} SKUs with fewer than {q} left",
                observed.sold_out
            ),
        },
        every_ack_found("b. every 201 has its order", observed.acks, found),
        Check {
            name: "c. no oversell: stock + live == initial, per SKU",
            pass: oversold.is_empty(),
            detail: format!(
                "{} of {} SKUs off; stock {stock_left} + live {sold} vs {} x {initial}{}",
                oversold.len(),
                skus.len(),
                skus.len(),
                first(oversold.clone())
            ),
        },
        Check {
            name: "d. stock == sum of movements, per SKU",
            pass: off_ledger.is_empty(),
            detail: format!(
                "{} of {} SKUs off their ledger{}",
                off_ledger.len(),
                skus.len(),
                first(off_ledger.clone())
            ),
        },
        Check {
            name: "e. order rows == distinct 201s",
            pass: order_rows == i64::try_from(distinct.len()).unwrap_or(i64::MAX),
            detail: format!(
                "{order_rows} order rows, {} distinct acknowledged order numbers",
                distinct.len()
            ),
        },
    ]
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
        every_ack_found("b. every 201 has its order", observed.acks, found),
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

    fn lines(entries: &[((i64, i64), i64)]) -> Lines {
        entries.iter().copied().collect()
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks.iter().filter(|c| !c.pass).map(|c| &c.name[..2]).collect()
    }

    #[test]
    fn carts_holding_exactly_the_acknowledged_adds_pass() {
        let acked = lines(&[((1, 10), 3), ((2, 20), 1)]);
        let c = cart_checks(&acked, &acked.clone(), 0);
        assert!(c.iter().all(|c| c.pass), "{c:#?}");
        assert!(c[1].detail.contains("4 units stored on 2 lines"), "{c:#?}");
    }

    #[test]
    fn lost_and_phantom_cart_units_fail() {
        let acked = lines(&[((1, 10), 3), ((2, 20), 1)]);
        // One add of user 1 was lost; user 2 holds a line nobody acknowledged.
        let stored = lines(&[((1, 10), 2), ((2, 20), 1), ((2, 30), 1)]);
        let c = cart_checks(&acked, &stored, 1);
        assert_eq!(failed(&c), ["a.", "b."], "{c:#?}");
        assert!(c[0].detail.contains("user 1 SKU 10: 2 stored, 3 acknowledged"), "{c:#?}");
        assert!(c[1].detail.contains("user 2 SKU 30: 1 stored, 0 acknowledged"), "{c:#?}");
        assert!(c[1].detail.contains("1 adds failed"), "{c:#?}");
    }

    fn sku(sku_id: i64, stock: i64, live: i64) -> SkuState {
        SkuState { sku_id, stock, ledger: stock, live }
    }

    #[test]
    fn a_clean_checkout_run_passes() {
        let acks = acks(3);
        let observed = Observed { acks: &acks, sold_out: 0, quantity: 1 };
        let skus = [sku(1, 8, 2), sku(2, 9, 1), sku(3, 10, 0)];
        let c = stock_checks(&skus, 10, &observed, &found(&acks), 3);
        assert!(c.iter().all(|c| c.pass), "{c:#?}");
    }

    #[test]
    fn oversold_unledgered_lost_and_unexplained_refusals_fail() {
        let acks = acks(3);
        let observed = Observed { acks: &acks, sold_out: 0, quantity: 1 };
        // SKU 1 sold a unit it did not have; SKU 2's stock left its ledger.
        let skus = [sku(1, 8, 3), SkuState { ledger: 10, ..sku(2, 9, 1) }];
        let c = stock_checks(&skus, 10, &observed, &found(&acks), 3);
        assert_eq!(failed(&c), ["a.", "c.", "d."], "{c:#?}");
        // An acknowledged order is missing, and a refusal came while stock was left.
        let skus = [sku(1, 8, 2), sku(2, 10, 0)];
        let observed = Observed { acks: &acks, sold_out: 1, quantity: 1 };
        let mut lost = found(&acks);
        lost.remove("o2");
        let c = stock_checks(&skus, 10, &observed, &lost, 2);
        assert_eq!(failed(&c), ["a.", "b.", "e."], "{c:#?}");
    }

    #[test]
    fn refusals_pass_once_a_sku_sold_out() {
        let acks = acks(2);
        let observed = Observed { acks: &acks, sold_out: 5, quantity: 1 };
        let c = stock_checks(&[sku(1, 0, 2)], 2, &observed, &found(&acks), 2);
        assert!(c.iter().all(|c| c.pass), "{c:#?}");
    }

    #[test]
    fn subjects_show_in_text_and_flatten_into_json() {
        let verdict = |subject| Verdict { name: "x".into(), subject, checks: vec![] };
        let event = verdict(Subject::Event { event_id: 7, stock: 100, per_user_limit: 1 });
        assert_eq!(event.subject.to_string(), "event 7 (stock 100, per-user limit 1)");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!((json["event_id"].as_i64(), json["per_user_limit"].as_i64()), (Some(7), Some(1)));
        let skus = verdict(Subject::Skus { skus: 300, stock: 5 });
        assert_eq!(skus.subject.to_string(), "300 SKUs (stock 5 each at the start)");
        assert_eq!(serde_json::to_value(&skus).unwrap()["skus"].as_u64(), Some(300));
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
