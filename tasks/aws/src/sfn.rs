//! Step Functions: [`ExecutionStarter`] over StartExecution, DescribeExecution and
//! RedriveExecution.
//!
//! The execution name is deterministic, the target group and the minute
//! (`autoheal_handlers::trigger::execution_name`), so the alarm, the schedule and a manual start
//! for one group in one minute make one execution. Step
//! Functions itself answers a second StartExecution with the same name and the same input with
//! the running execution (reported here as `Started`, which it is); with another input, or once
//! the execution has ended (names of standard workflows stay taken for 90 days), it answers
//! `ExecutionAlreadyExists`. That is the idempotent case, not an error: the adapter reads the
//! existing execution with DescribeExecution (its ARN is
//! `arn:<partition>:states:<region>:<account>:execution:<state machine name>:<name>`, see
//! [`execution_arn`]) and returns [`StartOutcome::AlreadyRunning`]. If the role may not
//! DescribeExecution (`AccessDeniedException`), the ARN built from the name is returned: the
//! `ExecutionAlreadyExists` answer already says that execution exists.

use autoheal_core::IncidentId;
use autoheal_core::error::PortError;
use autoheal_core::ports::{ExecutionStarter, PortResult, StartOutcome};
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;

use crate::Aws;
use crate::Settings;
use crate::error::{self, Call};

const SERVICE: &str = "states";

/// Error codes meaning the role may not call the operation.
const ACCESS_DENIED: &[&str] = &["AccessDeniedException", "AccessDenied"];

impl ExecutionStarter for Aws {
    async fn start_execution(
        &self,
        name: &IncidentId,
        input: &serde_json::Value,
    ) -> PortResult<StartOutcome> {
        let state_machine = Settings::require(
            &self.settings.state_machine_arn,
            "AUTOHEAL_STATE_MACHINE_ARN",
        )?;
        let call = Call::new(SERVICE, "StartExecution");
        let input = serde_json::to_string(input).map_err(|e| {
            PortError::InvalidRequest(format!("StartExecution: cannot encode the input: {e}"))
        })?;
        let answer = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine)
            .name(name.as_str())
            .input(input)
            .send()
            .await;
        match answer {
            Ok(out) if !out.execution_arn().is_empty() => Ok(StartOutcome::Started {
                execution_arn: out.execution_arn().to_owned(),
            }),
            Ok(_) => Err(error::missing(call, "executionArn")),
            Err(e)
                if e.as_service_error()
                    .is_some_and(StartExecutionError::is_execution_already_exists) =>
            {
                existing(self, state_machine, name).await
            }
            Err(e) => Err(error::map(call, e)),
        }
    }

    async fn redrive(&self, execution_arn: &str) -> PortResult<()> {
        self.sfn
            .redrive_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| error::map(Call::new(SERVICE, "RedriveExecution"), e))?;
        Ok(())
    }
}

/// The execution that already has this name.
async fn existing(aws: &Aws, state_machine: &str, name: &IncidentId) -> PortResult<StartOutcome> {
    let built = execution_arn(state_machine, name.as_str())?;
    let call = Call::new(SERVICE, "DescribeExecution");
    match aws
        .sfn
        .describe_execution()
        .execution_arn(&built)
        .send()
        .await
    {
        Ok(out) if !out.execution_arn().is_empty() => Ok(StartOutcome::AlreadyRunning {
            execution_arn: out.execution_arn().to_owned(),
        }),
        Ok(_) => Ok(StartOutcome::AlreadyRunning {
            execution_arn: built,
        }),
        Err(e) if e.code().is_some_and(|c| ACCESS_DENIED.contains(&c)) => {
            Ok(StartOutcome::AlreadyRunning {
                execution_arn: built,
            })
        }
        Err(e) => Err(error::map(call, e)),
    }
}

/// The ARN of the execution `name` of a state machine: `:stateMachine:<machine>[:<version or
/// alias>]` becomes `:execution:<machine>:<name>`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> PortResult<String> {
    let invalid = || {
        PortError::InvalidRequest(format!(
            "AUTOHEAL_STATE_MACHINE_ARN {state_machine_arn:?} is not a state machine ARN \
             (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME): set it to the stack's \
             StateMachineArn output"
        ))
    };
    let (prefix, rest) = state_machine_arn
        .split_once(":stateMachine:")
        .ok_or_else(invalid)?;
    let machine = rest.split(':').next().unwrap_or_default();
    if prefix.is_empty() || machine.is_empty() {
        return Err(invalid());
    }
    Ok(format!("{prefix}:execution:{machine}:{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_are_built_from_the_state_machine_arn() {
        let sm = "arn:aws:states:us-east-1:123456789012:stateMachine:autoheal";
        assert_eq!(
            execution_arn(sm, "web-i-0123abcd-1700000000").expect("valid"),
            "arn:aws:states:us-east-1:123456789012:execution:autoheal:web-i-0123abcd-1700000000"
        );
        let versioned = "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:autoheal:7";
        assert_eq!(
            execution_arn(versioned, "x").expect("valid"),
            "arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:autoheal:x"
        );
    }

    #[test]
    fn other_arns_are_rejected_with_the_fix() {
        for bad in [
            "",
            "arn:aws:states:us-east-1:123456789012:activity:x",
            "arn:aws:states:us-east-1:123456789012:stateMachine:",
        ] {
            let e = execution_arn(bad, "x").expect_err(bad);
            assert!(e.to_string().contains("StateMachineArn"), "{e}");
        }
    }
}
