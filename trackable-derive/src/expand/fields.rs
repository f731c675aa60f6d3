use proc_macro2::TokenStream;
use quote::quote;

use super::{FieldCheck, Parts, inner_entity_bound, type_text, upper_camel};
use crate::ast::Field;
use crate::attr::Role;
use crate::check::Checked;

pub(super) fn expand<'a>(input: &Checked<'a>, roles: &[&'a Field<'a>; 5]) -> Parts<'a> {
    let model = input.ident;
    let bound = inner_entity_bound();
    let id = &input.primary_key.column;
    let [count, current_at, current_ip, last_at, last_ip] = roles.map(|field| &field.column);
    let bodies = quote! {
        pub fn columns() -> p::FieldColumns<super::Entity>
        where
            #bound
        {
            p::FieldColumns {
                id: super::Column::#id,
                sign_in_count: super::Column::#count,
                current_sign_in_at: super::Column::#current_at,
                current_sign_in_ip: super::Column::#current_ip,
                last_sign_in_at: super::Column::#last_at,
                last_sign_in_ip: super::Column::#last_ip,
            }
        }

        pub fn tracking() -> p::Tracking<super::Entity>
        where
            #bound
        {
            p::Tracking::Fields(columns())
        }

        pub fn migration() -> super::__trackable_core::Migration
        where
            #bound
        {
            p::fields_migration::<super::Entity>(&columns())
        }
    };

    let checks: Vec<FieldCheck<'_>> = roles
        .iter()
        .zip(Role::ALL)
        .map(|(field, role)| field_check(field, role))
        .collect();
    let traits = checks.iter().map(FieldCheck::to_tokens);
    // Reading each field through its own trait is the type check: a wrong type gets one
    // error, at the type.
    let [count, current_at, current_ip, last_at, last_ip] = [0, 1, 2, 3, 4].map(|index| {
        let qualified = checks[index].qualified();
        let ident = roles[index].ident;
        quote!(#qualified::get(&self.#ident))
    });
    let items = quote! {
        #[automatically_derived]
        impl __trackable_core::HasSignInState for #model {
            fn sign_in_state(&self) -> __trackable_core::SignInState {
                __trackable_core::SignInState {
                    sign_in_count: #count,
                    current_sign_in_at: #current_at,
                    current_sign_in_ip: #current_ip,
                    last_sign_in_at: #last_at,
                    last_sign_in_ip: #last_ip,
                }
            }
        }
    };
    Parts {
        record: quote!(Self),
        noted: quote!(()),
        noted_body: quote!(::core::option::Option::Some(())),
        mode: quote!(__trackable_core::Mode::Fields),
        bodies,
        checks: quote!(#(#traits)*),
        items,
        columns: std::iter::once(input.primary_key)
            .chain(roles.iter().copied())
            .map(|field| &field.column)
            .collect(),
    }
}

fn field_check<'a>(field: &Field<'a>, role: Role) -> FieldCheck<'a> {
    let ty = field.ty;
    let written = type_text(ty);
    let (what, label, notes, bound, read): (_, _, &[&str], _, TokenStream) = match role {
        Role::SignInCount => (
            "a sign-in count",
            "write `i32`, `i64`, `Option<i32>` or `Option<i64>` here",
            &["the count is incremented in SQL; NULL counts as 0"],
            "ReadCount",
            quote!(i64),
        ),
        Role::CurrentSignInAt | Role::LastSignInAt => (
            "a sign-in time",
            "write `Option<DateTimeUtc>` here",
            &[
                "sign-in times are UTC, and NULL until the first sign-in; `Option<DateTimeWithTimeZone>` (what sea-orm-cli generates for `timestamptz`) is read as UTC",
                "`DateTime` of sea-orm's prelude is a time without zone; `DateTimeUtc` is `chrono::DateTime<chrono::Utc>`",
            ],
            "ReadTime",
            quote!(::core::option::Option<p::chrono::DateTime<p::chrono::Utc>>),
        ),
        Role::CurrentSignInIp | Role::LastSignInIp => (
            "a sign-in IP",
            "write `Option<String>` here",
            &[
                "IPs are stored as canonical text, after the IP privacy policy (which may store none)",
            ],
            "ReadIp",
            quote!(::core::option::Option<::std::string::String>),
        ),
    };
    FieldCheck {
        name: upper_camel(role.name()),
        ty,
        message: format!("`{written}` cannot hold {what}"),
        label,
        notes,
        bound: syn::Ident::new(bound, proc_macro2::Span::call_site()),
        read: Some(read),
    }
}
