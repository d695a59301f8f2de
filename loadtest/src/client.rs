//! HTTP client side: targets, the pooled awc client, the request kinds the
//! load drives (plain GETs such as `/healthz`, buys, profile reads, logins,
//! cart adds, checkouts), and a small JSON helper for the control plane
//! (register, login, create event).

use std::time::Duration;

use actix_web::web::Bytes;
use anyhow::{bail, Context};
use awc::error::SendRequestError;
use awc::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use awc::http::Uri;
use awc::{Client, ClientRequest, Connector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::outcome::{classify, error_key, Outcome};

/// Largest response body read; answers on these paths are tiny.
const MAX_BODY: usize = 64 * 1024;

/// Header carrying the per-request idempotency key of a buy or checkout.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The server base URLs, used round-robin by request index.
#[derive(Clone, Debug)]
pub struct Targets {
    bases: Vec<String>,
}

impl Targets {
    /// Parses a comma-separated list of `http://host:port` base URLs.
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let bases: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        if bases.is_empty() {
            bail!("--target needs at least one base URL");
        }
        for base in &bases {
            if !base.starts_with("http://") {
                bail!("target {base:?}: only plain http:// targets are supported");
            }
            base.parse::<Uri>().with_context(|| format!("target {base:?} is not a URL"))?;
        }
        Ok(Self { bases })
    }

    /// The first target: the control plane (register, login, create event)
    /// talks to it; every node shares the database and Redis.
    pub fn first(&self) -> &str {
        &self.bases[0]
    }

    /// `path` on every target, parsed once so requests only clone them.
    pub fn uris(&self, path: &str) -> anyhow::Result<Vec<Uri>> {
        self.bases
            .iter()
            .map(|base| {
                format!("{base}{path}").parse::<Uri>().with_context(|| format!("bad URL {base}{path}"))
            })
            .collect()
    }
}

/// The item for request `i` when cycling through `items` (targets, buyers).
pub fn round_robin<T>(items: &[T], i: u64) -> &T {
    // The remainder is below `items.len()`, so it fits in usize.
    &items[(i % items.len() as u64) as usize]
}

/// A client whose pool keeps up to `connections` keep-alive connections per
/// target open for the whole run (awc's default is 100 connections, closed
/// after 75 s), so the load never pays for new connections.
pub fn pooled(connections: usize, timeout: Duration) -> Client {
    let connector = Connector::new()
        .limit(connections.max(1))
        .conn_keep_alive(Duration::from_secs(300))
        .conn_lifetime(Duration::from_secs(24 * 3600))
        .timeout(timeout);
    Client::builder().connector(connector).timeout(timeout).disable_redirects().finish()
}

/// A logged-in buyer.
#[derive(Clone, Debug)]
pub struct Buyer {
    /// `users.id`.
    pub user_id: i64,
    /// `Bearer <token>`, built once.
    pub auth: HeaderValue,
}

impl Buyer {
    /// A buyer from a login answer.
    pub fn new(user_id: i64, token: &str) -> anyhow::Result<Self> {
        let auth =
            HeaderValue::from_str(&format!("Bearer {token}")).context("token is not a header value")?;
        Ok(Self { user_id, auth })
    }
}

/// A logged-in buyer with an address to ship to: what a checkout needs.
#[derive(Clone, Debug)]
pub struct Shopper {
    pub buyer: Buyer,
    /// `addresses.id` of the shopper's default address.
    pub address_id: i64,
}

/// An acknowledged (201) buy or checkout, kept for the verdict.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The buyer who was answered.
    pub user_id: i64,
    /// Quantity the answer reports.
    pub quantity: i32,
    /// The order number the answer reports.
    pub order_no: String,
}

/// What became of one request: its outcome and what the report keeps of it.
#[derive(Debug)]
pub enum Answer {
    /// Counted only.
    Plain(Outcome),
    /// A 201 with its order.
    Created(Ack),
    /// A 200 to a cart add, with the line it added a unit to.
    Added(Added),
    /// An error, with a short key for the error breakdown.
    Failed(String),
}

/// An acknowledged (200) cart add of one unit, kept for the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Added {
    /// The shopper whose cart answered.
    pub user_id: i64,
    pub sku_id: i64,
}

impl Answer {
    /// A 201's acknowledgement for `user_id`, or the error `malformed` when
    /// the answer does not carry its order.
    fn acknowledged(user_id: i64, order: Option<CreatedOrder>, malformed: &str) -> Self {
        match order {
            Some(order) => {
                Answer::Created(Ack { user_id, quantity: order.quantity, order_no: order.order_no })
            }
            None => Answer::Failed(malformed.to_owned()),
        }
    }
}

/// The body of a 201 buy answer, or one order of a checkout; other fields
/// are ignored.
#[derive(Deserialize)]
struct CreatedOrder {
    order_no: String,
    quantity: i32,
}

/// The body of a 201 checkout answer; other fields are ignored.
#[derive(Deserialize)]
struct Receipt {
    orders: Vec<CreatedOrder>,
}

impl Receipt {
    /// The order of a checkout that placed exactly one, as a buy-now does.
    fn only_order(self) -> Option<CreatedOrder> {
        let mut orders = self.orders.into_iter();
        match (orders.next(), orders.next()) {
            (Some(order), None) => Some(order),
            _ => None,
        }
    }
}

/// Units of a SKU: a cart add's body, and a checkout's `buy_now`.
#[derive(Serialize)]
struct Line {
    sku_id: i64,
    quantity: u32,
}

/// A buy-now checkout's body.
#[derive(Serialize)]
struct BuyNow {
    address_id: i64,
    buy_now: Line,
}

/// The request a load phase sends over and over.
#[derive(Debug)]
pub enum Call {
    /// An unauthenticated `GET` of each URI in turn (`/healthz`, product pages).
    Get {
        /// Every path on every target, cycled through by request index.
        uris: Vec<Uri>,
    },
    /// `POST` a buy of `quantity` for a buyer picked round-robin.
    Buy {
        /// The buy path on each target.
        uris: Vec<Uri>,
        /// Buyers, cycled through by request index.
        buyers: Vec<Buyer>,
        /// `{"quantity": q}`, serialised once.
        body: Bytes,
        /// Random per phase; the request index makes each `Idempotency-Key`
        /// unique without a random number per request.
        key_prefix: String,
    },
    /// `GET /api/me` as a buyer picked round-robin: the authenticated read.
    Profile {
        /// `/api/me` on each target.
        uris: Vec<Uri>,
        /// Buyers, cycled through by request index.
        buyers: Vec<Buyer>,
    },
    /// `POST /api/auth/login` as an account picked round-robin.
    Login {
        /// `/api/auth/login` on each target.
        uris: Vec<Uri>,
        /// One serialised `{"login", "password"}` body per account.
        bodies: Vec<Bytes>,
    },
    /// `POST /api/cart/lines`: request i adds one unit of SKU i mod N to the
    /// cart of buyer i mod B.
    CartAdd {
        /// `/api/cart/lines` on each target.
        uris: Vec<Uri>,
        /// Buyers, cycled through by request index.
        buyers: Vec<Buyer>,
        /// Per SKU, its id and `{"sku_id", "quantity": 1}`, serialised once.
        lines: Vec<(i64, Bytes)>,
    },
    /// `POST /api/checkout`: request i buys one unit of SKU i mod N now, as
    /// shopper i mod S, to their address.
    Checkout {
        /// `/api/checkout` on each target.
        uris: Vec<Uri>,
        /// Shoppers, cycled through by request index.
        shoppers: Vec<Shopper>,
        /// SKUs, cycled through by request index.
        sku_ids: Vec<i64>,
        /// As for [`Call::Buy`].
        key_prefix: String,
    },
}

impl Call {
    /// `GET /healthz` on every target.
    pub fn healthz(targets: &Targets) -> anyhow::Result<Self> {
        Self::get_each(targets, ["/healthz".to_owned()])
    }

    /// `GET` of each path on each target: request i reads path i / T on
    /// target i mod T (T targets), so every node serves every path.
    pub fn get_each(targets: &Targets, paths: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut uris = Vec::new();
        for path in paths {
            uris.extend(targets.uris(&path)?);
        }
        if uris.is_empty() {
            bail!("a GET load needs at least one path");
        }
        Ok(Call::Get { uris })
    }

    /// Buys of `quantity` at `path` on every target.
    pub fn buy(targets: &Targets, path: &str, buyers: Vec<Buyer>, quantity: i32) -> anyhow::Result<Self> {
        if buyers.is_empty() {
            bail!("a buy load needs at least one buyer");
        }
        let body = Bytes::from(serde_json::to_vec(&serde_json::json!({ "quantity": quantity }))?);
        let key_prefix = uuid::Uuid::new_v4().simple().to_string();
        Ok(Call::Buy { uris: targets.uris(path)?, buyers, body, key_prefix })
    }

    /// `GET /api/me` for each buyer in turn.
    pub fn profile(targets: &Targets, buyers: Vec<Buyer>) -> anyhow::Result<Self> {
        if buyers.is_empty() {
            bail!("a profile load needs at least one buyer");
        }
        Ok(Call::Profile { uris: targets.uris("/api/me")?, buyers })
    }

    /// Logins of each account in turn with the shared password.
    pub fn login(targets: &Targets, usernames: &[String], password: &str) -> anyhow::Result<Self> {
        if usernames.is_empty() {
            bail!("a login load needs at least one account");
        }
        let bodies = usernames
            .iter()
            .map(|login| {
                serde_json::to_vec(&serde_json::json!({ "login": login, "password": password }))
                    .map(Bytes::from)
            })
            .collect::<Result<_, _>>()?;
        Ok(Call::Login { uris: targets.uris("/api/auth/login")?, bodies })
    }

    /// Cart adds of one unit, the buyer and the SKU each picked round-robin.
    pub fn cart_add(targets: &Targets, buyers: Vec<Buyer>, sku_ids: &[i64]) -> anyhow::Result<Self> {
        if buyers.is_empty() || sku_ids.is_empty() {
            bail!("a cart load needs at least one buyer and one SKU");
        }
        let lines = sku_ids
            .iter()
            .map(|&sku_id| {
                serde_json::to_vec(&Line { sku_id, quantity: 1 }).map(|body| (sku_id, Bytes::from(body)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Call::CartAdd { uris: targets.uris("/api/cart/lines")?, buyers, lines })
    }

    /// Buy-now checkouts of one unit, the shopper and the SKU each picked
    /// round-robin, each with its own `Idempotency-Key`.
    pub fn checkout(targets: &Targets, shoppers: Vec<Shopper>, sku_ids: Vec<i64>) -> anyhow::Result<Self> {
        if shoppers.is_empty() || sku_ids.is_empty() {
            bail!("a checkout load needs at least one shopper and one SKU");
        }
        let key_prefix = uuid::Uuid::new_v4().simple().to_string();
        Ok(Call::Checkout { uris: targets.uris("/api/checkout")?, shoppers, sku_ids, key_prefix })
    }

    /// Sends request number `i` and reads its whole answer (a connection only
    /// returns to the pool once its body is read).
    pub async fn execute(&self, client: &Client, i: u64) -> Answer {
        let sent = match self {
            Call::Get { uris } => client.get(round_robin(uris, i).clone()).send().await,
            Call::Buy { uris, buyers, body, key_prefix } => {
                post(client, uris, i, Some(&round_robin(buyers, i).auth))
                    .insert_header((IDEMPOTENCY_KEY, idempotency_key(key_prefix, i)))
                    .send_body(body.clone())
                    .await
            }
            Call::Profile { uris, buyers } => {
                client
                    .get(round_robin(uris, i).clone())
                    .insert_header((AUTHORIZATION, round_robin(buyers, i).auth.clone()))
                    .send()
                    .await
            }
            Call::Login { uris, bodies } => {
                post(client, uris, i, None).send_body(round_robin(bodies, i).clone()).await
            }
            Call::CartAdd { uris, buyers, lines } => {
                post(client, uris, i, Some(&round_robin(buyers, i).auth))
                    .send_body(round_robin(lines, i).1.clone())
                    .await
            }
            Call::Checkout { uris, shoppers, sku_ids, key_prefix } => {
                let shopper = round_robin(shoppers, i);
                let line = Line { sku_id: *round_robin(sku_ids, i), quantity: 1 };
                let body = match serde_json::to_vec(&BuyNow { address_id: shopper.address_id, buy_now: line })
                {
                    Ok(body) => body,
                    Err(e) => return Answer::Failed(format!("body: {e}")),
                };
                post(client, uris, i, Some(&shopper.buyer.auth))
                    .insert_header((IDEMPOTENCY_KEY, idempotency_key(key_prefix, i)))
                    .send_body(body)
                    .await
            }
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Answer::Failed(transport_error_key(&e)),
        };
        let status = response.status().as_u16();
        let body = match response.body().limit(MAX_BODY).await {
            Ok(body) => body,
            Err(e) => return Answer::Failed(format!("{status} body: {e}")),
        };
        match (classify(status, &body), self) {
            (Outcome::Created, Call::Buy { buyers, .. }) => Answer::acknowledged(
                round_robin(buyers, i).user_id,
                serde_json::from_slice(&body).ok(),
                "201 without order_no/quantity",
            ),
            (Outcome::Created, Call::Checkout { shoppers, .. }) => Answer::acknowledged(
                round_robin(shoppers, i).buyer.user_id,
                serde_json::from_slice::<Receipt>(&body).ok().and_then(Receipt::only_order),
                "201 without exactly one order",
            ),
            (Outcome::Ok, Call::CartAdd { buyers, lines, .. }) => Answer::Added(Added {
                user_id: round_robin(buyers, i).user_id,
                sku_id: round_robin(lines, i).0,
            }),
            (Outcome::Error, _) => Answer::Failed(error_key(status, &body)),
            (outcome, _) => Answer::Plain(outcome),
        }
    }
}

/// A JSON `POST` of request `i` to its target, as `auth` when given.
fn post(client: &Client, uris: &[Uri], i: u64, auth: Option<&HeaderValue>) -> ClientRequest {
    let request = client.post(round_robin(uris, i).clone()).insert_header((CONTENT_TYPE, "application/json"));
    match auth {
        Some(auth) => request.insert_header((AUTHORIZATION, auth.clone())),
        None => request,
    }
}

/// Request `i`'s `Idempotency-Key`: unique within its phase's random
/// `prefix` without a random number per request.
fn idempotency_key(prefix: &str, i: u64) -> String {
    format!("{prefix}-{i:x}")
}

/// A short key for a failure to get an answer at all.
fn transport_error_key(e: &SendRequestError) -> String {
    match e {
        SendRequestError::Timeout => "timeout".to_owned(),
        SendRequestError::Connect(e) => format!("connect: {e}"),
        other => format!("send: {other}"),
    }
}

/// Control plane: POSTs `body` as JSON and decodes the answer, which must
/// have status `expected`.
pub async fn post_json<T: DeserializeOwned>(
    client: &Client,
    url: &str,
    body: &serde_json::Value,
    auth: Option<&HeaderValue>,
    expected: u16,
) -> anyhow::Result<T> {
    let mut request = client.post(url);
    if let Some(auth) = auth {
        request = request.insert_header((AUTHORIZATION, auth.clone()));
    }
    let mut response = request.send_json(body).await.map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
    let status = response.status().as_u16();
    let bytes =
        response.body().limit(MAX_BODY).await.with_context(|| format!("POST {url}: reading the answer"))?;
    if status != expected {
        bail!("POST {url}: expected {expected}, got {status}: {}", String::from_utf8_lossy(&bytes));
    }
    serde_json::from_slice(&bytes).with_context(|| format!("POST {url}: unexpected answer"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn targets_are_split_trimmed_and_validated() {
        let targets = Targets::parse(" http://a:1/, http://b:2 ,").unwrap();
        assert_eq!(targets.first(), "http://a:1");
        let uris = targets.uris("/healthz").unwrap();
        assert_eq!(
            uris.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["http://a:1/healthz", "http://b:2/healthz"]
        );
        assert!(Targets::parse("").is_err());
        assert!(Targets::parse("https://a").is_err());
    }

    #[test]
    fn get_each_spreads_every_path_over_every_target() {
        let targets = Targets::parse("http://a:1,http://b:2").unwrap();
        let Call::Get { uris } = Call::get_each(&targets, ["/p/1".to_owned(), "/p/2".to_owned()]).unwrap()
        else {
            panic!("not a GET")
        };
        let picked: Vec<_> = (0..5).map(|i| round_robin(&uris, i).to_string()).collect();
        assert_eq!(
            picked,
            ["http://a:1/p/1", "http://b:2/p/1", "http://a:1/p/2", "http://b:2/p/2", "http://a:1/p/1"]
        );
        assert!(Call::get_each(&targets, []).is_err());
    }

    #[test]
    fn round_robin_cycles_through_items() {
        let items = ["a", "b", "c"];
        let picked: Vec<_> = (0..7).map(|i| *round_robin(&items, i)).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b", "c", "a"]);
    }
}
