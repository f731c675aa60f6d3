use sea_orm::sea_query::{
    Alias, ColumnDef, ForeignKey, ForeignKeyAction, Index, Table, TableCreateStatement, TableRef,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::sql::Sql;
use crate::trackable::{Migration, Plan};

impl Migration {
    /// A name for the migration, such as `trackable_users_sign_in_fields`.
    pub fn name(&self) -> String {
        match &self.plan {
            Plan::Fields { table, .. } => format!("trackable_{table}_sign_in_fields"),
            Plan::Table { table, .. } => format!("trackable_create_{table}"),
        }
    }

    /// The statements that apply the migration on `backend`, in order.
    pub fn up_statements(&self, backend: DbBackend) -> Vec<Statement> {
        match &self.plan {
            Plan::Fields {
                schema,
                table,
                columns,
                big_count,
            } => {
                let table_ref = table_ref(schema.as_deref(), table);
                // One column per statement: SQLite's ALTER TABLE adds one column at a time.
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        // count, current_at, current_ip, last_at, last_ip
                        let mut column = match i {
                            0 => {
                                let mut column = ColumnDef::new(Alias::new(name));
                                if *big_count {
                                    column.big_integer();
                                } else {
                                    column.integer();
                                }
                                column.not_null().default(0);
                                column
                            }
                            1 | 3 => time_column(name, backend, true),
                            _ => ip_column(name),
                        };
                        backend.build(
                            Table::alter()
                                .table(table_ref.clone())
                                .add_column(&mut column),
                        )
                    })
                    .collect()
            }
            Plan::Table {
                users_schema,
                users,
                user_pk,
                user_pk_type,
                table,
            } => {
                // The audit table goes into the user table's schema.
                let t = || table_ref(users_schema.as_deref(), table);
                let mut create = Table::create();
                create
                    .table(t())
                    .if_not_exists()
                    .col(event_id())
                    .col(
                        ColumnDef::new_with_type(Alias::new("user_id"), user_pk_type.clone())
                            .not_null(),
                    )
                    .col(big_integer("seq"))
                    .col(action_column())
                    .col(big_integer("sign_in_count"))
                    .col(time_column("current_sign_in_at", backend, true))
                    .col(ip_column("current_sign_in_ip"))
                    .col(time_column("last_sign_in_at", backend, true))
                    .col(ip_column("last_sign_in_ip"))
                    .col(ip_column("remote_ip"))
                    .col(ColumnDef::new(Alias::new("user_agent")).text().null())
                    .col(time_column("inserted_at", backend, false))
                    .col(hash_column("mac"))
                    .col(hash_column("client_digest"));
                for column in DETAIL_COLUMN_DEFS {
                    create.col(detail_column(column));
                }
                create.foreign_key(
                    ForeignKey::create()
                        .name(format!("fk_{table}_user_id"))
                        .from(t(), Alias::new("user_id"))
                        .to(
                            table_ref(users_schema.as_deref(), users),
                            Alias::new(user_pk),
                        )
                        .on_delete(ForeignKeyAction::Cascade),
                );
                let mut statements =
                    create_with_indexes(backend, create, table, t(), &AUDIT_INDEXES);
                statements.extend(unknown_up(users_schema.as_deref(), table, backend));
                statements.extend(throttle_up(users_schema.as_deref(), table, backend));
                statements.push(anchors_up(
                    users_schema.as_deref(),
                    users,
                    user_pk,
                    user_pk_type,
                    table,
                    backend,
                ));
                statements.extend(archive_up(users_schema.as_deref(), table, backend));
                if self.append_only && backend == DbBackend::Postgres {
                    statements.extend(super::postgres::pg_append_only_trigger(
                        users_schema.as_deref(),
                        table,
                    ));
                }
                if backend == DbBackend::Postgres {
                    // The function's arguments grew with the detail columns: the one of an
                    // earlier release goes first (`CREATE OR REPLACE` cannot change them).
                    statements.push(super::postgres::pg_drop_append_function(
                        users_schema.as_deref(),
                        table,
                    ));
                    statements.push(super::postgres::pg_append_function(
                        users_schema.as_deref(),
                        users,
                        user_pk,
                        table,
                    ));
                }
                statements
            }
        }
    }

    /// On PostgreSQL, also installs a trigger that refuses `UPDATE`, `DELETE` and
    /// `TRUNCATE` on the audit table, except inside the crate's own retention functions
    /// ([`purge_audit_trail`](crate::purge_audit_trail), [`anonymize_audit_ips`](crate::anonymize_audit_ips),
    /// [`forget_audit_user_agents`](crate::forget_audit_user_agents), [`erase_audit_trail`](crate::erase_audit_trail)),
    /// which set `trackable.retention` for their transaction. Deleting a user then needs
    /// [`erase_audit_trail`](crate::erase_audit_trail) first, in the same transaction: the
    /// cascade is refused too. Other backends: no trigger.
    ///
    /// What it stops: an application bug, an ORM call, a compromised application role that
    /// does not know about it. What it does not stop: a role that sets `trackable.retention`
    /// itself, the table's owner or a superuser (`ALTER TABLE ... DISABLE TRIGGER`,
    /// `session_replication_role = replica`). Against those, the hash chain and exported
    /// heads are what tell.
    #[must_use]
    pub fn with_append_only_trigger(mut self) -> Self {
        self.append_only = true;
        self
    }

    /// The statements that revert the migration on `backend`, in order.
    pub fn down_statements(&self, backend: DbBackend) -> Vec<Statement> {
        match &self.plan {
            Plan::Fields {
                schema,
                table,
                columns,
                ..
            } => columns
                .iter()
                .rev()
                .map(|name| {
                    backend.build(
                        Table::alter()
                            .table(table_ref(schema.as_deref(), table))
                            .drop_column(Alias::new(name)),
                    )
                })
                .collect(),
            Plan::Table {
                table,
                users_schema,
                ..
            } => {
                let mut statements = Vec::new();
                if backend == DbBackend::Postgres {
                    statements.push(super::postgres::pg_drop_append_function(
                        users_schema.as_deref(),
                        table,
                    ));
                }
                if backend == DbBackend::Postgres {
                    statements.push(super::postgres::pg_drop_append_only_trigger(
                        users_schema.as_deref(),
                        table,
                    ));
                }
                statements.extend([
                    backend.build(
                        Table::drop()
                            .table(table_ref(users_schema.as_deref(), &archive_table(table)))
                            .if_exists(),
                    ),
                    backend.build(
                        Table::drop()
                            .table(table_ref(users_schema.as_deref(), &anchors_table(table)))
                            .if_exists(),
                    ),
                    backend.build(
                        Table::drop()
                            .table(table_ref(users_schema.as_deref(), &throttle_table(table)))
                            .if_exists(),
                    ),
                    backend.build(
                        Table::drop()
                            .table(table_ref(users_schema.as_deref(), &unknown_table(table)))
                            .if_exists(),
                    ),
                    backend.build(
                        Table::drop()
                            .table(table_ref(users_schema.as_deref(), table))
                            .if_exists(),
                    ),
                ]);
                statements
            }
        }
    }

    /// Applies the migration. It can run again: in fields mode, columns that already exist
    /// are left as they are (so it also completes a table created from the entity, which has
    /// them); in table mode, every statement is `IF NOT EXISTS` or `CREATE OR REPLACE`.
    ///
    /// The statements run one after another on `db`: pass a transaction to apply them all or
    /// none, where the backend has transactional DDL (PostgreSQL, SQLite; sea-orm-migration
    /// runs each PostgreSQL migration in one).
    pub async fn up<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        let statements = self.up_statements(backend);
        let existing = match &self.plan {
            Plan::Fields { schema, table, .. } => {
                existing_columns(db, schema.as_deref(), table).await?
            }
            Plan::Table { .. } => Vec::new(),
        };
        let skip: Vec<bool> = match &self.plan {
            Plan::Fields { columns, .. } => columns
                .iter()
                .map(|column| existing.contains(column))
                .collect(),
            Plan::Table { .. } => vec![false; statements.len()],
        };
        for (i, (statement, skip)) in statements.into_iter().zip(skip).enumerate() {
            if !skip {
                db.execute_raw(statement).await?;
            }
            if i == 0
                && let Plan::Table {
                    users_schema,
                    table,
                    ..
                } = &self.plan
            {
                // Right after `CREATE TABLE IF NOT EXISTS`: bring a table of an earlier
                // release up to this one before its indexes are created.
                upgrade_audit_table(db, users_schema.as_deref(), table).await?;
            }
        }
        Ok(())
    }

    /// Reverts the migration.
    pub async fn down<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        for statement in self.down_statements(db.get_database_backend()) {
            db.execute_raw(statement).await?;
        }
        Ok(())
    }
}

/// The names of the columns of `table`.
async fn existing_columns<C: ConnectionTrait>(
    db: &C,
    schema: Option<&str>,
    table: &str,
) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Sqlite => Statement::from_sql_and_values(
            backend,
            "SELECT name FROM pragma_table_info(?)",
            [table.into()],
        ),
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema())",
            [table.into(), schema.map(str::to_owned).into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_name = ? AND table_schema = COALESCE(?, DATABASE())",
            [table.into(), schema.map(str::to_owned).into()],
        ),
    };
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect()
}

/// Stored IPs are canonical text (at most 39 characters for IPv6), or a keyed hash.
const IP_LEN: u32 = 64;

/// The audit table's indexes: name suffix and columns. Every query of the crate uses one;
/// `tests/audit_queries.rs` checks the plans.
pub(crate) const AUDIT_INDEXES: [(&str, &[&str]); 7] = [
    // UNIQUE: the user's event numbers, each once; a user's history, newest first, and
    // their latest row (which every event reads)
    (UNIQUE_SEQ, &["user_id", "seq"]),
    // a user's last login, and the latest lock, unlock and login of the lockout
    ("user_id_action_seq", &["user_id", "action", "seq"]),
    // a user's failed logins within a time window
    (
        "user_id_action_inserted_at",
        &["user_id", "action", "inserted_at"],
    ),
    // whether an IP is new for a user (before one of their events): one seek, however many
    // logins the user has
    (
        "user_id_action_remote_ip_seq",
        &["user_id", "action", "remote_ip", "seq"],
    ),
    // whether a device is new for a user (before one of their events): one seek
    (
        "user_id_action_device_seq",
        &["user_id", "action", "device", "seq"],
    ),
    // an IP's failed logins within a time window
    (
        "remote_ip_action_inserted_at",
        &["remote_ip", "action", "inserted_at"],
    ),
    // retention: purge and anonymise by age, in batches that resume after (inserted_at, id)
    ("inserted_at_id", &["inserted_at", "id"]),
];

/// The unique index of a user's event numbers.
const UNIQUE_SEQ: &str = "user_id_seq";

/// Brings an audit table created by an earlier release up to this one: adds the per-user
/// event number `seq`, numbering each user's rows in the order of their `id` (which was the
/// order of events then), and replaces the indexes that `seq` makes better: `(user_id, id)`
/// by the unique `(user_id, seq)`, `(user_id, action, remote_ip)` by
/// `(user_id, action, remote_ip, seq)`. On MySQL, whose indexes are created with the table, it also creates
/// the indexes the table lacks. Nothing happens on a table that is up to date.
///
/// Run it with no event being tracked on the table by the earlier release: rows that it
/// appends during the upgrade have no event number.
async fn upgrade_audit_table<C: ConnectionTrait>(
    db: &C,
    schema: Option<&str>,
    table: &str,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let t = |sql: &mut Sql| {
        sql.table(schema, table);
    };
    let existing = existing_columns(db, schema, table).await?;
    let added = ["mac", "client_digest"]
        .map(hash_column)
        .into_iter()
        .chain(DETAIL_COLUMN_DEFS.map(detail_column));
    for mut column in added {
        let name = column.get_column_name();
        if !existing.contains(&name) {
            let statement = Table::alter()
                .table(table_ref(schema, table))
                .add_column(&mut column)
                .to_owned();
            db.execute_raw(backend.build(&statement)).await?;
        }
    }
    if !existing.iter().any(|column| column == "seq") {
        let mut add = Sql::new(backend);
        add.push("ALTER TABLE ");
        t(&mut add);
        add.push(" ADD COLUMN ")
            .ident("seq")
            .push(" BIGINT NOT NULL DEFAULT 0");
        db.execute_raw(add.build()).await?;

        // seq = the row's place among the user's rows, by id
        let mut numbered = Sql::new(backend);
        numbered
            .push("(SELECT ")
            .ident("id")
            .push(", ROW_NUMBER() OVER (PARTITION BY ")
            .ident("user_id")
            .push(" ORDER BY ")
            .ident("id")
            .push(") AS ")
            .ident("n")
            .push(" FROM ");
        t(&mut numbered);
        numbered.push(") ").ident("r");
        let numbered = numbered.build().sql;
        let mut backfill = Sql::new(backend);
        backfill.push("UPDATE ");
        t(&mut backfill);
        if backend == DbBackend::MySql {
            backfill
                .push(" JOIN ")
                .push(&numbered)
                .push(" ON ")
                .qualified("r", "id")
                .push(" = ");
            t(&mut backfill);
            backfill.push(".").ident("id").push(" SET ").ident("seq");
            backfill.push(" = ").qualified("r", "n");
        } else {
            backfill
                .push(" SET ")
                .ident("seq")
                .push(" = ")
                .qualified("r", "n")
                .push(" FROM ")
                .push(&numbered)
                .push(" WHERE ")
                .qualified("r", "id")
                .push(" = ");
            t(&mut backfill);
            backfill.push(".").ident("id");
        }
        db.execute_raw(backfill.build()).await?;
    }

    if backend == DbBackend::MySql {
        for (suffix, columns) in AUDIT_INDEXES {
            let name = index_name(table, suffix);
            if !index_exists(db, schema, table, &name).await? {
                let mut create = Sql::new(backend);
                create.push(if suffix == UNIQUE_SEQ {
                    "CREATE UNIQUE INDEX "
                } else {
                    "CREATE INDEX "
                });
                create.ident(&name).push(" ON ");
                t(&mut create);
                create.push(" (").idents(columns.iter().copied()).push(")");
                db.execute_raw(create.build()).await?;
            }
        }
    } else {
        let name = index_name(table, UNIQUE_SEQ);
        if !index_exists(db, schema, table, &name).await? {
            let mut create = Sql::new(backend);
            create
                .push("CREATE UNIQUE INDEX ")
                .ident(&name)
                .push(" ON ");
            t(&mut create);
            create.push(" (").idents(["user_id", "seq"]).push(")");
            db.execute_raw(create.build()).await?;
        }
    }
    for legacy in ["user_id_id", "user_id_action_remote_ip"] {
        let legacy = index_name(table, legacy);
        if !index_exists(db, schema, table, &legacy).await? {
            continue;
        }
        let mut drop = Sql::new(backend);
        drop.push("DROP INDEX ");
        if backend == DbBackend::MySql {
            drop.ident(&legacy).push(" ON ");
            t(&mut drop);
        } else {
            drop.table(schema, &legacy);
        }
        db.execute_raw(drop.build()).await?;
    }
    Ok(())
}

/// Whether `table` has an index named `name`.
async fn index_exists<C: ConnectionTrait>(
    db: &C,
    schema: Option<&str>,
    table: &str,
    name: &str,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Sqlite => Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM pragma_index_list(?) WHERE name = ?",
            [table.into(), name.into()],
        ),
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM pg_indexes WHERE tablename = $1 AND indexname = $2 \
             AND schemaname = COALESCE($3, current_schema())",
            [table.into(), name.into(), schema.map(str::to_owned).into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM information_schema.statistics WHERE table_name = ? \
             AND index_name = ? AND table_schema = COALESCE(?, DATABASE()) LIMIT 1",
            [table.into(), name.into(), schema.map(str::to_owned).into()],
        ),
    };
    Ok(db.query_one_raw(statement).await?.is_some())
}

/// The indexes of the table of failed logins for unknown identifiers.
pub(crate) const UNKNOWN_INDEXES: [(&str, &[&str]); 2] = [
    // an IP's failed logins within a time window
    ("remote_ip_inserted_at", &["remote_ip", "inserted_at"]),
    // retention
    ("inserted_at_id", &["inserted_at", "id"]),
];

/// The name of index `suffix` of `table`.
pub(crate) fn index_name(table: &str, suffix: &str) -> String {
    format!("idx_{table}_{suffix}")
}

/// The table of failed logins whose identifier matched no user, beside audit table `table`.
pub(crate) fn unknown_table(table: &str) -> String {
    format!("{table}_unknown")
}

/// Creates the table of failed logins for unknown identifiers. It has no `user_id` (the
/// audit table's is `NOT NULL` with a foreign key), and keeps the identifier only as a keyed
/// hash.
fn unknown_up(schema: Option<&str>, audit: &str, backend: DbBackend) -> Vec<Statement> {
    let table = unknown_table(audit);
    let t = || table_ref(schema, &table);
    let mut create = Table::create();
    create
        .table(t())
        .if_not_exists()
        .col(event_id())
        .col(ip_column("identifier_hash"))
        .col(ip_column("remote_ip"))
        .col(ColumnDef::new(Alias::new("user_agent")).text().null())
        .col(time_column("inserted_at", backend, false));
    create_with_indexes(backend, create, &table, t(), &UNKNOWN_INDEXES)
}

/// The table of the purge's anchors, beside audit table `table`: per user, the event
/// number and `mac` of the latest row purged, where verification of the chain starts.
pub(crate) fn anchors_table(table: &str) -> String {
    format!("{table}_anchors")
}

/// Creates the table of the purge's anchors, one row per user, deleted with the user.
fn anchors_up(
    schema: Option<&str>,
    users: &str,
    user_pk: &str,
    user_pk_type: &sea_orm::sea_query::ColumnType,
    audit: &str,
    backend: DbBackend,
) -> Statement {
    let table = anchors_table(audit);
    let t = || table_ref(schema, &table);
    let mut create = Table::create();
    create
        .table(t())
        .if_not_exists()
        .col(
            ColumnDef::new_with_type(Alias::new("user_id"), user_pk_type.clone())
                .not_null()
                .primary_key(),
        )
        .col(big_integer("seq"))
        .col(hash_column("mac"))
        .foreign_key(
            ForeignKey::create()
                .name(format!("fk_{table}_user_id"))
                .from(t(), Alias::new("user_id"))
                .to(table_ref(schema, users), Alias::new(user_pk))
                .on_delete(ForeignKeyAction::Cascade),
        );
    backend.build(&create)
}

/// The table of archived trails, beside audit table `table`: the rows of deleted users,
/// under a pseudonym (see [`Tracker::archive_audit_trail`](crate::Tracker::archive_audit_trail)).
pub(crate) fn archive_table(table: &str) -> String {
    format!("{table}_archive")
}

/// Creates the table of archived trails: the audit table's columns with the user's key
/// replaced by `subject`, a keyed digest of it, and the anchor the trail starts from.
fn archive_up(schema: Option<&str>, audit: &str, backend: DbBackend) -> Vec<Statement> {
    let table = archive_table(audit);
    let t = || table_ref(schema, &table);
    let mut create = Table::create();
    create
        .table(t())
        .if_not_exists()
        .col(event_id())
        .col(
            ColumnDef::new(Alias::new("subject"))
                .string_len(64)
                .not_null(),
        )
        .col(big_integer("seq"))
        .col(action_column())
        .col(big_integer("sign_in_count"))
        .col(time_column("current_sign_in_at", backend, true))
        .col(time_column("last_sign_in_at", backend, true))
        .col(time_column("inserted_at", backend, false))
        .col(hash_column("client_digest"))
        .col(hash_column("mac"));
    for column in DETAIL_COLUMN_DEFS {
        create.col(detail_column(column));
    }
    create
        .col(big_integer("anchor_seq"))
        .col(hash_column("anchor_mac"))
        .col(time_column("archived_at", backend, false));
    create_with_indexes(backend, create, &table, t(), &ARCHIVE_INDEXES)
}

/// The indexes of the archive: a trail in order, each event number once.
const ARCHIVE_INDEXES: [(&str, &[&str]); 1] = [(UNIQUE_SUBJECT_SEQ, &["subject", "seq"])];

/// The unique index of an archived trail's event numbers.
const UNIQUE_SUBJECT_SEQ: &str = "subject_seq";

/// The detail columns of the audit table: name, and whether it is a number (else text of
/// at most 64 characters).
const DETAIL_COLUMN_DEFS: [(&str, bool); 5] = [
    ("method", false),
    ("reason", false),
    ("session_seq", true),
    ("session_digest", false),
    ("device", false),
];

/// A nullable detail column.
fn detail_column((name, number): (&str, bool)) -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new(name));
    if number {
        column.big_integer();
    } else {
        column.string_len(64);
    }
    column.null();
    column
}

/// A `BIGINT NOT NULL` column.
fn big_integer(name: &str) -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new(name));
    column.big_integer().not_null();
    column
}

/// The `action` column: the stable name of an event.
fn action_column() -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new("action"));
    column.string_len(16).not_null();
    column
}

/// A hex digest: HMAC-SHA256, 64 hex digits.
fn hash_column(name: &str) -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new(name));
    column.string_len(64).null();
    column
}

/// The table of the lockout's gates, beside audit table `table`.
pub(crate) fn throttle_table(table: &str) -> String {
    format!("{table}_throttle")
}

/// The indexes of the gates' table.
const THROTTLE_INDEXES: [(&str, &[&str]); 1] = [
    // forgetting gates that have been idle
    ("updated_at", &["updated_at"]),
];

/// Creates the table of the lockout's gates: one row per account and per client network,
/// holding the attempts in flight and, for networks, the failures of the current window.
/// The row is also what concurrent attempts through one gate lock, one after another.
fn throttle_up(schema: Option<&str>, audit: &str, backend: DbBackend) -> Vec<Statement> {
    let table = throttle_table(audit);
    let t = || table_ref(schema, &table);
    let mut create = Table::create();
    create
        .table(t())
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("gate"))
                .string_len(160)
                .not_null()
                .primary_key(),
        )
        .col(big_integer("pending"))
        .col(time_column("pending_until", backend, true))
        .col(big_integer("failures"))
        .col(time_column("window_start", backend, true))
        .col(time_column("blocked_until", backend, true))
        .col(time_column("updated_at", backend, false));
    create_with_indexes(backend, create, &table, t(), &THROTTLE_INDEXES)
}

/// `create` and its indexes (name suffix, columns), in statements that can run twice: MySQL
/// has no `CREATE INDEX IF NOT EXISTS`, so there the indexes go inside the
/// `CREATE TABLE IF NOT EXISTS`.
fn create_with_indexes(
    backend: DbBackend,
    mut create: TableCreateStatement,
    table: &str,
    table_ref: TableRef,
    indexes: &[(&str, &[&str])],
) -> Vec<Statement> {
    let mut separate = Vec::new();
    for (suffix, columns) in indexes {
        let mut index = Index::create();
        index.name(index_name(table, suffix));
        for column in *columns {
            index.col(Alias::new(*column));
        }
        if *suffix == UNIQUE_SEQ || *suffix == UNIQUE_SUBJECT_SEQ {
            index.unique();
        }
        if backend == DbBackend::MySql {
            create.index(&mut index);
        } else {
            index.table(table_ref.clone()).if_not_exists();
            separate.push(backend.build(&index));
        }
    }
    let mut statements = vec![backend.build(&create)];
    statements.extend(separate);
    statements
}

/// `id`: a 64-bit auto-increment key, which orders the events.
fn event_id() -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new("id"));
    column
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key();
    column
}

fn table_ref(schema: Option<&str>, table: &str) -> TableRef {
    match schema {
        Some(schema) => (Alias::new(schema), Alias::new(table)).into(),
        None => Alias::new(table).into(),
    }
}

/// A nullable column holding an IP (canonical text or a keyed hash).
fn ip_column(name: &str) -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new(name));
    column.string_len(IP_LEN).null();
    column
}

/// A timestamp column, `NULL` or `NOT NULL`.
fn time_column(name: &str, backend: DbBackend, nullable: bool) -> ColumnDef {
    let mut column = ColumnDef::new(Alias::new(name));
    timestamp(&mut column, backend);
    if nullable {
        column.null();
    } else {
        column.not_null();
    }
    column
}

/// Microsecond precision everywhere: MySQL's `TIMESTAMP` has whole seconds (and ends in 2038).
fn timestamp(column: &mut ColumnDef, backend: DbBackend) -> &mut ColumnDef {
    match backend {
        DbBackend::MySql => column.custom(Alias::new("DATETIME(6)")),
        _ => column.timestamp_with_time_zone(),
    }
}
