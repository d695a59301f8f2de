//! The server's notion of "now" for deadlines stored in the database
//! (payment windows, auto-completion). Real time by default; it can be
//! moved forward so tests and drills see a week pass in a second, with
//! the very same sweepers and SQL that run in production.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// Wall-clock time plus an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The current time as the server sees it.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by` (time never runs backwards).
    pub fn advance(&self, by: TimeDelta) {
        self.offset_ms.fetch_add(by.num_milliseconds().max(0), Ordering::Relaxed);
    }
}
