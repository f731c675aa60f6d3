//! Code generation. Only checked input reaches it.

mod fields;
mod table;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::check::{Checked, Mode};

pub(crate) fn expand(input: &Checked<'_>) -> TokenStream {
    let krate = &input.krate;
    let ident = input.ident;
    let key = input.primary_key;
    let key_ident = key.ident;
    let key_column = &key.column;

    let Parts {
        record,
        mode,
        tracking,
        migration,
        assertions,
        items,
    } = match &input.mode {
        Mode::Fields(roles) => fields::expand(input, roles),
        Mode::Table { table, module } => table::expand(input, table, module),
    };

    let assertions = assertions.into_iter().map(|(ty, assertion)| {
        quote_spanned! {ty.span()=>
            const _: () = #krate::__private::#assertion::<#ty>();
        }
    });

    quote! {
        #items

        #[automatically_derived]
        impl #krate::Trackable for #ident {
            type Record = #record;

            const MODE: #krate::Mode = #mode;

            fn migration() -> #krate::Migration {
                #migration
            }

            fn __tracking() -> #krate::__private::Tracking<Entity> {
                #tracking
            }

            fn __user_id(&self) -> #krate::__private::sea_orm::Value {
                ::core::convert::Into::into(::core::clone::Clone::clone(&self.#key_ident))
            }
        }

        #(#assertions)*

        // The primary key column, named here so that a mismatch shows at this span.
        const _: Column = Column::#key_column;
    }
}

/// What each mode contributes to the `Trackable` impl and beside it.
struct Parts {
    /// `type Record`.
    record: TokenStream,
    /// `const MODE`.
    mode: TokenStream,
    /// The body of `__tracking()`.
    tracking: TokenStream,
    /// The body of `migration()`.
    migration: TokenStream,
    /// Types to check with an `assert_*` function of `__private`, spanned to the type.
    assertions: Vec<(syn::Type, syn::Ident)>,
    /// Items emitted beside the impl.
    items: TokenStream,
}
