//! The portable SQL layer's `Conn` on a PostgreSQL transaction: `?N`
//! placeholders become `$N`, statements are prepared once per connection,
//! and a lost serialization race is remembered so the engine retries the
//! whole transaction (even if the SQL around it swallowed the error).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, Statement};

use crate::sql::{Arg, Conn, Dialect, Row};
use crate::{MetaError, Result};

/// A pooled connection and the statements prepared on it.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            statements: HashMap::new(),
        }
    }

    fn statement(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&placeholders(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// `?N` → `$N` (the shared SQL has no `?` anywhere else).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// One transaction on a pooled connection.
pub(crate) struct PgTx<'a> {
    conn: RefCell<&'a mut PgConn>,
    /// A statement lost a race with a concurrent transaction: the whole
    /// transaction must run again.
    pub(crate) conflict: Cell<bool>,
}

impl<'a> PgTx<'a> {
    pub(crate) fn new(conn: &'a mut PgConn) -> Self {
        Self {
            conn: RefCell::new(conn),
            conflict: Cell::new(false),
        }
    }

    fn fail(&self, e: postgres::Error) -> MetaError {
        if is_conflict(&e) {
            self.conflict.set(true);
        }
        error(e)
    }
}

/// Errors that running the transaction again resolves: serialization
/// failures and deadlocks under SERIALIZABLE, and a unique key another
/// transaction inserted first (the rules, run again, see it and answer
/// `AlreadyExists` themselves).
pub(crate) fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

pub(crate) fn error(e: postgres::Error) -> MetaError {
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL => MetaError::NoSpace,
        _ => MetaError::Backend(format!("PostgreSQL: {e}")),
    }
}

impl Conn for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut conn = self.conn.borrow_mut();
        let st = conn.statement(sql).map_err(|e| self.fail(e))?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        conn.client.execute(&st, &params).map_err(|e| self.fail(e))
    }

    fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        let rows = {
            let mut conn = self.conn.borrow_mut();
            let st = conn.statement(sql).map_err(|e| self.fail(e))?;
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
            conn.client.query(&st, &params).map_err(|e| self.fail(e))?
        };
        for r in &rows {
            each(r)?;
        }
        Ok(())
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            // The server infers each parameter's type from the statement;
            // an integer goes out in whatever width it asked for.
            Arg::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => Err(format!("integer parameter for a {ty} column").into()),
            },
            Arg::Text(s) => s.to_sql(ty, out),
            Arg::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Row for postgres::Row {
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        let ty = self
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .ok_or_else(|| MetaError::Backend(format!("no column {i}")))?;
        let v = match ty {
            Type::INT8 => self.try_get::<_, Option<i64>>(i),
            Type::INT4 => self.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)),
            Type::INT2 => self.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)),
            Type::BOOL => self.try_get::<_, Option<bool>>(i).map(|v| v.map(i64::from)),
            t => {
                return Err(MetaError::Backend(format!(
                    "column {i} is {t}, not an integer"
                )))
            }
        };
        v.map_err(error)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(error)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
        self.try_get(i).map_err(error)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            super::placeholders("SELECT ?1, ?12 FROM t WHERE a = ?2"),
            "SELECT $1, $12 FROM t WHERE a = $2"
        );
    }
}
