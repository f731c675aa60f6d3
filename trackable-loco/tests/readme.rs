//! The Loco section of the workspace README shows code that only this crate can compile: its
//! lines must be lines of this crate's README, whose blocks are this crate's doctests.

const WORKSPACE_README: &str = include_str!("../../README.md");
const README: &str = include_str!("../README.md");

/// The code blocks of `section` (a `### ` heading) in `markdown`.
fn blocks_of<'a>(markdown: &'a str, section: &str) -> Vec<Vec<&'a str>> {
    let start = markdown
        .find(&format!("\n### {section}\n"))
        .unwrap_or_else(|| panic!("no section {section}"));
    let rest = &markdown[start + 1..];
    let end = ["\n## ", "\n### "]
        .iter()
        .filter_map(|heading| rest[4..].find(heading))
        .min()
        .map_or(rest.len(), |i| i + 4);
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in rest[..end].lines() {
        match (&mut current, line.starts_with("```")) {
            (None, true) if line.starts_with("```rs") => current = Some(Vec::new()),
            (Some(_), true) => blocks.extend(current.take()),
            (Some(block), false) => block.push(line),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_workspace_readme_shows_lines_this_crate_compiles() {
    let blocks = blocks_of(WORKSPACE_README, "Loco");
    assert_eq!(blocks.len(), 1, "one Rust block in the Loco section");
    let block = blocks[0].join("\n");
    assert!(block.contains("TrackableInitializer::new()"), "{block}");
    assert!(
        README.contains(&block),
        "trackable-loco/README.md does not hold these lines verbatim:\n{block}"
    );
}
