//! Jobs that run once per cluster. Several rs-cms nodes share one Postgres;
//! the order sweepers and the refund worker should run on one of them at a
//! time, and move to another when that node dies. The node that holds a
//! Postgres session-level advisory lock is the leader: the lock lives on a
//! connection taken out of the pool for the purpose, so when the node dies
//! (or its connection does) Postgres releases the lock and the next node to
//! ask gets it within one check interval.
//!
//! Exclusivity is for efficiency, not for correctness: the jobs lock each
//! order or refund they touch (`SKIP LOCKED`), so the moment during a
//! hand-over when two nodes both believe they lead does no harm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

/// The advisory lock key of the cluster-wide jobs (advisory locks are per
/// database, so clusters on different databases never meet).
pub const JOBS_LOCK_KEY: i64 = 0x7273_636d_735f_6a62; // "rscms_jb"

/// Whether this node runs the cluster-wide jobs now.
#[derive(Debug, Default)]
pub struct Leadership {
    held: AtomicBool,
}

impl Leadership {
    /// Whether this node holds the lock (as of its last check).
    pub fn is_leader(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Competes for the lock forever: tries every `interval` while another
    /// node holds it, and while holding it checks every `interval` that the
    /// connection (hence the lock) is still alive.
    pub async fn run(self: Arc<Self>, pool: Pool, interval: Duration) {
        loop {
            if let Err(err) = self.hold(&pool, interval).await {
                if self.held.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %err, "lost the cluster-jobs lock; competing for it again");
                } else {
                    tracing::debug!(error = %err, "cannot compete for the cluster-jobs lock yet");
                }
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Takes a connection out of the pool for good, waits until it holds
    /// the lock, then keeps checking it; returns only with the error that
    /// ended it (dropping the connection, which releases the lock).
    async fn hold(&self, pool: &Pool, interval: Duration) -> anyhow::Result<()> {
        let client = deadpool_postgres::Object::take(pool.get().await?);
        loop {
            let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&JOBS_LOCK_KEY]).await?;
            if row.try_get::<_, bool>(0)? {
                break;
            }
            tokio::time::sleep(interval).await;
        }
        self.held.store(true, Ordering::Release);
        tracing::info!("this node now runs the cluster-wide jobs");
        loop {
            tokio::time::sleep(interval).await;
            client.simple_query("SELECT 1").await?;
        }
    }
}
