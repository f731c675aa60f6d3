//! Items used by the code that `#[derive(Trackable)]` generates. Not public API.

pub use chrono;
pub use sea_orm;

use sea_orm::EntityTrait;

pub use crate::trackable::{FieldColumns, TableSpec, Tracking};
use crate::trackable::{Migration, table_of};

/// Types that can hold a sign-in count.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a sign-in count",
    label = "write `i32`, `i64`, `Option<i32>` or `Option<i64>` here",
    note = "the count is incremented in SQL; NULL counts as 0"
)]
pub trait SignInCount {
    /// The count, NULL counting as 0.
    fn get(&self) -> i64;
}
impl SignInCount for i32 {
    fn get(&self) -> i64 {
        i64::from(*self)
    }
}
impl SignInCount for i64 {
    fn get(&self) -> i64 {
        *self
    }
}
impl SignInCount for Option<i32> {
    fn get(&self) -> i64 {
        self.map_or(0, i64::from)
    }
}
impl SignInCount for Option<i64> {
    fn get(&self) -> i64 {
        self.unwrap_or(0)
    }
}

/// Types that can hold a sign-in time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a sign-in time",
    label = "write `Option<DateTimeUtc>` here",
    note = "sign-in times are UTC and NULL until the first sign-in"
)]
pub trait SignInAt {
    /// The time.
    fn get(&self) -> Option<chrono::DateTime<chrono::Utc>>;
}
impl SignInAt for Option<chrono::DateTime<chrono::Utc>> {
    fn get(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        *self
    }
}

/// Types that can hold a sign-in IP.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a sign-in IP",
    label = "write `Option<String>` here",
    note = "IPs are stored as canonical text, after the IP privacy policy (which may store none)"
)]
pub trait SignInIp {
    /// The IP text.
    fn get(&self) -> Option<String>;
}
impl SignInIp for Option<String> {
    fn get(&self) -> Option<String> {
        self.clone()
    }
}

/// Types that can be the primary key of a user tracked in table mode.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the primary key of a user tracked in table mode",
    label = "use `i32`, `i64`, `Uuid` or `String`"
)]
pub trait UserId {}
impl UserId for i32 {}
impl UserId for i64 {}
impl UserId for String {}
impl UserId for sea_orm::prelude::Uuid {}

/// Compile-time check that `T` implements `UserId`.
pub const fn assert_user_id<T: UserId + ?Sized>() {}

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
