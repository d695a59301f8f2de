//! The threads a set of sharded actors runs on, adopted as they start.
//!
//! Sharded actors (the chat's conversation shards, directories and routers)
//! get a home by index. A home is the arbiter of a thread that adopts it as
//! it starts (an HTTP worker): then actors live on the threads that also do
//! the socket I/O, so a message between a connection and its shard often
//! stays on one thread, and no extra threads compete with the workers for
//! the cores. An actor
//! placed before its home is adopted starts on adoption; its address works
//! from the start, and messages wait in its bounded mailbox meanwhile.

use std::sync::Mutex;
use std::thread::ThreadId;

use actix::{Arbiter, ArbiterHandle};

/// Starts an actor on the arbiter of the thread it is called on.
pub type Starter = Box<dyn FnOnce() + Send>;

/// A fixed number of homes for sharded actors.
pub struct Homes {
    slots: Mutex<Vec<Slot>>,
}

/// One home: its arbiter once adopted, else the actors waiting for it.
enum Slot {
    Waiting(Vec<Starter>),
    Adopted { arbiter: ArbiterHandle, thread: ThreadId },
}

impl Homes {
    /// `count` homes, each to be adopted by a thread with
    /// [`Homes::adopt_current`].
    pub fn adopted_later(count: usize) -> Self {
        let slots = (0..count.max(1)).map(|_| Slot::Waiting(Vec::new())).collect();
        Self { slots: Mutex::new(slots) }
    }

    /// Runs `start` in home `index` (modulo the count): now if the home is
    /// adopted, else when it is.
    pub fn place(&self, index: usize, start: Starter) {
        let mut slots = self.lock();
        let n = slots.len();
        match &mut slots[index % n] {
            Slot::Waiting(waiting) => waiting.push(start),
            Slot::Adopted { arbiter, .. } => {
                arbiter.spawn_fn(start);
            }
        }
    }

    /// Makes the calling thread's arbiter the next unadopted home and starts
    /// the actors waiting for it there. A thread that already has a home,
    /// or comes when all are taken, gets none; answers whether it got one.
    pub fn adopt_current(&self) -> bool {
        let thread = std::thread::current().id();
        let mut slots = self.lock();
        if slots.iter().any(|s| matches!(s, Slot::Adopted { thread: t, .. } if *t == thread)) {
            return false;
        }
        let Some(slot) = slots.iter_mut().find(|s| matches!(s, Slot::Waiting(_))) else { return false };
        let arbiter = Arbiter::current();
        let Slot::Waiting(waiting) =
            std::mem::replace(slot, Slot::Adopted { arbiter: arbiter.clone(), thread })
        else {
            return false;
        };
        for start in waiting {
            arbiter.spawn_fn(start);
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // A panic while holding the lock leaves the slots consistent (every
        // change is one assignment), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn counting(count: &Arc<AtomicUsize>) -> Starter {
        let count = count.clone();
        Box::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// Whether a fresh arbiter's thread gets a home.
    async fn adopt_on_new_thread(homes: &Arc<Homes>) -> bool {
        let thread = Arbiter::new();
        let (homes, (tx, rx)) = (homes.clone(), tokio::sync::oneshot::channel());
        thread.spawn_fn(move || {
            let _ = tx.send(homes.adopt_current() && !homes.adopt_current());
        });
        rx.await.unwrap_or(false)
    }

    async fn settle(started: &AtomicUsize, expected: usize) -> usize {
        for _ in 0..100 {
            if started.load(Ordering::SeqCst) >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        started.load(Ordering::SeqCst)
    }

    #[actix::test]
    async fn actors_placed_before_adoption_start_when_their_home_is_adopted() {
        let homes = Arc::new(Homes::adopted_later(2));
        let started = Arc::new(AtomicUsize::new(0));
        for i in 0..4 {
            homes.place(i, counting(&started));
        }
        tokio::task::yield_now().await;
        assert_eq!(started.load(Ordering::SeqCst), 0, "nothing runs before its home is adopted");

        assert!(adopt_on_new_thread(&homes).await, "one home per thread, and only one");
        assert_eq!(settle(&started, 2).await, 2, "the first home's two actors started");
        assert!(homes.adopt_current(), "the test's own arbiter takes the last home");
        assert_eq!(settle(&started, 4).await, 4);

        homes.place(7, counting(&started));
        assert_eq!(settle(&started, 5).await, 5, "placed into an adopted home, it starts at once");
        assert!(!adopt_on_new_thread(&homes).await, "no home is left");
    }
}
