#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! The shared store conformance suite, run against PostgreSQL (one fresh database per
//! check). Needs `BULWARK_TEST_PG` (see `scripts/pg-test-server`); skipped without it.

use bulwark_store_pg::testing::fresh_store_or_skip;

bulwark_store::conformance_tests!(match fresh_store_or_skip().await {
    Some(store) => store,
    None => return,
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_runs_on_one_shared_store() {
    let Some(store) = fresh_store_or_skip().await else {
        return;
    };
    bulwark_store::conformance::run_all(store).await;
}
