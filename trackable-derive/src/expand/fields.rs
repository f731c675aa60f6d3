use quote::{format_ident, quote};

use super::Parts;
use crate::ast::Field;
use crate::check::Checked;

pub(super) fn expand(input: &Checked<'_>, roles: &[&Field<'_>; 5]) -> Parts {
    let krate = &input.krate;
    let id = &input.primary_key.column;
    let [count, current_at, current_ip, last_at, last_ip] = roles.map(|field| &field.column);
    let columns = quote! {
        #krate::__private::FieldColumns {
            id: Column::#id,
            sign_in_count: Column::#count,
            current_sign_in_at: Column::#current_at,
            current_sign_in_ip: Column::#current_ip,
            last_sign_in_at: Column::#last_at,
            last_sign_in_ip: Column::#last_ip,
        }
    };
    let count_ty = roles[0].ty;
    let model = input.ident;
    let [count_field, current_at_field, current_ip_field, last_at_field, last_ip_field] =
        roles.map(|field| field.ident);
    let assertions = roles
        .iter()
        .zip([
            "assert_sign_in_count",
            "assert_sign_in_at",
            "assert_sign_in_ip",
            "assert_sign_in_at",
            "assert_sign_in_ip",
        ])
        .map(|(field, assertion)| (field.ty.clone(), format_ident!("{}", assertion)))
        .collect();
    (
        quote!(Self),
        quote!(#krate::Mode::Fields),
        quote!(#krate::__private::Tracking::Fields(#columns)),
        quote! {
            #krate::__private::fields_migration::<Entity>(
                &#columns,
                <#count_ty as #krate::__private::SignInCount>::BIG,
            )
        },
        assertions,
        quote! {
            #[automatically_derived]
            impl #krate::HasSignInState for #model {
                fn sign_in_state(&self) -> #krate::SignInState {
                    #krate::SignInState {
                        sign_in_count: #krate::__private::SignInCount::get(&self.#count_field),
                        current_sign_in_at: self.#current_at_field,
                        current_sign_in_ip: ::core::clone::Clone::clone(&self.#current_ip_field),
                        last_sign_in_at: self.#last_at_field,
                        last_sign_in_ip: ::core::clone::Clone::clone(&self.#last_ip_field),
                    }
                }
            }
        },
    )
}
