//! What an operator does to the stack from the `autoheal` command line, over Step Functions:
//! answer approvals (SendTaskSuccess / SendTaskFailure), replay executions (RedriveExecution,
//! or a new execution with the stored input), and run activity workers
//! ([`autoheal_handlers::worker::ActivityService`]).

use autoheal_core::error::PortError;
use autoheal_handlers::worker::{ActivityService, ActivityTask};
use aws_sdk_sfn::error::ProvideErrorMetadata;
use serde::Serialize;
use serde_json::Value;

use crate::Aws;
use crate::error::{self, Call};

const SERVICE: &str = "states";

/// Why an operation on a task token or an execution was refused, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// The token is not one Step Functions knows, or not of this account and region.
    #[error(
        "the task token is not valid here ({code}): copy the whole token from the approval notification, and run in the stack's account and region (AWS_REGION, AWS_PROFILE)"
    )]
    ForeignToken { code: String },
    /// The task is no longer waiting: it timed out (the policy's default, hold, applied) or
    /// was answered already.
    #[error(
        "the approval request is no longer waiting ({code}): it timed out, and the policy's default (hold) applied, or someone answered it already; `autoheal incidents show` tells which"
    )]
    TokenExpired { code: String },
    /// The execution ARN names nothing.
    #[error(
        "no execution {arn}: check the ARN (the notification's console link ends with it) and the region"
    )]
    NoExecution { arn: String },
    /// A redrive Step Functions does not allow, with the reason.
    #[error(
        "cannot redrive {arn}: {why}; use --mode restart to start a new execution with its input"
    )]
    NotRedrivable { arn: String, why: String },
    /// Anything else from the service.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl OperateError {
    /// Input errors (exit code 2 on the command line) as against service failures.
    pub fn is_input(&self) -> bool {
        !matches!(self, Self::Port(_))
    }
}

/// Error codes of an unknown or malformed token.
const FOREIGN: &[&str] = &["InvalidToken", "TaskDoesNotExist"];
/// Error codes of a task that is no longer waiting.
const EXPIRED: &[&str] = &["TaskTimedOut"];

fn token_error<E>(
    op: &'static str,
    e: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> OperateError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match e.code() {
        Some(c) if FOREIGN.contains(&c) => OperateError::ForeignToken { code: c.to_owned() },
        Some(c) if EXPIRED.contains(&c) => OperateError::TokenExpired { code: c.to_owned() },
        _ => OperateError::Port(error::map(Call::new(SERVICE, op), e)),
    }
}

/// SendTaskSuccess with `output` (an approval: `{"approved": true, "by": …}`).
pub async fn send_success(aws: &Aws, token: &str, output: &Value) -> Result<(), OperateError> {
    aws.sfn
        .send_task_success()
        .task_token(token)
        .output(output.to_string())
        .send()
        .await
        .map_err(|e| token_error("SendTaskSuccess", e))?;
    Ok(())
}

/// SendTaskFailure with a stable error name (`ApprovalDenied`) and the cause.
pub async fn send_failure(
    aws: &Aws,
    token: &str,
    error: &str,
    cause: &str,
) -> Result<(), OperateError> {
    aws.sfn
        .send_task_failure()
        .task_token(token)
        .error(error)
        .cause(cause)
        .send()
        .await
        .map_err(|e| token_error("SendTaskFailure", e))?;
    Ok(())
}

/// An execution as replay needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionInfo {
    pub arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub status: String,
    pub input: Option<String>,
    /// Seconds since the epoch the execution stopped.
    pub stopped_at: Option<i64>,
    /// What Step Functions says about redriving it (`REDRIVABLE`, `NOT_REDRIVABLE`, …).
    pub redrive_status: Option<String>,
    pub redrive_status_reason: Option<String>,
}

/// DescribeExecution.
pub async fn describe(aws: &Aws, arn: &str) -> Result<ExecutionInfo, OperateError> {
    let out = aws
        .sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| match e.code() {
            Some("ExecutionDoesNotExist" | "InvalidArn") => OperateError::NoExecution {
                arn: arn.to_owned(),
            },
            _ => OperateError::Port(error::map(Call::new(SERVICE, "DescribeExecution"), e)),
        })?;
    Ok(ExecutionInfo {
        arn: out.execution_arn().to_owned(),
        name: out.name().unwrap_or_default().to_owned(),
        state_machine_arn: out.state_machine_arn().to_owned(),
        status: out.status().as_str().to_owned(),
        input: out.input().map(str::to_owned),
        stopped_at: out.stop_date().map(|d| d.secs()),
        redrive_status: out.redrive_status().map(|s| s.as_str().to_owned()),
        redrive_status_reason: out.redrive_status_reason().map(str::to_owned),
    })
}

/// How to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Redrive when Step Functions allows it, otherwise restart.
    Auto,
    /// RedriveExecution from the failed state, or an error saying why not.
    Redrive,
    /// A new execution `<name>-replay-<n>` with the stored input.
    Restart,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "replay", rename_all = "snake_case")]
pub enum Replayed {
    Redriven { execution_arn: String },
    Restarted { execution_arn: String, name: String },
}

/// Step Functions redrives failed, timed-out or aborted Standard executions that stopped less
/// than 14 days ago; its `redriveStatus` says so.
pub const REDRIVE_WINDOW_S: i64 = 14 * 24 * 3600;

/// Why `e` cannot be redriven, or `None` when it can.
pub fn redrive_refusal(e: &ExecutionInfo, now_s: i64) -> Option<String> {
    if !matches!(e.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
        return Some(format!(
            "it is {}; only failed, timed-out or aborted executions can be redriven",
            e.status
        ));
    }
    if let Some(stop) = e.stopped_at
        && now_s - stop > REDRIVE_WINDOW_S
    {
        return Some("it stopped more than 14 days ago".to_owned());
    }
    match e.redrive_status.as_deref() {
        Some("REDRIVABLE") | None => None,
        Some(other) => Some(format!(
            "Step Functions says {other}{}",
            e.redrive_status_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
    }
}

/// Replays `arn` (`autoheal replay --execution-arn`).
pub async fn replay(
    aws: &Aws,
    arn: &str,
    mode: ReplayMode,
    now_s: i64,
) -> Result<Replayed, OperateError> {
    let e = describe(aws, arn).await?;
    let refusal = redrive_refusal(&e, now_s);
    match (mode, refusal) {
        (ReplayMode::Redrive | ReplayMode::Auto, None) => {
            aws.sfn
                .redrive_execution()
                .execution_arn(arn)
                .send()
                .await
                .map_err(|err| match err.code() {
                    Some("ExecutionNotRedrivable") => OperateError::NotRedrivable {
                        arn: arn.to_owned(),
                        why: err.message().unwrap_or("Step Functions refused").to_owned(),
                    },
                    _ => {
                        OperateError::Port(error::map(Call::new(SERVICE, "RedriveExecution"), err))
                    }
                })?;
            Ok(Replayed::Redriven {
                execution_arn: arn.to_owned(),
            })
        }
        (ReplayMode::Redrive, Some(why)) => Err(OperateError::NotRedrivable {
            arn: arn.to_owned(),
            why,
        }),
        (ReplayMode::Restart | ReplayMode::Auto, _) => restart(aws, &e).await,
    }
}

/// Most replays of one execution.
pub const MAX_REPLAYS: u32 = 50;

/// A new execution `<name>-replay-<n>` (the first free `n`) with the stored input.
async fn restart(aws: &Aws, e: &ExecutionInfo) -> Result<Replayed, OperateError> {
    let input = e.input.clone().unwrap_or_else(|| "{}".to_owned());
    // Execution names are at most 80 characters.
    let base: String = e.name.chars().take(80 - "-replay-50".len()).collect();
    for n in 1..=MAX_REPLAYS {
        let name = format!("{base}-replay-{n}");
        match aws
            .sfn
            .start_execution()
            .state_machine_arn(&e.state_machine_arn)
            .name(&name)
            .input(&input)
            .send()
            .await
        {
            Ok(out) => {
                return Ok(Replayed::Restarted {
                    execution_arn: out.execution_arn().to_owned(),
                    name,
                });
            }
            Err(err) if err.code() == Some("ExecutionAlreadyExists") => continue,
            Err(err) => {
                return Err(OperateError::Port(error::map(
                    Call::new(SERVICE, "StartExecution"),
                    err,
                )));
            }
        }
    }
    Err(OperateError::NotRedrivable {
        arn: e.arn.clone(),
        why: format!("it was replayed {MAX_REPLAYS} times already"),
    })
}

impl ActivityService for Aws {
    async fn get_task(
        &self,
        activity_arn: &str,
        worker_name: &str,
    ) -> Result<Option<ActivityTask>, PortError> {
        let out = self
            .sfn
            .get_activity_task()
            .activity_arn(activity_arn)
            .worker_name(worker_name)
            .send()
            .await
            .map_err(|e| error::map(Call::new(SERVICE, "GetActivityTask"), e))?;
        // An empty token: the long poll ended with no task.
        let Some(token) = out.task_token().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let input = match out.input() {
            Some(s) => serde_json::from_str(s).map_err(|e| {
                PortError::InvalidRequest(format!("GetActivityTask: the input is not JSON: {e}"))
            })?,
            None => Value::Null,
        };
        Ok(Some(ActivityTask {
            token: token.to_owned(),
            input,
        }))
    }

    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        self.sfn
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map_err(|e| error::map(Call::new(SERVICE, "SendTaskHeartbeat"), e))?;
        Ok(())
    }

    async fn succeed(&self, token: &str, output: &Value) -> Result<(), PortError> {
        send_success(self, token, output)
            .await
            .map_err(|e| match e {
                OperateError::Port(p) => p,
                other => PortError::InvalidRequest(other.to_string()),
            })
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
        send_failure(self, token, error, cause)
            .await
            .map_err(|e| match e {
                OperateError::Port(p) => p,
                other => PortError::InvalidRequest(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: &str, stopped_at: Option<i64>, redrive: Option<&str>) -> ExecutionInfo {
        ExecutionInfo {
            arn: "arn:aws:states:us-east-1:1:execution:autoheal:web-x".into(),
            name: "web-x".into(),
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:autoheal".into(),
            status: status.into(),
            input: Some("{}".into()),
            stopped_at,
            redrive_status: redrive.map(str::to_owned),
            redrive_status_reason: None,
        }
    }

    #[test]
    fn only_recent_failed_executions_can_be_redriven() {
        let now = 2_000_000_000;
        assert_eq!(
            redrive_refusal(&info("FAILED", Some(now - 3600), Some("REDRIVABLE")), now),
            None
        );
        let running = redrive_refusal(&info("RUNNING", None, None), now).expect("refused");
        assert!(running.contains("only failed"), "{running}");
        let old = redrive_refusal(&info("FAILED", Some(now - REDRIVE_WINDOW_S - 1), None), now)
            .expect("refused");
        assert!(old.contains("14 days"), "{old}");
        let express = redrive_refusal(&info("FAILED", Some(now), Some("NOT_REDRIVABLE")), now)
            .expect("refused");
        assert!(express.contains("NOT_REDRIVABLE"), "{express}");
    }
}
