//! The task handlers of `statemachine/autoheal.asl.json`, written once over the ports of
//! `autoheal-core`. The local runner invokes them in-process ([`InProcess`]); the Lambda
//! binaries wrap the same functions. Each handler takes the JSON its Task state's `Parameters`
//! build and returns the JSON the state machine reads (docs/statemachine.md, "The task
//! contract").

use std::time::Duration;

use autoheal_core::ports::{
    Clock, CommandRunner, DocumentRef, FleetControl, IncidentStore, InstanceControl,
    InstanceInventory, Notifier, TargetGroupCatalog, TargetHealthSource, TargetRegistry,
};
use serde_json::Value;

mod error;
mod handlers;
pub mod in_process;

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn documents_and_timeouts_come_from_the_environment_and_bad_values_are_named() {
        let env = |k: &str| match k {
            "AUTOHEAL_DIAGNOSTICS_DOCUMENT" => Some("autoheal-Diagnostics-X1:3".to_owned()),
            "AUTOHEAL_LEASE_TTL_S" => Some("900".to_owned()),
            _ => None,
        };
        let c = Config::from_vars(env).expect("valid");
        assert_eq!(c.diagnostics_document.name, "autoheal-Diagnostics-X1");
        assert_eq!(c.diagnostics_document.version, "3");
        assert_eq!(c.restart_document.version, "$DEFAULT");
        assert_eq!(c.lease_ttl_s, 900);
        let bad =
            Config::from_vars(|k| (k == "AUTOHEAL_COMMAND_DEADLINE_S").then(|| "soon".to_owned()))
                .expect_err("bad number");
        assert!(bad.cause.contains("AUTOHEAL_COMMAND_DEADLINE_S"), "{bad}");
    }
}
pub mod summary;
pub mod trigger;
pub mod worker;

pub use error::TaskError;
pub use handlers::*;
pub use in_process::{InProcess, dispatch, substitutions};

/// `statemachine/autoheal.asl.json` as built into this binary: the file CDK deploys.
pub const DEFINITION: &str = include_str!("../../../statemachine/autoheal.asl.json");

/// The built-in definition with every placeholder bound to its in-process handler.
pub fn definition() -> Result<autoheal_asl::StateMachine, autoheal_asl::DefinitionError> {
    autoheal_asl::StateMachine::parse(&autoheal_asl::substitute(DEFINITION, &substitutions()))
}

/// Everything the handlers reach: every port. The AWS adapters implement it on one struct of
/// SDK clients, the simulator on its simulated region.
pub trait World:
    TargetGroupCatalog
    + TargetHealthSource
    + TargetRegistry
    + InstanceInventory
    + InstanceControl
    + FleetControl
    + CommandRunner
    + IncidentStore
    + Notifier
    + Clock
{
}

impl<T> World for T where
    T: TargetGroupCatalog
        + TargetHealthSource
        + TargetRegistry
        + InstanceInventory
        + InstanceControl
        + FleetControl
        + CommandRunner
        + IncidentStore
        + Notifier
        + Clock
{
}

/// Settings of the handlers (environment variables on Lambda, defaults locally).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub diagnostics_document: DocumentRef,
    pub restart_document: DocumentRef,
    pub verify_document: DocumentRef,
    /// How long a lease lasts: longer than one incident takes, short enough that a crashed holder
    /// does not block the instance for long.
    pub lease_ttl_s: u64,
    /// How long a handler waits for an SSM command before giving up.
    pub command_deadline_s: u64,
    /// Between two GetCommandInvocation calls.
    pub poll_interval_s: u64,
    /// Incidents of one target detected within the same bucket of this many seconds share an id
    /// (the trigger names executions by scope and minute, so the alarm, the schedule and a manual
    /// start in one minute are one execution; the lease keeps later ones off a target in work).
    pub incident_bucket_s: u64,
    /// The target group's deregistration delay, when the catalog does not say.
    pub deregistration_delay_s: u64,
    /// The longest a drain waits for a still-serving target's requests to finish. ELB ends the
    /// draining early once no request is in flight; web requests take seconds, so waiting the
    /// whole delay (300 s by default) would only keep a failing target out longer.
    pub drain_wait_max_s: u64,
    /// Seconds to wait after a restart, a reboot and a replacement before the first check.
    pub restart_settle_s: u64,
    pub reboot_settle_s: u64,
    pub replace_settle_s: u64,
    /// Seconds between two verification checks.
    pub verify_interval_s: u64,
    /// Verification checks per heal before it counts as failed (capped at
    /// `autoheal_core::limits::MAX_VERIFY_ATTEMPTS`).
    pub verify_attempts: u32,
    /// The same for a replacement, which must launch, boot and pass the load balancer's healthy
    /// threshold (minutes, not seconds).
    pub replace_verify_interval_s: u64,
    pub replace_verify_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        let doc = |name: &str| DocumentRef {
            name: name.to_owned(),
            version: "$DEFAULT".to_owned(),
        };
        Self {
            diagnostics_document: doc("autoheal-Diagnostics"),
            restart_document: doc("autoheal-RestartServices"),
            verify_document: doc("autoheal-VerifyHealth"),
            lease_ttl_s: 7200,
            command_deadline_s: 240,
            poll_interval_s: 2,
            incident_bucket_s: 60,
            deregistration_delay_s: 300,
            drain_wait_max_s: 60,
            restart_settle_s: 10,
            reboot_settle_s: 60,
            replace_settle_s: 240,
            verify_interval_s: 15,
            verify_attempts: 5,
            replace_verify_interval_s: 30,
            replace_verify_attempts: 10,
        }
    }
}

impl Config {
    /// The settings of a Lambda or an activity worker: the defaults, with the SSM documents the
    /// stack created (`AUTOHEAL_DIAGNOSTICS_DOCUMENT`, `AUTOHEAL_RESTART_SERVICES_DOCUMENT`,
    /// `AUTOHEAL_VERIFY_HEALTH_DOCUMENT`, each `name` or `name:version`) and the numeric
    /// `AUTOHEAL_LEASE_TTL_S`, `AUTOHEAL_COMMAND_DEADLINE_S`, `AUTOHEAL_DEREGISTRATION_DELAY_S`,
    /// `AUTOHEAL_DRAIN_WAIT_MAX_S`.
    pub fn from_env() -> Result<Config, TaskError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`Config::from_env`], over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, TaskError> {
        let mut c = Config::default();
        for (key, doc) in [
            ("AUTOHEAL_DIAGNOSTICS_DOCUMENT", &mut c.diagnostics_document),
            (
                "AUTOHEAL_RESTART_SERVICES_DOCUMENT",
                &mut c.restart_document,
            ),
            ("AUTOHEAL_VERIFY_HEALTH_DOCUMENT", &mut c.verify_document),
        ] {
            if let Some(v) = var(key).filter(|v| !v.is_empty()) {
                let (name, version) = v.split_once(':').unwrap_or((v.as_str(), "$DEFAULT"));
                if name.is_empty() || version.is_empty() {
                    return Err(TaskError::invalid_input(format!(
                        "{key} {v:?} is not `name` or `name:version`"
                    )));
                }
                *doc = DocumentRef {
                    name: name.to_owned(),
                    version: version.to_owned(),
                };
            }
        }
        for (key, field) in [
            ("AUTOHEAL_LEASE_TTL_S", &mut c.lease_ttl_s),
            ("AUTOHEAL_COMMAND_DEADLINE_S", &mut c.command_deadline_s),
            (
                "AUTOHEAL_DEREGISTRATION_DELAY_S",
                &mut c.deregistration_delay_s,
            ),
            ("AUTOHEAL_DRAIN_WAIT_MAX_S", &mut c.drain_wait_max_s),
        ] {
            if let Some(v) = var(key).filter(|v| !v.is_empty()) {
                *field = v.parse().map_err(|_| {
                    TaskError::invalid_input(format!(
                        "{key} {v:?} is not a whole number of seconds"
                    ))
                })?;
            }
        }
        Ok(c)
    }
}

/// Waits on the handlers' clock (tokio's: virtual under the local runner, real on Lambda).
async fn pause(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Reads a handler's input, naming what is wrong.
fn input<T: serde::de::DeserializeOwned>(task: &str, v: Value) -> Result<T, TaskError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        TaskError::invalid_input(format!("{task}: at {at}: {}", e.into_inner()))
    })
}

/// Serialises a handler's output.
fn output<T: serde::Serialize>(v: &T) -> Result<Value, TaskError> {
    serde_json::to_value(v)
        .map_err(|e| TaskError::invalid_input(format!("cannot serialise the result: {e}")))
}

/// A step's result with `at`, the time the step ended (RFC 3339): `record` turns the stamped
/// results the execution carries into the incident's steps.
fn stamped(mut v: Value, now: autoheal_core::Timestamp) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("at".to_owned(), Value::String(now.to_rfc3339()));
    }
    v
}
