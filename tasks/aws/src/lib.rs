//! autoheal-aws: every port of `autoheal-core` over the AWS SDK for Rust. The only crate of the
//! workspace that links the SDK (DESIGN.md §1, §9).
//!
//! One [`Aws`] holds one client per service, all built from one `SdkConfig` at init
//! ([`Aws::from_env`]): region and credentials from the standard chain, the endpoint overridable
//! the standard way (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), and adaptive retries for
//! throttling. Each module implements the ports of one service:
//!
//! | module | service | ports |
//! |---|---|---|
//! | [`elb`] | Elastic Load Balancing v2 | `TargetGroupCatalog`, `TargetHealthSource`, `TargetRegistry` |
//! | [`ec2`] | EC2 | `InstanceInventory`, `InstanceControl` |
//! | [`asg`] | Auto Scaling | `FleetControl` |
//! | [`ssm`] | Systems Manager | `CommandRunner` |
//! | [`ddb`] | DynamoDB | `IncidentStore` |
//! | [`sns`] | SNS | `Notifier` |
//! | [`sfn`] | Step Functions | `ExecutionStarter` |
//!
//! SDK errors keep their source and map to the stable names of `autoheal_core::error`
//! ([`error`]): throttling → `Throttled`, 5xx and transport → `AwsServiceError`, not-found →
//! `TargetNotFound` / `InstanceNotFound`, a failed conditional write → `LeaseHeld`.

use autoheal_core::Timestamp;
use autoheal_core::ports::{Clock, SystemClock};

pub mod asg;
pub mod ddb;
pub mod ec2;
pub mod elb;
pub mod error;
pub mod operate;
pub mod sfn;
pub mod sns;
pub mod ssm;
pub mod webhook;

/// Names of the resources autoheal uses, from the Lambda environment (cdk/README.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `AUTOHEAL_INCIDENTS_TABLE`: incidents, heal attempts and health transitions (key
    /// `incident_id`; GSI `instance_id` + `detected_at`; TTL `expires_at`): see [`ddb`].
    pub incidents_table: String,
    /// `AUTOHEAL_LEASES_TABLE`: one item per instance (key `instance_id`), written conditionally.
    pub leases_table: String,
    /// `AUTOHEAL_INCIDENTS_INDEX`: the incidents table's GSI by instance and time.
    pub incidents_index: String,
    /// `AUTOHEAL_POLICIES_TABLE`: instance policies (key `instance_id`, the policy's JSON in
    /// `policy`).
    pub policy_table: String,
    /// `AUTOHEAL_TOPIC_ARN`: the SNS topic notifications go to.
    pub topic_arn: String,
    /// `AUTOHEAL_STATE_MACHINE_ARN`: what the trigger starts.
    pub state_machine_arn: String,
    /// `AUTOHEAL_RECORD_TTL_DAYS`: how long incidents and history stay (DynamoDB TTL).
    pub record_ttl_days: u32,
}

impl Settings {
    /// Reads the settings from the environment; a missing variable is an empty name (the port
    /// that needs it fails with an error naming the variable).
    pub fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Settings {
            incidents_table: var("AUTOHEAL_INCIDENTS_TABLE"),
            leases_table: var("AUTOHEAL_LEASES_TABLE"),
            incidents_index: var("AUTOHEAL_INCIDENTS_INDEX"),
            policy_table: var("AUTOHEAL_POLICIES_TABLE"),
            topic_arn: var("AUTOHEAL_TOPIC_ARN"),
            state_machine_arn: var("AUTOHEAL_STATE_MACHINE_ARN"),
            record_ttl_days: var("AUTOHEAL_RECORD_TTL_DAYS").parse().unwrap_or(90),
        }
    }

    /// The name in `value`, or an error that names the environment variable to set.
    pub fn require<'a>(
        value: &'a str,
        variable: &str,
    ) -> Result<&'a str, autoheal_core::error::PortError> {
        if value.is_empty() {
            Err(autoheal_core::error::PortError::InvalidRequest(format!(
                "{variable} is not set: the CDK stack sets it on every function (cdk/README.md)"
            )))
        } else {
            Ok(value)
        }
    }
}

/// One client per service, built from one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Aws {
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub settings: Settings,
    /// Slack and Teams, when configured and loaded ([`Aws::load_webhooks`]).
    pub webhooks: Option<std::sync::Arc<webhook::Channels>>,
}

impl Aws {
    /// Every client from one `SdkConfig`, with adaptive retries (throttling backs off).
    pub fn from_conf(conf: &aws_config::SdkConfig, settings: Settings) -> Aws {
        Aws {
            elb: aws_sdk_elasticloadbalancingv2::Client::new(conf),
            ec2: aws_sdk_ec2::Client::new(conf),
            asg: aws_sdk_autoscaling::Client::new(conf),
            ssm: aws_sdk_ssm::Client::new(conf),
            ddb: aws_sdk_dynamodb::Client::new(conf),
            sns: aws_sdk_sns::Client::new(conf),
            sfn: aws_sdk_sfn::Client::new(conf),
            settings,
            webhooks: None,
        }
    }

    /// The standard chain (region, credentials, `AWS_ENDPOINT_URL*`), adaptive retries with up
    /// to 5 attempts, and the settings from the environment.
    pub async fn from_env() -> Aws {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(5))
            .load()
            .await;
        Aws::from_conf(&conf, Settings::from_env())
    }
}

impl Aws {
    /// Reads the Slack and Teams webhook URLs the environment points at (only the notify
    /// function may): the channels that load, and an error line per channel that does not (the
    /// others still get their notifications).
    pub async fn load_webhooks(mut self) -> (Aws, Vec<String>) {
        let mut channels = Vec::new();
        let mut errors = Vec::new();
        for channel in ["slack", "teams"] {
            if let Some(source) = webhook::WebhookSource::from_env(channel) {
                match webhook::read_url(&self, channel, &source).await {
                    Ok(url) => channels.push((channel.to_owned(), url)),
                    Err(e) => errors.push(format!(
                        "{channel} notifications are off: {e} (source {})",
                        source.parameter_name()
                    )),
                }
            }
        }
        if !channels.is_empty() {
            match webhook::Webhooks::new(webhook::Retry::default()) {
                Ok(client) => {
                    self.webhooks =
                        Some(std::sync::Arc::new(webhook::Channels { client, channels }))
                }
                Err(e) => errors.push(format!("Slack and Teams notifications are off: {e}")),
            }
        }
        (self, errors)
    }
}

impl Clock for Aws {
    fn now(&self) -> Timestamp {
        SystemClock.now()
    }
}
