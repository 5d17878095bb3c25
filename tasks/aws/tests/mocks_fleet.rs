//! The ELBv2, EC2 and Auto Scaling adapters against mocked SDK clients (aws-smithy-mocks): the
//! requests they send, how they read the responses, pagination and chunking, and how errors map.
//!
//! Retries: `mock_client!` builds clients with `BehaviorVersion::latest()`, which (from
//! `v2026_01_12`) turns the SDK's standard retries on. The throttling tests therefore give the
//! EC2 client a standard retry config with a 1 ms backoff: one throttled attempt is retried by the
//! SDK and succeeds; throttling that outlasts every attempt maps to `Throttled`.

use std::time::Duration;

use autoheal_aws::{Aws, Settings};
use autoheal_core::PortError;
use autoheal_core::health::{Anomaly, AnomalyResult, HealthState, ReasonCode};
use autoheal_core::ids::{AsgName, InstanceId, TargetGroupArn};
use autoheal_core::observe::{InstanceState, StatusCheck};
use autoheal_core::ports::{
    FleetControl, InstanceControl, InstanceInventory, LbKind, TargetGroupCatalog,
    TargetGroupSelector, TargetHealthSource, TargetRegistry,
};
use aws_sdk_autoscaling::Client as AsgClient;
use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::enter_standby::EnterStandbyOutput;
use aws_sdk_autoscaling::operation::set_instance_health::SetInstanceHealthOutput;
use aws_sdk_autoscaling::operation::terminate_instance_in_auto_scaling_group::{
    TerminateInstanceInAutoScalingGroupError, TerminateInstanceInAutoScalingGroupOutput,
};
use aws_sdk_autoscaling::types::{
    Activity, AutoScalingGroup, Instance as AsgMember, LifecycleState,
};
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::operation::describe_instance_status::DescribeInstanceStatusOutput;
use aws_sdk_ec2::operation::describe_instances::{DescribeInstancesError, DescribeInstancesOutput};
use aws_sdk_ec2::operation::reboot_instances::{RebootInstancesError, RebootInstancesOutput};
use aws_sdk_ec2::types::{
    Instance, InstanceState as Ec2State, InstanceStateName, InstanceStatus, InstanceStatusSummary,
    Reservation, SummaryStatus, Tag as Ec2Tag,
};
use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use aws_sdk_elasticloadbalancingv2::operation::deregister_targets::DeregisterTargetsError;
use aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::{
    DescribeTargetHealthError, DescribeTargetHealthOutput,
};
use aws_sdk_elasticloadbalancingv2::operation::register_targets::RegisterTargetsOutput;
use aws_sdk_elasticloadbalancingv2::types::error::{
    InvalidTargetException, TargetGroupNotFoundException,
};
use aws_sdk_elasticloadbalancingv2::types::{
    AnomalyDetection, AnomalyResultEnum, DescribeTargetHealthInputIncludeEnum,
    MitigationInEffectEnum, ProtocolEnum, Tag, TagDescription, TargetDescription, TargetGroup,
    TargetHealth as SdkTargetHealth, TargetHealthDescription, TargetHealthReasonEnum,
    TargetHealthStateEnum, TargetTypeEnum,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use aws_smithy_types::error::ErrorMetadata;

const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const ALB: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef";
const NLB: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/tcp/0123456789abcdef";
const I1: &str = "i-0123456789abcdef0";
const I2: &str = "i-0123456789abcdef1";
const ASG: &str = "web-asg";

/// For the clients a test does not call.
const NO_RULES: [&Rule; 0] = [];

fn settings() -> Settings {
    Settings {
        incidents_table: "incidents".to_owned(),
        incidents_index: String::new(),
        leases_table: "leases".to_owned(),
        policy_table: "policy".to_owned(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:autoheal".to_owned(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:autoheal".to_owned(),
        record_ttl_days: 90,
    }
}

fn aws(elb: ElbClient, ec2: Ec2Client, asg: AsgClient) -> Aws {
    Aws {
        elb,
        ec2,
        asg,
        ssm: mock_client!(aws_sdk_ssm, NO_RULES),
        ddb: mock_client!(aws_sdk_dynamodb, NO_RULES),
        sns: mock_client!(aws_sdk_sns, NO_RULES),
        sfn: mock_client!(aws_sdk_sfn, NO_RULES),
        settings: settings(),
        webhooks: None,
    }
}

fn with_elb(elb: ElbClient) -> Aws {
    aws(
        elb,
        mock_client!(aws_sdk_ec2, NO_RULES),
        mock_client!(aws_sdk_autoscaling, NO_RULES),
    )
}

fn with_ec2(ec2: Ec2Client) -> Aws {
    aws(
        mock_client!(aws_sdk_elasticloadbalancingv2, NO_RULES),
        ec2,
        mock_client!(aws_sdk_autoscaling, NO_RULES),
    )
}

fn with_asg(asg: AsgClient) -> Aws {
    aws(
        mock_client!(aws_sdk_elasticloadbalancingv2, NO_RULES),
        mock_client!(aws_sdk_ec2, NO_RULES),
        asg,
    )
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid instance id")
}

fn tg_arn() -> TargetGroupArn {
    TargetGroupArn::parse(TG).expect("valid target group arn")
}

/// The ARN of target group number `n`.
fn tg(n: u32) -> String {
    format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-{n}/{n:016x}")
}

fn ids_are(got: &[String], want: &[&str]) -> bool {
    got.iter().map(String::as_str).eq(want.iter().copied())
}

/// Standard retries with a 1 ms backoff, so the throttling tests take no time.
fn fast_retries(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

// ---------------------------------------------------------------------------------------------
// ELBv2
// ---------------------------------------------------------------------------------------------

/// Every reason code the core knows, and one it does not.
fn reason_codes() -> Vec<(String, ReasonCode)> {
    let mut codes: Vec<(String, ReasonCode)> = ReasonCode::KNOWN
        .iter()
        .map(|c| (c.as_str().to_owned(), c.clone()))
        .collect();
    codes.push((
        "Target.SomeFutureReason".to_owned(),
        ReasonCode::Other("Target.SomeFutureReason".to_owned()),
    ));
    codes
}

fn described(target: &str, state: &str, reason: Option<&str>) -> TargetHealthDescription {
    let mut health = SdkTargetHealth::builder().state(TargetHealthStateEnum::from(state));
    if let Some(r) = reason {
        health = health
            .reason(TargetHealthReasonEnum::from(r))
            .description(format!("{r} on {target}"));
    }
    TargetHealthDescription::builder()
        .target(TargetDescription::builder().id(target).port(8080).build())
        .health_check_port("8080")
        .target_health(health.build())
        .build()
}

fn target_group(arn: &str, lb: &str, target_type: TargetTypeEnum) -> TargetGroup {
    TargetGroup::builder()
        .target_group_arn(arn)
        .target_type(target_type)
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .health_check_protocol(ProtocolEnum::Http)
        .health_check_port("traffic-port")
        .health_check_path("/healthz")
        .load_balancer_arns(lb)
        .build()
}

fn nlb_group(arn: &str) -> TargetGroup {
    TargetGroup::builder()
        .target_group_arn(arn)
        .target_type(TargetTypeEnum::Instance)
        .protocol(ProtocolEnum::Tcp)
        .port(443)
        .health_check_protocol(ProtocolEnum::Tcp)
        .health_check_port("traffic-port")
        .load_balancer_arns(NLB)
        .build()
}

fn tagged(arn: &str, value: &str) -> TagDescription {
    TagDescription::builder()
        .resource_arn(arn)
        .tags(Tag::builder().key("team").value("web").build())
        .tags(Tag::builder().key("autoheal").value(value).build())
        .build()
}

#[tokio::test]
async fn unhealthy_targets_keep_every_reason_code_and_the_anomaly() {
    let rule = mock!(ElbClient::describe_target_health)
        .match_requests(|r| {
            r.target_group_arn() == Some(TG)
                && r.include()
                    .contains(&DescribeTargetHealthInputIncludeEnum::Anomaly)
        })
        .then_output(|| {
            let mut out = DescribeTargetHealthOutput::builder();
            for (n, (wire, _)) in reason_codes().into_iter().enumerate() {
                let target = format!("i-{:08x}", n + 1);
                out = out.target_health_descriptions(described(
                    &target,
                    "unhealthy",
                    Some(wire.as_str()),
                ));
            }
            out.target_health_descriptions(
                TargetHealthDescription::builder()
                    .target(TargetDescription::builder().id(I1).port(8080).build())
                    .target_health(
                        SdkTargetHealth::builder()
                            .state(TargetHealthStateEnum::Healthy)
                            .build(),
                    )
                    .anomaly_detection(
                        AnomalyDetection::builder()
                            .result(AnomalyResultEnum::Anomalous)
                            .mitigation_in_effect(MitigationInEffectEnum::Yes)
                            .build(),
                    )
                    .build(),
            )
            // An IP target: not an instance, left out.
            .target_health_descriptions(described("10.0.3.7", "unhealthy", Some("Target.Timeout")))
            .build()
        });
    let aws = with_elb(mock_client!(aws_sdk_elasticloadbalancingv2, [&rule]));

    let targets = aws
        .describe_target_health(&tg_arn())
        .await
        .expect("described");

    let codes = reason_codes();
    assert_eq!(targets.len(), codes.len() + 1, "{targets:#?}");
    for (t, (wire, expected)) in targets.iter().zip(codes) {
        assert_eq!(t.state, HealthState::Unhealthy, "{wire}");
        assert_eq!(t.reason.as_ref(), Some(&expected), "{wire}");
        assert_eq!(
            t.reason.as_ref().map(ReasonCode::as_str),
            Some(wire.as_str())
        );
        assert_eq!(t.port, 8080);
        assert_eq!(
            t.description.as_deref(),
            Some(format!("{wire} on {}", t.instance).as_str())
        );
        assert_eq!(t.anomaly, None);
    }
    let gray = targets.last().expect("the anomalous target");
    assert_eq!(gray.instance.as_str(), I1);
    assert_eq!(gray.state, HealthState::Healthy);
    assert_eq!(gray.reason, None);
    assert_eq!(
        gray.anomaly,
        Some(Anomaly {
            result: AnomalyResult::Anomalous,
            mitigation_in_effect: true
        })
    );
    assert!(gray.needs_attention());
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_target_group_is_target_not_found() {
    let rule = mock!(ElbClient::describe_target_health).then_error(|| {
        DescribeTargetHealthError::TargetGroupNotFoundException(
            TargetGroupNotFoundException::builder()
                .message("One or more target groups not found")
                .meta(
                    ErrorMetadata::builder()
                        .code("TargetGroupNotFound")
                        .message("One or more target groups not found")
                        .build(),
                )
                .build(),
        )
    });
    let aws = with_elb(mock_client!(aws_sdk_elasticloadbalancingv2, [&rule]));

    let err = aws
        .describe_target_health(&tg_arn())
        .await
        .expect_err("the group is gone");
    assert_eq!(err.error_name(), "TargetNotFound");
    assert!(
        matches!(&err, PortError::TargetNotFound { target_group, .. } if target_group == TG),
        "{err:?}"
    );
}

#[tokio::test]
async fn target_groups_selected_by_tag_are_listed_over_every_page() {
    let page1 = mock!(ElbClient::describe_target_groups)
        .match_requests(|r| {
            r.marker().is_none() && r.target_group_arns().is_empty() && r.page_size() == Some(400)
        })
        .then_output(|| {
            DescribeTargetGroupsOutput::builder()
                .target_groups(target_group(&tg(1), ALB, TargetTypeEnum::Instance))
                .target_groups(nlb_group(&tg(2)))
                .next_marker("page-2")
                .build()
        });
    let page2 = mock!(ElbClient::describe_target_groups)
        .match_requests(|r| r.marker() == Some("page-2"))
        .then_output(|| {
            DescribeTargetGroupsOutput::builder()
                // Not tagged: its target type does not matter.
                .target_groups(target_group(&tg(3), ALB, TargetTypeEnum::Ip))
                .target_groups(nlb_group(&tg(4)))
                .build()
        });
    let tags = mock!(ElbClient::describe_tags)
        .match_requests(|r| {
            let want = [tg(1), tg(2), tg(3), tg(4)];
            r.resource_arns().iter().eq(want.iter())
        })
        .then_output(|| {
            DescribeTagsOutput::builder()
                .tag_descriptions(tagged(&tg(1), "on"))
                .tag_descriptions(tagged(&tg(2), "off"))
                .tag_descriptions(TagDescription::builder().resource_arn(tg(3)).build())
                .tag_descriptions(tagged(&tg(4), "on"))
                .build()
        });
    let aws = with_elb(mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&page1, &page2, &tags]
    ));

    let groups = aws
        .target_groups(&TargetGroupSelector::Tag {
            key: "autoheal".to_owned(),
            value: "on".to_owned(),
        })
        .await
        .expect("listed");

    let arns: Vec<&str> = groups.iter().map(|g| g.arn.as_str()).collect();
    assert_eq!(arns, [tg(1), tg(4)]);
    assert_eq!(groups[0].lb, LbKind::Alb);
    assert_eq!(groups[0].protocol, "HTTP");
    assert_eq!(groups[0].health_check_port, Some(8080));
    assert_eq!(groups[0].health_check_path.as_deref(), Some("/healthz"));
    assert_eq!(groups[1].lb, LbKind::Nlb);
    assert_eq!(groups[1].protocol, "TCP");
    assert_eq!(groups[1].port, 443);
    assert_eq!(groups[1].health_check_port, Some(443));
    assert_eq!(groups[1].health_check_path, None);
    assert_eq!(
        (page1.num_calls(), page2.num_calls(), tags.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn target_group_arns_are_sent_twenty_at_a_time() {
    let rule = mock!(ElbClient::describe_target_groups)
        .match_requests(|r| (1..=20).contains(&r.target_group_arns().len()))
        .then_compute_output(|r| {
            r.target_group_arns()
                .iter()
                .fold(DescribeTargetGroupsOutput::builder(), |out, arn| {
                    out.target_groups(target_group(arn, ALB, TargetTypeEnum::Instance))
                })
                .build()
        });
    let aws = with_elb(mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::MatchAny,
        [&rule]
    ));
    let arns: Vec<TargetGroupArn> = (1..=25)
        .map(|n| TargetGroupArn::parse(tg(n)).expect("valid"))
        .collect();

    let groups = aws
        .target_groups(&TargetGroupSelector::Arns(arns.clone()))
        .await
        .expect("described");

    let got: Vec<TargetGroupArn> = groups.into_iter().map(|g| g.arn).collect();
    assert_eq!(got, arns);
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn a_group_of_ip_targets_is_rejected_with_a_clear_error() {
    let rule = mock!(ElbClient::describe_target_groups).then_output(|| {
        DescribeTargetGroupsOutput::builder()
            .target_groups(target_group(TG, ALB, TargetTypeEnum::Ip))
            .build()
    });
    let aws = with_elb(mock_client!(aws_sdk_elasticloadbalancingv2, [&rule]));

    let err = aws
        .target_groups(&TargetGroupSelector::Arns(vec![tg_arn()]))
        .await
        .expect_err("ip targets are not healed");
    assert_eq!(err.error_name(), "InvalidInput");
    let msg = err.to_string();
    assert!(msg.contains(TG), "{msg}");
    assert!(msg.contains("\"ip\""), "{msg}");
    assert!(msg.contains("EC2 instance targets only"), "{msg}");
}

#[tokio::test]
async fn register_sends_the_instance_and_port_and_deregister_maps_invalid_target() {
    let register = mock!(ElbClient::register_targets)
        .match_requests(|r| {
            r.target_group_arn() == Some(TG)
                && r.targets().len() == 1
                && r.targets()[0].id() == Some(I1)
                && r.targets()[0].port() == Some(8080)
        })
        .then_output(|| RegisterTargetsOutput::builder().build());
    let deregister = mock!(ElbClient::deregister_targets).then_error(|| {
        DeregisterTargetsError::InvalidTargetException(
            InvalidTargetException::builder()
                .meta(
                    ErrorMetadata::builder()
                        .code("InvalidTarget")
                        .message(format!("The target '{I2}' is not registered"))
                        .build(),
                )
                .build(),
        )
    });
    let aws = with_elb(mock_client!(
        aws_sdk_elasticloadbalancingv2,
        RuleMode::Sequential,
        [&register, &deregister]
    ));

    aws.register(&tg_arn(), &id(I1), 8080)
        .await
        .expect("registered");
    let err = aws
        .deregister(&tg_arn(), &id(I2), 8080)
        .await
        .expect_err("not registered");
    assert!(
        matches!(&err, PortError::TargetNotFound { target_group, target } if target_group == TG && target == I2),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// EC2
// ---------------------------------------------------------------------------------------------

fn ec2_instance(instance: &str, asg: Option<&str>) -> Instance {
    let mut b = Instance::builder()
        .instance_id(instance)
        .state(
            Ec2State::builder()
                .code(16)
                .name(InstanceStateName::Running)
                .build(),
        )
        .launch_time(DateTime::from_secs(1_732_492_800))
        .tags(Ec2Tag::builder().key("Name").value("web").build());
    if let Some(name) = asg {
        b = b.tags(
            Ec2Tag::builder()
                .key("aws:autoscaling:groupName")
                .value(name)
                .build(),
        );
    }
    b.build()
}

fn reservation(instances: &[Instance]) -> DescribeInstancesOutput {
    let r = instances
        .iter()
        .cloned()
        .fold(Reservation::builder(), |r, i| r.instances(i))
        .build();
    DescribeInstancesOutput::builder().reservations(r).build()
}

fn status(instance: &str, instance_check: SummaryStatus, system: SummaryStatus) -> InstanceStatus {
    InstanceStatus::builder()
        .instance_id(instance)
        .instance_state(
            Ec2State::builder()
                .code(16)
                .name(InstanceStateName::Running)
                .build(),
        )
        .instance_status(
            InstanceStatusSummary::builder()
                .status(instance_check)
                .build(),
        )
        .system_status(InstanceStatusSummary::builder().status(system).build())
        .build()
}

fn ec2_error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

#[tokio::test]
async fn instances_come_with_their_status_checks_tags_and_group() {
    let describe = mock!(Ec2Client::describe_instances)
        .match_requests(|r| ids_are(r.instance_ids(), &[I1, I2]))
        .then_output(|| reservation(&[ec2_instance(I1, Some(ASG)), ec2_instance(I2, None)]));
    let statuses = mock!(Ec2Client::describe_instance_status)
        .match_requests(|r| {
            ids_are(r.instance_ids(), &[I1, I2]) && r.include_all_instances() == Some(true)
        })
        .then_output(|| {
            DescribeInstanceStatusOutput::builder()
                .instance_statuses(status(I1, SummaryStatus::Ok, SummaryStatus::Ok))
                .instance_statuses(status(
                    I2,
                    SummaryStatus::Impaired,
                    SummaryStatus::InsufficientData,
                ))
                .build()
        });
    let aws = with_ec2(mock_client!(aws_sdk_ec2, [&describe, &statuses]));

    // A repeated id is asked for once.
    let infos = aws
        .describe_instances(&[id(I1), id(I2), id(I1)])
        .await
        .expect("described");

    assert_eq!(infos.len(), 2);
    let (a, b) = (&infos[0], &infos[1]);
    assert_eq!(a.instance.as_str(), I1);
    assert_eq!(a.state, InstanceState::Running);
    assert_eq!(
        (a.instance_status, a.system_status),
        (StatusCheck::Ok, StatusCheck::Ok)
    );
    assert_eq!(a.asg.as_ref().map(AsgName::as_str), Some(ASG));
    assert_eq!(
        a.tags.get("aws:autoscaling:groupName").map(String::as_str),
        Some(ASG)
    );
    assert_eq!(a.tags.get("Name").map(String::as_str), Some("web"));
    assert_eq!(a.launched_at.map(|t| t.0), Some(1_732_492_800));
    assert_eq!(b.instance.as_str(), I2);
    assert_eq!(
        (b.instance_status, b.system_status),
        (StatusCheck::Impaired, StatusCheck::InsufficientData)
    );
    assert_eq!(b.asg, None);
}

#[tokio::test]
async fn a_vanished_instance_is_left_out() {
    let not_found = || {
        DescribeInstancesError::generic(ec2_error(
            "InvalidInstanceID.NotFound",
            &format!("The instance ID '{I2}' does not exist"),
        ))
    };
    let both = mock!(Ec2Client::describe_instances)
        .match_requests(|r| ids_are(r.instance_ids(), &[I1, I2]))
        .then_error(not_found);
    let first = mock!(Ec2Client::describe_instances)
        .match_requests(|r| ids_are(r.instance_ids(), &[I1]))
        .then_output(|| reservation(&[ec2_instance(I1, Some(ASG))]));
    let second = mock!(Ec2Client::describe_instances)
        .match_requests(|r| ids_are(r.instance_ids(), &[I2]))
        .then_error(not_found);
    let statuses = mock!(Ec2Client::describe_instance_status)
        .match_requests(|r| ids_are(r.instance_ids(), &[I1]))
        .then_output(|| {
            DescribeInstanceStatusOutput::builder()
                .instance_statuses(status(I1, SummaryStatus::Ok, SummaryStatus::Ok))
                .build()
        });
    // Sequential: the calls must come in exactly this order.
    let aws = with_ec2(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&both, &first, &second, &statuses]
    ));

    let infos = aws
        .describe_instances(&[id(I1), id(I2)])
        .await
        .expect("the existing instance is described");

    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].instance.as_str(), I1);
    assert_eq!(
        (
            both.num_calls(),
            first.num_calls(),
            second.num_calls(),
            statuses.num_calls()
        ),
        (1, 1, 1, 1)
    );
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk() {
    let describe = mock!(Ec2Client::describe_instances)
        .sequence()
        .error(|| {
            DescribeInstancesError::generic(ec2_error(
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ))
        })
        .output(|| reservation(&[ec2_instance(I1, None)]))
        .build();
    let statuses = mock!(Ec2Client::describe_instance_status).then_output(|| {
        DescribeInstanceStatusOutput::builder()
            .instance_statuses(status(I1, SummaryStatus::Ok, SummaryStatus::Ok))
            .build()
    });
    let aws = with_ec2(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&describe, &statuses],
        |c| c.retry_config(fast_retries(3))
    ));

    let infos = aws
        .describe_instances(&[id(I1)])
        .await
        .expect("the retry succeeds");

    assert_eq!(infos.len(), 1);
    assert_eq!(describe.num_calls(), 2, "one throttled attempt, one retry");
    assert_eq!(statuses.num_calls(), 1);
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_throttled() {
    let describe = mock!(Ec2Client::describe_instances)
        .sequence()
        .error(|| {
            DescribeInstancesError::generic(ec2_error(
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ))
        })
        .times(2)
        .build();
    let aws = with_ec2(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&describe],
        |c| c.retry_config(fast_retries(2))
    ));

    let err = aws
        .describe_instances(&[id(I1)])
        .await
        .expect_err("still throttled");

    assert!(
        matches!(&err, PortError::Throttled { service: "ec2", .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(describe.num_calls(), 2);
}

#[tokio::test]
async fn rebooting_an_unknown_instance_is_instance_not_found() {
    let ok = mock!(Ec2Client::reboot_instances)
        .match_requests(|r| ids_are(r.instance_ids(), &[I1]))
        .then_output(|| RebootInstancesOutput::builder().build());
    let gone = mock!(Ec2Client::reboot_instances)
        .match_requests(|r| ids_are(r.instance_ids(), &[I2]))
        .then_error(|| {
            RebootInstancesError::generic(ec2_error(
                "InvalidInstanceID.NotFound",
                &format!("The instance ID '{I2}' does not exist"),
            ))
        });
    let aws = with_ec2(mock_client!(aws_sdk_ec2, [&ok, &gone]));

    aws.reboot(&id(I1)).await.expect("rebooted");
    let err = aws.reboot(&id(I2)).await.expect_err("gone");
    assert!(
        matches!(&err, PortError::InstanceNotFound(i) if i == I2),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Auto Scaling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn terminating_in_the_group_returns_the_activity_id() {
    let rule = mock!(AsgClient::terminate_instance_in_auto_scaling_group)
        .match_requests(|r| {
            r.instance_id() == Some(I1) && r.should_decrement_desired_capacity() == Some(false)
        })
        .then_output(|| {
            TerminateInstanceInAutoScalingGroupOutput::builder()
                .activity(
                    Activity::builder()
                        .activity_id("5a2e0f4c-7d3b-4e1a-9c2f-0123456789ab")
                        .auto_scaling_group_name(ASG)
                        .cause("an instance was taken out of service in response to a user request")
                        .build(),
                )
                .build()
        });
    let aws = with_asg(mock_client!(aws_sdk_autoscaling, [&rule]));

    let activity = aws
        .terminate_in_group(&id(I1), false)
        .await
        .expect("terminated");

    assert_eq!(activity, "5a2e0f4c-7d3b-4e1a-9c2f-0123456789ab");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn terminating_an_instance_the_group_no_longer_has_is_instance_not_found() {
    let rule = mock!(AsgClient::terminate_instance_in_auto_scaling_group).then_error(|| {
        TerminateInstanceInAutoScalingGroupError::generic(
            ErrorMetadata::builder()
                .code("ValidationError")
                .message(format!(
                    "Instance Id not found - No managed instance found for instance ID: {I1}"
                ))
                .build(),
        )
    });
    let aws = with_asg(mock_client!(aws_sdk_autoscaling, [&rule]));

    let err = aws
        .terminate_in_group(&id(I1), true)
        .await
        .expect_err("gone");
    assert!(
        matches!(&err, PortError::InstanceNotFound(i) if i == I1),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_activity_is_a_service_error() {
    let rule = mock!(AsgClient::terminate_instance_in_auto_scaling_group)
        .then_output(|| TerminateInstanceInAutoScalingGroupOutput::builder().build());
    let aws = with_asg(mock_client!(aws_sdk_autoscaling, [&rule]));

    let err = aws
        .terminate_in_group(&id(I1), false)
        .await
        .expect_err("no activity");
    assert_eq!(err.error_name(), "AwsServiceError");
    assert!(err.to_string().contains("ActivityId"), "{err}");
}

#[tokio::test]
async fn a_group_is_described_and_a_missing_one_is_named() {
    let found = mock!(AsgClient::describe_auto_scaling_groups)
        .match_requests(|r| ids_are(r.auto_scaling_group_names(), &[ASG]))
        .then_output(|| {
            DescribeAutoScalingGroupsOutput::builder()
                .auto_scaling_groups(
                    AutoScalingGroup::builder()
                        .auto_scaling_group_name(ASG)
                        .min_size(2)
                        .max_size(4)
                        .desired_capacity(3)
                        .instances(
                            AsgMember::builder()
                                .instance_id(I1)
                                .lifecycle_state(LifecycleState::InService)
                                .health_status("Healthy")
                                .build(),
                        )
                        .instances(
                            AsgMember::builder()
                                .instance_id(I2)
                                .lifecycle_state(LifecycleState::Standby)
                                .health_status("Healthy")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let missing = mock!(AsgClient::describe_auto_scaling_groups)
        .match_requests(|r| ids_are(r.auto_scaling_group_names(), &["gone-asg"]))
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    let aws = with_asg(mock_client!(
        aws_sdk_autoscaling,
        RuleMode::MatchAny,
        [&found, &missing]
    ));

    let info = aws
        .describe_group(&AsgName::parse(ASG).expect("valid"))
        .await
        .expect("described");
    assert_eq!(
        (info.min_size, info.max_size, info.desired_capacity),
        (2, 4, 3)
    );
    assert_eq!(info.instances.len(), 2);
    assert_eq!(info.instances[1].instance.as_str(), I2);
    assert_eq!(info.instances[1].lifecycle_state, "Standby");

    let err = aws
        .describe_group(&AsgName::parse("gone-asg").expect("valid"))
        .await
        .expect_err("no such group");
    assert_eq!(err.error_name(), "InvalidInput");
    assert!(err.to_string().contains("gone-asg"), "{err}");
}

#[tokio::test]
async fn standby_and_set_unhealthy_send_what_the_port_asks() {
    let standby = mock!(AsgClient::enter_standby)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some(ASG)
                && ids_are(r.instance_ids(), &[I1])
                && r.should_decrement_desired_capacity() == Some(true)
        })
        .then_output(|| EnterStandbyOutput::builder().build());
    let unhealthy = mock!(AsgClient::set_instance_health)
        .match_requests(|r| {
            r.instance_id() == Some(I1)
                && r.health_status() == Some("Unhealthy")
                && r.should_respect_grace_period() == Some(false)
        })
        .then_output(|| SetInstanceHealthOutput::builder().build());
    let aws = with_asg(mock_client!(
        aws_sdk_autoscaling,
        RuleMode::Sequential,
        [&standby, &unhealthy]
    ));
    let asg = AsgName::parse(ASG).expect("valid");

    aws.enter_standby(&asg, &id(I1), true)
        .await
        .expect("in standby");
    aws.set_unhealthy(&id(I1)).await.expect("marked unhealthy");
    assert_eq!((standby.num_calls(), unhealthy.num_calls()), (1, 1));
}
