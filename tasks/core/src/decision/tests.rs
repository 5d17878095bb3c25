use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::health::{Anomaly, AnomalyResult, HealthState, ReasonCode, TargetHealth};
use crate::ids::{IncidentId, InstanceId, TargetGroupArn};
use crate::incident::{HealOutcome, HealRecord, Transition};

const NOW: Timestamp = Timestamp(1_800_000_000);

fn iid(n: usize) -> InstanceId {
    InstanceId::parse(format!("i-{n:08x}")).expect("valid")
}

fn tg() -> TargetGroupArn {
    TargetGroupArn::parse(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    )
    .expect("valid")
}

fn target(n: usize, state: HealthState, reason: Option<ReasonCode>) -> TargetHealth {
    TargetHealth {
        instance: iid(n),
        port: 8080,
        state,
        reason,
        description: None,
        anomaly: None,
    }
}

/// A scene: a group of `total` targets where target 0 is the incident's and `failing` targets
/// (starting with target 0) fail health checks.
#[derive(Debug, Clone)]
struct Scene {
    snapshot: GroupSnapshot,
    incident: Incident,
    diagnosis: Diagnosis,
    policy: GlobalPolicy,
    instance_policy: InstancePolicy,
    history: History,
}

impl Scene {
    fn new(total: usize, failing: usize, class: FaultClass) -> Self {
        let targets = (0..total)
            .map(|n| {
                if n < failing {
                    target(
                        n,
                        HealthState::Unhealthy,
                        Some(ReasonCode::FailedHealthChecks),
                    )
                } else {
                    target(n, HealthState::Healthy, None)
                }
            })
            .collect();
        let mut diagnosis = Diagnosis::unknown("test");
        diagnosis.class = class;
        if class != FaultClass::Unknown {
            diagnosis.confidence = 0.9;
            diagnosis.rule_id = Some("test.rule".into());
            diagnosis.summary = format!("a {class} fault");
        }
        Scene {
            snapshot: GroupSnapshot {
                target_group: tg(),
                targets,
                in_flight: vec![],
            },
            incident: Incident {
                id: IncidentId::parse("web-i-00000000-1").expect("valid"),
                target_group: tg(),
                instance: iid(0),
                asg: None,
                detected_at: NOW,
                tags: BTreeMap::new(),
                launched_at: None,
            },
            diagnosis,
            policy: GlobalPolicy {
                approval_required_for: BTreeSet::new(),
                ..GlobalPolicy::default()
            },
            instance_policy: InstancePolicy::default(),
            history: History::default(),
        }
    }

    fn healed(mut self, action: Action, secs_ago: u64) -> Self {
        self.history.heals.push(HealRecord {
            instance: iid(0),
            action,
            started_at: NOW.minus_secs(secs_ago),
            outcome: HealOutcome::Failed,
            incident: None,
        });
        self
    }

    fn decide(&self) -> Decision {
        decide(&DecisionInput {
            incident: &self.incident,
            diagnosis: &self.diagnosis,
            snapshot: &self.snapshot,
            instance_policy: &self.instance_policy,
            history: &self.history,
            policy: &self.policy,
            now: NOW,
        })
    }
}

fn has_rule(d: &Decision, rule: &str) -> bool {
    d.rule_ids.iter().any(|r| r == rule)
}

// --- fleet safety -----------------------------------------------------------------------------

#[test]
fn every_heal_is_held_when_most_of_the_group_fails_at_once() {
    let d = Scene::new(6, 4, FaultClass::Application).decide();
    assert_eq!(d.action, Action::Hold);
    assert_eq!(d.class, FaultClass::Dependency);
    assert!(has_rule(&d, "fleet.mass-failure"), "{d:?}");
    assert!(
        d.reason.contains("dependency outage is suspected"),
        "{}",
        d.reason
    );
}

#[test]
fn exactly_max_unhealthy_percent_failing_still_heals() {
    // 3 of 6 = 50 %, not more than 50 %.
    let d = Scene::new(6, 3, FaultClass::Application).decide();
    assert_eq!(d.action, Action::RestartService, "{d:?}");
}

#[test]
fn groups_smaller_than_outage_min_targets_are_exempt_from_the_mass_failure_check() {
    let d = Scene::new(2, 2, FaultClass::Application).decide();
    assert_eq!(d.action, Action::RestartService, "{d:?}");
}

#[test]
fn heals_we_started_ourselves_do_not_count_as_a_mass_failure() {
    let mut s = Scene::new(6, 4, FaultClass::Application);
    s.policy.max_concurrent_heals = 3;
    s.snapshot.in_flight = vec![iid(1), iid(2)];
    // 2 failing of 6 once our own two drained targets are discounted.
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn a_heal_that_would_drop_serving_capacity_under_min_healthy_is_held() {
    // The incident's target is serving but anomalous (a gray failure); 2 of 3 others serve.
    let mut s = Scene::new(4, 0, FaultClass::Application);
    s.snapshot.targets[0].anomaly = Some(Anomaly {
        result: AnomalyResult::Anomalous,
        mitigation_in_effect: false,
    });
    s.snapshot.targets[1] = target(
        1,
        HealthState::Unhealthy,
        Some(ReasonCode::FailedHealthChecks),
    );
    s.policy.min_healthy_percent = 75;
    let d = s.decide();
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(has_rule(&d, "fleet.min-healthy"));
    s.policy.min_healthy_percent = 50;
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn healing_a_failing_target_never_counts_against_min_healthy() {
    // 3 of 4 serve (75 % < 80 %), but healing the failing one takes nothing out of service.
    let mut s = Scene::new(4, 1, FaultClass::Application);
    s.policy.min_healthy_percent = 80;
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn a_heal_waits_while_max_concurrent_heals_are_in_flight() {
    let mut s = Scene::new(6, 2, FaultClass::Application);
    s.snapshot.in_flight = vec![iid(1)];
    let d = s.decide();
    assert_eq!(d.action, Action::Hold);
    assert!(has_rule(&d, "fleet.max-concurrent"));
    s.policy.max_concurrent_heals = 2;
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn the_incidents_own_lease_is_not_counted_as_another_heal_in_flight() {
    let mut s = Scene::new(6, 1, FaultClass::Application);
    s.snapshot.in_flight = vec![iid(0)];
    assert_eq!(s.decide().action, Action::RestartService);
}

// --- slow is not dead -------------------------------------------------------------------------

fn overloaded(class: FaultClass) -> Scene {
    let mut s = Scene::new(10, 0, class);
    for n in 0..4 {
        s.snapshot.targets[n] = target(n, HealthState::Unhealthy, Some(ReasonCode::Timeout));
    }
    s
}

#[test]
fn fleet_wide_overload_never_heals_a_resource_bottleneck() {
    let s = overloaded(FaultClass::ResourceBottleneck)
        .healed(Action::RestartService, 7200)
        .healed(Action::RestartService, 3600);
    let d = s.decide();
    assert_eq!(d.action, Action::None, "{d:?}");
    assert!(has_rule(&d, "fleet.overload"));
    assert!(d.reason.contains("slow is not dead"), "{}", d.reason);
}

#[test]
fn fleet_wide_overload_leaves_a_slow_target_of_unknown_cause_alone() {
    assert_eq!(
        overloaded(FaultClass::Unknown).decide().action,
        Action::None
    );
}

#[test]
fn a_hardware_fault_is_still_replaced_during_overload() {
    assert_eq!(
        overloaded(FaultClass::Hardware).decide().action,
        Action::Replace
    );
}

#[test]
fn one_slow_target_in_a_calm_group_is_healed() {
    let mut s = Scene::new(10, 0, FaultClass::ResourceBottleneck);
    s.snapshot.targets[0] = target(0, HealthState::Unhealthy, Some(ReasonCode::Timeout));
    assert_eq!(s.decide().action, Action::RestartService);
}

// --- escalation ladder ------------------------------------------------------------------------

#[test]
fn a_crashed_service_is_restarted_first() {
    let d = Scene::new(6, 1, FaultClass::Application).decide();
    assert_eq!(d.action, Action::RestartService);
    let rung = d.rung.clone().expect("from the ladder");
    assert_eq!((rung.attempt, rung.max_attempts), (1, 2));
    assert!(
        has_rule(&d, "diagnosis.test.rule") && has_rule(&d, "ladder.restart_service"),
        "{d:?}"
    );
}

#[test]
fn a_failed_restart_is_retried_up_to_its_limit_then_the_instance_is_rebooted() {
    let s = Scene::new(6, 1, FaultClass::Application).healed(Action::RestartService, 3600);
    let d = s.decide();
    assert_eq!(d.action, Action::RestartService);
    assert_eq!(d.rung.map(|r| r.attempt), Some(2));
    let s = s.healed(Action::RestartService, 1800);
    assert_eq!(s.decide().action, Action::Reboot);
}

#[test]
fn after_a_failed_reboot_the_instance_is_replaced() {
    let s = Scene::new(6, 1, FaultClass::Application)
        .healed(Action::RestartService, 7200)
        .healed(Action::RestartService, 5400)
        .healed(Action::Reboot, 3600);
    assert_eq!(s.decide().action, Action::Replace);
}

#[test]
fn an_exhausted_ladder_holds_for_a_person() {
    let s = Scene::new(6, 1, FaultClass::Application)
        .healed(Action::RestartService, 9000)
        .healed(Action::RestartService, 7200)
        .healed(Action::Reboot, 5400)
        .healed(Action::Replace, 3600);
    let d = s.decide();
    assert_eq!(d.action, Action::Hold);
    assert!(has_rule(&d, "ladder.exhausted"));
    assert!(d.reason.contains("a person must look"), "{}", d.reason);
}

#[test]
fn attempts_older_than_the_window_are_forgotten() {
    let s = Scene::new(6, 1, FaultClass::Application)
        .healed(Action::RestartService, 200_000)
        .healed(Action::RestartService, 190_000);
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn a_recurring_memory_leak_escalates_past_restarts() {
    let s = Scene::new(6, 1, FaultClass::ResourceBottleneck)
        .healed(Action::RestartService, 40_000)
        .healed(Action::RestartService, 20_000);
    assert_eq!(s.decide().action, Action::Reboot);
}

#[test]
fn disk_corruption_goes_straight_to_replacement() {
    assert_eq!(
        Scene::new(6, 1, FaultClass::DiskCorruption).decide().action,
        Action::Replace
    );
}

#[test]
fn a_hardware_failure_goes_straight_to_replacement() {
    assert_eq!(
        Scene::new(6, 1, FaultClass::Hardware).decide().action,
        Action::Replace
    );
}

#[test]
fn an_unreachable_agent_an_os_hang_and_a_network_fault_start_with_a_reboot() {
    for class in [
        FaultClass::AgentFailure,
        FaultClass::OsLevel,
        FaultClass::Network,
    ] {
        assert_eq!(
            Scene::new(6, 1, class).decide().action,
            Action::Reboot,
            "{class}"
        );
    }
}

#[test]
fn a_full_disk_is_cleaned_up_first_then_rebooted() {
    let s = Scene::new(6, 1, FaultClass::DiskFull);
    assert_eq!(s.decide().action, Action::Cleanup);
    assert_eq!(
        s.healed(Action::Cleanup, 3600).decide().action,
        Action::Reboot
    );
}

#[test]
fn an_unknown_cause_starts_at_the_gentlest_rung_and_says_so() {
    let d = Scene::new(6, 1, FaultClass::Unknown).decide();
    assert_eq!(d.action, Action::RestartService);
    assert_eq!(d.class, FaultClass::Unknown);
    assert!(d.reason.contains("cause is unknown"), "{}", d.reason);
}

#[test]
fn a_dependency_diagnosis_on_one_target_holds() {
    let d = Scene::new(6, 1, FaultClass::Dependency).decide();
    assert_eq!(d.action, Action::Hold);
    assert!(has_rule(&d, "diagnosis.dependency"));
}

// --- flapping ---------------------------------------------------------------------------------

fn flapping(n: usize) -> Scene {
    let mut s = Scene::new(6, 1, FaultClass::Application);
    for k in 0..n {
        let (from, to) = if k % 2 == 0 {
            (HealthState::Healthy, HealthState::Unhealthy)
        } else {
            (HealthState::Unhealthy, HealthState::Healthy)
        };
        s.history.transitions.push(Transition {
            instance: iid(0),
            at: NOW.minus_secs(60 * (k as u64 + 1)),
            from,
            to,
        });
    }
    s
}

#[test]
fn a_flapping_target_is_quarantined_not_healed_again() {
    let d = flapping(4).decide();
    assert_eq!(d.action, Action::Quarantine);
    assert_eq!(d.class, FaultClass::Flapping);
    assert!(has_rule(&d, "flapping.quarantine"));
}

#[test]
fn fewer_transitions_than_the_limit_are_not_flapping() {
    assert_eq!(flapping(3).decide().action, Action::RestartService);
}

#[test]
fn a_flapping_target_is_quarantined_even_while_it_looks_healthy() {
    let mut s = flapping(5);
    s.snapshot.targets[0] = target(0, HealthState::Healthy, None);
    assert_eq!(s.decide().action, Action::Quarantine);
}

#[test]
fn flapping_where_quarantine_is_not_allowed_holds_for_a_person() {
    let mut s = flapping(4);
    s.instance_policy.allowed_actions = Some(BTreeSet::from([Action::RestartService]));
    let d = s.decide();
    assert_eq!(d.action, Action::Hold);
    assert!(has_rule(&d, "flapping.quarantine-not-allowed"));
}

// --- per-instance policy and tags -------------------------------------------------------------

#[test]
fn the_skip_tag_opts_an_instance_out() {
    let mut s = Scene::new(6, 1, FaultClass::Hardware);
    s.incident
        .tags
        .insert("autoheal:skip".into(), "True".into());
    let d = s.decide();
    assert_eq!(d.action, Action::None);
    assert!(has_rule(&d, "instance.opted-out"));
    s.incident
        .tags
        .insert("autoheal:skip".into(), "false".into());
    assert_eq!(s.decide().action, Action::Replace);
}

#[test]
fn skip_in_the_instance_policy_opts_an_instance_out() {
    let mut s = Scene::new(6, 1, FaultClass::Hardware);
    s.instance_policy.skip = true;
    assert_eq!(s.decide().action, Action::None);
}

#[test]
fn a_heal_within_the_cooldown_is_held() {
    let s = Scene::new(6, 1, FaultClass::Application).healed(Action::RestartService, 120);
    let d = s.decide();
    assert_eq!(d.action, Action::Hold);
    assert!(has_rule(&d, "instance.cooldown"));
}

#[test]
fn the_instance_cooldown_overrides_the_global_one() {
    let mut s = Scene::new(6, 1, FaultClass::Application).healed(Action::RestartService, 120);
    s.instance_policy.cooldown_s = Some(60);
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn rungs_the_instance_policy_disallows_are_passed_over() {
    let mut s = Scene::new(6, 1, FaultClass::Application);
    s.instance_policy.allowed_actions = Some(BTreeSet::from([Action::Reboot, Action::Replace]));
    let d = s.decide();
    assert_eq!(d.action, Action::Reboot);
    assert_eq!(
        d.rung.map(|r| r.ladder),
        Some(vec![Action::Reboot, Action::Replace])
    );
}

#[test]
fn no_allowed_rung_holds() {
    let mut s = Scene::new(6, 1, FaultClass::Hardware);
    s.instance_policy.allowed_actions = Some(BTreeSet::from([Action::RestartService]));
    let d = s.decide();
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("no rung allowed"), "{}", d.reason);
}

// --- dry-run and approval ---------------------------------------------------------------------

#[test]
fn dry_run_records_the_intended_heal_but_only_observes() {
    let mut s = Scene::new(6, 1, FaultClass::Hardware);
    s.policy.dry_run = true;
    s.policy.approval_required_for = BTreeSet::from([Action::Replace]);
    let d = s.decide();
    assert_eq!(d.action, Action::Observe);
    assert_eq!(d.intended, Some(Action::Replace));
    assert!(!d.requires_approval);
    assert!(
        d.reason.starts_with("dry-run: would replace"),
        "{}",
        d.reason
    );
    assert!(has_rule(&d, "policy.dry-run"));
}

#[test]
fn dry_run_keeps_holds_as_holds() {
    let mut s = Scene::new(6, 5, FaultClass::Application);
    s.policy.dry_run = true;
    assert_eq!(s.decide().action, Action::Hold);
}

#[test]
fn replacement_requires_approval_by_default() {
    let mut s = Scene::new(6, 1, FaultClass::Hardware);
    s.policy = GlobalPolicy::default();
    let d = s.decide();
    assert_eq!(d.action, Action::Replace);
    assert!(d.requires_approval);
    assert!(has_rule(&d, "approval.replace"));
}

#[test]
fn approval_is_configurable_per_action() {
    let mut s = Scene::new(6, 1, FaultClass::AgentFailure);
    s.policy.approval_required_for = BTreeSet::from([Action::Reboot]);
    assert!(s.decide().requires_approval);
    s.policy.approval_required_for.clear();
    assert!(!s.decide().requires_approval);
}

// --- the target itself ------------------------------------------------------------------------

#[test]
fn a_target_that_recovered_needs_nothing() {
    let mut s = Scene::new(6, 1, FaultClass::Application);
    s.snapshot.targets[0] = target(0, HealthState::Healthy, None);
    let d = s.decide();
    assert_eq!(d.action, Action::None);
    assert!(has_rule(&d, "target.recovered"));
}

#[test]
fn a_healthy_but_anomalous_target_is_healed() {
    let mut s = Scene::new(6, 0, FaultClass::Application);
    s.snapshot.targets[0].anomaly = Some(Anomaly {
        result: AnomalyResult::Anomalous,
        mitigation_in_effect: true,
    });
    assert_eq!(s.decide().action, Action::RestartService);
}

#[test]
fn a_target_that_left_the_group_needs_nothing() {
    let mut s = Scene::new(6, 1, FaultClass::Application);
    s.snapshot.targets.remove(0);
    let d = s.decide();
    assert_eq!(d.action, Action::None);
    assert!(has_rule(&d, "target.deregistered"));
}

// --- the group-level guard --------------------------------------------------------------------

#[test]
fn the_fleet_guard_reports_mass_failure_overload_and_proceed() {
    let p = GlobalPolicy::default();
    assert_eq!(
        assess_fleet(&Scene::new(6, 4, FaultClass::Unknown).snapshot, &p).verdict,
        FleetVerdict::DependencyOutageSuspected
    );
    assert_eq!(
        assess_fleet(&overloaded(FaultClass::Unknown).snapshot, &p).verdict,
        FleetVerdict::Overloaded
    );
    assert_eq!(
        assess_fleet(&Scene::new(6, 1, FaultClass::Unknown).snapshot, &p).verdict,
        FleetVerdict::Proceed
    );
}

// --- properties -------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = HealthState> {
        prop::sample::select(HealthState::ALL.to_vec())
    }

    fn reason() -> impl Strategy<Value = Option<ReasonCode>> {
        prop::option::of(prop::sample::select(vec![
            ReasonCode::Timeout,
            ReasonCode::FailedHealthChecks,
            ReasonCode::ResponseCodeMismatch,
        ]))
    }

    fn anomaly() -> impl Strategy<Value = Option<Anomaly>> {
        prop::option::of(prop::bool::ANY.prop_map(|a| Anomaly {
            result: if a {
                AnomalyResult::Anomalous
            } else {
                AnomalyResult::Normal
            },
            mitigation_in_effect: false,
        }))
    }

    fn heal_action() -> impl Strategy<Value = Action> {
        prop::sample::select(vec![
            Action::Cleanup,
            Action::RestartService,
            Action::Reboot,
            Action::Replace,
            Action::Quarantine,
        ])
    }

    prop_compose! {
        fn snapshot()(
            states in prop::collection::vec((state(), reason(), anomaly()), 1..14),
            in_flight_mask in prop::collection::vec(prop::bool::weighted(0.15), 14),
        ) -> GroupSnapshot {
            let targets: Vec<TargetHealth> = states.into_iter().enumerate().map(|(n, (state, reason, anomaly))| {
                TargetHealth { instance: iid(n), port: 80, state, reason, description: None, anomaly }
            }).collect();
            let in_flight = targets.iter().zip(in_flight_mask).filter(|(_, f)| *f).map(|(t, _)| t.instance.clone()).collect();
            GroupSnapshot { target_group: tg(), targets, in_flight }
        }
    }

    prop_compose! {
        fn policy()(
            dry_run in prop::bool::weighted(0.3),
            min_healthy in 0u8..=100,
            max_unhealthy in 1u8..=100,
            outage_min in 0u32..6,
            overload in 1u8..=100,
            max_concurrent in 1u32..4,
            cooldown in 0u64..5000,
            flap_n in 2u32..6,
            limits in (0u32..3, 0u32..4, 0u32..3, 0u32..2),
            approval in prop::collection::btree_set(heal_action(), 0..3),
        ) -> GlobalPolicy {
            GlobalPolicy {
                dry_run,
                min_healthy_percent: min_healthy,
                max_unhealthy_percent: max_unhealthy,
                outage_min_targets: outage_min,
                overload_slow_percent: overload,
                max_concurrent_heals: max_concurrent,
                cooldown_s: cooldown,
                flapping: crate::policy::FlappingPolicy { transitions: flap_n, window_s: 3600 },
                ladder: crate::policy::LadderPolicy {
                    attempt_window_s: 86_400,
                    max_attempts: crate::policy::MaxAttempts { cleanup: limits.0, restart_service: limits.1, reboot: limits.2, replace: limits.3 },
                },
                approval_required_for: approval,
                ..GlobalPolicy::default()
            }
        }
    }

    prop_compose! {
        fn history()(
            heals in prop::collection::vec((heal_action(), 0u64..100_000), 0..8),
            flips in prop::collection::vec((0u64..7200, state(), state()), 0..8),
        ) -> History {
            History {
                heals: heals.into_iter().map(|(action, ago)| HealRecord { instance: iid(0), action, started_at: NOW.minus_secs(ago), outcome: HealOutcome::Failed, incident: None }).collect(),
                transitions: flips.into_iter().map(|(ago, from, to)| Transition { instance: iid(0), at: NOW.minus_secs(ago), from, to }).collect(),
            }
        }
    }

    prop_compose! {
        fn instance_policy()(
            skip in prop::bool::weighted(0.1),
            cooldown in prop::option::of(0u64..5000),
            allowed in prop::option::of(prop::collection::btree_set(heal_action(), 0..5)),
        ) -> InstancePolicy {
            InstancePolicy { skip, cooldown_s: cooldown, allowed_actions: allowed, services: None }
        }
    }

    prop_compose! {
        fn scene()(
            snapshot in snapshot(),
            policy in policy(),
            history in history(),
            instance_policy in instance_policy(),
            class in prop::sample::select(FaultClass::ALL.to_vec()),
            skip_tag in prop::bool::weighted(0.1),
        ) -> Scene {
            let mut s = Scene::new(1, 0, class);
            s.snapshot = snapshot;
            s.policy = policy;
            s.history = history;
            s.instance_policy = instance_policy;
            if skip_tag {
                s.incident.tags.insert("autoheal:skip".into(), "true".into());
            }
            s
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn dry_run_never_yields_a_mutating_action(mut s in scene()) {
            s.policy.dry_run = true;
            let d = s.decide();
            prop_assert!(!d.action.is_mutating(), "{:?}", d);
            prop_assert!(!d.requires_approval);
            if let Some(intended) = d.intended {
                prop_assert_eq!(d.action, Action::Observe);
                prop_assert!(intended.is_mutating());
            }
        }

        #[test]
        fn no_decision_breaks_min_healthy_or_max_concurrent(s in scene()) {
            let d = s.decide();
            let intended = d.intended.unwrap_or(d.action);
            if intended.is_mutating() {
                let me = &s.incident.instance;
                let others_in_flight = s.snapshot.in_flight.iter().filter(|i| *i != me).count();
                prop_assert!(others_in_flight < s.policy.max_concurrent_heals as usize, "{:?}", d);
                let t = s.snapshot.target(me).expect("a heal implies the target is registered");
                if t.state.is_serving() {
                    let total = s.snapshot.counts().total;
                    let serving_after = s.snapshot.targets.iter()
                        .filter(|x| x.state.is_serving() && &x.instance != me && !s.snapshot.in_flight.contains(&x.instance))
                        .count();
                    prop_assert!(serving_after * 100 >= usize::from(s.policy.min_healthy_percent) * total, "{:?}", d);
                }
            }
        }

        #[test]
        fn a_mass_failure_never_leads_to_a_heal(s in scene()) {
            if assess_fleet(&s.snapshot, &s.policy).verdict == FleetVerdict::DependencyOutageSuspected {
                let d = s.decide();
                prop_assert!(!d.intended.unwrap_or(d.action).is_mutating(), "{:?}", d);
            }
        }

        #[test]
        fn fleet_wide_overload_never_leads_to_replacement_of_a_resource_bottleneck(mut s in scene()) {
            s.diagnosis.class = FaultClass::ResourceBottleneck;
            s.history.transitions.clear();
            if assess_fleet(&s.snapshot, &s.policy).verdict == FleetVerdict::Overloaded {
                let d = s.decide();
                prop_assert!(!d.intended.unwrap_or(d.action).is_mutating(), "{:?}", d);
            }
        }

        #[test]
        fn the_ladder_never_skips_a_rung_unless_the_class_or_policy_demands_it(s in scene()) {
            let d = s.decide();
            if let Some(rung) = &d.rung {
                let class_ladder = ladder(s.diagnosis.class);
                prop_assert!(class_ladder.contains(&rung.action), "the class ladder has the rung");
                let me = &s.incident.instance;
                for earlier in class_ladder.iter().take_while(|a| **a != rung.action) {
                    let allowed = s.instance_policy.allows(*earlier);
                    let used = s.history.attempts(me, *earlier, NOW, s.policy.ladder.attempt_window_s);
                    let exhausted = used >= s.policy.ladder.max_attempts.for_action(*earlier);
                    prop_assert!(!allowed || exhausted, "skipped {} with {} attempt(s) left: {:?}", earlier, used, d);
                }
            }
        }

        #[test]
        fn decisions_are_deterministic_for_equal_inputs(s in scene()) {
            prop_assert_eq!(s.decide(), s.decide());
        }

        #[test]
        fn opted_out_instances_are_never_healed(mut s in scene()) {
            s.instance_policy.skip = true;
            prop_assert_eq!(s.decide().action, Action::None);
        }
    }
}

#[test]
fn escalating_within_one_incident_is_not_held_by_the_cooldown() {
    let mut s = Scene::new(6, 1, FaultClass::Application).healed(Action::RestartService, 120);
    assert_eq!(
        s.decide().action,
        Action::Hold,
        "another incident's heal 120 s ago: cooldown"
    );
    s.history.heals[0].incident = Some(s.incident.id.clone());
    let d = s.decide();
    assert_eq!(
        d.action,
        Action::RestartService,
        "this incident's own failed attempt: climb the ladder"
    );
    assert_eq!(d.rung.map(|r| r.attempt), Some(2));
}
