//! The metadata store as SQL, written once for every SQL engine: the tree
//! primitives (`tx`), workspaces, tokens and volumes (`control`), apps
//! (`apps`), sessions (`sessions`), the change feed (`feed`) and the
//! `MetaBackend` around them (`imp`).
//!
//! The statements use the dialect SQLite and PostgreSQL share: `?N`
//! placeholders (an engine rewrites them if it must), `ON CONFLICT`,
//! `RETURNING`, `CASE` instead of the scalar `max`/`greatest`, every
//! integer a 64-bit one. An engine (`crate::sqlite`, `crate::postgres`)
//! supplies connections, transactions, its schema and [`Conn`]; where the
//! engines really differ (the feed's order across concurrent writers) the
//! SQL asks [`Conn::dialect`].

mod apps;
mod control;
mod copy;
mod feed;
mod file_trash;
mod imp;
mod quota;
mod rows;
mod sessions;
mod snapshot;
mod trash;
mod tx;

pub(crate) use copy::copy_all;
pub use copy::Copied;
pub(crate) use feed::FEED_CHANNEL;

use crate::Result;

/// One value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(v as i64)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// The parameters of a statement: `args![a, b]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::sql::Arg::from($a)),*][..]
    };
}
pub(crate) use args;

/// One result row; columns by position.
pub(crate) trait Row {
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>>;

    fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| null(i))
    }
    fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| null(i))
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        self.opt_bytes(i)?.ok_or_else(|| null(i))
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.int(i)? != 0)
    }
}

fn null(i: usize) -> crate::MetaError {
    crate::MetaError::Backend(format!("column {i} is unexpectedly NULL"))
}

/// Which engine runs the statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// One open transaction of an engine.
pub(crate) trait Conn {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the number of rows it changed.
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;
    /// Runs a query, handing each row to `each`.
    fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()>;
}

/// Typed conveniences over [`Conn::query`].
pub(crate) trait ConnExt: Conn {
    fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query(sql, args, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, if any.
    fn row<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.query(sql, args, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The first column of the first row, as an integer.
    fn int(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<i64>> {
        Ok(self.row(sql, args, |r| r.opt_int(0))?.flatten())
    }

    fn any(&self, sql: &str, args: &[Arg<'_>]) -> Result<bool> {
        Ok(self.row(sql, args, |_| Ok(()))?.is_some())
    }
}

impl<C: Conn + ?Sized> ConnExt for C {}

/// An engine: where transactions come from.
pub(crate) trait Engine: Send + Sync + 'static {
    /// Runs `f` in one read-only transaction (one snapshot).
    fn read<T>(&self, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T>;
    /// Runs `f` in one write transaction; `durable`: on stable storage when
    /// it returns. An engine may run `f` again if the transaction lost a
    /// race with a concurrent one (it then sees that one's result).
    fn write<T>(&self, durable: bool, f: &mut dyn FnMut(&dyn Conn) -> Result<T>) -> Result<T>;
    /// Gives the space of deleted rows back to the file system.
    fn compact(&self) -> Result<()>;
}

/// The metadata store on an SQL engine.
pub(crate) struct SqlStore<E> {
    pub(crate) engine: E,
}

/// Random public id with a prefix, e.g. `vo-3f9a…`.
pub(crate) fn new_id(prefix: &str) -> String {
    let b: [u8; 8] = rand::random();
    format!("{prefix}-{}", hex::encode(b))
}
