//! Recording latencies per outcome and rendering the run's report, as text
//! for people or JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{Ack, Added, Answer};
use crate::outcome::Outcome;
use crate::verdict::Verdict;

/// Highest latency a histogram tracks exactly (an hour, in microseconds);
/// longer ones are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latencies, error keys, acknowledged orders and cart adds of one client
/// thread (or, after [`Recorder::merge`], of a whole phase).
pub struct Recorder {
    /// An empty histogram with the shared bounds, cloned on an outcome's first request.
    empty: Histogram<u64>,
    /// Microseconds per outcome.
    histograms: [Option<Histogram<u64>>; Outcome::ALL.len()],
    errors: BTreeMap<String, u64>,
    acks: Vec<Ack>,
    adds: Vec<Added>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            empty: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            histograms: Default::default(),
            errors: BTreeMap::new(),
            acks: Vec::new(),
            adds: Vec::new(),
        })
    }

    /// Records one answer that took `latency`.
    pub fn record(&mut self, answer: Answer, latency: Duration) {
        let outcome = match answer {
            Answer::Plain(outcome) => outcome,
            Answer::Created(ack) => {
                self.acks.push(ack);
                Outcome::Created
            }
            Answer::Added(added) => {
                self.adds.push(added);
                Outcome::Ok
            }
            Answer::Failed(key) => {
                *self.errors.entry(key).or_default() += 1;
                Outcome::Error
            }
        };
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram(outcome).saturating_record(micros);
    }

    /// Adds another thread's records to these.
    pub fn merge(&mut self, other: Recorder) -> anyhow::Result<()> {
        for (outcome, theirs) in Outcome::ALL.into_iter().zip(other.histograms) {
            if let Some(theirs) = theirs {
                self.histogram(outcome).add(&theirs)?;
            }
        }
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
        self.acks.extend(other.acks);
        self.adds.extend(other.adds);
        Ok(())
    }

    /// The acknowledged orders.
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// The acknowledged cart adds.
    pub fn adds(&self) -> &[Added] {
        &self.adds
    }

    /// Requests with this outcome.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.histograms[outcome.index()].as_ref().map_or(0, Histogram::len)
    }

    fn histogram(&mut self, outcome: Outcome) -> &mut Histogram<u64> {
        self.histograms[outcome.index()].get_or_insert_with(|| self.empty.clone())
    }
}

/// Latency percentiles of one outcome, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Count, throughput and latency of one outcome in a phase.
#[derive(Clone, Debug, Serialize)]
pub struct OutcomeStats {
    pub outcome: Outcome,
    pub count: u64,
    /// Requests per second with this outcome.
    pub throughput: f64,
    pub latency_ms: Latency,
}

/// One load phase: what was driven and what came back.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// `healthz`, `buy`, `add`, ...
    pub name: String,
    /// Method and path, e.g. `POST /api/seckill/events/7/orders`.
    pub request: String,
    /// How the load was driven, e.g. `closed loop, 256 connections, 1 thread`.
    pub load: String,
    pub requests: u64,
    pub elapsed_secs: f64,
    /// All requests per second.
    pub throughput: f64,
    /// Outcomes that occurred, in report order.
    pub outcomes: Vec<OutcomeStats>,
    /// Error keys and how often each occurred.
    pub errors: BTreeMap<String, u64>,
}

impl PhaseReport {
    /// Summarises a phase's merged records over its wall-clock `elapsed`.
    pub fn new(name: &str, request: String, load: String, recorder: &Recorder, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let outcomes: Vec<OutcomeStats> = Outcome::ALL
            .iter()
            .filter_map(|&outcome| {
                let h = recorder.histograms[outcome.index()].as_ref().filter(|h| !h.is_empty())?;
                Some(OutcomeStats {
                    outcome,
                    count: h.len(),
                    throughput: h.len() as f64 / secs,
                    latency_ms: Latency::of(h),
                })
            })
            .collect();
        let requests = outcomes.iter().map(|o| o.count).sum();
        Self {
            name: name.to_owned(),
            request,
            load,
            requests,
            elapsed_secs: elapsed.as_secs_f64(),
            throughput: requests as f64 / secs,
            outcomes,
            errors: recorder.errors.clone(),
        }
    }

    /// Requests per second with `outcome` (0 if none).
    pub fn throughput_of(&self, outcome: Outcome) -> f64 {
        self.outcomes.iter().find(|o| o.outcome == outcome).map_or(0.0, |o| o.throughput)
    }
}

/// A throughput ratio between two phases.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// e.g. `buy / healthz req/s`.
    pub name: String,
    pub value: f64,
}

impl Ratio {
    /// `numerator / denominator`, 0 when the denominator is 0.
    pub fn new(name: impl Into<String>, numerator: f64, denominator: f64) -> Self {
        let value = if denominator > 0.0 { numerator / denominator } else { 0.0 };
        Self { name: name.into(), value }
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub phases: Vec<PhaseReport>,
    pub ratios: Vec<Ratio>,
    pub verdicts: Vec<Verdict>,
    /// True when every check of every verdict passed.
    pub pass: bool,
}

impl Report {
    /// A report; `pass` is derived from the verdicts.
    pub fn new(phases: Vec<PhaseReport>, ratios: Vec<Ratio>, verdicts: Vec<Verdict>) -> Self {
        let pass = verdicts.iter().all(Verdict::pass);
        Self { phases, ratios, verdicts, pass }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for phase in &self.phases {
            write_phase(&mut out, phase);
        }
        if !self.ratios.is_empty() {
            out.push_str("ratios\n");
            for ratio in &self.ratios {
                let _ = writeln!(out, "  {:<32} {:>8.3}", ratio.name, ratio.value);
            }
        }
        for verdict in &self.verdicts {
            let _ = writeln!(out, "verdict {}: {}", verdict.name, verdict.subject);
            for check in &verdict.checks {
                let mark = if check.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(out, "  {mark}  {}: {}", check.name, check.detail);
            }
        }
        if !self.verdicts.is_empty() {
            let _ = writeln!(out, "result: {}", if self.pass { "PASS" } else { "FAIL" });
        }
        out
    }
}

fn write_phase(out: &mut String, phase: &PhaseReport) {
    let _ = writeln!(out, "{}  {}  ({})", phase.name, phase.request, phase.load);
    let _ = writeln!(
        out,
        "  {} requests in {:.2} s: {:.1} req/s",
        phase.requests, phase.elapsed_secs, phase.throughput
    );
    let _ = writeln!(
        out,
        "  {:<20}{:>10}{:>12}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "outcome", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for o in &phase.outcomes {
        let l = &o.latency_ms;
        let _ = writeln!(
            out,
            "  {:<20}{:>10}{:>12.1}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
            o.outcome.name(),
            o.count,
            o.throughput,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.max
        );
    }
    for (key, count) in &phase.errors {
        let _ = writeln!(out, "  error {key}: {count}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn recorder(latencies_ms: &[(Outcome, u64)]) -> Recorder {
        let mut r = Recorder::new().unwrap();
        for &(outcome, ms) in latencies_ms {
            r.record(Answer::Plain(outcome), Duration::from_millis(ms));
        }
        r
    }

    #[test]
    fn percentiles_come_from_the_outcome_histogram() {
        let samples: Vec<_> = (1..=1000).map(|ms| (Outcome::SoldOut, ms)).collect();
        let report = PhaseReport::new(
            "buy",
            "POST /x".into(),
            "closed".into(),
            &recorder(&samples),
            Duration::from_secs(2),
        );
        let sold_out = &report.outcomes[0];
        assert_eq!(sold_out.count, 1000);
        assert!((sold_out.throughput - 500.0).abs() < 1e-9);
        // 3 significant digits: within 0.1%.
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001;
        assert!(close(sold_out.latency_ms.p50, 500.0), "{:?}", sold_out.latency_ms);
        assert!(close(sold_out.latency_ms.p90, 900.0), "{:?}", sold_out.latency_ms);
        assert!(close(sold_out.latency_ms.p99, 990.0), "{:?}", sold_out.latency_ms);
        assert!(close(sold_out.latency_ms.p99_9, 999.0), "{:?}", sold_out.latency_ms);
        assert!(close(sold_out.latency_ms.max, 1000.0), "{:?}", sold_out.latency_ms);
    }

    #[test]
    fn merge_adds_counts_errors_acks_and_cart_adds() {
        let mut a = recorder(&[(Outcome::Ok, 1), (Outcome::Ok, 2)]);
        let mut b = recorder(&[(Outcome::Ok, 3)]);
        b.record(Answer::Failed("timeout".into()), Duration::from_millis(30));
        b.record(
            Answer::Created(Ack { user_id: 7, quantity: 1, order_no: "n1".into() }),
            Duration::from_millis(4),
        );
        b.record(Answer::Added(Added { user_id: 7, sku_id: 9 }), Duration::from_millis(2));
        a.merge(b).unwrap();
        assert_eq!(a.count(Outcome::Ok), 4);
        assert_eq!(a.adds(), [Added { user_id: 7, sku_id: 9 }]);
        assert_eq!(a.count(Outcome::Error), 1);
        assert_eq!(a.count(Outcome::Created), 1);
        assert_eq!(a.errors.get("timeout"), Some(&1));
        assert_eq!(a.acks().len(), 1);
    }

    #[test]
    fn text_lists_only_occurring_outcomes_in_order() {
        let r = recorder(&[(Outcome::Error, 5), (Outcome::Created, 1), (Outcome::SoldOut, 2)]);
        let phase = PhaseReport::new("buy", "POST /x".into(), "closed".into(), &r, Duration::from_secs(1));
        let report = Report::new(vec![phase], vec![Ratio::new("buy / healthz req/s", 3.0, 4.0)], vec![]);
        let text = report.to_text();
        let created = text.find("\n  created").unwrap();
        let sold_out = text.find("\n  sold_out").unwrap();
        let error = text.find("\n  error ").unwrap();
        assert!(created < sold_out && sold_out < error, "{text}");
        assert!(!text.contains("limit_reached"), "{text}");
        assert!(text.contains("3 requests in 1.00 s: 3.0 req/s"), "{text}");
        assert!(text.contains("0.750"), "{text}");
        assert!(!text.contains("result:"), "no verdict, no result line: {text}");
    }

    #[test]
    fn ratio_of_nothing_is_zero() {
        assert_eq!(Ratio::new("x", 5.0, 0.0).value, 0.0);
    }

    #[test]
    fn json_names_outcomes_in_snake_case() {
        let r = recorder(&[(Outcome::LimitReached, 1)]);
        let phase = PhaseReport::new("buy", "POST /x".into(), "closed".into(), &r, Duration::from_secs(1));
        let json = Report::new(vec![phase], vec![], vec![]).to_json().unwrap();
        assert!(json.contains("\"outcome\": \"limit_reached\""), "{json}");
        assert!(json.contains("\"p99_9\""), "{json}");
    }
}
