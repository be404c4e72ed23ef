//! Connections: a small pool of `tokio_postgres` clients, error mapping, and the
//! transaction wrapper ([`Tx`]) every backend function works through.

use bulwark_store::{AccountId, MailboxId, ModSeq, Result, StoreError};
use futures::Stream;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

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

/// Statements written by [`Tx::exec_later`]: sent with the next statement whose answer is
/// awaited (or with COMMIT), in order, in one round trip.
type Later = Vec<(Statement, Vec<LaterParam>)>;

/// An owned parameter of a statement sent later.
pub(crate) type LaterParam = Box<dyn ToSql + Sync + Send>;

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
    /// Nothing is sent yet: BEGIN goes out with the transaction's first statement, in the
    /// same round trip.
    pub(crate) async fn begin(&mut self, read_only: bool) -> Result<Tx<'_>> {
        let Pooled {
            conn, begin_failed, ..
        } = self;
        let conn = conn
            .as_mut()
            .ok_or_else(|| StoreError::Internal("connection already returned".into()))?;
        let Conn { client, statements } = conn;
        let begin = if read_only {
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        } else {
            "START TRANSACTION ISOLATION LEVEL READ COMMITTED"
        };
        Ok(Tx {
            client,
            statements,
            read_only,
            begin: Some(begin),
            open: false,
            answered: false,
            begin_failed,
            later: Vec::new(),
            notes: Notes::default(),
            modseqs: HashMap::new(),
            uid_next: HashMap::new(),
            ids: HashMap::new(),
            expected_rows: 1,
            rows: crate::buffer::Buffered::default(),
            thread_refs: None,
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
///
/// Statements whose answer nobody waits for ([`Tx::exec_later`]: change-log rows, counter
/// updates, blob inserts, locks) are kept and sent with the next statement that is awaited
/// — pipelined on the connection, in order, one round trip for all of them (and BEGIN goes
/// out with the first). An error of any of them is the error of that next call, so a
/// failure still rolls back the whole transaction before anything is acknowledged.
pub(crate) struct Tx<'c> {
    client: &'c Client,
    statements: &'c mut HashMap<&'static str, Statement>,
    read_only: bool,
    /// BEGIN, until it is sent with the first statement.
    begin: Option<&'static str>,
    /// BEGIN was sent and neither COMMIT nor ROLLBACK yet.
    open: bool,
    /// The server has answered a statement of this transaction.
    answered: bool,
    /// Set when the first round trip failed on a broken connection: nothing of the call
    /// was committed, it may run again on a new connection.
    begin_failed: &'c mut bool,
    later: Later,
    pub(crate) notes: Notes,
    /// Row counters this transaction has locked by updating them, with their current value:
    /// the next values are counted here and written with [`Tx::exec_later`], so a batch of
    /// deliveries waits for one answer per counter instead of one per message.
    modseqs: HashMap<AccountId, u64>,
    uid_next: HashMap<i64, i64>,
    /// Ids taken from a sequence for rows not inserted yet ([`Tx::take_id`]).
    ids: HashMap<&'static str, std::collections::VecDeque<i64>>,
    /// Rows of one kind this transaction expects to insert (how many ids to take at once).
    pub(crate) expected_rows: usize,
    /// Rows of the hottest tables not sent yet ([`crate::buffer`]).
    pub(crate) rows: crate::buffer::Buffered,
    /// Thread references read ahead for a batch ([`Tx::prefetch_thread_refs`]): for each
    /// (account, Message-ID) asked, its thread or `None`; kept up to date by this
    /// transaction's own writes, dropped when a thread merge rewrites them.
    pub(crate) thread_refs: Option<HashMap<(i64, String), Option<i64>>>,
}

impl Drop for Tx<'_> {
    /// A transaction dropped without COMMIT (an error, a panic) is rolled back at once: the
    /// ROLLBACK is queued on the connection before it can be used again, so no row lock
    /// outlives the call.
    fn drop(&mut self) {
        if self.open {
            send_unanswered(self.client, "ROLLBACK");
        }
    }
}

/// Queues a simple statement on the connection without waiting for its answer: anything
/// sent on the connection afterwards runs after it. tokio-postgres sends a request at the
/// first poll, and its connection task discards answers nobody waits for.
fn send_unanswered(client: &Client, sql: &str) {
    let request = client.batch_execute(sql);
    let mut request = std::pin::pin!(request);
    let _ = request
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
}

/// Polls every future in order until all are done: the first poll sends each request,
/// in this order, before any answer is awaited (tokio-postgres pipelining).
async fn in_order<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut results: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *result = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    results.into_iter().flatten().collect()
}

impl<'c> Tx<'c> {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = match self.client.prepare(sql).await {
            Ok(statement) => statement,
            Err(e) => return Err(self.failed(pg_err(e), false)),
        };
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Notes a failure before the server answered anything of this transaction on a
    /// broken connection: nothing was committed, so the call may run again (unless the
    /// failed round trip carried COMMIT, `ends`, whose fate is unknown).
    fn failed(&mut self, e: StoreError, ends: bool) -> StoreError {
        if !self.answered && !ends && breaks_connection(&e) {
            *self.begin_failed = true;
        }
        e
    }

    /// Sends BEGIN (if not yet sent), the statements kept for later, then `main`, in one
    /// round trip; the first error in that order is the answer.
    async fn send<T: Send>(
        &mut self,
        main: impl Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
        ends: bool,
    ) -> Result<T> {
        let client = self.client;
        let later = std::mem::take(&mut self.later);
        let mut main_out = None;
        let mut requests: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> = Vec::new();
        if let Some(sql) = self.begin.take() {
            requests.push(Box::pin(async move {
                client.batch_execute(sql).await.map(|_| 0)
            }));
            self.open = true;
        }
        for (statement, params) in &later {
            let params = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync));
            requests.push(Box::pin(client.execute_raw(statement, params)));
        }
        let main_slot = &mut main_out;
        requests.push(Box::pin(async move {
            *main_slot = Some(main.await);
            Ok(0)
        }));
        let first_error = in_order(requests)
            .await
            .into_iter()
            .find_map(|answer| answer.err());
        let outcome = match (first_error, main_out) {
            (Some(e), _) => Err(pg_err(e)),
            (None, Some(answer)) => answer.map_err(pg_err),
            (None, None) => Err(StoreError::Internal(
                "a pipelined statement was never answered".into(),
            )),
        };
        let outcome = outcome.map_err(|e| self.failed(e, ends));
        self.answered = true;
        outcome
    }

    /// Queues the buffered rows ([`crate::buffer`]) ahead of the next statement.
    async fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        for (sql, params) in std::mem::take(&mut self.rows).into_statements() {
            self.exec_later(sql, params).await?;
        }
        Ok(())
    }

    pub(crate) async fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>> {
        self.flush().await?;
        self.query_unbuffered(sql, params).await
    }

    /// [`Tx::query`] for a statement that reads none of the buffered tables' rows of this
    /// transaction (counters, sequences, thread references): they stay buffered.
    pub(crate) async fn query_unbuffered(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>> {
        let statement = self.statement(sql).await?;
        let client = self.client;
        self.send(client.query(&statement, params), false).await
    }

    pub(crate) async fn opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        self.flush().await?;
        self.opt_unbuffered(sql, params).await
    }

    /// [`Tx::opt`] that leaves the buffered rows buffered, as [`Tx::query_unbuffered`].
    pub(crate) async fn opt_unbuffered(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        let statement = self.statement(sql).await?;
        let client = self.client;
        self.send(client.query_opt(&statement, params), false).await
    }

    pub(crate) async fn one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        self.flush().await?;
        let statement = self.statement(sql).await?;
        let client = self.client;
        self.send(client.query_one(&statement, params), false).await
    }

    pub(crate) async fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        self.flush().await?;
        let statement = self.statement(sql).await?;
        let client = self.client;
        self.send(client.execute(&statement, params), false).await
    }

    /// Writes a statement whose answer the caller does not need; it is sent with the next
    /// awaited statement or COMMIT, and its error becomes theirs.
    pub(crate) async fn exec_later(
        &mut self,
        sql: &'static str,
        params: Vec<LaterParam>,
    ) -> Result<()> {
        let statement = self.statement(sql).await?;
        self.later.push((statement, params));
        Ok(())
    }

    /// Streams rows (for results that are read only as far as needed).
    pub(crate) async fn stream(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<impl Stream<Item = std::result::Result<Row, tokio_postgres::Error>> + use<'c>> {
        self.flush().await?;
        let statement = self.statement(sql).await?;
        let client: &'c Client = self.client;
        self.send(client.query_raw(&statement, params.iter().copied()), false)
            .await
    }

    /// Runs several statements (schema DDL) as one simple query.
    pub(crate) async fn batch(&mut self, sql: &str) -> Result<()> {
        self.flush().await?;
        let client = self.client;
        self.send(client.batch_execute(sql), false).await
    }

    /// Sends what is still kept and COMMIT; returns once the commit is durable.
    pub(crate) async fn commit(mut self) -> Result<()> {
        self.flush().await?;
        if self.begin.is_some() && self.later.is_empty() {
            // Nothing was ever sent: there is no transaction on the server to end.
            self.begin = None;
            return Ok(());
        }
        if self.read_only && self.later.is_empty() {
            // Everything was read and answered: ending a read-only snapshot cannot fail in a
            // way that matters, and whoever uses the connection next is queued behind it.
            self.open = false;
            send_unanswered(self.client, "COMMIT");
            return Ok(());
        }
        let client = self.client;
        let outcome = self.send(client.batch_execute("COMMIT"), true).await;
        // COMMIT ends the transaction whatever its answer (a failed one rolls back).
        self.open = false;
        outcome
    }

    /// Locks the account's counter row until commit, serialising every writer of the
    /// account across nodes (modseq and UID allocation, read-modify-write of keywords).
    /// A missing account is not an error here; the operation decides.
    pub(crate) async fn lock_account(&mut self, account: AccountId) -> Result<()> {
        self.exec_later(
            "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
            vec![Box::new(account.0)],
        )
        .await
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

    /// Takes the account's next modseq. The first one of a transaction reads the counter
    /// and locks the account's row until commit; the next ones are counted here, and the
    /// last value is written once with the buffered rows (nobody else can change the
    /// locked row meanwhile).
    pub(crate) async fn next_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        let current = match self.modseqs.get(&account) {
            Some(&current) => current,
            None => {
                let row = self
                    .opt_unbuffered(
                        "SELECT modseq FROM accounts WHERE id = $1 FOR UPDATE",
                        &[&account.0],
                    )
                    .await?;
                let Some(row) = row else {
                    return Err(StoreError::NotFound(format!("account {account}")));
                };
                get_modseq(&row, 0)?.0
            }
        };
        let modseq = ModSeq(current + 1);
        self.modseqs.insert(account, modseq.0);
        self.rows.account_modseq(account.0, sql_modseq(modseq));
        self.notes.note_modseq(account, modseq);
        Ok(modseq)
    }

    /// Takes the mailbox's next UID, below `max` (`None` when the mailbox does not exist or
    /// its UIDs are used up). Read and locked once per transaction, then counted here and
    /// written with the buffered rows, like [`Tx::next_modseq`].
    pub(crate) async fn next_uid(
        &mut self,
        account: AccountId,
        mailbox: i64,
        max: i64,
    ) -> Result<Option<i64>> {
        let next = match self.uid_next.get(&mailbox) {
            Some(&next) => next,
            None => {
                let row = self
                    .opt_unbuffered(
                        "SELECT uid_next FROM mailboxes WHERE id = $1 AND account = $2 FOR UPDATE",
                        &[&mailbox, &account.0],
                    )
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let next: i64 = get(&row, 0)?;
                self.uid_next.insert(mailbox, next);
                next
            }
        };
        if next >= max {
            return Ok(None);
        }
        self.uid_next.insert(mailbox, next + 1);
        self.rows.uid_next(mailbox, next + 1);
        Ok(Some(next))
    }

    /// An id for a row to be inserted into a table with a BIGSERIAL key, taken from the
    /// table's sequence `sequence`: [`Tx::expected_rows`] at once, so a batch of
    /// deliveries waits once. Unused ids are left as gaps (ids are never reused anyway).
    pub(crate) async fn take_id(&mut self, sequence: &'static str) -> Result<i64> {
        if let Some(id) = self.ids.get_mut(sequence).and_then(|ids| ids.pop_front()) {
            return Ok(id);
        }
        let count = i64::try_from(self.expected_rows.clamp(1, 1024)).unwrap_or(1);
        let rows = self
            .query_unbuffered(
                "SELECT nextval($1::text::regclass) FROM generate_series(1::bigint, $2::bigint)",
                &[&sequence, &count],
            )
            .await?;
        let mut ids = rows
            .iter()
            .map(|r| get::<i64>(r, 0))
            .collect::<Result<std::collections::VecDeque<i64>>>()?;
        let id = ids
            .pop_front()
            .ok_or_else(|| StoreError::Internal(format!("sequence {sequence} gave no id")))?;
        self.ids.insert(sequence, ids);
        Ok(id)
    }

    /// Reads the threads of these (account, Message-ID) pairs in one round trip, so the
    /// deliveries of a batch look their references up without waiting each.
    pub(crate) async fn prefetch_thread_refs(&mut self, pairs: Vec<(i64, String)>) -> Result<()> {
        let (accounts, ids): (Vec<i64>, Vec<String>) = pairs.iter().cloned().unzip();
        let rows = self
            .query_unbuffered(
                "SELECT r.account, r.message_id, r.thread
                 FROM unnest($1::bigint[], $2::text[]) AS u(account, id)
                 JOIN thread_refs r ON r.account = u.account AND r.message_id = u.id",
                &[&accounts, &ids],
            )
            .await?;
        let mut known: HashMap<(i64, String), Option<i64>> =
            pairs.into_iter().map(|pair| (pair, None)).collect();
        for row in &rows {
            known.insert((get(row, 0)?, get(row, 1)?), Some(get(row, 2)?));
        }
        self.thread_refs = Some(known);
        Ok(())
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
        self.notes.note_kind(account, kind);
        self.rows.change(
            account.0,
            sql_modseq(modseq),
            kind as i64,
            object,
            op as i64,
        );
        Ok(())
    }

    /// Notes for subscribers that new mail was delivered to the account.
    pub(crate) fn note_delivery(&mut self, account: AccountId) {
        self.notes.note_delivery(account);
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
        self.rows.highest_modseq(mailbox.0, sql_modseq(modseq));
        self.notes.note_mailbox(account, mailbox);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code
    use super::*;
    use crate::testing::fresh_database_url;

    /// A pool on a fresh database with one table `t (id PRIMARY KEY)` holding row 1.
    async fn pool_with_table() -> Option<Arc<Pool>> {
        let url = fresh_database_url().await.expect("test PostgreSQL")?;
        let pool = Pool::new(&url).unwrap();
        let mut pooled = pool.get().await.unwrap();
        let mut tx = pooled.begin(false).await.unwrap();
        tx.batch("CREATE TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        pooled.finish(&Ok(()));
        Some(pool)
    }

    async fn count(pool: &Arc<Pool>) -> i64 {
        let mut pooled = pool.get().await.unwrap();
        let mut tx = pooled.begin(true).await.unwrap();
        let n: i64 = get(&tx.one("SELECT count(*) FROM t", &[]).await.unwrap(), 0).unwrap();
        tx.commit().await.unwrap();
        pooled.finish(&Ok(()));
        n
    }

    #[tokio::test]
    async fn a_failing_statement_sent_later_is_the_answer_and_undoes_the_transaction() {
        let Some(pool) = pool_with_table().await else {
            return;
        };
        let mut pooled = pool.get().await.unwrap();
        let outcome: Result<()> = async {
            let mut tx = pooled.begin(false).await?;
            tx.exec_later("INSERT INTO t VALUES ($1)", vec![Box::new(2i64)])
                .await?;
            tx.exec_later("INSERT INTO t VALUES ($1)", vec![Box::new(1i64)])
                .await?;
            // Awaited: the two inserts go out with it; the duplicate is the error, not
            // the "transaction is aborted" of this statement.
            tx.opt("SELECT 1", &[]).await?;
            tx.commit().await
        }
        .await;
        assert!(
            matches!(outcome, Err(StoreError::AlreadyExists(_))),
            "{outcome:?}"
        );
        pooled.finish(&outcome);
        // Row 2 went in before the duplicate failed; the rollback took it out again, and
        // the connection is usable by the next call.
        assert_eq!(count(&pool).await, 1);
        let mut pooled = pool.get().await.unwrap();
        let mut tx = pooled.begin(false).await.unwrap();
        tx.exec_later("INSERT INTO t VALUES ($1)", vec![Box::new(3i64)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        pooled.finish(&Ok(()));
        assert_eq!(count(&pool).await, 2);
    }

    #[tokio::test]
    async fn a_transaction_dropped_without_commit_releases_its_row_locks_at_once() {
        let Some(pool) = pool_with_table().await else {
            return;
        };
        let mut pooled = pool.get().await.unwrap();
        let outcome: Result<()> = async {
            let mut tx = pooled.begin(false).await?;
            tx.opt("SELECT 1 FROM t WHERE id = 1 FOR UPDATE", &[])
                .await?;
            Err(StoreError::Invalid("the rules refused".into()))
        }
        .await;
        // Back in the pool, not used again yet: nothing must still hold the lock.
        pooled.finish(&outcome);
        let other = open(pool.config()).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match other
                .batch_execute("BEGIN; SELECT 1 FROM t WHERE id = 1 FOR UPDATE NOWAIT; COMMIT")
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    // The ROLLBACK is on its way; it must arrive without the connection
                    // being used again.
                    let _ = other.batch_execute("ROLLBACK").await;
                    assert!(std::time::Instant::now() < deadline, "lock still held: {e}");
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    #[tokio::test]
    async fn reads_after_an_unanswered_commit_see_later_writes() {
        let Some(pool) = pool_with_table().await else {
            return;
        };
        for n in 2..6i64 {
            assert_eq!(count(&pool).await, n - 1);
            let mut pooled = pool.get().await.unwrap();
            let mut tx = pooled.begin(false).await.unwrap();
            tx.exec_later("INSERT INTO t VALUES ($1)", vec![Box::new(n)])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            pooled.finish(&Ok(()));
        }
        assert_eq!(count(&pool).await, 5);
    }
}
