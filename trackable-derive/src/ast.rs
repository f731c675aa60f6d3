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
    /// `#[sea_orm(table_name = "...")]` of the model, if written as a string literal.
    pub(crate) table_name: Option<String>,
    /// Whether the model gives `#[sea_orm(table_name = ...)]` at all: without it,
    /// DeriveEntityModel generates no `Entity`.
    pub(crate) has_table_name: bool,
    /// `#[sea_orm(schema_name = "...")]` of the model: the audit table goes beside it.
    pub(crate) schema_name: Option<syn::LitStr>,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) role: Option<Keyed<Role>>,
    /// Its `#[trackable(...)]` was wrong: the role it meant to play is unknown.
    pub(crate) role_error: bool,
    pub(crate) primary_key: Option<Span>,
    pub(crate) ignored: bool,
    /// The variant of the `Column` enum that DeriveEntityModel generates for this field.
    pub(crate) column: Ident,
}

impl<'a> Input<'a> {
    /// The input, with every mistake found while reading it recorded in `cx`; `None` when
    /// the input is not a struct with named fields.
    pub(crate) fn from_syn(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Input<'a>> {
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
            return None;
        };
        if !input.generics.params.is_empty() {
            cx.error(
                input.generics.span(),
                "#[derive(Trackable)] does not support generic models",
            );
        }
        let attrs = ContainerAttrs::parse(cx, &input.attrs);
        let SeaOrmContainer {
            table_name,
            has_table_name,
            schema_name,
        } = SeaOrmContainer::parse(&input.attrs);
        let mut fields = Vec::with_capacity(named.named.len());
        for field in &named.named {
            let Some(ident) = &field.ident else { continue };
            let errors_before = cx.count();
            let role = attr::field_role(cx, &field.attrs);
            let role_error = cx.count() > errors_before;
            let sea = SeaOrmField::parse(&field.attrs);
            let name = ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name);
            let column = match sea.enum_name {
                Some(column) => column,
                // DeriveEntityModel names the variant in UpperCamelCase; some field names
                // (`__`, `_1`) have no such form.
                None => match syn::parse_str::<Ident>(&name.to_upper_camel_case()) {
                    Ok(column) => Ident::new(&column.to_string(), ident.span()),
                    Err(_) => {
                        cx.error(
                            ident.span(),
                            format!("`{name}` has no UpperCamelCase form to name its column; rename the field or give `#[sea_orm(enum_name = \"...\")]`"),
                        );
                        continue;
                    }
                },
            };
            fields.push(Field {
                ident,
                ty: &field.ty,
                role,
                role_error,
                primary_key: sea.primary_key,
                ignored: sea.ignore,
                column,
            });
        }
        Some(Input {
            ident: &input.ident,
            vis: &input.vis,
            attrs,
            fields,
            table_name,
            has_table_name,
            schema_name,
        })
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
                attr::skip_value(&meta)
            });
        }
        out
    }
}

/// What we read of the model's `#[sea_orm(...)]`; sea-orm reports its own mistakes, so
/// anything else is skipped.
#[derive(Default)]
struct SeaOrmContainer {
    table_name: Option<String>,
    has_table_name: bool,
    schema_name: Option<syn::LitStr>,
}

impl SeaOrmContainer {
    fn parse(attrs: &[syn::Attribute]) -> Self {
        let mut out = SeaOrmContainer::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("sea_orm")) {
            let _ = attr.parse_nested_meta(|meta| {
                let table = meta.path.is_ident("table_name");
                out.has_table_name |= table;
                if !((table || meta.path.is_ident("schema_name"))
                    && meta.input.peek(syn::Token![=]))
                {
                    return attr::skip_value(&meta);
                }
                let value: syn::Expr = meta.value()?.parse()?;
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) = value
                {
                    if table {
                        out.table_name = Some(lit.value());
                    } else {
                        out.schema_name = Some(lit);
                    }
                }
                Ok(())
            });
        }
        out
    }
}

/// `#[sign_in_fields]` among the attributes the derive sees: it was written below
/// `#[derive(...)]`, so it adds its fields after the derives have seen the struct.
pub(crate) struct LateSignInFields<'a> {
    pub(crate) attr: &'a syn::Attribute,
    /// The attribute macro will say so itself (see [`crate::sign_in_fields::below_a_derive`]).
    pub(crate) reported_by_attribute: bool,
}

impl<'a> LateSignInFields<'a> {
    pub(crate) fn find(input: &'a DeriveInput) -> Option<Self> {
        let at = input.attrs.iter().position(|attr| {
            attr.path()
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "sign_in_fields")
        })?;
        // The attribute macro sees the other attributes, except the derives expanded before
        // it (those above it, ours included).
        let seen: Vec<syn::Attribute> = input
            .attrs
            .iter()
            .enumerate()
            .filter(|(index, attr)| *index > at || (*index < at && !attr.path().is_ident("derive")))
            .map(|(_, attr)| attr.clone())
            .collect();
        let fields = match &input.data {
            Data::Struct(data) => Some(&data.fields),
            _ => None,
        };
        Some(LateSignInFields {
            attr: &input.attrs[at],
            reported_by_attribute: fields
                .is_some_and(|fields| crate::sign_in_fields::below_a_derive(&seen, fields)),
        })
    }
}
