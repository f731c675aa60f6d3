//! The user models the tests track: one per mode and primary-key type.

/// Fields mode, the five fields under their own names.
pub mod user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Sign-in name.
        pub email: String,
        /// Number of sign-ins.
        pub sign_in_count: i32,
        /// Current session's sign-in time.
        pub current_sign_in_at: Option<DateTimeUtc>,
        /// Current session's sign-in IP.
        pub current_sign_in_ip: Option<String>,
        /// Previous sign-in time.
        pub last_sign_in_at: Option<DateTimeUtc>,
        /// Previous sign-in IP.
        pub last_sign_in_ip: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fields mode with renamed fields (Coherence's short names) and an optional 64-bit count.
pub mod renamed {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user whose tracking fields carry other names.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "people")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub pid: i64,
        /// Number of sign-ins; NULL counts as 0.
        #[trackable(sign_in_count)]
        pub logins: Option<i64>,
        /// Current session's sign-in time.
        #[trackable(current_sign_in_at)]
        pub current_at: Option<DateTimeUtc>,
        /// Current session's sign-in IP.
        #[trackable(current_sign_in_ip)]
        pub current_ip: Option<String>,
        /// Previous sign-in time.
        #[trackable(last_sign_in_at)]
        pub last_at: Option<DateTimeUtc>,
        /// Previous sign-in IP.
        #[trackable(last_sign_in_ip)]
        pub last_ip: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fields mode with the fields inserted by `#[sign_in_fields]`.
pub mod inserted {
    use sea_orm::entity::prelude::*;
    use trackable_core::{Trackable, sign_in_fields};

    /// A user whose tracking fields come from the attribute macro.
    #[sign_in_fields]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "customers")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Display name.
        pub name: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode, `i32` keys, the audit entity in module `member_events`.
pub mod member {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user tracked in an audit table.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "members")]
    #[trackable(table = "member_events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Sign-in name.
        pub email: String,
    }

    /// No relations declared here; the derive relates the audit entity both ways.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode, `i64` keys, module named explicitly.
pub mod account {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user with a 64-bit key.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "accounts")]
    #[trackable(table = "account_log", module = "audit")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Sign-in name.
        pub login: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode, UUID keys.
pub mod uuid_user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user with a UUID key.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "uuid_users")]
    #[trackable(table = "uuid_user_events", module = "events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Sign-in name.
        pub email: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode, `String` keys.
pub mod handle_user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user keyed by a handle.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "handle_users")]
    #[trackable(table = "handle_user_events", module = "events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub handle: String,
        /// Display name.
        pub name: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fields mode on a model written in SeaORM 2's `#[sea_orm::model]` format, which re-emits the
/// struct as `ModelEx` with the same derives.
pub mod dense_user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "dense_users")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Number of sign-ins.
        pub sign_in_count: i64,
        /// Current session's sign-in time.
        pub current_sign_in_at: Option<DateTimeUtc>,
        /// Current session's sign-in IP.
        pub current_sign_in_ip: Option<String>,
        /// Previous sign-in time.
        pub last_sign_in_at: Option<DateTimeUtc>,
        /// Previous sign-in IP.
        pub last_sign_in_ip: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode on a `#[sea_orm::model]` model.
pub mod dense_member {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A member.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "dense_members")]
    #[trackable(table = "dense_member_events", module = "events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Sign-in name.
        pub email: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fields mode on a model whose save hook rejects every change (a validation that the stored
/// rows no longer pass): tracking must not depend on it.
pub mod strict_user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A user whose application validation fails.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "strict_users")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// An address the current validation rules reject.
        pub email: String,
        /// Number of sign-ins.
        pub sign_in_count: i32,
        /// Current session's sign-in time.
        pub current_sign_in_at: Option<DateTimeUtc>,
        /// Current session's sign-in IP.
        pub current_sign_in_ip: Option<String>,
        /// Previous sign-in time.
        pub last_sign_in_at: Option<DateTimeUtc>,
        /// Previous sign-in IP.
        pub last_sign_in_ip: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C>(self, _db: &C, _insert: bool) -> Result<Self, DbErr>
        where
            C: ConnectionTrait,
        {
            Err(DbErr::Custom(
                "email must be on the company domain".to_owned(),
            ))
        }
    }
}

/// Table mode with `trackable_core` renamed (`crate = "..."`, a relative path) and a key type
/// written through an alias.
pub mod aliased {
    use sea_orm::entity::prelude::*;
    use trackable_core as tc;

    /// The key type, under a local name.
    pub type MemberId = i64;

    /// A user.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, tc::Trackable)]
    #[sea_orm(table_name = "aliased_users")]
    #[trackable(crate = "tc", table = "aliased_events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: MemberId,
        /// Sign-in name.
        pub email: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode whose audit table is created from the generated entity instead of the
/// migration (so without the PostgreSQL append function).
pub mod plain_member {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A member.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "plain_members")]
    #[trackable(table = "plain_member_events", module = "events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Sign-in name.
        pub email: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode on a user table in a PostgreSQL schema other than the default one.
pub mod schema_member {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    /// A member in schema `auth`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "members", schema_name = "auth")]
    #[trackable(table = "member_log", module = "events")]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Sign-in name.
        pub email: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
