//! `make bench`, core section: how fast the domain core parses, classifies and decides.
//! Writes its figures into `bench/results.json` under `"core"` (other sections are kept) and
//! prints a table.

use std::hint::black_box;
use std::time::Instant;

use autoheal_core::facts::Facts;
use autoheal_core::{GlobalPolicy, RuleSet, parse_diagnostics};
use autoheal_tests::{fault_kinds, fixture, repo_root};

/// Median nanoseconds per call of `f` over 5 rounds of `n` calls.
fn per_call_ns(n: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map_or_else(
        || repo_root().join("bench/results.json"),
        std::path::PathBuf::from,
    );
    let docs: Vec<String> = [
        "healthy",
        "app_crash",
        "memory_leak",
        "disk_full",
        "disk_corruption",
    ]
    .iter()
    .map(|n| fixture(&format!("diagnostics/{n}.json")))
    .collect();
    let rules = RuleSet::builtin()?;
    let policy = GlobalPolicy::default();
    let kinds = fault_kinds();
    let observations: Vec<_> = kinds
        .iter()
        .map(|k| k.scene.observations().swap_remove(0))
        .collect();

    let load_rules_us = per_call_ns(200, || {
        black_box(RuleSet::builtin().ok());
    }) / 1000.0;
    let parse_us = per_call_ns(2000, || {
        for d in &docs {
            black_box(parse_diagnostics(black_box(d)).ok());
        }
    }) / docs.len() as f64
        / 1000.0;
    let classify_us = per_call_ns(20_000, || {
        for o in &observations {
            black_box(rules.classify(&Facts::of(black_box(o))));
        }
    }) / observations.len() as f64
        / 1000.0;
    let groups: Vec<_> = kinds.iter().map(|k| k.scene.observations()).collect();
    let decide_us = per_call_ns(20_000, || {
        for (k, hosts) in kinds.iter().zip(&groups) {
            black_box(k.scene.decide_on(black_box(hosts), &rules, &policy));
        }
    }) / kinds.len() as f64
        / 1000.0;

    let rows = [
        ("load and validate the shipped rules", load_rules_us, "µs"),
        ("parse + validate one diagnostics document", parse_us, "µs"),
        ("facts + classify one observation", classify_us, "µs"),
        (
            "classify and decide one incident (group of 6-10 targets)",
            decide_us,
            "µs",
        ),
    ];
    println!("{:<66} {:>12}", "core", "per call");
    for (name, v, unit) in rows {
        println!("{name:<66} {v:>9.2} {unit}");
    }
    println!(
        "{:<66} {:>12.0}",
        "classifications per second (one core)",
        1e6 / classify_us
    );
    println!(
        "{:<66} {:>12.0}",
        "incidents classified and decided per second (one core)",
        1e6 / decide_us
    );

    let mut all: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.insert(
        "core".into(),
        serde_json::json!({
            "load_rules_us": (load_rules_us * 100.0).round() / 100.0,
            "parse_diagnostics_us": (parse_us * 100.0).round() / 100.0,
            "classify_us": (classify_us * 100.0).round() / 100.0,
            "classify_and_decide_us": (decide_us * 100.0).round() / 100.0,
            "classifications_per_s": (1e6 / classify_us).round(),
            "decisions_per_s": (1e6 / decide_us).round(),
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        }),
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::Value::Object(all))? + "\n",
    )?;
    println!("\nwritten to {}", out.display());
    Ok(())
}
