//! A simulated host as the engine sees it: the stdout of `ssm/diagnostics.yml` and the load
//! balancer's health check.
//!
//! The simulator never hands a fault kind to the engine. A host with active faults answers the
//! diagnostics command with the document that `ssm/diagnostics.yml` would print on such a host,
//! and the real parser and the real rules classify it. The values mirror the fixtures under
//! `tests/fixtures/diagnostics/` (`healthy.json` is the baseline, and each fault changes it
//! exactly as its fixture does), so the simulated hosts and the reference scenes agree.
//!
//! Several faults on one host combine: each fault sets the parts of the document it touches
//! (CPU and load take the highest of the faults' values), and the application's answer to a
//! probe is decided in one fixed order, the most severe first:
//!
//! 1. the service is down (`app_crash`, `disk_full`, and `disk_corruption` under TCP): unit
//!    `failed`, the port closed, the probe refused;
//! 2. TCP: the port listens, so the kernel completes the handshake and a TCP probe connects,
//!    whatever the process does;
//! 3. HTTP(S): the process is stuck (`app_hang`, `memory_leak`, `cpu_runaway`): the probe times
//!    out after 5,000 ms;
//! 4. HTTP(S): `disk_corruption`: the application answers 500;
//! 5. HTTP(S): `dependency_outage`: the application answers 503;
//! 6. HTTP(S): `overload`: the application answers 200, slowly (2,300 ms);
//! 7. otherwise 200 in 4 ms.
//!
//! `ssm_agent_down`, `os_hang` and `hardware_failure` never produce a document (the command does
//! not reach the host), and `flapping` is the caller's business: all four leave the document
//! unchanged.

use autoheal_core::diagnostics::{
    ActiveState, AgentStatus, Cpu, Diagnostics, Disk, Dmesg, HealthProbe, ListeningPort, Load,
    Memory, NetworkChecks, ProbeError, ProbeProtocol, SCHEMA_VERSION, ServiceStatus,
};
use autoheal_core::{ReasonCode, ServiceName};

use crate::scenario::{FaultKind, Protocol};

/// The parser accepts at most this many services; a host reports the first ones.
const MAX_SERVICES: usize = 64;
/// `ssm/diagnostics.yml` cuts the probed path to this many characters.
const MAX_PATH_CHARS: usize = 300;
/// The probe's time limit (`ProbeTimeoutSeconds`, 5 s by default), as a timed-out probe reports it.
const PROBE_TIMEOUT_MS: u64 = 5_000;
/// The path probed when an HTTP(S) group names none (ELB's default).
const DEFAULT_PATH: &str = "/";
const SSH_PORT: u16 = 22;
const AGENT_VERSION: &str = "3.3.1142.0";

// The healthy baseline (healthy.json).
const HEALTHY_LATENCY_MS: u64 = 4;
const HEALTHY_CPU_PERCENT: f64 = 7.5;
const CORES: u32 = 2;
const HEALTHY_LOAD: (f64, f64, f64) = (0.4, 0.3, 0.2);
const MEMORY_TOTAL_MB: u64 = 3_900;
const HEALTHY_AVAILABLE_MB: u64 = 2_900;
const ROOT_USED_PERCENT: u8 = 41;
const ROOT_INODES_PERCENT: u8 = 6;
const LOG_USED_PERCENT: u8 = 12;
const LOG_INODES_PERCENT: u8 = 1;

// What the faults change (their fixtures).
const REFUSED_LATENCY_MS: u64 = 1;
const APP_CRASH_RESTARTS: u32 = 5;
const DISK_FULL_RESTARTS: u32 = 3;
const DISK_CORRUPTION_TCP_RESTARTS: u32 = 1;
const LEAK_AVAILABLE_MB: u64 = 60;
const LEAK_SWAP_TOTAL_MB: u64 = 1_024;
const LEAK_SWAP_USED_MB: u64 = 1_000;
const LEAK_LOAD: (f64, f64, f64) = (3.1, 2.8, 2.0);
const LEAK_DMESG: &str =
    "[85001.2] Out of memory: Killed process 4242 (app-worker) total-vm:3800000kB";
const RUNAWAY_CPU_PERCENT: f64 = 99.6;
const RUNAWAY_LOAD: (f64, f64, f64) = (11.5, 9.8, 6.1);
const OVERLOAD_CPU_PERCENT: f64 = 97.0;
const OVERLOAD_LOAD: (f64, f64, f64) = (5.2, 4.9, 4.0);
const OVERLOAD_LATENCY_MS: u64 = 2_300;
const FULL_USED_PERCENT: u8 = 100;
const CORRUPTION_IO_ERRORS: u32 = 14;
const CORRUPTION_DMESG: [&str; 2] = [
    "[9001.1] blk_update_request: I/O error, dev nvme0n1, sector 1234 op 0x1:(WRITE)",
    "[9001.2] EXT4-fs error (device nvme0n1p1): remounting filesystem read-only",
];
const CORRUPTION_STATUS: u16 = 500;
const CORRUPTION_LATENCY_MS: u64 = 30;
const OUTAGE_STATUS: u16 = 503;
const OUTAGE_LATENCY_MS: u64 = 12;
const OK_STATUS: u16 = 200;

/// The faults active on a host, instance-level and fleet-wide together.
#[derive(Debug, Clone, Copy, Default)]
struct Active {
    app_crash: bool,
    app_hang: bool,
    memory_leak: bool,
    cpu_runaway: bool,
    disk_full: bool,
    disk_corruption: bool,
    network_misconfig: bool,
    /// `os_hang` or `hardware_failure`: nothing on the host answers.
    unreachable: bool,
    overload: bool,
    dependency_outage: bool,
}

impl Active {
    /// A kind given in either argument counts, so a fleet-wide kind in `faults` (or an instance
    /// kind in `fleet`) is honoured rather than dropped.
    fn of(faults: &[FaultKind], fleet: Option<FaultKind>) -> Self {
        let mut a = Self::default();
        for kind in faults.iter().copied().chain(fleet) {
            match kind {
                FaultKind::AppCrash => a.app_crash = true,
                FaultKind::AppHang => a.app_hang = true,
                FaultKind::MemoryLeak => a.memory_leak = true,
                FaultKind::CpuRunaway => a.cpu_runaway = true,
                FaultKind::DiskFull => a.disk_full = true,
                FaultKind::DiskCorruption => a.disk_corruption = true,
                FaultKind::NetworkMisconfig => a.network_misconfig = true,
                FaultKind::OsHang | FaultKind::HardwareFailure => a.unreachable = true,
                FaultKind::Overload => a.overload = true,
                FaultKind::DependencyOutage => a.dependency_outage = true,
                // The agent being down changes who can ask, not what the host shows; flapping is
                // handled by the caller.
                FaultKind::SsmAgentDown | FaultKind::Flapping => {}
            }
        }
        a
    }

    /// The application's services are down and its port is closed. Under TCP a corrupted disk
    /// takes the service down too: a TCP check cannot carry a 500, so the simulated service
    /// exits on its I/O errors instead of answering with an error.
    fn service_down(self, protocol: Protocol) -> bool {
        self.app_crash || self.disk_full || (self.disk_corruption && is_tcp(protocol))
    }

    /// systemd's `NRestarts` of a down service (the fixtures' values; the most of the causes).
    fn restarts(self, protocol: Protocol) -> u32 {
        if self.app_crash {
            APP_CRASH_RESTARTS
        } else if self.disk_full {
            DISK_FULL_RESTARTS
        } else if self.disk_corruption && is_tcp(protocol) {
            DISK_CORRUPTION_TCP_RESTARTS
        } else {
            0
        }
    }

    /// The process runs and its port listens, but it does not answer a request in time.
    fn stuck(self) -> bool {
        self.app_hang || self.memory_leak || self.cpu_runaway
    }
}

fn is_tcp(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Tcp)
}

/// How the application answers a health check sent from the host itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Nothing listens: the connection is refused.
    Refused,
    /// The request gets no answer within the probe's time limit.
    Stuck,
    /// An HTTP answer.
    Status { code: u16, latency_ms: u64 },
    /// A TCP connection completed.
    Connected { latency_ms: u64 },
}

/// The application's answer, in the fixed order of the module documentation.
fn answer(a: Active, protocol: Protocol) -> Answer {
    if a.service_down(protocol) {
        Answer::Refused
    } else if is_tcp(protocol) {
        // The kernel completes the handshake for a listening socket whatever the process does.
        Answer::Connected {
            latency_ms: HEALTHY_LATENCY_MS,
        }
    } else if a.stuck() {
        Answer::Stuck
    } else if a.disk_corruption {
        Answer::Status {
            code: CORRUPTION_STATUS,
            latency_ms: CORRUPTION_LATENCY_MS,
        }
    } else if a.dependency_outage {
        Answer::Status {
            code: OUTAGE_STATUS,
            latency_ms: OUTAGE_LATENCY_MS,
        }
    } else if a.overload {
        Answer::Status {
            code: OK_STATUS,
            latency_ms: OVERLOAD_LATENCY_MS,
        }
    } else {
        Answer::Status {
            code: OK_STATUS,
            latency_ms: HEALTHY_LATENCY_MS,
        }
    }
}

/// The health check's success codes (ELB's default matcher is 200; any 2xx counts here).
fn expected_code(code: u16) -> bool {
    (200..300).contains(&code)
}

/// The local probe's result for an answer.
fn probe(answer: Answer, port: u16, protocol: Protocol, path: Option<&str>) -> HealthProbe {
    let (protocol, path) = if is_tcp(protocol) {
        (ProbeProtocol::Tcp, None)
    } else {
        let path: String = path
            .unwrap_or(DEFAULT_PATH)
            .chars()
            .take(MAX_PATH_CHARS)
            .collect();
        (ProbeProtocol::Http, Some(path))
    };
    let (ok, status_code, latency_ms, error) = match answer {
        Answer::Refused => (
            false,
            None,
            REFUSED_LATENCY_MS,
            Some(ProbeError::ConnectionRefused),
        ),
        Answer::Stuck => (false, None, PROBE_TIMEOUT_MS, Some(ProbeError::Timeout)),
        Answer::Status { code, latency_ms } => (expected_code(code), Some(code), latency_ms, None),
        Answer::Connected { latency_ms } => (true, None, latency_ms, None),
    };
    HealthProbe {
        protocol,
        port,
        path,
        ok,
        status_code,
        latency_ms,
        error,
    }
}

fn max_load(a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64, f64) {
    (a.0.max(b.0), a.1.max(b.1), a.2.max(b.2))
}

/// What the diagnostics document of a host shows, given its active faults.
///
/// `faults`: instance-level faults active on the host (any of app_crash, app_hang, memory_leak,
/// cpu_runaway, disk_full, disk_corruption, network_misconfig; ssm_agent_down, os_hang,
/// hardware_failure and flapping leave the document unchanged); `fleet`: a fleet-wide fault of
/// the host's group (overload or dependency_outage) if any; `services`: the services to report
/// (at most the first 64, the parser's limit); `port`/`protocol`/`path`: the health check probed
/// locally (HTTP(S) without a path probes `/`); `uptime_s`: seconds since boot.
///
/// Under TCP the probe is a connect: it succeeds while the port listens, so `app_hang`,
/// `memory_leak`, `cpu_runaway`, `overload` and `dependency_outage` show an ok probe (their other
/// evidence, CPU, memory and OOM lines, stays), and `disk_corruption` shows its service failed
/// and the port closed, besides the read-only mount and the I/O errors.
pub fn diagnostics_for(
    faults: &[FaultKind],
    fleet: Option<FaultKind>,
    services: &[ServiceName],
    port: u16,
    protocol: Protocol,
    path: Option<&str>,
    uptime_s: u64,
) -> Diagnostics {
    let a = Active::of(faults, fleet);
    let down = a.service_down(protocol);
    let restarts = a.restarts(protocol);

    let services = services
        .iter()
        .take(MAX_SERVICES)
        .map(|s| {
            let (active_state, sub_state, restarts) = if down {
                (ActiveState::Failed, "failed", restarts)
            } else {
                (ActiveState::Active, "running", 0)
            };
            ServiceStatus {
                name: s.as_str().to_owned(),
                active_state,
                sub_state: Some(sub_state.to_owned()),
                restarts: Some(restarts),
            }
        })
        .collect();

    let mut listening_ports = vec![ListeningPort {
        port: SSH_PORT,
        process: Some("sshd".to_owned()),
    }];
    if !down && port != SSH_PORT {
        listening_ports.push(ListeningPort {
            port,
            process: Some("app".to_owned()),
        });
    }

    let mut busy_percent = HEALTHY_CPU_PERCENT;
    let mut load = HEALTHY_LOAD;
    if a.memory_leak {
        load = max_load(load, LEAK_LOAD);
    }
    if a.cpu_runaway {
        busy_percent = busy_percent.max(RUNAWAY_CPU_PERCENT);
        load = max_load(load, RUNAWAY_LOAD);
    }
    if a.overload {
        busy_percent = busy_percent.max(OVERLOAD_CPU_PERCENT);
        load = max_load(load, OVERLOAD_LOAD);
    }

    let memory = if a.memory_leak {
        Memory {
            total_mb: MEMORY_TOTAL_MB,
            available_mb: LEAK_AVAILABLE_MB,
            swap_total_mb: LEAK_SWAP_TOTAL_MB,
            swap_used_mb: LEAK_SWAP_USED_MB,
        }
    } else {
        Memory {
            total_mb: MEMORY_TOTAL_MB,
            available_mb: HEALTHY_AVAILABLE_MB,
            swap_total_mb: 0,
            swap_used_mb: 0,
        }
    };

    let disks = vec![
        Disk {
            mount: "/".to_owned(),
            used_percent: if a.disk_full {
                FULL_USED_PERCENT
            } else {
                ROOT_USED_PERCENT
            },
            inodes_used_percent: Some(ROOT_INODES_PERCENT),
            read_only: a.disk_corruption,
        },
        Disk {
            mount: "/var/log".to_owned(),
            used_percent: LOG_USED_PERCENT,
            inodes_used_percent: Some(LOG_INODES_PERCENT),
            read_only: false,
        },
    ];

    // Kernel lines in the order of their timestamps.
    let mut lines = Vec::new();
    if a.disk_corruption {
        lines.extend(CORRUPTION_DMESG.iter().map(|l| (*l).to_owned()));
    }
    if a.memory_leak {
        lines.push(LEAK_DMESG.to_owned());
    }
    let dmesg = Dmesg {
        io_errors: if a.disk_corruption {
            CORRUPTION_IO_ERRORS
        } else {
            0
        },
        oom_kills: u32::from(a.memory_leak),
        lines,
    };

    Diagnostics {
        schema_version: SCHEMA_VERSION,
        collected_at: None,
        uptime_s,
        services,
        listening_ports,
        health_probe: probe(answer(a, protocol), port, protocol, path),
        cpu: Cpu {
            busy_percent,
            cores: CORES,
            steal_percent: Some(0.0),
        },
        memory,
        load: Load {
            one: load.0,
            five: load.1,
            fifteen: load.2,
        },
        disks,
        dmesg,
        ssm_agent: AgentStatus {
            active_state: ActiveState::Active,
            version: Some(AGENT_VERSION.to_owned()),
        },
        network: NetworkChecks {
            dns_ok: true,
            default_route: !a.network_misconfig,
        },
        timed_out_checks: Vec::new(),
    }
}

/// The document as the stdout SSM returns (compact JSON, one line).
pub fn stdout_for(d: &Diagnostics) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".to_owned())
}

/// How the load balancer's health check sees the host right now, given the same inputs
/// (`None`: the check passes). The first that applies decides:
///
/// | active faults | HTTP / HTTPS | TCP |
/// |---|---|---|
/// | `os_hang`, `hardware_failure` (nothing answers) | `Timeout` | `Timeout` |
/// | `network_misconfig` (no default route: answers never come back) | `Timeout` | `Timeout` |
/// | `app_crash`, `disk_full` (service down, connection refused) | `FailedHealthChecks` | `FailedHealthChecks` |
/// | `disk_corruption` | `ResponseCodeMismatch` (500) | `FailedHealthChecks` (the service exits on its I/O errors, see [`diagnostics_for`]) |
/// | `app_hang`, `memory_leak`, `cpu_runaway` | `Timeout` | passes: the kernel completes the handshake while the process is stuck |
/// | `dependency_outage` (fleet-wide) | `ResponseCodeMismatch` (503) | passes: a TCP check only connects |
/// | `overload` (fleet-wide) | `Timeout` | passes: the handshake is the kernel's |
///
/// `ssm_agent_down` alone does not affect the check, and `flapping` is the caller's business:
/// both are ignored here.
pub fn elb_check(
    faults: &[FaultKind],
    fleet: Option<FaultKind>,
    protocol: Protocol,
) -> Option<ReasonCode> {
    let a = Active::of(faults, fleet);
    if a.unreachable || a.network_misconfig {
        return Some(ReasonCode::Timeout);
    }
    match answer(a, protocol) {
        Answer::Refused => Some(ReasonCode::FailedHealthChecks),
        Answer::Stuck => Some(ReasonCode::Timeout),
        Answer::Status { code, .. } if !expected_code(code) => {
            Some(ReasonCode::ResponseCodeMismatch)
        }
        // The local probe gets its 200 slowly; the load balancer's checks, queued behind the
        // group's traffic, miss their timeout.
        Answer::Status { .. } if a.overload => Some(ReasonCode::Timeout),
        Answer::Status { .. } | Answer::Connected { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_core::diagnostics::MAX_DIAGNOSTICS_BYTES;
    use autoheal_core::facts::{Facts, Observation};
    use autoheal_core::health::{HealthState, TargetHealth};
    use autoheal_core::observe::{AgentPing, CommandStatus};
    use autoheal_core::{Diagnosis, FaultClass, InstanceId, RuleSet, parse_diagnostics};

    const PORT: u16 = 8080;
    const PATH: &str = "/healthz";
    const UPTIME_S: u64 = 86_400;
    /// Every fault that changes a host's own document, all at once.
    const ALL_HOST_FAULTS: [FaultKind; 7] = [
        FaultKind::AppCrash,
        FaultKind::AppHang,
        FaultKind::MemoryLeak,
        FaultKind::CpuRunaway,
        FaultKind::DiskFull,
        FaultKind::DiskCorruption,
        FaultKind::NetworkMisconfig,
    ];
    const HTTP_LIKE: [Protocol; 2] = [Protocol::Http, Protocol::Https];
    const ALL_PROTOCOLS: [Protocol; 3] = [Protocol::Http, Protocol::Https, Protocol::Tcp];

    fn app_service() -> Vec<ServiceName> {
        vec![ServiceName::parse("app.service").expect("valid unit name")]
    }

    fn doc(faults: &[FaultKind], fleet: Option<FaultKind>, protocol: Protocol) -> Diagnostics {
        diagnostics_for(
            faults,
            fleet,
            &app_service(),
            PORT,
            protocol,
            Some(PATH),
            UPTIME_S,
        )
    }

    /// Builds the document, sends it through stdout and the real parser, and classifies it with
    /// the shipped rules as an unhealthy target with the reason `elb_check` gives.
    fn classify(
        faults: &[FaultKind],
        fleet: Option<FaultKind>,
        protocol: Protocol,
    ) -> (Diagnosis, Option<ReasonCode>) {
        let d = doc(faults, fleet, protocol);
        let out = stdout_for(&d);
        assert!(out.len() < MAX_DIAGNOSTICS_BYTES, "{} bytes", out.len());
        assert!(!out.contains('\n'), "stdout is one line");
        let parsed = parse_diagnostics(&out)
            .unwrap_or_else(|e| panic!("{faults:?} {fleet:?} {protocol:?}: {e}"));
        let reason = elb_check(faults, fleet, protocol);
        let obs = Observation {
            target: TargetHealth {
                instance: InstanceId::parse("i-0123456789abcdef0").expect("valid id"),
                port: PORT,
                state: HealthState::Unhealthy,
                reason: reason.clone(),
                description: None,
                anomaly: None,
            },
            instance: None,
            command: Some(CommandStatus::Success),
            agent: Some(AgentPing::Online),
            diagnostics: Some(parsed),
            diagnostics_error: None,
        };
        let rules = RuleSet::builtin().expect("shipped rules");
        (rules.classify(&Facts::of(&obs)), reason)
    }

    fn assert_case(
        faults: &[FaultKind],
        fleet: Option<FaultKind>,
        protocol: Protocol,
        class: FaultClass,
        reason: Option<ReasonCode>,
    ) {
        let (diagnosis, got) = classify(faults, fleet, protocol);
        assert_eq!(
            diagnosis.class, class,
            "{faults:?} {fleet:?} {protocol:?}: {diagnosis:?}"
        );
        assert_eq!(got, reason, "{faults:?} {fleet:?} {protocol:?}");
    }

    fn fixture(kind: &str) -> Diagnostics {
        let text = match kind {
            "healthy" => include_str!("../../../tests/fixtures/diagnostics/healthy.json"),
            "app_crash" => include_str!("../../../tests/fixtures/diagnostics/app_crash.json"),
            "app_hang" => include_str!("../../../tests/fixtures/diagnostics/app_hang.json"),
            "memory_leak" => include_str!("../../../tests/fixtures/diagnostics/memory_leak.json"),
            "cpu_runaway" => include_str!("../../../tests/fixtures/diagnostics/cpu_runaway.json"),
            "disk_full" => include_str!("../../../tests/fixtures/diagnostics/disk_full.json"),
            "disk_corruption" => {
                include_str!("../../../tests/fixtures/diagnostics/disk_corruption.json")
            }
            "network_misconfig" => {
                include_str!("../../../tests/fixtures/diagnostics/network_misconfig.json")
            }
            "overload" => include_str!("../../../tests/fixtures/diagnostics/overload.json"),
            "dependency_outage" => {
                include_str!("../../../tests/fixtures/diagnostics/dependency_outage.json")
            }
            other => panic!("no fixture {other}"),
        };
        let mut d = parse_diagnostics(text).expect("fixture parses");
        d.collected_at = None;
        d
    }

    #[test]
    fn a_healthy_http_host_prints_the_healthy_fixture() {
        assert_eq!(doc(&[], None, Protocol::Http), fixture("healthy"));
    }

    #[test]
    fn each_faulty_http_host_prints_its_fixture() {
        let instance = [
            FaultKind::AppCrash,
            FaultKind::AppHang,
            FaultKind::MemoryLeak,
            FaultKind::CpuRunaway,
            FaultKind::DiskFull,
            FaultKind::DiskCorruption,
            FaultKind::NetworkMisconfig,
        ];
        for kind in instance {
            assert_eq!(
                doc(&[kind], None, Protocol::Http),
                fixture(kind.as_str()),
                "{kind:?}"
            );
        }
        for kind in [FaultKind::Overload, FaultKind::DependencyOutage] {
            assert_eq!(
                doc(&[], Some(kind), Protocol::Http),
                fixture(kind.as_str()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_healthy_tcp_host_probes_by_connecting() {
        let d = doc(&[], None, Protocol::Tcp);
        let p = &d.health_probe;
        assert_eq!(p.protocol, ProbeProtocol::Tcp);
        assert_eq!(p.port, PORT);
        assert_eq!(p.path, None);
        assert_eq!(p.status_code, None);
        assert_eq!(p.error, None);
        assert!(p.ok);
        let mut http = doc(&[], None, Protocol::Http);
        http.health_probe = p.clone();
        assert_eq!(d, http, "only the probe differs from the HTTP document");
    }

    #[test]
    fn a_healthy_host_is_unknown_and_passes_the_check() {
        for protocol in ALL_PROTOCOLS {
            assert_case(&[], None, protocol, FaultClass::Unknown, None);
        }
    }

    #[test]
    fn instance_faults_over_http_classify_as_their_fault_class() {
        use FaultClass::*;
        let cases = [
            (
                FaultKind::AppCrash,
                Application,
                ReasonCode::FailedHealthChecks,
            ),
            (FaultKind::AppHang, Application, ReasonCode::Timeout),
            (
                FaultKind::MemoryLeak,
                ResourceBottleneck,
                ReasonCode::Timeout,
            ),
            (
                FaultKind::CpuRunaway,
                ResourceBottleneck,
                ReasonCode::Timeout,
            ),
            (
                FaultKind::DiskFull,
                DiskFull,
                ReasonCode::FailedHealthChecks,
            ),
            (
                FaultKind::DiskCorruption,
                DiskCorruption,
                ReasonCode::ResponseCodeMismatch,
            ),
            (FaultKind::NetworkMisconfig, Network, ReasonCode::Timeout),
        ];
        for protocol in HTTP_LIKE {
            for (kind, class, reason) in cases.clone() {
                assert_case(&[kind], None, protocol, class, Some(reason));
            }
        }
    }

    #[test]
    fn instance_faults_over_tcp_classify_as_their_fault_class_when_the_host_shows_them() {
        use FaultClass::*;
        let cases = [
            (
                FaultKind::AppCrash,
                Application,
                Some(ReasonCode::FailedHealthChecks),
            ),
            // A hung process behind a listening port: the TCP check and the local connect both
            // succeed, and nothing else on the host is wrong. Neither the load balancer nor the
            // document can see it.
            (FaultKind::AppHang, Unknown, None),
            (FaultKind::MemoryLeak, ResourceBottleneck, None),
            (FaultKind::CpuRunaway, ResourceBottleneck, None),
            (
                FaultKind::DiskFull,
                DiskFull,
                Some(ReasonCode::FailedHealthChecks),
            ),
            (
                FaultKind::DiskCorruption,
                DiskCorruption,
                Some(ReasonCode::FailedHealthChecks),
            ),
            (
                FaultKind::NetworkMisconfig,
                Network,
                Some(ReasonCode::Timeout),
            ),
        ];
        for (kind, class, reason) in cases {
            assert_case(&[kind], None, Protocol::Tcp, class, reason);
        }
    }

    #[test]
    fn overload_is_a_resource_bottleneck_on_every_protocol() {
        for protocol in HTTP_LIKE {
            assert_case(
                &[],
                Some(FaultKind::Overload),
                protocol,
                FaultClass::ResourceBottleneck,
                Some(ReasonCode::Timeout),
            );
        }
        assert_case(
            &[],
            Some(FaultKind::Overload),
            Protocol::Tcp,
            FaultClass::ResourceBottleneck,
            None,
        );
    }

    #[test]
    fn a_dependency_outage_answers_503_over_http_and_passes_over_tcp() {
        for protocol in HTTP_LIKE {
            let (diagnosis, reason) = classify(&[], Some(FaultKind::DependencyOutage), protocol);
            // Per host the rules see an application answering 5xx; the fleet guard, not the
            // rules, makes it a dependency outage.
            assert_eq!(diagnosis.class, FaultClass::Application);
            assert_eq!(diagnosis.rule_id.as_deref(), Some("app.error-status"));
            assert_eq!(reason, Some(ReasonCode::ResponseCodeMismatch));
        }
        assert_case(
            &[],
            Some(FaultKind::DependencyOutage),
            Protocol::Tcp,
            FaultClass::Unknown,
            None,
        );
    }

    #[test]
    fn unreachable_hosts_time_out_on_every_protocol() {
        for protocol in ALL_PROTOCOLS {
            for kind in [FaultKind::OsHang, FaultKind::HardwareFailure] {
                assert_eq!(
                    elb_check(&[kind], None, protocol),
                    Some(ReasonCode::Timeout),
                    "{kind:?} {protocol:?}"
                );
                assert_eq!(
                    elb_check(&[kind, FaultKind::AppCrash], None, protocol),
                    Some(ReasonCode::Timeout),
                    "{kind:?} {protocol:?}"
                );
            }
        }
    }

    #[test]
    fn a_dead_agent_alone_or_flapping_does_not_affect_the_check() {
        for protocol in ALL_PROTOCOLS {
            assert_eq!(elb_check(&[FaultKind::SsmAgentDown], None, protocol), None);
            assert_eq!(elb_check(&[FaultKind::Flapping], None, protocol), None);
            assert_eq!(
                elb_check(
                    &[FaultKind::SsmAgentDown, FaultKind::AppCrash],
                    None,
                    protocol
                ),
                Some(ReasonCode::FailedHealthChecks)
            );
        }
    }

    #[test]
    fn kinds_that_print_no_document_leave_it_unchanged() {
        let ignored = [
            FaultKind::SsmAgentDown,
            FaultKind::OsHang,
            FaultKind::HardwareFailure,
            FaultKind::Flapping,
        ];
        for protocol in ALL_PROTOCOLS {
            assert_eq!(doc(&ignored, None, protocol), doc(&[], None, protocol));
        }
    }

    #[test]
    fn a_fleet_wide_kind_given_among_the_instance_faults_still_counts() {
        for protocol in ALL_PROTOCOLS {
            assert_eq!(
                doc(&[FaultKind::Overload], None, protocol),
                doc(&[], Some(FaultKind::Overload), protocol)
            );
            assert_eq!(
                elb_check(&[FaultKind::DependencyOutage], None, protocol),
                elb_check(&[], Some(FaultKind::DependencyOutage), protocol)
            );
        }
    }

    #[test]
    fn combined_faults_keep_the_most_severe_evidence() {
        for protocol in ALL_PROTOCOLS {
            // A leak on an overloaded host: memory and CPU both show, the class stays a resource one.
            let d = doc(
                &[FaultKind::MemoryLeak],
                Some(FaultKind::Overload),
                protocol,
            );
            assert_eq!(d.memory.available_mb, LEAK_AVAILABLE_MB);
            assert_eq!(d.cpu.busy_percent, OVERLOAD_CPU_PERCENT);
            assert_eq!(d.load.one, OVERLOAD_LOAD.0);
            let (diagnosis, _) = classify(
                &[FaultKind::MemoryLeak],
                Some(FaultKind::Overload),
                protocol,
            );
            assert_eq!(diagnosis.class, FaultClass::ResourceBottleneck);

            // A crash during an outage: the service is down, the probe refused.
            let d = doc(
                &[FaultKind::AppCrash],
                Some(FaultKind::DependencyOutage),
                protocol,
            );
            assert_eq!(d.health_probe.error, Some(ProbeError::ConnectionRefused));
            assert_case(
                &[FaultKind::AppCrash],
                Some(FaultKind::DependencyOutage),
                protocol,
                FaultClass::Application,
                Some(ReasonCode::FailedHealthChecks),
            );

            // Everything at once: corruption outranks the rest, and the document still parses.
            let all = ALL_HOST_FAULTS;
            let d = doc(&all, Some(FaultKind::Overload), protocol);
            assert_eq!(d.dmesg.lines.len(), 3);
            assert_eq!(d.disks[0].used_percent, FULL_USED_PERCENT);
            assert!(d.disks[0].read_only);
            assert_eq!(d.cpu.busy_percent, RUNAWAY_CPU_PERCENT);
            assert_eq!(d.services[0].restarts, Some(APP_CRASH_RESTARTS));
            assert_case(
                &all,
                Some(FaultKind::Overload),
                protocol,
                FaultClass::DiskCorruption,
                Some(ReasonCode::Timeout),
            );
        }
    }

    #[test]
    fn uptime_and_services_appear_in_the_document() {
        let services = vec![
            ServiceName::parse("app.service").expect("valid"),
            ServiceName::parse("worker@1.service").expect("valid"),
        ];
        for protocol in ALL_PROTOCOLS {
            for faults in [&[][..], &[FaultKind::AppCrash][..]] {
                let d =
                    diagnostics_for(faults, None, &services, PORT, protocol, Some(PATH), 12_345);
                let out = stdout_for(&d);
                assert!(out.contains("\"uptime_s\":12345"), "{out}");
                assert!(out.contains("\"app.service\""), "{out}");
                assert!(out.contains("\"worker@1.service\""), "{out}");
                let parsed = parse_diagnostics(&out).expect("parses");
                assert_eq!(parsed.uptime_s, 12_345);
                let names: Vec<&str> = parsed.services.iter().map(|s| s.name.as_str()).collect();
                assert_eq!(names, ["app.service", "worker@1.service"]);
                assert_eq!(
                    parsed.services_down(),
                    if faults.is_empty() { 0 } else { 2 }
                );
            }
        }
    }

    #[test]
    fn the_probe_reports_the_port_and_path_it_was_given() {
        let d = diagnostics_for(&[], None, &app_service(), 443, Protocol::Https, None, 1);
        assert_eq!(d.health_probe.port, 443);
        assert_eq!(d.health_probe.path.as_deref(), Some(DEFAULT_PATH));
        assert!(d.probe_port_listening());
        let d = diagnostics_for(
            &[],
            None,
            &app_service(),
            9000,
            Protocol::Http,
            Some("/status"),
            1,
        );
        assert_eq!(d.health_probe.path.as_deref(), Some("/status"));
        assert!(d.probe_port_listening());
        let d = diagnostics_for(
            &[FaultKind::AppCrash],
            None,
            &app_service(),
            9000,
            Protocol::Tcp,
            Some("/ignored"),
            1,
        );
        assert_eq!(d.health_probe.path, None);
        assert!(!d.probe_port_listening());
    }

    #[test]
    fn documents_stay_under_what_ssm_can_deliver() {
        let long: Vec<ServiceName> = (0..100)
            .map(|i| {
                let name = format!("{i:03}{}.service", "x".repeat(117));
                ServiceName::parse(name).expect("valid unit name")
            })
            .collect();
        let path = format!("/{}", "p".repeat(1_000));
        let all = ALL_HOST_FAULTS;
        for protocol in ALL_PROTOCOLS {
            for fleet in [
                None,
                Some(FaultKind::Overload),
                Some(FaultKind::DependencyOutage),
            ] {
                let d = diagnostics_for(
                    &all,
                    fleet,
                    &long,
                    PORT,
                    protocol,
                    Some(path.as_str()),
                    u64::MAX,
                );
                assert_eq!(d.services.len(), MAX_SERVICES);
                let out = stdout_for(&d);
                assert!(out.len() < MAX_DIAGNOSTICS_BYTES, "{} bytes", out.len());
                parse_diagnostics(&out).expect("the largest document parses");
            }
        }
    }
}
