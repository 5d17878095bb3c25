//! Target health as the load balancer reports it, and the target-group snapshot the fleet-safety
//! checks work on.

use serde::{Deserialize, Serialize};

use crate::ids::{InstanceId, TargetGroupArn};

/// `TargetHealth.State` of DescribeTargetHealth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HealthState {
    #[serde(rename = "initial")]
    Initial,
    #[serde(rename = "healthy")]
    Healthy,
    #[serde(rename = "unhealthy")]
    Unhealthy,
    #[serde(rename = "unused")]
    Unused,
    #[serde(rename = "draining")]
    Draining,
    #[serde(rename = "unavailable")]
    Unavailable,
    #[serde(rename = "unhealthy.draining")]
    UnhealthyDraining,
}

impl HealthState {
    /// Every state, in the order of the ELB API documentation.
    pub const ALL: [HealthState; 7] = [
        Self::Initial,
        Self::Healthy,
        Self::Unhealthy,
        Self::Unused,
        Self::Draining,
        Self::Unavailable,
        Self::UnhealthyDraining,
    ];

    /// The wire string (`unhealthy.draining`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Unused => "unused",
            Self::Draining => "draining",
            Self::Unavailable => "unavailable",
            Self::UnhealthyDraining => "unhealthy.draining",
        }
    }

    /// Parses the wire string; unknown states are an error naming the accepted ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown target health state {s:?}: expected one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }

    /// The target receives traffic.
    pub fn is_serving(self) -> bool {
        self == Self::Healthy
    }

    /// The load balancer considers the target failed (as opposed to starting, leaving or unused).
    pub fn is_failing(self) -> bool {
        matches!(
            self,
            Self::Unhealthy | Self::UnhealthyDraining | Self::Unavailable
        )
    }
}

/// `TargetHealth.Reason` of DescribeTargetHealth. Codes this version does not know are kept
/// verbatim in `Other` rather than rejected: AWS adds codes, and a new code must not stop a heal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ReasonCode {
    RegistrationInProgress,
    InitialHealthChecking,
    ResponseCodeMismatch,
    Timeout,
    FailedHealthChecks,
    NotRegistered,
    NotInUse,
    DeregistrationInProgress,
    InvalidState,
    IpUnusable,
    HealthCheckDisabled,
    InternalError,
    Other(String),
}

impl ReasonCode {
    /// Every code ELB documents (all but `Other`).
    pub const KNOWN: [ReasonCode; 12] = [
        Self::RegistrationInProgress,
        Self::InitialHealthChecking,
        Self::ResponseCodeMismatch,
        Self::Timeout,
        Self::FailedHealthChecks,
        Self::NotRegistered,
        Self::NotInUse,
        Self::DeregistrationInProgress,
        Self::InvalidState,
        Self::IpUnusable,
        Self::HealthCheckDisabled,
        Self::InternalError,
    ];

    /// The wire string (`Target.Timeout`, `Elb.InternalError`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::RegistrationInProgress => "Elb.RegistrationInProgress",
            Self::InitialHealthChecking => "Elb.InitialHealthChecking",
            Self::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            Self::Timeout => "Target.Timeout",
            Self::FailedHealthChecks => "Target.FailedHealthChecks",
            Self::NotRegistered => "Target.NotRegistered",
            Self::NotInUse => "Target.NotInUse",
            Self::DeregistrationInProgress => "Target.DeregistrationInProgress",
            Self::InvalidState => "Target.InvalidState",
            Self::IpUnusable => "Target.IpUnusable",
            Self::HealthCheckDisabled => "Target.HealthCheckDisabled",
            Self::InternalError => "Elb.InternalError",
            Self::Other(s) => s,
        }
    }
}

impl From<String> for ReasonCode {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Elb.RegistrationInProgress" => Self::RegistrationInProgress,
            "Elb.InitialHealthChecking" => Self::InitialHealthChecking,
            "Target.ResponseCodeMismatch" => Self::ResponseCodeMismatch,
            "Target.Timeout" => Self::Timeout,
            "Target.FailedHealthChecks" => Self::FailedHealthChecks,
            "Target.NotRegistered" => Self::NotRegistered,
            "Target.NotInUse" => Self::NotInUse,
            "Target.DeregistrationInProgress" => Self::DeregistrationInProgress,
            "Target.InvalidState" => Self::InvalidState,
            "Target.IpUnusable" => Self::IpUnusable,
            "Target.HealthCheckDisabled" => Self::HealthCheckDisabled,
            "Elb.InternalError" => Self::InternalError,
            _ => Self::Other(s),
        }
    }
}

impl From<ReasonCode> for String {
    fn from(r: ReasonCode) -> String {
        r.as_str().to_owned()
    }
}

/// `AnomalyDetection.Result` of an ALB target with anomaly detection (`Include=AnomalyDetection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyResult {
    Anomalous,
    Normal,
}

/// `AnomalyDetection` of an ALB target: the result and whether ALB is already routing away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anomaly {
    pub result: AnomalyResult,
    pub mitigation_in_effect: bool,
}

/// One target of a target group, as DescribeTargetHealth reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    pub instance: InstanceId,
    pub port: u16,
    pub state: HealthState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Present only for ALB target groups with anomaly detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<Anomaly>,
}

impl TargetHealth {
    /// ALB's anomaly detection flags the target (a gray failure: healthy checks, bad traffic).
    pub fn is_anomalous(&self) -> bool {
        matches!(
            self.anomaly,
            Some(Anomaly {
                result: AnomalyResult::Anomalous,
                ..
            })
        )
    }

    /// The target is slow rather than failing outright: health checks time out, or ALB sees it
    /// as anomalous. The signal "slow is not dead" counts across the fleet.
    pub fn is_slow(&self) -> bool {
        self.reason == Some(ReasonCode::Timeout) || self.is_anomalous()
    }

    /// The target needs attention: it fails health checks or ALB flags it as anomalous.
    pub fn needs_attention(&self) -> bool {
        self.state.is_failing() || self.is_anomalous()
    }
}

/// A target group's health at one moment, plus the heals already in flight in it (from the
/// lease store), which is everything fleet safety decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub target_group: TargetGroupArn,
    pub targets: Vec<TargetHealth>,
    /// Instances of this group with a heal in progress (a held lease), other than the one being
    /// decided on.
    #[serde(default)]
    pub in_flight: Vec<InstanceId>,
}

/// Counts over a [`GroupSnapshot`], computed one way for every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounts {
    /// Registered targets that are not `unused`.
    pub total: usize,
    /// Targets in `healthy`.
    pub serving: usize,
    /// Targets in `unhealthy`, `unhealthy.draining` or `unavailable`, not counting in-flight heals.
    pub failing: usize,
    /// Targets timing out or flagged anomalous (the overload signal).
    pub slow: usize,
}

impl GroupSnapshot {
    /// Looks a target up by instance.
    pub fn target(&self, instance: &InstanceId) -> Option<&TargetHealth> {
        self.targets.iter().find(|t| &t.instance == instance)
    }

    /// The counts fleet safety works on. In-flight heals are not counted as failing: a target we
    /// drained ourselves is not evidence of a mass failure.
    pub fn counts(&self) -> GroupCounts {
        let considered = || {
            self.targets
                .iter()
                .filter(|t| t.state != HealthState::Unused)
        };
        GroupCounts {
            total: considered().count(),
            serving: considered().filter(|t| t.state.is_serving()).count(),
            failing: considered()
                .filter(|t| t.state.is_failing() && !self.in_flight.contains(&t.instance))
                .count(),
            slow: considered().filter(|t| t.is_slow()).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(n: u32, state: HealthState, reason: Option<ReasonCode>) -> TargetHealth {
        TargetHealth {
            instance: InstanceId::parse(format!("i-{n:08x}")).expect("valid"),
            port: 80,
            state,
            reason,
            description: None,
            anomaly: None,
        }
    }

    #[test]
    fn every_health_state_round_trips_through_its_wire_string() {
        for s in HealthState::ALL {
            assert_eq!(HealthState::parse(s.as_str()), Ok(s));
            let json = serde_json::to_string(&s).expect("serialises");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        let err = HealthState::parse("sick").expect_err("unknown");
        assert!(err.contains("unhealthy.draining"), "{err}");
    }

    #[test]
    fn unknown_reason_codes_are_kept_verbatim() {
        let r: ReasonCode = serde_json::from_str("\"Target.SomethingNew\"").expect("parses");
        assert_eq!(r, ReasonCode::Other("Target.SomethingNew".into()));
        assert_eq!(
            serde_json::to_string(&r).expect("ser"),
            "\"Target.SomethingNew\""
        );
        let t: ReasonCode = serde_json::from_str("\"Target.Timeout\"").expect("parses");
        assert_eq!(t, ReasonCode::Timeout);
    }

    #[test]
    fn counts_ignore_unused_targets_and_in_flight_heals() {
        let mut snap = GroupSnapshot {
            target_group: TargetGroupArn::parse(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
            )
            .expect("valid"),
            targets: vec![
                target(1, HealthState::Healthy, None),
                target(2, HealthState::Unhealthy, Some(ReasonCode::Timeout)),
                target(3, HealthState::Unhealthy, Some(ReasonCode::FailedHealthChecks)),
                target(4, HealthState::Unused, Some(ReasonCode::NotInUse)),
                target(5, HealthState::Draining, None),
            ],
            in_flight: vec![],
        };
        assert_eq!(
            snap.counts(),
            GroupCounts {
                total: 4,
                serving: 1,
                failing: 2,
                slow: 1
            }
        );
        snap.in_flight.push(snap.targets[2].instance.clone());
        assert_eq!(snap.counts().failing, 1);
    }
}
