//! Test support: fresh databases on the test server named by `BULWARK_TEST_PG`
//! (started by `scripts/pg-test-server`). Each call creates its own database, so tests can
//! run in parallel against one server.

use crate::PgStore;
use crate::pool::{open, pg_err, session_config};
use bulwark_store::Result;
use std::sync::Arc;

/// Environment variable holding the test server's admin URL.
pub const TEST_PG_ENV: &str = "BULWARK_TEST_PG";

/// The admin URL, if tests against PostgreSQL are enabled.
pub fn test_server_url() -> Option<String> {
    std::env::var(TEST_PG_ENV).ok().filter(|s| !s.is_empty())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

/// Creates an empty database `t_<random>` on the test server and returns its URL;
/// `None` when [`TEST_PG_ENV`] is unset.
pub async fn fresh_database_url() -> Result<Option<String>> {
    let Some(admin) = test_server_url() else {
        return Ok(None);
    };
    let name = format!("t_{:016x}", rand::random::<u64>());
    let client = open(&session_config(&admin)?).await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(pg_err)?;
    Ok(Some(with_database(&admin, &name)))
}

/// A [`PgStore`] on a fresh database; `None` (after printing why) when tests against
/// PostgreSQL are not enabled.
pub async fn fresh_store() -> Result<Option<Arc<PgStore>>> {
    match fresh_database_url().await? {
        Some(url) => PgStore::connect(&url).await.map(Some),
        None => {
            eprintln!("skipped: {TEST_PG_ENV} not set (start one with scripts/pg-test-server)");
            Ok(None)
        }
    }
}

/// Like [`fresh_store`], failing loudly when the server is set but unusable.
pub async fn fresh_store_or_skip() -> Option<Arc<PgStore>> {
    match fresh_store().await {
        Ok(store) => store,
        Err(e) => panic!("test PostgreSQL at ${TEST_PG_ENV} is not usable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t_2"),
            "postgres://u@h:1/t_2"
        );
        assert_eq!(
            with_database("postgres://u@h:1/db?sslmode=disable", "t_3"),
            "postgres://u@h:1/t_3?sslmode=disable"
        );
    }
}
