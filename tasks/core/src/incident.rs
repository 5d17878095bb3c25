//! Incidents and the per-instance history the decision engine reads (past heals, health
//! transitions).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::health::HealthState;
use crate::ids::{AsgName, IncidentId, InstanceId, TargetGroupArn};
use crate::policy::Action;
use crate::rules::Diagnosis;
use crate::time::Timestamp;

/// One incident: one target of one target group needing attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub target_group: TargetGroupArn,
    pub instance: InstanceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg: Option<AsgName>,
    pub detected_at: Timestamp,
    /// The instance's EC2 tags when the incident was opened (for `autoheal:skip`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// When EC2 launched the instance (for the launch grace period), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<Timestamp>,
}

/// How a heal attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealOutcome {
    InProgress,
    /// Verified healthy afterwards.
    Healed,
    /// The action or its verification failed.
    Failed,
}

/// One heal attempt on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealRecord {
    pub instance: InstanceId,
    pub action: Action,
    pub started_at: Timestamp,
    pub outcome: HealOutcome,
    /// The incident the attempt belonged to: its own attempts never put it in cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
}

/// A change of an instance's target health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub instance: InstanceId,
    pub at: Timestamp,
    pub from: HealthState,
    pub to: HealthState,
}

/// Recent history of an instance, as the store returns it. Entries of other instances are
/// ignored by every reader, so a caller may pass a group's history unfiltered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default)]
    pub heals: Vec<HealRecord>,
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

impl History {
    /// Attempts of `action` on `instance` started within `window_s` before `now`.
    pub fn attempts(
        &self,
        instance: &InstanceId,
        action: Action,
        now: Timestamp,
        window_s: u64,
    ) -> u32 {
        let since = now.minus_secs(window_s);
        let n = self
            .heals
            .iter()
            .filter(|h| {
                &h.instance == instance
                    && h.action == action
                    && h.started_at >= since
                    && h.started_at <= now
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The most recent heal of `instance` at or before `now` by another incident than
    /// `current` (escalating within one incident is not a new heal, so no cooldown applies).
    pub fn last_heal(
        &self,
        instance: &InstanceId,
        now: Timestamp,
        current: Option<&IncidentId>,
    ) -> Option<&HealRecord> {
        self.heals
            .iter()
            .filter(|h| &h.instance == instance && h.action.is_mutating() && h.started_at <= now)
            .filter(|h| current.is_none() || h.incident.as_ref() != current)
            .max_by_key(|h| h.started_at)
    }

    /// Transitions between serving and not serving of `instance` within `window_s` before `now`.
    pub fn flaps(&self, instance: &InstanceId, now: Timestamp, window_s: u64) -> u32 {
        let since = now.minus_secs(window_s);
        let n = self
            .transitions
            .iter()
            .filter(|t| {
                &t.instance == instance
                    && t.at >= since
                    && t.at <= now
                    && t.from.is_serving() != t.to.is_serving()
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Being worked on.
    Open,
    /// Healed and verified.
    Healed,
    /// Fleet safety, cooldown, an exhausted ladder or a denied approval held it back.
    Held,
    /// Handed to a person (quarantine, ladder exhausted).
    Escalated,
    /// Dry-run: decided and recorded only.
    Observed,
    /// Nothing needed doing (recovered, opted out).
    NoAction,
    /// A step failed; `failure` says which and why.
    Failed,
}

impl IncidentStatus {
    /// The wire name (`healed`, `no_action`, ...), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Healed => "healed",
            Self::Held => "held",
            Self::Escalated => "escalated",
            Self::Observed => "observed",
            Self::NoAction => "no_action",
            Self::Failed => "failed",
        }
    }

    /// The incident has ended one way or another.
    pub fn is_terminal(self) -> bool {
        self != Self::Open
    }
}

/// One step of an incident's handling, for the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The state name (`Diagnose`, `RestartService`, `Verify`, ...).
    pub name: String,
    pub at: Timestamp,
    pub detail: String,
}

/// An incident as stored (DynamoDB or the embedded store) and notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub incident: Incident,
    pub status: IncidentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// The stable error name and cause when the status is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    pub updated_at: Timestamp,
}

/// Records in the order they happened: by detection time, then id.
pub fn sort_by_detection(records: &mut [IncidentRecord]) {
    records.sort_by(|a, b| {
        a.incident
            .detected_at
            .cmp(&b.incident.detected_at)
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialised_ones() {
        for st in [
            IncidentStatus::Open,
            IncidentStatus::Healed,
            IncidentStatus::Held,
            IncidentStatus::Escalated,
            IncidentStatus::Observed,
            IncidentStatus::NoAction,
            IncidentStatus::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(st).ok(),
                Some(serde_json::json!(st.as_str()))
            );
        }
    }

    fn id(n: u32) -> InstanceId {
        InstanceId::parse(format!("i-{n:08x}")).expect("valid")
    }

    #[test]
    fn attempts_count_only_this_instance_action_and_window() {
        let h = History {
            heals: vec![
                HealRecord {
                    instance: id(1),
                    action: Action::RestartService,
                    started_at: Timestamp(1000),
                    outcome: HealOutcome::Failed,
                    incident: None,
                },
                HealRecord {
                    instance: id(1),
                    action: Action::RestartService,
                    started_at: Timestamp(100),
                    outcome: HealOutcome::Healed,
                    incident: None,
                },
                HealRecord {
                    instance: id(2),
                    action: Action::RestartService,
                    started_at: Timestamp(1000),
                    outcome: HealOutcome::Failed,
                    incident: None,
                },
                HealRecord {
                    instance: id(1),
                    action: Action::Reboot,
                    started_at: Timestamp(1000),
                    outcome: HealOutcome::Failed,
                    incident: None,
                },
            ],
            transitions: vec![],
        };
        assert_eq!(
            h.attempts(&id(1), Action::RestartService, Timestamp(1100), 500),
            1
        );
        assert_eq!(
            h.attempts(&id(1), Action::RestartService, Timestamp(1100), 5000),
            2
        );
    }

    #[test]
    fn flaps_count_serving_changes_only() {
        let t = |at, from, to| Transition {
            instance: id(1),
            at: Timestamp(at),
            from,
            to,
        };
        let h = History {
            heals: vec![],
            transitions: vec![
                t(10, HealthState::Initial, HealthState::Healthy),
                t(20, HealthState::Healthy, HealthState::Unhealthy),
                t(30, HealthState::Unhealthy, HealthState::UnhealthyDraining),
                t(40, HealthState::Unhealthy, HealthState::Healthy),
            ],
        };
        assert_eq!(h.flaps(&id(1), Timestamp(50), 100), 3);
        // From 15 on: 20 (healthy→unhealthy) and 40 (unhealthy→healthy); 30 stays failing.
        assert_eq!(h.flaps(&id(1), Timestamp(50), 35), 2);
        assert_eq!(h.flaps(&id(1), Timestamp(50), 25), 1);
    }
}
