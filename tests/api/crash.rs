//! SIGKILL in the middle of a sale: no acknowledged order is lost and
//! nothing is oversold after the restart.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{fresh_settings, TestApp};
use crate::seckill::{create_event, event_body};

/// A server process, SIGKILLed when dropped.
pub struct Server(Child);

impl Server {
    /// Stops the server as an orchestrator would (SIGTERM) and waits until it exits.
    pub fn terminate(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", pid.as_str()]).status();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_server(app: &TestApp, port: u16) -> Server {
    start_server_with(app, port, &[]).await
}

/// Starts the real binary on `port` against `app`'s database and Redis
/// prefix, with `env` overrides, and waits until it is ready.
pub async fn start_server_with(app: &TestApp, port: u16, env: &[(&str, &str)]) -> Server {
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let server = Command::new(env!("CARGO_BIN_EXE_rs-cms"))
        .envs(env.iter().copied())
        .env("RSCMS_CONFIG_DIR", config_dir)
        .env("RSCMS_ENV", "test")
        .env("RSCMS__SERVER__PORT", port.to_string())
        .env("RSCMS__DATABASE__URL", &app.settings.database.url)
        .env("RSCMS__REDIS__KEY_PREFIX", &app.settings.redis.key_prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Server)
        .expect("start rs-cms");
    for _ in 0..200 {
        if let Ok(res) = app.http.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            if res.status() == 200 {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("rs-cms did not become ready");
}

/// Each shopper buys one unit at a time until refused or the server is gone;
/// returns the acknowledged order numbers.
async fn buy_until_stopped(
    app: &TestApp,
    shoppers: &[(i64, String)],
    round: &str,
    acked: Arc<Mutex<Vec<String>>>,
) -> Vec<String> {
    join_all(shoppers.iter().map(|(id, token)| {
        let acked = acked.clone();
        async move {
            for n in 0.. {
                let sent = app
                    .http
                    .post(format!("{}/api/seckill/events/1/orders", app.address))
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .insert_header(("Idempotency-Key", format!("{round}-{id}-{n}")))
                    .send_json(&json!({"quantity": 1}))
                    .await;
                let Ok(mut res) = sent else { return };
                let Ok(body) = res.json::<serde_json::Value>().await else { return };
                if res.status() != 201 {
                    return;
                }
                acked.lock().unwrap().push(body["order_no"].as_str().unwrap().to_owned());
            }
        }
    }))
    .await;
    let acked = acked.lock().unwrap().clone();
    acked
}

#[actix_web::test]
async fn sigkill_mid_sale_loses_no_acknowledged_order_and_never_oversells() {
    let (settings, db_name) = fresh_settings().await;
    let port = free_port();
    let app = TestApp::attach(settings, db_name, format!("http://127.0.0.1:{port}"));
    let server = start_server(&app, port).await;
    let (_, admin) = app.admin("ops").await;
    let stock = 2000;
    let limit = 100;
    let event = create_event(&app, &admin, event_body(stock, limit, json!({}))).await;
    assert_eq!(event, 1);
    let mut shoppers = Vec::new();
    for i in 0..50 {
        shoppers.push(app.member(&format!("crash{i}")).await);
    }

    // Kill the server while 50 shoppers are buying, once some orders are acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let killer = async {
        while acked.lock().unwrap().len() < 200 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(server);
    };
    let (before, ()) =
        futures_util::join!(buy_until_stopped(&app, &shoppers, "before", acked.clone()), killer);
    assert!(!before.is_empty(), "some orders were acknowledged before the kill");
    assert!(before.len() < stock as usize, "the kill came mid-sale");

    let _server = start_server(&app, port).await;
    let after = buy_until_stopped(&app, &shoppers, "after", Arc::default()).await;

    let client = app.db.get().await.unwrap();
    for order_no in before.iter().chain(&after) {
        let found = client.query_opt("SELECT 1 FROM orders WHERE order_no = $1", &[order_no]).await.unwrap();
        assert!(found.is_some(), "acknowledged order {order_no} was lost");
    }
    let sold: i64 = client
        .query_one(
            "SELECT COALESCE(sum(oi.quantity), 0)::int8 FROM orders o JOIN order_items oi ON oi.order_id = o.id \
             WHERE o.seckill_event_id = $1 AND o.status <> 'cancelled'",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    let remaining: i32 = client
        .query_one("SELECT remaining_stock FROM seckill_events WHERE id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sold, i64::from(stock), "sold out exactly, never oversold");
    assert_eq!(remaining, 0);
    let over: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT o.user_id FROM orders o JOIN order_items oi ON oi.order_id = o.id \
             WHERE o.seckill_event_id = $1 GROUP BY o.user_id HAVING sum(oi.quantity) > $2) x",
            &[&event, &i64::from(limit)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(over, 0);
}
