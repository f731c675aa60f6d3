use sea_orm::DbErr;

/// Everything that can go wrong while tracking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No row of the user table has the tracked user's primary key. Nothing was written.
    #[error("cannot track `{action}`: no row of table `{table}` has primary key {user_id}")]
    UserNotFound {
        /// The user table.
        table: String,
        /// The primary key that was looked up, as text.
        user_id: String,
        /// The event that was being tracked.
        action: crate::Action,
    },
    /// A concurrent event of the same user (or the database's deadlock or serialization
    /// check) got in the way of this one inside the caller's transaction, which the database
    /// has now aborted. Nothing of the event was written: roll the transaction back and run
    /// it again (see [`Error::is_retryable`]).
    ///
    /// Where this crate owns the statement or the transaction it retries by itself, and
    /// returns this only after its attempts ran out.
    #[error(
        "a concurrent transaction conflicted with this event; roll the transaction back and retry it"
    )]
    Conflict {
        /// What the database said.
        #[source]
        source: DbErr,
    },
    /// The user's sign-in count (or, in table mode, event number) is already the largest
    /// value its column holds. Nothing was written.
    #[error(
        "cannot track `{action}`: the sign-in count of primary key {user_id} in table `{table}` is at the largest value its column holds"
    )]
    CountOverflow {
        /// The user table.
        table: String,
        /// The user's primary key, as text.
        user_id: String,
        /// The event that was being tracked.
        action: crate::Action,
    },
    /// A stored row holds a value that this crate cannot read: a time outside the years
    /// -262143 to 262142 (PostgreSQL's `infinity`, say), written by someone else.
    #[error("a row read into `{model}` holds {what}")]
    InvalidData {
        /// The Rust type that the row was to be read into.
        model: &'static str,
        /// What is wrong.
        what: String,
    },
    /// The database returned a row that does not fit the model.
    #[error("the database returned a row that does not fit `{model}`")]
    Decode {
        /// The Rust type that the row was decoded into.
        model: &'static str,
        /// What did not fit.
        #[source]
        source: DbErr,
    },
    /// [`Permit::succeeded`](crate::Permit::succeeded) was called on the permit of an
    /// identifier that matched no user. Nothing was written.
    #[error("a sign-in attempt of an identifier that matched no user cannot succeed")]
    NoUserToSignIn,
    /// The audit trail cannot be verified: the tracker has no chain key
    /// ([`Tracker::with_chain_key`](crate::Tracker::with_chain_key)).
    #[error("verifying an audit trail needs the tracker's chain key (Tracker::with_chain_key)")]
    NoChainKey,
    /// A function for fields-mode models was called with a table-mode model.
    #[error("this function is for fields-mode models; table mode keeps its IPs in the audit trail")]
    FieldsModeOnly,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl Error {
    /// Whether running the same transaction again may succeed: a [`Conflict`](Error::Conflict),
    /// or a database error that reports a deadlock, a serialization failure or a busy
    /// database. Retry the whole transaction, not the last statement:
    ///
    /// ```no_run
    /// # async fn run(db: &sea_orm::DatabaseConnection, user: &impl trackable_core::Trackable,
    /// #     client: &trackable_core::ClientInfo) -> trackable_core::Result<()> {
    /// use sea_orm::{IsolationLevel, TransactionTrait};
    ///
    /// let tracker = trackable_core::Tracker::new();
    /// let mut attempt = 0;
    /// loop {
    ///     let txn = db.begin_with_config(Some(IsolationLevel::RepeatableRead), None).await?;
    ///     let outcome = async {
    ///         // ... the application's own statements ...
    ///         tracker.login(&txn, user, client).await
    ///     }
    ///     .await;
    ///     match outcome {
    ///         Ok(_) => break txn.commit().await?,
    ///         Err(error) if error.is_retryable() && attempt < 20 => {
    ///             txn.rollback().await?;
    ///             attempt += 1;
    ///         }
    ///         Err(error) => return Err(error),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict { .. } => true,
            Error::Db(error) => is_conflict(error),
            _ => false,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `error` is one that a later attempt of the same transaction may not meet: a
/// serialization failure, a deadlock, a busy database, or a duplicate key (the per-user
/// event number of table mode, taken by a concurrent event).
pub(crate) fn is_conflict(error: &DbErr) -> bool {
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    if let DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))
    | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error))
    | DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error)) = error
        && let Some(error) = error.as_database_error()
    {
        #[cfg(feature = "mysql")]
        if let Some(error) = error.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
            // duplicate key, lock wait timeout, deadlock, InnoDB's AUTO-INC deadlock
            return matches!(error.number(), 1062 | 1205 | 1213 | 1467);
        }
        let code = error.code().unwrap_or_default();
        return matches!(
            &*code,
            // PostgreSQL: serialization failure, deadlock, unique violation
            "40001" | "40P01" | "23505"
            // SQLite (extended codes): busy, busy snapshot, unique constraint
            | "5" | "517" | "2067"
        );
    }
    let _ = error;
    false
}

/// SQLSTATE 42883 (PostgreSQL's undefined_function).
pub(crate) fn is_undefined_function(error: &DbErr) -> bool {
    #[cfg(feature = "postgres")]
    if let DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))
    | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error)) = error
    {
        return error
            .as_database_error()
            .and_then(|error| error.code())
            .is_some_and(|code| code == "42883");
    }
    let _ = error;
    false
}
