//! Systems Manager Run Command: [`CommandRunner`] over SendCommand, GetCommandInvocation and
//! DescribeInstanceInformation.
//!
//! - **send**: one SendCommand to one instance, with the document pinned to the version of the
//!   [`DocumentRef`](autoheal_core::ports::DocumentRef), the parameters as given (the caller has
//!   validated them against the document's allow-patterns) and `TimeoutSeconds` set from the
//!   request's timeout. `TimeoutSeconds` is SSM's *delivery* timeout (how long the command may
//!   wait for the agent), clamped to what SSM accepts (30 s to 30 days). How long the script may
//!   run is the document's own `executionTimeout` parameter; it is passed only if the caller puts
//!   it in the parameters (the documents of `ssm/` declare their timeouts themselves).
//! - **result**: GetCommandInvocation mapped to a [`CommandResult`]. The status comes from
//!   `StatusDetails` where it is finer than `Status` ([`command_status`]): `DeliveryTimedOut` (the
//!   agent never picked the command up), `ExecutionTimedOut` (the script ran out of time) and
//!   `Undeliverable` (the instance is not reachable by SSM) are told apart. `InvalidPlatform` and
//!   `AccessDenied` details are plain `Failed`: the agent was reached and refused the command,
//!   which is not an unreachable instance. `ResponseCode` `-1` (not run) is no exit code.
//!   Right after SendCommand, GetCommandInvocation may answer `InvocationDoesNotExist` for a
//!   moment (eventual consistency): that is reported as `InProgress`, not as an error, and the
//!   caller's polling deadline bounds how long it is believed.
//! - **agent_status**: DescribeInstanceInformation filtered on the instance id; an instance SSM
//!   does not list is `NotRegistered`.
//!
//! `InvalidInstanceId` (SendCommand, GetCommandInvocation) maps to `InstanceNotFound`: the
//! instance does not exist, is terminated, or is not a managed instance.

use std::collections::{BTreeMap, HashMap};

use autoheal_core::InstanceId;
use autoheal_core::error::PortError;
use autoheal_core::observe::{AgentPing, CommandResult, CommandStatus};
use autoheal_core::ports::{CommandRequest, CommandRunner, PortResult};
use aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationError;
use aws_sdk_ssm::operation::get_command_invocation::{
    GetCommandInvocationError, GetCommandInvocationOutput,
};
use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter, PingStatus};

use crate::Aws;
use crate::error::{self, Call};

const SERVICE: &str = "ssm";

/// Error codes of SSM that mean the instance is not (or no longer) a managed instance.
const INSTANCE_MISSING: &[&str] = &["InvalidInstanceId"];

/// SendCommand's `TimeoutSeconds` bounds (the API rejects values outside them).
pub const MIN_DELIVERY_TIMEOUT_S: u32 = 30;
pub const MAX_DELIVERY_TIMEOUT_S: u32 = 2_592_000;

/// Pages of DescribeInstanceInformation read at most while looking for one instance.
const MAX_PAGES: usize = 20;

impl CommandRunner for Aws {
    async fn send(&self, request: &CommandRequest) -> PortResult<String> {
        let instance = request.instance.as_str();
        let call = Call::new(SERVICE, "SendCommand").instance(instance, INSTANCE_MISSING);
        let out = self
            .ssm
            .send_command()
            .document_name(&request.document.name)
            .document_version(&request.document.version)
            .instance_ids(instance)
            .set_parameters(parameters(&request.parameters))
            .timeout_seconds(delivery_timeout(request.timeout_s))
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        out.command()
            .and_then(|c| c.command_id())
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| error::missing(call, "Command.CommandId"))
    }

    async fn result(&self, command_id: &str, instance: &InstanceId) -> PortResult<CommandResult> {
        let call = Call::new(SERVICE, "GetCommandInvocation")
            .instance(instance.as_str(), INSTANCE_MISSING);
        let answer = self
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance.as_str())
            .send()
            .await;
        match answer {
            Ok(out) => Ok(command_result(command_id, &out)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetCommandInvocationError::is_invocation_does_not_exist) =>
            {
                Ok(not_yet_visible(command_id))
            }
            Err(e) => Err(error::map(call, e)),
        }
    }

    async fn agent_status(&self, instance: &InstanceId) -> PortResult<AgentPing> {
        let call = Call::new(SERVICE, "DescribeInstanceInformation")
            .instance(instance.as_str(), INSTANCE_MISSING);
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance.as_str())
            .build()
            .map_err(|e| {
                PortError::InvalidRequest(format!("DescribeInstanceInformation filter: {e}"))
            })?;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let answer = self
                .ssm
                .describe_instance_information()
                .filters(filter.clone())
                .set_next_token(token.take())
                .send()
                .await;
            let out = match answer {
                Ok(out) => out,
                // Some regions answer an unknown id in the filter with InvalidInstanceId.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(DescribeInstanceInformationError::is_invalid_instance_id) =>
                {
                    return Ok(AgentPing::NotRegistered);
                }
                Err(e) => return Err(error::map(call, e)),
            };
            if let Some(info) = out
                .instance_information_list()
                .iter()
                .find(|i| i.instance_id() == Some(instance.as_str()))
            {
                return Ok(agent_ping(info.ping_status()));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(AgentPing::NotRegistered),
            }
        }
        Err(PortError::Service {
            service: SERVICE,
            message: format!(
                "DescribeInstanceInformation returned {MAX_PAGES} pages without {instance} or an \
                 end"
            ),
            source: None,
        })
    }
}

/// The parameters as SendCommand takes them (`None` when there are none).
pub fn parameters(params: &BTreeMap<String, Vec<String>>) -> Option<HashMap<String, Vec<String>>> {
    if params.is_empty() {
        None
    } else {
        Some(params.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// SendCommand's `TimeoutSeconds` for a request timeout: clamped to 30 s ..= 30 days.
pub fn delivery_timeout(timeout_s: u32) -> i32 {
    let t = timeout_s.clamp(MIN_DELIVERY_TIMEOUT_S, MAX_DELIVERY_TIMEOUT_S);
    i32::try_from(t).unwrap_or(i32::MAX)
}

/// The status of an invocation, `StatusDetails` first (it separates the two timeouts and the
/// undeliverable case, which `Status` lumps into `TimedOut` / `Failed`).
pub fn command_status(
    status: Option<&CommandInvocationStatus>,
    details: Option<&str>,
) -> CommandStatus {
    let detail: String = details
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match detail.as_str() {
        "deliverytimedout" => return CommandStatus::DeliveryTimedOut,
        "executiontimedout" => return CommandStatus::TimedOut,
        "undeliverable" => return CommandStatus::Undeliverable,
        // The parent command exceeded MaxErrors and SSM cancelled the rest.
        "terminated" => return CommandStatus::Cancelled,
        _ => {}
    }
    match status {
        None | Some(CommandInvocationStatus::Pending) => CommandStatus::Pending,
        Some(CommandInvocationStatus::InProgress) => CommandStatus::InProgress,
        Some(CommandInvocationStatus::Delayed) => CommandStatus::Delayed,
        Some(CommandInvocationStatus::Success) => CommandStatus::Success,
        Some(CommandInvocationStatus::Failed) => CommandStatus::Failed,
        Some(CommandInvocationStatus::Cancelled) => CommandStatus::Cancelled,
        // Not finished yet: the final status is Cancelled, or Success if it completed first.
        Some(CommandInvocationStatus::Cancelling) => CommandStatus::InProgress,
        Some(CommandInvocationStatus::TimedOut) => CommandStatus::TimedOut,
        // A status this SDK does not know: do not poll it until the deadline.
        Some(_) => CommandStatus::Failed,
    }
}

/// The exit code of a finished invocation; `-1` means the script did not run.
pub fn exit_code(status: CommandStatus, response_code: i32) -> Option<i32> {
    (status.is_terminal() && response_code != -1).then_some(response_code)
}

/// GetCommandInvocation's answer as a [`CommandResult`].
pub fn command_result(command_id: &str, out: &GetCommandInvocationOutput) -> CommandResult {
    let status = command_status(out.status(), out.status_details());
    CommandResult {
        command_id: out
            .command_id()
            .filter(|id| !id.is_empty())
            .unwrap_or(command_id)
            .to_owned(),
        status,
        stdout: out.standard_output_content().unwrap_or_default().to_owned(),
        stderr: out.standard_error_content().unwrap_or_default().to_owned(),
        exit_code: exit_code(status, out.response_code()),
    }
}

/// The answer while GetCommandInvocation does not see the command yet.
pub fn not_yet_visible(command_id: &str) -> CommandResult {
    CommandResult {
        command_id: command_id.to_owned(),
        status: CommandStatus::InProgress,
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
    }
}

/// The agent's `PingStatus`; a missing or unknown one counts as a lost connection (the agent is
/// registered, but nothing says it is reachable).
pub fn agent_ping(ping: Option<&PingStatus>) -> AgentPing {
    match ping {
        Some(PingStatus::Online) => AgentPing::Online,
        Some(PingStatus::Inactive) => AgentPing::Inactive,
        // ConnectionLost, no status, or one this SDK does not know.
        _ => AgentPing::ConnectionLost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: CommandInvocationStatus, details: &str) -> CommandStatus {
        command_status(Some(&s), Some(details))
    }

    #[test]
    fn status_details_separate_the_timeouts_and_undeliverable() {
        use CommandInvocationStatus as S;
        assert_eq!(
            status(S::TimedOut, "DeliveryTimedOut"),
            CommandStatus::DeliveryTimedOut
        );
        assert_eq!(
            status(S::TimedOut, "Delivery Timed Out"),
            CommandStatus::DeliveryTimedOut
        );
        assert_eq!(
            status(S::TimedOut, "ExecutionTimedOut"),
            CommandStatus::TimedOut
        );
        assert_eq!(
            status(S::Failed, "ExecutionTimedOut"),
            CommandStatus::TimedOut
        );
        assert_eq!(status(S::TimedOut, ""), CommandStatus::TimedOut);
        assert_eq!(
            status(S::Failed, "Undeliverable"),
            CommandStatus::Undeliverable
        );
        assert_eq!(status(S::Failed, "InvalidPlatform"), CommandStatus::Failed);
        assert_eq!(status(S::Failed, "AccessDenied"), CommandStatus::Failed);
        assert_eq!(status(S::Cancelled, "Terminated"), CommandStatus::Cancelled);
    }

    #[test]
    fn plain_statuses_map_one_to_one() {
        use CommandInvocationStatus as S;
        assert_eq!(status(S::Pending, "Pending"), CommandStatus::Pending);
        assert_eq!(
            status(S::InProgress, "InProgress"),
            CommandStatus::InProgress
        );
        assert_eq!(status(S::Delayed, "Delayed"), CommandStatus::Delayed);
        assert_eq!(status(S::Success, "Success"), CommandStatus::Success);
        assert_eq!(status(S::Failed, "Failed"), CommandStatus::Failed);
        assert_eq!(status(S::Cancelled, "Cancelled"), CommandStatus::Cancelled);
        assert_eq!(
            status(S::Cancelling, "Cancelling"),
            CommandStatus::InProgress
        );
        assert_eq!(command_status(None, None), CommandStatus::Pending);
        assert_eq!(
            status(S::from("SomethingNew"), "SomethingNew"),
            CommandStatus::Failed
        );
    }

    #[test]
    fn minus_one_and_unfinished_invocations_have_no_exit_code() {
        assert_eq!(exit_code(CommandStatus::Success, 0), Some(0));
        assert_eq!(exit_code(CommandStatus::Failed, 3), Some(3));
        assert_eq!(exit_code(CommandStatus::Undeliverable, -1), None);
        assert_eq!(exit_code(CommandStatus::InProgress, 0), None);
    }

    #[test]
    fn an_invocation_maps_to_a_command_result() {
        let out = GetCommandInvocationOutput::builder()
            .command_id("cmd-1")
            .status(CommandInvocationStatus::Failed)
            .status_details("Failed")
            .standard_output_content("out")
            .standard_error_content("err")
            .response_code(2)
            .build();
        let r = command_result("cmd-0", &out);
        assert_eq!(r.command_id, "cmd-1");
        assert_eq!(r.status, CommandStatus::Failed);
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out", "err"));
        assert_eq!(r.exit_code, Some(2));
        let empty = GetCommandInvocationOutput::builder().build();
        let r = command_result("cmd-0", &empty);
        assert_eq!(r.command_id, "cmd-0");
        assert_eq!(r.status, CommandStatus::Pending);
        assert_eq!(r.exit_code, None);
    }

    #[test]
    fn delivery_timeouts_are_clamped_to_what_ssm_accepts() {
        assert_eq!(delivery_timeout(0), 30);
        assert_eq!(delivery_timeout(600), 600);
        assert_eq!(delivery_timeout(u32::MAX), 2_592_000);
    }

    #[test]
    fn parameters_are_passed_as_given_and_omitted_when_empty() {
        assert_eq!(parameters(&BTreeMap::new()), None);
        let mut p = BTreeMap::new();
        p.insert("Services".to_owned(), vec!["app.service".to_owned()]);
        let m = parameters(&p).expect("some");
        assert_eq!(m.get("Services"), Some(&vec!["app.service".to_owned()]));
    }

    #[test]
    fn ping_statuses_map_to_agent_pings() {
        assert_eq!(agent_ping(Some(&PingStatus::Online)), AgentPing::Online);
        assert_eq!(agent_ping(Some(&PingStatus::Inactive)), AgentPing::Inactive);
        assert_eq!(
            agent_ping(Some(&PingStatus::ConnectionLost)),
            AgentPing::ConnectionLost
        );
        assert_eq!(agent_ping(None), AgentPing::ConnectionLost);
    }

    #[test]
    fn an_invisible_invocation_is_in_progress() {
        let r = not_yet_visible("cmd-1");
        assert_eq!(r.status, CommandStatus::InProgress);
        assert!(!r.status.is_terminal());
    }
}
