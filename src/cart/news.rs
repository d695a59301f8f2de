//! Cart news between nodes: after a batch of cart changes commits, the
//! node names the shoppers it changed on `{prefix}cart:changed`, and every
//! other node evicts its cart actor of each (its memory may be stale).
//!
//! One message per committed writer batch, `{node} {user} {user} ...`,
//! sent before the batch's callers are answered, so by the time a shopper
//! hears "added" on one node the others have been told. The node id lets
//! a node skip its own news: its actor made the change and is current.

use std::collections::BTreeSet;
use std::time::Duration;

use actors::cart::{CartWrite, CartWriteOutcome};
use actors::writer::BatchStore;
use redis::AsyncCommands;

use super::store::PgCartLines;
use crate::kv::{Kv, Signal};

/// Longest a committed batch waits to tell the other nodes. Past it the
/// answer goes out anyway: the change is committed, other nodes' actors
/// cannot overwrite it (see `actors::cart`), and checkout reads the
/// database (see [`super::service::selected_lines`]).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(100);

/// This node's end of the cart channel.
pub struct CartNews {
    kv: Kv,
    channel: String,
    node: String,
}

impl CartNews {
    /// A handle with a fresh node id (a restarted process is a new node).
    pub fn new(kv: Kv) -> Self {
        Self { channel: kv.key("cart:changed"), kv, node: uuid::Uuid::new_v4().simple().to_string() }
    }

    /// Tells the other nodes that `users`' carts changed. Never fails the
    /// caller: the change is committed by then (see [`PUBLISH_TIMEOUT`]).
    pub async fn changed(&self, users: impl IntoIterator<Item = i64>) {
        let users: BTreeSet<i64> = users.into_iter().collect();
        if users.is_empty() {
            return;
        }
        let mut message = self.node.clone();
        for user in users {
            message.push(' ');
            message.push_str(&user.to_string());
        }
        let mut conn = self.kv.conn();
        match tokio::time::timeout(PUBLISH_TIMEOUT, conn.publish::<_, _, ()>(&self.channel, message)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot tell other nodes of cart changes"),
            Err(_) => tracing::warn!("telling other nodes of cart changes timed out"),
        }
    }

    /// Follows the channel for ever: `on` hears the shoppers other nodes
    /// changed, and [`Signal::Resync`] when news may have been missed.
    pub async fn follow(&self, mut on: impl AsyncFnMut(Heard)) {
        self.kv
            .follow(&self.channel, async |signal| match signal {
                Signal::Resync => on(Heard::Resync).await,
                Signal::Message(message) => match parse(&message) {
                    Some((node, _)) if node == self.node => {}
                    Some((_, users)) => on(Heard::Changed(users)).await,
                    None => tracing::warn!(payload = %message, "unreadable cart news"),
                },
            })
            .await;
    }
}

/// What a node hears on the cart channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// Another node changed these shoppers' carts.
    Changed(Vec<i64>),
    /// News may have been missed: every cart actor may be stale.
    Resync,
}

/// Reads `{node} {user} ...`.
fn parse(message: &str) -> Option<(&str, Vec<i64>)> {
    let mut words = message.split(' ');
    let node = words.next().filter(|node| !node.is_empty())?;
    let users = words.map(str::parse).collect::<Result<Vec<i64>, _>>().ok()?;
    Some((node, users))
}

/// The cart store of a node: the batch goes to Postgres, then its shoppers
/// are named to the other nodes, before anyone is answered.
pub struct AnnouncedCartLines {
    lines: PgCartLines,
    news: std::sync::Arc<CartNews>,
}

impl AnnouncedCartLines {
    /// Writes through `lines` and announces on `news`.
    pub fn new(lines: PgCartLines, news: std::sync::Arc<CartNews>) -> Self {
        Self { lines, news }
    }
}

impl BatchStore for AnnouncedCartLines {
    type Item = CartWrite;
    type Outcome = CartWriteOutcome;

    async fn write_batch(&self, items: &[CartWrite]) -> Result<Vec<CartWriteOutcome>, String> {
        let outcomes = self.lines.write_batch(items).await?;
        // Superseded writes may have stored some lines too: name everyone.
        self.news.changed(items.iter().map(|item| item.user_id)).await;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_node_and_its_shoppers() {
        assert_eq!(parse("n1 4 5"), Some(("n1", vec![4, 5])));
        assert_eq!(parse("n1"), Some(("n1", vec![])));
        assert_eq!(parse("n1 x"), None);
        assert_eq!(parse(""), None);
    }
}
