//! The adapters against a real moto 5.2.5 server (`make test` installs it into `.venv`): every
//! port of `autoheal-aws` over the real SDK clients, real HTTP and real service semantics, with
//! resources created the way production has them (a VPC, an ALB, an NLB, target groups, a
//! launch template and an Auto Scaling group; the three DynamoDB tables of the CDK stack; an SNS
//! topic with an SQS subscriber; a state machine).
//!
//! moto is not AWS. Where it differs, the tests assert what the port's contract allows and say
//! what moto does in a comment; failure paths moto cannot produce (SSM command failures and
//! timeouts, throttling, 5xx) are covered by the aws-smithy-mocks suites (`tests/mocks_fleet.rs`,
//! `tests/mocks_services.rs`). The moto behaviours these tests rely on were checked with boto3
//! against moto 5.2.5:
//!
//! - ELBv2: every load balancer's ARN is `loadbalancer/app/...`, whatever its type (AWS names an
//!   NLB `loadbalancer/net/...`). Targets are `healthy` as soon as they are registered (AWS:
//!   `initial` first) and disappear as soon as they are deregistered (AWS: `draining` for the
//!   deregistration delay). A terminated instance stays registered and `healthy` (AWS
//!   deregisters it).
//! - Auto Scaling registers the group's instances in its target groups, tags them
//!   `aws:autoscaling:groupName`, and launches the replacement of a terminated instance within
//!   the TerminateInstanceInAutoScalingGroup call itself.
//! - SSM: every command succeeds at once with response code 0 and empty output (nothing runs),
//!   even for an instance that does not exist; DescribeInstanceInformation is not implemented
//!   (HTTP 500), so `agent_status` is not tested here.
//! - Step Functions: executions stay `RUNNING`; a second StartExecution with the same name and
//!   input answers the running execution, with another input `ExecutionAlreadyExists` (as AWS).
//!
//! # The server
//!
//! One moto server per test binary, started by the first test that needs it and shared by all
//! (each test uses resource names of its own, so tests run in parallel). Statics are never
//! dropped, so nothing in this process can stop the server when the tests end: a reaper does,
//! a `/bin/sh` started next to the server that polls this process's PID and kills the server's
//! PID once this process has exited (passed, failed or killed).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use autoheal_aws::{Aws, Settings};
use autoheal_core::error::PortError;
use autoheal_core::health::{HealthState, TargetHealth};
use autoheal_core::incident::{
    HealOutcome, HealRecord, History, Incident, IncidentRecord, IncidentStatus, Step, Transition,
};
use autoheal_core::observe::{CommandResult, CommandStatus, InstanceState, StatusCheck};
use autoheal_core::ports::{
    Clock, CommandRequest, CommandRunner, DocumentRef, ExecutionStarter, FleetControl,
    IncidentQuery, IncidentStore, InstanceControl, InstanceInventory, LbKind, Lease, Notification,
    Notifier, Severity, StartOutcome, TargetGroupCatalog, TargetGroupInfo, TargetGroupSelector,
    TargetHealthSource, TargetRegistry,
};
use autoheal_core::{
    Action, AsgName, IncidentId, InstanceId, InstancePolicy, TargetGroupArn, Timestamp,
};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use aws_sdk_elasticloadbalancingv2::types::{
    Action as ListenerAction, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag as ElbTag,
    TargetTypeEnum,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

// ---- the moto server -----------------------------------------------------------------------

const MOTO_MISSING: &str =
    "moto is not installed: run `make test`, which installs moto 5.2.5 into .venv";

/// How long moto may take to accept connections.
const STARTUP: Duration = Duration::from_secs(20);

static MOTO_PORT: OnceLock<u16> = OnceLock::new();

/// `AUTOHEAL_MOTO_SERVER`, else the repository's `.venv/bin/moto_server`; panics when absent
/// (never skips).
fn moto_server() -> PathBuf {
    let path = match std::env::var_os("AUTOHEAL_MOTO_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"),
    };
    assert!(
        path.is_file(),
        "{MOTO_MISSING} (no moto_server at {})",
        path.display()
    );
    path
}

/// The port of this process's moto server, started on first use.
fn moto_port() -> u16 {
    *MOTO_PORT.get_or_init(start_moto)
}

fn start_moto() -> u16 {
    let server = moto_server();
    // A free port: bind to port 0, read the port, and let it go for moto to take.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port();
    let port_arg = port.to_string();
    let mut child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", port_arg.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
    // The reaper (see the module doc): stops the server by its PID once this process is gone.
    // It outlives this process by design, so nothing here waits for it.
    #[allow(clippy::zombie_processes)]
    let _reaper = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {test} 2>/dev/null; do sleep 0.5; done; kill {moto} 2>/dev/null",
            test = std::process::id(),
            moto = child.id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the reaper of the moto server");
    wait_until_listening(&mut child, &server, port);
    port
}

/// Polls a TCP connect until moto accepts; panics (after stopping it) if it exits or does not
/// listen within [`STARTUP`].
fn wait_until_listening(child: &mut Child, server: &std::path::Path, port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + STARTUP;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{} exited ({status}) before listening on 127.0.0.1:{port}; run it by hand \
                 to see why",
                server.display()
            );
        }
        if Instant::now() >= deadline {
            // Best effort: the panic below is the failure that matters.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not accept connections on 127.0.0.1:{port} within {} s",
                server.display(),
                STARTUP.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An SDK configuration for the moto server, built explicitly (no environment: tests run in
/// parallel).
async fn sdk_config() -> SdkConfig {
    let port = moto_port();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

/// Settings with no resource named; each test names the ones it uses.
fn settings() -> Settings {
    Settings {
        incidents_table: String::new(),
        leases_table: String::new(),
        incidents_index: String::new(),
        policy_table: String::new(),
        topic_arn: String::new(),
        state_machine_arn: String::new(),
        record_ttl_days: 90,
    }
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A name no other test of this process uses (short: load balancer and target group names
/// take at most 32 characters).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

// ---- domain values -------------------------------------------------------------------------

const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";

fn instance_id(id: &str) -> InstanceId {
    InstanceId::parse(id).expect("a valid instance id")
}

fn incident_id(id: &str) -> IncidentId {
    IncidentId::parse(id).expect("a valid incident id")
}

fn tg() -> TargetGroupArn {
    TargetGroupArn::parse(TG).expect("a valid target group ARN")
}

fn record(id: &str, instance: &InstanceId, detected_at: Timestamp) -> IncidentRecord {
    IncidentRecord {
        incident: Incident {
            id: incident_id(id),
            target_group: tg(),
            instance: instance.clone(),
            asg: Some(AsgName::parse("web-asg").expect("a valid group name")),
            detected_at,
            tags: BTreeMap::from([("Name".to_owned(), "web".to_owned())]),
            launched_at: Some(detected_at.minus_secs(3600)),
        },
        status: IncidentStatus::Open,
        diagnosis: None,
        decision: None,
        steps: vec![Step {
            name: "Detect".to_owned(),
            at: detected_at,
            detail: "unhealthy: Target.Timeout".to_owned(),
        }],
        failure: None,
        execution_arn: None,
        updated_at: detected_at,
    }
}

fn ids_of(targets: &[TargetHealth]) -> BTreeSet<InstanceId> {
    targets.iter().map(|t| t.instance.clone()).collect()
}

// ---- the fleet -----------------------------------------------------------------------------

/// One of moto's default AMIs (`DescribeImages` with owner `amazon` lists it).
const MOTO_AMI: &str = "ami-12c6146b";
const HTTP_PORT: u16 = 8080;
const TCP_PORT: u16 = 443;
const TCP_HEALTH_CHECK_PORT: u16 = 9000;

/// A VPC with two subnets in two zones, an ALB and an NLB, an HTTP and a TCP target group, a
/// launch template and an Auto Scaling group of 2 attached to both groups.
struct Fleet {
    asg: AsgName,
    /// HTTP, instance targets, behind the ALB (a listener forwards to it).
    alb_group: TargetGroupArn,
    /// TCP, instance targets, health checks on port 9000.
    nlb_group: TargetGroupArn,
    instances: Vec<InstanceId>,
}

async fn fleet(aws: &Aws, prefix: &str) -> Fleet {
    let name = unique(prefix);
    let vpc = aws
        .ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("CreateVpc");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("a VPC id")
        .to_owned();
    let mut subnets = Vec::new();
    for (cidr, zone) in [("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b")] {
        let out = aws
            .ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .availability_zone(zone)
            .send()
            .await
            .expect("CreateSubnet");
        subnets.push(
            out.subnet()
                .and_then(|s| s.subnet_id())
                .expect("a subnet id")
                .to_owned(),
        );
    }
    let alb = load_balancer(
        aws,
        &format!("{name}-alb"),
        LoadBalancerTypeEnum::Application,
        &subnets,
    )
    .await;
    // The NLB gets no listener: moto names every load balancer `loadbalancer/app/...`, so a TCP
    // group attached to it would look attached to an ALB (the adapter reads the kind from the
    // ARN first). Unattached, the group's kind comes from its protocol, as for a group whose
    // NLB listener is not created yet.
    load_balancer(
        aws,
        &format!("{name}-nlb"),
        LoadBalancerTypeEnum::Network,
        &subnets,
    )
    .await;

    let http = aws
        .elb
        .create_target_group()
        .name(format!("{name}-http"))
        .protocol(ProtocolEnum::Http)
        .port(i32::from(HTTP_PORT))
        .vpc_id(&vpc_id)
        .target_type(TargetTypeEnum::Instance)
        .health_check_protocol(ProtocolEnum::Http)
        .health_check_port("traffic-port")
        .health_check_path("/healthz")
        .send()
        .await
        .expect("CreateTargetGroup (HTTP)");
    let alb_group = group_arn(http.target_groups());
    let tcp = aws
        .elb
        .create_target_group()
        .name(format!("{name}-tcp"))
        .protocol(ProtocolEnum::Tcp)
        .port(i32::from(TCP_PORT))
        .vpc_id(vpc_id)
        .target_type(TargetTypeEnum::Instance)
        .health_check_protocol(ProtocolEnum::Tcp)
        .health_check_port(TCP_HEALTH_CHECK_PORT.to_string())
        .send()
        .await
        .expect("CreateTargetGroup (TCP)");
    let nlb_group = group_arn(tcp.target_groups());
    aws.elb
        .create_listener()
        .load_balancer_arn(alb)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            ListenerAction::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(alb_group.as_str())
                .build(),
        )
        .send()
        .await
        .expect("CreateListener");

    let template = aws
        .ec2
        .create_launch_template()
        .launch_template_name(format!("{name}-lt"))
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(MOTO_AMI)
                .instance_type(InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let template_id = template
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .expect("a launch template id")
        .to_owned();
    let asg = AsgName::parse(format!("{name}-asg")).expect("a valid group name");
    aws.asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(asg.as_str())
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(template_id)
                .version("$Latest")
                .build(),
        )
        .min_size(2)
        .max_size(4)
        .desired_capacity(2)
        .vpc_zone_identifier(subnets.join(","))
        .target_group_arns(alb_group.as_str())
        .target_group_arns(nlb_group.as_str())
        .send()
        .await
        .expect("CreateAutoScalingGroup");

    let group = aws.describe_group(&asg).await.expect("describe_group");
    let instances: Vec<InstanceId> = group.instances.iter().map(|i| i.instance.clone()).collect();
    assert_eq!(
        instances.len(),
        2,
        "moto launches the desired capacity: {group:?}"
    );
    Fleet {
        asg,
        alb_group,
        nlb_group,
        instances,
    }
}

async fn load_balancer(
    aws: &Aws,
    name: &str,
    kind: LoadBalancerTypeEnum,
    subnets: &[String],
) -> String {
    let out = aws
        .elb
        .create_load_balancer()
        .name(name)
        .r#type(kind)
        .set_subnets(Some(subnets.to_vec()))
        .send()
        .await
        .expect("CreateLoadBalancer");
    out.load_balancers()
        .first()
        .and_then(|lb| lb.load_balancer_arn())
        .expect("a load balancer ARN")
        .to_owned()
}

fn group_arn(groups: &[aws_sdk_elasticloadbalancingv2::types::TargetGroup]) -> TargetGroupArn {
    let arn = groups
        .first()
        .and_then(|g| g.target_group_arn())
        .expect("a target group ARN");
    TargetGroupArn::parse(arn).expect("moto's target group ARN parses")
}

// ---- ELBv2, EC2, Auto Scaling ----------------------------------------------------------------

#[tokio::test]
async fn a_fleet_is_described_drained_restored_replaced_and_rebooted_through_the_ports() {
    let aws = Aws::from_conf(&sdk_config().await, settings());
    let f = fleet(&aws, "fleet").await;
    let members: BTreeSet<InstanceId> = f.instances.iter().cloned().collect();

    // TargetGroupCatalog: both groups, their kind and health checks.
    let groups = aws
        .target_groups(&TargetGroupSelector::Arns(vec![
            f.alb_group.clone(),
            f.nlb_group.clone(),
        ]))
        .await
        .expect("target_groups by ARN");
    let alb = TargetGroupInfo {
        arn: f.alb_group.clone(),
        lb: LbKind::Alb,
        protocol: "HTTP".to_owned(),
        port: HTTP_PORT,
        health_check_port: Some(HTTP_PORT),
        health_check_path: Some("/healthz".to_owned()),
    };
    let nlb = TargetGroupInfo {
        arn: f.nlb_group.clone(),
        lb: LbKind::Nlb,
        protocol: "TCP".to_owned(),
        port: TCP_PORT,
        health_check_port: Some(TCP_HEALTH_CHECK_PORT),
        health_check_path: None,
    };
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(groups.contains(&alb), "{groups:?}");
    assert!(groups.contains(&nlb), "{groups:?}");

    // The tag selector: every group of the account, then DescribeTags.
    let value = unique("tagged");
    aws.elb
        .add_tags()
        .resource_arns(f.alb_group.as_str())
        .tags(ElbTag::builder().key("autoheal-moto").value(&value).build())
        .send()
        .await
        .expect("AddTags");
    let tagged = aws
        .target_groups(&TargetGroupSelector::Tag {
            key: "autoheal-moto".to_owned(),
            value,
        })
        .await
        .expect("target_groups by tag");
    assert_eq!(tagged, vec![alb.clone()]);

    // TargetHealthSource: Auto Scaling registered the group's instances in both groups, on each
    // group's port (moto reports them healthy at once; AWS starts them `initial`).
    let health = aws
        .describe_target_health(&f.alb_group)
        .await
        .expect("describe_target_health (ALB group)");
    assert_eq!(ids_of(&health), members);
    assert!(
        health
            .iter()
            .all(|t| t.port == HTTP_PORT && t.state == HealthState::Healthy && t.anomaly.is_none()),
        "{health:?}"
    );
    let tcp_health = aws
        .describe_target_health(&f.nlb_group)
        .await
        .expect("describe_target_health (NLB group)");
    assert_eq!(ids_of(&tcp_health), members);
    assert!(
        tcp_health.iter().all(|t| t.port == TCP_PORT),
        "{tcp_health:?}"
    );

    // InstanceInventory: the group's instances with their group from the Auto Scaling tag; an
    // unknown id is left out (EC2 fails the whole call; the adapter retries id by id).
    let unknown = instance_id("i-0123456789abcdef0");
    let mut asked = f.instances.clone();
    asked.push(unknown.clone());
    let infos = aws
        .describe_instances(&asked)
        .await
        .expect("describe_instances");
    assert_eq!(
        infos
            .iter()
            .map(|i| i.instance.clone())
            .collect::<BTreeSet<_>>(),
        members
    );
    for info in &infos {
        assert_eq!(info.asg.as_ref(), Some(&f.asg), "{info:?}");
        assert_eq!(
            info.tags
                .get("aws:autoscaling:groupName")
                .map(String::as_str),
            Some(f.asg.as_str())
        );
        assert_eq!(info.state, InstanceState::Running, "{info:?}");
        assert_eq!(
            (info.instance_status, info.system_status),
            (StatusCheck::Ok, StatusCheck::Ok),
            "{info:?}"
        );
        assert!(info.launched_at.is_some(), "{info:?}");
    }

    // TargetRegistry: drain, then restore (moto removes a deregistered target at once; AWS
    // shows it `draining` for the deregistration delay).
    let (drained, kept) = (&f.instances[0], &f.instances[1]);
    aws.deregister(&f.alb_group, drained, HTTP_PORT)
        .await
        .expect("deregister");
    let after_drain = aws
        .describe_target_health(&f.alb_group)
        .await
        .expect("describe_target_health after the drain");
    assert_eq!(ids_of(&after_drain), BTreeSet::from([kept.clone()]));
    aws.register(&f.alb_group, drained, HTTP_PORT)
        .await
        .expect("register");
    let after_restore = aws
        .describe_target_health(&f.alb_group)
        .await
        .expect("describe_target_health after the restore");
    assert_eq!(ids_of(&after_restore), members);

    // FleetControl: terminate without decrement; the group launches a replacement.
    let activity = aws
        .terminate_in_group(drained, false)
        .await
        .expect("terminate_in_group");
    assert!(!activity.is_empty());
    let group = aws.describe_group(&f.asg).await.expect("describe_group");
    assert_eq!(
        (group.min_size, group.max_size, group.desired_capacity),
        (2, 4, 2),
        "{group:?}"
    );
    let now_members: BTreeSet<InstanceId> =
        group.instances.iter().map(|i| i.instance.clone()).collect();
    assert_eq!(now_members.len(), 2, "{group:?}");
    assert!(!now_members.contains(drained), "{group:?}");
    assert!(now_members.contains(kept), "{group:?}");
    assert!(
        group
            .instances
            .iter()
            .all(|i| i.lifecycle_state == "InService" && i.health_status == "Healthy"),
        "{group:?}"
    );
    let replacement = now_members
        .iter()
        .find(|i| *i != kept)
        .expect("a replacement")
        .clone();
    let terminated = aws
        .describe_instances(std::slice::from_ref(drained))
        .await
        .expect("describe_instances of the terminated instance");
    assert_eq!(terminated.len(), 1, "{terminated:?}");
    assert_eq!(terminated[0].state, InstanceState::Terminated);
    let fresh = aws
        .describe_instances(std::slice::from_ref(&replacement))
        .await
        .expect("describe_instances of the replacement");
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert_eq!(fresh[0].asg.as_ref(), Some(&f.asg));
    // The replacement is registered in the group. (moto also keeps the terminated instance
    // registered and healthy, which AWS does not: not asserted.)
    let after_replace = aws
        .describe_target_health(&f.alb_group)
        .await
        .expect("describe_target_health after the replacement");
    assert!(
        ids_of(&after_replace).contains(&replacement),
        "{after_replace:?}"
    );

    // InstanceControl.
    aws.reboot(kept).await.expect("reboot");
    match aws.reboot(&unknown).await {
        Err(PortError::InstanceNotFound(id)) => assert_eq!(id, unknown.as_str()),
        other => panic!("rebooting an unknown instance: expected InstanceNotFound, got {other:?}"),
    }
}

// ---- SSM -------------------------------------------------------------------------------------

#[tokio::test]
async fn a_command_sent_to_a_fleet_instance_is_polled_to_its_end() {
    let aws = Aws::from_conf(&sdk_config().await, settings());
    let f = fleet(&aws, "ssm").await;
    let instance = f.instances[0].clone();
    let request = CommandRequest {
        instance: instance.clone(),
        document: DocumentRef {
            name: "AWS-RunShellScript".to_owned(),
            version: "$DEFAULT".to_owned(),
        },
        parameters: BTreeMap::from([("commands".to_owned(), vec!["echo hi".to_owned()])]),
        timeout_s: 60,
    };
    let command_id = aws.send(&request).await.expect("send");
    assert!(!command_id.is_empty());

    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let r = aws.result(&command_id, &instance).await.expect("result");
        if r.status.is_terminal() {
            break r;
        }
        assert!(Instant::now() < deadline, "the command never ended: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // moto runs nothing: every invocation is `Success` at once, response code 0 and no output
    // (so no "hi"). Failures, timeouts and undeliverable commands are covered by
    // tests/mocks_services.rs.
    assert_eq!(
        result,
        CommandResult {
            command_id: command_id.clone(),
            status: CommandStatus::Success,
            stdout: String::new(),
            stderr: String::new(),
            exit_code: Some(0),
        }
    );
}

// ---- DynamoDB ------------------------------------------------------------------------------

/// Settings naming three fresh tables, created as the CDK stack creates them
/// (`cdk/lib/autoheal.ts`): a string partition key, on-demand billing, TTL on `expires_at`, and
/// on the incidents table the GSI `InstanceId-Timestamp` (`instance_id` S + `detected_at` S,
/// projection ALL). The names are the stack's, written out here so that a drift of the adapter
/// from the stack fails.
async fn tables(aws: &Aws, prefix: &str) -> Settings {
    let name = unique(prefix);
    let s = Settings {
        incidents_table: format!("{name}-incidents"),
        leases_table: format!("{name}-leases"),
        incidents_index: "InstanceId-Timestamp".to_owned(),
        policy_table: format!("{name}-policies"),
        ..settings()
    };
    let ddb = &aws.ddb;
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("an attribute definition")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("a key schema element")
    };
    ddb.create_table()
        .table_name(&s.incidents_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("incident_id"))
        .attribute_definitions(attribute("instance_id"))
        .attribute_definitions(attribute("detected_at"))
        .key_schema(key("incident_id", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("InstanceId-Timestamp")
                .key_schema(key("instance_id", KeyType::Hash))
                .key_schema(key("detected_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("a GSI"),
        )
        .send()
        .await
        .expect("CreateTable (incidents)");
    for table in [&s.leases_table, &s.policy_table] {
        ddb.create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("instance_id"))
            .key_schema(key("instance_id", KeyType::Hash))
            .send()
            .await
            .expect("CreateTable (leases, policies)");
    }
    for table in [&s.incidents_table, &s.leases_table, &s.policy_table] {
        ddb.update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .expect("a TTL specification"),
            )
            .send()
            .await
            .expect("UpdateTimeToLive");
    }
    s
}

/// An `Aws` over three fresh tables.
async fn store(prefix: &str) -> Aws {
    let conf = sdk_config().await;
    let bare = Aws::from_conf(&conf, settings());
    let s = tables(&bare, prefix).await;
    Aws::from_conf(&conf, s)
}

fn assert_lease_held(err: PortError, lease: &Lease) {
    match err {
        PortError::LeaseHeld {
            instance,
            holder,
            expires_at,
        } => assert_eq!(
            (instance, holder, expires_at),
            (
                lease.instance.to_string(),
                lease.holder.to_string(),
                lease.expires_at.to_string()
            )
        ),
        other => panic!("expected LeaseHeld by {}, got {other:?}", lease.holder),
    }
}

#[tokio::test]
async fn leases_are_exclusive_released_and_taken_over_once_expired() {
    let aws = store("leases").await;
    let now = aws.now();
    let instance = instance_id("i-0000000a");
    let (a, b) = (incident_id("lease-a"), incident_id("lease-b"));

    // Two holders at once: exactly one conditional put wins. (DynamoDB makes the put atomic;
    // moto runs the check and the write without a lock, in threads under the GIL, and never
    // interleaved them in 300 tries of this race with boto3.)
    let (ra, rb) = tokio::join!(
        aws.acquire_lease(&instance, &a, now, 300),
        aws.acquire_lease(&instance, &b, now, 300)
    );
    let (lease, winner, loser, refusal) = match (ra, rb) {
        (Ok(l), Err(e)) => (l, a.clone(), b.clone(), e),
        (Err(e), Ok(l)) => (l, b.clone(), a.clone(), e),
        other => panic!("exactly one of two concurrent acquisitions must win: {other:?}"),
    };
    assert_eq!(
        lease,
        Lease {
            instance: instance.clone(),
            holder: winner.clone(),
            expires_at: now.plus_secs(300),
        }
    );
    assert_lease_held(refusal, &lease);

    // Still held: refused again; the holder itself re-acquires, which extends the lease.
    assert_lease_held(
        aws.acquire_lease(&instance, &loser, now, 300)
            .await
            .expect_err("the lease is held"),
        &lease,
    );
    let extended = aws
        .acquire_lease(&instance, &winner, now, 600)
        .await
        .expect("the holder re-acquires");
    assert_eq!(extended.expires_at, now.plus_secs(600));
    assert_eq!(
        aws.active_leases(std::slice::from_ref(&instance), now)
            .await
            .expect("active_leases"),
        vec![extended.clone()]
    );

    // Only the holder releases; then the other one acquires.
    aws.release_lease(&instance, &loser)
        .await
        .expect("releasing someone else's lease is a no-op");
    assert_eq!(
        aws.active_leases(std::slice::from_ref(&instance), now)
            .await
            .expect("active_leases"),
        vec![extended]
    );
    aws.release_lease(&instance, &winner)
        .await
        .expect("release_lease");
    assert!(
        aws.active_leases(std::slice::from_ref(&instance), now)
            .await
            .expect("active_leases")
            .is_empty()
    );
    let taken = aws
        .acquire_lease(&instance, &loser, now, 300)
        .await
        .expect("the loser acquires once the winner released");
    assert_eq!(taken.holder, loser);

    // An expired lease (taken long ago with a short TTL) is taken over by another holder.
    let other = instance_id("i-0000000b");
    let stale = aws
        .acquire_lease(
            &other,
            &incident_id("lease-old"),
            now.minus_secs(10_000),
            60,
        )
        .await
        .expect("a lease taken in the past");
    assert!(stale.expires_at < now);
    assert!(
        aws.active_leases(std::slice::from_ref(&other), now)
            .await
            .expect("active_leases")
            .is_empty(),
        "an expired lease is not active"
    );
    let fresh = aws
        .acquire_lease(&other, &incident_id("lease-new"), now, 300)
        .await
        .expect("an expired lease is taken over");
    assert_eq!(fresh.holder, incident_id("lease-new"));
    assert_eq!(
        aws.active_leases(&[instance.clone(), other.clone()], now)
            .await
            .expect("active_leases"),
        vec![taken, fresh]
    );
}

#[tokio::test]
async fn incidents_and_history_are_stored_and_queried_through_the_index() {
    let aws = store("incidents").await;
    let now = aws.now();
    let instance = instance_id("i-0000000c");
    let neighbour = instance_id("i-0000000d");
    let incident = record("web-inc-1", &instance, now.minus_secs(120));
    let other = record("web-inc-2", &neighbour, now.minus_secs(60));
    aws.put_incident(&incident).await.expect("put_incident");
    aws.put_incident(&other).await.expect("put_incident");
    let heal = HealRecord {
        instance: instance.clone(),
        action: Action::RestartService,
        started_at: now.minus_secs(90),
        outcome: HealOutcome::Healed,
        incident: Some(incident.incident.id.clone()),
    };
    // Twice, as a retried Lambda would: stored once.
    aws.record_heal(&heal).await.expect("record_heal");
    aws.record_heal(&heal).await.expect("record_heal again");
    let transition = Transition {
        instance: instance.clone(),
        at: now.minus_secs(100),
        from: HealthState::Healthy,
        to: HealthState::Unhealthy,
    };
    aws.record_transition(&transition)
        .await
        .expect("record_transition");

    // By instance: one Query of the GSI; the heal and the transition of the same instance are
    // not incidents.
    let of_instance = |since: Option<Timestamp>| IncidentQuery {
        instance: Some(instance.clone()),
        since,
        limit: None,
    };
    assert_eq!(
        aws.list_incidents(&of_instance(None))
            .await
            .expect("list_incidents by instance"),
        vec![incident.clone()]
    );
    assert_eq!(
        aws.list_incidents(&of_instance(Some(now.minus_secs(120))))
            .await
            .expect("list_incidents since its detection"),
        vec![incident.clone()]
    );
    assert!(
        aws.list_incidents(&of_instance(Some(now.minus_secs(119))))
            .await
            .expect("list_incidents since after its detection")
            .is_empty()
    );
    // Every instance: a Scan, in incident-id order.
    assert_eq!(
        aws.list_incidents(&IncidentQuery::default())
            .await
            .expect("list_incidents"),
        vec![incident.clone(), other.clone()]
    );
    assert_eq!(
        aws.get_incident(&incident.incident.id)
            .await
            .expect("get_incident"),
        Some(incident.clone())
    );
    assert_eq!(
        aws.get_incident(&incident_id("web-inc-missing"))
            .await
            .expect("get_incident of an unknown id"),
        None
    );

    // History through the same index.
    assert_eq!(
        aws.history(&instance, now.minus_secs(3600))
            .await
            .expect("history"),
        History {
            heals: vec![heal.clone()],
            transitions: vec![transition],
        }
    );
    assert_eq!(
        aws.history(&instance, now.minus_secs(95))
            .await
            .expect("history since after the transition"),
        History {
            heals: vec![heal],
            transitions: vec![],
        }
    );
    assert_eq!(
        aws.history(&neighbour, now.minus_secs(3600))
            .await
            .expect("history of the neighbour"),
        History::default()
    );

    // Records carry the stack's TTL attribute: the write's time + AUTOHEAL_RECORD_TTL_DAYS.
    let item = aws
        .ddb
        .get_item()
        .table_name(&aws.settings.incidents_table)
        .key("incident_id", AttributeValue::S("web-inc-1".to_owned()))
        .send()
        .await
        .expect("GetItem");
    let expires_at: i64 = item
        .item()
        .and_then(|i| i.get("expires_at"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("a numeric expires_at");
    let ttl = now.plus_secs(90 * 86_400).secs();
    assert!(
        (ttl..=ttl + 60).contains(&expires_at),
        "expires_at {expires_at}, expected {ttl}"
    );
}

#[tokio::test]
async fn instance_policies_are_read_from_the_policies_table() {
    let aws = store("policies").await;
    let with_policy = instance_id("i-0000000e");
    aws.ddb
        .put_item()
        .table_name(&aws.settings.policy_table)
        .item("instance_id", AttributeValue::S(with_policy.to_string()))
        .item(
            "policy",
            AttributeValue::S(
                r#"{"allowed_actions": ["restart_service", "reboot"], "cooldown_s": 1800}"#
                    .to_owned(),
            ),
        )
        .send()
        .await
        .expect("PutItem (policy)");
    assert_eq!(
        aws.instance_policy(&with_policy)
            .await
            .expect("instance_policy"),
        Some(InstancePolicy {
            skip: false,
            cooldown_s: Some(1800),
            allowed_actions: Some(BTreeSet::from([Action::RestartService, Action::Reboot])),
            services: None,
        })
    );
    assert_eq!(
        aws.instance_policy(&instance_id("i-0000000f"))
            .await
            .expect("instance_policy of an instance without one"),
        None
    );
}

// ---- SNS -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_notification_reaches_an_sqs_subscriber_with_its_subject_and_attributes() {
    let conf = sdk_config().await;
    let name = unique("autoheal-notify");
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let sns = aws_sdk_sns::Client::new(&conf);
    let topic = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn()
        .expect("a topic ARN")
        .to_owned();
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("a queue URL")
        .to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes");
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("the queue ARN")
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "false")
        .return_subscription_arn(true)
        .send()
        .await
        .expect("Subscribe");

    let aws = Aws::from_conf(
        &conf,
        Settings {
            topic_arn: topic.clone(),
            ..settings()
        },
    );
    let now = aws.now();
    let notification = Notification {
        subject: "autoheal: web — 2 targets\nhealed".to_owned(),
        severity: Severity::Critical,
        target_group: tg(),
        incidents: vec![record("web-notify-1", &instance_id("i-00000010"), now)],
        held_back: vec!["i-00000011: fleet safety (1 of 2 healthy)".to_owned()],
        execution_url: Some("https://console.aws.amazon.com/states/home".to_owned()),
        approval_token: None,
    };
    aws.notify(&notification).await.expect("notify");

    let mut bodies = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        bodies.extend(
            out.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
        if !bodies.is_empty() {
            break;
        }
    }
    assert_eq!(bodies.len(), 1, "one message: {bodies:?}");

    // Not raw: the SNS envelope, with the subject made acceptable to SNS.
    let envelope: serde_json::Value =
        serde_json::from_str(&bodies[0]).expect("the SNS envelope is JSON");
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], topic.as_str());
    assert_eq!(envelope["Subject"], "autoheal: web ? 2 targets healed");
    let message = envelope["Message"].as_str().expect("a string Message");
    let back: Notification =
        serde_json::from_str(message).expect("the message is the notification as JSON");
    assert_eq!(back, notification);
    assert_eq!(
        envelope["MessageAttributes"],
        json!({
            "severity": {"Type": "String", "Value": "critical"},
            "target_group": {"Type": "String", "Value": TG},
            "incidents": {"Type": "Number", "Value": "1"},
            // What filter policies select on: String.Array values arrive as JSON arrays.
            "action": {"Type": "String.Array", "Value": "[\"none\"]"},
            "outcome": {"Type": "String.Array", "Value": "[\"held\",\"open\"]"},
        })
    );
}

// ---- Step Functions --------------------------------------------------------------------------

#[tokio::test]
async fn an_execution_started_twice_under_one_name_is_not_duplicated() {
    let conf = sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&conf);
    let machine = unique("autoheal");
    let definition = json!({
        "StartAt": "Done",
        "States": {"Done": {"Type": "Pass", "End": true}},
    });
    let state_machine = sfn
        .create_state_machine()
        .name(&machine)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/sfn")
        .send()
        .await
        .expect("CreateStateMachine")
        .state_machine_arn()
        .to_owned();
    let aws = Aws::from_conf(
        &conf,
        Settings {
            state_machine_arn: state_machine.clone(),
            ..settings()
        },
    );
    let name = incident_id("web-i-0123abcd-1732492800");
    let execution_arn = format!(
        "arn:aws:states:us-east-1:123456789012:execution:{machine}:{}",
        name.as_str()
    );
    let input = |source: &str| {
        json!({
            "scope": {"target_group_arn": TG},
            "trigger": {"source": source, "at": "2026-11-24T21:00:00Z"},
        })
    };

    let first = aws
        .start_execution(&name, &input("alarm"))
        .await
        .expect("start_execution");
    assert_eq!(
        first,
        StartOutcome::Started {
            execution_arn: execution_arn.clone()
        }
    );

    // The same name and input while it runs: Step Functions (and moto) answer the running
    // execution itself, which the adapter reports as `Started` (sfn.rs). The port's invariant
    // is that nothing is duplicated and the answer names that execution, whichever variant.
    match aws
        .start_execution(&name, &input("alarm"))
        .await
        .expect("start_execution again")
    {
        StartOutcome::Started { execution_arn: arn }
        | StartOutcome::AlreadyRunning { execution_arn: arn } => assert_eq!(arn, execution_arn),
    }

    // The same name with another input (the schedule after the alarm): ExecutionAlreadyExists,
    // which the adapter answers with the existing execution.
    assert_eq!(
        aws.start_execution(&name, &input("schedule"))
            .await
            .expect("start_execution with another input"),
        StartOutcome::AlreadyRunning {
            execution_arn: execution_arn.clone()
        }
    );

    let listed = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .send()
        .await
        .expect("ListExecutions");
    let arns: Vec<&str> = listed
        .executions()
        .iter()
        .map(|e| e.execution_arn())
        .collect();
    assert_eq!(arns, vec![execution_arn.as_str()]);
}
