//! `#[trackable(...)]` keys to typed options. Unknown and duplicate keys are rejected here.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, Path, Token};

use crate::ctxt::{Ctxt, did_you_mean, one_of};

const CONTAINER_KEYS: &[&str] = &["fields", "table", "module", "crate"];

/// A role that a field plays in fields mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    SignInCount,
    CurrentSignInAt,
    CurrentSignInIp,
    LastSignInAt,
    LastSignInIp,
}

impl Role {
    pub(crate) const ALL: [Role; 5] = [
        Role::SignInCount,
        Role::CurrentSignInAt,
        Role::CurrentSignInIp,
        Role::LastSignInAt,
        Role::LastSignInIp,
    ];
    const NAMES: [&'static str; 5] = [
        "sign_in_count",
        "current_sign_in_at",
        "current_sign_in_ip",
        "last_sign_in_at",
        "last_sign_in_ip",
    ];

    pub(crate) fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The type to suggest when the field is missing.
    pub(crate) fn suggested_type(self) -> &'static str {
        match self {
            Role::SignInCount => "i32",
            Role::CurrentSignInAt | Role::LastSignInAt => "Option<DateTimeUtc>",
            Role::CurrentSignInIp | Role::LastSignInIp => "Option<String>",
        }
    }

    fn from_ident(ident: &Ident) -> Option<Role> {
        Role::ALL.into_iter().find(|role| ident == role.name())
    }
}

/// A value together with the span of the key that set it.
pub(crate) struct Keyed<T> {
    pub(crate) key: Span,
    pub(crate) value: T,
}

#[derive(Default)]
pub(crate) struct ContainerAttrs {
    pub(crate) fields: Option<Keyed<()>>,
    pub(crate) table: Option<Keyed<LitStr>>,
    pub(crate) module: Option<Keyed<Ident>>,
    pub(crate) krate: Option<Keyed<Path>>,
    /// A `table` key was given, even one whose value we refused: table mode was meant.
    pub(crate) table_given: bool,
    /// Some `#[trackable(...)]` key of the struct was wrong, so the intended mode is unsure.
    pub(crate) had_errors: bool,
}

impl ContainerAttrs {
    pub(crate) fn parse(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = ContainerAttrs::default();
        let errors_before = cx.count();
        for attr in trackable_attrs(attrs) {
            let result = attr.parse_nested_meta(|meta| {
                let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
                    return Err(meta.error(format!("expected {}", one_of(CONTAINER_KEYS))));
                };
                let span = meta.path.span();
                match key.as_str() {
                    "fields" => {
                        if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                            skip_value(&meta)?;
                            cx.error(span, "`fields` takes no value: write `#[trackable(fields)]`");
                        } else {
                            set(cx, &mut out.fields, span, "fields", ());
                        }
                    }
                    "table" => {
                        out.table_given = true;
                        if let Some(lit) = string_value(cx, &meta, "table", "the name of the audit table", "trackables")?
                            && let Some(lit) = checked_table_name(cx, lit)
                        {
                            set(cx, &mut out.table, span, "table", lit);
                        }
                    }
                    "module" => {
                        if let Some(lit) = string_value(cx, &meta, "module", "the name of the audit entity's module", "audit")? {
                            match parse_module(&lit) {
                                Ok(ident) => set(cx, &mut out.module, span, "module", ident),
                                Err(error) => cx.push(error),
                            }
                        }
                    }
                    "crate" => {
                        if let Some(lit) = string_value(cx, &meta, "crate", "the path of trackable_core", "my_app::trackable")? {
                            match parse_crate(&lit) {
                                Ok(path) => set(cx, &mut out.krate, span, "crate", path),
                                Err(error) => cx.push(error),
                            }
                        }
                    }
                    other => {
                        skip_value(&meta)?;
                        if Role::ALL.iter().any(|role| role.name() == other) {
                            cx.error(
                                span,
                                format!(
                                    "`{other}` marks a field, not the struct: put `#[trackable({other})]` on the field that holds it"
                                ),
                            );
                        } else {
                            cx.error(span, unknown_key(other, CONTAINER_KEYS));
                        }
                    }
                }
                Ok(())
            });
            if let Err(error) = result {
                cx.push(error);
            }
        }
        out.had_errors = cx.count() > errors_before;
        out
    }
}

/// The role attribute of one field.
pub(crate) fn field_role(cx: &mut Ctxt, attrs: &[Attribute]) -> Option<Keyed<Role>> {
    let mut role: Option<Keyed<Role>> = None;
    for attr in trackable_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            let found = meta.path.get_ident().and_then(Role::from_ident);
            if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                skip_value(&meta)?;
                if let Some(found) = found {
                    cx.error(
                        span,
                        format!("`{}` takes no value: write `#[trackable({})]`", found.name(), found.name()),
                    );
                    return Ok(());
                }
            }
            match found {
                Some(found) => match &role {
                    Some(_) => cx.error(
                        span,
                        "a field plays one role: remove all but one key from `#[trackable(...)]`",
                    ),
                    None => role = Some(Keyed { key: span, value: found }),
                },
                None => {
                    let key = meta
                        .path
                        .get_ident()
                        .map(Ident::to_string)
                        .unwrap_or_else(|| "?".to_owned());
                    if CONTAINER_KEYS.contains(&key.as_str()) {
                        cx.error(
                            span,
                            format!("`{key}` configures the struct: move it to the `#[trackable(...)]` above the struct"),
                        );
                    } else {
                        cx.error(span, unknown_key(&key, &Role::NAMES));
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = result {
            cx.push(error);
        }
    }
    role
}

fn trackable_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("trackable"))
}

fn set<T>(cx: &mut Ctxt, slot: &mut Option<Keyed<T>>, key: Span, name: &str, value: T) {
    if slot.is_some() {
        cx.error(key, format!("duplicate key `{name}`: give it once"));
    } else {
        *slot = Some(Keyed { key, value });
    }
}

fn unknown_key(key: &str, expected: &[&str]) -> String {
    match did_you_mean(key, expected) {
        Some(close) => format!("unknown key `{key}`; did you mean `{close}`?"),
        None => format!("unknown key `{key}`; expected {}", one_of(expected)),
    }
}

/// The string value of `key = "..."`, or `None` (with the error recorded) when the key has no
/// value or another kind of value: syn's own "expected `=`" would point past the key and say
/// nothing of what to write.
fn string_value(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &str,
    what: &str,
    example: &str,
) -> syn::Result<Option<LitStr>> {
    let key_span = meta.path.span();
    if !meta.input.peek(Token![=]) {
        skip_value(meta)?;
        cx.error(
            key_span,
            format!("`{key}` needs {what}: write `{key} = \"{example}\"`"),
        );
        return Ok(None);
    }
    match meta.value()?.parse::<syn::Expr>()? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Ok(Some(lit)),
        other => {
            // `table = trackables`: the user's own word, quoted, is the likeliest fix.
            let written = match &other {
                syn::Expr::Path(path) => Some(
                    quote::ToTokens::to_token_stream(path)
                        .to_string()
                        .replace(' ', ""),
                ),
                _ => None,
            };
            let example = written.as_deref().unwrap_or(example);
            cx.push(syn::Error::new_spanned(
                other,
                format!("{what} is a string: write `{key} = \"{example}\"`"),
            ));
            Ok(None)
        }
    }
}

/// Consumes the value of a key we are about to report, so parsing can go on to the next key.
pub(crate) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// Index, constraint and companion names add up to 34 bytes to the table name, and
/// PostgreSQL limits identifiers to 63 (MySQL to 64).
const MAX_TABLE_LEN: usize = 29;

/// An SQL table name that needs no quoting on any backend: ASCII letters, digits and `_`, not
/// starting with a digit, at most [`MAX_TABLE_LEN`] bytes.
///
/// Names that are valid only quoted (`login-events`, `login events`) are refused even with an
/// explicit `module`: the name also prefixes the audit table's indexes, constraints, companion
/// tables and PostgreSQL functions, and is what users type in SQL consoles and hand-written
/// queries, where a quoted name is easy to get wrong.
fn checked_table_name(cx: &mut Ctxt, lit: LitStr) -> Option<LitStr> {
    let name = lit.value();
    let problem = if name.is_empty() {
        Some("the audit table name is empty: write e.g. `table = \"trackables\"`".to_owned())
    } else if name.len() > MAX_TABLE_LEN {
        Some(format!(
            "the audit table name `{name}` is longer than {MAX_TABLE_LEN} bytes: the names of its indexes and companion objects must fit PostgreSQL's limit of 63"
        ))
    } else if name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        let plain: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let plain = if plain.starts_with(|c: char| c.is_ascii_digit()) {
            format!("t_{plain}")
        } else {
            plain
        };
        Some(format!(
            "`{name}` is not a valid table name: use ASCII letters, digits and `_`, not starting with a digit, e.g. `table = \"{plain}\"`"
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => {
            cx.error(lit.span(), problem);
            None
        }
        None => Some(lit),
    }
}

fn parse_crate(lit: &LitStr) -> syn::Result<Path> {
    let name = lit.value();
    if name.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "the crate path is empty: write the path of trackable_core, e.g. `crate = \"my_app::trackable\"`",
        ));
    }
    // `LitStr::parse` gives the path the literal's span, so a path that does not resolve is
    // reported once, at the literal.
    lit.parse::<Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`{name}` is not a path: write the path of trackable_core, e.g. `crate = \"my_app::trackable\"`"),
        )
    })
}

fn parse_module(lit: &LitStr) -> syn::Result<Ident> {
    let name = lit.value();
    if name.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "the module name is empty: write e.g. `module = \"audit\"`",
        ));
    }
    lit.parse::<Ident>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`{name}` is not a valid module name: use a Rust identifier such as `audit`"),
        )
    })
}
