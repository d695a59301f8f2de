//! Who is connected: user id -> live connections, sharded by user id.
//!
//! A fan-out looks each user up and hands the event to each connection
//! with `try_send`: a connection's mailbox is its bounded outbound queue, so
//! one that is full belongs to a client too slow to drain it. It is marked
//! evicted (the connection closes itself) and dropped here at once, so it
//! never grows and never slows anyone else down.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use actix::dev::SendError;
use actix::prelude::*;

use super::{slot, Connection, ConnectionId, Elsewhere, Event, Push};

/// One shard of the directory.
#[derive(Default)]
pub struct Directory {
    users: HashMap<i64, Vec<Connection>>,
}

impl Actor for Directory {
    type Context = Context<Self>;
}

/// Adds a live connection of `user_id`; answers how many the user has now.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Register {
    pub user_id: i64,
    pub connection: Connection,
}

/// Removes a connection; answers how many the user still has.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Unregister {
    pub user_id: i64,
    pub connection_id: ConnectionId,
}

/// Hands `event` to every connection of `users` but `except`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fanout {
    pub users: Vec<i64>,
    pub event: Event,
    /// The connection the event came from, which already knows.
    pub except: Option<ConnectionId>,
}

impl Handler<Register> for Directory {
    type Result = usize;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> usize {
        let connections = self.users.entry(msg.user_id).or_default();
        connections.push(msg.connection);
        connections.len()
    }
}

impl Handler<Unregister> for Directory {
    type Result = usize;

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) -> usize {
        self.remove(msg.user_id, |c| c.id == msg.connection_id)
    }
}

impl Handler<Fanout> for Directory {
    type Result = ();

    fn handle(&mut self, msg: Fanout, _: &mut Context<Self>) {
        for user_id in msg.users {
            let Some(connections) = self.users.get(&user_id) else { continue };
            let mut dropped = false;
            for connection in connections.iter().filter(|c| Some(c.id) != msg.except) {
                match connection.outbox.try_send(Push { event: msg.event.clone() }) {
                    Ok(()) => {}
                    Err(SendError::Full(_)) => {
                        tracing::info!(user_id, connection = connection.id, "slow chat connection evicted");
                        connection.evicted.store(true, Ordering::Release);
                        dropped = true;
                    }
                    Err(SendError::Closed(_)) => dropped = true,
                }
            }
            if dropped {
                self.remove(user_id, |c| c.evicted.load(Ordering::Acquire) || !c.outbox.connected());
            }
        }
    }
}

impl Directory {
    /// Drops the user's connections `gone` picks; answers how many remain.
    fn remove(&mut self, user_id: i64, gone: impl Fn(&Connection) -> bool) -> usize {
        let Some(connections) = self.users.get_mut(&user_id) else { return 0 };
        connections.retain(|c| !gone(c));
        let left = connections.len();
        if left == 0 {
            self.users.remove(&user_id);
        }
        left
    }
}

/// All directory shards, and which one holds a user.
pub struct Directories {
    shards: Vec<Addr<Directory>>,
    /// The other nodes' directories, in a cluster.
    elsewhere: Option<Elsewhere>,
}

impl Directories {
    pub(super) fn new(shards: Vec<Addr<Directory>>, elsewhere: Option<Elsewhere>) -> Self {
        Self { shards, elsewhere }
    }

    /// The shard holding `user_id`'s connections.
    pub fn of(&self, user_id: i64) -> &Addr<Directory> {
        &self.shards[slot(user_id, self.shards.len())]
    }

    /// Hands `event` to every connection of `users` but `except`, on this
    /// node and (in a cluster) on every other.
    pub fn fanout(&self, users: &[i64], event: Event, except: Option<ConnectionId>) {
        if let Some(elsewhere) = &self.elsewhere {
            elsewhere(users, &event, except);
        }
        self.fanout_here(users, event, except);
    }

    /// Hands `event` to every connection of `users` but `except` on this
    /// node, one message per shard involved.
    ///
    /// Sent with `do_send`, past the mailbox bound: events reach this point
    /// only after their message was committed, so the writer's bounded
    /// queue already limits how many there can be, and dropping one here
    /// would lose a live delivery.
    pub fn fanout_here(&self, users: &[i64], event: Event, except: Option<ConnectionId>) {
        let n = self.shards.len();
        if n == 1 || users.len() <= 1 {
            if let Some(first) = users.first() {
                self.of(*first).do_send(Fanout { users: users.to_vec(), event, except });
            }
            return;
        }
        let mut by_shard: HashMap<usize, Vec<i64>> = HashMap::new();
        for user_id in users {
            by_shard.entry(slot(*user_id, n)).or_default().push(*user_id);
        }
        for (shard, users) in by_shard {
            self.shards[shard].do_send(Fanout { users, event: event.clone(), except });
        }
    }
}
