//! The layers of `trackable-core` point one way: no module imports one of a higher layer, and
//! no two modules import each other, directly or around a circle.
//!
//! The check reads the sources: every `use` and every `crate::`, `super::` or `self::` path
//! outside comments and string literals is an import of the module that owns the item (items
//! re-exported from the crate root are traced to their module). A `pub use` of a module's own
//! descendants is a facade, not an import, and unit-test modules are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of each top-level module, lowest first. A module may import its own layer and
/// the ones below.
const LAYERS: &[(&str, u8)] = &[
    ("action", 0),
    ("details", 0),
    ("state", 0),
    ("error", 0),
    ("event", 0),
    ("trackable", 0),
    ("client", 0),
    ("store", 1),
    ("trail", 2),
    ("tracker", 3),
    ("lockout", 4),
    ("integration", 5),
    ("__private", 6),
];

type Module = String;

fn layer(module: &str) -> u8 {
    let top = module.split("::").next().unwrap_or_default();
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/layout.rs"))
}

/// The module path of a source file: `store/write.rs` is `store::write`, `store/mod.rs` is
/// `store`, `private.rs` is `__private` (its `#[path]`), `lib.rs` is the root (empty).
fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    if parts == ["private"] {
        return "__private".to_owned();
    }
    parts.join("::")
}

/// The source without comments, string and character literals.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(chars.get(i.wrapping_sub(1)).copied())
        {
            // raw string: r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // a character literal, not a lifetime
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The paths of a `use` tree: `a::{b, c::{d, e as f}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into("", tree.trim(), &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: String = tree[..open]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let prefix = format!("{prefix}{head}");
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_into(&prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_into(&prefix, &inner[start..], out);
    } else if let Some(leaf) = tree.split_whitespace().next() {
        let path = format!("{prefix}{leaf}");
        out.push(path.trim_end_matches("::self").to_owned());
    }
}

struct Source {
    module: Module,
    code: String,
}

/// `use` statements of `code` (whether `pub`), and the code without them.
fn uses(code: &str) -> (Vec<(bool, String)>, String) {
    let mut found = Vec::new();
    let mut rest = String::with_capacity(code.len());
    let mut last = None;
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !ident_char(last) && code[i..].starts_with("use ") {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            let before = code[..i].trim_end();
            let public = before.ends_with("pub") || before.ends_with(')');
            found.push((public, code[i + 4..end].to_owned()));
            while chars.peek().is_some_and(|(j, _)| *j <= end) {
                chars.next();
            }
            last = Some(';');
            continue;
        }
        rest.push(c);
        last = Some(c);
    }
    (found, rest)
}

/// Inline paths that start with `crate`, `$crate`, `super` or `self`.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if ident_char(Some(chars[i])) && !ident_char(i.checked_sub(1).map(|j| chars[j])) {
            let mut j = i;
            let mut path = String::new();
            loop {
                let start = j;
                while j < chars.len() && ident_char(Some(chars[j])) {
                    j += 1;
                }
                path.extend(&chars[start..j]);
                if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                    path.push_str("::");
                    j += 2;
                    while chars.get(j) == Some(&'$') {
                        j += 1;
                    }
                } else {
                    break;
                }
            }
            let first = path.split("::").next().unwrap_or_default();
            if path.contains("::") && matches!(first, "crate" | "super" | "self") {
                out.push(path.trim_end_matches("::").to_owned());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// `path` as seen from `module`, from the crate root.
fn absolute(module: &str, path: &str) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    match segments.first().copied() {
        Some("crate") => {
            base.clear();
            segments.remove(0);
        }
        Some("super") => {
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
        }
        Some("self") => {
            segments.remove(0);
        }
        _ => return None, // an external crate, or a name in scope
    }
    Some(
        base.into_iter()
            .chain(segments)
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn modules_import_only_their_layer_and_below_without_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("trackable-core/src");
    let mut sources = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut text = std::fs::read_to_string(&path).unwrap();
                // Unit tests (`#[cfg(test)] mod tests`, last in a file) are not the layout.
                if let Some(at) = text.find("#[cfg(test)]\nmod ") {
                    text.truncate(at);
                }
                sources.push(Source {
                    module: module_of(path.strip_prefix(&root).unwrap()),
                    code: code_only(&text),
                });
            }
        }
    }
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();

    // Names re-exported at the crate root, traced to the module that defines them.
    let lib = sources.iter().find(|s| s.module.is_empty()).unwrap();
    let mut reexports = BTreeMap::new();
    for (_, tree) in uses(&lib.code).0 {
        for path in expand_use(&tree) {
            let segments: Vec<&str> = path.split("::").collect();
            if let Some((name, module)) = segments.split_last() {
                reexports.insert(name.to_string(), module.join("::"));
            }
        }
    }
    let owner = |segments: &[String]| -> Option<Module> {
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|candidate| modules.contains(candidate))
            .or_else(|| reexports.get(segments.first()?).cloned())
    };

    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for source in sources.iter().filter(|s| !s.module.is_empty()) {
        let (uses, rest) = uses(&source.code);
        let mut paths: Vec<(bool, String)> = uses
            .into_iter()
            .flat_map(|(public, tree)| expand_use(&tree).into_iter().map(move |p| (public, p)))
            .collect();
        paths.extend(inline_paths(&rest).into_iter().map(|p| (false, p)));
        for (public, path) in paths {
            let Some(segments) = absolute(&source.module, &path) else {
                continue;
            };
            let Some(target) = owner(&segments) else {
                continue;
            };
            let facade = public && target.starts_with(&format!("{}::", source.module));
            if target != source.module && !target.is_empty() && !facade {
                edges
                    .entry(source.module.clone())
                    .or_default()
                    .insert(target);
            }
        }
    }

    let upward: Vec<String> = edges
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(upward.is_empty(), "imports of a higher layer: {upward:#?}");

    // No circle: a depth-first search finds no edge back to a module on its path.
    fn visit(
        module: &str,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            return Some(circle);
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        path.push(module.to_owned());
        for next in edges.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        let circle = visit(module, &edges, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "modules in a circle: {:?}",
            circle.unwrap()
        );
    }

    // The check sees the imports it is meant to: the tracker calls the store and the trail.
    assert!(edges["tracker"].contains("store::write"), "{edges:#?}");
    assert!(edges["lockout"].contains("tracker"), "{edges:#?}");
}
