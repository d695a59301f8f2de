//! Test harness: `spawn_app()` starts the real server on a random port with
//! a fresh database (cloned from a migrated template) and a fresh Redis key
//! prefix, so tests run in parallel and never see each other's data. Both
//! are dropped when the `TestApp` goes away.

use std::hash::{Hash, Hasher};
use std::path::Path;

use awc::http::StatusCode;
use rs_cms::config::Settings;
use rs_cms::startup::Application;
use rs_cms::state::AppState;
use serde_json::{json, Value};
use tokio_postgres::NoTls;

/// A running server and a client to call it.
pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub db: deadpool_postgres::Pool,
    pub http: awc::Client,
    /// The server's state, for tests that call its services directly (not
    /// there for a server in another process).
    pub state: Option<AppState>,
    /// Stops the server in this process (none for one elsewhere).
    server: Option<actix_web::dev::ServerHandle>,
    db_name: String,
}

/// A response: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: awc::http::header::HeaderMap,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// A valid shop application named `name`.
pub fn shop_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "We sell things",
        "logo_url": "https://img.example.com/logo.png",
        "contact_name": "Li Lei",
        "contact_phone": "+86 138 0000 0000",
        "return_address": "1 Returns Road, Hangzhou"
    })
}

/// Settings for tests: `config/default.toml` + `config/test.toml` + env.
pub fn test_settings() -> Settings {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    Settings::load_from(&dir, "test").expect("test settings")
}

fn admin_config(settings: &Settings) -> tokio_postgres::Config {
    let mut cfg: tokio_postgres::Config = settings.database.url.parse().expect("database url");
    cfg.dbname("postgres");
    cfg
}

async fn admin_client(settings: &Settings) -> tokio_postgres::Client {
    let (client, conn) = admin_config(settings).connect(NoTls).await.expect("connect to postgres");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The migrated template database, created once per set of migrations.
/// An advisory lock makes this safe across test processes.
async fn template_database(settings: &Settings) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"))
        .expect("sql dir")
        .map(|e| e.expect("sql entry").path())
        .collect();
    files.sort();
    for file in files {
        std::fs::read(&file).expect("read migration").hash(&mut hasher);
    }
    let hash = hasher.finish() & 0x7fff_ffff_ffff;
    let name = format!("rscms_tpl_{hash:x}");
    let client = admin_client(settings).await;
    client.execute("SELECT pg_advisory_lock(4242)", &[]).await.expect("lock");
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        let stale = client
            .query("SELECT datname FROM pg_database WHERE datname LIKE 'rscms_tpl_%'", &[])
            .await
            .expect("list templates");
        for row in stale {
            let old: String = row.get(0);
            let _ = client.execute(&format!("ALTER DATABASE \"{old}\" IS_TEMPLATE false"), &[]).await;
            let _ = client.execute(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"), &[]).await;
        }
        let building = format!("{name}_building");
        client
            .execute(&format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"), &[])
            .await
            .expect("drop");
        client.execute(&format!("CREATE DATABASE \"{building}\""), &[]).await.expect("create template");
        let mut db_settings = settings.database.clone();
        db_settings.url = database_url(settings, &building);
        let pool = rs_cms::db::create_pool(&db_settings).expect("pool");
        rs_cms::db::migrate(&pool).await.expect("migrate template");
        pool.close();
        client
            .execute(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""), &[])
            .await
            .expect("rename");
        client
            .execute(&format!("ALTER DATABASE \"{name}\" IS_TEMPLATE true"), &[])
            .await
            .expect("mark template");
    }
    client.execute("SELECT pg_advisory_unlock(4242)", &[]).await.expect("unlock");
    name
}

/// The configured database URL with another database name.
pub fn database_url(settings: &Settings, db_name: &str) -> String {
    let base = settings.database.url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&settings.database.url);
    format!("{base}/{db_name}")
}

/// Creates a fresh database for one test and returns its settings.
pub async fn fresh_settings() -> (Settings, String) {
    let mut settings = test_settings();
    let template = template_database(&settings).await;
    let db_name = format!("rscms_test_{}", uuid::Uuid::new_v4().simple());
    let client = admin_client(&settings).await;
    let mut attempt = 0;
    loop {
        let created =
            client.execute(&format!("CREATE DATABASE \"{db_name}\" TEMPLATE \"{template}\""), &[]).await;
        match created {
            Ok(_) => break,
            // Two clones of one template at the very same moment can collide; retry.
            Err(err) if attempt < 20 => {
                attempt += 1;
                let _ = err;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => panic!("cannot create test database: {err}"),
        }
    }
    settings.database.url = database_url(&settings, &db_name);
    settings.redis.key_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    (settings, db_name)
}

/// Starts the app on a random port with its own database and Redis prefix.
pub async fn spawn_app() -> TestApp {
    let (settings, db_name) = fresh_settings().await;
    spawn_app_with(settings, db_name).await
}

/// Starts the app with the given settings (after `fresh_settings`).
pub async fn spawn_app_with(settings: Settings, db_name: String) -> TestApp {
    let app = Application::build(settings.clone()).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let db = state.db.clone();
    let server = Some(app.handle());
    actix_web::rt::spawn(app.run_until_stopped());
    let http = awc::Client::builder().timeout(std::time::Duration::from_secs(30)).finish();
    TestApp { address, settings, db, http, state: Some(state), server, db_name }
}

impl TestApp {
    /// A client for a server running elsewhere (e.g. a child process) on
    /// the database of `fresh_settings`; the database is still dropped at the end.
    pub fn attach(settings: Settings, db_name: String, address: String) -> TestApp {
        let db = rs_cms::db::create_pool(&settings.database).expect("pool");
        let http = awc::Client::builder().timeout(std::time::Duration::from_secs(30)).finish();
        TestApp { address, settings, db, http, state: None, server: None, db_name }
    }

    /// Stops the server as SIGTERM would: in-flight requests drain, then
    /// the shutdown steps run (in the background; poll for their effects).
    pub async fn stop(&self) {
        if let Some(server) = &self.server {
            server.stop(true).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let db_name = self.db_name.clone();
        // Drop runs inside the test's runtime; clean up from a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let client = admin_client(&settings).await;
                let _ =
                    client.execute(&format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"), &[]).await;
                if let Ok(redis) = redis::Client::open(settings.redis.url.as_str()) {
                    if let Ok(mut conn) = redis.get_multiplexed_async_connection().await {
                        let pattern = format!("{}*", settings.redis.key_prefix);
                        let keys: Vec<String> =
                            redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap_or_default();
                        if !keys.is_empty() {
                            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                        }
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl TestApp {
    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    /// Like [`call`](Self::call) with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.address, path));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request");
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply { status: res.status(), body, headers: res.headers().clone() }
    }

    /// Sends raw bytes as the body, for malformed-input tests.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{}", self.address, path))
            .insert_header(("Content-Type", content_type));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut res = req.send_body(body.to_owned()).await.expect("request");
        let bytes = res.body().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply { status: res.status(), body, headers: res.headers().clone() }
    }

    /// Registers `username` with a standard password and returns its id.
    pub async fn register(&self, username: &str) -> i64 {
        let reply = self
            .call(
                "POST",
                "/api/auth/register",
                None,
                Some(json!({"username": username, "email": format!("{username}@example.com"), "password": "password-123"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "register {username}: {:?}", reply.body);
        reply.body["id"].as_i64().expect("id")
    }

    /// Logs `login` in with the standard password and returns the token.
    pub async fn login(&self, login: &str) -> String {
        let reply = self
            .call("POST", "/api/auth/login", None, Some(json!({"login": login, "password": "password-123"})))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login {login}: {:?}", reply.body);
        reply.body["token"].as_str().expect("token").to_owned()
    }

    /// Registers and logs in a member; returns (user id, token).
    pub async fn member(&self, username: &str) -> (i64, String) {
        let id = self.register(username).await;
        (id, self.login(username).await)
    }

    /// Creates an administrator the way `rs-cms create-admin` does and logs in.
    pub async fn admin(&self, username: &str) -> (i64, String) {
        let id = rs_cms::account::service::create_admin(
            &self.db,
            &self.settings.auth,
            username,
            &format!("{username}@example.com"),
            "password-123",
        )
        .await
        .expect("create admin");
        (id, self.login(username).await)
    }

    /// A member `owner` applies for shop `name` and operator `admin_token`
    /// approves it; returns (shop id, owner's token).
    pub async fn open_shop(&self, admin_token: &str, owner: &str, name: &str) -> (i64, String) {
        let (_, token) = self.member(owner).await;
        let reply = self.call("POST", "/api/shops", Some(&token), Some(shop_body(name))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "apply: {:?}", reply.body);
        let shop_id = reply.body["id"].as_i64().expect("shop id");
        let reply =
            self.call("POST", &format!("/api/system/shops/{shop_id}/approve"), Some(admin_token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "approve: {:?}", reply.body);
        (shop_id, token)
    }

    /// Rows in `table` (for "wrote nothing" checks).
    pub async fn count(&self, table: &str) -> i64 {
        let client = self.db.get().await.expect("db");
        client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
    }

    /// The newest verification token mailed to `user_id`, read from the outbox.
    pub async fn mailed_token(&self, user_id: i64) -> String {
        let client = self.db.get().await.expect("db");
        let row = client
            .query_one(
                "SELECT payload->>'token' FROM email_outbox WHERE user_id = $1 ORDER BY id DESC LIMIT 1",
                &[&user_id],
            )
            .await
            .expect("outbox row");
        row.get(0)
    }
}
