//! The user documentation names files and folders of the project (`drivers/e1000/src/init.rs`,
//! `crates/pci/src/vfio`): each one must exist, so that a page such as `docs/architecture.md`
//! stays true to the code when files move.

use std::path::{Path, PathBuf};

/// The project's top-level folders: a path in the docs starts with one of them.
const ROOTS: [&str; 5] = ["crates/", "drivers/", "tools/", "xtask/", "docs/"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every project path in `text`: inside backticks or a Markdown link target, starting with a
/// top-level folder, without globs or placeholders.
fn paths_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| c == '`' || c == '(' || c == ')' || c.is_whitespace()) {
        let token = token.trim_start_matches("../").trim_end_matches([',', '.', ':', ';']);
        let token = token.split('#').next().unwrap_or_default();
        if !ROOTS.iter().any(|r| token.starts_with(r)) {
            continue;
        }
        // Placeholders and patterns name no one file: drivers/NAME, drivers/*, xtask/src/bench*.
        if token.contains(['*', '<', '{']) || token.split('/').any(|part| part.chars().all(|c| c.is_ascii_uppercase()))
        {
            continue;
        }
        out.push(token.to_string());
    }
    out
}

#[test]
fn every_project_path_the_docs_name_exists() {
    let root = workspace();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.push(root.join("README.md"));
    pages.sort();
    assert!(pages.iter().any(|p| p.ends_with("architecture.md")), "docs/architecture.md is one of the pages");
    let mut missing = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("a doc page");
        for path in paths_in(&text) {
            checked += 1;
            if !root.join(&path).exists() {
                missing.push(format!("{}: {path}", page.strip_prefix(&root).unwrap_or(page).display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} paths found: is the extraction broken?");
    assert!(missing.is_empty(), "paths named in the docs that do not exist:\n{}", missing.join("\n"));
}

#[test]
fn paths_are_found_in_backticks_and_links_and_placeholders_are_not() {
    let text = "See `drivers/e1000/src/init.rs`, [the guide](../docs/embedding.md#run) and \
                `drivers/NAME`, `drivers/*`; not /sys/bus/pci or target/lab.";
    assert_eq!(paths_in(text), ["drivers/e1000/src/init.rs", "docs/embedding.md"]);
}
