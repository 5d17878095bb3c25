//! Operating autoheal locally (docs/operations.md): approvals answered, denied or left to time
//! out in the local runner; replay of a failed incident that fails again, then heals once the
//! cause is cleared; `invoke`; and the AWS commands of a build without AWS support.

use autoheal::{Cli, Output, run};
use autoheal_core::IncidentStatus;
use autoheal_sim::scenario::{Operator, OperatorAnswer};
use autoheal_sim::{PolicyKind, Scenario, SimOptions, simulate};
use autoheal_tests::repo_root;
use clap::Parser;

fn autoheal(args: &[&str]) -> Result<Output, String> {
    let args: Vec<String> = std::iter::once("autoheal")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    run(Cli::try_parse_from(args).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("autoheal-op-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn approval_scenario(op: Option<Operator>) -> Scenario {
    let mut s =
        Scenario::load(&repo_root().join("docs/examples/approval-replace.json")).expect("scenario");
    s.operator = op;
    s
}

/// The one incident of the approval scenario, and what its approval step says.
fn approval_outcome(op: Option<Operator>) -> (IncidentStatus, String, u32) {
    let sm = autoheal_handlers::definition().expect("state machine");
    let sim = simulate(
        &approval_scenario(op),
        &sm,
        PolicyKind::Autoheal,
        &SimOptions::default(),
    )
    .expect("runs");
    let r = sim
        .records
        .iter()
        .find(|r| r.decision.as_ref().is_some_and(|d| d.requires_approval))
        .expect("an approval-gated incident");
    let step = r
        .steps
        .iter()
        .find(|s| s.name == "approval")
        .map(|s| s.detail.clone())
        .unwrap_or_default();
    (r.status, step, sim.summary.replacements)
}

#[test]
fn an_approved_replacement_goes_ahead_after_the_operator_answers() {
    let (status, step, replacements) = approval_outcome(Some(Operator {
        answer: OperatorAnswer::Approve,
        after_s: 300,
        reason: String::new(),
    }));
    assert_eq!(status, IncidentStatus::Healed);
    assert_eq!(step, "approved by operator");
    assert_eq!(replacements, 1);
}

#[test]
fn a_denied_replacement_is_held_with_the_reason_and_nothing_is_replaced() {
    let (status, step, replacements) = approval_outcome(Some(Operator {
        answer: OperatorAnswer::Deny,
        after_s: 60,
        reason: "the host is being investigated".to_owned(),
    }));
    assert_eq!(status, IncidentStatus::Held);
    assert_eq!(step, "not approved: the host is being investigated");
    assert_eq!(replacements, 0);
}

#[test]
fn an_unanswered_request_times_out_to_the_policy_default_hold() {
    let (status, step, replacements) = approval_outcome(None);
    assert_eq!(status, IncidentStatus::Held);
    assert!(
        step.contains("no answer before the approval timeout"),
        "{step}"
    );
    assert_eq!(replacements, 0);
}

#[test]
fn the_approval_notification_carries_the_token_the_incident_and_the_commands() {
    let sm = autoheal_handlers::definition().expect("state machine");
    let s = approval_scenario(Some(Operator {
        answer: OperatorAnswer::Approve,
        after_s: 300,
        reason: String::new(),
    }));
    let sim = simulate(&s, &sm, PolicyKind::Autoheal, &SimOptions::default()).expect("runs");
    let request = sim
        .notifications
        .iter()
        .find(|n| n.approval_token.is_some())
        .expect("an approval request was sent");
    let token = request.approval_token.clone().expect("token");
    assert!(
        request
            .subject
            .starts_with("autoheal: approve replace in web"),
        "{}",
        request.subject
    );
    let incident = request.incidents.first().expect("the incident waiting");
    assert_eq!(incident.status, IncidentStatus::Open);
    assert_eq!(
        incident.diagnosis.as_ref().map(|d| d.class.as_str()),
        Some("Hardware")
    );
    let summary = autoheal_handlers::summary::Summary::from_notification(request);
    let slack = autoheal_handlers::summary::slack_payload(&summary).to_string();
    assert!(
        slack.contains(&format!("autoheal approve --token {token}")),
        "{slack}"
    );
    assert!(slack.contains("autoheal deny --token"), "{slack}");
    // The healed incident's summary follows at the end of the execution.
    assert!(sim.notifications.iter().any(|n| {
        n.incidents
            .iter()
            .any(|i| i.status == IncidentStatus::Healed)
    }));
}

#[test]
fn a_failed_incident_replays_to_failure_then_heals_once_the_outage_is_cleared() {
    let dir = scratch("replay");
    let store = dir.join("asg-api-outage.redb");
    let store_s = store.to_str().expect("utf8");
    let scenario = repo_root().join("docs/examples/asg-api-outage.json");
    let out = autoheal(&[
        "simulate",
        "--scenario",
        scenario.to_str().expect("utf8"),
        "--store",
        store_s,
    ])
    .expect("runs");
    assert_eq!(out.code, 0, "{}", out.stdout);
    let records = autoheal_sim::DiskStore::open(&store)
        .expect("store")
        .incidents()
        .expect("incidents");
    let failed = records
        .iter()
        .find(|r| r.status == IncidentStatus::Failed)
        .expect("the outage fails the first replacement");
    assert!(
        failed
            .failure
            .as_deref()
            .is_some_and(|f| f.starts_with("AwsServiceError")),
        "{:?}",
        failed.failure
    );
    let id = failed.incident.id.as_str();
    let graph = dir.join("replay.html");
    let graph_s = graph.to_str().expect("utf8");

    let again = autoheal(&[
        "replay",
        "--incident",
        id,
        "--local",
        "--store",
        store_s,
        "--graph",
        graph_s,
    ])
    .expect("runs");
    assert_eq!(again.code, 1, "{}", again.stdout);
    assert!(
        again.stdout.contains("replayed    failed: AwsServiceError"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("Record failure"), "{}", again.stdout);
    let html = std::fs::read_to_string(&graph).expect("graph written");
    assert!(html.contains("<svg") && html.contains("Replace via Auto Scaling"));

    let cleared = autoheal(&[
        "replay",
        "--incident",
        id,
        "--local",
        "--store",
        store_s,
        "--clear-outages",
        "--json",
    ])
    .expect("runs");
    assert_eq!(cleared.code, 0, "{}", cleared.stdout);
    let v: serde_json::Value = serde_json::from_str(&cleared.stdout).expect("json");
    assert_eq!(v["outages_cleared"], 1);
    assert_eq!(v["original"]["status"], "failed");
    assert_eq!(v["replay"]["incident"]["status"], "healed");
    let steps: Vec<&str> = v["replay"]["incident"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(steps, ["diagnose", "decide", "replace", "verify", "record"]);
}

#[test]
fn replay_names_unknown_incidents_and_missing_stores() {
    let dir = scratch("replay-bad");
    let missing = dir.join("nope.redb");
    let e = autoheal(&[
        "replay",
        "--incident",
        "x",
        "--local",
        "--store",
        missing.to_str().expect("utf8"),
    ])
    .expect_err("no store");
    assert!(e.contains("no such store"), "{e}");
    let store = dir.join("s.redb");
    let out = autoheal(&[
        "simulate",
        "--scenario",
        repo_root()
            .join("docs/examples/web-app-crash.json")
            .to_str()
            .expect("utf8"),
        "--store",
        store.to_str().expect("utf8"),
    ])
    .expect("runs");
    assert_eq!(out.code, 0);
    let e = autoheal(&[
        "replay",
        "--incident",
        "web-i-0ffffffffffffffff-1",
        "--local",
        "--store",
        store.to_str().expect("utf8"),
    ])
    .expect_err("unknown id");
    assert!(
        e.contains("no incident") && e.contains("autoheal incidents list --store"),
        "{e}"
    );
}

#[test]
fn invoke_runs_one_handler_against_the_simulated_fleet() {
    let dir = scratch("invoke");
    let event = dir.join("detect.json");
    let web = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/";
    // The web group's ARN as the simulated region names it.
    let tg = autoheal_sim::Region::new(
        &Scenario::builtin()
            .expect("builtin")
            .into_iter()
            .find(|s| s.name == "web-app-crash")
            .expect("web-app-crash"),
    )
    .expect("region")
    .target_group_arns()
    .into_iter()
    .next()
    .expect("a group");
    assert!(tg.as_str().starts_with(web));
    std::fs::write(
        &event,
        serde_json::json!({"scope": {"target_group_arn": tg}}).to_string(),
    )
    .expect("write");
    let ev = event.to_str().expect("utf8");
    let before = autoheal(&["invoke", "detect", "--event", ev]).expect("runs");
    assert_eq!(before.code, 0, "{}", before.stdout);
    let v: serde_json::Value = serde_json::from_str(&before.stdout).expect("json");
    assert_eq!(v["candidates"].as_array().map(Vec::len), Some(0));
    // Past the crash (120 s) and two failed health checks: one candidate.
    let after = autoheal(&["invoke", "detect", "--event", ev, "--at-s", "300"]).expect("runs");
    let v: serde_json::Value = serde_json::from_str(&after.stdout).expect("json");
    assert_eq!(v["candidates"].as_array().map(Vec::len), Some(1), "{v}");

    // A handler's error is the stable name, exit 1; bad usage exits 2 with the fix.
    std::fs::write(&event, "{}").expect("write");
    let bad = autoheal(&["invoke", "detect", "--event", ev]).expect("runs");
    assert_eq!(bad.code, 1);
    assert!(
        bad.stdout.contains("\"errorType\": \"InvalidInput\""),
        "{}",
        bad.stdout
    );
    let e = autoheal(&["invoke", "fix_everything", "--event", ev]).expect_err("unknown task");
    assert!(e.contains("is not a task; use one of detect"), "{e}");
    let e = autoheal(&["invoke", "detect", "--event", ev, "--scenario", "atlantis"])
        .expect_err("unknown scenario");
    assert!(e.contains("neither a file nor a built-in scenario"), "{e}");
}

#[test]
fn aws_commands_check_their_input_then_say_how_to_get_an_aws_build() {
    for (args, says) in [
        (
            vec!["approve", "--token", ""],
            "--token is not a task token",
        ),
        (
            vec!["approve", "--token", "has space"],
            "--token is not a task token",
        ),
        (
            vec!["deny", "--token", "AAAA", "--reason", " "],
            "--reason is empty",
        ),
        (
            vec!["replay", "--execution-arn", "arn:x", "--mode", "rerun"],
            "use auto, redrive or restart",
        ),
        (vec!["worker", "--activity", "detect"], "expected TASK=ARN"),
        (vec!["start", "--target-group", "web"], "--target-group"),
        (vec!["approve", "--token", "AAAAtoken"], "make build-cli"),
        (
            vec!["deny", "--token", "AAAAtoken", "--reason", "not now"],
            "make build-cli",
        ),
        (
            vec![
                "worker",
                "--activity",
                "detect=arn:aws:states:us-east-1:123456789012:activity:autoheal-detect",
            ],
            "make build-cli",
        ),
        (
            vec!["incidents", "list", "--table", "autoheal-incidents"],
            "make build-cli",
        ),
        (
            vec![
                "incidents",
                "list",
                "--since",
                "yesterday",
                "--store",
                "x.redb",
            ],
            "--since",
        ),
    ] {
        let e = autoheal(&args).expect_err(&args.join(" "));
        assert!(e.contains(says), "{args:?}: {e}");
    }
}
