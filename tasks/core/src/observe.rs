//! What one run can observe about a target beyond its ELB health: EC2 state and status checks,
//! the SSM command's own status and the agent's ping status. These are the raw outputs real hosts
//! and APIs produce; the simulator produces the same, never a fault kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AsgName, InstanceId};
use crate::time::Timestamp;

/// EC2 `InstanceState.Name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

/// EC2 `InstanceStatus.Status` / `SystemStatus.Status` (DescribeInstanceStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusCheck {
    Ok,
    Impaired,
    InsufficientData,
    NotApplicable,
    Initializing,
}

impl StatusCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Impaired => "impaired",
            Self::InsufficientData => "insufficient-data",
            Self::NotApplicable => "not-applicable",
            Self::Initializing => "initializing",
        }
    }
}

/// One EC2 instance as DescribeInstances + DescribeInstanceStatus report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub instance: InstanceId,
    pub state: InstanceState,
    /// Instance status check (the guest OS: reachability, kernel, network config).
    pub instance_status: StatusCheck,
    /// System status check (the AWS host: hardware, power, network).
    pub system_status: StatusCheck,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The Auto Scaling group (`aws:autoscaling:groupName` tag), when the instance is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg: Option<AsgName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<Timestamp>,
}

/// The tag with which an instance opts out of autoheal.
pub const SKIP_TAG: &str = "autoheal:skip";

impl InstanceInfo {
    /// The instance carries `autoheal:skip=true` (case-insensitive value).
    pub fn opted_out(&self) -> bool {
        tags_opt_out(&self.tags)
    }
}

/// `autoheal:skip=true` (value compared case-insensitively, surrounding spaces ignored).
pub fn tags_opt_out(tags: &BTreeMap<String, String>) -> bool {
    tags.get(SKIP_TAG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The status of an SSM command invocation on one instance (`GetCommandInvocation` `Status`,
/// with the `StatusDetails` that matter for diagnosis split out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Pending,
    InProgress,
    Delayed,
    Success,
    Failed,
    Cancelled,
    /// `ExecutionTimedOut`: the script started and ran out of time.
    TimedOut,
    /// `DeliveryTimedOut`: the agent never picked the command up.
    DeliveryTimedOut,
    /// `Undeliverable`: the instance is not reachable by SSM (agent down, no network).
    Undeliverable,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Delayed => "delayed",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::DeliveryTimedOut => "delivery_timed_out",
            Self::Undeliverable => "undeliverable",
        }
    }

    /// The command has finished one way or another.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::InProgress | Self::Delayed)
    }
}

/// `DescribeInstanceInformation` `PingStatus` of the SSM agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentPing {
    Online,
    ConnectionLost,
    Inactive,
    /// The instance is not registered with SSM at all.
    NotRegistered,
}

impl AgentPing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::ConnectionLost => "connection_lost",
            Self::Inactive => "inactive",
            Self::NotRegistered => "not_registered",
        }
    }
}

/// The result of an SSM command on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command_id: String,
    pub status: CommandStatus,
    /// Standard output (SSM keeps at most 24,000 characters).
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}
