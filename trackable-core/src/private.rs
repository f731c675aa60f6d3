//! Items used by the code that `#[derive(Trackable)]` generates. Not public API.

pub use chrono;
pub use sea_orm;

use sea_orm::EntityTrait;

pub use crate::trackable::{FieldColumns, TableSpec, Tracking};
use crate::trackable::{Migration, table_of};

// The derive checks each field's type against a trait of its own, generated beside the model
// with a message naming the type as the user wrote it; those traits are implemented through
// the ones below, so these never appear in an error.

/// Types that can hold a sign-in count.
pub trait ReadCount {
    /// The count, NULL counting as 0.
    fn get(&self) -> i64;
}
impl ReadCount for i32 {
    fn get(&self) -> i64 {
        i64::from(*self)
    }
}
impl ReadCount for i64 {
    fn get(&self) -> i64 {
        *self
    }
}
impl ReadCount for Option<i32> {
    fn get(&self) -> i64 {
        self.map_or(0, i64::from)
    }
}
impl ReadCount for Option<i64> {
    fn get(&self) -> i64 {
        self.unwrap_or(0)
    }
}

/// Types that can hold a sign-in time.
pub trait ReadTime {
    /// The time.
    fn get(&self) -> Option<chrono::DateTime<chrono::Utc>>;
}
impl ReadTime for Option<chrono::DateTime<chrono::Utc>> {
    fn get(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        *self
    }
}
/// `Option<DateTimeWithTimeZone>`: what sea-orm-cli generates for a `timestamptz` column.
impl ReadTime for Option<chrono::DateTime<chrono::FixedOffset>> {
    fn get(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.map(|at| at.to_utc())
    }
}

/// Types that can hold a sign-in IP.
pub trait ReadIp {
    /// The IP text.
    fn get(&self) -> Option<String>;
}
impl ReadIp for Option<String> {
    fn get(&self) -> Option<String> {
        self.clone()
    }
}

/// Types that can be the primary key of a user tracked in table mode.
pub trait UserKey {}
impl UserKey for i32 {}
impl UserKey for i64 {}
impl UserKey for String {}
impl UserKey for sea_orm::prelude::Uuid {}

/// The relation of audit entity `A` to user entity `U`: `A`'s column `user_id` refers to `U`'s
/// key `id`, `ON DELETE CASCADE` (what `DeriveRelation` writes for `belongs_to`).
pub fn user_relation<A: EntityTrait, U: EntityTrait>(
    user_id: A::Column,
    id: U::Column,
) -> sea_orm::RelationDef {
    A::belongs_to(U::default())
        .from(user_id)
        .to(id)
        .on_delete(sea_orm::sea_query::ForeignKeyAction::Cascade)
        .into()
}

/// The fields-mode migration of entity `E`.
pub fn fields_migration<E: EntityTrait>(columns: &FieldColumns<E>) -> Migration {
    use sea_orm::{ColumnTrait, IdenStatic};
    let big_count = matches!(
        columns.sign_in_count.def().get_column_type(),
        sea_orm::sea_query::ColumnType::BigInteger | sea_orm::sea_query::ColumnType::BigUnsigned
    );
    let (schema, table) = table_of::<E>();
    Migration::fields(
        schema,
        table.to_owned(),
        [
            columns.sign_in_count.as_str().to_owned(),
            columns.current_sign_in_at.as_str().to_owned(),
            columns.current_sign_in_ip.as_str().to_owned(),
            columns.last_sign_in_at.as_str().to_owned(),
            columns.last_sign_in_ip.as_str().to_owned(),
        ],
        big_count,
    )
}

/// The table-mode migration of entity `E`.
pub fn table_migration<E: EntityTrait>(spec: &TableSpec<E>) -> Migration {
    use sea_orm::{ColumnTrait, IdenStatic};
    let (schema, table) = table_of::<E>();
    Migration::table(
        schema,
        table.to_owned(),
        spec.id.as_str().to_owned(),
        spec.id.def().get_column_type().clone(),
        spec.table.to_owned(),
    )
}
