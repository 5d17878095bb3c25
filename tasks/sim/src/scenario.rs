//! Scenario files (DESIGN.md §5, docs/scenarios.md): a fleet, its timings and policy, and the
//! faults injected into it over time.
//!
//! A scenario describes faults by kind: that is ground truth for the simulator and for scoring.
//! The simulator turns each kind into host state and raw outputs; the kind itself never reaches
//! the engine.

use serde::{Deserialize, Serialize};

use autoheal_core::config::{ConfigError, last_field, parse_json};
use autoheal_core::{GlobalPolicy, ServiceName};

/// Longest scenario accepted (a week of virtual time).
pub const MAX_DURATION_S: u64 = 604_800;
/// Most targets of one scenario.
pub const MAX_TARGETS: u64 = 50_000;

/// The fault kinds of DESIGN.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    AppCrash,
    AppHang,
    MemoryLeak,
    CpuRunaway,
    DiskFull,
    DiskCorruption,
    SsmAgentDown,
    OsHang,
    NetworkMisconfig,
    HardwareFailure,
    Overload,
    DependencyOutage,
    Flapping,
}

impl FaultKind {
    pub const ALL: [FaultKind; 13] = [
        Self::AppCrash,
        Self::AppHang,
        Self::MemoryLeak,
        Self::CpuRunaway,
        Self::DiskFull,
        Self::DiskCorruption,
        Self::SsmAgentDown,
        Self::OsHang,
        Self::NetworkMisconfig,
        Self::HardwareFailure,
        Self::Overload,
        Self::DependencyOutage,
        Self::Flapping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppCrash => "app_crash",
            Self::AppHang => "app_hang",
            Self::MemoryLeak => "memory_leak",
            Self::CpuRunaway => "cpu_runaway",
            Self::DiskFull => "disk_full",
            Self::DiskCorruption => "disk_corruption",
            Self::SsmAgentDown => "ssm_agent_down",
            Self::OsHang => "os_hang",
            Self::NetworkMisconfig => "network_misconfig",
            Self::HardwareFailure => "hardware_failure",
            Self::Overload => "overload",
            Self::DependencyOutage => "dependency_outage",
            Self::Flapping => "flapping",
        }
    }

    /// Affects a whole target group rather than one instance.
    pub fn is_fleet_wide(self) -> bool {
        matches!(self, Self::Overload | Self::DependencyOutage)
    }

    /// A fault of the application or its host's resources, which a service restart (or cleanup)
    /// fixes: replacing the instance for it is waste.
    pub fn is_service_level(self) -> bool {
        matches!(
            self,
            Self::AppCrash | Self::AppHang | Self::MemoryLeak | Self::CpuRunaway | Self::DiskFull
        )
    }
}

/// Timings, defaulting to AWS's (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    pub health_check_interval_s: u64,
    pub health_check_timeout_s: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub deregistration_delay_s: u64,
    pub launch_s: u64,
    pub boot_s: u64,
    pub reboot_s: u64,
    pub restart_s: u64,
    pub ssm_command_s: u64,
    pub alarm_period_s: u64,
    pub schedule_s: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            health_check_interval_s: 30,
            health_check_timeout_s: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            deregistration_delay_s: 300,
            launch_s: 30,
            boot_s: 90,
            reboot_s: 60,
            restart_s: 10,
            ssm_command_s: 3,
            alarm_period_s: 60,
            schedule_s: 300,
        }
    }
}

/// `alb` or `nlb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lb {
    Alb,
    Nlb,
}

/// The health-check protocol of a target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
}

fn default_services() -> Vec<ServiceName> {
    ServiceName::parse("app.service").into_iter().collect()
}

/// One target group and the Auto Scaling group behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    pub lb: Lb,
    pub protocol: Protocol,
    pub asg: String,
    pub instances: u32,
    #[serde(default = "default_services")]
    pub services: Vec<ServiceName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub target_groups: Vec<GroupSpec>,
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEvent {
    pub at_s: u64,
    pub target_group: String,
    /// 0-based index into the group; absent for fleet-wide kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u32>,
    pub kind: FaultKind,
    /// How long the fault lasts (fleet-wide and flapping faults need it; others last until healed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// `memory_leak` only: the leak comes back this long after each heal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurs_every_s: Option<u64>,
    /// `ssm_agent_down` only: the application fault that comes with the dead agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<FaultKind>,
}

fn default_seed() -> u64 {
    1
}

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub duration_s: u64,
    #[serde(default)]
    pub timings: Timings,
    pub fleet: Fleet,
    /// The autoheal policy (docs/policy.md), validated at load.
    #[serde(default)]
    pub policy: serde_json::Value,
    #[serde(default)]
    pub faults: Vec<FaultEvent>,
    /// AWS API outages: every call to the service fails (HTTP 503) in the window. They fail
    /// heals, not hosts: what `autoheal replay --clear-outages` takes away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<Outage>,
    /// The on-call person who answers approval requests (absent: nobody answers, so a request
    /// times out and the policy's default, hold, applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
}

/// An AWS API the simulated region can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiService {
    Autoscaling,
    Ec2,
    Elasticloadbalancing,
    Ssm,
}

impl ApiService {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Autoscaling => "autoscaling",
            Self::Ec2 => "ec2",
            Self::Elasticloadbalancing => "elasticloadbalancing",
            Self::Ssm => "ssm",
        }
    }
}

/// A window in which every call to `service` fails with a 5xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub service: ApiService,
    pub at_s: u64,
    pub duration_s: u64,
}

/// What the simulated operator answers to an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAnswer {
    /// SendTaskSuccess `{"approved": true}`.
    Approve,
    /// SendTaskFailure `ApprovalDenied` with the reason.
    Deny,
    /// No answer: the task times out.
    Ignore,
}

fn default_after_s() -> u64 {
    300
}

fn default_deny_reason() -> String {
    "denied by the on-call operator".to_owned()
}

/// The on-call person of a scenario. They read the task token from the approval notification
/// (as a person reads it in Slack) and answer with it `after_s` later, as `autoheal approve` /
/// `autoheal deny` do on AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    pub answer: OperatorAnswer,
    /// Seconds from the approval request to the answer.
    #[serde(default = "default_after_s")]
    pub after_s: u64,
    /// The reason given with a denial.
    #[serde(default = "default_deny_reason")]
    pub reason: String,
}

/// The built-in scenarios, `docs/examples/*.json`, by file name.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "web-app-crash.json",
        include_str!("../../../docs/examples/web-app-crash.json"),
    ),
    (
        "app-hang.json",
        include_str!("../../../docs/examples/app-hang.json"),
    ),
    (
        "memory-leak-recurs.json",
        include_str!("../../../docs/examples/memory-leak-recurs.json"),
    ),
    (
        "cpu-runaway.json",
        include_str!("../../../docs/examples/cpu-runaway.json"),
    ),
    (
        "disk-full.json",
        include_str!("../../../docs/examples/disk-full.json"),
    ),
    (
        "disk-corruption.json",
        include_str!("../../../docs/examples/disk-corruption.json"),
    ),
    (
        "agent-down.json",
        include_str!("../../../docs/examples/agent-down.json"),
    ),
    (
        "os-hang.json",
        include_str!("../../../docs/examples/os-hang.json"),
    ),
    (
        "network-misconfig.json",
        include_str!("../../../docs/examples/network-misconfig.json"),
    ),
    (
        "hardware-failure.json",
        include_str!("../../../docs/examples/hardware-failure.json"),
    ),
    (
        "approval-replace.json",
        include_str!("../../../docs/examples/approval-replace.json"),
    ),
    (
        "asg-api-outage.json",
        include_str!("../../../docs/examples/asg-api-outage.json"),
    ),
    (
        "overload.json",
        include_str!("../../../docs/examples/overload.json"),
    ),
    (
        "dependency-outage.json",
        include_str!("../../../docs/examples/dependency-outage.json"),
    ),
    (
        "crash-during-outage.json",
        include_str!("../../../docs/examples/crash-during-outage.json"),
    ),
    (
        "two-faults-one-slot.json",
        include_str!("../../../docs/examples/two-faults-one-slot.json"),
    ),
    (
        "flapping.json",
        include_str!("../../../docs/examples/flapping.json"),
    ),
    (
        "mixed.json",
        include_str!("../../../docs/examples/mixed.json"),
    ),
    (
        "large-fleet.json",
        include_str!("../../../docs/examples/large-fleet.json"),
    ),
];

fn fix_for(path: &str, message: &str) -> String {
    match last_field(path) {
        "kind" | "with" => format!(
            "use one of {}",
            FaultKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "lb" => "use \"alb\" or \"nlb\"".into(),
        "protocol" => "use \"HTTP\", \"HTTPS\" or \"TCP\"".into(),
        "at_s" | "duration_s" | "recurs_every_s" | "after_s" => {
            "use a whole number of seconds ≥ 0".into()
        }
        "answer" => "use \"approve\", \"deny\" or \"ignore\"".into(),
        "service" => "use \"autoscaling\", \"ec2\", \"elasticloadbalancing\" or \"ssm\"".into(),
        "instance" | "instances" => "use a whole number ≥ 0".into(),
        "services" => "list systemd unit names, e.g. [\"app.service\"]".into(),
        _ if message.contains("unknown field") => {
            "remove the field or correct its spelling (docs/scenarios.md lists the fields)".into()
        }
        _ => "see docs/scenarios.md".into(),
    }
}

fn group_name_ok(n: &str) -> bool {
    (1..=32).contains(&n.len())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

impl Scenario {
    /// Parses and validates a scenario; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ConfigError> {
        let s: Scenario = parse_json(file, text, fix_for)?;
        s.validate(file)?;
        Ok(s)
    }

    /// Loads a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ConfigError> {
        let (file, text) = autoheal_core::config::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// The built-in set, parsed.
    pub fn builtin() -> Result<Vec<Scenario>, ConfigError> {
        BUILTIN
            .iter()
            .map(|(name, text)| Self::parse(&format!("docs/examples/{name}"), text))
            .collect()
    }

    /// The scenario's policy, validated.
    pub fn policy(&self, file: &str) -> Result<GlobalPolicy, ConfigError> {
        if self.policy.is_null() {
            return Ok(GlobalPolicy::default());
        }
        GlobalPolicy::from_value(&format!("{file}: policy"), &self.policy)
    }

    /// Every target of the fleet.
    pub fn targets(&self) -> u64 {
        self.fleet
            .target_groups
            .iter()
            .map(|g| u64::from(g.instances))
            .sum()
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |path: String, message: String, fix: &str| {
            Err(ConfigError::new(file, path, message, fix))
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return err(
                "name".into(),
                format!(
                    "scenario name {:?} is not 1-64 characters of a-z, 0-9, -",
                    self.name
                ),
                "rename it, e.g. web-app-crash",
            );
        }
        if !(60..=MAX_DURATION_S).contains(&self.duration_s) {
            return err(
                "duration_s".into(),
                format!(
                    "{} s is outside 60 s to {MAX_DURATION_S} s",
                    self.duration_s
                ),
                "give a duration between a minute and a week",
            );
        }
        let t = &self.timings;
        for (field, v) in [
            ("health_check_interval_s", t.health_check_interval_s),
            ("health_check_timeout_s", t.health_check_timeout_s),
            ("alarm_period_s", t.alarm_period_s),
            ("schedule_s", t.schedule_s),
        ] {
            if v == 0 {
                return err(
                    format!("timings.{field}"),
                    "0 s would never happen".into(),
                    "use a positive number of seconds",
                );
            }
        }
        if t.health_check_timeout_s >= t.health_check_interval_s {
            return err(
                "timings.health_check_timeout_s".into(),
                format!(
                    "timeout {} s is not below the interval {} s",
                    t.health_check_timeout_s, t.health_check_interval_s
                ),
                "ELB requires the timeout to be shorter than the interval",
            );
        }
        for (field, v) in [
            ("healthy_threshold", t.healthy_threshold),
            ("unhealthy_threshold", t.unhealthy_threshold),
        ] {
            if !(2..=10).contains(&v) {
                return err(
                    format!("timings.{field}"),
                    format!("{v} is outside ELB's 2 to 10"),
                    "use a whole number from 2 to 10",
                );
            }
        }
        if self.fleet.target_groups.is_empty() {
            return err(
                "fleet.target_groups".into(),
                "the fleet has no target group".into(),
                "add at least one group",
            );
        }
        for (i, g) in self.fleet.target_groups.iter().enumerate() {
            let at = |f: &str| format!("fleet.target_groups[{i}].{f}");
            if !group_name_ok(&g.name) {
                return err(
                    at("name"),
                    format!("{:?} is not a target group name", g.name),
                    "use 1-32 letters, digits and -, not starting or ending with -",
                );
            }
            if self.fleet.target_groups[..i]
                .iter()
                .any(|o| o.name == g.name)
            {
                return err(
                    at("name"),
                    format!("target group {:?} is defined twice", g.name),
                    "give every group its own name",
                );
            }
            if autoheal_core::AsgName::parse(g.asg.clone()).is_err() {
                return err(
                    at("asg"),
                    format!("{:?} is not an Auto Scaling group name", g.asg),
                    "use 1-255 characters without control characters",
                );
            }
            if g.lb == Lb::Alb && g.protocol == Protocol::Tcp {
                return err(
                    at("protocol"),
                    "an ALB target group cannot use a TCP health check".into(),
                    "use HTTP or HTTPS for an ALB, or lb \"nlb\" for TCP",
                );
            }
            if !(1..=1000).contains(&g.instances) {
                return err(
                    at("instances"),
                    format!("{} instances is outside 1 to 1000", g.instances),
                    "use 1 to 1000 instances per group",
                );
            }
        }
        if self.targets() > MAX_TARGETS {
            return err(
                "fleet.target_groups".into(),
                format!("{} targets, more than {MAX_TARGETS}", self.targets()),
                "split the scenario",
            );
        }
        for (i, f) in self.faults.iter().enumerate() {
            let at = |field: &str| format!("faults[{i}].{field}");
            let Some(group) = self
                .fleet
                .target_groups
                .iter()
                .find(|g| g.name == f.target_group)
            else {
                let names = self
                    .fleet
                    .target_groups
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return err(
                    at("target_group"),
                    format!("no target group {:?}", f.target_group),
                    &format!("use one of {names}"),
                );
            };
            if f.at_s >= self.duration_s {
                return err(
                    at("at_s"),
                    format!(
                        "{} s is not before the end of the scenario ({} s)",
                        f.at_s, self.duration_s
                    ),
                    "inject the fault earlier or lengthen duration_s",
                );
            }
            match (f.kind.is_fleet_wide(), f.instance) {
                (true, Some(_)) => {
                    return err(
                        at("instance"),
                        format!(
                            "{} affects the whole group and takes no instance",
                            f.kind.as_str()
                        ),
                        "remove \"instance\"",
                    );
                }
                (false, None) => {
                    return err(
                        at("instance"),
                        format!("{} needs the instance it happens on", f.kind.as_str()),
                        &format!(
                            "add \"instance\": an index from 0 to {}",
                            group.instances - 1
                        ),
                    );
                }
                (false, Some(n)) if n >= group.instances => {
                    return err(
                        at("instance"),
                        format!(
                            "instance {n} is out of range for group {:?} of {} instances",
                            group.name, group.instances
                        ),
                        &format!("use an index from 0 to {}", group.instances - 1),
                    );
                }
                _ => {}
            }
            if (f.kind.is_fleet_wide() || f.kind == FaultKind::Flapping) && f.duration_s.is_none() {
                return err(
                    at("duration_s"),
                    format!("{} needs a duration", f.kind.as_str()),
                    "add \"duration_s\": how long it lasts",
                );
            }
            if f.duration_s == Some(0) {
                return err(
                    at("duration_s"),
                    "a fault of 0 s never happens".into(),
                    "use a positive duration or remove it",
                );
            }
            if f.recurs_every_s.is_some() && f.kind != FaultKind::MemoryLeak {
                return err(
                    at("recurs_every_s"),
                    format!("only memory_leak recurs, not {}", f.kind.as_str()),
                    "remove \"recurs_every_s\"",
                );
            }
            if f.recurs_every_s == Some(0) {
                return err(
                    at("recurs_every_s"),
                    "a leak that recurs every 0 s never heals".into(),
                    "use a positive number of seconds",
                );
            }
            match (f.kind, f.with) {
                (FaultKind::SsmAgentDown, Some(w)) if !w.is_service_level() => {
                    return err(
                        at("with"),
                        format!("{} cannot come with a dead agent", w.as_str()),
                        "use a service-level fault: app_crash, app_hang, memory_leak, cpu_runaway or disk_full",
                    );
                }
                (k, Some(_)) if k != FaultKind::SsmAgentDown => {
                    return err(
                        at("with"),
                        format!("only ssm_agent_down takes \"with\", not {}", k.as_str()),
                        "remove \"with\"",
                    );
                }
                _ => {}
            }
        }
        self.policy(file).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{"name":"t","duration_s":3600,
        "fleet":{"target_groups":[{"name":"web","lb":"alb","protocol":"HTTP","asg":"web-asg","instances":6}]},
        "policy":{"max_concurrent_heals":1},
        "faults":[{"at_s":120,"target_group":"web","instance":2,"kind":"app_crash"}]}"#;

    fn bad(text: &str) -> ConfigError {
        Scenario::parse("s.json", text).expect_err("invalid")
    }

    #[test]
    fn the_design_example_parses_with_aws_default_timings() {
        let s = Scenario::parse("s.json", SMALL).expect("valid");
        assert_eq!(s.timings, Timings::default());
        assert_eq!(s.fleet.target_groups[0].services, default_services());
        assert_eq!(s.targets(), 6);
    }

    #[test]
    fn every_builtin_scenario_is_valid() {
        let all = Scenario::builtin().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.len() >= 10);
        for (s, (file, _)) in all.iter().zip(BUILTIN) {
            assert_eq!(
                format!("{}.json", s.name),
                *file,
                "the name is the file name"
            );
        }
    }

    #[test]
    fn the_builtin_set_covers_every_fault_kind_and_a_large_fleet() {
        let all = Scenario::builtin().unwrap_or_else(|e| panic!("{e}"));
        for kind in FaultKind::ALL {
            assert!(
                all.iter().any(|s| s
                    .faults
                    .iter()
                    .any(|f| f.kind == kind || f.with == Some(kind))),
                "{} is not covered",
                kind.as_str()
            );
        }
        assert!(
            all.iter()
                .any(|s| s.fleet.target_groups.len() >= 50 && s.targets() >= 1000),
            "no large fleet"
        );
        assert!(
            all.iter()
                .any(|s| s.faults.iter().any(|f| f.recurs_every_s.is_some())),
            "no recurring leak"
        );
    }

    #[test]
    fn an_out_of_range_instance_names_the_path_and_the_valid_range() {
        let e = bad(&SMALL.replace("\"instance\":2", "\"instance\":9"));
        assert_eq!(e.path, "faults[0].instance");
        assert!(
            e.message.contains("out of range") && e.fix.contains("0 to 5"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_fault_kind_lists_the_kinds() {
        let e = bad(&SMALL.replace("app_crash", "gremlins"));
        assert_eq!(e.path, "faults[0].kind");
        assert!(e.fix.contains("dependency_outage"), "{e}");
    }

    #[test]
    fn unknown_fields_and_negative_times_are_rejected() {
        let e = bad(&SMALL.replace("\"at_s\":120", "\"at_s\":120,\"when\":1"));
        assert_eq!(e.path, "faults[0].when");
        let e = bad(&SMALL.replace("\"at_s\":120", "\"at_s\":-5"));
        assert_eq!(e.path, "faults[0].at_s");
        assert!(e.fix.contains("seconds"), "{e}");
    }

    #[test]
    fn fleet_wide_faults_take_no_instance_and_need_a_duration() {
        let e = bad(&SMALL.replace("\"kind\":\"app_crash\"", "\"kind\":\"dependency_outage\""));
        assert_eq!(e.path, "faults[0].instance");
        let e = bad(&SMALL.replace(
            "\"instance\":2,\"kind\":\"app_crash\"",
            "\"kind\":\"overload\"",
        ));
        assert_eq!(e.path, "faults[0].duration_s");
    }

    #[test]
    fn a_fault_after_the_end_or_in_a_missing_group_is_named() {
        let e = bad(&SMALL.replace("\"at_s\":120", "\"at_s\":3600"));
        assert_eq!(e.path, "faults[0].at_s");
        let e = bad(&SMALL.replace("\"target_group\":\"web\"", "\"target_group\":\"api\""));
        assert_eq!(e.path, "faults[0].target_group");
        assert!(e.fix.contains("web"), "{e}");
    }

    #[test]
    fn a_bad_policy_section_is_named_with_the_file() {
        let e = bad(&SMALL.replace("\"max_concurrent_heals\":1", "\"max_concurrent_heals\":0"));
        assert_eq!(e.file, "s.json: policy");
        assert_eq!(e.path, "max_concurrent_heals");
    }

    #[test]
    fn an_alb_with_a_tcp_health_check_and_a_dead_agent_with_a_fleet_fault_are_rejected() {
        let e = bad(&SMALL.replace("\"protocol\":\"HTTP\"", "\"protocol\":\"TCP\""));
        assert_eq!(e.path, "fleet.target_groups[0].protocol");
        let e = bad(&SMALL.replace(
            "\"kind\":\"app_crash\"",
            "\"kind\":\"ssm_agent_down\",\"with\":\"flapping\"",
        ));
        assert_eq!(e.path, "faults[0].with");
        assert!(
            Scenario::parse(
                "s.json",
                &SMALL.replace(
                    "\"kind\":\"app_crash\"",
                    "\"kind\":\"ssm_agent_down\",\"with\":\"app_crash\""
                )
            )
            .is_ok()
        );
    }

    #[test]
    fn impossible_timings_are_rejected() {
        let e = bad(&SMALL.replace(
            "\"duration_s\":3600,",
            "\"duration_s\":3600,\"timings\":{\"health_check_timeout_s\":40},",
        ));
        assert_eq!(e.path, "timings.health_check_timeout_s");
        let e = bad(&SMALL.replace(
            "\"duration_s\":3600,",
            "\"duration_s\":3600,\"timings\":{\"healthy_threshold\":1},",
        ));
        assert_eq!(e.path, "timings.healthy_threshold");
    }
}
