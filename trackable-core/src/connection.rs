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
macro_rules! atomically {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let db = $db;
        if $crate::connection::Connection::__in_transaction(db) {
            let $conn = db;
            $body
        } else {
            let txn = ::sea_orm::TransactionTrait::begin(db).await?;
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
