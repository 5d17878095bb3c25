//! Chaos (issue 8): 10,000 incidents through the real state machine and handlers while AWS
//! throttles, Lambda crashes (before and after side effects), triggers repeat and instances
//! vanish mid-heal. No heal may happen twice, no incident may be lost, no lease may outlive its
//! holder, no heal may break the fleet's safety; every incident ends recorded.

use autoheal_core::IncidentStatus;
use autoheal_sim::chaos::Chaos;
use autoheal_sim::{PolicyKind, Scenario, SimOptions, simulate};
use autoheal_tests::{incident_waves, repo_root};

const CHAOS: &str = "throttle=0.2,task_crash=0.05,duplicate_triggers=1,vanish=0.02";

fn opts(spec: &str) -> SimOptions {
    SimOptions {
        keep_histories: false,
        chaos: Chaos::parse(spec).expect("chaos"),
        ..SimOptions::default()
    }
}

#[test]
fn ten_thousand_incidents_under_chaos_heal_once_and_end_recorded() {
    // 12 waves of 1,000 app crashes: under chaos some faults wait for the next run (a detect
    // that failed after its retries), so 12,000 faults make well over 10,000 incidents.
    let s = incident_waves(12).expect("scenario");
    let sm = autoheal_handlers::definition().expect("state machine");
    let sim = simulate(&s, &sm, PolicyKind::Autoheal, &opts(CHAOS)).expect("runs");
    let c = sim.summary.chaos.expect("chaos counts");
    // The chaos really happened.
    assert!(
        c.throttled_calls > 0 && c.crashes_after > 0 && c.timeouts_after > 0,
        "{c:?}"
    );
    assert!(c.duplicate_starts > 0 && c.vanished > 0, "{c:?}");
    assert!(sim.summary.incidents >= 10_000, "{}", sim.summary.incidents);
    assert_eq!(
        (
            sim.summary.double_heals,
            sim.summary.lost_incidents,
            sim.summary.stuck_leases,
            sim.summary.blast_radius_violations
        ),
        (0, 0, 0, 0),
        "{:?}",
        sim.summary
    );
    for r in &sim.records {
        match r.status {
            IncidentStatus::Healed
            | IncidentStatus::Held
            | IncidentStatus::Escalated
            | IncidentStatus::Observed
            | IncidentStatus::NoAction => {}
            IncidentStatus::Failed => assert!(r.failure.is_some(), "{r:?}"),
            IncidentStatus::Open => panic!("incident left open: {r:?}"),
        }
    }
}

#[test]
fn a_retried_heal_does_not_repeat_its_side_effect() {
    // Every task crashes half the time, before or after its side effect.
    let s =
        Scenario::load(&repo_root().join("docs/examples/web-app-crash.json")).expect("scenario");
    let sm = autoheal_handlers::definition().expect("state machine");
    let sim = simulate(&s, &sm, PolicyKind::Autoheal, &opts("task_crash=0.5")).expect("runs");
    let c = sim.summary.chaos.expect("counts");
    assert!(c.crashes_after > 0, "{c:?}");
    assert_eq!(sim.summary.double_heals, 0, "{:?}", sim.summary);
    assert_eq!(sim.summary.lost_incidents, 0, "{:?}", sim.summary);
}

#[test]
fn a_duplicate_execution_of_the_same_incident_finds_the_lease_held() {
    let s =
        Scenario::load(&repo_root().join("docs/examples/web-app-crash.json")).expect("scenario");
    let sm = autoheal_handlers::definition().expect("state machine");
    let sim = simulate(&s, &sm, PolicyKind::Autoheal, &opts("duplicate_triggers=2")).expect("runs");
    assert_eq!(sim.summary.restarts, 1, "{:?}", sim.summary);
    assert_eq!(sim.summary.double_heals, 0);
    let replays = sim
        .executions
        .iter()
        .filter(|e| e.trigger == "replay")
        .count();
    assert!(replays >= 2, "{replays}");
}

#[test]
fn chaos_specs_are_checked_with_the_fix() {
    for (bad, says) in [
        ("throttle=1.5", "between 0 and 1"),
        ("floods=1", "no chaos called"),
    ] {
        let e = Chaos::parse(bad).expect_err(bad);
        assert!(e.contains(says), "{e}");
    }
}
