//! Once-per-cluster jobs: of two nodes on one database exactly one leads,
//! and when it dies (its lock connection with it) the other takes over.

use std::sync::Arc;
use std::time::Duration;

use rs_cms::cluster::Leadership;

use crate::helpers::{fresh_settings, spawn_app_with};

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[actix_web::test]
async fn one_node_runs_the_cluster_jobs_and_another_takes_over_when_it_dies() {
    let (settings, db_name) = fresh_settings().await;
    let app = spawn_app_with(settings.clone(), db_name).await;
    let node_a = app.state.as_ref().unwrap().leadership.clone();
    wait_until("the only node leads", || node_a.is_leader()).await;

    // Two more nodes on the same database, each with its own pool.
    let every = Duration::from_millis(50);
    let node_b = Arc::new(Leadership::default());
    let node_c = Arc::new(Leadership::default());
    let pool_b = rs_cms::db::create_pool(&settings.database).unwrap();
    let pool_c = rs_cms::db::create_pool(&settings.database).unwrap();
    let b_task = actix_web::rt::spawn(node_b.clone().run(pool_b, every));
    actix_web::rt::spawn(node_c.clone().run(pool_c, every));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(node_a.is_leader() && !node_b.is_leader() && !node_c.is_leader());

    // The leader's connection dies (as it does with its node): someone else leads.
    let client = app.db.get().await.unwrap();
    let killed: bool = client
        .query_one(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND ((classid::int8 << 32) | objid::int8) = $1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&rs_cms::cluster::JOBS_LOCK_KEY],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    let leaders = || [&node_a, &node_b, &node_c].iter().filter(|node| node.is_leader()).count();
    wait_until("node A notices it lost the lock", || !node_a.is_leader()).await;
    wait_until("exactly one node leads again", || leaders() == 1).await;

    // And if that one dies with its node, the jobs move on again.
    if node_b.is_leader() {
        b_task.abort();
        wait_until("node A or C takes over", || node_a.is_leader() || node_c.is_leader()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!([&node_a, &node_c].iter().filter(|node| node.is_leader()).count(), 1);
}
