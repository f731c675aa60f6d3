//! The derive's compile errors: one file per mistake under `tests/ui/`, with the expected
//! output beside it. Regenerate with `TRYBUILD=overwrite cargo test --test compile_fail` and
//! read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
