//! Ports: one narrow async trait per capability (DESIGN.md §3). The AWS adapters
//! (`tasks/aws`) and the simulator (`tasks/sim`) implement them; handlers take `&impl Port` or a
//! `Deps` struct of them. No AWS SDK type appears here.
//!
//! Methods return `impl Future + Send` so handlers can run on a multi-threaded runtime (Lambda,
//! activity workers) as well as the local runner; implementations may write `async fn`.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::PortError;
use crate::health::TargetHealth;
use crate::ids::{AsgName, IncidentId, InstanceId, TargetGroupArn};
use crate::incident::{HealRecord, History, IncidentRecord, Transition};
use crate::observe::{AgentPing, CommandResult, InstanceInfo};
use crate::policy::InstancePolicy;
use crate::time::Timestamp;

pub type PortResult<T> = Result<T, PortError>;

/// Load balancer kind of a target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbKind {
    Alb,
    Nlb,
}

/// A target group and its health check, as DescribeTargetGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupInfo {
    pub arn: TargetGroupArn,
    pub lb: LbKind,
    /// `HTTP`, `HTTPS`, `TCP`, ...
    pub protocol: String,
    pub port: u16,
    /// The health check's port (`traffic-port` resolved to the target's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_port: Option<u16>,
    /// The health check's path for HTTP(S) checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
}

/// Which target groups autoheal watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetGroupSelector {
    Arns(Vec<TargetGroupArn>),
    /// Every target group carrying this tag with this value.
    Tag {
        key: String,
        value: String,
    },
}

/// ELBv2 DescribeTargetGroups.
pub trait TargetGroupCatalog: Send + Sync {
    fn target_groups(
        &self,
        selector: &TargetGroupSelector,
    ) -> impl Future<Output = PortResult<Vec<TargetGroupInfo>>> + Send;
}

/// ELBv2 DescribeTargetHealth (with `Include=AnomalyDetection` where the group supports it).
pub trait TargetHealthSource: Send + Sync {
    fn describe_target_health(
        &self,
        target_group: &TargetGroupArn,
    ) -> impl Future<Output = PortResult<Vec<TargetHealth>>> + Send;
}

/// ELBv2 RegisterTargets / DeregisterTargets.
pub trait TargetRegistry: Send + Sync {
    fn register(
        &self,
        target_group: &TargetGroupArn,
        instance: &InstanceId,
        port: u16,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn deregister(
        &self,
        target_group: &TargetGroupArn,
        instance: &InstanceId,
        port: u16,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// EC2 DescribeInstances + DescribeInstanceStatus (tags included).
pub trait InstanceInventory: Send + Sync {
    /// The instances that exist; ids that do not exist are left out of the answer.
    fn describe_instances(
        &self,
        instances: &[InstanceId],
    ) -> impl Future<Output = PortResult<Vec<InstanceInfo>>> + Send;
}

/// EC2 RebootInstances.
pub trait InstanceControl: Send + Sync {
    fn reboot(&self, instance: &InstanceId) -> impl Future<Output = PortResult<()>> + Send;
}

/// An Auto Scaling group's capacity and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsgInfo {
    pub name: AsgName,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    pub instances: Vec<AsgInstance>,
}

/// One member of an Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsgInstance {
    pub instance: InstanceId,
    /// `Pending`, `InService`, `Standby`, `Terminating`, ...
    pub lifecycle_state: String,
    /// `Healthy` or `Unhealthy`.
    pub health_status: String,
}

/// Auto Scaling: describe, standby, set-health, terminate-in-group.
pub trait FleetControl: Send + Sync {
    fn describe_group(&self, asg: &AsgName) -> impl Future<Output = PortResult<AsgInfo>> + Send;
    fn enter_standby(
        &self,
        asg: &AsgName,
        instance: &InstanceId,
        decrement_desired: bool,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn exit_standby(
        &self,
        asg: &AsgName,
        instance: &InstanceId,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn set_unhealthy(&self, instance: &InstanceId) -> impl Future<Output = PortResult<()>> + Send;
    /// Terminates the instance through its group; returns the scaling activity id.
    fn terminate_in_group(
        &self,
        instance: &InstanceId,
        decrement_desired: bool,
    ) -> impl Future<Output = PortResult<String>> + Send;
}

/// An SSM document pinned to a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub name: String,
    /// `$DEFAULT`, `$LATEST` or a number; production pins a number.
    pub version: String,
}

/// An SSM SendCommand to one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub instance: InstanceId,
    pub document: DocumentRef,
    /// Parameters, already validated against the document's allow-patterns.
    pub parameters: BTreeMap<String, Vec<String>>,
    pub timeout_s: u32,
}

/// SSM SendCommand / GetCommandInvocation / DescribeInstanceInformation.
pub trait CommandRunner: Send + Sync {
    /// Sends the command; returns its command id.
    fn send(&self, request: &CommandRequest) -> impl Future<Output = PortResult<String>> + Send;
    /// The command's current status and output on the instance.
    fn result(
        &self,
        command_id: &str,
        instance: &InstanceId,
    ) -> impl Future<Output = PortResult<CommandResult>> + Send;
    fn agent_status(
        &self,
        instance: &InstanceId,
    ) -> impl Future<Output = PortResult<AgentPing>> + Send;
}

/// A lease: one incident at a time per instance, with an expiry so a crashed holder cannot block
/// the instance forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub instance: InstanceId,
    pub holder: IncidentId,
    pub expires_at: Timestamp,
}

impl Lease {
    /// Whether `current`, the lease an instance has now, keeps `holder` from taking it at
    /// `now`: it does while another holder's lease is unexpired (the same holder re-acquires,
    /// as a retried task must). Every store applies this one rule.
    pub fn check(current: Option<&Lease>, holder: &IncidentId, now: Timestamp) -> PortResult<()> {
        match current {
            Some(l) if &l.holder != holder && l.expires_at > now => Err(PortError::LeaseHeld {
                instance: l.instance.to_string(),
                holder: l.holder.to_string(),
                expires_at: l.expires_at.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Which incidents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// DynamoDB (or the embedded store): incidents, leases, instance policy, history.
pub trait IncidentStore: Send + Sync {
    fn put_incident(&self, record: &IncidentRecord) -> impl Future<Output = PortResult<()>> + Send;
    fn get_incident(
        &self,
        id: &IncidentId,
    ) -> impl Future<Output = PortResult<Option<IncidentRecord>>> + Send;
    fn list_incidents(
        &self,
        query: &IncidentQuery,
    ) -> impl Future<Output = PortResult<Vec<IncidentRecord>>> + Send;
    /// Takes the instance's lease for `holder` until `now + ttl_s`, or fails with
    /// [`PortError::LeaseHeld`] while another holder's lease has not expired. Taking a lease one
    /// already holds extends it (idempotent under retries).
    fn acquire_lease(
        &self,
        instance: &InstanceId,
        holder: &IncidentId,
        now: Timestamp,
        ttl_s: u64,
    ) -> impl Future<Output = PortResult<Lease>> + Send;
    /// Releases the lease if `holder` still holds it (no-op otherwise).
    fn release_lease(
        &self,
        instance: &InstanceId,
        holder: &IncidentId,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Unexpired leases of these instances (the heals in flight).
    fn active_leases(
        &self,
        instances: &[InstanceId],
        now: Timestamp,
    ) -> impl Future<Output = PortResult<Vec<Lease>>> + Send;
    fn instance_policy(
        &self,
        instance: &InstanceId,
    ) -> impl Future<Output = PortResult<Option<InstancePolicy>>> + Send;
    fn history(
        &self,
        instance: &InstanceId,
        since: Timestamp,
    ) -> impl Future<Output = PortResult<History>> + Send;
    fn record_heal(&self, heal: &HealRecord) -> impl Future<Output = PortResult<()>> + Send;
    fn record_transition(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One message to people about one execution (SNS, Slack, Teams render it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// At most 100 characters (SNS's subject limit).
    pub subject: String,
    pub severity: Severity,
    pub target_group: TargetGroupArn,
    pub incidents: Vec<IncidentRecord>,
    /// Decisions held back by fleet safety, as sentences.
    #[serde(default)]
    pub held_back: Vec<String>,
    /// The Step Functions console link of the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_url: Option<String>,
    /// A task token for an approval, when the notification asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
}

/// SNS / Slack / Teams.
pub trait Notifier: Send + Sync {
    fn notify(&self, notification: &Notification) -> impl Future<Output = PortResult<()>> + Send;
}

/// What StartExecution did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum StartOutcome {
    /// Started, or, for a repeat of the same name *and input* while that execution runs, that
    /// execution (Step Functions' own idempotency: a retried trigger is not a second run).
    Started { execution_arn: String },
    /// An execution with this name already exists with another input (the alarm and the
    /// schedule for the same scope and minute): not duplicated.
    AlreadyRunning { execution_arn: String },
}

/// Step Functions StartExecution / RedriveExecution.
pub trait ExecutionStarter: Send + Sync {
    fn start_execution(
        &self,
        name: &IncidentId,
        input: &serde_json::Value,
    ) -> impl Future<Output = PortResult<StartOutcome>> + Send;
    fn redrive(&self, execution_arn: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// The time source: the real clock on AWS, the virtual clock locally.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthState;

    /// A port implemented with plain `async fn`, as adapters will be.
    struct OneTarget;

    impl TargetHealthSource for OneTarget {
        async fn describe_target_health(
            &self,
            _: &TargetGroupArn,
        ) -> PortResult<Vec<TargetHealth>> {
            Ok(vec![TargetHealth {
                instance: InstanceId::parse("i-0123abcd")
                    .map_err(|e| PortError::InvalidRequest(e.to_string()))?,
                port: 80,
                state: HealthState::Unhealthy,
                reason: None,
                description: None,
                anomaly: None,
            }])
        }
    }

    /// A handler generic over the port, the shape every task handler has.
    async fn failing_targets(
        src: &impl TargetHealthSource,
        tg: &TargetGroupArn,
    ) -> PortResult<usize> {
        Ok(src
            .describe_target_health(tg)
            .await?
            .iter()
            .filter(|t| t.state.is_failing())
            .count())
    }

    #[tokio::test]
    async fn handlers_over_ports_run_on_spawned_tasks() {
        let tg = TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .expect("valid");
        // `spawn` requires the handler's future to be Send: this fails to compile otherwise.
        let n = tokio::spawn(async move { failing_targets(&OneTarget, &tg).await })
            .await
            .expect("joined")
            .expect("ok");
        assert_eq!(n, 1);
    }

    #[test]
    fn the_system_clock_is_after_2024() {
        assert!(SystemClock.now() > Timestamp(1_700_000_000));
    }
}
