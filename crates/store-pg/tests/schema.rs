#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! Online migrations: several nodes may start at once; a newer but compatible schema is
//! accepted (rolling upgrade), an incompatible one refused. Needs `BULWARK_TEST_PG`.

use bulwark_store::StoreError;
use bulwark_store_pg::PgStore;
use bulwark_store_pg::testing::fresh_database_url;

async fn set_schema(url: &str, version: i64, compatible_from: i64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE schema_version SET version = $1, compatible_from = $2",
            &[&version, &compatible_from],
        )
        .await
        .expect("update schema_version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_newer_schemas_are_judged_by_compatibility() {
    let Some(url) = fresh_database_url().await.expect("test PostgreSQL") else {
        eprintln!("skipped: BULWARK_TEST_PG not set");
        return;
    };
    let (a, b, c) = tokio::join!(
        PgStore::connect(&url),
        PgStore::connect(&url),
        PgStore::connect(&url)
    );
    for node in [a, b, c] {
        node.expect("concurrent start").ping().await.expect("ping");
    }
    // A newer binary migrated additively: this one keeps running.
    set_schema(&url, 99, 1).await;
    PgStore::connect(&url)
        .await
        .expect("newer but compatible schema is accepted");
    // A newer binary made a change old code cannot live with: refused with words.
    set_schema(&url, 99, 50).await;
    let refused = PgStore::connect(&url).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(text)) if text.contains("schema version")),
        "{refused:?}"
    );
}
