//! The group-commit writer.
//!
//! Callers submit items into a bounded queue and wait for their own answer.
//! One task takes the first waiting item, gathers more for at most
//! `max_delay` (or until `max_rows`), writes them all through the
//! [`BatchStore`] in one transaction, and only then answers every caller:
//! acknowledged means committed. While a batch is being written the next
//! one fills up, so batches grow with load and the cost of a commit (its
//! fsync above all) is shared by everyone in it.
//!
//! Up to `max_in_flight` batches are written at the same time (each on its
//! own connection), so the database's cores share the work and one slow
//! fsync does not stall everyone.
//!
//! A full queue is refused at once ([`WriteError::Overloaded`]) rather than
//! queued without bound; a failed commit fails every item of its batch
//! ([`WriteError::Failed`]) so the callers can undo and report it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

/// Persists batches. Implemented by the server over Postgres; tests and
/// benches use in-memory stores.
pub trait BatchStore: Send + Sync + 'static {
    /// One unit of work (e.g. one reservation).
    type Item: Send + 'static;
    /// What the store says about one item once the batch committed.
    type Outcome: Send + 'static;

    /// Writes every item in one transaction and returns one outcome per item,
    /// in order. An error means nothing of the batch was written.
    fn write_batch(
        &self,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Outcome>, String>> + Send;
}

/// Why an item was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The queue is full: shed load.
    #[error("writer queue is full")]
    Overloaded,
    /// The batch's transaction failed; nothing of it was written.
    #[error("batch commit failed: {0}")]
    Failed(String),
    /// The writer has stopped.
    #[error("writer stopped")]
    Closed,
}

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Largest batch.
    pub max_rows: usize,
    /// Longest the first item of a batch waits for company.
    pub max_delay: Duration,
    /// Items that may wait for the writer before new ones are refused.
    pub queue_capacity: usize,
    /// Batches being written at the same time.
    pub max_in_flight: usize,
}

/// What one batch did, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct BatchReport {
    pub rows: usize,
    pub elapsed: Duration,
    pub committed: bool,
}

type Reply<S> = oneshot::Sender<Result<<S as BatchStore>::Outcome, WriteError>>;

struct Pending<S: BatchStore> {
    item: S::Item,
    reply: Reply<S>,
}

/// Submits items to a running writer. Cheap to clone.
pub struct WriterHandle<S: BatchStore> {
    queue: mpsc::Sender<Pending<S>>,
}

impl<S: BatchStore> Clone for WriterHandle<S> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<S: BatchStore> WriterHandle<S> {
    /// Queues `item`; the receiver resolves once its batch is committed (or
    /// failed). Refuses at once when the queue is full.
    pub fn submit(
        &self,
        item: S::Item,
    ) -> Result<oneshot::Receiver<Result<S::Outcome, WriteError>>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue.try_send(Pending { item, reply }).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => WriteError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
        })?;
        Ok(answer)
    }

    /// Items waiting for the writer right now.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// Starts a writer on the current Tokio runtime. `on_batch` is called after
/// every batch (for metrics).
pub fn spawn_writer<S: BatchStore>(
    store: S,
    config: WriterConfig,
    on_batch: Arc<dyn Fn(BatchReport) + Send + Sync>,
) -> WriterHandle<S> {
    let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
    tokio::spawn(run(store, receiver, config, on_batch));
    WriterHandle { queue }
}

async fn run<S: BatchStore>(
    store: S,
    mut receiver: mpsc::Receiver<Pending<S>>,
    config: WriterConfig,
    on_batch: Arc<dyn Fn(BatchReport) + Send + Sync>,
) {
    let store = Arc::new(store);
    let max_rows = config.max_rows.max(1);
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        // Wait for a free slot first: meanwhile the queue fills the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = receiver.recv().await else { return };
        let mut batch = Vec::with_capacity(max_rows);
        batch.push(first);
        gather(&mut receiver, &mut batch, max_rows, config.max_delay).await;
        let (store, on_batch) = (store.clone(), on_batch.clone());
        tokio::spawn(async move {
            commit(&*store, batch, &*on_batch).await;
            drop(slot);
        });
    }
}

/// Writes one batch and answers each of its callers.
async fn commit<S: BatchStore>(
    store: &S,
    batch: Vec<Pending<S>>,
    on_batch: &(dyn Fn(BatchReport) + Send + Sync),
) {
    let (items, replies): (Vec<S::Item>, Vec<Reply<S>>) =
        batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    let started = Instant::now();
    let result = store.write_batch(&items).await;
    let elapsed = started.elapsed();
    match result {
        Ok(outcomes) if outcomes.len() == replies.len() => {
            on_batch(BatchReport { rows: items.len(), elapsed, committed: true });
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(outcomes) => {
            // A store bug, not a database failure: fail loudly in the log and to callers.
            tracing::error!(
                items = items.len(),
                outcomes = outcomes.len(),
                "store returned wrong outcome count"
            );
            fail_all(replies, "store returned a wrong outcome count");
        }
        Err(error) => {
            tracing::warn!(rows = items.len(), %error, "group commit failed");
            on_batch(BatchReport { rows: items.len(), elapsed, committed: false });
            fail_all(replies, &error);
        }
    }
}

/// Adds to `batch` what is already queued, then waits up to `max_delay`
/// from now for more, until `max_rows`.
async fn gather<S: BatchStore>(
    receiver: &mut mpsc::Receiver<Pending<S>>,
    batch: &mut Vec<Pending<S>>,
    max_rows: usize,
    max_delay: Duration,
) {
    let deadline = tokio::time::Instant::now() + max_delay;
    while batch.len() < max_rows {
        match receiver.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {
                if max_delay.is_zero() {
                    return;
                }
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(pending)) => batch.push(pending),
                    Ok(None) | Err(_) => return,
                }
            }
        }
    }
}

fn fail_all<T>(replies: Vec<oneshot::Sender<Result<T, WriteError>>>, error: &str) {
    for reply in replies {
        let _ = reply.send(Err(WriteError::Failed(error.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;

    /// Records batch sizes; fails batches containing a negative number.
    #[derive(Default, Clone)]
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<i32>>>>,
    }

    impl BatchStore for Recorder {
        type Item = i32;
        type Outcome = i32;

        async fn write_batch(&self, items: &[i32]) -> Result<Vec<i32>, String> {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if items.iter().any(|i| *i < 0) {
                return Err("negative".into());
            }
            self.batches.lock().unwrap().push(items.to_vec());
            Ok(items.iter().map(|i| i * 10).collect())
        }
    }

    fn config(max_rows: usize, queue_capacity: usize) -> WriterConfig {
        WriterConfig { max_rows, max_delay: Duration::from_millis(1), queue_capacity, max_in_flight: 2 }
    }

    #[tokio::test]
    async fn batches_concurrent_items_and_answers_each_after_commit() {
        let store = Recorder::default();
        let writer = spawn_writer(store.clone(), config(64, 1000), Arc::new(|_| {}));
        let answers: Vec<_> = (0..200).map(|i| writer.submit(i).unwrap()).collect();
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.await.unwrap(), Ok(i as i32 * 10));
        }
        let batches = store.batches.lock().unwrap();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 200);
        assert!(batches.len() < 200 / 8, "items were not batched: {} batches", batches.len());
        assert!(batches.iter().all(|b| b.len() <= 64));
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_item_of_its_batch() {
        let writer = spawn_writer(Recorder::default(), config(64, 1000), Arc::new(|_| {}));
        let a = writer.submit(1).unwrap();
        let b = writer.submit(-1).unwrap();
        assert!(matches!(a.await.unwrap(), Err(WriteError::Failed(_))));
        assert!(matches!(b.await.unwrap(), Err(WriteError::Failed(_))));
        assert_eq!(writer.submit(2).unwrap().await.unwrap(), Ok(20));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let writer = spawn_writer(Recorder::default(), config(1, 2), Arc::new(|_| {}));
        let mut refused = 0;
        let mut accepted = Vec::new();
        for i in 0..50 {
            match writer.submit(i) {
                Ok(answer) => accepted.push(answer),
                Err(WriteError::Overloaded) => refused += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(refused > 0);
        for answer in accepted {
            assert!(answer.await.unwrap().is_ok());
        }
    }
}
