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

/// Starts `actor` on `arbiter` with room for `capacity` waiting messages;
/// beyond that `try_send` refuses at once.
pub fn start_on<A>(actor: A, capacity: usize, arbiter: &ArbiterHandle) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Send,
{
    let (sender, receiver) = actix::dev::channel::channel(capacity);
    let addr = Addr::new(sender);
    arbiter.spawn_fn(move || {
        let _ = Context::with_receiver(receiver).run(actor);
    });
    addr
}
