//! Code generation. Only checked input reaches it.
//!
//! Everything the derive emits beside the model is laid out so that a mistake the derive
//! cannot see for itself (a field type, a crate path, a missing DeriveEntityModel) gives one
//! error, at the user's own tokens, in the user's words:
//!
//! - the `crate = "..."` path is named once, in `use <path> as __trackable_core;`;
//! - each field type is checked against a trait generated for it in module `__trackable`,
//!   whose `#[diagnostic::on_unimplemented]` message names the type as written; the check is
//!   `<Type as Trait>` with the type's own tokens, so the whole type is underlined;
//! - without DeriveEntityModel, `Entity` and `Column` resolve to stand-ins in
//!   `__trackable::missing` (glob imported, so the model's own shadow them), one check
//!   `<Model as SeaOrmModel>` reports what is missing, and everything that needs the real
//!   ones states it in a `for<'__t>` where clause: rustc does not hold such a bound against
//!   the impls in scope, so it adds no errors of its own, while with DeriveEntityModel it
//!   simply holds.

mod fields;
mod table;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{Ident, Type};

use crate::check::{Checked, Mode};

pub(crate) fn expand(input: &Checked<'_>) -> TokenStream {
    let model = input.ident;
    let krate = &input.krate;
    let key_ident = input.primary_key.ident;

    let Parts {
        record,
        noted,
        noted_body,
        mode,
        bodies,
        checks,
        items,
        columns,
    } = match &input.mode {
        Mode::Fields(roles) => fields::expand(input, roles),
        Mode::Table { table, module } => table::expand(input, table, module),
    };

    let model_name = model.to_string();
    let sea_orm_model = on_unimplemented(
        &format!("`{model_name}` is not a SeaORM entity model"),
        "add `DeriveEntityModel` to its `#[derive(...)]`",
        &[
            "#[derive(Trackable)] tracks the `Entity` that DeriveEntityModel generates for the model",
        ],
    );
    let mut variants: Vec<&Ident> = Vec::new();
    for column in columns {
        if !variants.contains(&column) {
            variants.push(column);
        }
    }
    let entity_bound = entity_bound(quote!(Entity), quote!(Column));

    quote! {
        // The one place that names the crate: a wrong `crate = "..."` fails here only.
        #[doc(hidden)]
        #[allow(unused_imports)]
        use #krate as __trackable_core;

        // Stand-ins for a model without DeriveEntityModel; its own `Entity` and `Column`
        // shadow them.
        #[doc(hidden)]
        #[allow(unused_imports)]
        use self::__trackable::missing::*;

        #[doc(hidden)]
        #[allow(dead_code, non_camel_case_types, unreachable_pub, clippy::all)]
        mod __trackable {
            use super::__trackable_core::__private as p;

            #sea_orm_model
            pub trait SeaOrmModel {
                const OK: () = ();
            }
            #[diagnostic::do_not_recommend]
            impl<M: p::sea_orm::ModelTrait> SeaOrmModel for M {}

            pub mod missing {
                #[derive(Clone, Copy, Debug, Default)]
                pub struct Entity;

                #[derive(Clone, Copy, Debug)]
                pub enum Column {
                    #(#variants,)*
                }
            }

            #checks
            #bodies
        }

        const _: () = <#model as __trackable::SeaOrmModel>::OK;

        #items

        #[automatically_derived]
        impl __trackable_core::Trackable for #model
        where
            for<'__t> #model: __trackable_core::__private::sea_orm::ModelTrait<Entity = Entity>
                + __trackable_core::__private::sea_orm::FromQueryResult,
            #entity_bound
        {
            type Record = #record;

            type Noted = #noted;

            const MODE: __trackable_core::Mode = #mode;

            fn migration() -> __trackable_core::Migration {
                __trackable::migration()
            }

            fn __tracking() -> __trackable_core::__private::Tracking<Self::Entity> {
                __trackable::tracking()
            }

            fn __noted(record: ::core::option::Option<Self::Record>) -> ::core::option::Option<Self::Noted> {
                #noted_body
            }

            fn __user_id(&self) -> __trackable_core::__private::sea_orm::Value {
                ::core::convert::Into::into(::core::clone::Clone::clone(&self.#key_ident))
            }
        }
    }
}

/// `for<'__t> Entity: EntityTrait<Column = Column>`, the bound of everything that uses the
/// model's `Entity` and `Column` (see the module's documentation).
fn entity_bound(entity: TokenStream, column: TokenStream) -> TokenStream {
    // In the model's module, where `__trackable_core` is imported.
    quote! {
        for<'__t> #entity: __trackable_core::__private::sea_orm::EntityTrait<Column = #column>,
    }
}

/// The same bound, from module `__trackable`.
fn inner_entity_bound() -> TokenStream {
    quote! {
        for<'__t> super::Entity: p::sea_orm::EntityTrait<Column = super::Column>,
    }
}

/// The `Entity` that DeriveEntityModel would generate, for a model without a table name
/// (which is an error of ours): DeriveEntityModel's own code names it.
pub(crate) fn entity_stub(vis: &syn::Visibility) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[derive(Copy, Clone, Default, Debug, sea_orm::prelude::DeriveEntity)]
        #vis struct Entity;

        #[automatically_derived]
        impl sea_orm::prelude::EntityName for Entity {
            fn table_name(&self) -> &'static str {
                ""
            }
        }
    }
}

/// What each mode contributes.
struct Parts<'a> {
    /// `type Record`.
    record: TokenStream,
    /// `type Noted`, and the body of `__noted`.
    noted: TokenStream,
    noted_body: TokenStream,
    /// `const MODE`.
    mode: TokenStream,
    /// Functions `tracking()` and `migration()` of module `__trackable`, which name the
    /// model's `Entity` and `Column` under the bound of [`entity_bound`].
    bodies: TokenStream,
    /// The traits of module `__trackable` that check the model's field types.
    checks: TokenStream,
    /// Items emitted beside the model.
    items: TokenStream,
    /// The variants of `Column` that the code names (the stand-in has them too).
    columns: Vec<&'a Ident>,
}

/// A trait of module `__trackable` that a field type must implement, implemented for the
/// types of `bound` (a trait of `__private`) and named, in errors, in the user's words.
struct FieldCheck<'a> {
    /// The trait's name (shown in the error's help line).
    name: Ident,
    ty: &'a Type,
    message: String,
    label: &'a str,
    notes: &'a [&'a str],
    bound: Ident,
    /// The method reading the field, if the trait has one: its return type.
    read: Option<TokenStream>,
}

impl FieldCheck<'_> {
    fn to_tokens(&self) -> TokenStream {
        let FieldCheck {
            name, bound, read, ..
        } = self;
        let attr = on_unimplemented(&self.message, self.label, self.notes);
        let (decl, body) = match read {
            Some(ret) => (
                quote!(fn get(&self) -> #ret;),
                quote!(fn get(&self) -> #ret { p::#bound::get(self) }),
            ),
            None => (
                quote!(
                    const OK: () = ();
                ),
                quote!(),
            ),
        };
        quote! {
            #attr
            pub trait #name { #decl }
            #[diagnostic::do_not_recommend]
            impl<T: ?Sized + p::#bound> #name for T { #body }
        }
    }

    /// `<Type as __trackable::Name>`, with the type's own tokens: its whole span is the
    /// error's.
    fn qualified(&self) -> TokenStream {
        let ty = self.ty;
        let name = &self.name;
        quote!(<#ty as __trackable::#name>)
    }
}

fn on_unimplemented(message: &str, label: &str, notes: &[&str]) -> TokenStream {
    // `{` starts a format argument in these strings.
    let escape = |text: &str| text.replace('{', "{{").replace('}', "}}");
    let message = escape(message);
    let label = escape(label);
    let notes = notes.iter().map(|note| escape(note));
    quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label #(, note = #notes)*)]
    }
}

/// A type as the user wrote it, spaced as rustfmt would (`Option<DateTimeUtc>`), for messages.
fn type_text(ty: &Type) -> String {
    let mut out = String::new();
    write_tokens(&mut out, ty.to_token_stream());
    out
}

fn write_tokens(out: &mut String, tokens: TokenStream) {
    // Whether the last token was a word that a following word must be spaced from.
    let mut word = false;
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => {
                if word {
                    out.push(' ');
                }
                out.push_str(&ident.to_string());
                word = true;
            }
            TokenTree::Literal(literal) => {
                if word {
                    out.push(' ');
                }
                out.push_str(&literal.to_string());
                word = true;
            }
            TokenTree::Punct(punct) => {
                let c = punct.as_char();
                match c {
                    ',' | ';' => {
                        out.push(c);
                        out.push(' ');
                    }
                    '=' | '+' if punct.spacing() == Spacing::Alone => {
                        out.push(' ');
                        out.push(c);
                        out.push(' ');
                    }
                    '-' => {
                        out.push(' ');
                        out.push(c);
                    }
                    '>' if out.ends_with(" -") => {
                        out.push(c);
                        out.push(' ');
                    }
                    _ => out.push(c),
                }
                // A lifetime's name follows its `'` without a space.
                word = false;
            }
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                if word && group.delimiter() == Delimiter::Brace {
                    out.push(' ');
                }
                out.push_str(open);
                write_tokens(out, group.stream());
                out.push_str(close);
                word = group.delimiter() == Delimiter::None;
            }
        }
    }
}

fn upper_camel(name: &str) -> Ident {
    use heck::ToUpperCamelCase;
    format_ident!("{}", name.to_upper_camel_case())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_as_written() {
        let cases = [
            ("Option < DateTimeUtc >", "Option<DateTimeUtc>"),
            (
                "Option<chrono::DateTime<chrono::Utc>>",
                "Option<chrono::DateTime<chrono::Utc>>",
            ),
            ("& 'static str", "&'static str"),
            ("[u8 ; 16]", "[u8; 16]"),
            ("(i32, i64)", "(i32, i64)"),
            (
                "Box<dyn Fn(i32) -> i32 + Send>",
                "Box<dyn Fn(i32) -> i32 + Send>",
            ),
            (
                "::core::option::Option<String>",
                "::core::option::Option<String>",
            ),
        ];
        for (written, shown) in cases {
            let ty: Type = syn::parse_str(written).unwrap();
            assert_eq!(type_text(&ty), shown, "{written}");
        }
    }
}
