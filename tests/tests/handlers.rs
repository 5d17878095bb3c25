//! The real handlers (`autoheal-handlers`) on the real state machine, over an in-memory world:
//! what the local runner will run on the simulator, end to end.

use autoheal_asl::{Execution, RunOptions, Runner, Status};
use autoheal_core::health::{HealthState, ReasonCode};
use autoheal_core::incident::{HealOutcome, IncidentStatus};
use autoheal_core::observe::{AgentPing, StatusCheck};
use autoheal_core::policy::Action;
use autoheal_handlers::{Config, InProcess};
use autoheal_tests::memory_world::{Host, MemoryWorld};
use autoheal_tests::{autoheal_definition, iid, tg};
use serde_json::{Value, json};

/// Runs one execution for the group with `policy` on a virtual clock; returns it and the world.
fn run(hosts: Vec<Host>, policy: Value, operator: Option<bool>) -> (Execution, MemoryWorld) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let sm = autoheal_definition();
    rt.block_on(async {
        let world = MemoryWorld::new(hosts);
        let e = {
            let resources = InProcess::new(&world, Config::default());
            let runner = Runner::new(&sm, &resources, RunOptions { state_machine_name: "autoheal".into(), ..RunOptions::default() });
            let tokens = runner.tokens();
            let input = json!({"scope": {"target_group_arn": tg()}, "trigger": {"source": "alarm"}, "policy": policy});
            let approver = async {
                let Some(approve) = operator else { return };
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    if let Some(t) = tokens.waiting().first() {
                        let answer = if approve { tokens.succeed(&t.token, json!({"approved": true, "by": "oncall"})) } else { tokens.fail(&t.token, "ApprovalDenied", "not now") };
                        answer.expect("the token is waiting");
                        return;
                    }
                }
            };
            let (e, ()) = tokio::join!(runner.run(input), approver);
            e
        };
        (e, world)
    })
}

fn group(faulty: Vec<Host>, size: usize) -> Vec<Host> {
    let n = faulty.len();
    faulty
        .into_iter()
        .chain((n..size).map(|_| Host::healthy()))
        .collect()
}

fn policy() -> Value {
    json!({"services": ["app.service"], "approval_required_for": []})
}

fn entered(e: &Execution) -> Vec<&str> {
    e.events
        .iter()
        .filter(|x| x.kind.ends_with("StateEntered"))
        .filter_map(|x| x.detail_str("name"))
        .collect()
}

#[test]
fn a_crashed_service_is_diagnosed_restarted_verified_and_restored_by_the_real_handlers() {
    let (e, world) = run(
        group(
            vec![Host::failing("app_crash", ReasonCode::FailedHealthChecks)],
            6,
        ),
        policy(),
        None,
    );
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let out = e.output.expect("output");
    assert_eq!(out["verdict"], "proceed");
    assert_eq!(out["incidents"][0]["status"], "healed", "{out}");
    let i0 = iid(0);
    assert_eq!(world.health_of(&i0), Some(HealthState::Healthy));
    let calls = world.calls();
    assert_eq!(
        calls,
        [
            format!("send autoheal-Diagnostics {i0}"),
            format!("deregister {i0}"),
            format!("send autoheal-RestartServices {i0}"),
            format!("send autoheal-VerifyHealth {i0}"),
            format!("register {i0}"),
        ]
    );
    let incidents = world.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].status, IncidentStatus::Healed);
    assert_eq!(
        incidents[0]
            .diagnosis
            .as_ref()
            .and_then(|d| d.rule_id.as_deref()),
        Some("app.service-down")
    );
    assert_eq!(
        world
            .heals()
            .iter()
            .map(|h| (h.action, h.outcome))
            .collect::<Vec<_>>(),
        [(Action::RestartService, HealOutcome::Healed)]
    );
    let notes = world.notifications();
    assert_eq!(notes.len(), 1);
    // The summary carries the incident as recorded (diagnosis, decision, steps) and the
    // execution's console page.
    assert_eq!(notes[0].incidents.len(), 1, "{:?}", notes[0]);
    assert_eq!(notes[0].incidents[0].status, IncidentStatus::Healed);
    assert!(
        notes[0]
            .execution_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://us-east-1.console.aws.amazon.com/states/")),
        "{:?}",
        notes[0].execution_url
    );
    // The target was unhealthy, so the load balancer sent it nothing to drain: no 300 s wait,
    // only the 10 s settle after the restart, in virtual time.
    assert!(
        (10.0..300.0).contains(&e.duration_s),
        "the settle passed, and no drain delay for an unhealthy target: {}",
        e.duration_s
    );
}

#[test]
fn a_mass_failure_is_held_without_touching_any_host() {
    let failing = (0..5)
        .map(|_| Host::failing("dependency_outage", ReasonCode::ResponseCodeMismatch))
        .collect();
    let (e, world) = run(group(failing, 6), policy(), None);
    assert_eq!(e.status, Status::Succeeded);
    assert!(entered(&e).contains(&"Hold (dependency outage suspected)"));
    assert!(world.calls().is_empty(), "{:?}", world.calls());
    let n = world.notifications();
    assert_eq!(n.len(), 1);
    assert!(
        n[0].subject.contains("dependency outage suspected"),
        "{}",
        n[0].subject
    );
}

#[test]
fn a_restart_that_does_not_help_climbs_the_ladder_to_a_reboot() {
    let stubborn = Host {
        restart_fixes: false,
        ..Host::failing("app_crash", ReasonCode::FailedHealthChecks)
    };
    let (e, world) = run(group(vec![stubborn], 6), policy(), None);
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let i0 = iid(0);
    let acts: Vec<String> = world
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("send autoheal-Restart") || c.starts_with("reboot"))
        .collect();
    assert_eq!(
        acts,
        [
            format!("send autoheal-RestartServices {i0}"),
            format!("send autoheal-RestartServices {i0}"),
            format!("reboot {i0}")
        ]
    );
    let heals: Vec<(Action, HealOutcome)> = world
        .heals()
        .iter()
        .map(|h| (h.action, h.outcome))
        .collect();
    assert_eq!(
        heals,
        [
            (Action::RestartService, HealOutcome::Failed),
            (Action::RestartService, HealOutcome::Failed),
            (Action::Reboot, HealOutcome::Healed)
        ]
    );
    assert_eq!(world.health_of(&i0), Some(HealthState::Healthy));
    assert_eq!(
        e.output.expect("output")["incidents"][0]["status"],
        "healed"
    );
}

#[test]
fn a_dead_agent_is_rebooted_without_any_ssm_heal() {
    let deaf = Host {
        agent: AgentPing::ConnectionLost,
        ..Host::failing("app_crash", ReasonCode::FailedHealthChecks)
    };
    let (e, world) = run(
        group(vec![deaf], 6),
        json!({"services": ["app.service"], "approval_required_for": []}),
        None,
    );
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let incidents = world.incidents();
    assert_eq!(
        incidents[0].diagnosis.as_ref().map(|d| d.class.as_str()),
        Some("AgentFailure")
    );
    assert!(
        world.calls().contains(&format!("reboot {}", iid(0))),
        "{:?}",
        world.calls()
    );
}

#[test]
fn a_hardware_failure_is_replaced_only_after_a_person_approves() {
    let broken = Host {
        system_status: StatusCheck::Impaired,
        instance_status: StatusCheck::Impaired,
        agent: AgentPing::ConnectionLost,
        ..Host::failing("healthy", ReasonCode::Timeout)
    };
    let (e, world) = run(
        group(vec![broken.clone()], 6),
        json!({"services": ["app.service"]}),
        Some(true),
    );
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    assert!(entered(&e).contains(&"Wait for approval"));
    assert!(
        world.calls().contains(&format!("terminate {}", iid(0))),
        "{:?}",
        world.calls()
    );
    assert_eq!(
        world
            .notifications()
            .iter()
            .filter(|n| n.approval_token.is_some())
            .count(),
        1,
        "the approval request carried the token"
    );

    let (e, world) = run(
        group(vec![broken], 6),
        json!({"services": ["app.service"]}),
        Some(false),
    );
    assert_eq!(e.status, Status::Succeeded);
    assert!(
        !world.calls().iter().any(|c| c.starts_with("terminate")),
        "denied: nothing is terminated"
    );
    assert_eq!(world.incidents()[0].status, IncidentStatus::Held);
}

#[test]
fn dry_run_diagnoses_and_records_but_changes_nothing() {
    let (e, world) = run(
        group(
            vec![Host::failing("app_crash", ReasonCode::FailedHealthChecks)],
            6,
        ),
        json!({"services": ["app.service"], "dry_run": true}),
        None,
    );
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(
        world.calls(),
        [format!("send autoheal-Diagnostics {}", iid(0))],
        "only the read-only diagnostics ran"
    );
    let incidents = world.incidents();
    assert_eq!(incidents[0].status, IncidentStatus::Observed);
    assert_eq!(
        incidents[0].decision.as_ref().and_then(|d| d.intended),
        Some(Action::RestartService)
    );
}

#[test]
fn a_handler_given_the_wrong_input_names_the_field_and_the_stable_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let world = MemoryWorld::new(group(vec![], 2));
        let h = InProcess::new(&world, Config::default());
        let e = h
            .call(
                "lease",
                json!({"operation": "acquire", "instance": "i-0123abcd"}),
            )
            .await
            .expect_err("no incident id");
        assert_eq!(e.name, "InvalidInput");
        assert!(e.cause.contains("incident_id"), "{}", e.cause);
        let e = h
            .call(
                "lease",
                json!({"operation": "steal", "incident_id": "x", "instance": "i-0123abcd"}),
            )
            .await
            .expect_err("bad op");
        assert!(e.cause.contains("steal"), "{}", e.cause);
        let e = h
            .call(
                "detect",
                json!({"scope": {"target_group_arn": "not-an-arn"}}),
            )
            .await
            .expect_err("bad arn");
        assert!(
            e.cause.contains("target_group_arn") && e.cause.contains("target group ARN"),
            "{}",
            e.cause
        );
        let e = h
            .call("nope", json!({}))
            .await
            .expect_err("unknown handler");
        assert_eq!(e.name, "InvalidInput");
        assert!(autoheal_core::ERROR_NAMES.contains(&e.name));
    });
}

/// The Powertools idempotency bug as a test case: there, a record left IN_PROGRESS by a Lambda
/// that died blocked every retry for good. Here an execution dies holding an instance's lease:
/// another execution of the same incident and a later incident find it held, and once the lease
/// TTL has passed the next incident takes it over. No holder blocks an instance for longer.
#[test]
fn a_holder_that_died_blocks_its_instance_only_until_its_lease_expires() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let world = MemoryWorld::new(group(vec![Host::healthy()], 3));
        let cfg = Config::default();
        let instance = iid(0);
        let acquire = |incident: &str, execution: &str| {
            json!({"operation": "acquire", "incident_id": incident, "instance": instance,
                   "execution": execution})
        };
        let exec =
            |n: u32| format!("arn:aws:states:us-east-1:123456789012:execution:autoheal:web-{n}");
        autoheal_handlers::lease(&world, &cfg, acquire("web-incident-1", &exec(1)))
            .await
            .expect("the first execution takes the lease, then dies");
        // Retried by the same execution (a redrive): its own lease, taken again.
        autoheal_handlers::lease(&world, &cfg, acquire("web-incident-1", &exec(1)))
            .await
            .expect("a holder takes its own lease again");
        for (incident, n) in [("web-incident-1", 2), ("web-incident-2", 3)] {
            let e = autoheal_handlers::lease(&world, &cfg, acquire(incident, &exec(n)))
                .await
                .expect_err("held by the dead execution");
            assert_eq!(e.name, "LeaseHeld", "{e}");
        }
        tokio::time::sleep(std::time::Duration::from_secs(cfg.lease_ttl_s + 1)).await;
        autoheal_handlers::lease(&world, &cfg, acquire("web-incident-3", &exec(4)))
            .await
            .expect("past the TTL the next incident takes the lease over");
    });
}
