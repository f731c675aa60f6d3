//! `#[sign_in_fields]`: a derive cannot add fields to a struct, an attribute macro can.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Item, parse_quote};

use crate::attr::Role;
use crate::ctxt::Ctxt;

/// Whether `#[sign_in_fields]`, seeing `attrs` on its struct, was written below
/// `#[derive(...)]`: the derives expanded before it, so it sees no `#[derive]` but still their
/// helper attributes. (Without them the struct was not written for the derives, and adding
/// the fields is harmless.) `#[derive(Trackable)]` asks the same question, so that exactly one
/// of the two reports the misplaced attribute.
pub(crate) fn below_a_derive(attrs: &[Attribute], fields: &Fields) -> bool {
    let helper =
        |attr: &Attribute| attr.path().is_ident("sea_orm") || attr.path().is_ident("trackable");
    !attrs.iter().any(|attr| attr.path().is_ident("derive"))
        && (attrs.iter().any(helper) || fields.iter().flat_map(|field| &field.attrs).any(helper))
}

fn is_sign_in_fields(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "sign_in_fields")
}

pub(crate) fn expand(args: TokenStream, item: Item) -> TokenStream {
    let mut item = match item {
        Item::Struct(item) => item,
        other => {
            let (ident, kind) = match &other {
                Item::Enum(item) => (Some(&item.ident), "an enum"),
                Item::Union(item) => (Some(&item.ident), "a union"),
                _ => (None, "this item"),
            };
            let span = ident.map_or_else(Span::call_site, |ident| ident.span());
            let error = syn::Error::new(
                span,
                format!(
                    "#[sign_in_fields] adds fields to a struct with named fields, not to {kind}"
                ),
            )
            .to_compile_error();
            return quote!(#error #other);
        }
    };
    let mut cx = Ctxt::default();
    if !args.is_empty() {
        cx.error(args.span(), "#[sign_in_fields] takes no arguments");
    }
    if below_a_derive(&item.attrs, &item.fields) {
        // The derives saw the struct without the five fields; adding them now would only make
        // the derives' code disagree with the struct. The struct stays as written.
        // The attribute's own place, but resolved like the user's tokens: no "originates in
        // the attribute macro" note.
        cx.error(
            Span::call_site().resolved_at(item.ident.span()),
            "#[sign_in_fields] must come above `#[derive(...)]`: the derives run first and never see the fields it adds; move this line above the derive",
        );
        return with_errors(cx, item.to_token_stream());
    }
    // A second `#[sign_in_fields]` would find the five fields this one adds.
    if let Some(second) = item.attrs.iter().find(|attr| is_sign_in_fields(attr)) {
        cx.push(syn::Error::new_spanned(
            second,
            "#[sign_in_fields] is given twice: remove this one",
        ));
    }
    item.attrs.retain(|attr| !is_sign_in_fields(attr));
    let Fields::Named(fields) = &mut item.fields else {
        cx.error(
            item.ident.span(),
            "#[sign_in_fields] adds named fields, so it needs a struct with named fields",
        );
        return with_errors(cx, item.to_token_stream());
    };
    let declared: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|role| {
            fields.named.iter().any(|field| {
                let declared = field.ident.as_ref().is_some_and(|ident| ident == role.name());
                if declared {
                    cx.error(
                        field.ident.span(),
                        format!(
                            "`{}` is declared here and by #[sign_in_fields]: remove this one or the attribute",
                            role.name()
                        ),
                    );
                }
                declared
            })
        })
        .collect();
    let added: [(Role, syn::Field); 5] = [
        (
            Role::SignInCount,
            parse_quote! {
                /// Number of sign-ins.
                pub sign_in_count: i32
            },
        ),
        (
            Role::CurrentSignInAt,
            parse_quote! {
                /// Time of the current session's sign-in.
                pub current_sign_in_at: Option<::trackable_core::__private::chrono::DateTime<::trackable_core::__private::chrono::Utc>>
            },
        ),
        (
            Role::CurrentSignInIp,
            parse_quote! {
                /// IP of the current session's sign-in.
                pub current_sign_in_ip: Option<String>
            },
        ),
        (
            Role::LastSignInAt,
            parse_quote! {
                /// Time of the previous sign-in.
                pub last_sign_in_at: Option<::trackable_core::__private::chrono::DateTime<::trackable_core::__private::chrono::Utc>>
            },
        ),
        (
            Role::LastSignInIp,
            parse_quote! {
                /// IP of the previous sign-in.
                pub last_sign_in_ip: Option<String>
            },
        ),
    ];
    // A field declared by hand as well is reported above; the other four are still added, so
    // that the derives see all five and report nothing more about them.
    fields.named.extend(
        added
            .into_iter()
            .filter(|(role, _)| !declared.contains(role))
            .map(|(_, field)| field),
    );
    with_errors(cx, item.to_token_stream())
}

fn with_errors(cx: Ctxt, tokens: TokenStream) -> TokenStream {
    match cx.finish(()) {
        Ok(()) => tokens,
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote!(#errors #tokens)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(source: &str) -> syn::ItemStruct {
        syn::parse_str(source).unwrap()
    }

    #[test]
    fn tells_below_a_derive_from_above_it_or_no_derive() {
        // Above the derive: the derive is still there.
        let above = item(
            "#[derive(DeriveEntityModel)] #[sea_orm(table_name = \"u\")] struct Model { id: i32 }",
        );
        assert!(!below_a_derive(&above.attrs, &above.fields));
        // Below it: the derive is gone, its helper attributes are not.
        let below = item("#[sea_orm(table_name = \"u\")] struct Model { id: i32 }");
        assert!(below_a_derive(&below.attrs, &below.fields));
        let field_helper = item("struct Model { #[sea_orm(primary_key)] id: i32 }");
        assert!(below_a_derive(&field_helper.attrs, &field_helper.fields));
        // A plain struct was not written for the derives.
        let plain = item("struct Model { id: i32 }");
        assert!(!below_a_derive(&plain.attrs, &plain.fields));
    }
}
