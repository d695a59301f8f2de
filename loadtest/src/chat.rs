//! `loadtest chat`: many WebSocket connections held open, messages sent at a
//! fixed rate, every delivery checked.
//!
//! Prepared: shoppers and agents (logged in), shops whose staff the agents
//! are, and one conversation per shopper opened through the API before any
//! agent is online (so the agents' connections route the shops' queues).
//! Then every account connects (one connection each) on the client
//! threads, the server's memory is read before and after, and each
//! connection sends into its conversations at its share of `--rate`. A
//! message carries the time it was due, so latency counts from then (no
//! coordinated omission). Every acked message must reach the other member
//! exactly once: what never arrives is lost, what arrives twice is a
//! duplicate. The reconnect phase drops and reopens every connection in the
//! middle of the load; each reconnected client resumes from the last seq it
//! got per conversation and retries its unacked sends with the same client
//! ids, and the same exactly-once check runs over the whole phase.
//!
//! With several `--target`s (the nodes of a cluster), connections are
//! spread over them round-robin and every reconnect goes to the next node,
//! so each resume happens on a node other than the one the client left.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::rt::{spawn, System};
use anyhow::{anyhow, bail, Context};
use awc::http::header::AUTHORIZATION;
use awc::ws::{Codec, Frame, Message};
use awc::{BoxedSocket, Client, Connector};
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::cli::ChatArgs;
use crate::client::{post_json, Buyer, Targets};
use crate::prepare;

type Sink = SplitSink<actix_codec::Framed<BoxedSocket, Codec>, Message>;

/// Microseconds since the run started: the clock in every message.
fn now_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The scenario's result.
#[derive(Debug, Serialize)]
pub struct ChatReport {
    pub connections_held: usize,
    pub shoppers: usize,
    pub agents: usize,
    /// Conversations with an agent (the others stayed queued).
    pub conversations_routed: usize,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub server_kib_per_connection: Option<f64>,
    pub phases: Vec<PhaseResult>,
    pub pass: bool,
}

/// One sending phase.
#[derive(Debug, Serialize)]
pub struct PhaseResult {
    pub name: String,
    pub target_rate: f64,
    /// The sending window plus the wait for answers still in flight.
    pub elapsed_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub send_errors: u64,
    pub delivered: u64,
    /// Deliveries over the sending window (`--duration`).
    pub delivered_per_sec: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p99_9: f64,
    pub latency_ms_max: f64,
    /// p99 of the messages due in each second of the phase: a warm-up or a
    /// stall shows here, where the phase's p99 only says that one happened.
    pub latency_ms_p99_by_second: Vec<f64>,
    /// Acked messages that never reached the other member.
    pub lost: u64,
    /// Deliveries of a message already delivered to that connection.
    pub duplicated: u64,
    /// Connections reopened during the phase.
    pub reconnected: u64,
    /// Error frames by code.
    pub errors: std::collections::BTreeMap<String, u64>,
}

impl ChatReport {
    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "chat: {} connections held ({} shoppers, {} agents), {} conversations routed\n",
            self.connections_held, self.shoppers, self.agents, self.conversations_routed
        );
        if let (Some(before), Some(after), Some(per)) =
            (self.server_rss_before_kib, self.server_rss_after_kib, self.server_kib_per_connection)
        {
            out += &format!("  server RSS {before} KiB -> {after} KiB: {per:.1} KiB per connection\n");
        }
        for p in &self.phases {
            out += &format!(
                "  {}: target {:.0} msg/s, {:.2} s: sent {}, acked {}, errors {}, delivered {} ({:.0} msg/s), \
                 latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms, lost {}, duplicated {}, \
                 reconnected {}, errors by code {:?}\n",
                p.name,
                p.target_rate,
                p.elapsed_secs,
                p.sent,
                p.acked,
                p.send_errors,
                p.delivered,
                p.delivered_per_sec,
                p.latency_ms_p50,
                p.latency_ms_p99,
                p.latency_ms_p99_9,
                p.latency_ms_max,
                p.lost,
                p.duplicated,
                p.reconnected,
                p.errors
            );
            let by_second: Vec<String> =
                p.latency_ms_p99_by_second.iter().map(|ms| format!("{ms:.0}")).collect();
            out += &format!("    p99 by second (ms): {}\n", by_second.join(" "));
        }
        out += &format!(
            "result: {}",
            if self.pass { "PASS (nothing lost, nothing duplicated)" } else { "FAIL" }
        );
        out
    }
}

/// One account's connection and what it has seen.
struct Conn {
    user_id: i64,
    auth: awc::http::header::HeaderValue,
    conversations: Vec<i64>,
    next_conversation: usize,
    sink: Option<Sink>,
    /// Bumped on each reconnect, so a stale reader stops counting.
    generation: u64,
    /// Unacked sends by message number (the client id is
    /// `<user_id>-<number>`): (conversation, due time stamp), enough to
    /// build the frame again for a retry.
    pending: HashMap<u64, (i64, u64)>,
    /// Highest seq delivered per conversation.
    last_seq: HashMap<i64, i64>,
    next_msg: u64,
}

/// What one client thread counted in a phase.
#[derive(Default)]
struct Tally {
    sent: u64,
    errors: u64,
    /// Acked `(conversation, seq)` of own messages.
    acked: Vec<(i64, i64)>,
    /// Deliveries of others' messages per `(conversation, seq)`.
    delivered: HashMap<(i64, i64), u32>,
    latency: Option<Histogram<u64>>,
    /// Latencies by the second of the phase the message was due in.
    by_second: Vec<Histogram<u64>>,
    /// When the phase started, on the clock of the message stamps.
    phase_start_us: u64,
    reconnected: u64,
    error_codes: HashMap<String, u64>,
}

impl Tally {
    /// Records the latency of a message due at `stamp`, delivered at `now`.
    fn record_latency(&mut self, stamp: u64, now: u64) {
        let micros = now.saturating_sub(stamp).max(1);
        let Some(h) = self.latency.as_mut() else { return };
        h.saturating_record(micros);
        let second = usize::try_from(stamp.saturating_sub(self.phase_start_us) / 1_000_000).unwrap_or(0);
        if second >= MAX_SECONDS {
            return;
        }
        while self.by_second.len() <= second {
            self.by_second.push(Histogram::new_from(h));
        }
        self.by_second[second].saturating_record(micros);
    }
}

/// Seconds of a phase given a p99 of their own (later ones count in the
/// phase's figures only).
const MAX_SECONDS: usize = 3600;

/// What the threads share.
struct Plan {
    start: Instant,
    /// The WebSocket URL of every target.
    ws_urls: Vec<String>,
    /// Conversations of each account (set once connections are up).
    conversations: OnceLock<HashMap<i64, Vec<i64>>>,
    barrier: Barrier,
    /// `steady`, then (unless skipped) `reconnect`.
    phases: Vec<&'static str>,
    rate_per_thread: f64,
    duration: Duration,
    results: Mutex<Vec<(usize, Tally)>>,
}

/// Runs the scenario.
pub async fn run(args: ChatArgs) -> anyhow::Result<ChatReport> {
    let targets = Targets::parse(&args.target)?;
    let base = targets.first().to_owned();
    let (db, connection) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", args.database_url))?;
    spawn(async move {
        let _ = connection.await;
    });
    let total = args.shoppers + args.agents;
    if args.agents == 0 || args.shops == 0 || args.shops > args.agents || args.threads == 0 {
        bail!("need 1 <= --shops <= --agents and --threads >= 1");
    }
    if !(args.rate.is_finite() && args.rate > 0.0 && args.duration > 0.0) {
        bail!("--rate and --duration must be positive");
    }
    let http = crate::client::pooled(args.login_concurrency, Duration::from_secs(60));
    let started = Instant::now();
    let accounts = prepare::accounts(&http, &db, &base, total, args.login_concurrency).await?;
    let (agents, shoppers) = accounts.buyers.split_at(args.agents as usize);
    let agent_ids: Vec<i64> = agents.iter().map(|a| a.user_id).collect();
    let shop_ids = prepare::chat_shops(&db, &accounts.prefix, &agent_ids, args.shops).await?;
    eprintln!(
        "loadtest: prepared {total} accounts and {} shops in {:.1} s",
        shop_ids.len(),
        started.elapsed().as_secs_f64()
    );
    // One conversation per shopper, opened while no agent is online: queued.
    let opened = futures_util::stream::iter(shoppers.iter().enumerate())
        .map(|(i, shopper)| {
            let (http, base, shop_id) = (&http, &base, shop_ids[i % shop_ids.len()]);
            async move {
                let url = format!("{base}/api/chat/conversations");
                post_json::<Value>(http, &url, &json!({ "shop_id": shop_id }), Some(&shopper.auth), 201).await
            }
        })
        .buffer_unordered(args.login_concurrency.max(8))
        .collect::<Vec<_>>()
        .await;
    if let Some(err) = opened.into_iter().find_map(Result::err) {
        return Err(err.context("opening conversations"));
    }

    let rss_before = rss_kib(args.server_pid);
    let plan = Arc::new(Plan {
        start: Instant::now(),
        ws_urls: targets
            .uris("/api/chat/ws")?
            .iter()
            .map(|uri| uri.to_string().replacen("http", "ws", 1))
            .collect(),
        conversations: OnceLock::new(),
        barrier: Barrier::new(args.threads + 1),
        phases: if args.skip_reconnect { vec!["steady"] } else { vec!["steady", "reconnect"] },
        rate_per_thread: args.rate / args.threads as f64,
        duration: Duration::from_secs_f64(args.duration),
        results: Mutex::new(Vec::new()),
    });
    // Agents first in every thread: their connections route the queues.
    let mut per_thread: Vec<Vec<Buyer>> = vec![Vec::new(); args.threads];
    for (i, account) in agents.iter().chain(shoppers).enumerate() {
        per_thread[i % args.threads].push(account.clone());
    }
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(t, accounts)| {
            let plan = plan.clone();
            std::thread::spawn(move || System::new().block_on(client_thread(t, accounts, plan)))
        })
        .collect();

    // Phase 0: everyone connected.
    plan.barrier.wait().await;
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(args.server_pid);
    let conversations = routed(&db, &shop_ids).await?;
    let routed_count = conversations.values().map(Vec::len).sum::<usize>() / 2;
    eprintln!("loadtest: {total} connections up, {routed_count} conversations routed");
    let _ = plan.conversations.set(conversations);
    plan.barrier.wait().await;

    let mut phases = Vec::new();
    for &name in &plan.phases {
        let phase_start = Instant::now();
        // The threads run the phase, then wait for stragglers.
        plan.barrier.wait().await;
        plan.barrier.wait().await;
        let elapsed = phase_start.elapsed();
        let tallies = std::mem::take(&mut *plan.results.lock().map_err(|_| anyhow!("poisoned"))?);
        phases.push(summarise(name, args.rate, plan.duration, elapsed, tallies)?);
    }
    plan.barrier.wait().await;
    for handle in handles {
        handle.join().map_err(|_| anyhow!("a client thread panicked"))??;
    }
    let per = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / total as f64),
        _ => None,
    };
    let pass = phases.iter().all(|p| p.lost == 0 && p.duplicated == 0);
    Ok(ChatReport {
        connections_held: total as usize,
        shoppers: shoppers.len(),
        agents: agents.len(),
        conversations_routed: routed_count,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_kib_per_connection: per,
        phases,
        pass,
    })
}

/// The server's resident memory, from `/proc/<pid>/status`.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Each member's open conversations in the prepared shops (both sides).
async fn routed(db: &tokio_postgres::Client, shop_ids: &[i64]) -> anyhow::Result<HashMap<i64, Vec<i64>>> {
    let rows = db
        .query(
            "SELECT id, shopper_id, agent_id FROM conversations
             WHERE shop_id = ANY($1) AND status = 'open' AND agent_id IS NOT NULL",
            &[&shop_ids],
        )
        .await?;
    let mut by_user: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in rows {
        let (id, shopper, agent): (i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        by_user.entry(shopper).or_default().push(id);
        by_user.entry(agent).or_default().push(id);
    }
    Ok(by_user)
}

fn summarise(
    name: &str,
    rate: f64,
    window: Duration,
    elapsed: Duration,
    tallies: Vec<(usize, Tally)>,
) -> anyhow::Result<PhaseResult> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut sent, mut errors, mut reconnected) = (0, 0, 0);
    let mut codes = std::collections::BTreeMap::new();
    let mut acked = Vec::new();
    let mut delivered: HashMap<(i64, i64), u32> = HashMap::new();
    let mut by_second: Vec<Histogram<u64>> = Vec::new();
    for (_, tally) in tallies {
        for (second, h) in tally.by_second.iter().enumerate() {
            match by_second.get_mut(second) {
                Some(sum) => sum.add(h)?,
                None => by_second.push(h.clone()),
            }
        }
        sent += tally.sent;
        errors += tally.errors;
        reconnected += tally.reconnected;
        for (code, n) in tally.error_codes {
            *codes.entry(code).or_default() += n;
        }
        acked.extend(tally.acked);
        for (key, n) in tally.delivered {
            *delivered.entry(key).or_default() += n;
        }
        if let Some(h) = tally.latency {
            latency.add(&h)?;
        }
    }
    acked.sort_unstable();
    acked.dedup();
    let lost = acked.iter().filter(|key| !delivered.contains_key(key)).count() as u64;
    let duplicated = delivered.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    let count: u64 = delivered.values().map(|n| u64::from(*n)).sum();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(PhaseResult {
        name: name.to_owned(),
        target_rate: rate,
        elapsed_secs: elapsed.as_secs_f64(),
        sent,
        acked: acked.len() as u64,
        send_errors: errors,
        delivered: count,
        delivered_per_sec: count as f64 / window.as_secs_f64().max(1e-9),
        latency_ms_p50: ms(0.5),
        latency_ms_p99: ms(0.99),
        latency_ms_p99_9: ms(0.999),
        latency_ms_max: latency.max() as f64 / 1000.0,
        latency_ms_p99_by_second: by_second
            .iter()
            .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
            .collect(),
        lost,
        duplicated,
        reconnected,
        errors: codes,
    })
}

/// One client thread: connects its accounts, then runs the phases in step
/// with the others.
async fn client_thread(t: usize, accounts: Vec<Buyer>, plan: Arc<Plan>) -> anyhow::Result<()> {
    let client = Client::builder()
        .connector(Connector::new().limit(0).timeout(Duration::from_secs(30)))
        .timeout(Duration::from_secs(30))
        .finish();
    let tally = Rc::new(RefCell::new(Tally::default()));
    let conns: Vec<Rc<RefCell<Conn>>> = accounts
        .into_iter()
        .map(|a| {
            Rc::new(RefCell::new(Conn {
                user_id: a.user_id,
                auth: a.auth,
                conversations: Vec::new(),
                next_conversation: 0,
                sink: None,
                generation: 0,
                pending: HashMap::new(),
                last_seq: HashMap::new(),
                next_msg: 0,
            }))
        })
        .collect();
    // Agents come first in the list: connect in order, a few at a time.
    for chunk in conns.chunks(64) {
        let connecting = chunk.iter().map(|c| connect(&client, &plan, c.clone(), tally.clone(), false));
        for result in futures_util::future::join_all(connecting).await {
            result?;
        }
    }
    plan.barrier.wait().await;
    plan.barrier.wait().await;
    let all = plan.conversations.get().cloned().unwrap_or_default();
    for conn in &conns {
        let mut c = conn.borrow_mut();
        c.conversations = all.get(&c.user_id).cloned().unwrap_or_default();
    }
    let senders: Vec<_> = conns.iter().filter(|c| !c.borrow().conversations.is_empty()).cloned().collect();

    for &phase in &plan.phases {
        *tally.borrow_mut() =
            Tally { latency: Some(Histogram::new_with_bounds(1, 3_600_000_000, 3)?), ..Tally::default() };
        plan.barrier.wait().await;
        let phase_start = Instant::now();
        tally.borrow_mut().phase_start_us = now_us(plan.start);
        let reconnecting = Rc::new(std::cell::Cell::new(false));
        if phase == "reconnect" {
            reconnecting.set(true);
            let (client, plan, conns, tally) = (client.clone(), plan.clone(), conns.clone(), tally.clone());
            let reconnecting = reconnecting.clone();
            spawn(async move {
                actix_web::rt::time::sleep(plan.duration / 3).await;
                for chunk in conns.chunks(64) {
                    let reconnecting =
                        chunk.iter().map(|c| connect(&client, &plan, c.clone(), tally.clone(), true));
                    for result in futures_util::future::join_all(reconnecting).await {
                        if let Err(e) = result {
                            eprintln!("loadtest: reconnect: {e:#}");
                        }
                    }
                }
                reconnecting.set(false);
            });
        }
        send_loop(&plan, &senders, &tally, phase_start).await;
        // Every client of the phase reconnects before it is summed up.
        while reconnecting.get() {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        // Let answers in flight arrive: every send answered (or a minute
        // passed), then no delivery for half a second.
        let drain_until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < drain_until && senders.iter().any(|c| !c.borrow().pending.is_empty()) {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let mut seen = usize::MAX;
        while tally.borrow().delivered.len() != seen {
            seen = tally.borrow().delivered.len();
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        }
        let done = std::mem::take(&mut *tally.borrow_mut());
        plan.results.lock().map_err(|_| anyhow!("poisoned"))?.push((t, done));
        plan.barrier.wait().await;
    }
    plan.barrier.wait().await;
    Ok(())
}

/// Sends at the thread's rate, round-robin over its senders, for the phase.
async fn send_loop(
    plan: &Plan,
    senders: &[Rc<RefCell<Conn>>],
    tally: &Rc<RefCell<Tally>>,
    phase_start: Instant,
) {
    if senders.is_empty() {
        actix_web::rt::time::sleep(plan.duration).await;
        return;
    }
    let mut sent: u64 = 0;
    let mut next = 0usize;
    let tick = Duration::from_millis(2);
    loop {
        let elapsed = phase_start.elapsed();
        if elapsed >= plan.duration {
            return;
        }
        let due = (elapsed.as_secs_f64() * plan.rate_per_thread) as u64;
        while sent < due {
            let conn = &senders[next % senders.len()];
            next += 1;
            sent += 1;
            let due_at = phase_start + Duration::from_secs_f64(sent as f64 / plan.rate_per_thread);
            let stamp = u64::try_from(due_at.duration_since(plan.start).as_micros()).unwrap_or(0);
            let (sink, text) = {
                let mut c = conn.borrow_mut();
                let conversation_id = c.conversations[c.next_conversation % c.conversations.len()];
                c.next_conversation += 1;
                c.next_msg += 1;
                let number = c.next_msg;
                c.pending.insert(number, (conversation_id, stamp));
                (c.sink.take(), send_frame(c.user_id, number, conversation_id, stamp))
            };
            tally.borrow_mut().sent += 1;
            // A connection being reopened sends its pending ones once it is back.
            let Some(mut sink) = sink else { continue };
            let ok = sink.send(Message::Text(text.into())).await.is_ok();
            let mut c = conn.borrow_mut();
            if ok && c.sink.is_none() {
                c.sink = Some(sink);
            }
        }
        actix_web::rt::time::sleep(tick).await;
    }
}

/// (Re)opens a connection; after a reconnect, resumes from the last seqs
/// seen and retries every unacked send with its client id.
async fn connect(
    client: &Client,
    plan: &Arc<Plan>,
    conn: Rc<RefCell<Conn>>,
    tally: Rc<RefCell<Tally>>,
    resume: bool,
) -> anyhow::Result<()> {
    let (old, auth, node) = {
        let mut c = conn.borrow_mut();
        c.generation += 1;
        // Round-robin by user, and the next node on each reconnect.
        let node = crate::client::round_robin(&plan.ws_urls, c.user_id.unsigned_abs() + c.generation);
        (c.sink.take(), c.auth.clone(), node.clone())
    };
    if let Some(mut old) = old {
        let _ = old.send(Message::Close(None)).await;
    }
    let (_, framed) = client
        .ws(node.as_str())
        .set_header(AUTHORIZATION, auth)
        .connect()
        .await
        .map_err(|e| anyhow!("websocket connect: {e}"))?;
    let (mut sink, mut stream) = framed.split();
    let generation = conn.borrow().generation;
    if resume {
        let points: Vec<Value> = {
            let c = conn.borrow();
            c.conversations
                .iter()
                .map(
                    |id| json!({"conversation_id": id, "last_seq": c.last_seq.get(id).copied().unwrap_or(0)}),
                )
                .collect()
        };
        sink.send(Message::Text(json!({"type": "resume", "conversations": points}).to_string().into()))
            .await?;
        // Retry every unacked send, including those the send loop queued
        // while these went out: the connection takes new sends itself only
        // once nothing is left here (no await between the last look and
        // handing it the sink).
        let mut retried = std::collections::HashSet::new();
        loop {
            let unsent: Vec<(u64, String)> = {
                let c = conn.borrow();
                c.pending
                    .iter()
                    .filter(|(number, _)| !retried.contains(*number))
                    .map(|(number, (conversation_id, stamp))| {
                        (*number, send_frame(c.user_id, *number, *conversation_id, *stamp))
                    })
                    .collect()
            };
            if unsent.is_empty() {
                break;
            }
            for (number, text) in unsent {
                retried.insert(number);
                sink.send(Message::Text(text.into())).await?;
            }
        }
        tally.borrow_mut().reconnected += 1;
    }
    conn.borrow_mut().sink = Some(sink);
    let start = plan.start;
    spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if conn.borrow().generation != generation {
                return;
            }
            let Frame::Text(bytes) = frame else { continue };
            let Ok(frame) = serde_json::from_slice::<Incoming>(&bytes) else { continue };
            on_frame(&conn, &tally, &frame, start);
        }
    });
    Ok(())
}

/// A `send` frame: client id `<user_id>-<number>`, the due time stamp
/// (microseconds since the run started) as the text. Written straight into
/// one string: every field is a number, nothing needs escaping.
fn send_frame(user_id: i64, number: u64, conversation_id: i64, stamp: u64) -> String {
    format!(
        r#"{{"type":"send","conversation_id":{conversation_id},"client_msg_id":"{user_id}-{number}","kind":"text","payload":{{"text":"{stamp}"}}}}"#
    )
}

/// The message number of one of our own client ids (`<user_id>-<number>`).
fn message_number(client_msg_id: &str) -> Option<u64> {
    client_msg_id.rsplit_once('-')?.1.parse().ok()
}

/// The fields of a server frame the client reads, borrowed from the frame
/// (no `serde_json::Value` tree and no string copies per frame: at 20,000
/// messages per second every frame the load tool parses takes CPU from the
/// server it measures). Plain `&str` is enough: these strings are the
/// frame type, an error code, and our own client ids and time stamps, none
/// of which holds a JSON escape. Other fields are skipped.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    frame: &'a str,
    conversation_id: Option<i64>,
    seq: Option<i64>,
    sender_id: Option<i64>,
    client_msg_id: Option<&'a str>,
    #[serde(borrow)]
    payload: Option<IncomingPayload<'a>>,
    code: Option<&'a str>,
}

/// The part of a delivered payload the client reads: a text message's text.
#[derive(Deserialize)]
struct IncomingPayload<'a> {
    text: Option<&'a str>,
}

fn on_frame(conn: &Rc<RefCell<Conn>>, tally: &Rc<RefCell<Tally>>, frame: &Incoming, start: Instant) {
    let mut c = conn.borrow_mut();
    let (conversation, seq) = (frame.conversation_id.unwrap_or(0), frame.seq.unwrap_or(0));
    let ours = frame.client_msg_id.and_then(message_number);
    match frame.frame {
        "ack" => {
            if let Some(number) = ours {
                c.pending.remove(&number);
            }
            tally.borrow_mut().acked.push((conversation, seq));
        }
        "deliver" => {
            let top = c.last_seq.entry(conversation).or_insert(0);
            *top = (*top).max(seq);
            if frame.sender_id == Some(c.user_id) {
                // Our own message coming back on a resume: it is stored.
                if ours.is_some_and(|number| c.pending.remove(&number).is_some()) {
                    tally.borrow_mut().acked.push((conversation, seq));
                }
                return;
            }
            let mut t = tally.borrow_mut();
            *t.delivered.entry((conversation, seq)).or_default() += 1;
            let text = frame.payload.as_ref().and_then(|p| p.text);
            if let Some(stamp) = text.and_then(|s| s.parse::<u64>().ok()) {
                t.record_latency(stamp, now_us(start));
            }
        }
        "error" => {
            // Refused (overloaded, say): not stored, not retried.
            if let Some(number) = ours {
                c.pending.remove(&number);
            }
            let mut t = tally.borrow_mut();
            t.errors += 1;
            *t.error_codes.entry(frame.code.unwrap_or("?").to_owned()).or_default() += 1;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tally(phase_start_us: u64) -> Tally {
        let latency = Some(Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap());
        Tally { latency, phase_start_us, ..Tally::default() }
    }

    #[test]
    fn a_latency_counts_in_the_second_its_message_was_due_and_threads_add_up() {
        let (mut a, mut b) = (tally(5_000_000), tally(5_000_000));
        a.record_latency(5_100_000, 5_110_000); // due in second 0, 10 ms late
        a.record_latency(7_900_000, 8_200_000); // due in second 2, 300 ms late
        b.record_latency(7_000_000, 7_020_000); // second 2, 20 ms
        assert_eq!((a.by_second.len(), a.by_second[1].len()), (3, 0), "a quiet second stays empty");

        let window = Duration::from_secs(3);
        let phase = summarise("steady", 1.0, window, window, vec![(0, a), (1, b)]).unwrap();
        let rounded: Vec<u64> = phase.latency_ms_p99_by_second.iter().map(|ms| ms.round() as u64).collect();
        assert_eq!(rounded, vec![10, 0, 300]);
        assert_eq!(phase.latency_ms_p99.round(), 300.0);
    }
}
