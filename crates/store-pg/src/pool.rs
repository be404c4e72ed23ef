//! Connections: a small pool of `tokio_postgres` clients, error mapping, and the
//! transaction wrapper ([`Tx`]) every backend function works through.

use bulwark_store::{AccountId, MailboxId, ModSeq, Result, StoreError};
use futures::Stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, IsolationLevel, NoTls, Row, Statement, Transaction};

/// Connections one store opens at most (the LISTEN connection not counted).
pub(crate) const MAX_CONNECTIONS: usize = 8;
/// How long opening a connection may take before the store counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one SQL statement may run on the server (`statement_timeout`): a statement stuck
/// behind a lock or a stalled disk is cancelled and the call fails as unavailable.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(8);
/// Longest one store call may take in total (waiting for a connection, connecting, every
/// statement, retries): no caller ever waits longer; after it the call is `Unavailable`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalive probes start (finds dead peers behind partitions).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Marks an [`StoreError::Unavailable`] that is worth retrying in a new transaction
/// (deadlock or serialization failure: nothing was written).
pub(crate) const CONFLICT_MARK: &str = "transaction conflict";

/// SQLSTATE classes (first two characters) that mean "the server cannot serve right now".
const UNAVAILABLE_CLASSES: &[&str] = &[
    "08", // connection exception
    "53", // insufficient resources (too many connections, disk full, out of memory)
    "57", // operator intervention (admin shutdown, cannot connect now, query canceled)
    "58", // system error (I/O)
    "25", // invalid transaction state (e.g. read-only transaction on a standby)
];

/// Maps a PostgreSQL failure onto the store's error vocabulary.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = db.message();
        let class = code.get(..2).unwrap_or("");
        return match code {
            // unique_violation
            "23505" => StoreError::AlreadyExists(format!("record ({text})")),
            // serialization_failure, deadlock_detected
            "40001" | "40P01" => StoreError::Unavailable(format!("{CONFLICT_MARK}: {text}")),
            // read_only_sql_transaction: a standby after failover
            "25006" => StoreError::Unavailable(format!("the database is read-only: {text}")),
            // undefined_table, insufficient_privilege: a table made unreadable (an operator
            // restoring it, a broken grant). Temporary for the callers: the auth path falls
            // back to its offline cache, clients get "try again", nothing reports a server bug.
            "42P01" | "42501" => {
                StoreError::Unavailable(format!("PostgreSQL cannot read a table: {text} ({code})"))
            }
            _ if UNAVAILABLE_CLASSES.contains(&class) => {
                StoreError::Unavailable(format!("PostgreSQL: {text} ({code})"))
            }
            // data exception (e.g. NUL in text, value out of range), program limit exceeded
            _ if class == "22" || class == "54" => StoreError::Invalid(format!("{text} ({code})")),
            _ => StoreError::Internal(format!("PostgreSQL: {text} ({code})")),
        };
    }
    let text = e.to_string();
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let unreachable = e.is_closed()
        || io
        || [
            "error connecting",
            "error communicating",
            "connection closed",
            "timeout",
            "unexpected message",
            "error parsing response",
            "error performing TLS",
            "authentication error",
        ]
        .iter()
        .any(|prefix| text.starts_with(prefix));
    if unreachable {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {text}"))
    } else if text.starts_with("invalid connection string") {
        StoreError::Invalid(format!("database URL: {text}"))
    } else {
        StoreError::Internal(format!("PostgreSQL client: {text}"))
    }
}

/// Is this error a transaction conflict worth a retry?
pub(crate) fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(text) if text.starts_with(CONFLICT_MARK))
}

/// Does this error leave the connection unusable (so it must not go back to the pool)?
pub(crate) fn breaks_connection(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_)) && !is_conflict(e)
}

/// Reads a column, mapping conversion failures.
pub(crate) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T> {
    row.try_get(idx).map_err(pg_err)
}

/// Reads a BIGINT column that holds a `u32` (UIDs, UIDVALIDITY, sizes).
pub(crate) fn get_u32(row: &Row, idx: usize) -> Result<u32> {
    let value: i64 = get(row, idx)?;
    u32::try_from(value).map_err(|_| {
        StoreError::Internal(format!(
            "stored value {value} in column {idx} is out of range"
        ))
    })
}

/// Reads a BIGINT modseq column.
pub(crate) fn get_modseq(row: &Row, idx: usize) -> Result<ModSeq> {
    let value: i64 = get(row, idx)?;
    Ok(ModSeq(u64::try_from(value).unwrap_or(0)))
}

/// A modseq as a BIGINT parameter.
pub(crate) fn sql_modseq(modseq: ModSeq) -> i64 {
    i64::try_from(modseq.0).unwrap_or(i64::MAX)
}

/// One connection with its prepared statements.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// The shared pool.
pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    /// Parses `url` and prepares the per-session settings every connection gets.
    pub(crate) fn new(url: &str) -> Result<Arc<Pool>> {
        let config = session_config(url)?;
        Ok(Arc::new(Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }))
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// A connection for one call: an idle one that is still open, or a new one.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<Pooled> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Internal("the connection pool is closed".into()))?;
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(conn) if conn.client.is_closed() => continue,
                Some(conn) => {
                    return Ok(Pooled {
                        conn: Some(conn),
                        pool: self.clone(),
                        _permit: permit,
                        reused: true,
                        begin_failed: false,
                    });
                }
                None => break,
            }
        }
        let client = open(&self.config).await?;
        Ok(Pooled {
            conn: Some(Conn {
                client,
                statements: HashMap::new(),
            }),
            pool: self.clone(),
            _permit: permit,
            reused: false,
            begin_failed: false,
        })
    }
}

/// `url` plus what Bulwark requires of every session.
pub(crate) fn session_config(url: &str) -> Result<Config> {
    let mut config: Config = url
        .parse()
        .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
    // Durable before acknowledged: COMMIT returns only after the WAL is flushed.
    // Nothing hangs: the server cancels a statement that runs longer than STATEMENT_TIMEOUT.
    let ours = format!(
        "-c synchronous_commit=on -c statement_timeout={}",
        STATEMENT_TIMEOUT.as_millis()
    );
    let options = match config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {ours}"),
        _ => ours,
    };
    config
        .options(&options)
        .application_name("bulwark")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE);
    Ok(config)
}

/// Opens one connection; its I/O runs on a spawned task until the client is dropped.
pub(crate) async fn open(config: &Config) -> Result<Client> {
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| StoreError::Unavailable("connecting to PostgreSQL timed out".into()))?
        .map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "store-pg: connection ended");
        }
    });
    Ok(client)
}

/// A connection on loan; goes back to the pool only through [`Pooled::finish`].
pub(crate) struct Pooled {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
    /// Taken from the idle list (it may have died while idle).
    reused: bool,
    /// BEGIN failed: nothing of the call ran on this connection.
    begin_failed: bool,
}

impl Pooled {
    /// Begins a transaction: read-only snapshot or read-write (READ COMMITTED + row locks).
    pub(crate) async fn begin(&mut self, read_only: bool) -> Result<Tx<'_>> {
        let Pooled {
            conn, begin_failed, ..
        } = self;
        let conn = conn
            .as_mut()
            .ok_or_else(|| StoreError::Internal("connection already returned".into()))?;
        let Conn { client, statements } = conn;
        let builder = client.build_transaction();
        let builder = if read_only {
            builder
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
        } else {
            builder.isolation_level(IsolationLevel::ReadCommitted)
        };
        let transaction = match builder.start().await {
            Ok(transaction) => transaction,
            Err(e) => {
                *begin_failed = true;
                return Err(pg_err(e));
            }
        };
        Ok(Tx {
            transaction,
            statements,
            notes: Notes::default(),
        })
    }

    /// Returns the connection to the pool unless the call's outcome says it is broken.
    /// Answers whether the call may simply be run again on a new connection: it failed at
    /// BEGIN on a connection that died while idle (e.g. the server restarted), so nothing
    /// of it reached the database.
    pub(crate) fn finish<T>(mut self, outcome: &Result<T>) -> bool {
        let stale =
            self.reused && self.begin_failed && matches!(outcome, Err(e) if breaks_connection(e));
        let keep = match outcome {
            Ok(_) => true,
            Err(e) => !breaks_connection(e),
        };
        if let Some(conn) = self.conn.take()
            && keep
            && !conn.client.is_closed()
        {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_CONNECTIONS {
                idle.push(conn);
            }
        }
        stale
    }
}

/// What one transaction changed, per account: highest modseq and mailboxes touched.
pub(crate) use bulwark_store::changelog::CommitNotes as Notes;

pub(crate) use bulwark_store::changelog::{ChangeKind as Kind, ChangeOp as Op};

/// Parameters of one statement.
pub(crate) type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// One transaction plus statement cache and change-log helpers.
pub(crate) struct Tx<'c> {
    transaction: Transaction<'c>,
    statements: &'c mut HashMap<&'static str, Statement>,
    pub(crate) notes: Notes,
}

impl<'c> Tx<'c> {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.transaction.prepare(sql).await.map_err(pg_err)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(crate) async fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>> {
        let statement = self.statement(sql).await?;
        self.transaction
            .query(&statement, params)
            .await
            .map_err(pg_err)
    }

    pub(crate) async fn opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        let statement = self.statement(sql).await?;
        self.transaction
            .query_opt(&statement, params)
            .await
            .map_err(pg_err)
    }

    pub(crate) async fn one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        let statement = self.statement(sql).await?;
        self.transaction
            .query_one(&statement, params)
            .await
            .map_err(pg_err)
    }

    pub(crate) async fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        let statement = self.statement(sql).await?;
        self.transaction
            .execute(&statement, params)
            .await
            .map_err(pg_err)
    }

    /// Streams rows (for results that are read only as far as needed).
    pub(crate) async fn stream(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<impl Stream<Item = std::result::Result<Row, tokio_postgres::Error>> + use<'c>> {
        let statement = self.statement(sql).await?;
        self.transaction
            .query_raw(&statement, params.iter().copied())
            .await
            .map_err(pg_err)
    }

    /// Runs several statements (schema DDL) as one simple query.
    pub(crate) async fn batch(&mut self, sql: &str) -> Result<()> {
        self.transaction.batch_execute(sql).await.map_err(pg_err)
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.transaction.commit().await.map_err(pg_err)
    }

    /// Locks the account's counter row until commit, serialising every writer of the
    /// account across nodes (modseq and UID allocation, read-modify-write of keywords).
    /// A missing account is not an error here; the operation decides.
    pub(crate) async fn lock_account(&mut self, account: AccountId) -> Result<()> {
        self.opt(
            "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
            &[&account.0],
        )
        .await?;
        Ok(())
    }

    /// Serialises directory changes (domains, addresses) across nodes until commit.
    pub(crate) async fn lock_directory(&mut self) -> Result<()> {
        self.exec(
            "SELECT pg_advisory_xact_lock($1)",
            &[&crate::schema::DIRECTORY_LOCK],
        )
        .await?;
        Ok(())
    }

    /// Takes the account's next modseq.
    pub(crate) async fn next_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        let row = self
            .opt(
                "UPDATE accounts SET modseq = modseq + 1 WHERE id = $1 RETURNING modseq",
                &[&account.0],
            )
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("account {account}")));
        };
        let modseq = get_modseq(&row, 0)?;
        self.notes.note_modseq(account, modseq);
        Ok(modseq)
    }

    /// Appends one row to the account's change log.
    pub(crate) async fn log(
        &mut self,
        account: AccountId,
        modseq: ModSeq,
        kind: Kind,
        object: i64,
        op: Op,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO changes (account, modseq, kind, object, op) VALUES ($1, $2, $3, $4, $5)",
            &[
                &account.0,
                &sql_modseq(modseq),
                &(kind as i64),
                &object,
                &(op as i64),
            ],
        )
        .await?;
        Ok(())
    }

    /// Notes for subscribers that an item of the collection was written.
    pub(crate) fn note_collection(&mut self, account: AccountId, collection: &str) {
        self.notes.note_collection(account, collection);
    }

    /// Raises the mailbox's HIGHESTMODSEQ and notes it for subscribers.
    pub(crate) async fn touch_mailbox(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<()> {
        self.exec(
            "UPDATE mailboxes SET highest_modseq = $2 WHERE id = $1 AND highest_modseq < $2",
            &[&mailbox.0, &sql_modseq(modseq)],
        )
        .await?;
        self.notes.note_mailbox(account, mailbox);
        Ok(())
    }
}
