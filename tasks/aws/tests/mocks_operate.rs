//! The activity worker and the operator's operations (approvals, replays) against a mocked Step
//! Functions client (aws-smithy-mocks): the requests they make and how they read the answers,
//! errors included.
//!
//! Every client is mocked in `RuleMode::Sequential` with `must_match` on: a request that is not
//! the next expected one (or any request to a client given no rules) panics, so each test also
//! checks that nothing else was called.
//!
//! `operate` tells token and execution errors apart by their error code, which the SDK reads
//! from the response; a modeled error built here carries it in its `ErrorMetadata` ([`meta`]),
//! as a deserialized one does.

// `mock!` expands to `.build().unwrap()` on the request builder.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use autoheal_aws::operate::{self, OperateError, ReplayMode, Replayed};
use autoheal_aws::{Aws, Settings};
use autoheal_core::error::PortError;
use autoheal_handlers::TaskError;
use autoheal_handlers::worker::{self, WorkerOptions, WorkerStats};
use aws_sdk_sfn::error::ErrorMetadata;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::get_activity_task::{GetActivityTaskError, GetActivityTaskOutput};
use aws_sdk_sfn::operation::redrive_execution::{RedriveExecutionError, RedriveExecutionOutput};
use aws_sdk_sfn::operation::send_task_failure::{SendTaskFailureError, SendTaskFailureOutput};
use aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatOutput;
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::error::{
    ExecutionAlreadyExists, ExecutionDoesNotExist, ExecutionNotRedrivable, InvalidToken,
    TaskDoesNotExist, TaskTimedOut,
};
use aws_sdk_sfn::types::{ExecutionRedriveStatus, ExecutionStatus};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::{Value, json};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:autoheal";
const STATE_MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:autoheal";
const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:autoheal-heal";
const NAME: &str = "web-i-0123456789abcdef0-1732492800";
const EXECUTION: &str =
    "arn:aws:states:us-east-1:123456789012:execution:autoheal:web-i-0123456789abcdef0-1732492800";
const REPLAY_1: &str = "web-i-0123456789abcdef0-1732492800-replay-1";
const REPLAY_1_ARN: &str = "arn:aws:states:us-east-1:123456789012:execution:autoheal:web-i-0123456789abcdef0-1732492800-replay-1";
const REPLAY_2: &str = "web-i-0123456789abcdef0-1732492800-replay-2";
const REPLAY_2_ARN: &str = "arn:aws:states:us-east-1:123456789012:execution:autoheal:web-i-0123456789abcdef0-1732492800-replay-2";
/// The stored input of the execution, replayed as is.
const INPUT: &str = r#"{"scope":{"target_group_arn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"},"trigger":{"source":"alarm"}}"#;
const STARTED_S: i64 = 1_732_492_800;
const STOPPED_S: i64 = 1_732_493_400;
/// An hour after the execution stopped: well inside the 14-day redrive window.
const NOW_S: i64 = STOPPED_S + 3600;

const NONE: &[&Rule] = &[];

fn settings() -> Settings {
    Settings {
        incidents_table: "incidents".to_owned(),
        incidents_index: String::new(),
        leases_table: "leases".to_owned(),
        policy_table: "policies".to_owned(),
        topic_arn: TOPIC.to_owned(),
        state_machine_arn: STATE_MACHINE.to_owned(),
        record_ttl_days: 90,
    }
}

/// An `Aws` whose Step Functions client answers with these rules, in order; the other clients
/// have none.
fn aws(sfn: &[&Rule]) -> Aws {
    Aws {
        elb: mock_client!(aws_sdk_elasticloadbalancingv2, RuleMode::Sequential, NONE),
        ec2: mock_client!(aws_sdk_ec2, RuleMode::Sequential, NONE),
        asg: mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, NONE),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::Sequential, NONE),
        ddb: mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, NONE),
        sns: mock_client!(aws_sdk_sns, RuleMode::Sequential, NONE),
        sfn: mock_client!(aws_sdk_sfn, RuleMode::Sequential, sfn),
        settings: settings(),
        webhooks: None,
    }
}

/// The error metadata the SDK reads from an error response: `code()` and `message()` of the
/// `SdkError` come from it (a modeled error built without it has no code).
fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

/// Whether `text` is JSON equal to `expected`.
fn json_eq(text: Option<&str>, expected: &Value) -> bool {
    text.and_then(|t| serde_json::from_str::<Value>(t).ok())
        .as_ref()
        == Some(expected)
}

// ---- The activity worker -----------------------------------------------------------------------

fn options(max_tasks: u64) -> WorkerOptions {
    WorkerOptions {
        worker_name: "w1".to_owned(),
        heartbeat_every: Duration::from_secs(20),
        poll_backoff: Duration::from_secs(1),
        max_tasks: Some(max_tasks),
    }
}

/// A GetActivityTask of worker `w1` on the activity, answered with a task.
fn poll(token: &'static str, input: &'static str) -> Rule {
    mock!(aws_sdk_sfn::Client::get_activity_task)
        .match_requests(|r| r.activity_arn() == Some(ACTIVITY) && r.worker_name() == Some("w1"))
        .then_output(move || {
            GetActivityTaskOutput::builder()
                .task_token(token)
                .input(input)
                .build()
        })
}

fn heartbeat(token: &'static str) -> Rule {
    mock!(aws_sdk_sfn::Client::send_task_heartbeat)
        .match_requests(move |r| r.task_token() == Some(token))
        .then_output(|| SendTaskHeartbeatOutput::builder().build())
}

/// A SendTaskFailure of exactly this error and cause.
fn failure(token: &'static str, error: &'static str, cause: &'static str) -> Rule {
    mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(move |r| {
            r.task_token() == Some(token) && r.error() == Some(error) && r.cause() == Some(cause)
        })
        .then_output(|| SendTaskFailureOutput::builder().build())
}

#[tokio::test(start_paused = true)]
async fn a_worker_polls_heartbeats_and_answers_success_with_the_output() {
    let get = poll("tok-1", r#"{"x":1}"#);
    let beat1 = heartbeat("tok-1");
    let beat2 = heartbeat("tok-1");
    let success = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| {
            r.task_token() == Some("tok-1") && json_eq(r.output(), &json!({"x": 1, "doubled": 2}))
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let aws = aws(&[&get, &beat1, &beat2, &success]);
    let handler = |input: Value| async move {
        // Longer than two heartbeat intervals (20 s), shorter than three.
        tokio::time::sleep(Duration::from_secs(50)).await;
        let x = input.get("x").and_then(Value::as_i64).unwrap_or_default();
        Ok::<Value, TaskError>(json!({"x": x, "doubled": x * 2}))
    };
    let stats = worker::run(&aws, ACTIVITY, handler, &options(1), std::future::pending()).await;
    assert_eq!(
        stats,
        WorkerStats {
            polls: 1,
            tasks: 1,
            succeeded: 1,
            heartbeats: 2,
            ..WorkerStats::default()
        }
    );
    assert_eq!(
        (
            get.num_calls(),
            beat1.num_calls(),
            beat2.num_calls(),
            success.num_calls()
        ),
        (1, 1, 1, 1)
    );
}

#[tokio::test]
async fn a_failing_handler_sends_its_stable_error_name() {
    let heal = poll("tok-heal", r#"{"fail":"heal"}"#);
    let heal_failed = failure("tok-heal", "HealFailed", "the service did not come back");
    let throttle = poll("tok-throttled", r#"{"fail":"throttled"}"#);
    let throttled = failure(
        "tok-throttled",
        "Throttled",
        "ec2 throttled the request: Rate exceeded",
    );
    let aws = aws(&[&heal, &heal_failed, &throttle, &throttled]);
    let handler = |input: Value| async move {
        let kind = input
            .get("fail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "heal" => Err(TaskError::heal_failed("the service did not come back")),
            "throttled" => Err(TaskError::from(PortError::Throttled {
                service: "ec2",
                message: "Rate exceeded".to_owned(),
                source: None,
            })),
            _ => Ok(input),
        }
    };
    let stats = worker::run(&aws, ACTIVITY, handler, &options(2), std::future::pending()).await;
    assert_eq!(
        stats,
        WorkerStats {
            polls: 2,
            tasks: 2,
            failed: 2,
            ..WorkerStats::default()
        }
    );
    assert_eq!((heal_failed.num_calls(), throttled.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_empty_poll_is_no_task() {
    let empty = mock!(aws_sdk_sfn::Client::get_activity_task)
        .match_requests(|r| r.activity_arn() == Some(ACTIVITY))
        .then_output(|| GetActivityTaskOutput::builder().build());
    let get = poll("tok-2", r#"{"x":2}"#);
    let success = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| {
            r.task_token() == Some("tok-2") && json_eq(r.output(), &json!({"x": 2}))
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let aws = aws(&[&empty, &get, &success]);
    let handler = |input: Value| async move { Ok::<Value, TaskError>(input) };
    let stats = worker::run(&aws, ACTIVITY, handler, &options(1), std::future::pending()).await;
    assert_eq!(
        stats,
        WorkerStats {
            polls: 2,
            tasks: 1,
            succeeded: 1,
            ..WorkerStats::default()
        }
    );
    assert_eq!(
        (empty.num_calls(), get.num_calls(), success.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_poll_backs_off_and_a_refused_answer_is_counted() {
    // Not a throttling code: the SDK does not retry it, the worker backs off and polls again.
    let denied = mock!(aws_sdk_sfn::Client::get_activity_task).then_error(|| {
        GetActivityTaskError::generic(meta(
            "AccessDeniedException",
            "not authorized to perform states:GetActivityTask",
        ))
    });
    let get = poll("tok-3", r#"{"x":3}"#);
    let late = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| r.task_token() == Some("tok-3"))
        .then_error(|| {
            SendTaskSuccessError::TaskTimedOut(
                TaskTimedOut::builder()
                    .message("Task Timed Out")
                    .meta(meta("TaskTimedOut", "Task Timed Out"))
                    .build(),
            )
        });
    let aws = aws(&[&denied, &get, &late]);
    let handler = |input: Value| async move { Ok::<Value, TaskError>(input) };
    let stats = worker::run(&aws, ACTIVITY, handler, &options(1), std::future::pending()).await;
    assert_eq!(
        stats,
        WorkerStats {
            polls: 2,
            tasks: 1,
            succeeded: 1,
            poll_errors: 1,
            answer_errors: 1,
            ..WorkerStats::default()
        }
    );
    assert_eq!((get.num_calls(), late.num_calls()), (1, 1));
}

// ---- Approvals ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_approval_sends_success_with_the_output_and_a_denial_the_failure() {
    let approve = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| {
            r.task_token() == Some("tok-approve")
                && json_eq(r.output(), &json!({"approved": true, "by": "alice"}))
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let deny = failure(
        "tok-deny",
        "ApprovalDenied",
        "denied by alice: maintenance window",
    );
    let aws = aws(&[&approve, &deny]);
    operate::send_success(
        &aws,
        "tok-approve",
        &json!({"approved": true, "by": "alice"}),
    )
    .await
    .expect("approved");
    operate::send_failure(
        &aws,
        "tok-deny",
        "ApprovalDenied",
        "denied by alice: maintenance window",
    )
    .await
    .expect("denied");
    assert_eq!((approve.num_calls(), deny.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_foreign_token_and_an_expired_one_are_input_errors() {
    let invalid = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| r.task_token() == Some("not-a-token"))
        .then_error(|| {
            SendTaskSuccessError::InvalidToken(
                InvalidToken::builder()
                    .message("Invalid Token: 'not-a-token'")
                    .meta(meta("InvalidToken", "Invalid Token: 'not-a-token'"))
                    .build(),
            )
        });
    let missing = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(|r| r.task_token() == Some("other-account"))
        .then_error(|| {
            SendTaskFailureError::TaskDoesNotExist(
                TaskDoesNotExist::builder()
                    .message("Task does not exist")
                    .meta(meta("TaskDoesNotExist", "Task does not exist"))
                    .build(),
            )
        });
    let timed_out = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| r.task_token() == Some("tok-late"))
        .then_error(|| {
            SendTaskSuccessError::TaskTimedOut(
                TaskTimedOut::builder()
                    .message("Task Timed Out")
                    .meta(meta("TaskTimedOut", "Task Timed Out"))
                    .build(),
            )
        });
    let timed_out_denial = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(|r| r.task_token() == Some("tok-late"))
        .then_error(|| {
            SendTaskFailureError::TaskTimedOut(
                TaskTimedOut::builder()
                    .meta(meta("TaskTimedOut", "Task Timed Out"))
                    .build(),
            )
        });
    let aws = aws(&[&invalid, &missing, &timed_out, &timed_out_denial]);
    let approved = json!({"approved": true, "by": "alice"});

    let e = operate::send_success(&aws, "not-a-token", &approved)
        .await
        .expect_err("foreign");
    assert!(
        matches!(&e, OperateError::ForeignToken { code } if code == "InvalidToken"),
        "{e:?}"
    );
    assert!(e.is_input());
    assert!(e.to_string().contains("copy the whole token"), "{e}");

    let e = operate::send_failure(&aws, "other-account", "ApprovalDenied", "no")
        .await
        .expect_err("foreign");
    assert!(
        matches!(&e, OperateError::ForeignToken { code } if code == "TaskDoesNotExist"),
        "{e:?}"
    );
    assert!(e.is_input());

    let e = operate::send_success(&aws, "tok-late", &approved)
        .await
        .expect_err("expired");
    assert!(
        matches!(&e, OperateError::TokenExpired { code } if code == "TaskTimedOut"),
        "{e:?}"
    );
    assert!(e.is_input());
    assert!(e.to_string().contains("no longer waiting"), "{e}");

    let e = operate::send_failure(&aws, "tok-late", "ApprovalDenied", "no")
        .await
        .expect_err("expired");
    assert!(matches!(&e, OperateError::TokenExpired { .. }), "{e:?}");
    assert!(e.is_input());
}

// Paused: the SDK's own retries of a throttled or 5xx answer sleep between attempts.
#[tokio::test(start_paused = true)]
async fn a_throttled_or_failing_service_is_a_port_error() {
    let throttled = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| r.task_token() == Some("tok-1"))
        .then_error(|| SendTaskSuccessError::generic(meta("ThrottlingException", "Rate exceeded")));
    // A bare 500, as often as the SDK retries it.
    let broken = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(|r| r.task_token() == Some("tok-1"))
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let aws = aws(&[&throttled, &broken]);

    let e = operate::send_success(&aws, "tok-1", &json!({"approved": true}))
        .await
        .expect_err("throttled");
    assert!(
        matches!(&e, OperateError::Port(PortError::Throttled { .. })),
        "{e:?}"
    );
    assert!(!e.is_input());

    let e = operate::send_failure(&aws, "tok-1", "ApprovalDenied", "no")
        .await
        .expect_err("500");
    assert!(
        matches!(&e, OperateError::Port(PortError::Service { .. })),
        "{e:?}"
    );
    assert!(!e.is_input());
    assert!(throttled.num_calls() >= 1 && broken.num_calls() >= 1);
}

// ---- Replay ------------------------------------------------------------------------------------

/// DescribeExecution of the execution: `status`, stopped at `stopped_s`, with this redrive
/// status.
fn described(
    status: ExecutionStatus,
    stopped_s: i64,
    redrive: Option<ExecutionRedriveStatus>,
) -> Rule {
    mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION))
        .then_output(move || {
            DescribeExecutionOutput::builder()
                .execution_arn(EXECUTION)
                .state_machine_arn(STATE_MACHINE)
                .name(NAME)
                .status(status.clone())
                .start_date(DateTime::from_secs(STARTED_S))
                .stop_date(DateTime::from_secs(stopped_s))
                .input(INPUT)
                .set_redrive_status(redrive.clone())
                .build()
                .expect("complete")
        })
}

fn redriven() -> Rule {
    mock!(aws_sdk_sfn::Client::redrive_execution)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION))
        .then_output(|| {
            RedriveExecutionOutput::builder()
                .redrive_date(DateTime::from_secs(NOW_S))
                .build()
                .expect("complete")
        })
}

/// A StartExecution named `name` on the same state machine with the stored input, started.
fn started(name: &'static str, arn: &'static str) -> Rule {
    mock!(aws_sdk_sfn::Client::start_execution)
        .match_requests(move |r| {
            r.state_machine_arn() == Some(STATE_MACHINE)
                && r.name() == Some(name)
                && r.input() == Some(INPUT)
        })
        .then_output(move || {
            StartExecutionOutput::builder()
                .execution_arn(arn)
                .start_date(DateTime::from_secs(NOW_S))
                .build()
                .expect("complete")
        })
}

#[tokio::test]
async fn a_recent_failed_execution_is_redriven() {
    for mode in [ReplayMode::Auto, ReplayMode::Redrive] {
        let describe = described(
            ExecutionStatus::Failed,
            STOPPED_S,
            Some(ExecutionRedriveStatus::Redrivable),
        );
        let redrive = redriven();
        let aws = aws(&[&describe, &redrive]);
        let done = operate::replay(&aws, EXECUTION, mode, NOW_S)
            .await
            .expect("redriven");
        assert_eq!(
            done,
            Replayed::Redriven {
                execution_arn: EXECUTION.to_owned()
            },
            "{mode:?}"
        );
        assert_eq!(
            (describe.num_calls(), redrive.num_calls()),
            (1, 1),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn auto_restarts_what_cannot_be_redriven_with_the_same_input() {
    // Succeeded, and failed more than 14 days ago: neither can be redriven.
    for (status, stopped_s) in [
        (ExecutionStatus::Succeeded, STOPPED_S),
        (ExecutionStatus::Failed, NOW_S - 15 * 24 * 3600),
    ] {
        let describe = described(
            status.clone(),
            stopped_s,
            Some(ExecutionRedriveStatus::NotRedrivable),
        );
        let start = started(REPLAY_1, REPLAY_1_ARN);
        let aws = aws(&[&describe, &start]);
        let done = operate::replay(&aws, EXECUTION, ReplayMode::Auto, NOW_S)
            .await
            .expect("restarted");
        assert_eq!(
            done,
            Replayed::Restarted {
                execution_arn: REPLAY_1_ARN.to_owned(),
                name: REPLAY_1.to_owned(),
            },
            "{status:?}"
        );
        assert_eq!(
            (describe.num_calls(), start.num_calls()),
            (1, 1),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_restart_takes_the_first_free_replay_name() {
    let describe = described(
        ExecutionStatus::Failed,
        STOPPED_S,
        Some(ExecutionRedriveStatus::Redrivable),
    );
    let taken = mock!(aws_sdk_sfn::Client::start_execution)
        .match_requests(|r| r.name() == Some(REPLAY_1) && r.input() == Some(INPUT))
        .then_error(|| {
            StartExecutionError::ExecutionAlreadyExists(
                ExecutionAlreadyExists::builder()
                    .message("Execution Already Exists")
                    .meta(meta("ExecutionAlreadyExists", "Execution Already Exists"))
                    .build(),
            )
        });
    let start = started(REPLAY_2, REPLAY_2_ARN);
    // Restart, although the execution could be redriven: no RedriveExecution.
    let aws = aws(&[&describe, &taken, &start]);
    let done = operate::replay(&aws, EXECUTION, ReplayMode::Restart, NOW_S)
        .await
        .expect("restarted");
    assert_eq!(
        done,
        Replayed::Restarted {
            execution_arn: REPLAY_2_ARN.to_owned(),
            name: REPLAY_2.to_owned(),
        }
    );
    assert_eq!(
        (describe.num_calls(), taken.num_calls(), start.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn redriving_a_succeeded_execution_is_refused_without_asking() {
    // No RedriveExecution rule: a redrive would panic.
    let describe = described(ExecutionStatus::Succeeded, STOPPED_S, None);
    let aws = aws(&[&describe]);
    let e = operate::replay(&aws, EXECUTION, ReplayMode::Redrive, NOW_S)
        .await
        .expect_err("not redrivable");
    match &e {
        OperateError::NotRedrivable { arn, why } => {
            assert_eq!(arn, EXECUTION);
            assert!(why.contains("SUCCEEDED"), "{why}");
        }
        other => panic!("expected NotRedrivable, got {other:?}"),
    }
    assert!(e.is_input());
    assert!(e.to_string().contains("--mode restart"), "{e}");
    assert_eq!(describe.num_calls(), 1);
}

#[tokio::test]
async fn a_redrive_step_functions_refuses_is_not_redrivable_with_its_reason() {
    let describe = described(
        ExecutionStatus::Failed,
        STOPPED_S,
        Some(ExecutionRedriveStatus::Redrivable),
    );
    let refused = mock!(aws_sdk_sfn::Client::redrive_execution)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION))
        .then_error(|| {
            RedriveExecutionError::ExecutionNotRedrivable(
                ExecutionNotRedrivable::builder()
                    .message("Execution has been redriven the maximum number of times")
                    .meta(meta(
                        "ExecutionNotRedrivable",
                        "Execution has been redriven the maximum number of times",
                    ))
                    .build(),
            )
        });
    let aws = aws(&[&describe, &refused]);
    let e = operate::replay(&aws, EXECUTION, ReplayMode::Redrive, NOW_S)
        .await
        .expect_err("refused");
    match &e {
        OperateError::NotRedrivable { arn, why } => {
            assert_eq!(arn, EXECUTION);
            assert!(why.contains("maximum number of times"), "{why}");
        }
        other => panic!("expected NotRedrivable, got {other:?}"),
    }
    assert_eq!(refused.num_calls(), 1);
}

#[tokio::test]
async fn replaying_an_unknown_execution_is_no_execution() {
    let missing = mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION))
        .then_error(|| {
            DescribeExecutionError::ExecutionDoesNotExist(
                ExecutionDoesNotExist::builder()
                    .message("Execution Does Not Exist")
                    .meta(meta("ExecutionDoesNotExist", "Execution Does Not Exist"))
                    .build(),
            )
        });
    let aws = aws(&[&missing]);
    let e = operate::replay(&aws, EXECUTION, ReplayMode::Auto, NOW_S)
        .await
        .expect_err("no execution");
    assert!(
        matches!(&e, OperateError::NoExecution { arn } if arn == EXECUTION),
        "{e:?}"
    );
    assert!(e.is_input());
    assert_eq!(missing.num_calls(), 1);
}
