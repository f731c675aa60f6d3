//! The derive input as our own types, borrowing syn and keeping spans for errors.

use heck::ToUpperCamelCase;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::attr::{self, ContainerAttrs, Keyed, Role};
use crate::ctxt::Ctxt;

pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: ContainerAttrs,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) role: Option<Keyed<Role>>,
    pub(crate) primary_key: Option<Span>,
    pub(crate) ignored: bool,
    /// The variant of the `Column` enum that DeriveEntityModel generates for this field.
    pub(crate) column: Ident,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput) -> syn::Result<Input<'a>> {
        let mut cx = Ctxt::default();
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(named),
                _ => None,
            },
            _ => None,
        };
        let Some(named) = named else {
            let kind = match &input.data {
                Data::Enum(_) => "an enum",
                Data::Union(_) => "a union",
                Data::Struct(_) => "a struct without named fields",
            };
            cx.error(
                input.ident.span(),
                format!(
                    "#[derive(Trackable)] is for a SeaORM model struct with named fields, not {kind}"
                ),
            );
            return cx.finish(unreachable_input(input));
        };
        if !input.generics.params.is_empty() {
            cx.error(
                input.generics.span(),
                "#[derive(Trackable)] does not support generic models",
            );
        }
        let attrs = ContainerAttrs::parse(&mut cx, &input.attrs);
        let mut fields = Vec::with_capacity(named.named.len());
        for field in &named.named {
            let Some(ident) = &field.ident else { continue };
            let role = attr::field_role(&mut cx, &field.attrs);
            let sea = SeaOrmField::parse(&field.attrs);
            let name = ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name);
            let column = sea
                .enum_name
                .unwrap_or_else(|| Ident::new(&name.to_upper_camel_case(), ident.span()));
            fields.push(Field {
                ident,
                ty: &field.ty,
                role,
                primary_key: sea.primary_key,
                ignored: sea.ignore,
                column,
            });
        }
        cx.finish(Input {
            ident: &input.ident,
            vis: &input.vis,
            attrs,
            fields,
        })
    }
}

/// Never returned: `Ctxt::finish` has an error by then.
fn unreachable_input(input: &DeriveInput) -> Input<'_> {
    Input {
        ident: &input.ident,
        vis: &input.vis,
        attrs: ContainerAttrs::default(),
        fields: Vec::new(),
    }
}

/// What we read of `#[sea_orm(...)]` on a field. sea-orm reports its own mistakes, so anything
/// we do not understand is skipped.
#[derive(Default)]
struct SeaOrmField {
    primary_key: Option<Span>,
    ignore: bool,
    enum_name: Option<Ident>,
}

impl SeaOrmField {
    fn parse(attrs: &[syn::Attribute]) -> Self {
        let mut out = SeaOrmField::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("sea_orm")) {
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("primary_key") {
                    out.primary_key = Some(meta.path.span());
                } else if meta.path.is_ident("ignore") {
                    out.ignore = true;
                } else if meta.path.is_ident("enum_name") {
                    let lit: syn::LitStr = meta.value()?.parse()?;
                    out.enum_name = lit.parse().ok();
                    return Ok(());
                }
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                } else if meta.input.peek(syn::token::Paren) {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    content.parse::<proc_macro2::TokenStream>()?;
                }
                Ok(())
            });
        }
        out
    }
}
