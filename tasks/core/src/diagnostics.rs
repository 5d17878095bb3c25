//! The diagnostics contract: the one JSON document `ssm/diagnostics.yml` prints on a host, and its
//! parser.
//!
//! The document is **untrusted input**: whoever controls the instance controls it. The parser
//! bounds its size, the length of every list and string, and every number's range; the result
//! only feeds facts to the classifier, and no string from it ever reaches a command line.
//!
//! Versioning: `schema_version` is an integer major version. Fields may be added within a major
//! version (unknown fields are ignored, so an updated SSM document never breaks an older parser);
//! removing or changing a field means a new major version, and this parser rejects majors it
//! does not know. The JSON Schema in `ssm/diagnostics.schema.json` is generated from these types
//! (`diagnostics_schema`) and a test keeps the checked-in file equal to it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, parse_json};

/// The major schema version this parser reads.
pub const SCHEMA_VERSION: u32 = 1;
/// SSM's GetCommandInvocation returns at most 24,000 characters of stdout; anything longer than
/// this limit is not something SSM could have delivered.
pub const MAX_DIAGNOSTICS_BYTES: usize = 24_000;
const MAX_LIST: usize = 64;
const MAX_DMESG_LINES: usize = 20;
const MAX_TEXT: usize = 512;

/// Everything `ssm/diagnostics.yml` reports about one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "autoheal host diagnostics",
    description = "Printed once, as one JSON document, by ssm/diagnostics.yml. Untrusted: produced by the host."
)]
pub struct Diagnostics {
    /// Major version of this schema; the parser rejects majors it does not know.
    pub schema_version: u32,
    /// Host clock at collection, RFC 3339. Informational only: host clocks may be wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// Seconds since boot (`/proc/uptime`).
    pub uptime_s: u64,
    /// The state of each service the document was asked to check (its `Services` parameter).
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// TCP ports in LISTEN state (`ss -ltnH`).
    #[serde(default)]
    pub listening_ports: Vec<ListeningPort>,
    /// The local health probe against the target group's health-check port and path.
    pub health_probe: HealthProbe,
    pub cpu: Cpu,
    pub memory: Memory,
    pub load: Load,
    /// One entry per real (block-device backed) mount.
    #[serde(default)]
    pub disks: Vec<Disk>,
    pub dmesg: Dmesg,
    pub ssm_agent: AgentStatus,
    pub network: NetworkChecks,
    /// Names of checks that hit their time limit; their fields hold safe defaults.
    #[serde(default)]
    pub timed_out_checks: Vec<String>,
}

/// `systemctl show -p ActiveState,SubState,NRestarts` of one unit (or the SysV equivalent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceStatus {
    pub name: String,
    pub active_state: ActiveState,
    /// `SubState` (`running`, `dead`, `failed`, `auto-restart`, ...), informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_state: Option<String>,
    /// `NRestarts`: how often systemd restarted the unit since it was started by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
}

/// systemd `ActiveState`, plus `not-found` for a unit that does not exist on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    NotFound,
    Unknown,
}

impl ActiveState {
    /// The service is not running (stopped, crashed, or missing).
    pub fn is_down(self) -> bool {
        matches!(self, Self::Inactive | Self::Failed | Self::NotFound)
    }
}

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListeningPort {
    pub port: u16,
    /// The owning process name when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// Result of probing the health check locally (HTTP GET or TCP connect on 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthProbe {
    pub protocol: ProbeProtocol,
    pub port: u16,
    /// HTTP path, absent for TCP probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The probe got the expected answer (an expected status code, or a TCP connect).
    pub ok: bool,
    /// HTTP status code, absent when no HTTP response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Time to the answer (or to the failure) in milliseconds.
    pub latency_ms: u64,
    /// Why the probe failed, absent when it got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeProtocol {
    Http,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeError {
    ConnectionRefused,
    Timeout,
    Other,
}

impl ProbeError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection_refused",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

/// CPU use over a short sample (`/proc/stat`, two reads one second apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cpu {
    /// Non-idle share of all cores, 0–100.
    pub busy_percent: f64,
    /// Online cores (`nproc`), at least 1.
    pub cores: u32,
    /// Share of time stolen by the hypervisor, 0–100, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_percent: Option<f64>,
}

/// `/proc/meminfo`, in MiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Memory {
    pub total_mb: u64,
    pub available_mb: u64,
    #[serde(default)]
    pub swap_total_mb: u64,
    #[serde(default)]
    pub swap_used_mb: u64,
}

/// `/proc/loadavg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Load {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// `df -P` and `df -Pi` of one mount, plus whether it is mounted read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Disk {
    pub mount: String,
    pub used_percent: u8,
    /// Absent on filesystems without a fixed inode table (btrfs, some xfs setups report 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_used_percent: Option<u8>,
    pub read_only: bool,
}

/// Kernel ring buffer findings of the last hour (by the kernel's timestamps; a line without
/// one counts), so an old event does not keep classifying a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Dmesg {
    /// Lines reporting block-device or filesystem I/O errors.
    pub io_errors: u32,
    /// Lines reporting the OOM killer at work.
    pub oom_kills: u32,
    /// Up to 20 of the matching lines, for the incident record (each cut to 512 characters).
    #[serde(default)]
    pub lines: Vec<String>,
}

/// The SSM agent unit as seen from the host (it ran this document, so it is at least alive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatus {
    pub active_state: ActiveState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Reachability checks from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkChecks {
    /// The resolver answered for a name that must exist (the regional SSM endpoint); false when
    /// it did not answer within the check's time limit.
    pub dns_ok: bool,
    /// The host has a default route.
    pub default_route: bool,
}

/// Why a diagnostics document was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagnosticsError {
    #[error("diagnostics output is empty: the command printed nothing")]
    Empty,
    #[error(
        "diagnostics output is {0} bytes, more than SSM's {MAX_DIAGNOSTICS_BYTES}-character limit"
    )]
    TooLarge(usize),
    #[error(
        "diagnostics schema_version {found} is not supported (this build reads {SCHEMA_VERSION}); update autoheal or pin the document version"
    )]
    UnsupportedVersion { found: u64 },
    #[error("invalid diagnostics document: {0}")]
    Invalid(ConfigError),
}

impl DiagnosticsError {
    /// The stable error name this failure carries into Step Functions.
    pub fn error_name(&self) -> &'static str {
        "DiagnosticsInvalid"
    }
}

/// Parses and validates the stdout of `ssm/diagnostics.yml`. Leading and trailing noise lines
/// (a login banner, a shell warning) are tolerated: the document is the text from the first `{`
/// to the last `}`.
pub fn parse_diagnostics(stdout: &str) -> Result<Diagnostics, DiagnosticsError> {
    if stdout.len() > MAX_DIAGNOSTICS_BYTES {
        return Err(DiagnosticsError::TooLarge(stdout.len()));
    }
    let (Some(start), Some(end)) = (stdout.find('{'), stdout.rfind('}')) else {
        return Err(if stdout.trim().is_empty() {
            DiagnosticsError::Empty
        } else {
            DiagnosticsError::Invalid(ConfigError::new(
                "diagnostics",
                "$",
                "no JSON object in the output",
                "the document must print exactly one JSON object; check the command's stderr",
            ))
        });
    };
    if end < start {
        return Err(DiagnosticsError::Invalid(ConfigError::new(
            "diagnostics",
            "$",
            "no JSON object in the output",
            "the document must print exactly one JSON object; check the command's stderr",
        )));
    }
    let body = &stdout[start..=end];
    // Check the major version first so a v2 document gets the version error, not a field error.
    #[derive(Deserialize)]
    struct Version {
        schema_version: Option<serde_json::Value>,
    }
    if let Ok(Version {
        schema_version: Some(v),
    }) = serde_json::from_str::<Version>(body)
    {
        match v.as_u64() {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => return Err(DiagnosticsError::UnsupportedVersion { found: n }),
            None => {}
        }
    }
    let doc: Diagnostics = parse_json("diagnostics", body, |path, _| {
        format!("`{path}` must match ssm/diagnostics.schema.json (see docs/diagnostics.md)")
    })
    .map_err(DiagnosticsError::Invalid)?;
    doc.validate().map_err(DiagnosticsError::Invalid)?;
    Ok(doc)
}

fn bad(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(
        "diagnostics",
        path,
        message,
        "the value is outside what a real host can report; see docs/diagnostics.md",
    )
}

fn check_percent(path: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(
            path,
            format!("{v} is not a percentage between 0 and 100"),
        ))
    }
}

fn check_text(path: &str, s: &str) -> Result<(), ConfigError> {
    if s.len() > MAX_TEXT {
        Err(bad(
            path,
            format!("text of {} bytes is longer than {MAX_TEXT}", s.len()),
        ))
    } else {
        Ok(())
    }
}

fn check_len<T>(path: &str, v: &[T], max: usize) -> Result<(), ConfigError> {
    if v.len() > max {
        Err(bad(
            path,
            format!("{} entries, more than the limit of {max}", v.len()),
        ))
    } else {
        Ok(())
    }
}

impl Diagnostics {
    /// Range and size checks beyond what the types express.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(bad("schema_version", format!("expected {SCHEMA_VERSION}")));
        }
        check_len("services", &self.services, MAX_LIST)?;
        for (i, s) in self.services.iter().enumerate() {
            check_text(&format!("services[{i}].name"), &s.name)?;
            if let Some(sub) = &s.sub_state {
                check_text(&format!("services[{i}].sub_state"), sub)?;
            }
        }
        check_len("listening_ports", &self.listening_ports, 1024)?;
        for (i, p) in self.listening_ports.iter().enumerate() {
            if let Some(proc_name) = &p.process {
                check_text(&format!("listening_ports[{i}].process"), proc_name)?;
            }
        }
        let probe = &self.health_probe;
        if let Some(path) = &probe.path {
            check_text("health_probe.path", path)?;
        }
        if let Some(code) = probe.status_code
            && !(100..=599).contains(&code)
        {
            return Err(bad(
                "health_probe.status_code",
                format!("{code} is not an HTTP status code"),
            ));
        }
        if probe.ok && probe.error.is_some() {
            return Err(bad(
                "health_probe.error",
                "an error is reported for a probe marked ok",
            ));
        }
        if !probe.ok && probe.error.is_none() && probe.status_code.is_none() {
            return Err(bad(
                "health_probe",
                "a failed probe must report an error or the status code it got",
            ));
        }
        check_percent("cpu.busy_percent", self.cpu.busy_percent)?;
        if let Some(steal) = self.cpu.steal_percent {
            check_percent("cpu.steal_percent", steal)?;
        }
        if self.cpu.cores == 0 {
            return Err(bad("cpu.cores", "a host has at least one core"));
        }
        let m = &self.memory;
        if m.total_mb == 0 {
            return Err(bad("memory.total_mb", "a host has some memory"));
        }
        if m.available_mb > m.total_mb {
            return Err(bad(
                "memory.available_mb",
                "more memory available than installed",
            ));
        }
        if m.swap_used_mb > m.swap_total_mb {
            return Err(bad("memory.swap_used_mb", "more swap used than configured"));
        }
        for (name, v) in [
            ("load.one", self.load.one),
            ("load.five", self.load.five),
            ("load.fifteen", self.load.fifteen),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(name, format!("{v} is not a load average")));
            }
        }
        check_len("disks", &self.disks, MAX_LIST)?;
        for (i, d) in self.disks.iter().enumerate() {
            check_text(&format!("disks[{i}].mount"), &d.mount)?;
            check_percent(
                &format!("disks[{i}].used_percent"),
                f64::from(d.used_percent),
            )?;
            if let Some(inodes) = d.inodes_used_percent {
                check_percent(
                    &format!("disks[{i}].inodes_used_percent"),
                    f64::from(inodes),
                )?;
            }
        }
        check_len("dmesg.lines", &self.dmesg.lines, MAX_DMESG_LINES)?;
        for (i, l) in self.dmesg.lines.iter().enumerate() {
            check_text(&format!("dmesg.lines[{i}]"), l)?;
        }
        if let Some(v) = &self.ssm_agent.version {
            check_text("ssm_agent.version", v)?;
        }
        check_len("timed_out_checks", &self.timed_out_checks, MAX_LIST)?;
        for (i, c) in self.timed_out_checks.iter().enumerate() {
            check_text(&format!("timed_out_checks[{i}]"), c)?;
        }
        if let Some(at) = &self.collected_at {
            check_text("collected_at", at)?;
        }
        Ok(())
    }

    /// Available memory as a share of installed memory, 0–100.
    pub fn memory_available_percent(&self) -> f64 {
        self.memory.available_mb as f64 * 100.0 / self.memory.total_mb.max(1) as f64
    }

    /// Used swap as a share of configured swap, 0 when there is no swap.
    pub fn swap_used_percent(&self) -> f64 {
        if self.memory.swap_total_mb == 0 {
            0.0
        } else {
            self.memory.swap_used_mb as f64 * 100.0 / self.memory.swap_total_mb as f64
        }
    }

    /// One-minute load per core.
    pub fn load_per_core(&self) -> f64 {
        self.load.one / f64::from(self.cpu.cores.max(1))
    }

    /// The fullest mount's used share (0 when no disks are reported).
    pub fn disk_used_max_percent(&self) -> u8 {
        self.disks.iter().map(|d| d.used_percent).max().unwrap_or(0)
    }

    /// The fullest mount's inode share (0 when none is reported).
    pub fn inode_used_max_percent(&self) -> u8 {
        self.disks
            .iter()
            .filter_map(|d| d.inodes_used_percent)
            .max()
            .unwrap_or(0)
    }

    /// Mounts that are read-only (a filesystem remounted read-only after errors).
    pub fn read_only_mounts(&self) -> usize {
        self.disks.iter().filter(|d| d.read_only).count()
    }

    /// Services reported as down (inactive, failed or missing).
    pub fn services_down(&self) -> usize {
        self.services
            .iter()
            .filter(|s| s.active_state.is_down())
            .count()
    }

    /// The probed port is in LISTEN state.
    pub fn probe_port_listening(&self) -> bool {
        self.listening_ports
            .iter()
            .any(|p| p.port == self.health_probe.port)
    }
}

/// The JSON Schema of [`Diagnostics`], as checked into `ssm/diagnostics.schema.json`.
pub fn diagnostics_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Diagnostics)).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            serde_json::Value::String(format!(
                "https://autoheal.dev/schemas/diagnostics/v{SCHEMA_VERSION}.json"
            )),
        );
    }
    schema
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A healthy host's document, the base the other tests change.
    pub(crate) const HEALTHY: &str =
        include_str!("../../../tests/fixtures/diagnostics/healthy.json");

    #[test]
    fn a_healthy_hosts_document_parses() {
        let d = parse_diagnostics(HEALTHY).expect("valid");
        assert_eq!(d.schema_version, 1);
        assert_eq!(d.services_down(), 0);
        assert!(d.probe_port_listening());
        assert!(d.health_probe.ok);
    }

    #[test]
    fn noise_around_the_document_is_tolerated() {
        let noisy = format!("warning: setlocale failed\n{HEALTHY}\n");
        assert!(parse_diagnostics(&noisy).is_ok());
    }

    #[test]
    fn empty_output_is_its_own_error() {
        assert_eq!(parse_diagnostics("  \n"), Err(DiagnosticsError::Empty));
    }

    #[test]
    fn output_longer_than_ssm_can_deliver_is_rejected() {
        let big = format!("{HEALTHY}{}", " ".repeat(MAX_DIAGNOSTICS_BYTES));
        assert!(matches!(
            parse_diagnostics(&big),
            Err(DiagnosticsError::TooLarge(_))
        ));
    }

    #[test]
    fn a_truncated_document_is_invalid_not_a_panic() {
        let cut = &HEALTHY[..HEALTHY.len() / 2];
        assert!(matches!(
            parse_diagnostics(cut),
            Err(DiagnosticsError::Invalid(_))
        ));
    }

    #[test]
    fn an_unknown_major_version_is_named() {
        let v2 = HEALTHY.replacen("\"schema_version\": 1", "\"schema_version\": 2", 1);
        assert_eq!(
            parse_diagnostics(&v2),
            Err(DiagnosticsError::UnsupportedVersion { found: 2 })
        );
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let extra = HEALTHY.replacen("{", "{\"gpu\": {\"ok\": true},", 1);
        assert!(parse_diagnostics(&extra).is_ok());
    }

    #[test]
    fn out_of_range_values_name_their_path() {
        let cases = [
            (
                "\"busy_percent\": 7.5",
                "\"busy_percent\": 150",
                "cpu.busy_percent",
            ),
            (
                "\"used_percent\": 41",
                "\"used_percent\": 101",
                "disks[0].used_percent",
            ),
            (
                "\"available_mb\": 2900",
                "\"available_mb\": 99999",
                "memory.available_mb",
            ),
            ("\"cores\": 2", "\"cores\": 0", "cpu.cores"),
            (
                "\"status_code\": 200",
                "\"status_code\": 1000",
                "health_probe.status_code",
            ),
        ];
        for (from, to, path) in cases {
            assert!(HEALTHY.contains(from), "fixture lacks {from}");
            let doc = HEALTHY.replacen(from, to, 1);
            match parse_diagnostics(&doc) {
                Err(DiagnosticsError::Invalid(e)) => assert_eq!(e.path, path, "{e}"),
                other => panic!("{to}: expected invalid at {path}, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_types_name_their_path() {
        let doc = HEALTHY.replacen("\"dns_ok\": true", "\"dns_ok\": \"yes\"", 1);
        match parse_diagnostics(&doc) {
            Err(DiagnosticsError::Invalid(e)) => assert_eq!(e.path, "network.dns_ok"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_probe_must_say_why() {
        let doc = HEALTHY
            .replacen("\"ok\": true", "\"ok\": false", 1)
            .replacen("\"status_code\": 200,", "", 1);
        match parse_diagnostics(&doc) {
            Err(DiagnosticsError::Invalid(e)) => assert_eq!(e.path, "health_probe"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_checked_in_schema_is_generated_from_these_types() {
        let generated =
            serde_json::to_string_pretty(&diagnostics_schema()).expect("schema serialises") + "\n";
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../ssm/diagnostics.schema.json"
        );
        if std::env::var_os("AUTOHEAL_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &generated).expect("write schema");
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "ssm/diagnostics.schema.json is stale: run `AUTOHEAL_UPDATE_SCHEMA=1 cargo test -p autoheal-core schema` and commit it"
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
                let _ = parse_diagnostics(&s);
            }

            #[test]
            fn mutated_documents_never_panic(pos in 0usize..2000, ch in any::<char>(), cut in 0usize..2000) {
                let mut doc: String = HEALTHY.to_owned();
                let p = pos.min(doc.len());
                if doc.is_char_boundary(p) { doc.insert(p, ch); }
                let c = cut.min(doc.len());
                if c % 3 == 0 && doc.is_char_boundary(c) { doc.truncate(c); }
                let _ = parse_diagnostics(&doc);
            }

            #[test]
            fn numbers_anywhere_never_panic(n in any::<i64>(), f in any::<f64>()) {
                let doc = HEALTHY
                    .replacen("\"uptime_s\": 86400", &format!("\"uptime_s\": {n}"), 1)
                    .replacen("\"one\": 0.4", &format!("\"one\": {f}"), 1);
                let _ = parse_diagnostics(&doc);
            }
        }
    }
}
