//! The decision engine: a pure function from what is known about an incident to what to do.
//!
//! Order of the checks (the first that applies decides):
//! 1. opt-out (`autoheal:skip=true` tag, or `skip` in the instance policy) → `none`;
//! 2. the target left the group → `none`;
//! 3. mass failure (more than `max_unhealthy_percent` of the group failing) → `hold`: a
//!    dependency outage is suspected, and replacing healthy hosts would not help;
//! 4. flapping (`flapping.transitions` serving↔failing changes within the window) →
//!    `quarantine`, never another heal in a loop;
//! 5. the target recovered (healthy, not anomalous) → `none`;
//! 6. fleet-wide overload (at least `overload_slow_percent` of the group slow) with a resource
//!    or slow-application diagnosis → `none`: slow is not dead;
//! 7. cooldown since the instance's last heal → `hold`;
//! 8. the escalation ladder of the diagnosed class: the first rung the instance policy allows
//!    whose attempts within the window are not used up; none left → `hold` for a person;
//! 9. capacity guards on every heal: `max_concurrent_heals` in flight per group, and
//!    `min_healthy_percent` of the group still serving if a serving target is taken out → `hold`;
//! 10. approval: actions in `approval_required_for` wait for a person;
//! 11. dry-run: every heal becomes `observe`, with the intended action recorded.

use serde::{Deserialize, Serialize};

use crate::health::{GroupCounts, GroupSnapshot};
use crate::incident::{History, Incident};
use crate::observe::tags_opt_out;
use crate::policy::{Action, GlobalPolicy, InstancePolicy};
use crate::rules::{Diagnosis, FaultClass};
use crate::time::Timestamp;

/// The escalation ladder of a class: the heal actions to try, gentlest first. Classes whose
/// cause a gentle action cannot fix start higher (disk corruption and hardware go straight to
/// replacement; an unreachable agent or OS starts with a reboot).
pub fn ladder(class: FaultClass) -> &'static [Action] {
    use Action::*;
    match class {
        FaultClass::Application | FaultClass::ResourceBottleneck | FaultClass::Unknown => {
            &[RestartService, Reboot, Replace]
        }
        FaultClass::DiskFull => &[Cleanup, Reboot, Replace],
        FaultClass::AgentFailure | FaultClass::OsLevel | FaultClass::Network => &[Reboot, Replace],
        FaultClass::DiskCorruption | FaultClass::Hardware => &[Replace],
        FaultClass::Flapping => &[Quarantine],
        FaultClass::Dependency => &[],
    }
}

/// Everything the engine decides on.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub incident: &'a Incident,
    pub diagnosis: &'a Diagnosis,
    pub snapshot: &'a GroupSnapshot,
    /// The instance's policy (store entry, else the global policy's `instances` entry, else
    /// the default); see [`GlobalPolicy::instance`].
    pub instance_policy: &'a InstancePolicy,
    pub history: &'a History,
    pub policy: &'a GlobalPolicy,
    pub now: Timestamp,
}

/// The rung of the ladder a heal action was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    pub action: Action,
    /// 1-based attempt number of this action within the attempt window.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The ladder after the instance policy's filter.
    pub ladder: Vec<Action>,
}

/// What to do, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// In dry-run, the heal that would have run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended: Option<Action>,
    pub requires_approval: bool,
    /// The class the decision acted on (the diagnosis's, or Flapping / Dependency when the
    /// history or the fleet says so).
    pub class: FaultClass,
    /// One or two sentences for people.
    pub reason: String,
    /// The diagnosis rule and the decision rules that produced this decision, in order.
    pub rule_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung: Option<Rung>,
}

/// The group-level verdict of fleet safety (the Guard state runs this before any diagnosis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetVerdict {
    /// Heal targets one by one, within the capacity guards.
    Proceed,
    /// Too much of the group is failing at once: hold every heal, notify.
    DependencyOutageSuspected,
    /// Much of the group is slow: leave slow targets alone, heal only clear host faults.
    Overloaded,
}

/// The fleet-safety assessment of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAssessment {
    pub verdict: FleetVerdict,
    pub counts: GroupCounts,
    pub reason: String,
    pub rule_id: String,
}

/// Assesses a group: mass failure first, then overload.
pub fn assess_fleet(snapshot: &GroupSnapshot, policy: &GlobalPolicy) -> FleetAssessment {
    let c = snapshot.counts();
    let pct = |n: usize| (n * 100).checked_div(c.total).unwrap_or(0);
    if c.total >= policy.outage_min_targets as usize
        && c.failing * 100 > usize::from(policy.max_unhealthy_percent) * c.total
    {
        return FleetAssessment {
            verdict: FleetVerdict::DependencyOutageSuspected,
            counts: c,
            reason: format!(
                "{} of {} targets ({}%) are failing at once, more than max_unhealthy_percent {}%: a dependency outage is suspected, so no target is healed",
                c.failing,
                c.total,
                pct(c.failing),
                policy.max_unhealthy_percent
            ),
            rule_id: "fleet.mass-failure".into(),
        };
    }
    if c.slow >= 2 && c.slow * 100 >= usize::from(policy.overload_slow_percent) * c.total {
        return FleetAssessment {
            verdict: FleetVerdict::Overloaded,
            counts: c,
            reason: format!(
                "{} of {} targets ({}%) are slow (timing out or anomalous), at least overload_slow_percent {}%: the group is overloaded, and slow is not dead",
                c.slow,
                c.total,
                pct(c.slow),
                policy.overload_slow_percent
            ),
            rule_id: "fleet.overload".into(),
        };
    }
    FleetAssessment {
        verdict: FleetVerdict::Proceed,
        counts: c,
        reason: format!(
            "{} of {} targets serving, {} failing",
            c.serving, c.total, c.failing
        ),
        rule_id: "fleet.proceed".into(),
    }
}

struct Builder {
    class: FaultClass,
    rule_ids: Vec<String>,
}

impl Builder {
    fn done(mut self, action: Action, rule: &str, reason: String) -> Decision {
        self.rule_ids.push(rule.to_owned());
        Decision {
            action,
            intended: None,
            requires_approval: false,
            class: self.class,
            reason,
            rule_ids: self.rule_ids,
            rung: None,
        }
    }
}

/// Decides what to do about one incident. Pure and deterministic: equal inputs give equal
/// decisions.
pub fn decide(input: &DecisionInput<'_>) -> Decision {
    let DecisionInput {
        incident,
        diagnosis,
        snapshot,
        instance_policy,
        history,
        policy,
        now,
    } = *input;
    let instance = &incident.instance;
    let mut b = Builder {
        class: diagnosis.class,
        rule_ids: Vec::new(),
    };
    if let Some(rule) = &diagnosis.rule_id {
        b.rule_ids.push(format!("diagnosis.{rule}"));
    }

    // 1. Opt-out.
    if tags_opt_out(&incident.tags) {
        return b.done(
            Action::None,
            "instance.opted-out",
            format!("{instance} carries the tag autoheal:skip=true; autoheal leaves it alone"),
        );
    }
    if instance_policy.skip {
        return b.done(
            Action::None,
            "instance.opted-out",
            format!("the instance policy of {instance} says skip; autoheal leaves it alone"),
        );
    }

    // 2. The target left the group.
    let Some(target) = snapshot.target(instance) else {
        return b.done(
            Action::None,
            "target.deregistered",
            format!(
                "{instance} is no longer registered in {}",
                snapshot.target_group.name()
            ),
        );
    };

    // 2b. Still booting: a new instance fails its checks until its application is up (the Auto
    // Scaling health-check grace period).
    if let Some(launched) = incident.launched_at {
        let age = now.seconds_since(launched);
        if age < policy.launch_grace_s {
            return b.done(
                Action::None,
                "instance.launch-grace",
                format!(
                    "{instance} launched {age} s ago, within the {} s launch grace period: it is still booting",
                    policy.launch_grace_s
                ),
            );
        }
    }

    // 3. Mass failure.
    let fleet = assess_fleet(snapshot, policy);
    if fleet.verdict == FleetVerdict::DependencyOutageSuspected {
        b.class = FaultClass::Dependency;
        return b.done(Action::Hold, &fleet.rule_id, fleet.reason);
    }

    // 4. Flapping.
    let flaps = history.flaps(instance, now, policy.flapping.window_s);
    let chosen: (Action, Option<Rung>, String, String) = if flaps >= policy.flapping.transitions {
        b.class = FaultClass::Flapping;
        if !instance_policy.allows(Action::Quarantine) {
            return b.done(
                Action::Hold,
                "flapping.quarantine-not-allowed",
                format!("{instance} changed between serving and failing {flaps} times in {} s, but its policy does not allow quarantine; a person must look", policy.flapping.window_s),
            );
        }
        (
            Action::Quarantine,
            None,
            "flapping.quarantine".to_owned(),
            format!(
                "{instance} changed between serving and failing {flaps} times in {} s (limit {}): quarantine it for investigation instead of healing in a loop",
                policy.flapping.window_s, policy.flapping.transitions
            ),
        )
    } else {
        // 5. Recovered.
        if target.state.is_serving() && !target.is_anomalous() {
            return b.done(
                Action::None,
                "target.recovered",
                format!("{instance} is healthy again; nothing to heal"),
            );
        }

        // 6. Overload: slow is not dead.
        // A target that times out from the load balancer while its own probe passes reads as
        // a network fault on its own, but in an overloaded group it is simply slow.
        let slow_class = diagnosis.class == FaultClass::ResourceBottleneck
            || (target.is_slow()
                && matches!(
                    diagnosis.class,
                    FaultClass::Application | FaultClass::Unknown | FaultClass::Network
                ));
        if fleet.verdict == FleetVerdict::Overloaded && slow_class {
            return b.done(Action::None, &fleet.rule_id, fleet.reason);
        }

        // 7. Cooldown.
        let cooldown = instance_policy.cooldown_s.unwrap_or(policy.cooldown_s);
        if let Some(last) = history.last_heal(instance, now, Some(&incident.id)) {
            let since = now.seconds_since(last.started_at);
            if since < cooldown {
                return b.done(
                    Action::Hold,
                    "instance.cooldown",
                    format!("{instance} was last healed ({}) {since} s ago, within its {cooldown} s cooldown", last.action),
                );
            }
        }

        // 8. The escalation ladder.
        if diagnosis.class == FaultClass::Dependency {
            return b.done(
                Action::Hold,
                "diagnosis.dependency",
                format!(
                    "{instance} depends on something that is down; healing the host would not help"
                ),
            );
        }
        let allowed: Vec<Action> = ladder(diagnosis.class)
            .iter()
            .copied()
            .filter(|a| instance_policy.allows(*a))
            .collect();
        let window = policy.ladder.attempt_window_s;
        let next = allowed.iter().copied().find_map(|a| {
            let used = history.attempts(instance, a, now, window);
            let max = policy.ladder.max_attempts.for_action(a);
            (used < max).then_some((a, used + 1, max))
        });
        let Some((action, attempt, max_attempts)) = next else {
            let tried = allowed
                .iter()
                .map(|a| format!("{a} ×{}", history.attempts(instance, *a, now, window)))
                .collect::<Vec<_>>()
                .join(", ");
            return b.done(
                Action::Hold,
                "ladder.exhausted",
                format!(
                    "every rung of the {} ladder allowed for {instance} is used up within {window} s ({}); a person must look",
                    diagnosis.class,
                    if tried.is_empty() { "no rung allowed".to_owned() } else { tried }
                ),
            );
        };
        let why = if diagnosis.class == FaultClass::Unknown {
            "the cause is unknown, so autoheal starts at the gentlest rung".to_owned()
        } else {
            diagnosis.summary.trim_end_matches('.').to_owned()
        };
        (
            action,
            Some(Rung {
                action,
                attempt,
                max_attempts,
                ladder: allowed,
            }),
            format!("ladder.{action}"),
            format!(
                "{action} (attempt {attempt} of {max_attempts}) for {}: {why}",
                diagnosis.class
            ),
        )
    };
    let (action, rung, rule, reason) = chosen;

    // 9. Capacity guards.
    let in_flight = snapshot.in_flight.iter().filter(|i| *i != instance).count();
    if in_flight >= policy.max_concurrent_heals as usize {
        return b.done(
            Action::Hold,
            "fleet.max-concurrent",
            format!("{in_flight} heal(s) already in flight in {}, max_concurrent_heals is {}; {action} waits", snapshot.target_group.name(), policy.max_concurrent_heals),
        );
    }
    if target.state.is_serving() {
        let c = snapshot.counts();
        let serving_after = snapshot
            .targets
            .iter()
            .filter(|t| {
                t.state.is_serving()
                    && &t.instance != instance
                    && !snapshot.in_flight.contains(&t.instance)
            })
            .count();
        if serving_after * 100 < usize::from(policy.min_healthy_percent) * c.total {
            return b.done(
                Action::Hold,
                "fleet.min-healthy",
                format!(
                    "taking {instance} out would leave {serving_after} of {} targets serving, under min_healthy_percent {}%; {action} waits",
                    c.total, policy.min_healthy_percent
                ),
            );
        }
    }

    b.rule_ids.push(rule);
    let mut decision = Decision {
        action,
        intended: None,
        requires_approval: false,
        class: b.class,
        reason,
        rule_ids: b.rule_ids,
        rung,
    };

    // 10. Approval.
    if policy.approval_required_for.contains(&action) {
        decision.requires_approval = true;
        decision.rule_ids.push(format!("approval.{action}"));
        decision.reason.push_str("; waits for a person's approval");
    }

    // 11. Dry-run.
    if policy.dry_run {
        decision.intended = Some(action);
        decision.action = Action::Observe;
        decision.requires_approval = false;
        decision.rule_ids.push("policy.dry-run".into());
        decision.reason = format!("dry-run: would {}", decision.reason);
    }
    decision
}

#[cfg(test)]
mod tests;
