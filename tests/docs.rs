//! The documentation ships with the code: every rule id pciplan can print has its section in
//! docs/rules.md, every link in the README and docs/ points at a file of the repository, and
//! nothing in the repository refers to a file outside it.

use std::path::{Path, PathBuf};

use pciplan::Rule;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every text file we wrote, recursively (not `target/`, `.git/` or fuzz's build output).
fn our_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "corpus" | "artifacts") {
                our_files(&p, out);
            }
        } else if [".rs", ".md", ".toml", ".json", ".jsonl", ".xml", ".tsv"]
            .iter()
            .any(|x| name.ends_with(x))
            || name == "run"
        {
            out.push(p);
        }
    }
}

#[test]
fn every_rule_id_has_a_section_in_docs_rules() {
    let doc = read("docs/rules.md");
    let headings: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(str::trim)
        .collect();
    for r in Rule::ALL {
        assert!(
            headings.contains(&r.id()),
            "docs/rules.md has no '### {}' section",
            r.id()
        );
    }
    for h in &headings {
        assert!(
            h.parse::<Rule>().is_ok(),
            "docs/rules.md has a section '{h}' that is not a rule id of pciplan::Rule"
        );
    }
    // In the order of Rule::ALL, so the page reads like the enum.
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    assert_eq!(
        headings, ids,
        "docs/rules.md sections out of Rule::ALL order"
    );
}

#[test]
fn links_in_readme_and_docs_point_into_the_repository() {
    let mut pages = vec![PathBuf::from("README.md"), PathBuf::from("tests/README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        pages.push(Path::new("docs").join(e.file_name()));
    }
    for page in pages {
        let text = read(page.to_str().unwrap());
        let dir = root().join(&page).parent().unwrap().to_path_buf();
        for (i, _) in text.match_indices("](") {
            let target: String = text[i + 2..].chars().take_while(|&c| c != ')').collect();
            let file = target.split('#').next().unwrap_or("");
            if file.is_empty() || file.contains("://") {
                continue;
            }
            assert!(
                dir.join(file).exists(),
                "{}: link to {target} does not resolve",
                page.display()
            );
            let resolved = dir.join(file).canonicalize().unwrap();
            assert!(
                resolved.starts_with(root().canonicalize().unwrap()),
                "{}: link to {target} leaves the repository",
                page.display()
            );
        }
    }
}

/// How a path out of the repository looks (split, so that this file does not match itself).
const OUTSIDE: [&str; 3] = [
    concat!("../", "shared"),
    concat!("shared/", "spec"),
    concat!("/wo", "rk/"),
];

#[test]
fn nothing_refers_to_files_outside_the_repository() {
    let mut files = Vec::new();
    our_files(root(), &mut files);
    let allowed = root().join(".ci/run"); // it points CI at the corpora (tests/README.md)
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| **f != allowed) {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if OUTSIDE.iter().any(|p| line.contains(p)) {
                bad.push(format!("{}:{}: {line}", f.display(), n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "references outside the repository:\n{}",
        bad.join("\n")
    );
}
