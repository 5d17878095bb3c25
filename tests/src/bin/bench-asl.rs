//! `make bench`, state-machine section: executions per second of `statemachine/autoheal.asl.json`
//! on the local runner with mocked tasks (the HappyPath and Escalation test cases of
//! `statemachine/mocks/autoheal.mock.json`). Goal: ≥ 2,000 executions/s on this machine.
//! Writes `"asl"` into `bench/results.json` (other sections are kept) and prints a table.

use std::time::Instant;

use autoheal_asl::{MockConfig, RunOptions, Runner, Status};
use autoheal_tests::{autoheal_definition, repo_root};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map_or_else(
        || repo_root().join("bench/results.json"),
        std::path::PathBuf::from,
    );
    let sm = autoheal_definition();
    let config = MockConfig::parse(&std::fs::read_to_string(
        repo_root().join("statemachine/mocks/autoheal.mock.json"),
    )?)?;
    let input: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("statemachine/mocks/input.json"),
    )?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let mut rows = Vec::new();
    let mut section = serde_json::Map::new();
    for case in ["HappyPath", "Escalation"] {
        let run_n = |n: usize| -> Result<(f64, usize), Box<dyn std::error::Error>> {
            let t = Instant::now();
            let mut events = 0;
            for i in 0..n {
                let resources = config.test_case(Some("autoheal"), case)?;
                let opts = RunOptions {
                    execution_name: format!("bench-{i}"),
                    ..RunOptions::default()
                };
                let e = rt.block_on(Runner::new(&sm, &resources, opts).run(input.clone()));
                if e.status != Status::Succeeded {
                    return Err(format!("{case} ended {:?}: {:?}", e.status, e.cause).into());
                }
                events = e.events.len();
            }
            Ok((t.elapsed().as_secs_f64(), events))
        };
        run_n(200)?; // warm-up
        let n = 5000;
        let (secs, events) = run_n(n)?;
        let per_s = n as f64 / secs;
        rows.push((case, per_s, events));
        section.insert(
            format!("{}_executions_per_s", case.to_lowercase()),
            serde_json::json!(per_s.round()),
        );
        section.insert(
            format!("{}_history_events", case.to_lowercase()),
            serde_json::json!(events),
        );
    }
    section.insert("goal_executions_per_s".into(), serde_json::json!(2000));
    println!(
        "\n{:<66} {:>12}",
        "state machine (autoheal.asl.json, mocked tasks, one core)", "exec/s"
    );
    for (case, per_s, events) in &rows {
        println!(
            "{:<66} {:>12.0}",
            format!("{case} ({events} history events)"),
            per_s
        );
    }
    let mut all: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.insert("asl".into(), serde_json::Value::Object(section));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::Value::Object(all))? + "\n",
    )?;
    println!("written to {}", out.display());
    Ok(())
}
