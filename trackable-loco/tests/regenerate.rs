//! `cargo loco db entities` regenerates `src/models/_entities/*.rs` from the database. This
//! runs the same generator (sea-orm-codegen, with the options Loco passes to sea-orm-cli)
//! on the example app's `users` table and checks what the README promises: with
//! `experimental-preserve-user-modifications` the derive and its attribute survive, and the
//! regenerated file is the example's entity, unchanged; without it, they are lost.

use std::io::Write;
use std::process::{Command, Stdio};

use sea_orm_codegen::{
    BannerVersion, BigIntegerType, DateTimeCrate, EntityFormat, EntityTransformer,
    EntityWriterContext, WithPrelude, WithSerde, merge_entity_files,
};

#[path = "../examples/loco_app/schema.rs"]
#[allow(dead_code)]
mod schema;

const ENTITY: &str = include_str!("../examples/loco_app/models/_entities/users.rs");

/// What sea-orm-cli writes for the `users` table under Loco's options (`--with-serde both
/// --with-copy-enums`, compact format), merged with `previous` when it is given, before
/// Loco's clean-up and the formatting.
fn regenerate(previous: Option<&str>) -> String {
    let context = EntityWriterContext::new(
        EntityFormat::Compact,
        WithPrelude::All,
        WithSerde::Both,
        true,
        DateTimeCrate::Chrono,
        BigIntegerType::I64,
        None,
        false,
        false,
        false,
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        false,
        true,
        BannerVersion::Minor,
    );
    let output = EntityTransformer::transform(vec![schema::users_table()])
        .expect("the users table transforms")
        .generate(&context);
    let generated = output
        .files
        .into_iter()
        .find(|file| file.name == "users.rs")
        .expect("users.rs is generated")
        .content;
    let merged = match previous {
        Some(previous) => merge_entity_files(previous, &generated)
            .unwrap_or_else(|report| panic!("the merge fell back: {:?}", report.warnings)),
        None => generated,
    };
    // Loco moves `impl ActiveModelBehavior` out of the generated file (into `models/users.rs`).
    let cleaned: Vec<&str> = merged
        .lines()
        .filter(|line| !line.contains("impl ActiveModelBehavior for ActiveModel {}"))
        .collect();
    rustfmt(&(cleaned.join("\n") + "\n"))
}

/// `source` formatted as the repository's own files are (`cargo fmt`, edition 2024).
fn rustfmt(source: &str) -> String {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("rustfmt runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(source.as_bytes())
        .expect("rustfmt reads");
    let output = child.wait_with_output().expect("rustfmt ends");
    assert!(output.status.success(), "rustfmt failed on:\n{source}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn preserving_user_modifications_keeps_the_derive_and_the_entity_unchanged() {
    let regenerated = regenerate(Some(ENTITY));
    assert_eq!(regenerated, rustfmt(ENTITY), "regenerated:\n{regenerated}");
    assert!(regenerated.contains("trackable_core::Trackable"));
    assert!(regenerated.contains("#[trackable(table = \"user_events\")]"));
}

#[test]
fn without_it_the_derive_is_lost() {
    let regenerated = regenerate(None);
    assert!(!regenerated.contains("Trackable"), "{regenerated}");
    assert!(!regenerated.contains("#[trackable("), "{regenerated}");
    assert!(regenerated.contains("pub struct Model"), "{regenerated}");
}
