//! Test support (feature `testing`): a fresh PostgreSQL database per test on the server that
//! `scripts/postgres.sh start` runs (and `scripts/test.sh` starts for the whole test run).

use sqlx::Connection;

use crate::{Result, StoreError};

/// The variable holding the test server's URL (a superuser on its `postgres` database).
pub const POSTGRES_URL_ENV: &str = "HOLDPOINT_TEST_POSTGRES_URL";

/// Creates an empty database on the test server and returns its URL. Fails (never skips) when
/// [`POSTGRES_URL_ENV`] is unset, saying how to start a server.
pub async fn fresh_postgres_url() -> Result<String> {
    let server = std::env::var(POSTGRES_URL_ENV).map_err(|_| {
        StoreError::Invalid(format!(
            "{POSTGRES_URL_ENV} is not set: the PostgreSQL tests need a server. Run them through \
             scripts/test.sh, or start one with `eval \"$(scripts/postgres.sh start)\"` \
             (stop it with `scripts/postgres.sh stop \"$HOLDPOINT_TEST_POSTGRES_DIR\"`)"
        ))
    })?;
    let name = crate::new_id("hp_test")?.replace('-', "_");
    let mut conn = sqlx::PgConnection::connect(&server).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    with_database(&server, &name)
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> Result<String> {
    let bad = || StoreError::InvalidUrl("test server URL must be postgres://USER@HOST:PORT/DB");
    let scheme_end = url.find("://").ok_or_else(bad)? + 3;
    let (base, rest) = url.split_at(scheme_end);
    let slash = rest.find('/').ok_or_else(bad)?;
    let query = rest[slash..]
        .find('?')
        .map(|q| &rest[slash + q..])
        .unwrap_or("");
    Ok(format!("{base}{}/{db}{query}", &rest[..slash]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(
            super::with_database("postgres://u@h:1/postgres?sslmode=disable", "x").unwrap(),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h:1/postgres", "x").unwrap(),
            "postgres://u@h:1/x"
        );
    }
}
