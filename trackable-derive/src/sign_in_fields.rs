//! `#[sign_in_fields]`: a derive cannot add fields to a struct, an attribute macro can.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Fields, FieldsNamed, ItemStruct, parse_quote};

use crate::attr::Role;
use crate::ctxt::Ctxt;

pub(crate) fn expand(args: TokenStream, mut item: ItemStruct) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::default();
    if !args.is_empty() {
        cx.error(args.span(), "#[sign_in_fields] takes no arguments");
    }
    let Fields::Named(FieldsNamed { named, .. }) = &mut item.fields else {
        cx.error(
            item.ident.span(),
            "#[sign_in_fields] adds named fields, so it needs a struct with named fields",
        );
        return cx.finish(TokenStream::new());
    };
    for field in named.iter() {
        if let Some(ident) = &field.ident
            && let Some(role) = Role::ALL.into_iter().find(|role| ident == role.name())
        {
            cx.error(
                ident.span(),
                format!(
                    "`{}` is declared here and by #[sign_in_fields]: remove this one or the attribute",
                    role.name()
                ),
            );
        }
    }
    let added: [syn::Field; 5] = [
        parse_quote! {
            /// Number of sign-ins.
            pub sign_in_count: i32
        },
        parse_quote! {
            /// Time of the current session's sign-in.
            pub current_sign_in_at: Option<::trackable_core::__private::chrono::DateTime<::trackable_core::__private::chrono::Utc>>
        },
        parse_quote! {
            /// IP of the current session's sign-in.
            pub current_sign_in_ip: Option<String>
        },
        parse_quote! {
            /// Time of the previous sign-in.
            pub last_sign_in_at: Option<::trackable_core::__private::chrono::DateTime<::trackable_core::__private::chrono::Utc>>
        },
        parse_quote! {
            /// IP of the previous sign-in.
            pub last_sign_in_ip: Option<String>
        },
    ];
    // On error, keep the struct as written, so that the rest of the crate still sees it and
    // no second error about the same field follows.
    if let Err(errors) = cx.finish(()) {
        let errors = errors.to_compile_error();
        return Ok(quote!(#errors #item));
    }
    named.extend(added);
    Ok(quote!(#item))
}
