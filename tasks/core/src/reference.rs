//! Reference tables generated from the code and the shipped rules, so the docs cannot drift:
//! `docs/fault-classes.md` and `docs/diagnosis-rules.md` embed these, and a test in `tests/`
//! fails when the checked-in copy differs.

use std::fmt::Write as _;

use crate::decision::ladder;
use crate::facts::{FACTS, FactType};
use crate::rules::{FaultClass, RuleSet};

/// What each class is for: the situation in words.
fn class_meaning(class: FaultClass) -> &'static str {
    match class {
        FaultClass::Application => "the application process crashed, hung or answers with errors",
        FaultClass::ResourceBottleneck => "memory or CPU is exhausted on the host",
        FaultClass::DiskFull => "a filesystem is out of blocks or inodes",
        FaultClass::DiskCorruption => "the filesystem or block device is failing",
        FaultClass::AgentFailure => "the SSM agent is unreachable while the host itself is up",
        FaultClass::OsLevel => "the guest OS does not respond",
        FaultClass::Network => "the host's network configuration is broken",
        FaultClass::Hardware => "the AWS host under the instance is impaired",
        FaultClass::Dependency => "something the whole group depends on is down",
        FaultClass::Flapping => "the target keeps changing between serving and failing",
        FaultClass::Unknown => "no rule matched; the evidence does not say",
    }
}

/// Where the evidence for classes that no rule produces comes from.
fn non_rule_evidence(class: FaultClass) -> Option<&'static str> {
    match class {
        FaultClass::Dependency => Some(
            "fleet guard: more than `max_unhealthy_percent` of a group (of at least `outage_min_targets`) failing at once",
        ),
        FaultClass::Flapping => Some(
            "history: `flapping.transitions` serving↔failing changes within `flapping.window_s`",
        ),
        FaultClass::Unknown => Some("no rule matches, or the best match is under `min_confidence`"),
        _ => None,
    }
}

fn first_action(class: FaultClass) -> String {
    match ladder(class) {
        [] => "hold + notify".to_owned(),
        [first, rest @ ..] => {
            let mut s = format!("**{first}**");
            for a in rest {
                let _ = write!(s, " → {a}");
            }
            s
        }
    }
}

/// The fault-class table: class, meaning, evidence (rule ids and conditions), ladder.
pub fn fault_class_table(rules: &RuleSet) -> String {
    let mut out = String::from(
        "| class | meaning | evidence (rule: condition) | first action → escalation |\n|---|---|---|---|\n",
    );
    for class in FaultClass::ALL {
        let mut evidence: Vec<String> = rules
            .rules
            .iter()
            .filter(|r| r.class == class)
            .map(|r| format!("`{}`: {}", r.id, r.condition_text().replace('|', "\\|")))
            .collect();
        if let Some(e) = non_rule_evidence(class) {
            evidence.push(e.to_owned());
        }
        let _ = writeln!(
            out,
            "| {class} | {} | {} | {} |",
            class_meaning(class),
            evidence.join("<br>"),
            first_action(class)
        );
    }
    out
}

/// The fact catalogue as a table.
pub fn fact_table() -> String {
    let mut out = String::from("| fact | type | meaning | values |\n|---|---|---|---|\n");
    for f in FACTS {
        let ty = match f.ty {
            FactType::String => "string",
            FactType::Number => "number",
            FactType::Bool => "bool",
        };
        let values = if f.values.is_empty() {
            "open".to_owned()
        } else {
            f.values.join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {ty} | {} | {values} |",
            f.name, f.description
        );
    }
    out
}

/// The shipped rules as a table, in priority order.
pub fn rules_table(rules: &RuleSet) -> String {
    let mut sorted: Vec<_> = rules.rules.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let mut out =
        String::from("| priority | rule | class | confidence | when |\n|---|---|---|---|---|\n");
    for r in sorted {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            r.priority,
            r.id,
            r.class,
            r.confidence,
            r.condition_text().replace('|', "\\|")
        );
    }
    out
}
