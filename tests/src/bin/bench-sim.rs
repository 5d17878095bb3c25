//! `make bench`, simulator section: 10,000 simulated incidents through the real state machine
//! and the real handlers on the simulated region (goal: < 10 s on this machine), and the figures
//! of the built-in set under both policies (what `autoheal demo --json` prints).
//! Writes `"sim"` into `bench/results.json` (other sections are kept) and prints a table.

use std::time::Instant;

use autoheal_sim::{PolicyKind, Scenario, SimOptions, simulate};
use autoheal_tests::repo_root;
use serde_json::{Value, json};

// The simulator allocates and frees many small JSON values; glibc's allocator spends a third of
// the run consolidating them (measured with perf). `autoheal` uses the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 1,000 groups of 10 targets; every ten minutes one app crash in each group, on a different
/// instance each time: 10,000 host faults, each one incident.
fn ten_thousand_incidents() -> Result<Scenario, Box<dyn std::error::Error>> {
    let groups = 1000;
    let waves = 10;
    let tgs: Vec<Value> = (0..groups)
        .map(|g| {
            json!({"name": format!("g{g:04}"), "lb": "alb", "protocol": "HTTP",
                   "asg": format!("g{g:04}-asg"), "instances": 10})
        })
        .collect();
    let mut faults = Vec::new();
    for w in 0..waves {
        for g in 0..groups {
            faults.push(
                json!({"at_s": 300 + w * 600 + (g % 10) * 30, "target_group": format!("g{g:04}"),
                               "instance": w, "kind": "app_crash"}),
            );
        }
    }
    let text = json!({
        "name": "bench-10k-incidents",
        "duration_s": 300 + waves * 600 + 600,
        "timings": {"schedule_s": 3600},
        "fleet": {"target_groups": tgs},
        "policy": {"approval_required_for": []},
        "faults": faults,
    })
    .to_string();
    Ok(Scenario::parse("bench-10k-incidents", &text)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map_or_else(
        || repo_root().join("bench/results.json"),
        std::path::PathBuf::from,
    );
    let sm = autoheal_handlers::definition()?;
    let opts = SimOptions {
        keep_histories: false,
        ..SimOptions::default()
    };
    let mut section = serde_json::Map::new();

    let s = ten_thousand_incidents()?;
    let t = Instant::now();
    let sim = simulate(&s, &sm, PolicyKind::Autoheal, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    let healed = sim
        .incidents
        .iter()
        .filter(|r| r.outcome == "healed")
        .count();
    let events: usize = sim.executions.iter().map(|e| e.events).sum();
    section.insert(
        "incidents_10k".into(),
        json!({
            "incidents": sim.summary.incidents,
            "healed": healed,
            "executions": sim.summary.executions,
            "history_events": events,
            "wall_s": (secs * 100.0).round() / 100.0,
            "incidents_per_s": (f64::from(sim.summary.incidents) / secs).round(),
            "goal_wall_s": 10,
        }),
    );
    println!(
        "\n{:<66} {:>12}",
        "simulator (real ASL + handlers, virtual clock, one core)", "figure"
    );
    println!(
        "{:<66} {:>10.2} s",
        format!(
            "{} incidents ({healed} healed), {} executions, {events} events",
            sim.summary.incidents, sim.summary.executions
        ),
        secs
    );

    let t = Instant::now();
    let mut per_scenario = serde_json::Map::new();
    for sc in Scenario::builtin()? {
        let a = simulate(&sc, &sm, PolicyKind::Autoheal, &opts)?;
        let b = simulate(&sc, &sm, PolicyKind::AsgReplace, &opts)?;
        per_scenario.insert(
            sc.name.clone(),
            json!({"autoheal": a.summary, "asg_replace": b.summary}),
        );
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<66} {:>10.2} s",
        format!(
            "the built-in set ({} scenarios) under both policies",
            per_scenario.len()
        ),
        secs
    );
    section.insert(
        "builtin_wall_s".into(),
        json!((secs * 100.0).round() / 100.0),
    );
    section.insert("builtin".into(), Value::Object(per_scenario));

    let mut all: serde_json::Map<String, Value> = std::fs::read_to_string(&out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.insert("sim".into(), Value::Object(section));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&Value::Object(all))? + "\n",
    )?;
    println!("written to {}", out.display());
    Ok(())
}
