//! Starting an actor with a bounded mailbox.
//!
//! `Actor::start` applies a capacity set in `started` only once the actor
//! runs, so an opening burst would meet the default of 16 instead. Here the
//! channel is made with the capacity first, so the bound holds from the
//! first message.
//!
//! Keep the returned `Addr` in one place and call `try_send` on it by
//! reference: every clone of an `Addr` may push one message past the bound
//! (as with any futures-style channel), so cloning it per request would
//! make the mailbox unbounded in effect.

use actix::{Actor, Addr, ArbiterHandle, Context};

use crate::homes::{Homes, Starter};

/// Starts `actor` on `arbiter` with room for `capacity` waiting messages;
/// beyond that `try_send` refuses at once.
pub fn start_on<A>(actor: A, capacity: usize, arbiter: &ArbiterHandle) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Send,
{
    let (addr, start) = prepare(actor, capacity);
    arbiter.spawn_fn(start);
    addr
}

/// Starts `actor` in home `index` of `homes` (when that home is adopted),
/// its address usable and bounded at once.
pub fn start_in<A>(actor: A, capacity: usize, homes: &Homes, index: usize) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Send,
{
    let (addr, start) = prepare(actor, capacity);
    homes.place(index, start);
    addr
}

/// The bounded address of `actor`, and what runs it on the calling arbiter.
fn prepare<A>(actor: A, capacity: usize) -> (Addr<A>, Starter)
where
    A: Actor<Context = Context<A>> + Send,
{
    let (sender, receiver) = actix::dev::channel::channel(capacity);
    let start = Box::new(move || {
        let _ = Context::with_receiver(receiver).run(actor);
    });
    (Addr::new(sender), start)
}
