//! Redis: one multiplexed connection shared by every request, plus the key
//! prefix that keeps deployments and test runs apart.

use anyhow::Context;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use crate::config::RedisSettings;

/// A cheap-to-clone handle on Redis with the configured key prefix.
#[derive(Clone)]
pub struct Kv {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

impl Kv {
    /// Connects, failing with a line that names the address tried.
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(settings.url.as_str()).context("redis.url is not a valid Redis URL")?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(3))
            .set_number_of_retries(1);
        let mut conn = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach Redis at {}: timed out", describe(&client)))?
        .map_err(|e| anyhow::anyhow!("cannot reach Redis at {}: {e}", describe(&client)))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("Redis at {} does not answer: {e}", describe(&client)))?;
        Ok(Self { client, conn, prefix: settings.key_prefix.clone() })
    }

    /// The shared multiplexed connection (clone it per use; clones are cheap).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A new dedicated connection for pub/sub (subscriptions cannot share
    /// the multiplexed one).
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// `prefix + name`: every key and channel goes through here.
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Follows a pub/sub channel for ever, reconnecting after a second when
    /// the subscription drops. `on` hears [`Signal::Resync`] whenever
    /// messages may have been missed (on every (re)subscription and loss),
    /// so in-memory state derived from the channel can start clean.
    pub async fn follow(&self, channel: &str, mut on: impl AsyncFnMut(Signal)) {
        loop {
            match self.pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(channel).await {
                    Ok(()) => {
                        on(Signal::Resync).await;
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Ok(payload) = message.get_payload::<String>() {
                                on(Signal::Message(payload)).await;
                            }
                        }
                        tracing::warn!(channel, "subscription ended; reconnecting");
                    }
                    Err(err) => tracing::warn!(channel, error = %err, "cannot subscribe"),
                },
                Err(err) => tracing::warn!(channel, error = %err, "cannot open a pub/sub connection"),
            }
            on(Signal::Resync).await;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

/// What a channel follower hears.
pub enum Signal {
    /// Messages may have been missed: rebuild from the source of truth.
    Resync,
    /// One message's payload.
    Message(String),
}

fn describe(client: &redis::Client) -> String {
    match &client.get_connection_info().addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => other.to_string(),
    }
}
