//! Facts: the flat, typed vocabulary the diagnosis rules are written in, computed from everything
//! one run can observe about a target ([`Observation`]).
//!
//! A fact that could not be observed (no diagnostics, no status checks yet) is *absent*, and a
//! comparison against an absent fact is false. That is how "unknown evidence" stays unknown.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Diagnostics;
use crate::health::TargetHealth;
use crate::observe::{AgentPing, CommandStatus, InstanceInfo};

/// The type of a fact's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FactType {
    String,
    Number,
    Bool,
}

/// A fact's name, type, meaning and (for closed string facts) its possible values.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FactSpec {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub ty: FactType,
    pub description: &'static str,
    /// For string facts with a closed set of values: that set. Empty means open (e.g. ELB
    /// reason codes, to which AWS adds).
    pub values: &'static [&'static str],
}

const HEALTH_STATES: &[&str] = &[
    "initial",
    "healthy",
    "unhealthy",
    "unused",
    "draining",
    "unavailable",
    "unhealthy.draining",
];
const INSTANCE_STATES: &[&str] = &[
    "pending",
    "running",
    "shutting-down",
    "terminated",
    "stopping",
    "stopped",
];
const STATUS_CHECKS: &[&str] = &[
    "ok",
    "impaired",
    "insufficient-data",
    "not-applicable",
    "initializing",
];
const COMMAND_STATUSES: &[&str] = &[
    "pending",
    "in_progress",
    "delayed",
    "success",
    "failed",
    "cancelled",
    "timed_out",
    "delivery_timed_out",
    "undeliverable",
];
const AGENT_PINGS: &[&str] = &["online", "connection_lost", "inactive", "not_registered"];
const PROBE_ERRORS: &[&str] = &["connection_refused", "timeout", "other"];

macro_rules! fact {
    ($name:literal, $ty:ident, $desc:literal) => {
        FactSpec {
            name: $name,
            ty: FactType::$ty,
            description: $desc,
            values: &[],
        }
    };
    ($name:literal, $ty:ident, $desc:literal, $values:expr) => {
        FactSpec {
            name: $name,
            ty: FactType::$ty,
            description: $desc,
            values: $values,
        }
    };
}

/// Every fact a rule may use.
pub const FACTS: &[FactSpec] = &[
    fact!(
        "elb.state",
        String,
        "Target health state reported by the load balancer",
        HEALTH_STATES
    ),
    fact!(
        "elb.reason",
        String,
        "ELB reason code, e.g. Target.Timeout (absent when healthy)"
    ),
    fact!(
        "elb.anomalous",
        Bool,
        "ALB anomaly detection flags the target (absent without anomaly detection)"
    ),
    fact!("ec2.state", String, "EC2 instance state", INSTANCE_STATES),
    fact!(
        "ec2.instance_status",
        String,
        "EC2 instance status check (guest OS)",
        STATUS_CHECKS
    ),
    fact!(
        "ec2.system_status",
        String,
        "EC2 system status check (AWS host hardware)",
        STATUS_CHECKS
    ),
    fact!(
        "ssm.command",
        String,
        "Status of the diagnostics SSM command",
        COMMAND_STATUSES
    ),
    fact!("ssm.agent", String, "SSM agent ping status", AGENT_PINGS),
    fact!("diag.present", Bool, "A valid diagnostics document arrived"),
    fact!(
        "diag.invalid",
        Bool,
        "Output arrived but was not a valid diagnostics document"
    ),
    fact!(
        "diag.services_down",
        Number,
        "Checked services that are inactive, failed or missing"
    ),
    fact!(
        "diag.port_listening",
        Bool,
        "The health-check port is in LISTEN state"
    ),
    fact!(
        "diag.probe_ok",
        Bool,
        "The local health probe got the expected answer"
    ),
    fact!(
        "diag.probe_error",
        String,
        "Why the local probe failed (absent when it got an answer)",
        PROBE_ERRORS
    ),
    fact!(
        "diag.probe_status",
        Number,
        "HTTP status of the local probe (absent without a response)"
    ),
    fact!(
        "diag.probe_latency_ms",
        Number,
        "Local probe latency in milliseconds"
    ),
    fact!("diag.cpu_percent", Number, "CPU busy share, 0-100"),
    fact!("diag.steal_percent", Number, "CPU steal share, 0-100"),
    fact!(
        "diag.load_per_core",
        Number,
        "One-minute load average per core"
    ),
    fact!(
        "diag.mem_available_percent",
        Number,
        "Available memory share, 0-100"
    ),
    fact!(
        "diag.swap_used_percent",
        Number,
        "Used swap share, 0-100 (0 without swap)"
    ),
    fact!(
        "diag.oom_kills",
        Number,
        "OOM-killer lines in the kernel log"
    ),
    fact!(
        "diag.disk_used_max_percent",
        Number,
        "Fullest mount's used share, 0-100"
    ),
    fact!(
        "diag.inode_used_max_percent",
        Number,
        "Fullest mount's inode share, 0-100"
    ),
    fact!("diag.readonly_mounts", Number, "Mounts that are read-only"),
    fact!(
        "diag.io_errors",
        Number,
        "I/O error lines in the kernel log"
    ),
    fact!("diag.dns_ok", Bool, "The resolver answers"),
    fact!("diag.default_route", Bool, "The host has a default route"),
    fact!("diag.uptime_s", Number, "Seconds since boot"),
];

/// Looks a fact up by name.
pub fn fact_spec(name: &str) -> Option<&'static FactSpec> {
    FACTS.iter().find(|f| f.name == name)
}

/// A fact's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FactValue {
    Bool(bool),
    Number(f64),
    String(String),
}

impl fmt::Display for FactValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s}"),
        }
    }
}

/// Everything one run observed about a target. The diagnostics field holds the parsed document,
/// or the reason it could not be had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub target: TargetHealth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceInfo>,
    /// Status of the diagnostics command, absent when none was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentPing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// Why output that arrived was rejected (the parser's message), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics_error: Option<String>,
}

/// The facts of one observation, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts(BTreeMap<&'static str, FactValue>);

impl Facts {
    pub fn get(&self, name: &str) -> Option<&FactValue> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &FactValue)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    fn set(&mut self, name: &'static str, v: FactValue) {
        debug_assert!(fact_spec(name).is_some(), "fact {name} is not in FACTS");
        self.0.insert(name, v);
    }
    fn s(&mut self, name: &'static str, v: &str) {
        self.set(name, FactValue::String(v.to_owned()));
    }
    fn n(&mut self, name: &'static str, v: f64) {
        self.set(name, FactValue::Number(v));
    }
    fn b(&mut self, name: &'static str, v: bool) {
        self.set(name, FactValue::Bool(v));
    }

    /// Computes the facts of an observation.
    pub fn of(obs: &Observation) -> Facts {
        let mut f = Facts::default();
        let t = &obs.target;
        f.s("elb.state", t.state.as_str());
        if let Some(r) = &t.reason {
            f.s("elb.reason", r.as_str());
        }
        if t.anomaly.is_some() {
            f.b("elb.anomalous", t.is_anomalous());
        }
        if let Some(i) = &obs.instance {
            f.s("ec2.state", i.state.as_str());
            f.s("ec2.instance_status", i.instance_status.as_str());
            f.s("ec2.system_status", i.system_status.as_str());
        }
        if let Some(c) = obs.command {
            f.s("ssm.command", c.as_str());
        }
        if let Some(a) = obs.agent {
            f.s("ssm.agent", a.as_str());
        }
        f.b("diag.present", obs.diagnostics.is_some());
        f.b(
            "diag.invalid",
            obs.diagnostics.is_none() && obs.diagnostics_error.is_some(),
        );
        if let Some(d) = &obs.diagnostics {
            f.n("diag.services_down", d.services_down() as f64);
            f.b("diag.port_listening", d.probe_port_listening());
            f.b("diag.probe_ok", d.health_probe.ok);
            if let Some(e) = d.health_probe.error {
                f.s("diag.probe_error", e.as_str());
            }
            if let Some(code) = d.health_probe.status_code {
                f.n("diag.probe_status", f64::from(code));
            }
            f.n("diag.probe_latency_ms", d.health_probe.latency_ms as f64);
            f.n("diag.cpu_percent", d.cpu.busy_percent);
            if let Some(steal) = d.cpu.steal_percent {
                f.n("diag.steal_percent", steal);
            }
            f.n("diag.load_per_core", d.load_per_core());
            f.n("diag.mem_available_percent", d.memory_available_percent());
            f.n("diag.swap_used_percent", d.swap_used_percent());
            f.n("diag.oom_kills", f64::from(d.dmesg.oom_kills));
            f.n(
                "diag.disk_used_max_percent",
                f64::from(d.disk_used_max_percent()),
            );
            f.n(
                "diag.inode_used_max_percent",
                f64::from(d.inode_used_max_percent()),
            );
            f.n("diag.readonly_mounts", d.read_only_mounts() as f64);
            f.n("diag.io_errors", f64::from(d.dmesg.io_errors));
            f.b("diag.dns_ok", d.network.dns_ok);
            f.b("diag.default_route", d.network.default_route);
            f.n("diag.uptime_s", d.uptime_s as f64);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{parse_diagnostics, tests::HEALTHY};
    use crate::health::HealthState;
    use crate::ids::InstanceId;
    use crate::observe::StatusCheck;

    #[test]
    fn closed_value_sets_match_the_domain_enums() {
        let states: Vec<&str> = HealthState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, HEALTH_STATES);
        for c in [
            StatusCheck::Ok,
            StatusCheck::Impaired,
            StatusCheck::InsufficientData,
            StatusCheck::NotApplicable,
            StatusCheck::Initializing,
        ] {
            assert!(STATUS_CHECKS.contains(&c.as_str()));
        }
    }

    #[test]
    fn fact_names_are_unique() {
        let mut names: Vec<&str> = FACTS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FACTS.len());
    }

    #[test]
    fn without_diagnostics_only_elb_facts_exist() {
        let obs = Observation {
            target: TargetHealth {
                instance: InstanceId::parse("i-0123abcd").expect("valid"),
                port: 80,
                state: HealthState::Unhealthy,
                reason: None,
                description: None,
                anomaly: None,
            },
            instance: None,
            command: None,
            agent: None,
            diagnostics: None,
            diagnostics_error: None,
        };
        let f = Facts::of(&obs);
        assert_eq!(
            f.get("elb.state"),
            Some(&FactValue::String("unhealthy".into()))
        );
        assert_eq!(f.get("diag.present"), Some(&FactValue::Bool(false)));
        assert!(f.get("diag.cpu_percent").is_none());
        assert!(f.get("ec2.system_status").is_none());
    }

    #[test]
    fn every_fact_computed_from_a_full_observation_is_in_the_catalogue() {
        let d = parse_diagnostics(HEALTHY).expect("valid");
        let obs = Observation {
            target: TargetHealth {
                instance: InstanceId::parse("i-0123abcd").expect("valid"),
                port: 80,
                state: HealthState::Healthy,
                reason: None,
                description: None,
                anomaly: None,
            },
            instance: None,
            command: Some(CommandStatus::Success),
            agent: Some(AgentPing::Online),
            diagnostics: Some(d),
            diagnostics_error: None,
        };
        let f = Facts::of(&obs);
        for (name, value) in f.iter() {
            let spec = fact_spec(name).expect("catalogued");
            let ok = matches!(
                (spec.ty, value),
                (FactType::String, FactValue::String(_))
                    | (FactType::Number, FactValue::Number(_))
                    | (FactType::Bool, FactValue::Bool(_))
            );
            assert!(ok, "{name} has the wrong type");
        }
        assert_eq!(
            f.get("diag.mem_available_percent")
                .map(ToString::to_string)
                .as_deref(),
            Some(&*format!("{}", 2900.0 * 100.0 / 3900.0))
        );
    }
}
