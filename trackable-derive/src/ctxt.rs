use std::fmt::Display;

use proc_macro2::Span;

/// Collects every error of one expansion, so that a user sees all mistakes in one compile.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
    count: usize,
}

impl Ctxt {
    /// How many errors were recorded so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn error(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// `Ok(value)` when nothing went wrong, else every error at once.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.errors {
            Some(errors) => Err(errors),
            None => Ok(value),
        }
    }
}

/// The closest of `candidates` to `key`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().div_ceil(3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance counting a swap of two neighbours as one edit (`tabel` is one from `table`).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// "expected one of `a`, `b` or `c`"
pub(crate) fn one_of(candidates: &[&str]) -> String {
    let quoted: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(did_you_mean("tabel", &["fields", "table"]), Some("table"));
        assert_eq!(
            did_you_mean("last_sign_in_ad", &["last_sign_in_at", "last_sign_in_ip"]),
            Some("last_sign_in_at")
        );
        assert_eq!(did_you_mean("color", &["fields", "table"]), None);
    }

    #[test]
    fn counts_a_swap_as_one_edit() {
        // A field within two edits of a role is reported as its misspelling; another word
        // for another time is not.
        assert_eq!(edit_distance("last_sing_in_ip", "last_sign_in_ip"), 1);
        assert_eq!(edit_distance("signin_count", "sign_in_count"), 1);
        assert!(edit_distance("first_sign_in_at", "last_sign_in_at") > 2);
    }
}
