//! Rules that need more than one attribute: the mode, the field roles, the primary key.

use syn::{Ident, LitStr, Path, Visibility, parse_quote};

use crate::ast::{Field, Input};
use crate::attr::Role;
use crate::ctxt::Ctxt;

/// An input that expansion can trust.
pub(crate) struct Checked<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) krate: Path,
    pub(crate) primary_key: &'a Field<'a>,
    pub(crate) mode: Mode<'a>,
    pub(crate) schema_name: Option<LitStr>,
}

pub(crate) enum Mode<'a> {
    /// The fields playing each [`Role`], in `Role::ALL` order.
    Fields([&'a Field<'a>; 5]),
    Table {
        table: LitStr,
        module: Ident,
    },
}

/// Checks `input`, adding every mistake to `cx`; `None` when anything is wrong.
pub(crate) fn check<'a>(cx: &mut Ctxt, input: &'a Input<'a>) -> Option<Checked<'a>> {
    let attrs = &input.attrs;

    let table_mode = attrs.table.is_some();
    if let (Some(fields), Some(table)) = (&attrs.fields, &attrs.table) {
        cx.error(
            fields.key,
            "`fields` conflicts with `table`: choose fields mode (`fields`) or table mode (`table = \"...\"`), not both",
        );
        cx.error(
            table.key,
            "`table` conflicts with `fields`: choose fields mode (`fields`) or table mode (`table = \"...\"`), not both",
        );
    }
    if let (Some(module), false) = (&attrs.module, attrs.table_given) {
        cx.error(
            module.key,
            "`module` names the module of the audit entity and needs table mode: add `table = \"...\"`",
        );
    }

    if !input.has_table_name {
        cx.error(
            input.ident.span(),
            "no `#[sea_orm(table_name = \"...\")]`: DeriveEntityModel generates the model's `Entity` only for a table; add e.g. `#[sea_orm(table_name = \"users\")]` above the struct",
        );
    }

    let primary_key = check_primary_key(cx, input, table_mode);

    let mode = if table_mode {
        for field in &input.fields {
            if let Some(role) = &field.role {
                cx.error(
                    role.key,
                    format!(
                        "`{}` marks a field of fields mode; in table mode the sign-in state lives in the audit table: remove it",
                        role.value.name()
                    ),
                );
            }
        }
        attrs.table.as_ref().and_then(|table| {
            let module = match &attrs.module {
                Some(module) => module.value.clone(),
                // The table name is ASCII letters, digits and `_` by now, but may still be a
                // keyword (`type`) or `_`.
                None => match table.value.parse::<Ident>() {
                    Ok(module) => module,
                    Err(_) => {
                        cx.error(
                            table.value.span(),
                            format!(
                                "`{}` cannot name the audit entity's module: add `module = \"...\"` with a Rust identifier",
                                table.value.value()
                            ),
                        );
                        return None;
                    }
                },
            };
            Some(Mode::Table {
                table: table.value.clone(),
                module,
            })
        })
    } else if attrs.module.is_some() || attrs.had_errors {
        // `module` alone says table mode was meant, and a wrong key leaves the mode unsure:
        // checking the fields of fields mode would only add noise to the errors above.
        None
    } else {
        check_roles(cx, input).map(Mode::Fields)
    };

    let krate = match &attrs.krate {
        Some(krate) => krate.value.clone(),
        None => parse_quote!(::trackable_core),
    };
    if let (Some(table), Some(users)) = (&attrs.table, &input.table_name)
        && table.value.value() == *users
    {
        cx.error(
            table.value.span(),
            format!("the audit table cannot be the user table `{users}`: choose another name, e.g. `{users}_events`"),
        );
        return None;
    }
    Some(Checked {
        ident: input.ident,
        vis: input.vis,
        krate,
        primary_key: primary_key?,
        mode: mode?,
        schema_name: input.schema_name.clone(),
    })
}

fn check_primary_key<'a>(
    cx: &mut Ctxt,
    input: &'a Input<'a>,
    table_mode: bool,
) -> Option<&'a Field<'a>> {
    let keys: Vec<&Field<'a>> = input
        .fields
        .iter()
        .filter(|f| f.primary_key.is_some())
        .collect();
    match keys.as_slice() {
        [key] => Some(*key),
        [] => {
            cx.error(
                input.ident.span(),
                "no primary key: tracking finds the user row by its primary key; mark it with `#[sea_orm(primary_key)]`",
            );
            None
        }
        [_, rest @ ..] => {
            let why = if table_mode {
                "the audit table refers to the user by one column"
            } else {
                "tracking finds the user row by one column"
            };
            for key in rest {
                if let Some(span) = key.primary_key {
                    cx.error(
                        span,
                        format!("composite primary keys are not supported: {why}; keep `#[sea_orm(primary_key)]` on one field"),
                    );
                }
            }
            None
        }
    }
}

fn check_roles<'a>(cx: &mut Ctxt, input: &'a Input<'a>) -> Option<[&'a Field<'a>; 5]> {
    let mut found: [Option<&'a Field<'a>>; 5] = [None; 5];
    // Explicit roles first: they win over a field that merely has the role's name.
    for field in &input.fields {
        let Some(role) = &field.role else { continue };
        let slot = &mut found[role.value as usize];
        match slot {
            Some(other) => cx.error(
                role.key,
                format!(
                    "`{}` is already held by field `{}`: one field per role",
                    role.value.name(),
                    other.ident
                ),
            ),
            None => *slot = Some(field),
        }
    }
    for (slot, role) in found.iter_mut().zip(Role::ALL) {
        let plain = input
            .fields
            .iter()
            .find(|field| field.role.is_none() && field.ident == role.name());
        match (&*slot, plain) {
            // Tracking writes the marked field; the one with the role's name would silently
            // go stale.
            (Some(marked), Some(plain)) => cx.error(
                plain.ident.span(),
                format!(
                    "`{name}` is never written: field `{marked}` holds `{name}` (`#[trackable({name})]`); remove this field, or the attribute from `{marked}`",
                    name = role.name(),
                    marked = marked.ident,
                ),
            ),
            (None, plain) => *slot = plain,
            (Some(_), None) => {}
        }
    }
    // A field whose role attribute was wrong probably meant a missing role: its error says
    // enough.
    let role_error = input.fields.iter().any(|field| field.role_error);
    let mut misspelled: Vec<&Ident> = Vec::new();
    let mut roles = Vec::with_capacity(5);
    for (slot, role) in found.iter().zip(Role::ALL) {
        match slot {
            Some(field) if field.ignored => cx.error(
                field.ident.span(),
                format!(
                    "`{}` is `#[sea_orm(ignore)]`, but tracking stores `{}` in it: make it a column",
                    field.ident,
                    role.name()
                ),
            ),
            Some(field) => roles.push(*field),
            None if role_error => {}
            None => match misspelling_of(input, role, &misspelled) {
                Some(field) => {
                    misspelled.push(field.ident);
                    cx.error(
                        field.ident.span(),
                        format!(
                            "`{}` looks like a misspelling of `{name}`: rename the field to `{name}`, or mark it with `#[trackable({name})]`",
                            field.ident,
                            name = role.name(),
                        ),
                    );
                }
                None => cx.error(
                    input.ident.span(),
                    format!(
                        "missing field `{name}`: add `pub {name}: {ty},` or mark the field that holds it with `#[trackable({name})]`",
                        name = role.name(),
                        ty = role.suggested_type()
                    ),
                ),
            },
        }
    }
    roles.try_into().ok()
}

/// The unmarked field whose name is a near miss of `role`'s (`last_sing_in_ip`), if any:
/// reporting the role as missing would leave that field behind as a stray column.
fn misspelling_of<'a>(input: &'a Input<'a>, role: Role, taken: &[&Ident]) -> Option<&'a Field<'a>> {
    input
        .fields
        .iter()
        .filter(|field| field.role.is_none() && !taken.contains(&field.ident))
        .filter_map(|field| {
            let name = field.ident.to_string();
            if Role::ALL.iter().any(|role| role.name() == name) {
                return None;
            }
            // Two edits: a typo or a swap, not another word (`first_sign_in_at`).
            let distance = crate::ctxt::edit_distance(&name.to_lowercase(), role.name());
            (distance <= 2).then_some((distance, field))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, field)| field)
}
