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
use syn::{DeriveInput, Item, parse_macro_input};

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
/// Declare the model in a module, as SeaORM entities are (`mod user { ... }` or a file of
/// its own), not inside a function body: the generated code names the model's module.
///
/// The audit table's name must be a plain SQL identifier: ASCII letters, digits and `_`, not
/// starting with a digit, at most 29 bytes. Names that are valid only quoted, such as
/// `login-events`, are refused even with an explicit `module`: the name also prefixes the
/// audit table's indexes, constraints, companion tables and PostgreSQL functions, and it is
/// what people type in SQL consoles and hand-written queries, where a name that needs quotes
/// is easy to get wrong. Write `table = "login_events"` instead.
///
/// Every mistake is one compile error, at the offending key, field or type, saying what to
/// write, and all of them are reported in one compile: unknown keys (with a suggestion), keys
/// without their value, duplicate keys, both modes at once, empty or invalid names, field
/// roles in table mode, missing or composite primary keys, missing, misspelled
/// (`last_sing_in_ip`) or mistyped fields, a field named like a role that another field
/// holds, a model without `#[sea_orm(table_name = "...")]` or without `DeriveEntityModel`, a
/// `crate = "..."` path that does not resolve, and `#[sign_in_fields]` written below
/// `#[derive(...)]`. A wrong type is underlined whole and named as written.
///
/// (This crate cannot compile its own examples, which need `trackable_core`; models like these
/// compile as doctests of the README.)
///
/// ```text
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
    // `#[sign_in_fields]` below the derive: the struct we see lacks the five fields, so every
    // check would mislead. One error says to move the line.
    if let Some(late) = ast::LateSignInFields::find(&input) {
        if late.reported_by_attribute {
            return TokenStream::new();
        }
        return syn::Error::new_spanned(
            late.attr,
            "#[sign_in_fields] must come above `#[derive(...)]`: the derives run first and never see the fields it adds; move this line above the derive",
        )
        .to_compile_error()
        .into();
    }
    let mut cx = ctxt::Ctxt::default();
    let parsed = ast::Input::from_syn(&mut cx, &input);
    // Without a table name DeriveEntityModel generates no `Entity` but still names it; a
    // stand-in keeps its code quiet, so that our error about the table name is the only one.
    let stub = parsed
        .as_ref()
        .filter(|parsed| !parsed.has_table_name)
        .map(|parsed| expand::entity_stub(parsed.vis));
    let expanded = parsed
        .as_ref()
        .and_then(|parsed| check::check(&mut cx, parsed).map(|checked| expand::expand(&checked)));
    match cx.finish(()) {
        Ok(()) => expanded.unwrap_or_default(),
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote::quote!(#errors #stub)
        }
    }
    .into()
}

/// Inserts the five sign-in field declarations into a SeaORM model struct: `sign_in_count:
/// i32`, `current_sign_in_at` and `last_sign_in_at: Option<DateTime<Utc>>`,
/// `current_sign_in_ip` and `last_sign_in_ip: Option<String>`. Place it above
/// `#[derive(...)]`: the derives see the struct as it is when they run, so below them it is
/// a compile error. Declaring one of the five yourself as well is a compile error at that
/// field (the other four are still added).
///
/// ```text
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
    let item = parse_macro_input!(input as Item);
    sign_in_fields::expand(args.into(), item).into()
}
