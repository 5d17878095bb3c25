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

    let s = autoheal_tests::ten_thousand_incidents()?;
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

    // The same 10,000 incidents under chaos (issue 8): throttling, crashes, duplicate
    // triggers, instances vanishing mid-heal. Goal: no double heal, no lost incident, no stuck
    // lease, no blast-radius violation.
    let chaos_spec = "throttle=0.2,task_crash=0.05,duplicate_triggers=1,vanish=0.02";
    let chaos_opts = SimOptions {
        chaos: autoheal_sim::chaos::Chaos::parse(chaos_spec)?,
        ..opts.clone()
    };
    // 12 waves: under chaos some faults wait for a later run, so 12,000 faults make > 10,000
    // incidents (tests/tests/chaos.rs runs the same).
    let s12 = autoheal_tests::incident_waves(12)?;
    let t = Instant::now();
    let c = simulate(&s12, &sm, PolicyKind::Autoheal, &chaos_opts)?;
    let secs = t.elapsed().as_secs_f64();
    let mut outcomes: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
    for r in &c.records {
        *outcomes.entry(r.status.as_str().to_owned()).or_default() += 1;
    }
    section.insert(
        "chaos_10k".into(),
        json!({
            "chaos": chaos_spec,
            "incidents": c.summary.incidents,
            "outcomes": outcomes,
            "double_heals": c.summary.double_heals,
            "lost_incidents": c.summary.lost_incidents,
            "stuck_leases": c.summary.stuck_leases,
            "blast_radius_violations": c.summary.blast_radius_violations,
            "injected": c.summary.chaos,
            "executions": c.summary.executions,
            "wall_s": (secs * 100.0).round() / 100.0,
            "goal": "double_heals, lost_incidents, stuck_leases, blast_radius_violations all 0",
        }),
    );
    println!(
        "{:<66} {:>10.2} s",
        format!(
            "chaos ({chaos_spec}): {} incidents, double heals {}, lost {}, stuck leases {}, blast radius {}",
            c.summary.incidents,
            c.summary.double_heals,
            c.summary.lost_incidents,
            c.summary.stuck_leases,
            c.summary.blast_radius_violations
        ),
        secs
    );

    // Fleet scan (issue 8): 1,000 target groups × 20 targets, one schedule run, against ELB's
    // Describe API with 20–80 ms latency and a 40-call burst refilled at 10 per second.
    let scan = autoheal_tests::fleet_scan_scenario(1000, 20)?;
    let api = autoheal_sim::region::ElbApi {
        latency_min_ms: 20,
        latency_max_ms: 80,
        burst: 40,
        per_s: 10.0,
    };
    let mut scans = serde_json::Map::new();
    for (label, rate) in [
        (
            "staggered",
            autoheal_handlers::trigger::DEFAULT_SCAN_RATE_PER_S,
        ),
        ("all_at_once", 1e9),
    ] {
        let o = SimOptions {
            elb_api: Some(api),
            scan_rate_per_s: rate,
            ..opts.clone()
        };
        let t = Instant::now();
        let r = simulate(&scan, &sm, PolicyKind::Autoheal, &o)?;
        let secs = t.elapsed().as_secs_f64();
        let scanned = r
            .executions
            .iter()
            .filter(|e| e.trigger == "schedule")
            .count();
        let failed = r
            .executions
            .iter()
            .filter(|e| e.trigger == "schedule" && e.status != "SUCCEEDED")
            .count();
        let last = r.executions.iter().map(|e| e.ended_at_s).max().unwrap_or(0);
        let first = r
            .executions
            .iter()
            .map(|e| e.started_at_s)
            .min()
            .unwrap_or(0);
        let c = r.elb_api;
        println!(
            "{:<66} {:>10.2} s",
            format!(
                "fleet scan 1000×20, {label}: {scanned} groups in {} s (virtual), {} DescribeTargetHealth, {} throttled attempts, {} throttling failures, {failed} failed",
                last - first,
                c.describe_target_health,
                c.throttled_attempts,
                c.throttle_failures
            ),
            secs
        );
        scans.insert(
            label.into(),
            json!({
                "scan_rate_groups_per_s": if rate > 1e6 { Value::Null } else { json!(rate) },
                "groups_scanned": scanned,
                "scan_virtual_s": last - first,
                "describe_target_health": c.describe_target_health,
                "describe_target_groups": c.describe_target_groups,
                "throttled_attempts": c.throttled_attempts,
                "throttling_failures": c.throttle_failures,
                "max_calls_in_flight": c.max_in_flight,
                "failed_scans": failed,
                "wall_s": (secs * 100.0).round() / 100.0,
            }),
        );
    }
    scans.insert(
        "elb_api".into(),
        json!({"latency_ms": [20, 80], "burst": 40, "per_s": 10, "sdk_attempts": 3}),
    );
    scans.insert(
        "goal".into(),
        json!("one DescribeTargetHealth per group (20 targets: one page), bounded concurrency, 0 throttling failures"),
    );
    section.insert("fleet_scan".into(), Value::Object(scans));

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
