//! Driving a load: client threads, each with its own actix System and its own
//! pooled awc client, running either a closed loop (C workers, each sending
//! its next request when the previous answer is in) or an open loop
//! (requests due at a fixed rate, latency measured from the intended send
//! time so a stalled server cannot hide its stall: no coordinated omission).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use actix_web::rt::{spawn, task, time::sleep_until, System};
use anyhow::{anyhow, bail};
use awc::Client;
use futures_util::future::join_all;
use tokio::sync::Notify;

use crate::client::{pooled, Call};
use crate::report::Recorder;

/// How requests are paced.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `concurrency` workers, each waiting for its answer before sending again.
    Closed {
        /// Workers (and connections) over all threads.
        concurrency: usize,
    },
    /// Requests due at `rate` per second whatever the answers do; at most
    /// `connections` connections are open, later requests wait for one.
    Open {
        /// Requests per second over all threads.
        rate: f64,
        /// Connections over all threads.
        connections: usize,
    },
}

/// When a phase ends.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many requests.
    Requests(u64),
    /// After this long (requests in flight still complete and count).
    Duration(Duration),
}

/// A load: pacing, end, client threads and per-request timeout.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub mode: Mode,
    pub stop: Stop,
    pub threads: usize,
    pub timeout: Duration,
}

impl Load {
    /// Checks the combination is drivable.
    pub fn validate(&self) -> anyhow::Result<()> {
        let connections = match self.mode {
            Mode::Closed { concurrency } => concurrency,
            Mode::Open { rate, connections } => {
                if !(rate.is_finite() && rate > 0.0) {
                    bail!("--rate must be a positive number");
                }
                connections
            }
        };
        if self.threads == 0 || connections < self.threads {
            bail!(
                "need 1 <= --threads <= --concurrency (got {} threads, {connections} connections)",
                self.threads
            );
        }
        match self.stop {
            Stop::Requests(0) => bail!("--requests must be positive"),
            Stop::Duration(d) if d.is_zero() => bail!("--duration must be positive"),
            _ => Ok(()),
        }
    }

    /// A one-line description for the report.
    pub fn describe(&self) -> String {
        let threads =
            if self.threads == 1 { "1 thread".to_owned() } else { format!("{} threads", self.threads) };
        match self.mode {
            Mode::Closed { concurrency } => format!("closed loop, {concurrency} connections, {threads}"),
            Mode::Open { rate, connections } => {
                format!("open loop at {rate} req/s, up to {connections} connections, {threads}")
            }
        }
    }
}

/// What a phase recorded and how long it took.
pub struct PhaseResult {
    /// All threads' records, merged.
    pub recorder: Recorder,
    /// From the first thread's start to the last answer.
    pub elapsed: Duration,
}

/// Drives `call` with `load` on `load.threads` client threads and waits for
/// every request to finish.
pub async fn run(load: Load, call: Arc<Call>) -> anyhow::Result<PhaseResult> {
    load.validate()?;
    task::spawn_blocking(move || run_threads(load, &call)).await.map_err(|e| anyhow!("load threads: {e}"))?
}

fn run_threads(load: Load, call: &Arc<Call>) -> anyhow::Result<PhaseResult> {
    let tickets = Arc::new(Tickets::new(load.stop));
    let barrier = Arc::new(Barrier::new(load.threads));
    let handles: Vec<_> = (0..load.threads)
        .map(|index| {
            let (call, tickets, barrier) = (Arc::clone(call), Arc::clone(&tickets), Arc::clone(&barrier));
            thread::Builder::new()
                .name(format!("loadtest-{index}"))
                .spawn(move || System::new().block_on(client_thread(load, index, call, tickets, barrier)))
        })
        .collect::<Result<_, _>>()?;
    let mut merged: Option<(Recorder, Instant, Instant)> = None;
    for handle in handles {
        let (recorder, started, ended) = handle.join().map_err(|_| anyhow!("a load thread panicked"))??;
        merged = Some(match merged {
            None => (recorder, started, ended),
            Some((mut all, first, last)) => {
                all.merge(recorder)?;
                (all, first.min(started), last.max(ended))
            }
        });
    }
    let (recorder, started, ended) = merged.ok_or_else(|| anyhow!("no load threads"))?;
    Ok(PhaseResult { recorder, elapsed: ended.duration_since(started) })
}

/// One client thread: its share of the connections, then the loop.
async fn client_thread(
    load: Load,
    index: usize,
    call: Arc<Call>,
    tickets: Arc<Tickets>,
    barrier: Arc<Barrier>,
) -> anyhow::Result<(Recorder, Instant, Instant)> {
    let connections = match load.mode {
        Mode::Closed { concurrency } => share(concurrency, load.threads, index),
        Mode::Open { connections, .. } => share(connections, load.threads, index),
    };
    let worker = Rc::new(Worker {
        call,
        client: pooled(connections, load.timeout),
        recorder: RefCell::new(Recorder::new()?),
        in_flight: Cell::new(0),
        idle: Notify::new(),
    });
    // Start together, so one thread's start-up is not another's head start.
    barrier.wait();
    let started = Instant::now();
    match load.mode {
        Mode::Closed { .. } => closed_loop(&worker, connections, &tickets).await,
        Mode::Open { rate, .. } => {
            let total = open_loop_total(load.stop, rate);
            open_loop(&worker, started, rate, own_indices(total, load.threads, index)).await;
        }
    }
    let ended = Instant::now();
    let worker = Rc::try_unwrap(worker).map_err(|_| anyhow!("requests still hold the worker"))?;
    Ok((worker.recorder.into_inner(), started, ended))
}

/// What one client thread's requests share.
struct Worker {
    call: Arc<Call>,
    client: Client,
    recorder: RefCell<Recorder>,
    /// Open loop: requests spawned and not yet answered.
    in_flight: Cell<usize>,
    /// Notified when `in_flight` drops to 0.
    idle: Notify,
}

impl Worker {
    /// Sends request `i` and records its latency since `since`.
    async fn request(&self, i: u64, since: Instant) {
        let answer = self.call.execute(&self.client, i).await;
        self.recorder.borrow_mut().record(answer, since.elapsed());
    }
}

/// Closed loop: `workers` request loops sharing the phase's tickets.
async fn closed_loop(worker: &Worker, workers: usize, tickets: &Tickets) {
    join_all((0..workers).map(|_| async {
        while let Some(i) = tickets.next() {
            worker.request(i, Instant::now()).await;
        }
    }))
    .await;
}

/// Open loop: spawns each request at its due time, records latency from that
/// time, then waits for the stragglers.
async fn open_loop(worker: &Rc<Worker>, started: Instant, rate: f64, indices: impl Iterator<Item = u64>) {
    for i in indices {
        let due = started + due_offset(i, rate);
        if Instant::now() < due {
            sleep_until(due.into()).await;
        }
        worker.in_flight.set(worker.in_flight.get() + 1);
        let worker = Rc::clone(worker);
        spawn(async move {
            worker.request(i, due).await;
            worker.in_flight.set(worker.in_flight.get() - 1);
            if worker.in_flight.get() == 0 {
                worker.idle.notify_one();
            }
        });
    }
    while worker.in_flight.get() > 0 {
        worker.idle.notified().await;
    }
}

/// Hands out request indices to closed-loop workers until the phase ends.
struct Tickets {
    next: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
}

impl Tickets {
    fn new(stop: Stop) -> Self {
        let (limit, deadline) = match stop {
            Stop::Requests(n) => (Some(n), None),
            Stop::Duration(d) => (None, Some(Instant::now() + d)),
        };
        Self { next: AtomicU64::new(0), limit, deadline }
    }

    /// The next request index, or `None` once the phase is over.
    fn next(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.limit {
            Some(n) if i >= n => None,
            _ => Some(i),
        }
    }
}

/// Thread `index`'s share of `total` items split over `threads`: the first
/// `total % threads` threads take one more.
pub fn share(total: usize, threads: usize, index: usize) -> usize {
    total / threads + usize::from(index < total % threads)
}

/// When request `i` is due in an open loop at `rate` per second, from the start.
pub fn due_offset(i: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// How many requests an open loop at `rate` sends before `stop`: all those
/// due strictly before the end of a duration.
pub fn open_loop_total(stop: Stop, rate: f64) -> u64 {
    match stop {
        Stop::Requests(n) => n,
        Stop::Duration(d) => (d.as_secs_f64() * rate).ceil() as u64,
    }
}

/// The global request indices thread `index` of `threads` sends in an open
/// loop: every `threads`-th, so together the threads keep the global rate.
pub fn own_indices(total: u64, threads: usize, index: usize) -> impl Iterator<Item = u64> {
    (index as u64..total).step_by(threads)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::client::{Buyer, Shopper, Targets};
    use crate::outcome::Outcome;

    #[test]
    fn shares_cover_the_total() {
        assert_eq!((0..3).map(|i| share(256, 3, i)).collect::<Vec<_>>(), [86, 85, 85]);
        assert_eq!((0..2).map(|i| share(256, 2, i)).sum::<usize>(), 256);
    }

    #[test]
    fn open_loop_requests_are_evenly_spaced() {
        assert_eq!(due_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(due_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(due_offset(2500, 1000.0), Duration::from_millis(2500));
        assert_eq!(due_offset(3, 4.0), Duration::from_millis(750));
    }

    #[test]
    fn open_loop_total_counts_requests_due_before_the_end() {
        assert_eq!(open_loop_total(Stop::Requests(42), 1.0), 42);
        assert_eq!(open_loop_total(Stop::Duration(Duration::from_secs(10)), 1000.0), 10_000);
        // Due at 0, 0.4, 0.8 s: three requests before 1 s.
        assert_eq!(open_loop_total(Stop::Duration(Duration::from_secs(1)), 2.5), 3);
    }

    #[test]
    fn threads_interleave_the_global_schedule() {
        let mut all: Vec<u64> = (0..3).flat_map(|t| own_indices(10, 3, t)).collect();
        assert_eq!(own_indices(10, 3, 1).collect::<Vec<_>>(), [1, 4, 7]);
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn tickets_stop_at_the_request_limit() {
        let tickets = Tickets::new(Stop::Requests(3));
        let got: Vec<_> = std::iter::from_fn(|| tickets.next()).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(tickets.next(), None);
    }

    #[test]
    fn tickets_stop_at_the_deadline() {
        let tickets = Tickets::new(Stop::Duration(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(tickets.next(), None);
    }

    #[test]
    fn validation_rejects_undrivable_loads() {
        let load =
            |mode, threads| Load { mode, stop: Stop::Requests(1), threads, timeout: Duration::from_secs(1) };
        assert!(load(Mode::Closed { concurrency: 1 }, 2).validate().is_err());
        assert!(load(Mode::Open { rate: 0.0, connections: 4 }, 1).validate().is_err());
        assert!(load(Mode::Closed { concurrency: 256 }, 2).validate().is_ok());
    }

    /// A stand-in server: `/healthz` answers 200, and so does the cart; the
    /// buy path cycles through 201, 409 `sold_out` and 500; checkout
    /// through a 201 with one order, 409 `insufficient_stock` and a 201
    /// with two orders (which a buy-now cannot place).
    async fn fake_server() -> Targets {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let answers = web::Data::new(AtomicU64::new(0));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(answers.clone())
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
                )
                .route(
                    "/buy",
                    web::post().to(|n: web::Data<AtomicU64>| async move {
                        match n.fetch_add(1, Ordering::Relaxed) % 3 {
                            0 => HttpResponse::Created()
                                .json(serde_json::json!({"order_no": "x", "quantity": 1})),
                            1 => HttpResponse::Conflict().json(serde_json::json!({"code": "sold_out"})),
                            _ => HttpResponse::InternalServerError()
                                .json(serde_json::json!({"code": "internal"})),
                        }
                    }),
                )
                .route(
                    "/api/cart/lines",
                    web::post().to(|| async { HttpResponse::Ok().json(serde_json::json!({"shops": []})) }),
                )
                .route(
                    "/api/checkout",
                    web::post().to(|n: web::Data<AtomicU64>| async move {
                        let order = serde_json::json!({"order_no": "c", "quantity": 1});
                        match n.fetch_add(1, Ordering::Relaxed) % 3 {
                            0 => HttpResponse::Created().json(serde_json::json!({"orders": [order]})),
                            1 => HttpResponse::Conflict()
                                .json(serde_json::json!({"code": "insufficient_stock"})),
                            _ => HttpResponse::Created().json(serde_json::json!({"orders": [order, order]})),
                        }
                    }),
                )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        spawn(server.run());
        Targets::parse(&format!("http://127.0.0.1:{port}")).unwrap()
    }

    #[actix_web::test]
    async fn closed_loop_sends_exactly_the_requests_asked() {
        let targets = fake_server().await;
        let buyers = vec![Buyer::new(1, "t").unwrap(), Buyer::new(2, "u").unwrap()];
        let call = Arc::new(Call::buy(&targets, "/buy", buyers, 1).unwrap());
        let load = Load {
            mode: Mode::Closed { concurrency: 8 },
            stop: Stop::Requests(99),
            threads: 2,
            timeout: Duration::from_secs(5),
        };
        let result = run(load, call).await.unwrap();
        let r = &result.recorder;
        assert_eq!(
            (r.count(Outcome::Created), r.count(Outcome::SoldOut), r.count(Outcome::Error)),
            (33, 33, 33)
        );
        assert_eq!(r.acks().len(), 33);
        assert!(r.acks().iter().all(|a| a.order_no == "x" && a.quantity == 1));
    }

    #[actix_web::test]
    async fn cart_adds_and_checkouts_keep_who_bought_what() {
        let targets = fake_server().await;
        let buyers = vec![Buyer::new(1, "t").unwrap(), Buyer::new(2, "u").unwrap()];
        let load = Load {
            mode: Mode::Closed { concurrency: 4 },
            stop: Stop::Requests(6),
            threads: 1,
            timeout: Duration::from_secs(5),
        };
        let call = Call::cart_add(&targets, buyers.clone(), &[10, 20, 30]).unwrap();
        let added = run(load, Arc::new(call)).await.unwrap().recorder;
        let mut lines: Vec<_> = added.adds().iter().map(|a| (a.user_id, a.sku_id)).collect();
        lines.sort_unstable();
        // Request i: buyer i mod 2, SKU i mod 3.
        assert_eq!(lines, [(1, 10), (1, 20), (1, 30), (2, 10), (2, 20), (2, 30)]);

        let shoppers = buyers.into_iter().map(|buyer| Shopper { buyer, address_id: 5 }).collect();
        let call = Call::checkout(&targets, shoppers, vec![10, 20, 30]).unwrap();
        let r = run(load, Arc::new(call)).await.unwrap().recorder;
        assert_eq!(
            (r.count(Outcome::Created), r.count(Outcome::InsufficientStock), r.count(Outcome::Error)),
            (2, 2, 2)
        );
        assert!(r.acks().iter().all(|a| a.order_no == "c" && a.quantity == 1), "{:?}", r.acks());
    }

    #[actix_web::test]
    async fn open_loop_keeps_its_schedule() {
        let targets = fake_server().await;
        let call = Arc::new(Call::healthz(&targets).unwrap());
        let load = Load {
            mode: Mode::Open { rate: 200.0, connections: 4 },
            stop: Stop::Duration(Duration::from_millis(500)),
            threads: 2,
            timeout: Duration::from_secs(5),
        };
        let result = run(load, call).await.unwrap();
        assert_eq!(result.recorder.count(Outcome::Ok), 100);
        // The last request is due at 495 ms.
        assert!(result.elapsed >= Duration::from_millis(495), "{:?}", result.elapsed);
        assert!(result.elapsed < Duration::from_secs(2), "{:?}", result.elapsed);
    }
}
