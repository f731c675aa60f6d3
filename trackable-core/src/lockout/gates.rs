//! The lockout's gates: one row per account and per client network in the table
//! `<audit table>_throttle`, holding the attempts in flight and, for a network, the failures
//! of its current window.
//!
//! Every attempt through a gate locks its row first (an upsert, so the row need not exist),
//! so the attempts of one account, or of one network, are decided one after another on every
//! backend and across app servers. The row is read and written back under that lock; the
//! arithmetic is done here, not in SQL, so that it is the same on every backend.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult};

use crate::error::{Error, Result};
use crate::store::migration::throttle_table;
use crate::store::rows::{get, push_readable};
use crate::store::sql::Sql;
use crate::trackable::table_of;
use crate::trail::tables::AuditTrail;

/// The gates' table of an audit trail.
pub(crate) struct Gates {
    schema: Option<String>,
    table: String,
}

/// One gate, as read under its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gate {
    pub(crate) key: String,
    pending: i64,
    pending_until: Option<DateTime<Utc>>,
    failures: i64,
    window_start: Option<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
}

const GATE_TIMES: [&str; 4] = [
    "pending_until",
    "window_start",
    "blocked_until",
    "updated_at",
];

impl Gates {
    pub(crate) fn of<M: AuditTrail>() -> Self {
        let (schema, table) = table_of::<M::Audit>();
        Gates {
            schema,
            table: throttle_table(table),
        }
    }

    /// Locks gate `key` until the end of `conn`'s transaction, creating it if needed, and
    /// reads it.
    pub(crate) async fn lock<C: ConnectionTrait>(
        &self,
        conn: &C,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Gate> {
        let backend = conn.get_database_backend();
        let mut upsert = Sql::new(backend);
        upsert
            .push("INSERT INTO ")
            .table(self.schema.as_deref(), &self.table)
            .push(" (")
            .idents(["gate", "pending", "failures", "updated_at"])
            .push(") VALUES (")
            .param(key)
            .push(", 0, 0, ")
            .param(now)
            .push(")");
        let row = if backend == DbBackend::MySql {
            // The update that changes nothing still takes the row's exclusive lock.
            upsert
                .push(" ON DUPLICATE KEY UPDATE ")
                .ident("gate")
                .push(" = ")
                .ident("gate");
            conn.execute_raw(upsert.build()).await?;
            let mut select = Sql::new(backend);
            select
                .push("SELECT * FROM ")
                .table(self.schema.as_deref(), &self.table)
                .push(" WHERE ")
                .ident("gate")
                .push(" = ")
                .param(key)
                .push(" FOR UPDATE");
            conn.query_one_raw(select.build()).await?
        } else {
            upsert
                .push(" ON CONFLICT (")
                .ident("gate")
                .push(") DO UPDATE SET ")
                .ident("gate")
                .push(" = excluded.")
                .ident("gate")
                .push(" RETURNING *");
            push_readable(&mut upsert, &GATE_TIMES);
            conn.query_all_raw(upsert.build()).await?.into_iter().next()
        };
        let row = row.ok_or_else(|| Error::InvalidData {
            model: "lockout gate",
            what: format!("no row for gate `{key}` after it was written"),
        })?;
        Gate::read(&row, key)
    }

    /// Writes `gate` back.
    pub(crate) async fn save<C: ConnectionTrait>(
        &self,
        conn: &C,
        gate: &Gate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut update = Sql::new(conn.get_database_backend());
        update
            .push("UPDATE ")
            .table(self.schema.as_deref(), &self.table)
            .push(" SET ");
        let columns: [(&str, sea_orm::Value); 6] = [
            ("pending", gate.pending.into()),
            ("pending_until", gate.pending_until.into()),
            ("failures", gate.failures.into()),
            ("window_start", gate.window_start.into()),
            ("blocked_until", gate.blocked_until.into()),
            ("updated_at", now.into()),
        ];
        for (i, (column, value)) in columns.into_iter().enumerate() {
            if i > 0 {
                update.push(", ");
            }
            update.ident(column).push(" = ").param(value);
        }
        update
            .push(" WHERE ")
            .ident("gate")
            .push(" = ")
            .param(gate.key.as_str());
        conn.execute_raw(update.build()).await?;
        Ok(())
    }

    /// Deletes the gates not written since `before`; returns how many.
    pub(crate) async fn forget_idle<C: ConnectionTrait>(
        &self,
        conn: &C,
        before: DateTime<Utc>,
    ) -> Result<u64> {
        let mut delete = Sql::new(conn.get_database_backend());
        delete
            .push("DELETE FROM ")
            .table(self.schema.as_deref(), &self.table)
            .push(" WHERE ")
            .ident("updated_at")
            .push(" < ")
            .param(before);
        Ok(conn.execute_raw(delete.build()).await?.rows_affected())
    }
}

impl Gate {
    fn read(row: &QueryResult, key: &str) -> Result<Self> {
        if let Ok(Some(false)) = row.try_get::<Option<bool>>("", "__trackable_readable") {
            return Err(Error::InvalidData {
                model: "lockout gate",
                what: format!("a time outside the years -262143 to 262142 in gate `{key}`"),
            });
        }
        Ok(Gate {
            key: key.to_owned(),
            pending: get(row, "pending")?,
            pending_until: get(row, "pending_until")?,
            failures: get(row, "failures")?,
            window_start: get(row, "window_start")?,
            blocked_until: get(row, "blocked_until")?,
        })
    }

    /// The attempts in flight: the ones reserved before `pending_until`, which every new
    /// reservation pushes back, count until then.
    pub(crate) fn pending(&self, now: DateTime<Utc>) -> u64 {
        match self.pending_until {
            Some(until) if until > now => u64::try_from(self.pending).unwrap_or(0),
            _ => 0,
        }
    }

    /// When the attempts in flight stop counting.
    pub(crate) fn pending_until(&self) -> Option<DateTime<Utc>> {
        self.pending_until
    }

    /// Reserves one attempt, in flight until `until` at the latest.
    pub(crate) fn reserve(&mut self, now: DateTime<Utc>, until: DateTime<Utc>) {
        self.pending = i64::try_from(self.pending(now))
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        self.pending_until = Some(
            self.pending_until
                .filter(|u| *u > now)
                .map_or(until, |u| u.max(until)),
        );
    }

    /// Ends one attempt in flight.
    pub(crate) fn release(&mut self, now: DateTime<Utc>) {
        let pending = self.pending(now).saturating_sub(1);
        self.pending = i64::try_from(pending).unwrap_or(0);
        if pending == 0 {
            self.pending_until = None;
        }
    }

    /// Until when the network is blocked, if it is.
    pub(crate) fn blocked_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.blocked_until.filter(|until| *until > now)
    }

    /// The failures of the current window. A window that ended, or a block that ended,
    /// starts the count again.
    pub(crate) fn failures(&mut self, now: DateTime<Utc>, window: TimeDelta) -> u64 {
        let block_ended = self.blocked_until.is_some_and(|until| until <= now);
        let window_ended = self.window_start.is_none_or(|start| {
            start
                .checked_add_signed(window)
                .is_none_or(|end| end <= now)
        });
        if block_ended || window_ended {
            self.failures = 0;
            self.window_start = None;
            self.blocked_until = None;
        }
        u64::try_from(self.failures).unwrap_or(0)
    }

    /// Counts one failure; at `threshold` failures the network is blocked until
    /// `blocked_until`, which is returned.
    pub(crate) fn fail(
        &mut self,
        now: DateTime<Utc>,
        window: TimeDelta,
        threshold: u32,
        blocked_until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let failures = self.failures(now, window).saturating_add(1);
        self.failures = i64::try_from(failures).unwrap_or(i64::MAX);
        self.window_start.get_or_insert(now);
        if failures >= u64::from(threshold) {
            self.blocked_until = Some(blocked_until);
        }
        self.blocked_until(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate {
            key: "net:192.0.2.1/32".to_owned(),
            pending: 0,
            pending_until: None,
            failures: 0,
            window_start: None,
            blocked_until: None,
        }
    }

    #[test]
    fn attempts_in_flight_count_until_they_time_out() {
        let now = Utc::now();
        let minute = TimeDelta::minutes(1);
        let mut g = gate();
        g.reserve(now, now + minute);
        g.reserve(now, now + minute);
        assert_eq!(g.pending(now), 2);
        g.release(now);
        assert_eq!(g.pending(now), 1);
        assert_eq!(
            g.pending(now + minute),
            0,
            "a permit never resolved times out"
        );
        g.release(now + minute);
        assert_eq!((g.pending, g.pending_until), (0, None));
    }

    #[test]
    fn failures_block_at_the_threshold_and_start_again_when_the_block_ends() {
        let now = Utc::now();
        let (window, cool_off) = (TimeDelta::minutes(15), TimeDelta::minutes(10));
        let mut g = gate();
        assert_eq!(g.fail(now, window, 2, now + cool_off), None);
        assert_eq!(g.fail(now, window, 2, now + cool_off), Some(now + cool_off));
        assert_eq!(g.blocked_until(now), Some(now + cool_off));
        let later = now + cool_off;
        assert_eq!(g.blocked_until(later), None);
        assert_eq!(
            g.failures(later, window),
            0,
            "a block that ended starts again"
        );
    }

    #[test]
    fn a_window_that_ended_starts_the_count_again() {
        let now = Utc::now();
        let window = TimeDelta::minutes(15);
        let mut g = gate();
        g.fail(now, window, 5, now);
        assert_eq!(g.failures(now + TimeDelta::minutes(14), window), 1);
        assert_eq!(g.failures(now + window, window), 0);
    }
}
