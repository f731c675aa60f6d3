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
    /// The database returned a row that does not fit the model.
    #[error("the database returned a row that does not fit `{model}`")]
    Decode {
        /// The Rust type that the row was decoded into.
        model: &'static str,
        /// What did not fit.
        #[source]
        source: DbErr,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
