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

/// Begins the transaction of one event.
///
/// On MySQL at READ COMMITTED: under InnoDB's default REPEATABLE READ, an `INSERT ... SELECT`
/// takes next-key locks on the rows it reads, which deadlock against the table's AUTO-INC
/// lock when many users sign in at once. The user-row lock taken first already orders the
/// events of one user, and READ COMMITTED lets each statement see the rows committed before
/// it, so nothing is lost.
pub(crate) async fn begin<C: Connection>(db: &C) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    match db.get_database_backend() {
        sea_orm::DbBackend::MySql => {
            db.begin_with_config(Some(sea_orm::IsolationLevel::ReadCommitted), None)
                .await
        }
        _ => db.begin().await,
    }
}
