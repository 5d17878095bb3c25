//! Shared helpers of the end-to-end suites: fixtures, and every fault kind of DESIGN.md §4 as
//! the raw outputs a real run sees (ELB state and reason, EC2 status checks, the SSM command's
//! status, the diagnostics stdout). The fault kind itself never reaches the engine: only these
//! outputs do.

pub mod memory_world;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use autoheal_core::decision::{DecisionInput, decide};
use autoheal_core::facts::Observation;
use autoheal_core::health::{GroupSnapshot, HealthState, ReasonCode, TargetHealth};
use autoheal_core::incident::{History, Incident, Transition};
use autoheal_core::observe::{AgentPing, CommandStatus, InstanceInfo, InstanceState, StatusCheck};
use autoheal_core::policy::{Action, GlobalPolicy, InstancePolicy};
use autoheal_core::{
    Decision, Diagnosis, FaultClass, IncidentId, InstanceId, RuleSet, TargetGroupArn, Timestamp,
    parse_diagnostics,
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reads `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> String {
    let path = repo_root().join("tests/fixtures").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The time every scene is decided at.
pub const NOW: Timestamp = Timestamp(1_800_000_000);

/// What one host shows.
#[derive(Debug, Clone)]
pub struct Host {
    pub state: HealthState,
    pub reason: Option<ReasonCode>,
    pub instance_status: StatusCheck,
    pub system_status: StatusCheck,
    pub command: CommandStatus,
    pub agent: AgentPing,
    /// `tests/fixtures/diagnostics/<name>.json`, when the command delivered output.
    pub diagnostics: Option<&'static str>,
}

impl Host {
    /// Failing health checks with `reason`; SSM works and prints the `diagnostics` fixture.
    pub fn failing(reason: ReasonCode, diagnostics: &'static str) -> Host {
        Host {
            state: HealthState::Unhealthy,
            reason: Some(reason),
            instance_status: StatusCheck::Ok,
            system_status: StatusCheck::Ok,
            command: CommandStatus::Success,
            agent: AgentPing::Online,
            diagnostics: Some(diagnostics),
        }
    }

    /// Failing health checks with `reason`; SSM cannot reach the host.
    pub fn unreachable(
        reason: ReasonCode,
        instance_status: StatusCheck,
        system_status: StatusCheck,
    ) -> Host {
        Host {
            state: HealthState::Unhealthy,
            reason: Some(reason),
            instance_status,
            system_status,
            command: CommandStatus::Undeliverable,
            agent: AgentPing::ConnectionLost,
            diagnostics: None,
        }
    }

    /// A healthy host.
    pub fn healthy() -> Host {
        Host {
            state: HealthState::Healthy,
            reason: None,
            ..Host::failing(ReasonCode::Timeout, "healthy")
        }
    }
}

/// Instance `n` of the scene's group.
pub fn iid(n: usize) -> InstanceId {
    InstanceId::parse(format!("i-{n:017x}")).unwrap_or_else(|e| panic!("{e}"))
}

/// The scene's target group.
pub fn tg() -> TargetGroupArn {
    TargetGroupArn::parse(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// What a run observes of host `n`.
pub fn observe(n: usize, host: &Host) -> Observation {
    let diagnostics = host.diagnostics.map(|name| {
        parse_diagnostics(&fixture(&format!("diagnostics/{name}.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    });
    Observation {
        target: TargetHealth {
            instance: iid(n),
            port: 8080,
            state: host.state,
            reason: host.reason.clone(),
            description: None,
            anomaly: None,
        },
        instance: Some(InstanceInfo {
            instance: iid(n),
            state: InstanceState::Running,
            instance_status: host.instance_status,
            system_status: host.system_status,
            tags: BTreeMap::new(),
            asg: None,
            launched_at: None,
        }),
        command: Some(host.command),
        agent: Some(host.agent),
        diagnostics,
        diagnostics_error: None,
    }
}

/// `n` serving↔failing changes of instance 0, two minutes apart, ending now.
pub fn flapping_history(n: u64) -> History {
    History {
        heals: vec![],
        transitions: (0..n)
            .map(|k| Transition {
                instance: iid(0),
                at: NOW.minus_secs(120 * (k + 1)),
                from: if k % 2 == 0 {
                    HealthState::Unhealthy
                } else {
                    HealthState::Healthy
                },
                to: if k % 2 == 0 {
                    HealthState::Healthy
                } else {
                    HealthState::Unhealthy
                },
            })
            .collect(),
    }
}

/// A group of `size` hosts where the first `faulty` show `fault` and the rest are healthy.
#[derive(Debug, Clone)]
pub struct Scene {
    pub fault: Host,
    pub faulty: usize,
    pub size: usize,
    pub history: History,
}

impl Scene {
    /// One faulty host in a group of six.
    pub fn single(fault: Host) -> Scene {
        Scene {
            fault,
            faulty: 1,
            size: 6,
            history: History::default(),
        }
    }

    /// Observations of every host of the group.
    pub fn observations(&self) -> Vec<Observation> {
        let healthy = Host::healthy();
        (0..self.size)
            .map(|n| {
                observe(
                    n,
                    if n < self.faulty {
                        &self.fault
                    } else {
                        &healthy
                    },
                )
            })
            .collect()
    }

    /// Diagnoses host 0 with `rules` and decides under `policy`.
    pub fn run_with(&self, rules: &RuleSet, policy: &GlobalPolicy) -> (Diagnosis, Decision) {
        self.decide_on(&self.observations(), rules, policy)
    }

    /// Diagnoses host 0 of already observed `hosts` and decides under `policy`.
    pub fn decide_on(
        &self,
        hosts: &[Observation],
        rules: &RuleSet,
        policy: &GlobalPolicy,
    ) -> (Diagnosis, Decision) {
        let diagnosis = rules.diagnose(&hosts[0]);
        let snapshot = GroupSnapshot {
            target_group: tg(),
            targets: hosts.iter().map(|o| o.target.clone()).collect(),
            in_flight: vec![],
        };
        let incident = Incident {
            id: IncidentId::parse("web-incident").unwrap_or_else(|e| panic!("{e}")),
            target_group: tg(),
            instance: iid(0),
            asg: None,
            detected_at: NOW,
            tags: BTreeMap::new(),
            launched_at: None,
        };
        let decision = decide(&DecisionInput {
            incident: &incident,
            diagnosis: &diagnosis,
            snapshot: &snapshot,
            instance_policy: &InstancePolicy::default(),
            history: &self.history,
            policy,
            now: NOW,
        });
        (diagnosis, decision)
    }

    /// Diagnoses and decides with the shipped rules and the default policy without approvals.
    pub fn run(&self) -> (Diagnosis, Decision) {
        let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("shipped rules: {e}"));
        self.run_with(&rules, &no_approval_policy())
    }
}

/// The default policy with no approval gate, so decisions show the action itself.
pub fn no_approval_policy() -> GlobalPolicy {
    GlobalPolicy {
        approval_required_for: BTreeSet::new(),
        ..GlobalPolicy::default()
    }
}

/// A fault kind of DESIGN.md §4 with the class and first action the table gives it.
pub struct FaultKind {
    pub kind: &'static str,
    pub scene: Scene,
    pub class: FaultClass,
    pub action: Action,
}

/// Every fault kind of DESIGN.md §4 as a scene.
pub fn fault_kinds() -> Vec<FaultKind> {
    use ReasonCode::*;
    let k = |kind, scene, class, action| FaultKind {
        kind,
        scene,
        class,
        action,
    };
    vec![
        k(
            "app_crash",
            Scene::single(Host::failing(FailedHealthChecks, "app_crash")),
            FaultClass::Application,
            Action::RestartService,
        ),
        k(
            "app_hang",
            Scene::single(Host::failing(Timeout, "app_hang")),
            FaultClass::Application,
            Action::RestartService,
        ),
        k(
            "memory_leak",
            Scene::single(Host::failing(Timeout, "memory_leak")),
            FaultClass::ResourceBottleneck,
            Action::RestartService,
        ),
        k(
            "cpu_runaway",
            Scene::single(Host::failing(Timeout, "cpu_runaway")),
            FaultClass::ResourceBottleneck,
            Action::RestartService,
        ),
        k(
            "disk_full",
            Scene::single(Host::failing(FailedHealthChecks, "disk_full")),
            FaultClass::DiskFull,
            Action::Cleanup,
        ),
        k(
            "disk_corruption",
            Scene::single(Host::failing(FailedHealthChecks, "disk_corruption")),
            FaultClass::DiskCorruption,
            Action::Replace,
        ),
        k(
            "ssm_agent_down",
            Scene::single(Host::unreachable(
                FailedHealthChecks,
                StatusCheck::Ok,
                StatusCheck::Ok,
            )),
            FaultClass::AgentFailure,
            Action::Reboot,
        ),
        k(
            "os_hang",
            Scene::single(Host::unreachable(
                Timeout,
                StatusCheck::Impaired,
                StatusCheck::Ok,
            )),
            FaultClass::OsLevel,
            Action::Reboot,
        ),
        k(
            "network_misconfig",
            Scene::single(Host::failing(Timeout, "network_misconfig")),
            FaultClass::Network,
            Action::Reboot,
        ),
        k(
            "hardware_failure",
            Scene::single(Host::unreachable(
                Timeout,
                StatusCheck::Impaired,
                StatusCheck::Impaired,
            )),
            FaultClass::Hardware,
            Action::Replace,
        ),
        k(
            "overload",
            Scene {
                fault: Host::failing(Timeout, "overload"),
                faulty: 5,
                size: 10,
                history: History::default(),
            },
            FaultClass::ResourceBottleneck,
            Action::None,
        ),
        k(
            "dependency_outage",
            Scene {
                fault: Host::failing(ResponseCodeMismatch, "dependency_outage"),
                faulty: 6,
                size: 6,
                history: History::default(),
            },
            FaultClass::Dependency,
            Action::Hold,
        ),
        k(
            "flapping",
            Scene {
                history: flapping_history(6),
                ..Scene::single(Host::failing(FailedHealthChecks, "app_crash"))
            },
            FaultClass::Flapping,
            Action::Quarantine,
        ),
    ]
}

/// `statemachine/autoheal.asl.json` with every `${Name}` placeholder replaced as the local
/// runner does ([`autoheal_handlers::substitutions`]).
pub fn autoheal_definition() -> autoheal_asl::StateMachine {
    let path = repo_root().join("statemachine/autoheal.asl.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    autoheal_asl::StateMachine::parse(&autoheal_asl::substitute(
        &text,
        &autoheal_handlers::substitutions(),
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// 1,000 groups of 10 targets; every ten minutes one app crash in each group, on a different
/// instance each time: 10,000 host faults, each one incident.
pub fn ten_thousand_incidents() -> Result<autoheal_sim::Scenario, Box<dyn std::error::Error>> {
    incident_waves(10)
}

/// 1,000 groups of 10 targets and `waves` waves of one app crash per group, ten minutes apart
/// (each wave on another instance, at most 10).
pub fn incident_waves(waves: u64) -> Result<autoheal_sim::Scenario, Box<dyn std::error::Error>> {
    let groups = 1000;
    let tgs: Vec<Value> = (0..groups)
        .map(|g| {
            json!({"name": format!("g{g:04}"), "lb": "alb", "protocol": "HTTP",
                   "asg": format!("g{g:04}-asg"), "instances": 10})
        })
        .collect();
    let mut faults = Vec::new();
    for w in 0..waves {
        for g in 0..groups {
            faults.push(
                json!({"at_s": 300 + w * 600 + (g % 10) * 30, "target_group": format!("g{g:04}"),
                               "instance": w % 10, "kind": "app_crash"}),
            );
        }
    }
    let text = json!({
        "name": "bench-10k-incidents",
        "duration_s": 300 + waves * 600 + 600,
        "timings": {"schedule_s": 3600},
        "fleet": {"target_groups": tgs},
        "policy": {"approval_required_for": []},
        "faults": faults,
    })
    .to_string();
    Ok(autoheal_sim::Scenario::parse("bench-10k-incidents", &text)?)
}

/// `groups` target groups of `targets` healthy targets, no faults, one schedule run at 300 s: a
/// fleet scan (`make bench`).
pub fn fleet_scan_scenario(
    groups: usize,
    targets: u32,
) -> Result<autoheal_sim::Scenario, Box<dyn std::error::Error>> {
    let tgs: Vec<Value> = (0..groups)
        .map(|g| {
            json!({"name": format!("s{g:04}"), "lb": "alb", "protocol": "HTTP",
                   "asg": format!("s{g:04}-asg"), "instances": targets})
        })
        .collect();
    let text = json!({
        "name": "bench-fleet-scan",
        "duration_s": 540,
        "timings": {"schedule_s": 300},
        "fleet": {"target_groups": tgs},
        "policy": {"approval_required_for": []},
    })
    .to_string();
    Ok(autoheal_sim::Scenario::parse("bench-fleet-scan", &text)?)
}
