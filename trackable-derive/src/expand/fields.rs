use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::Parts;
use crate::ast::Field;
use crate::check::Checked;

pub(super) fn expand(input: &Checked<'_>, roles: &[&Field<'_>; 5]) -> Parts {
    let krate = &input.krate;
    let model = input.ident;
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
    // Each field's type meets its trait exactly once, in a cast spanned to the type: a wrong
    // type gets one error, at the type, in the trait's words.
    let [count, current_at, current_ip, last_at, last_ip] = [
        (roles[0], "SignInCount"),
        (roles[1], "SignInAt"),
        (roles[2], "SignInIp"),
        (roles[3], "SignInAt"),
        (roles[4], "SignInIp"),
    ]
    .map(|(field, trait_name)| read(krate, field, trait_name));
    let state = quote! {
        #[automatically_derived]
        impl #krate::HasSignInState for #model {
            fn sign_in_state(&self) -> #krate::SignInState {
                #krate::SignInState {
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
        mode: quote!(#krate::Mode::Fields),
        tracking: quote!(#krate::__private::Tracking::Fields(#columns)),
        migration: quote!(#krate::__private::fields_migration::<Entity>(&#columns)),
        assertions: Vec::new(),
        items: state,
    }
}

fn read(krate: &syn::Path, field: &Field<'_>, trait_name: &str) -> TokenStream {
    let ident = field.ident;
    let trait_ident = syn::Ident::new(trait_name, field.ty.span());
    let value = quote_spanned! {field.ty.span()=> value as &dyn #krate::__private::#trait_ident };
    quote!({
        let value = &self.#ident;
        #krate::__private::#trait_ident::get(#value)
    })
}
