//! A per-event gate read by the HTTP layer before any message is sent.
//!
//! The stock actor stays the authority; the gate only answers the cases that
//! need no decision (not started, ended, sold out) with a couple of atomic
//! loads, so a sold-out event costs the actor nothing however many shoppers
//! keep pressing "buy".

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

/// Whether a buy request may go on to the stock actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The event is live and may have stock: ask the actor.
    Go,
    /// The event has not started (and was not opened early).
    NotStarted,
    /// The event ended or was closed.
    Ended,
    /// The actor has seen the stock run out.
    SoldOut,
}

/// Shared, lock-free view of an event's state.
#[derive(Debug)]
pub struct EventGate {
    starts_at_ms: AtomicI64,
    ends_at_ms: AtomicI64,
    opened_early: AtomicBool,
    closed: AtomicBool,
    remaining: AtomicU32,
}

impl EventGate {
    /// A gate for an event running from `starts_at_ms` to `ends_at_ms`
    /// (Unix milliseconds).
    pub fn new(starts_at_ms: i64, ends_at_ms: i64) -> Self {
        Self {
            starts_at_ms: AtomicI64::new(starts_at_ms),
            ends_at_ms: AtomicI64::new(ends_at_ms),
            opened_early: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            remaining: AtomicU32::new(u32::MAX),
        }
    }

    /// Decides a request arriving at `now_ms`.
    pub fn admit(&self, now_ms: i64) -> Admission {
        if self.closed.load(Ordering::Acquire) || now_ms >= self.ends_at_ms.load(Ordering::Acquire) {
            Admission::Ended
        } else if !self.opened_early.load(Ordering::Acquire)
            && now_ms < self.starts_at_ms.load(Ordering::Acquire)
        {
            Admission::NotStarted
        } else if self.remaining.load(Ordering::Acquire) == 0 {
            Admission::SoldOut
        } else {
            Admission::Go
        }
    }

    /// Opens the sale before its start time.
    pub fn open_now(&self) {
        self.opened_early.store(true, Ordering::Release);
    }

    /// Closes the sale at once (the kill switch).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether the sale was closed by hand.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Published by the stock actor after every change: zero means sold out.
    pub fn set_remaining(&self, remaining: u32) {
        self.remaining.store(remaining, Ordering::Release);
    }

    /// Units not yet reserved, as last published by the stock actor.
    pub fn remaining(&self) -> u32 {
        self.remaining.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_inside_the_window_unless_opened_or_closed() {
        let gate = EventGate::new(1_000, 2_000);
        assert_eq!(gate.admit(999), Admission::NotStarted);
        assert_eq!(gate.admit(1_000), Admission::Go);
        assert_eq!(gate.admit(2_000), Admission::Ended);
        gate.open_now();
        assert_eq!(gate.admit(0), Admission::Go);
        gate.set_remaining(0);
        assert_eq!(gate.admit(1_500), Admission::SoldOut);
        gate.close();
        assert_eq!(gate.admit(1_500), Admission::Ended);
    }
}
