use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

mod sealed {
    pub trait Sealed {}
    impl Sealed for sea_orm::DatabaseConnection {}
    impl Sealed for sea_orm::DatabaseTransaction {}
}

/// A database handle that events can be tracked on: a [`DatabaseConnection`] (the pool), or
/// the caller's open [`DatabaseTransaction`], so that tracking commits or rolls back together
/// with the login itself.
///
/// On a connection, an event that needs more than one statement runs in a transaction of its
/// own; on a transaction, it runs inside the caller's.
pub trait Connection:
    ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction> + Send + Sync + sealed::Sealed
{
    #[doc(hidden)]
    fn __in_transaction(&self) -> bool;
}

impl Connection for DatabaseConnection {
    fn __in_transaction(&self) -> bool {
        false
    }
}

impl Connection for DatabaseTransaction {
    fn __in_transaction(&self) -> bool {
        true
    }
}

/// Runs `$body` with `$conn` bound to a handle that is inside a transaction: the caller's
/// transaction when `$db` is one, otherwise a new one that commits when the body succeeds.
///
/// `atomically!(db, |conn| ...)` begins with [`begin`] (READ COMMITTED on MySQL);
/// `atomically!(db, default_isolation, |conn| ...)` with the server's default isolation, for
/// bodies that only touch the user's own row.
macro_rules! atomically {
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::store::connection::atomically!(@run $db, $crate::store::connection::begin, |$conn| $body)
    };
    ($db:expr, default_isolation, |$conn:ident| $body:expr) => {
        $crate::store::connection::atomically!(@run $db, ::sea_orm::TransactionTrait::begin, |$conn| $body)
    };
    (@run $db:expr, $begin:path, |$conn:ident| $body:expr) => {{
        let db = $db;
        if $crate::store::connection::Connection::__in_transaction(db) {
            let $conn = db;
            $body
        } else {
            let txn = $begin(db).await?;
            let outcome = {
                let $conn = &txn;
                $body
            };
            match outcome {
                Ok(value) => {
                    ::sea_orm::TransactionSession::commit(txn).await?;
                    Ok(value)
                }
                Err(error) => {
                    // The error that made us roll back matters more than a failed rollback,
                    // and dropping the transaction rolls it back anyway.
                    let _ = ::sea_orm::TransactionSession::rollback(txn).await;
                    Err(error)
                }
            }
        }
    }};
}
pub(crate) use atomically;

/// Begins the transaction of one event, at READ COMMITTED on PostgreSQL and MySQL, with
/// `BEGIN IMMEDIATE` on SQLite.
///
/// PostgreSQL: each statement reads the rows committed before it started, so the statement
/// after the user-row lock sees the event that held the lock before, whatever the database's
/// default isolation. MySQL: under InnoDB's default REPEATABLE READ, an `INSERT ... SELECT`
/// takes next-key locks on the rows it reads, which deadlock against the table's AUTO-INC
/// lock when many users sign in at once. The user-row lock taken first already orders the
/// events of one user, and READ COMMITTED lets each statement see the rows committed before
/// it, so nothing is lost.
pub(crate) async fn begin<C: Connection>(db: &C) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    match db.get_database_backend() {
        sea_orm::DbBackend::MySql | sea_orm::DbBackend::Postgres => {
            db.begin_with_config(Some(sea_orm::IsolationLevel::ReadCommitted), None)
                .await
        }
        // SQLite: holding the write lock from the start, it reads the rows of the events
        // before it and nothing can come between its read and its write.
        _ => {
            db.begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        }
    }
}

/// Begins a transaction that will track an event, taking the write lock early where that
/// matters: `BEGIN IMMEDIATE` on SQLite, a plain `BEGIN` elsewhere.
///
/// SQLite begins a transaction as a reader; when a transaction that has read turns to
/// writing while another connection wrote since, SQLite cannot wait for it and fails at once
/// with "database is locked" (whatever the busy timeout). A handler that reads the user and
/// then tracks the login in one transaction, several at a time, meets that often. Begun with
/// `BEGIN IMMEDIATE`, the transaction waits for the write lock up front (within the busy
/// timeout), and then nothing can come between its read and its write.
///
/// ```no_run
/// # async fn run(db: &sea_orm::DatabaseConnection, email: &str,
/// #     client: &trackable_core::ClientInfo) -> trackable_core::Result<()> {
/// # mod member { use sea_orm::entity::prelude::*;
/// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
/// # #[sea_orm(table_name = "members")] #[trackable(table = "member_events")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub email: String }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {} }
/// use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
///
/// let txn = trackable_core::begin_write(db).await?;
/// if let Some(member) = member::Entity::find()
///     .filter(member::Column::Email.eq(email))
///     .one(&txn)
///     .await?
/// {
///     trackable_core::track_login(&txn, &member, client).await?;
/// }
/// txn.commit().await?;
/// # Ok(()) }
/// ```
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => {
            db.begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        }
        _ => db.begin().await,
    }
}
