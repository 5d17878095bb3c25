//! `autoheal simulate` and `autoheal demo`: scenarios on the simulated region, the real state
//! machine and the real handlers, scored against the scenario's ground truth.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use autoheal_asl::StateMachine;
use autoheal_sim::simulate::{IncidentOutcome, Summary};
use autoheal_sim::{PolicyKind, Scenario, SimOptions, Simulation, simulate};
use clap::Args;
use serde_json::{Value, json};

use crate::{CliError, Output, load_definition};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A scenario file (docs/scenarios.md).
    #[arg(long)]
    pub scenario: PathBuf,
    /// `autoheal`, or the baseline `asg-replace` (an ASG with ELB health checks).
    #[arg(long, default_value = "autoheal")]
    pub policy: String,
    /// The state machine (default: the built-in statemachine/autoheal.asl.json).
    #[arg(long)]
    pub definition: Option<PathBuf>,
    /// Print the summary of DESIGN.md §6 as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also record the incidents, the scenario and each execution's input in this embedded
    /// store (for `autoheal incidents` and `autoheal replay --local`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Chaos: `throttle=0.2,task_crash=0.05,duplicate_triggers=1,vanish=0.02` (any subset):
    /// throttled AWS calls, Lambda crashes, duplicate starts, instances terminated mid-heal.
    #[arg(long)]
    pub chaos: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the figures as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where to write report.html.
    #[arg(long, default_value = ".autoheal/demo")]
    pub out: PathBuf,
    /// Only the built-in scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// No progress lines on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// The state machine: a file, or the built-in one.
fn definition(path: Option<&Path>) -> Result<StateMachine, CliError> {
    match path {
        Some(p) => load_definition(p, &crate::in_process_substitutions()),
        None => autoheal_handlers::definition()
            .map_err(|e| CliError(format!("the built-in state machine: {e}"))),
    }
}

fn policy_kind(s: &str) -> Result<PolicyKind, CliError> {
    PolicyKind::parse(s).ok_or_else(|| {
        CliError(format!(
            "--policy {s:?} is not a policy; use autoheal or asg-replace"
        ))
    })
}

/// `m:ss` from the scenario's start.
pub fn clock(s: u64) -> String {
    format!("{}:{:02}", s / 60, s % 60)
}

fn opt_clock(s: Option<u64>) -> String {
    s.map_or_else(|| "-".to_owned(), clock)
}

fn opt_secs(s: Option<f64>) -> String {
    s.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} s"))
}

/// The JSON summary of DESIGN.md §6 (fields only ever added).
pub fn simulation_json(sim: &Simulation) -> Value {
    json!({
        "scenario": sim.scenario,
        "policy": sim.policy,
        "incidents": sim.incidents,
        "summary": sim.summary,
        "executions": sim.executions,
    })
}

fn incidents_table(rows: &[IncidentOutcome], out: &mut String) {
    let _ = writeln!(
        out,
        "{:<10} {:<21} {:<18} {:>6} {:>8} {:<19} {:<28} {:<10} {:>7}",
        "group", "instance", "fault", "at", "detected", "diagnosis", "action", "outcome", "restore"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<10} {:<21} {:<18} {:>6} {:>8} {:<19} {:<28} {:<10} {:>7}",
            cut(&r.target_group, 10),
            cut(&r.instance, 21),
            cut(&r.fault, 18),
            opt_clock(r.fault_at_s),
            opt_clock(r.detected_at_s),
            cut(r.diagnosis.as_deref().unwrap_or("-"), 19),
            cut(&r.action, 28),
            cut(&r.outcome, 10),
            r.time_to_restore_s
                .map_or_else(|| "-".to_owned(), |v| format!("{v} s")),
        );
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn summary_lines(s: &Summary, out: &mut String) {
    let _ = writeln!(
        out,
        "time to restore: median {}, p95 {}; overhead above the load balancer's floor: {}",
        opt_secs(s.mttr_median_s),
        opt_secs(s.mttr_p95_s),
        opt_secs(s.overhead_median_s)
    );
    let _ = writeln!(
        out,
        "heals: {} restarts, {} reboots, {} replacements; {} during fleet-wide faults; {} blast-radius violations",
        s.restarts,
        s.reboots,
        s.replacements,
        s.heals_during_fleet_faults,
        s.blast_radius_violations
    );
    let _ = writeln!(
        out,
        "capacity lost: {} target·s; lowest serving share {:.0} %; executions {} ({} duplicate starts folded); diagnosis right {}/{}",
        s.capacity_lost_target_s,
        s.min_healthy_ratio * 100.0,
        s.executions,
        s.starts_deduplicated,
        s.diagnosed_right,
        s.diagnosed
    );
    if let Some(c) = &s.chaos {
        let _ = writeln!(
            out,
            "chaos: {} throttled attempts ({} calls failed after the SDK's retries), {} crashes before / {} after / {} timeouts after a task ran, {} duplicate starts, {} instances vanished",
            c.throttled_attempts,
            c.throttled_calls,
            c.crashes_before,
            c.crashes_after,
            c.timeouts_after,
            c.duplicate_starts,
            c.vanished
        );
    }
    let _ = writeln!(
        out,
        "safety: {} double heals, {} lost incidents, {} stuck leases, {} blast-radius violations",
        s.double_heals, s.lost_incidents, s.stuck_leases, s.blast_radius_violations
    );
}

pub fn simulate_cmd(a: &SimulateArgs) -> Result<Output, CliError> {
    let kind = policy_kind(&a.policy)?;
    let scenario = Scenario::load(&a.scenario).map_err(|e| CliError(e.to_string()))?;
    let sm = definition(a.definition.as_deref())?;
    let chaos = match &a.chaos {
        Some(spec) => autoheal_sim::chaos::Chaos::parse(spec).map_err(CliError)?,
        None => autoheal_sim::chaos::Chaos::default(),
    };
    let opts = SimOptions {
        keep_histories: false,
        chaos,
        ..SimOptions::default()
    };
    let sim = simulate(&scenario, &sm, kind, &opts).map_err(|e| CliError(e.to_string()))?;
    if let Some(path) = &a.store {
        write_store(path, &scenario, &sim)?;
    }
    if a.json {
        let text = serde_json::to_string_pretty(&simulation_json(&sim))
            .map_err(|e| CliError(format!("cannot print the summary: {e}")))?;
        return Ok(Output {
            stdout: text + "\n",
            code: 0,
        });
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} under {}: {} targets in {} groups, {} s simulated",
        sim.scenario,
        sim.policy.as_str(),
        scenario.targets(),
        sim.groups.len(),
        sim.ended_at_s
    );
    incidents_table(&sim.incidents, &mut out);
    summary_lines(&sim.summary, &mut out);
    Ok(Output {
        stdout: out,
        code: 0,
    })
}

/// Both policies over one scenario.
pub struct Run {
    pub scenario: Scenario,
    pub autoheal: Simulation,
    pub baseline: Simulation,
    pub wall_s: f64,
}

fn progress(quiet: bool, line: &str) {
    if !quiet {
        let mut e = std::io::stderr();
        let _ = writeln!(e, "{line}");
    }
}

fn bar(done: usize, total: usize) -> String {
    let width = 20;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {done:>2}/{total}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    )
}

/// Runs the built-in set (or the named part of it) under both policies.
pub fn run_builtin(only: Option<&str>, quiet: bool) -> Result<Vec<Run>, CliError> {
    let sm = definition(None)?;
    let scenarios: Vec<Scenario> = Scenario::builtin()
        .map_err(|e| CliError(e.to_string()))?
        .into_iter()
        .filter(|s| only.is_none_or(|o| s.name.contains(o)))
        .collect();
    if scenarios.is_empty() {
        return Err(CliError(format!(
            "--only {:?} matches no built-in scenario (docs/examples/)",
            only.unwrap_or_default()
        )));
    }
    let opts = SimOptions::default();
    let total = scenarios.len();
    let mut runs = Vec::new();
    for (i, scenario) in scenarios.into_iter().enumerate() {
        let started = Instant::now();
        progress(
            quiet,
            &format!(
                "{} {} ({} targets)",
                bar(i, total),
                scenario.name,
                scenario.targets()
            ),
        );
        let autoheal = simulate(&scenario, &sm, PolicyKind::Autoheal, &opts)
            .map_err(|e| CliError(e.to_string()))?;
        let baseline = simulate(&scenario, &sm, PolicyKind::AsgReplace, &opts)
            .map_err(|e| CliError(e.to_string()))?;
        runs.push(Run {
            scenario,
            autoheal,
            baseline,
            wall_s: started.elapsed().as_secs_f64(),
        });
    }
    progress(quiet, &bar(total, total));
    Ok(runs)
}

/// One row per scenario fault: the last incident autoheal opened for it (what it concluded and
/// did in the end), or the fault's own row when nothing acted.
fn fault_rows(sim: &Simulation) -> Vec<&IncidentOutcome> {
    let mut last: std::collections::BTreeMap<(Option<u64>, &str, &str), &IncidentOutcome> =
        Default::default();
    for r in sim
        .incidents
        .iter()
        .filter(|r| r.fault != "none" && r.fault_at_s.is_some())
    {
        let key = (r.fault_at_s, r.target_group.as_str(), r.instance.as_str());
        // An incident that found nothing to do does not overrule one that acted.
        if r.action != "none" || !last.contains_key(&key) {
            last.insert(key, r);
        }
    }
    last.into_values().collect()
}

fn joined(rows: &[&IncidentOutcome], f: impl Fn(&IncidentOutcome) -> String) -> String {
    let mut v: Vec<String> = rows.iter().map(|r| f(r)).collect();
    v.dedup();
    v.join(",")
}

/// The demo's table: one line per scenario.
pub fn demo_table(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<24} {:<20} {:<24} {:>9} {:>9} {:>6} {:>6}",
        "scenario", "faults", "diagnosis", "action", "restore", "asg-repl.", "repl.", "held"
    );
    let _ = writeln!(
        out,
        "{:<20} {:<24} {:<20} {:<24} {:>9} {:>9} {:>6} {:>6}",
        "", "", "", "", "autoheal", "", "ah/asg", "back"
    );
    for r in runs {
        let rows = fault_rows(&r.autoheal);
        let faults = joined(&rows, |x| x.fault.clone());
        let diagnosis = joined(&rows, |x| {
            x.class
                .clone()
                .or_else(|| x.diagnosis.clone())
                .unwrap_or_else(|| "-".into())
        });
        let action = joined(&rows, |x| x.action.clone());
        let a = &r.autoheal.summary;
        let b = &r.baseline.summary;
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<20} {:<24} {:>9} {:>9} {:>6} {:>6}",
            cut(&r.scenario.name, 20),
            cut(&faults, 24),
            cut(&diagnosis, 20),
            cut(&action, 24),
            opt_secs(a.mttr_median_s),
            opt_secs(b.mttr_median_s),
            format!("{}/{}", a.replacements, b.replacements),
            a.held_back,
        );
    }
    out
}

/// The figures the issue asks for, over the whole set.
pub fn figures(runs: &[Run]) -> Value {
    let mut service_overheads = Vec::new();
    let mut ratios = Vec::new();
    let mut service_replacements = 0;
    let mut right = 0;
    let mut diagnosed = 0;
    let mut violations = 0;
    let mut fleet_heals = (0, 0);
    let mut max_transitions = 0;
    let mut confusion: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>> =
        Default::default();
    for r in runs {
        let a = &r.autoheal.summary;
        let b = &r.baseline.summary;
        right += a.diagnosed_right;
        diagnosed += a.diagnosed;
        violations += a.blast_radius_violations;
        fleet_heals.0 += a.heals_during_fleet_faults;
        fleet_heals.1 += b.heals_during_fleet_faults;
        max_transitions = max_transitions.max(a.state_transitions);
        let service_only = r.scenario.faults.iter().all(|f| f.kind.is_service_level());
        if service_only {
            service_replacements += a.replacements;
            if let Some(o) = a.overhead_median_s {
                service_overheads.push(o);
            }
            if let (Some(x), Some(y)) = (a.mttr_median_s, b.mttr_median_s)
                && y > 0.0
            {
                ratios.push(x / y);
            }
        }
        for row in fault_rows(&r.autoheal) {
            *confusion
                .entry(row.fault.clone())
                .or_default()
                .entry(
                    row.class
                        .clone()
                        .or_else(|| row.diagnosis.clone())
                        .unwrap_or_else(|| "-".into()),
                )
                .or_default() += 1;
        }
    }
    let med = |mut v: Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    json!({
        "service_fault_overhead_median_s": med(service_overheads),
        "service_fault_mttr_ratio_median": med(ratios).map(|x| (x * 1000.0).round() / 1000.0),
        "service_fault_replacements": service_replacements,
        "heals_during_fleet_faults": {"autoheal": fleet_heals.0, "asg_replace": fleet_heals.1},
        "blast_radius_violations": violations,
        "diagnosis_right": right,
        "diagnosed": diagnosed,
        "confusion": confusion,
        "max_state_transitions_per_restart": max_transitions,
    })
}

pub fn demo_cmd(a: &DemoArgs) -> Result<Output, CliError> {
    let started = Instant::now();
    let runs = run_builtin(a.only.as_deref(), a.quiet)?;
    let sm = definition(None)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| CliError(format!("{}: cannot create: {e}", a.out.display())))?;
    let report = a.out.join("report.html");
    let pairs: Vec<crate::report::Pair<'_>> = runs
        .iter()
        .map(|r| crate::report::Pair {
            scenario: &r.scenario,
            autoheal: &r.autoheal,
            baseline: &r.baseline,
        })
        .collect();
    let html = crate::report::render(&pairs, &sm, "autoheal demo");
    std::fs::write(&report, html)
        .map_err(|e| CliError(format!("{}: cannot write: {e}", report.display())))?;
    let store_path = a.out.join("incidents");
    let stored = store_incidents(&store_path, &runs)?;
    let wall = started.elapsed().as_secs_f64();
    if a.json {
        let v = json!({
            "scenarios": runs.iter().map(|r| json!({
                "scenario": r.scenario.name,
                "autoheal": simulation_json(&r.autoheal),
                "asg_replace": simulation_json(&r.baseline),
            })).collect::<Vec<_>>(),
            "figures": figures(&runs),
            "report": report.display().to_string(),
            "store": store_path.display().to_string(),
            "wall_s": (wall * 100.0).round() / 100.0,
        });
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| CliError(format!("cannot print the figures: {e}")))?;
        return Ok(Output {
            stdout: text + "\n",
            code: 0,
        });
    }
    let mut out = demo_table(&runs);
    let f = figures(&runs);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "service-level faults: overhead above the load balancer's floor {} (median), time to restore {}× asg-replace, {} replacements",
        f["service_fault_overhead_median_s"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0} s")),
        f["service_fault_mttr_ratio_median"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
        f["service_fault_replacements"]
    );
    let _ = writeln!(
        out,
        "heals during fleet-wide faults: autoheal {}, asg-replace {}; blast-radius violations {}; diagnosis right {}/{}; at most {} state transitions per restart",
        f["heals_during_fleet_faults"]["autoheal"],
        f["heals_during_fleet_faults"]["asg_replace"],
        f["blast_radius_violations"],
        f["diagnosis_right"],
        f["diagnosed"],
        f["max_state_transitions_per_restart"]
    );
    // Heals that waited for a person, and how the (simulated) operator answered.
    for r in &runs {
        for i in &r.autoheal.incidents {
            if let Some(answer) = i.reason.as_deref().and_then(|x| {
                x.find("; approved")
                    .or_else(|| x.find("; not approved"))
                    .map(|at| &x[at + 2..])
            }) {
                let _ = writeln!(
                    out,
                    "approval: {} {} on {} waited for a person: {answer} (outcome {})",
                    r.scenario.name, i.action, i.instance, i.outcome
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "report: {}   incidents: {} ({stored} stored)   {:.1} s",
        report.display(),
        store_path.display(),
        wall
    );
    Ok(Output {
        stdout: out,
        code: 0,
    })
}

/// Writes each scenario's autoheal incidents to its own embedded store,
/// `DIR/incidents/<scenario>.redb` (replacing what an earlier demo left there).
fn store_incidents(dir: &Path, runs: &[Run]) -> Result<usize, CliError> {
    let mut n = 0;
    for r in runs {
        let path = dir.join(format!("{}.redb", r.scenario.name));
        write_store(&path, &r.scenario, &r.autoheal)?;
        n += r.autoheal.records.len();
    }
    Ok(n)
}

/// Replaces the store at `path` with a run's incidents, its scenario and each execution's
/// start and input.
fn write_store(path: &Path, scenario: &Scenario, sim: &Simulation) -> Result<(), CliError> {
    let err = |e: autoheal_core::PortError| CliError(e.to_string());
    let store = autoheal_sim::DiskStore::open(path).map_err(err)?;
    store.clear().map_err(err)?;
    store.put_all(&sim.records).map_err(err)?;
    let scenario = serde_json::to_value(scenario)
        .map_err(|e| CliError(format!("cannot record the scenario: {e}")))?;
    let executions: Vec<(String, u64, serde_json::Value)> = sim
        .executions
        .iter()
        .map(|x| (x.name.clone(), x.started_at_s, x.input.clone()))
        .collect();
    store.put_run(&scenario, &executions).map_err(err)
}
