use sea_orm::{EntityTrait, FromQueryResult, ModelTrait, Value};

/// A SeaORM user model whose sign-ins are tracked.
///
/// Implemented by `#[derive(Trackable)]`; the mode (columns on the user row, or an audit
/// table) is part of the type, so the `track_*` functions need no mode argument.
pub trait Trackable: ModelTrait + FromQueryResult + Send + Sync + 'static {
    /// What a tracked event returns: the user row after the event (fields mode), or the
    /// appended audit row (table mode).
    type Record: FromQueryResult + crate::HasSignInState + Send + Sync + 'static;

    /// How this model is tracked.
    const MODE: Mode;

    /// The schema change this model needs: the five sign-in columns (fields mode) or the
    /// audit table (table mode). See [`Migration`](crate::Migration).
    fn migration() -> crate::Migration;

    #[doc(hidden)]
    fn __tracking() -> crate::__private::Tracking<Self::Entity>;

    #[doc(hidden)]
    fn __user_id(&self) -> Value;
}

/// How a [`Trackable`] model is tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Five tracking columns on the user row; only logins and logouts write.
    Fields,
    /// An append-only audit table; every event appends a row.
    Table {
        /// The audit table's name.
        table: &'static str,
    },
}

/// The entity of a trackable model.
pub(crate) type EntityOf<M> = <M as ModelTrait>::Entity;

pub(crate) fn table_of<E: EntityTrait>() -> (Option<String>, &'static str) {
    let entity = E::default();
    (
        sea_orm::EntityName::schema_name(&entity).map(str::to_owned),
        sea_orm::EntityName::table_name(&entity),
    )
}
