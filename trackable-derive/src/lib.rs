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

/// Derives `trackable_core::Trackable`. See the `trackable_core` documentation.
#[proc_macro_derive(Trackable, attributes(trackable, sea_orm))]
pub fn derive_trackable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    // `#[sea_orm::model]` re-emits the model as `ModelEx` with the same derives; the items
    // (and any errors) belong to `Model` alone.
    if input.ident == "ModelEx" {
        return TokenStream::new();
    }
    let expanded = ast::Input::from_syn(&input)
        .and_then(|input| check::check(&input).map(|checked| expand::expand(&checked)));
    match expanded {
        Ok(tokens) => tokens,
        Err(errors) => errors.to_compile_error(),
    }
    .into()
}

/// Inserts the five sign-in field declarations into a SeaORM model struct. Place it above
/// `#[derive(...)]`.
#[proc_macro_attribute]
pub fn sign_in_fields(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemStruct);
    match sign_in_fields::expand(args.into(), item) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
    .into()
}
