//! PostgreSQL: the connection pool and the migrations in `sql/`.
//!
//! Stores take `&impl GenericClient` so the same function runs on a pooled
//! connection or inside a transaction.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

mod embedded {
    refinery::embed_migrations!("./sql");
}

/// Builds the pool. No connection is made until first use.
pub fn create_pool(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config =
        settings.url.parse().context("database.url is not a valid PostgreSQL URL")?;
    pg.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
    pg.application_name("rs-cms");
    let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .build()
        .context("cannot build the PostgreSQL pool")
}

/// `host:port/dbname` of a database URL, for error messages (no password).
pub fn describe(settings: &DatabaseSettings) -> String {
    match settings.url.parse::<tokio_postgres::Config>() {
        Ok(cfg) => {
            let host = match cfg.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                #[cfg(unix)]
                Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
                None => "localhost".into(),
            };
            let port = cfg.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", cfg.get_dbname().unwrap_or("postgres"))
        }
        Err(_) => "<unparsable database.url>".into(),
    }
}

/// Checks that Postgres answers, with a message naming what was tried.
pub async fn ping(pool: &Pool, settings: &DatabaseSettings) -> anyhow::Result<()> {
    let client = pool.get().await.map_err(|e| {
        anyhow::anyhow!("cannot reach PostgreSQL at {}: {}", describe(settings), root_cause(&e))
    })?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| anyhow::anyhow!("PostgreSQL at {} does not answer: {e}", describe(settings)))?;
    Ok(())
}

/// Applies the pending migrations of `sql/`.
pub async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("cannot get a connection to migrate")?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut **client)
        .await
        .context("migration failed")?;
    for migration in report.applied_migrations() {
        tracing::info!(version = migration.version(), name = migration.name(), "migration applied");
    }
    Ok(())
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    let text = last.to_string();
    if text == err.to_string() {
        text
    } else {
        format!("{err}: {text}")
    }
}

/// An `ILIKE` pattern matching `text` anywhere, with the pattern
/// metacharacters in `text` escaped so user input matches literally.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The unique constraint (or index) `err` violated, if that is what it is,
/// so a service can turn it into the right 409.
pub fn violated_unique(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error()
        .filter(|e| *e.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        .and_then(|e| e.constraint())
}

/// The CHECK constraint `err` violated, if that is what it is, so a service
/// can turn a guard the database enforced into the right 409.
pub fn violated_check(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error()
        .filter(|e| *e.code() == tokio_postgres::error::SqlState::CHECK_VIOLATION)
        .and_then(|e| e.constraint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_user_text_match_literally() {
        assert_eq!(contains_pattern(r"50%_off\now"), r"%50\%\_off\\now%");
        assert_eq!(contains_pattern("华为手机"), "%华为手机%");
    }
}
