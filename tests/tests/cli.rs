//! The `autoheal` command as a person runs it: the text it prints and its exit codes.

use autoheal::{Cli, Output, run};
use autoheal_tests::repo_root;
use clap::Parser;

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("autoheal-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn autoheal(args: &[&str]) -> Output {
    let root = repo_root();
    let args: Vec<String> = std::iter::once("autoheal".to_owned())
        .chain(args.iter().map(|a| {
            if a.starts_with("statemachine/") {
                root.join(a).display().to_string()
            } else {
                (*a).to_owned()
            }
        }))
        .collect();
    run(Cli::try_parse_from(args).expect("valid command line")).expect("runs")
}

const RUN: &[&str] = &[
    "asl",
    "run",
    "--definition",
    "statemachine/autoheal.asl.json",
    "--input",
    "statemachine/mocks/input.json",
    "--mock-config",
    "statemachine/mocks/autoheal.mock.json",
    "--test-case",
];

#[test]
fn validate_accepts_the_shipped_state_machine_and_rules() {
    let out = autoheal(&["validate", "--definition", "statemachine/autoheal.asl.json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("ok       ") && out.stdout.contains("(13 rules)"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_names_the_state_and_field_of_every_problem() {
    let dir = scratch("cli");
    let bad = dir.join("bad.asl.json");
    std::fs::write(&bad, r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"r","Next":"Gone"},"B":{"Type":"Succeed"}}}"#).expect("write");
    let out = autoheal(&["validate", "--definition", bad.to_str().expect("utf8")]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("at States.A.Next: \"Gone\" is not a state"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("at States.B: state \"B\" is unreachable"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("fix: "), "{}", out.stdout);
}

#[test]
fn asl_run_prints_the_status_the_retries_and_the_history() {
    let out = autoheal(&[RUN, &["RetriedThrottle"]].concat());
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("status     SUCCEEDED after 5m11s (virtual time)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2 task failures"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("TaskFailed               Throttled: ssm: Rate exceeded"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("TaskScheduled            autoheal-Diagnose"),
        "{}",
        out.stdout
    );
}

#[test]
fn asl_run_json_is_the_execution_with_step_functions_event_types() {
    let out = autoheal(&[RUN, &["CaughtHealFailure", "--json"]].concat());
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["status"], "SUCCEEDED");
    let failed: Vec<&serde_json::Value> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["taskFailedEventDetails"]["error"], "HealFailed");
}

#[test]
fn an_unknown_test_case_is_a_usage_error_naming_the_cases() {
    let root = repo_root();
    let args = [
        "autoheal",
        "asl",
        "run",
        "--definition",
        &root
            .join("statemachine/autoheal.asl.json")
            .display()
            .to_string(),
        "--mock-config",
        &root
            .join("statemachine/mocks/autoheal.mock.json")
            .display()
            .to_string(),
        "--test-case",
        "Nope",
    ];
    let err = run(Cli::try_parse_from(args).expect("parses")).expect_err("unknown case");
    assert!(err.0.contains("HappyPath"), "{}", err.0);
}

#[test]
fn the_graph_of_an_execution_colours_the_path_taken() {
    let dir = scratch("graph");
    let hist = dir.join("history.json");
    let out = autoheal(&[RUN, &["Escalation", "--json"]].concat());
    std::fs::write(&hist, &out.stdout).expect("write");
    let mermaid = autoheal(&[
        "graph",
        "--definition",
        "statemachine/autoheal.asl.json",
        "--history",
        hist.to_str().expect("utf8"),
        "--format",
        "mermaid",
    ]);
    assert!(mermaid.stdout.contains("flowchart TD"));
    assert!(
        mermaid.stdout.contains("classDef succeeded"),
        "{}",
        mermaid.stdout
    );
    let html = autoheal(&[
        "graph",
        "--definition",
        "statemachine/autoheal.asl.json",
        "--history",
        hist.to_str().expect("utf8"),
        "--format",
        "html",
    ]);
    assert!(
        html.stdout.contains("<svg") && !html.stdout.contains("src=\"http"),
        "self-contained"
    );
    let dot = autoheal(&[
        "graph",
        "--definition",
        "statemachine/autoheal.asl.json",
        "--format",
        "dot",
    ]);
    assert!(
        dot.stdout.starts_with("digraph") && dot.stdout.contains("cluster_"),
        "{}",
        &dot.stdout[..200.min(dot.stdout.len())]
    );
}

#[test]
fn real_time_runs_take_the_time_their_waits_say_and_virtual_runs_do_not() {
    let dir = scratch("rt");
    let def = dir.join("wait.asl.json");
    std::fs::write(
        &def,
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"End":true}}}"#,
    )
    .expect("write");
    let def = def.to_str().expect("utf8");
    let t = std::time::Instant::now();
    let out = autoheal(&["asl", "run", "--definition", def, "--real-time"]);
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert!(out.stdout.contains("(real time)"), "{}", out.stdout);
    let t = std::time::Instant::now();
    let out = autoheal(&["asl", "run", "--definition", def]);
    assert!(t.elapsed() < std::time::Duration::from_millis(900));
    assert!(
        out.stdout.contains("SUCCEEDED after 1.0s (virtual time)"),
        "{}",
        out.stdout
    );
}

#[test]
fn diagnose_classifies_a_hosts_output_and_shows_the_evidence() {
    let doc = repo_root().join("tests/fixtures/diagnostics/disk_full.json");
    let out = autoheal(&[
        "diagnose",
        "--diagnostics",
        doc.to_str().expect("utf8"),
        "--elb-reason",
        "Target.FailedHealthChecks",
    ]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with("class       DiskFull\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("evidence    diag.disk_used_max_percent gte 97 (actual: 100)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("runner-up   Application"),
        "{}",
        out.stdout
    );
}

#[test]
fn diagnose_without_output_from_an_unreachable_agent_is_an_agent_failure() {
    let out = autoheal(&[
        "diagnose",
        "--ssm-command",
        "undeliverable",
        "--agent",
        "connection_lost",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["class"], "AgentFailure");
    assert_eq!(v["rule_id"], "agent.unreachable-host-ok");
}

#[test]
fn diagnose_reports_rejected_output_and_stays_unknown() {
    let dir = scratch("diag");
    let bad = dir.join("out.txt");
    std::fs::write(&bad, "{\"schema_version\": 1, \"uptime_s\": -4}").expect("write");
    let out = autoheal(&[
        "diagnose",
        "--diagnostics",
        bad.to_str().expect("utf8"),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["class"], "Unknown");
    assert!(
        v["diagnostics_error"]
            .as_str()
            .is_some_and(|e| e.contains("uptime_s")),
        "{v}"
    );
}

#[test]
fn diagnose_rejects_an_unknown_status_naming_the_flag() {
    let err = run(
        Cli::try_parse_from(["autoheal", "diagnose", "--instance-status", "broken"])
            .expect("parses"),
    )
    .expect_err("bad value");
    assert!(
        err.0.contains("--instance-status") && err.0.contains("impaired"),
        "{}",
        err.0
    );
}

#[test]
fn validate_checks_scenario_files_and_names_the_bad_field() {
    let good = repo_root().join("docs/examples/mixed.json");
    let out = autoheal(&[
        "validate",
        "--definition",
        "statemachine/autoheal.asl.json",
        "--scenario",
        good.to_str().expect("utf8"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("mixed.json (8 faults, 4 target groups, 25 targets)"),
        "{}",
        out.stdout
    );
    let dir = scratch("scenario");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"name":"x","duration_s":3600,"fleet":{"target_groups":[{"name":"web","lb":"alb","protocol":"HTTP","asg":"a","instances":6}]},"faults":[{"at_s":120,"target_group":"web","instance":9,"kind":"app_crash"}]}"#).expect("write");
    let out = autoheal(&[
        "validate",
        "--definition",
        "statemachine/autoheal.asl.json",
        "--scenario",
        bad.to_str().expect("utf8"),
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("at faults[0].instance: instance 9 is out of range")
            && out.stdout.contains("fix: use an index from 0 to 5"),
        "{}",
        out.stdout
    );
}

fn autoheal_err(args: &[&str]) -> String {
    let args: Vec<String> = std::iter::once("autoheal")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    match run(Cli::try_parse_from(args).expect("valid command line")) {
        Ok(o) => panic!("expected an error, got {}", o.stdout),
        Err(e) => e.to_string(),
    }
}

#[test]
fn simulate_prints_the_json_summary_of_the_design_for_both_policies() {
    let f = repo_root().join("docs/examples/web-app-crash.json");
    let f = f.to_str().expect("utf8");
    for (policy, action) in [("autoheal", "restart_service"), ("asg-replace", "replace")] {
        let out = autoheal(&["simulate", "--scenario", f, "--policy", policy, "--json"]);
        assert_eq!(out.code, 0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(v["scenario"], "web-app-crash");
        assert_eq!(v["policy"], policy);
        let inc = &v["incidents"][0];
        for k in [
            "target_group",
            "instance",
            "fault",
            "detected_at_s",
            "action",
            "restored_at_s",
            "outcome",
        ] {
            assert!(!inc[k].is_null(), "{policy}: incidents[0].{k} in {inc}");
        }
        assert_eq!(inc["fault"], "app_crash");
        assert_eq!(inc["action"], action);
        for k in [
            "mttr_median_s",
            "mttr_p95_s",
            "replacements",
            "restarts",
            "reboots",
            "heals_during_fleet_faults",
            "capacity_lost_target_s",
            "min_healthy_ratio",
            "blast_radius_violations",
            "state_transitions",
        ] {
            assert!(v["summary"].get(k).is_some(), "summary.{k}");
        }
    }
    let text = autoheal(&["simulate", "--scenario", f]);
    assert!(text.stdout.contains("restart_service"), "{}", text.stdout);
    assert!(
        text.stdout.contains("time to restore: median 210 s"),
        "{}",
        text.stdout
    );
}

#[test]
fn simulate_rejects_bad_scenarios_and_policies_with_the_fix() {
    let dir = scratch("simulate-bad");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "x", "duration_s": 600, "fleet": {"target_groups": [{"name": "web", "lb": "alb", "protocol": "HTTP", "asg": "web-asg", "instances": 2}]},
            "faults": [{"at_s": 10, "target_group": "web", "instance": 5, "kind": "app_crash"}]}"#,
    )
    .expect("write");
    let err = autoheal_err(&["simulate", "--scenario", bad.to_str().expect("utf8")]);
    assert!(
        err.contains("bad.json") && err.contains("faults[0].instance"),
        "{err}"
    );
    let f = repo_root().join("docs/examples/web-app-crash.json");
    let err = autoheal_err(&[
        "simulate",
        "--scenario",
        f.to_str().expect("utf8"),
        "--policy",
        "yolo",
    ]);
    assert!(err.contains("autoheal or asg-replace"), "{err}");
}

#[test]
fn demo_prints_the_table_writes_the_report_and_stores_the_incidents() {
    let dir = scratch("demo");
    let out = autoheal(&[
        "demo",
        "--only",
        "disk-",
        "--quiet",
        "--out",
        dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("disk-full") && out.stdout.contains("disk-corruption"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("cleanup") && out.stdout.contains("DiskCorruption"),
        "{}",
        out.stdout
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report");
    assert!(
        html.contains("<svg") && html.contains("asg-replace") && html.contains("id=\"disk-full\"")
    );
    let incidents = autoheal_sim::DiskStore::open(&dir.join("incidents/disk-full.redb"))
        .expect("store")
        .incidents()
        .expect("incidents");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].status, autoheal_core::IncidentStatus::Healed);
    let json = autoheal(&[
        "demo",
        "--only",
        "disk-full",
        "--quiet",
        "--json",
        "--out",
        dir.to_str().expect("utf8"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["figures"]["service_fault_replacements"], 0);
    assert_eq!(
        v["scenarios"][0]["asg_replace"]["summary"]["replacements"],
        1
    );
    let err = autoheal_err(&["demo", "--only", "no-such-scenario"]);
    assert!(
        err.contains("no-such-scenario") && err.contains("docs/examples"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
