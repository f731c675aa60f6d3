//! `#[derive(Trackable)]` and `#[sign_in_fields]` for `trackable-core`.
//!
//! Use them through `trackable_core`, which re-exports both and documents their attributes.
//! This crate parses (`ast`, `attr`), checks (`check`) and expands (`expand`); only valid input
//! reaches expansion, and every mistake becomes a spanned compile error.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod sign_in_fields;

use proc_macro::TokenStream;
use syn::{DeriveInput, ItemStruct, parse_macro_input};

/// Derives `trackable_core::Trackable` for a SeaORM model (a struct with named fields beside
/// `DeriveEntityModel`), checking at compile time what the chosen mode needs.
///
/// | attribute | where | meaning |
/// |---|---|---|
/// | `#[trackable(fields)]` | struct | fields mode (the default; may be omitted) |
/// | `#[trackable(table = "trackables")]` | struct | table mode, with this audit table |
/// | `#[trackable(module = "audit")]` | struct | table mode: the module of the generated entity (default: the table name) |
/// | `#[trackable(crate = "path")]` | struct | where `trackable_core` is, when renamed |
/// | `#[trackable(sign_in_count)]` and the other four field names | field | fields mode: this field holds that value under another name |
///
/// Fields mode needs `sign_in_count` (`i32`, `i64`, optional or not),
/// `current_sign_in_at` and `last_sign_in_at` (`Option<DateTimeUtc>`), `current_sign_in_ip`
/// and `last_sign_in_ip` (`Option<String>`). Table mode needs a single primary key of type
/// `i32`, `i64`, `Uuid` or `String`, and generates module `<table>` (or `module`) holding the
/// audit entity.
///
/// Every mistake is a compile error at the offending key, field or type, all reported in one
/// compile: unknown keys (with a suggestion), duplicate keys, both modes at once, empty or
/// invalid names, field roles in table mode, missing or composite primary keys, missing or
/// mistyped fields.
///
/// ```ignore
/// #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
/// #[sea_orm(table_name = "users")]
/// #[trackable(table = "trackables")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i32,
///     pub email: String,
/// }
/// ```
///
/// (`trackable_core`'s documentation has these examples in compiled form.)
///
/// `#[sea_orm::model]` re-emits the model as a struct named `ModelEx` with the same derives;
/// the derive emits nothing for a struct of that name, so the items exist once.
#[proc_macro_derive(Trackable, attributes(trackable, sea_orm))]
pub fn derive_trackable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    // `#[sea_orm::model]` re-emits the model as `ModelEx` with the same derives; the items
    // (and any errors) belong to `Model` alone.
    if input.ident == "ModelEx" {
        return TokenStream::new();
    }
    let mut cx = ctxt::Ctxt::default();
    let expanded = ast::Input::from_syn(&mut cx, &input)
        .and_then(|parsed| check::check(&mut cx, &parsed).map(|checked| expand::expand(&checked)));
    match cx.finish(()) {
        Ok(()) => expanded.unwrap_or_default(),
        Err(errors) => errors.to_compile_error(),
    }
    .into()
}

/// Inserts the five sign-in field declarations into a SeaORM model struct: `sign_in_count:
/// i32`, `current_sign_in_at` and `last_sign_in_at: Option<DateTime<Utc>>`,
/// `current_sign_in_ip` and `last_sign_in_ip: Option<String>`. Place it above
/// `#[derive(...)]`, since a derive cannot add fields. Declaring one of the five yourself as
/// well is a compile error.
///
/// ```ignore
/// #[trackable_core::sign_in_fields]
/// #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
/// #[sea_orm(table_name = "users")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i32,
///     pub email: String,
/// }
/// ```
#[proc_macro_attribute]
pub fn sign_in_fields(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemStruct);
    match sign_in_fields::expand(args.into(), item) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
    .into()
}
