//! The simulated region (`autoheal-sim`) driven by built-in scenarios: the load balancer's own
//! health checks find the fault, then the real handlers on the real state machine heal it.

use std::time::Duration;

use autoheal_asl::{Execution, RunOptions, Runner, Status};
use autoheal_core::health::HealthState;
use autoheal_core::ports::TargetHealthSource;
use autoheal_handlers::{Config, InProcess};
use autoheal_sim::{Region, Scenario};
use autoheal_tests::{autoheal_definition, repo_root};
use serde_json::json;

fn scenario(name: &str) -> Scenario {
    Scenario::load(&repo_root().join(format!("docs/examples/{name}.json")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the scenario's region until `at_s`, then one execution for its first target group, then
/// five more minutes; returns the execution, the region and the targets serving at the end
/// (read inside the runtime: the region advances on the virtual clock).
fn heal_at(s: &Scenario, at_s: u64) -> (Execution, Region, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let sm = autoheal_definition();
    rt.block_on(async {
        let region = Region::new(s).expect("region");
        tokio::time::sleep(Duration::from_secs(at_s)).await;
        let tg = region.target_group_arns()[0].clone();
        let policy = s.policy("scenario").expect("policy");
        let e = {
            let resources = InProcess::new(&region, Config::default());
            let runner = Runner::new(&sm, &resources, RunOptions { state_machine_name: "autoheal".into(), ..RunOptions::default() });
            runner.run(json!({"scope": {"target_group_arn": tg}, "trigger": {"source": "alarm"}, "policy": policy})).await
        };
        // Let the restored target pass the healthy threshold.
        tokio::time::sleep(Duration::from_secs(300)).await;
        let serving = region.serving(&tg);
        (e, region, serving)
    })
}

async fn unhealthy(r: &Region, tg: &autoheal_core::TargetGroupArn) -> usize {
    r.describe_target_health(tg)
        .await
        .expect("health")
        .iter()
        .filter(|t| t.state == HealthState::Unhealthy)
        .count()
}

#[test]
fn the_load_balancer_marks_a_crashed_host_unhealthy_after_the_unhealthy_threshold() {
    let s = scenario("web-app-crash");
    let fault = s.faults[0].at_s;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let region = Region::new(&s).expect("region");
        let tg = region.target_group_arns()[0].clone();
        tokio::time::sleep(Duration::from_secs(fault)).await;
        assert_eq!(unhealthy(&region, &tg).await, 0, "healthy until the fault");
        let interval = s.timings.health_check_interval_s;
        let threshold = u64::from(s.timings.unhealthy_threshold);
        tokio::time::sleep(Duration::from_secs(interval * threshold + interval)).await;
        assert_eq!(
            unhealthy(&region, &tg).await,
            1,
            "unhealthy after {threshold} failed checks"
        );
    });
}

#[test]
fn a_crashed_service_in_the_simulated_region_is_restarted_not_replaced() {
    let s = scenario("web-app-crash");
    let fault = s.faults[0].at_s;
    let detect_at = fault + 90;
    let (e, region, serving) = heal_at(&s, detect_at);
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let out = e.output.expect("output");
    assert_eq!(out["incidents"][0]["status"], "healed", "{out}");
    let calls = region.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("send autoheal-RestartServices")),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("terminate") || c.starts_with("reboot")),
        "{calls:?}"
    );
    assert_eq!(
        serving, s.fleet.target_groups[0].instances as usize,
        "full capacity again"
    );
    let incident = &region.store.incidents()[0];
    assert_eq!(
        incident.diagnosis.as_ref().map(|d| d.class.as_str()),
        Some("Application")
    );
}

#[test]
fn a_dependency_outage_in_the_simulated_region_is_held() {
    let s = scenario("dependency-outage");
    let outage = s
        .faults
        .iter()
        .find(|f| f.kind == autoheal_sim::FaultKind::DependencyOutage)
        .expect("outage");
    let (e, region, _) = heal_at(&s, outage.at_s + 120);
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    assert_eq!(
        e.output.expect("output")["verdict"],
        "dependency_outage_suspected"
    );
    assert!(
        region.calls().is_empty(),
        "nothing touched: {:?}",
        region.calls()
    );
}
