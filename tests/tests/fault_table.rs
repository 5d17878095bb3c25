//! The reference tables in docs/ are generated from the shipped rules and the code; these tests
//! fail when the checked-in copy drifts (`AUTOHEAL_UPDATE_DOCS=1 cargo test -p autoheal-tests`
//! rewrites them).

use autoheal_core::RuleSet;
use autoheal_core::reference::{fact_table, fault_class_table, rules_table};
use autoheal_tests::repo_root;

const BEGIN: &str = "<!-- BEGIN GENERATED: ";
const END: &str = "<!-- END GENERATED -->";

/// Replaces the generated block named `name` in `doc` with `body`.
fn splice(doc: &str, name: &str, body: &str) -> Option<String> {
    let begin = format!("{BEGIN}{name} -->\n");
    let start = doc.find(&begin)? + begin.len();
    let end = start + doc[start..].find(END)?;
    Some(format!("{}{}{}", &doc[..start], body, &doc[end..]))
}

fn check(file: &str, blocks: &[(&str, String)]) {
    let path = repo_root().join(file);
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let mut want = doc.clone();
    for (name, body) in blocks {
        want = splice(&want, name, body)
            .unwrap_or_else(|| panic!("{file} lacks the block `{BEGIN}{name} -->`"));
    }
    if std::env::var_os("AUTOHEAL_UPDATE_DOCS").is_some() && want != doc {
        std::fs::write(&path, &want).expect("write doc");
        return;
    }
    assert!(
        want == doc,
        "{file} is stale: run `AUTOHEAL_UPDATE_DOCS=1 cargo test -p autoheal-tests` and commit it"
    );
}

#[test]
fn the_fault_class_table_in_the_docs_matches_the_shipped_rules() {
    let rules = RuleSet::builtin().expect("shipped rules");
    check(
        "docs/fault-classes.md",
        &[("fault-classes", fault_class_table(&rules))],
    );
}

#[test]
fn the_rules_reference_matches_the_shipped_rules_and_fact_catalogue() {
    let rules = RuleSet::builtin().expect("shipped rules");
    check(
        "docs/diagnosis-rules.md",
        &[("facts", fact_table()), ("rules", rules_table(&rules))],
    );
}
