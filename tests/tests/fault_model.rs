//! Every fault kind of DESIGN.md §4, as the raw outputs a real run sees, goes through the
//! shipped rules and the decision engine and must come out as the class and first action of the
//! table (docs/fault-classes.md).

use autoheal_core::health::ReasonCode;
use autoheal_core::observe::StatusCheck;
use autoheal_core::policy::Action;
use autoheal_core::{FaultClass, RuleSet};
use autoheal_tests::{Host, Scene, fault_kinds, observe};

fn single(fault: Host) -> (FaultClass, Action) {
    let (_, d) = Scene::single(fault).run();
    (d.class, d.action)
}

#[test]
fn every_fault_kind_gets_the_class_and_first_action_of_the_table() {
    for k in fault_kinds() {
        let (diagnosis, d) = k.scene.run();
        assert_eq!(
            (d.class, d.action),
            (k.class, k.action),
            "{}: {diagnosis:?}\n{d:?}",
            k.kind
        );
    }
}

#[test]
fn an_app_crash_is_restarted_whichever_reason_code_the_load_balancer_gives() {
    for reason in [
        ReasonCode::FailedHealthChecks,
        ReasonCode::ResponseCodeMismatch,
    ] {
        assert_eq!(
            single(Host::failing(reason, "app_crash")),
            (FaultClass::Application, Action::RestartService)
        );
    }
}

#[test]
fn an_os_hang_is_told_from_a_dead_agent_by_the_instance_status_check() {
    let agent = Host::unreachable(ReasonCode::Timeout, StatusCheck::Ok, StatusCheck::Ok);
    let os = Host::unreachable(ReasonCode::Timeout, StatusCheck::Impaired, StatusCheck::Ok);
    assert_eq!(single(agent).0, FaultClass::AgentFailure);
    assert_eq!(single(os).0, FaultClass::OsLevel);
}

#[test]
fn one_overloaded_host_in_a_calm_group_is_restarted() {
    assert_eq!(
        single(Host::failing(ReasonCode::Timeout, "overload")),
        (FaultClass::ResourceBottleneck, Action::RestartService)
    );
}

#[test]
fn fleet_wide_overload_says_slow_is_not_dead() {
    let k = fault_kinds()
        .into_iter()
        .find(|k| k.kind == "overload")
        .expect("overload scene");
    let (_, d) = k.scene.run();
    assert!(d.rule_ids.iter().any(|r| r == "fleet.overload"), "{d:?}");
    assert!(d.reason.contains("slow is not dead"), "{}", d.reason);
}

#[test]
fn a_healthy_host_matches_no_rule() {
    let rules = RuleSet::builtin().expect("shipped rules");
    assert_eq!(
        rules.diagnose(&observe(0, &Host::healthy())).class,
        FaultClass::Unknown
    );
}

#[test]
fn output_that_is_not_diagnostics_leaves_the_cause_unknown() {
    let rules = RuleSet::builtin().expect("shipped rules");
    let mut obs = observe(
        0,
        &Host::failing(ReasonCode::FailedHealthChecks, "app_crash"),
    );
    obs.diagnostics = None;
    obs.diagnostics_error = Some("invalid diagnostics document".into());
    let d = rules.diagnose(&obs);
    assert_eq!(d.class, FaultClass::Unknown);
    assert!(
        d.evidence.iter().any(|e| e.fact == "elb.reason"),
        "the observations are shown: {d:?}"
    );
}

#[test]
fn the_evidence_that_fired_is_reported_with_the_runners_up() {
    let rules = RuleSet::builtin().expect("shipped rules");
    let d = rules.diagnose(&observe(
        0,
        &Host::failing(ReasonCode::FailedHealthChecks, "disk_full"),
    ));
    assert_eq!(d.rule_id.as_deref(), Some("disk.full"));
    let e = d
        .evidence
        .iter()
        .find(|e| e.fact == "diag.disk_used_max_percent")
        .expect("fired");
    assert_eq!(
        e.actual.as_ref().map(ToString::to_string).as_deref(),
        Some("100")
    );
    assert!(
        d.candidates
            .iter()
            .any(|c| c.class == FaultClass::Application),
        "the crashed service is a runner-up"
    );
}

#[test]
fn every_diagnostics_fixture_parses() {
    let dir = autoheal_tests::repo_root().join("tests/fixtures/diagnostics");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        autoheal_core::parse_diagnostics(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 10, "only {n} fixtures");
}
