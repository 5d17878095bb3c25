//! autoheal-core: the domain of self-healing load-balancer targets.
//!
//! - [`ids`], [`health`], [`observe`], [`time`]: parsed domain values and raw observations;
//! - [`diagnostics`]: the contract of `ssm/diagnostics.yml` and its parser (untrusted input);
//! - [`facts`] and [`rules`]: the data-driven classifier (`rules/diagnosis_rules.json`);
//! - [`policy`] and [`decision`]: healing policy and the pure decision engine;
//! - [`incident`]: incidents, records and history;
//! - [`ports`]: the narrow async traits the AWS adapters and the simulator implement;
//! - [`error`]: errors with the stable names Step Functions matches on.
//!
//! No AWS SDK type appears in this crate.

pub mod config;
pub mod decision;
pub mod diagnostics;
pub mod error;
pub mod facts;
pub mod health;
pub mod ids;
pub mod incident;
pub mod limits;
pub mod observe;
pub mod policy;
pub mod ports;
pub mod reference;
pub mod rules;
pub mod time;

pub use config::ConfigError;
pub use decision::{Decision, DecisionInput, FleetAssessment, FleetVerdict, assess_fleet, decide};
pub use diagnostics::{Diagnostics, parse_diagnostics};
pub use error::{ERROR_NAMES, PortError};
pub use facts::{Facts, Observation};
pub use health::{GroupSnapshot, HealthState, ReasonCode, TargetHealth};
pub use ids::{
    AsgName, CleanupPath, HealthCheckPath, IdError, IncidentId, InstanceId, ServiceName,
    TargetGroupArn,
};
pub use incident::{History, Incident, IncidentRecord, IncidentStatus};
pub use policy::{Action, GlobalPolicy, InstancePolicy};
pub use rules::{Diagnosis, FaultClass, RuleSet};
pub use time::Timestamp;
