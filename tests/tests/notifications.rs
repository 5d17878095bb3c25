//! Golden files of the notification renderings (`autoheal_handlers::summary`): four notifications
//! an execution sends, each rendered for Slack, Teams and SNS and compared with
//! `tests/fixtures/notifications/<case>.<slack|teams|sns>.json`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p autoheal-tests notifications` writes the files instead of
//! comparing; review the diff before committing it.

use std::collections::BTreeMap;

use autoheal_core::decision::Rung;
use autoheal_core::facts::FactValue;
use autoheal_core::incident::{Incident, IncidentRecord, IncidentStatus, Step};
use autoheal_core::policy::Action;
use autoheal_core::ports::{Notification, Severity};
use autoheal_core::rules::{Diagnosis, Evidence, FaultClass};
use autoheal_core::{Decision, IncidentId, InstanceId, Timestamp};
use autoheal_handlers::console_url;
use autoheal_handlers::summary::{Summary, slack_payload, sns_attributes, teams_payload, text};
use autoheal_tests::{repo_root, tg};
use serde_json::{Map, Value, json};

/// 2027-01-15T08:00:00Z: every incident is detected then.
const T0: i64 = 1_800_000_000;

fn at(offset_s: i64) -> Timestamp {
    Timestamp(T0 + offset_s)
}

fn instance(id: &str) -> InstanceId {
    InstanceId::parse(id).unwrap_or_else(|e| panic!("{e}"))
}

fn execution_arn(name: &str) -> String {
    format!("arn:aws:states:us-east-1:123456789012:execution:autoheal:{name}")
}

fn evidence(fact: &str, test: &str, expected: Value, actual: FactValue) -> Evidence {
    Evidence {
        fact: fact.to_owned(),
        test: test.to_owned(),
        expected: Some(expected),
        actual: Some(actual),
    }
}

fn steps(list: &[(i64, &str, &str)]) -> Vec<Step> {
    list.iter()
        .map(|(offset, name, detail)| Step {
            name: (*name).to_owned(),
            at: at(*offset),
            detail: (*detail).to_owned(),
        })
        .collect()
}

fn incident(id: &InstanceId) -> Incident {
    Incident {
        id: IncidentId::for_target(&tg(), id, T0),
        target_group: tg(),
        instance: id.clone(),
        asg: None,
        detected_at: at(0),
        tags: BTreeMap::new(),
        launched_at: None,
    }
}

/// (a) An application crash healed by a service restart.
fn healed_restart() -> Notification {
    let i = instance("i-0a1b2c3d4e5f60718");
    let arn = execution_arn("web-1800000000");
    let record = IncidentRecord {
        incident: incident(&i),
        status: IncidentStatus::Healed,
        diagnosis: Some(Diagnosis {
            class: FaultClass::Application,
            confidence: 0.9,
            rule_id: Some("app.service-down".to_owned()),
            summary: "The application service is not running (inactive, failed or missing)."
                .to_owned(),
            evidence: vec![evidence(
                "diag.services_down",
                "gt",
                json!(0),
                FactValue::Number(1.0),
            )],
            candidates: vec![],
        }),
        decision: Some(Decision {
            action: Action::RestartService,
            intended: None,
            requires_approval: false,
            class: FaultClass::Application,
            reason: "restart_service (attempt 1 of 2) for Application: The application service is not running (inactive, failed or missing)".to_owned(),
            rule_ids: vec![
                "diagnosis.app.service-down".to_owned(),
                "ladder.restart_service".to_owned(),
            ],
            rung: Some(Rung {
                action: Action::RestartService,
                attempt: 1,
                max_attempts: 2,
                ladder: vec![Action::RestartService, Action::Reboot, Action::Replace],
            }),
        }),
        steps: steps(&[
            (4, "Acquire lease", "leased until 2027-01-15T10:00:04Z"),
            (21, "Diagnose through SSM", "Application (app.service-down, confidence 0.90)"),
            (22, "Decide", "restart_service"),
            (24, "Drain target", "deregistered from web; unhealthy, nothing to drain"),
            (41, "Restart service", "restart_services ended success"),
            (66, "Verify health", "verify_health ended success"),
            (68, "Restore target", "registered in web on port 80"),
            (70, "record", "healed"),
        ]),
        failure: None,
        execution_arn: Some(arn.clone()),
        updated_at: at(70),
    };
    Notification {
        subject: "autoheal: 1 incident(s) in web".to_owned(),
        severity: Severity::Info,
        target_group: tg(),
        incidents: vec![record],
        held_back: vec![],
        execution_url: Some(console_url(&arn)),
        approval_token: None,
    }
}

/// (b) Most of the group failing at once: a dependency outage is suspected and nothing is healed.
fn held_outage() -> Notification {
    Notification {
        subject: "autoheal: held back in web: dependency outage suspected".to_owned(),
        severity: Severity::Warning,
        target_group: tg(),
        incidents: vec![],
        held_back: vec![
            "5 of 6 targets (83%) are failing at once, more than max_unhealthy_percent 50%: a dependency outage is suspected, so no target is healed".to_owned(),
        ],
        execution_url: Some(console_url(&execution_arn("web-1800000060"))),
        approval_token: None,
    }
}

/// (c) A replacement waiting for a person's approval. (The notify handler sends approval requests
/// with the subject and token only; the incident is included here to render the full card.)
fn approval_request() -> Notification {
    let i = instance("i-0f9e8d7c6b5a40312");
    let arn = execution_arn("web-1800000120");
    let record = IncidentRecord {
        incident: incident(&i),
        status: IncidentStatus::Open,
        diagnosis: Some(Diagnosis {
            class: FaultClass::Hardware,
            confidence: 0.95,
            rule_id: Some("hardware.system-status-impaired".to_owned()),
            summary: "The EC2 system status check failed: the AWS host under the instance is impaired.".to_owned(),
            evidence: vec![evidence(
                "ec2.system_status",
                "eq",
                json!("impaired"),
                FactValue::String("impaired".to_owned()),
            )],
            candidates: vec![],
        }),
        decision: Some(Decision {
            action: Action::Replace,
            intended: None,
            requires_approval: true,
            class: FaultClass::Hardware,
            reason: "replace (attempt 1 of 1) for Hardware: The EC2 system status check failed: the AWS host under the instance is impaired; waits for a person's approval".to_owned(),
            rule_ids: vec![
                "diagnosis.hardware.system-status-impaired".to_owned(),
                "ladder.replace".to_owned(),
                "approval.replace".to_owned(),
            ],
            rung: Some(Rung {
                action: Action::Replace,
                attempt: 1,
                max_attempts: 1,
                ladder: vec![Action::Replace],
            }),
        }),
        steps: steps(&[
            (3, "Acquire lease", "leased until 2027-01-15T10:00:03Z"),
            (5, "Diagnose through SSM", "Hardware (hardware.system-status-impaired, confidence 0.95)"),
            (6, "Decide", "replace, waits for approval"),
            (7, "Wait for approval", "approval requested"),
        ]),
        failure: None,
        execution_arn: Some(arn.clone()),
        updated_at: at(7),
    };
    Notification {
        subject: "autoheal: approve replace in web?".to_owned(),
        severity: Severity::Info,
        target_group: tg(),
        incidents: vec![record],
        held_back: vec![],
        execution_url: Some(console_url(&arn)),
        approval_token: Some(
            "AQCEAAAAKgAAAAMAAAAAAAAAAfT3x7bQ9pL2mV8kR1sN4cW6yZ0aE5uH3jG7oI9dC2fB8nM1lK4qP6rS0tU=="
                .to_owned(),
        ),
    }
}

/// (d) A hung application: the restart did not help, the reboot did not either, and the
/// incident failed.
fn failed_escalated() -> Notification {
    let i = instance("i-05c4d3b2a1f0e9d8c");
    let arn = execution_arn("web-1800000180");
    let record = IncidentRecord {
        incident: incident(&i),
        status: IncidentStatus::Failed,
        diagnosis: Some(Diagnosis {
            class: FaultClass::Application,
            confidence: 0.8,
            rule_id: Some("app.hung".to_owned()),
            summary: "The application is hung: its process runs and the port listens, but the local probe times out while CPU and memory are fine.".to_owned(),
            evidence: vec![
                evidence("diag.probe_error", "eq", json!("timeout"), FactValue::String("timeout".to_owned())),
                evidence("diag.services_down", "eq", json!(0), FactValue::Number(0.0)),
                evidence("diag.cpu_percent", "lt", json!(95), FactValue::Number(12.5)),
                evidence("diag.mem_available_percent", "gte", json!(5), FactValue::Number(41.0)),
            ],
            candidates: vec![],
        }),
        decision: Some(Decision {
            action: Action::Reboot,
            intended: None,
            requires_approval: false,
            class: FaultClass::Application,
            reason: "reboot (attempt 1 of 1) for Application: The application is hung: its process runs and the port listens, but the local probe times out while CPU and memory are fine".to_owned(),
            rule_ids: vec!["diagnosis.app.hung".to_owned(), "ladder.reboot".to_owned()],
            rung: Some(Rung {
                action: Action::Reboot,
                attempt: 1,
                max_attempts: 1,
                ladder: vec![Action::RestartService, Action::Reboot, Action::Replace],
            }),
        }),
        steps: steps(&[
            (4, "Acquire lease", "leased until 2027-01-15T10:00:04Z"),
            (25, "Diagnose through SSM", "Application (app.hung, confidence 0.80)"),
            (26, "Decide", "restart_service"),
            (88, "Drain target", "deregistered from web; drained for 60 s"),
            (105, "Restart service", "restart_services ended success"),
            (190, "Verify health", "verify_health ended failed (attempt 5 of 5)"),
            (191, "attempt_failed", "restart_service failed"),
            (192, "Decide", "reboot"),
            (194, "Reboot instance", "reboot requested"),
            (330, "Verify health", "verify_health ended timed_out (attempt 5 of 5)"),
            (332, "record_failure", "failed"),
        ]),
        failure: Some(
            "VerificationFailed in Verify: i-05c4d3b2a1f0e9d8c did not pass verify_health after reboot (5 attempts)"
                .to_owned(),
        ),
        execution_arn: Some(arn.clone()),
        updated_at: at(332),
    };
    Notification {
        subject: "autoheal: 1 incident(s) in web".to_owned(),
        severity: Severity::Critical,
        target_group: tg(),
        incidents: vec![record],
        held_back: vec![],
        execution_url: Some(console_url(&arn)),
        approval_token: None,
    }
}

/// What an SNS Publish carries: the subject, the e-mail text and the message attributes (in the
/// shape of the Publish API's `MessageAttributes`).
fn sns_message(n: &Notification, s: &Summary) -> Value {
    let mut attributes = Map::new();
    for (name, data_type, value) in sns_attributes(s) {
        attributes.insert(name, json!({"DataType": data_type, "StringValue": value}));
    }
    json!({
        "subject": n.subject,
        "message": text(s),
        "attributes": attributes,
    })
}

/// Compares `actual` with the golden file `<case>.<channel>.json`, or writes it when
/// `UPDATE_GOLDEN=1`.
fn golden(case: &str, channel: &str, actual: &Value) {
    let dir = repo_root().join("tests/fixtures/notifications");
    let path = dir.join(format!("{case}.{channel}.json"));
    let rendered = serde_json::to_string_pretty(actual).expect("json") + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let Ok(expected) = std::fs::read_to_string(&path) else {
        panic!(
            "{} is missing: run `UPDATE_GOLDEN=1 cargo test -p autoheal-tests notifications` to write it, then review it",
            path.display()
        );
    };
    assert!(
        expected == rendered,
        "{} differs from the rendering (run `UPDATE_GOLDEN=1 cargo test -p autoheal-tests notifications` if the change is intended)\n--- expected\n{expected}\n--- actual\n{rendered}",
        path.display()
    );
}

fn check(case: &str, n: &Notification) {
    let s = Summary::from_notification(n);
    golden(case, "slack", &slack_payload(&s));
    golden(case, "teams", &teams_payload(&s));
    golden(case, "sns", &sns_message(n, &s));
}

#[test]
fn a_healed_restart_renders_as_its_golden_files() {
    check("healed_restart", &healed_restart());
}

#[test]
fn a_held_dependency_outage_renders_as_its_golden_files() {
    check("held_outage", &held_outage());
}

#[test]
fn an_approval_request_renders_as_its_golden_files() {
    check("approval_request", &approval_request());
}

#[test]
fn a_failed_escalation_renders_as_its_golden_files() {
    check("failed_escalated", &failed_escalated());
}
