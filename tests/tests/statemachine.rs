//! `statemachine/autoheal.asl.json`, checked statically and run on the local runner with the
//! Step Functions Local mock config `statemachine/mocks/autoheal.mock.json`.

use autoheal_asl::definition::{Kind, State, StateMachine};
use autoheal_asl::validate::{custom_error_names, validate};
use autoheal_asl::{Execution, MockConfig, RunOptions, Status, run_virtual};
use autoheal_tests::{autoheal_definition, repo_root};
use serde_json::{Value, json};

fn all_states(sm: &StateMachine) -> Vec<&State> {
    let mut out = Vec::new();
    for s in &sm.states {
        out.push(s);
        match &s.kind {
            Kind::Map(m) => out.extend(all_states(&m.processor)),
            Kind::Parallel(p) => p.branches.iter().for_each(|b| out.extend(all_states(b))),
            _ => {}
        }
    }
    out
}

fn mock_config() -> MockConfig {
    let text = std::fs::read_to_string(repo_root().join("statemachine/mocks/autoheal.mock.json"))
        .expect("mock config");
    MockConfig::parse(&text).expect("valid mock config")
}

fn input() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("statemachine/mocks/input.json")).expect("input"),
    )
    .expect("json")
}

fn run_case(case: &str) -> Execution {
    let sm = autoheal_definition();
    let resources = mock_config()
        .test_case(Some("autoheal"), case)
        .expect("test case");
    let opts = RunOptions {
        execution_name: case.to_owned(),
        state_machine_name: "autoheal".into(),
        ..RunOptions::default()
    };
    run_virtual(&sm, &resources, input(), opts).expect("runtime")
}

fn entered(e: &Execution) -> Vec<String> {
    e.events
        .iter()
        .filter(|x| x.kind.ends_with("StateEntered"))
        .filter_map(|x| x.detail_str("name").map(str::to_owned))
        .collect()
}

fn count(e: &Execution, kind: &str, state_or_error: &str) -> usize {
    e.events
        .iter()
        .filter(|x| {
            x.kind == kind
                && (x.detail_str("error") == Some(state_or_error)
                    || x.detail_str("name") == Some(state_or_error))
        })
        .count()
}

#[test]
fn the_state_machine_is_valid() {
    let problems = validate(&autoheal_definition());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_task_resource_is_a_placeholder() {
    let text =
        std::fs::read_to_string(repo_root().join("statemachine/autoheal.asl.json")).expect("read");
    let raw = StateMachine::parse(&text).expect("parses with placeholders");
    for s in all_states(&raw) {
        if let Kind::Task(t) = &s.kind {
            let placeholder = t.resource.starts_with("${") && t.resource.ends_with('}');
            let callback = t.resource == "arn:aws:states:::lambda:invoke.waitForTaskToken"
                && t.handling
                    .parameters
                    .as_ref()
                    .and_then(|p| p.get("FunctionName"))
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with("${"));
            assert!(placeholder || callback, "{}: {}", s.name, t.resource);
        }
    }
}

#[test]
fn transient_errors_are_retried_with_full_jitter_before_domain_errors_are_caught() {
    for s in all_states(&autoheal_definition()) {
        let Some(h) = s.kind.handling() else { continue };
        if matches!(s.kind, Kind::Map(_)) {
            continue;
        }
        let first = h
            .retry
            .first()
            .unwrap_or_else(|| panic!("{} has no Retry", s.name));
        assert!(
            first.error_equals.iter().any(|e| e == "Throttled")
                && first.error_equals.iter().any(|e| e == "AwsServiceError"),
            "{}",
            s.name
        );
        assert_eq!(
            first.jitter_strategy,
            autoheal_asl::definition::Jitter::Full,
            "{}",
            s.name
        );
        assert!(!h.catch.is_empty(), "{} has no Catch", s.name);
        for c in &h.catch {
            let rp = c.result_path.path().unwrap_or_default();
            assert!(
                rp.starts_with("$.") && rp.ends_with("Error"),
                "{}: Catch ResultPath {rp}",
                s.name
            );
        }
    }
}

#[test]
fn every_error_name_the_state_machine_matches_is_produced_by_a_task() {
    for name in custom_error_names(&autoheal_definition()) {
        // Lambda's own error types: Lambda.* from the service, Sandbox.Timedout for a timeout.
        let by_lambda = name.starts_with("Lambda.") || name == "Sandbox.Timedout";
        assert!(
            by_lambda || autoheal_core::ERROR_NAMES.contains(&name.as_str()),
            "{name} is matched in the ASL but no task produces it"
        );
    }
}

#[test]
fn the_happy_path_restarts_verifies_restores_and_records() {
    let e = run_case("HappyPath");
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let path = entered(&e);
    let order = [
        "Detect unhealthy targets",
        "Heal each target",
        "Acquire lease",
        "Diagnose through SSM",
        "Decide",
        "Drain target",
        "Let connections drain",
        "Restart service",
        "Wait for recovery",
        "Verify health",
        "Restore target",
        "Record incident",
        "Release lease",
        "Notify",
        "Done",
    ];
    let mut at = 0;
    for want in order {
        at += path[at..]
            .iter()
            .position(|p| p == want)
            .unwrap_or_else(|| panic!("{want} not entered after position {at}: {path:?}"));
    }
    let out = e.output.expect("output");
    assert_eq!(out["incidents"][0]["status"], "healed");
    assert_eq!(out["verdict"], "proceed");
    // Drain 300 s + recovery 10 s: the virtual clock advanced through both Waits.
    assert!(
        e.duration_s >= 310.0 && e.duration_s < 320.0,
        "{}",
        e.duration_s
    );
    assert_eq!(
        e.events.iter().filter(|x| x.kind == "TaskFailed").count(),
        0
    );
}

#[test]
fn a_throttled_diagnosis_is_retried_and_the_incident_still_heals() {
    let e = run_case("RetriedThrottle");
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(
        count(&e, "TaskFailed", "Throttled"),
        2,
        "two throttles, then success"
    );
    assert_eq!(
        count(&e, "TaskStateEntered", "Diagnose through SSM"),
        1,
        "retries stay inside one state entry"
    );
    assert_eq!(
        e.output.expect("output")["incidents"][0]["status"],
        "healed"
    );
}

#[test]
fn a_heal_failure_is_caught_recorded_and_re_decided() {
    let e = run_case("CaughtHealFailure");
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(count(&e, "TaskFailed", "HealFailed"), 1);
    let path = entered(&e);
    assert!(path.iter().any(|p| p == "Heal attempt failed"), "{path:?}");
    assert_eq!(
        path.iter().filter(|p| *p == "Decide").count(),
        2,
        "decided again after the failure: {path:?}"
    );
    assert!(
        !path.iter().any(|p| p == "Restore target"),
        "a failed host is not put back in service"
    );
    assert_eq!(e.output.expect("output")["incidents"][0]["status"], "held");
}

#[test]
fn a_failed_verification_escalates_to_the_next_rung() {
    let e = run_case("Escalation");
    assert_eq!(e.status, Status::Succeeded);
    let path = entered(&e);
    let restart = path
        .iter()
        .position(|p| p == "Restart service")
        .expect("restart");
    let reboot = path
        .iter()
        .position(|p| p == "Reboot instance")
        .expect("reboot after restart");
    assert!(restart < reboot);
    assert_eq!(
        path.iter().filter(|p| *p == "Verify health").count(),
        4,
        "three failed checks, then healthy after the reboot"
    );
    assert_eq!(
        path.iter()
            .filter(|p| *p == "Wait before re-checking")
            .count(),
        2
    );
    assert_eq!(count(&e, "TaskStateEntered", "Heal attempt failed"), 1);
}

#[test]
fn a_mass_failure_is_held_and_notified_without_healing() {
    let e = run_case("MassFailureHeld");
    assert_eq!(e.status, Status::Succeeded);
    let path = entered(&e);
    assert!(
        path.iter()
            .any(|p| p == "Hold (dependency outage suspected)")
    );
    assert!(!path.iter().any(|p| p == "Heal each target"));
    assert!(path.iter().any(|p| p == "Notify"));
    assert_eq!(e.output.expect("output")["incidents"], json!([]));
}

#[test]
fn an_approved_replacement_goes_through_the_auto_scaling_group() {
    let e = run_case("ApprovedReplacement");
    assert_eq!(e.status, Status::Succeeded);
    let path = entered(&e);
    assert!(path.iter().any(|p| p == "Wait for approval"));
    assert!(path.iter().any(|p| p == "Replace via Auto Scaling"));
    assert!(
        !path.iter().any(|p| p == "Drain target"),
        "the group drains the terminated instance itself"
    );
    assert!(
        !path.iter().any(|p| p == "Restore target"),
        "the replacement registers itself"
    );
}

/// The worst case the definition allows: the most candidates Detect hands over, every
/// verification failing until its limit, every heal escalated to the bound, every task throttled
/// to its retry limit once. The history must stay well under 25,000 events.
#[test]
fn the_worst_case_execution_stays_far_below_the_history_limit() {
    use autoheal_core::limits::{
        MAX_CANDIDATES_PER_EXECUTION as CANDIDATES, MAX_ESCALATIONS, MAX_VERIFY_ATTEMPTS,
    };
    let targets: Vec<Value> = (0..CANDIDATES)
        .map(|n| json!({"incident_id": format!("web-i-{n:017x}-1"), "instance": format!("i-{n:017x}"), "port": 80, "state": "unhealthy"}))
        .collect();
    let detect = json!({"target_group": {"arn": "tg", "name": "web"}, "verdict": "proceed", "reason": "r", "max_concurrent_heals": 5, "policy": {}, "candidates": targets});
    let verify: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (i.to_string(), json!({"Return": {"healthy": false, "attempt": i % MAX_VERIFY_ATTEMPTS + 1, "max_attempts": MAX_VERIFY_ATTEMPTS, "retry_after_s": 15}})))
        .collect();
    let many = |v: Value| json!({"0-100000": {"Return": v}});
    let throttled_then = |v: Value| json!({"0-3": {"Throw": {"Error": "Throttled", "Cause": "c"}}, "4-100000": {"Return": v}});
    let config = json!({
        "StateMachines": {"autoheal": {"TestCases": {"Worst": {
            "Detect unhealthy targets": "Detect", "Acquire lease": "Ok", "Diagnose through SSM": "Diag", "Decide": "Restart",
            "Drain target": "Drain", "Restart service": "Heal", "Verify health": "Verify", "Heal attempt failed": "Ok",
            "Record incident": "Ok", "Release lease": "Ok", "Notify": "Ok"}}}},
        "MockedResponses": {
            "Detect": {"0": {"Return": detect}},
            "Ok": many(json!({"ok": true})),
            "Diag": throttled_then(json!({"class": "Application"})),
            "Restart": many(json!({"action": "restart_service", "requires_approval": false})),
            "Drain": many(json!({"wait_s": 300})),
            "Heal": many(json!({"wait_s": 10})),
            "Verify": verify,
        }
    });
    let resources = MockConfig::parse(&config.to_string())
        .expect("config")
        .test_case(None, "Worst")
        .expect("case");
    let e = run_virtual(
        &autoheal_definition(),
        &resources,
        input(),
        RunOptions::default(),
    )
    .expect("runtime");
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    assert_eq!(
        count(&e, "TaskStateEntered", "Heal attempt failed"),
        CANDIDATES * (MAX_ESCALATIONS as usize + 1),
        "every escalation and the final failure, per target"
    );
    assert!(e.events.len() < 25_000 / 2, "{} events", e.events.len());
    let escalate = autoheal_definition();
    let Some(Kind::Map(m)) = escalate.state("Heal each target").map(|s| &s.kind) else {
        panic!("the Map")
    };
    let Some(Kind::Choice(c)) = m.processor.state("Escalate?").map(|s| &s.kind) else {
        panic!("Escalate?")
    };
    let bound = format!("{:?}", c.choices[0].rule);
    assert!(
        bound.contains(&format!("Number({MAX_ESCALATIONS})")),
        "Escalate? must bound escalations at {MAX_ESCALATIONS}: {bound}"
    );
}
