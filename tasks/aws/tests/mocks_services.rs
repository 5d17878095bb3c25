//! The SSM, DynamoDB, SNS and Step Functions adapters against mocked SDK clients
//! (aws-smithy-mocks): the requests they make and how they read the answers, errors included.
//!
//! Every client is mocked in `RuleMode::Sequential` with `must_match` on: a request that is not
//! the next expected one (or any request to a client given no rules) panics, so each test also
//! checks that nothing else was called.

// `mock!` expands to `.build().unwrap()` on the request builder.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use autoheal_aws::{Aws, Settings};
use autoheal_core::error::PortError;
use autoheal_core::incident::{Incident, IncidentRecord, IncidentStatus};
use autoheal_core::observe::{AgentPing, CommandResult, CommandStatus};
use autoheal_core::ports::{
    CommandRequest, CommandRunner, DocumentRef, ExecutionStarter, IncidentStore, Notification,
    Notifier, Severity, StartOutcome,
};
use autoheal_core::{IncidentId, InstanceId, TargetGroupArn, Timestamp};
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_sfn::error::ErrorMetadata;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::types::error::ExecutionAlreadyExists;
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput;
use aws_sdk_ssm::operation::get_command_invocation::{
    GetCommandInvocationError, GetCommandInvocationOutput,
};
use aws_sdk_ssm::operation::send_command::SendCommandOutput;
use aws_sdk_ssm::types::error::InvocationDoesNotExist;
use aws_sdk_ssm::types::{Command, CommandInvocationStatus, InstanceInformation, PingStatus};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

const INSTANCE: &str = "i-0123456789abcdef0";
const COMMAND: &str = "cmd-0123";
const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:autoheal";
const STATE_MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:autoheal";
const NAME: &str = "web-i-0123456789abcdef0-1732492800";
const EXECUTION: &str =
    "arn:aws:states:us-east-1:123456789012:execution:autoheal:web-i-0123456789abcdef0-1732492800";

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

/// An `Aws` whose SSM, DynamoDB, SNS and Step Functions clients answer with these rules, in
/// order; the other clients have none.
fn aws(ssm: &[&Rule], ddb: &[&Rule], sns: &[&Rule], sfn: &[&Rule]) -> Aws {
    Aws {
        elb: mock_client!(aws_sdk_elasticloadbalancingv2, RuleMode::Sequential, NONE),
        ec2: mock_client!(aws_sdk_ec2, RuleMode::Sequential, NONE),
        asg: mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, NONE),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::Sequential, ssm),
        ddb: mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, ddb),
        sns: mock_client!(aws_sdk_sns, RuleMode::Sequential, sns),
        sfn: mock_client!(aws_sdk_sfn, RuleMode::Sequential, sfn),
        settings: settings(),
        webhooks: None,
    }
}

fn instance() -> InstanceId {
    InstanceId::parse(INSTANCE).expect("valid")
}

fn incident_id(id: &str) -> IncidentId {
    IncidentId::parse(id).expect("valid")
}

// ---- SSM ---------------------------------------------------------------------------------------

/// One GetCommandInvocation answer for the command on the instance.
fn invocation(status: CommandInvocationStatus, details: &'static str, code: i32) -> Rule {
    mock!(aws_sdk_ssm::Client::get_command_invocation)
        .match_requests(|r| r.command_id() == Some(COMMAND) && r.instance_id() == Some(INSTANCE))
        .then_output(move || {
            GetCommandInvocationOutput::builder()
                .command_id(COMMAND)
                .instance_id(INSTANCE)
                .status(status.clone())
                .status_details(details)
                .standard_output_content(if code == 0 { "all good" } else { "" })
                .standard_error_content(if code > 0 { "unit failed" } else { "" })
                .response_code(code)
                .build()
        })
}

/// Polls the command twice against two answers.
async fn poll_twice(first: Rule, second: Rule) -> (CommandResult, CommandResult) {
    let aws = aws(&[&first, &second], NONE, NONE, NONE);
    let a = aws.result(COMMAND, &instance()).await.expect("first poll");
    let b = aws.result(COMMAND, &instance()).await.expect("second poll");
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    (a, b)
}

fn in_progress() -> Rule {
    invocation(CommandInvocationStatus::InProgress, "InProgress", -1)
}

#[tokio::test]
async fn a_command_is_sent_pinned_and_polled_from_in_progress_to_success() {
    let send = mock!(aws_sdk_ssm::Client::send_command)
        .match_requests(|r| {
            r.document_name() == Some("autoheal-Diagnostics")
                && r.document_version() == Some("3")
                && r.instance_ids().len() == 1
                && r.instance_ids().first().map(String::as_str) == Some(INSTANCE)
                && r.timeout_seconds() == Some(600)
                && r.parameters().and_then(|p| p.get("Services"))
                    == Some(&vec!["app.service nginx.service".to_owned()])
        })
        .then_output(|| {
            SendCommandOutput::builder()
                .command(Command::builder().command_id(COMMAND).build())
                .build()
        });
    let first = in_progress();
    let done = invocation(CommandInvocationStatus::Success, "Success", 0);
    let aws = aws(&[&send, &first, &done], NONE, NONE, NONE);
    let mut parameters = BTreeMap::new();
    parameters.insert(
        "Services".to_owned(),
        vec!["app.service nginx.service".to_owned()],
    );
    let request = CommandRequest {
        instance: instance(),
        document: DocumentRef {
            name: "autoheal-Diagnostics".to_owned(),
            version: "3".to_owned(),
        },
        parameters,
        timeout_s: 600,
    };
    let id = aws.send(&request).await.expect("sent");
    assert_eq!(id, COMMAND);
    let r = aws.result(&id, &instance()).await.expect("polled");
    assert_eq!(r.status, CommandStatus::InProgress);
    assert_eq!(r.exit_code, None);
    let r = aws.result(&id, &instance()).await.expect("polled");
    assert_eq!(r.status, CommandStatus::Success);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.stdout, "all good");
    assert_eq!(send.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_command_keeps_its_exit_code_and_stderr() {
    let (a, b) = poll_twice(
        in_progress(),
        invocation(CommandInvocationStatus::Failed, "Failed", 3),
    )
    .await;
    assert_eq!(a.status, CommandStatus::InProgress);
    assert_eq!(b.status, CommandStatus::Failed);
    assert_eq!(b.exit_code, Some(3));
    assert_eq!(b.stderr, "unit failed");
}

#[tokio::test]
async fn an_execution_timeout_is_timed_out_and_a_delivery_timeout_is_not() {
    let (_, b) = poll_twice(
        in_progress(),
        invocation(CommandInvocationStatus::TimedOut, "ExecutionTimedOut", -1),
    )
    .await;
    assert_eq!(b.status, CommandStatus::TimedOut);
    assert!(b.status.is_terminal());
    let (_, b) = poll_twice(
        invocation(CommandInvocationStatus::Pending, "Pending", -1),
        invocation(CommandInvocationStatus::TimedOut, "DeliveryTimedOut", -1),
    )
    .await;
    assert_eq!(b.status, CommandStatus::DeliveryTimedOut);
    assert_eq!(b.exit_code, None);
}

#[tokio::test]
async fn an_unreachable_instance_is_undeliverable() {
    let (a, b) = poll_twice(
        invocation(CommandInvocationStatus::Pending, "Pending", -1),
        invocation(CommandInvocationStatus::Failed, "Undeliverable", -1),
    )
    .await;
    assert_eq!(a.status, CommandStatus::Pending);
    assert_eq!(b.status, CommandStatus::Undeliverable);
    assert_eq!(b.exit_code, None);
}

#[tokio::test]
async fn an_invocation_not_visible_yet_is_in_progress_not_an_error() {
    let missing = mock!(aws_sdk_ssm::Client::get_command_invocation).then_error(|| {
        GetCommandInvocationError::InvocationDoesNotExist(InvocationDoesNotExist::builder().build())
    });
    let (a, b) = poll_twice(missing, in_progress()).await;
    assert_eq!(a.status, CommandStatus::InProgress);
    assert_eq!(a.command_id, COMMAND);
    assert_eq!(b.status, CommandStatus::InProgress);
}

#[tokio::test]
async fn the_agent_ping_comes_from_instance_information_or_is_not_registered() {
    let listed = mock!(aws_sdk_ssm::Client::describe_instance_information)
        .match_requests(|r| {
            r.filters()
                .iter()
                .any(|f| f.key() == "InstanceIds" && f.values().iter().any(|v| v == INSTANCE))
        })
        .then_output(|| {
            DescribeInstanceInformationOutput::builder()
                .instance_information_list(
                    InstanceInformation::builder()
                        .instance_id(INSTANCE)
                        .ping_status(PingStatus::ConnectionLost)
                        .build(),
                )
                .build()
        });
    let absent = mock!(aws_sdk_ssm::Client::describe_instance_information)
        .then_output(|| DescribeInstanceInformationOutput::builder().build());
    let aws = aws(&[&listed, &absent], NONE, NONE, NONE);
    assert_eq!(
        aws.agent_status(&instance()).await.expect("described"),
        AgentPing::ConnectionLost
    );
    assert_eq!(
        aws.agent_status(&instance()).await.expect("described"),
        AgentPing::NotRegistered
    );
}

// ---- DynamoDB leases ---------------------------------------------------------------------------

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// The conditional put of a lease of `holder` on the leases table.
fn lease_put(
    holder: &'static str,
) -> aws_smithy_mocks::RuleBuilder<
    aws_sdk_dynamodb::operation::put_item::PutItemInput,
    PutItemOutput,
    PutItemError,
> {
    mock!(aws_sdk_dynamodb::Client::put_item).match_requests(move |r| {
        r.table_name() == Some("leases")
            && r.condition_expression()
                .is_some_and(|c| c.contains("attribute_not_exists"))
            && r.item().and_then(|i| i.get("instance_id")) == Some(&s(INSTANCE))
            && r.item().and_then(|i| i.get("holder")) == Some(&s(holder))
    })
}

fn other_holders_lease() -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("instance_id".to_owned(), s(INSTANCE)),
        ("holder".to_owned(), s("web-other")),
        (
            "expires_at".to_owned(),
            AttributeValue::N("2000".to_owned()),
        ),
    ])
}

fn assert_held_by_other(err: PortError) {
    match err {
        PortError::LeaseHeld {
            instance,
            holder,
            expires_at,
        } => {
            assert_eq!(instance, INSTANCE);
            assert_eq!(holder, "web-other");
            assert_eq!(expires_at, Timestamp(2000).to_string());
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lease_held_by_another_incident_is_lease_held_with_its_holder() {
    let put = lease_put("web-mine").then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .build(),
        )
    });
    let get = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| {
            r.table_name() == Some("leases")
                && r.consistent_read() == Some(true)
                && r.key().and_then(|k| k.get("instance_id")) == Some(&s(INSTANCE))
        })
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(other_holders_lease()))
                .build()
        });
    let aws = aws(NONE, &[&put, &get], NONE, NONE);
    let err = aws
        .acquire_lease(&instance(), &incident_id("web-mine"), Timestamp(1000), 300)
        .await
        .expect_err("held by web-other");
    assert_held_by_other(err);
    assert_eq!((put.num_calls(), get.num_calls()), (1, 1));
}

#[tokio::test]
async fn the_item_returned_with_the_failed_condition_is_read_without_a_get() {
    let put = lease_put("web-mine").then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .set_item(Some(other_holders_lease()))
                .build(),
        )
    });
    // No GetItem rule: a GetItem would panic.
    let aws = aws(NONE, &[&put], NONE, NONE);
    let err = aws
        .acquire_lease(&instance(), &incident_id("web-mine"), Timestamp(1000), 300)
        .await
        .expect_err("held by web-other");
    assert_held_by_other(err);
}

#[tokio::test]
async fn a_free_lease_is_taken_and_a_lost_one_released_without_error() {
    let put = lease_put("web-mine").then_output(|| PutItemOutput::builder().build());
    let release = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| {
            r.table_name() == Some("leases") && r.condition_expression() == Some("#h = :holder")
        })
        .then_error(|| {
            DeleteItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let released = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_output(|| DeleteItemOutput::builder().build());
    let aws = aws(NONE, &[&put, &release, &released], NONE, NONE);
    let lease = aws
        .acquire_lease(&instance(), &incident_id("web-mine"), Timestamp(1000), 300)
        .await
        .expect("free");
    assert_eq!(lease.expires_at, Timestamp(1300));
    assert_eq!(lease.holder.as_str(), "web-mine");
    aws.release_lease(&instance(), &incident_id("web-mine"))
        .await
        .expect("someone else's lease is not an error");
    aws.release_lease(&instance(), &incident_id("web-mine"))
        .await
        .expect("released");
    assert_eq!(released.num_calls(), 1);
}

// ---- Step Functions ----------------------------------------------------------------------------

fn start_rule() -> aws_smithy_mocks::RuleBuilder<
    aws_sdk_sfn::operation::start_execution::StartExecutionInput,
    StartExecutionOutput,
    StartExecutionError,
> {
    mock!(aws_sdk_sfn::Client::start_execution).match_requests(|r| {
        r.state_machine_arn() == Some(STATE_MACHINE)
            && r.name() == Some(NAME)
            && r.input()
                .is_some_and(|i| i.contains("\"target_group_arn\""))
    })
}

fn input() -> serde_json::Value {
    serde_json::json!({"scope": {"target_group_arn": TG}, "trigger": {"source": "alarm"}})
}

#[tokio::test]
async fn an_existing_execution_of_the_same_name_is_already_running() {
    let start = start_rule().then_error(|| {
        StartExecutionError::ExecutionAlreadyExists(
            ExecutionAlreadyExists::builder()
                .message("Execution Already Exists")
                .build(),
        )
    });
    let describe = mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION))
        .then_output(|| {
            DescribeExecutionOutput::builder()
                .execution_arn(EXECUTION)
                .state_machine_arn(STATE_MACHINE)
                .status(ExecutionStatus::Running)
                .start_date(DateTime::from_secs(1_732_492_800))
                .build()
                .expect("complete")
        });
    let aws = aws(NONE, NONE, NONE, &[&start, &describe]);
    let outcome = aws
        .start_execution(&incident_id(NAME), &input())
        .await
        .expect("idempotent");
    assert_eq!(
        outcome,
        StartOutcome::AlreadyRunning {
            execution_arn: EXECUTION.to_owned()
        }
    );
    assert_eq!(describe.num_calls(), 1);
}

#[tokio::test]
async fn without_describe_permission_the_built_execution_arn_is_returned() {
    let start = start_rule().then_error(|| {
        StartExecutionError::ExecutionAlreadyExists(ExecutionAlreadyExists::builder().build())
    });
    let denied = mock!(aws_sdk_sfn::Client::describe_execution).then_error(|| {
        DescribeExecutionError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform states:DescribeExecution")
                .build(),
        )
    });
    let aws = aws(NONE, NONE, NONE, &[&start, &denied]);
    let outcome = aws
        .start_execution(&incident_id(NAME), &input())
        .await
        .expect("idempotent");
    assert_eq!(
        outcome,
        StartOutcome::AlreadyRunning {
            execution_arn: EXECUTION.to_owned()
        }
    );
}

#[tokio::test]
async fn a_new_execution_is_started() {
    let start = start_rule().then_output(|| {
        StartExecutionOutput::builder()
            .execution_arn(EXECUTION)
            .start_date(DateTime::from_secs(1_732_492_800))
            .build()
            .expect("complete")
    });
    let aws = aws(NONE, NONE, NONE, &[&start]);
    let outcome = aws
        .start_execution(&incident_id(NAME), &input())
        .await
        .expect("started");
    assert_eq!(
        outcome,
        StartOutcome::Started {
            execution_arn: EXECUTION.to_owned()
        }
    );
}

// ---- SNS ---------------------------------------------------------------------------------------

fn notification() -> Notification {
    let tg = TargetGroupArn::parse(TG).expect("valid");
    let record = IncidentRecord {
        incident: Incident {
            id: incident_id(NAME),
            target_group: tg.clone(),
            instance: instance(),
            asg: None,
            detected_at: Timestamp(1_732_492_800),
            tags: BTreeMap::new(),
            launched_at: None,
        },
        status: IncidentStatus::Open,
        diagnosis: None,
        decision: None,
        steps: vec![],
        failure: None,
        execution_arn: Some(EXECUTION.to_owned()),
        updated_at: Timestamp(1_732_492_800),
    };
    Notification {
        subject: format!(
            "autoheal: web — 1 target needs approval\nrestart_service on {INSTANCE} {}",
            "x".repeat(150)
        ),
        severity: Severity::Critical,
        target_group: tg,
        incidents: vec![record],
        held_back: vec![],
        execution_url: None,
        approval_token: Some("token".to_owned()),
    }
}

#[tokio::test]
async fn a_notification_is_published_with_a_valid_subject_and_message_attributes() {
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| {
            let subject = r.subject().unwrap_or_default();
            let attr = |name: &str| {
                r.message_attributes()
                    .and_then(|a| a.get(name))
                    .map(|v| (v.data_type(), v.string_value().unwrap_or_default()))
            };
            let message: Option<serde_json::Value> = r
                .message()
                .and_then(|m| autoheal_aws::sns::for_protocol(m, "sqs"))
                .and_then(|m| serde_json::from_str(&m).ok());
            r.topic_arn() == Some(TOPIC)
                && r.message_structure() == Some("json")
                && !subject.is_empty()
                && subject.len() <= 100
                && subject.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                && subject.starts_with("autoheal: web ? 1 target needs approval restart_service")
                && attr("severity") == Some(("String", "critical"))
                && attr("target_group") == Some(("String", TG))
                && attr("incidents") == Some(("Number", "1"))
                && attr("incidents_omitted").is_none()
                && message.is_some_and(|m| m["incidents"][0]["incident"]["id"] == NAME)
        })
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let aws = aws(NONE, NONE, &[&publish], NONE);
    aws.notify(&notification()).await.expect("published");
    assert_eq!(publish.num_calls(), 1);
}
