//! The scale-out backend: PostgreSQL (or a PostgreSQL-compatible database),
//! shared by any number of `svol server`s.
//!
//! Every write runs SERIALIZABLE and is run again, whole, when it loses a
//! race with a concurrent one (up to `RETRIES` times): the rules then see
//! the winner's result and answer as if the two had come one after the
//! other. Reads run in one REPEATABLE READ snapshot. A write that need not
//! be durable yet commits with `synchronous_commit = off` (PostgreSQL
//! keeps it consistent and flushes it with the next durable commit), the
//! same bargain as the SQLite engine's `synchronous=NORMAL`.
//!
//! The change feed's ordering across servers is in `sql::feed`; its
//! doorbell (`LISTEN`) is [`Doorbell`].

mod conn;
mod schema;
mod tls;

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use self::conn::{PgConn, PgTx};
use crate::sql::{Conn, Engine};
use crate::{MetaError, Result};

/// Times a transaction is run again after losing a race.
const RETRIES: u32 = 64;

/// Connections one server keeps at most (each is a PostgreSQL backend
/// process; three servers stay well under the default max_connections of
/// 100).
const MAX_CONNECTIONS: usize = 24;

pub(crate) struct Postgres {
    config: postgres::Config,
    tls: tls::Tls,
    /// The URL without its password, for messages.
    shown: String,
    pool: Mutex<Pool>,
    freed: Condvar,
}

struct Pool {
    idle: Vec<PgConn>,
    open: usize,
}

fn connect(
    config: &postgres::Config,
    tls: &tls::Tls,
) -> std::result::Result<Client, postgres::Error> {
    match tls {
        tls::Tls::Plain => config.connect(NoTls),
        tls::Tls::Verified(t) => config.connect(t.clone()),
    }
}

/// An error with its causes (a TLS failure says why only in its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The URL as it may be shown: without a password.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or any
    /// libpq-style connection string) and creates or checks the schema.
    pub(crate) fn open(url: &str) -> Result<Self> {
        let (url, root_cert) = tls::split_root_cert(url);
        let url = url.as_str();
        let mut config: postgres::Config = url.parse().map_err(|e| {
            MetaError::InvalidArgument(format!("bad PostgreSQL URL {}: {e}", shown(url)))
        })?;
        let tls = tls::choose(&mut config, root_cert.as_deref(), &shown(url))?;
        let pg = Self {
            config,
            tls,
            shown: shown(url),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        };
        let mut c = pg.take()?;
        let r = schema::create(&mut c.client);
        pg.give(c);
        r?;
        Ok(pg)
    }

    fn connect(&self) -> Result<Client> {
        let mut config = self.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        connect(&config, &self.tls).map_err(|e| {
            MetaError::Backend(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.shown,
                chain(&e)
            ))
        })
    }

    /// A connection from the pool, or a new one while under the cap.
    fn take(&self) -> Result<PgConn> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return match self.connect() {
                    Ok(c) => Ok(PgConn::new(c)),
                    Err(e) => {
                        self.lost();
                        Err(e)
                    }
                };
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Returns a connection to the pool (a broken one is dropped).
    fn give(&self, c: PgConn) {
        if c.client.is_closed() {
            drop(c);
            self.lost();
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.idle.push(c);
        drop(pool);
        self.freed.notify_one();
    }

    fn lost(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.open = pool.open.saturating_sub(1);
        drop(pool);
        self.freed.notify_one();
    }

    /// Runs `f` in one transaction opened by `begin`; `Err(None)` means it
    /// lost a race and should run again.
    fn attempt<T>(
        &self,
        c: &mut PgConn,
        begin: &str,
        f: &mut dyn FnMut(&dyn Conn) -> Result<T>,
    ) -> std::result::Result<T, Option<MetaError>> {
        c.client
            .batch_execute(begin)
            .map_err(|e| Some(conn::error(e)))?;
        let (res, conflict) = {
            let tx = PgTx::new(c);
            let res = f(&tx);
            (res, tx.conflict.get())
        };
        match res {
            Ok(v) if !conflict => match c.client.batch_execute("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) if conn::is_conflict(&e) => Err(None),
                Err(e) => Err(Some(conn::error(e))),
            },
            other => {
                // The transaction is rolled back whatever `f` made of it.
                let _ = c.client.batch_execute("ROLLBACK");
                match other {
                    _ if conflict => Err(None),
                    Err(e) => Err(Some(e)),
                    Ok(_) => Err(None),
                }
            }
        }
    }

    fn run<T>(&self, begin: &str, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        let mut backoff = Duration::from_micros(200);
        for _ in 0..RETRIES {
            let mut c = self.take()?;
            let r = self.attempt(&mut c, begin, f);
            self.give(c);
            match r {
                Ok(v) => return Ok(v),
                Err(Some(e)) => return Err(e),
                Err(None) => {
                    crate::TRANSACTION_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Lost a race: wait a little (jittered, growing) so the
                    // winner finishes, then run again.
                    let jitter = rand::random::<u64>() % (backoff.as_micros() as u64 + 1);
                    std::thread::sleep(backoff + Duration::from_micros(jitter));
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
        Err(MetaError::Backend(format!(
            "a PostgreSQL transaction lost {RETRIES} races in a row with concurrent ones"
        )))
    }

    /// A dedicated connection that listens for feed appends.
    pub(crate) fn doorbell(&self) -> Result<Doorbell> {
        let mut client = self.connect()?;
        client
            .batch_execute(&format!("LISTEN {}", crate::sql::FEED_CHANNEL))
            .map_err(conn::error)?;
        Ok(Doorbell { client })
    }
}

impl Engine for Postgres {
    fn read<T>(&self, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        self.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f)
    }

    fn write<T>(&self, durable: bool, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T> {
        if durable {
            self.run("BEGIN ISOLATION LEVEL SERIALIZABLE", f)
        } else {
            self.run(
                "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL synchronous_commit TO OFF",
                f,
            )
        }
    }

    fn compact(&self) -> Result<()> {
        // Autovacuum gives deleted rows' space back to the tables.
        Ok(())
    }
}

/// The advisory lock whose holder runs the cluster's background loops
/// ("svollead").
const LEADER_LOCK: i64 = 0x7376_6f6c_6c65_6164;

impl Postgres {
    /// A claim on the background loops of the cluster (see `Leadership`).
    pub(crate) fn leadership(&self) -> Leadership {
        Leadership {
            config: self.config.clone(),
            tls: self.tls.clone(),
            client: None,
            held: false,
        }
    }
}

/// One server of a cluster at a time runs the background loops (session
/// expiry, idle apps, the block sweeper, feed trimming): the one holding a
/// session-level advisory lock on its own connection. If that server dies
/// its connection closes, PostgreSQL releases the lock, and the next
/// server to ask takes over. (The loops stay correct if two ran at once;
/// the election saves the others the work.)
pub struct Leadership {
    config: postgres::Config,
    tls: tls::Tls,
    client: Option<Client>,
    held: bool,
}

impl Leadership {
    /// Does this server lead now? Takes the lead if nobody holds it.
    pub fn leading(&mut self) -> bool {
        match self.try_lead() {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!("leader election: {e}");
                self.client = None;
                self.held = false;
                false
            }
        }
    }

    fn try_lead(&mut self) -> std::result::Result<bool, postgres::Error> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let mut config = self.config.clone();
            config.connect_timeout(Duration::from_secs(5));
            self.client = Some(connect(&config, &self.tls)?);
            self.held = false;
        }
        let Some(c) = self.client.as_mut() else {
            return Ok(false);
        };
        if self.held {
            // Still connected, so still held.
            c.batch_execute("SELECT 1")?;
        } else {
            self.held = c
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?
                .get(0);
        }
        Ok(self.held)
    }
}

/// Rings when another server (or this one) appended to the change feed.
/// PostgreSQL drops notifications while the connection is down, so it is
/// only a doorbell: the tailer reads the feed table on every ring and on a
/// timer.
pub struct Doorbell {
    client: Client,
}

impl Doorbell {
    /// Waits up to `timeout` for a ring; true if it rang. An error means
    /// the connection is gone: make a new doorbell.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let mut n = self.client.notifications();
        let rang = n
            .timeout_iter(timeout)
            .next()
            .map_err(conn::error)?
            .is_some();
        // Several appends ring once.
        while n.iter().next().map_err(conn::error)?.is_some() {}
        drop(n);
        if self.client.is_closed() {
            return Err(MetaError::Backend(
                "PostgreSQL doorbell connection closed".into(),
            ));
        }
        Ok(rang)
    }
}
