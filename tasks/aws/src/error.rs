//! SDK errors → [`PortError`], keeping the SDK error as the source.
//!
//! The rule is the same for every service: an error code of the throttling family becomes
//! `Throttled`; a 5xx, a timeout or a transport failure `AwsServiceError`; the not-found codes
//! each adapter names become `TargetNotFound` / `InstanceNotFound`; everything else (a 4xx: the
//! request is wrong) `InvalidInput`. Conditional-write failures are mapped by the DynamoDB
//! adapter itself (`LeaseHeld`).

use autoheal_core::error::PortError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes AWS services use for rate limiting.
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "Throttled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestThrottled",
    "BandwidthLimitExceeded",
    "LimitExceededException",
];

/// What an adapter knows about the call, for the message and the not-found mapping.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `elasticloadbalancing`, `ec2`, `autoscaling`, `ssm`, `dynamodb`, `sns`, `states`.
    pub service: &'static str,
    /// `DescribeTargetHealth`, ...
    pub operation: &'static str,
    /// Error codes that mean "the instance does not exist" for this call.
    pub instance_missing: &'a [&'a str],
    /// Error codes that mean "the target (group) does not exist" for this call.
    pub target_missing: &'a [&'a str],
    /// The instance or target the call was about, for the message.
    pub subject: &'a str,
    /// The target group of the call, for `TargetNotFound`.
    pub target_group: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(service: &'static str, operation: &'static str) -> Call<'a> {
        Call {
            service,
            operation,
            instance_missing: &[],
            target_missing: &[],
            subject: "",
            target_group: "",
        }
    }

    pub fn instance(mut self, id: &'a str, missing: &'a [&'a str]) -> Call<'a> {
        self.subject = id;
        self.instance_missing = missing;
        self
    }

    pub fn target(
        mut self,
        target_group: &'a str,
        target: &'a str,
        missing: &'a [&'a str],
    ) -> Call<'a> {
        self.target_group = target_group;
        self.subject = target;
        self.target_missing = missing;
        self
    }
}

/// Maps any SDK error of `call`.
pub fn map<E>(call: Call<'_>, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    classify(
        call,
        code.as_deref(),
        message.as_deref(),
        status,
        Box::new(err),
    )
}

/// The mapping, on the parts of an error (also used by tests).
pub fn classify(
    call: Call<'_>,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    source: autoheal_core::error::BoxError,
) -> PortError {
    let text = format!(
        "{} {}: {}",
        call.operation,
        code.unwrap_or("error"),
        message.unwrap_or("no message")
    );
    match code {
        Some(c) if THROTTLING_CODES.contains(&c) => PortError::Throttled {
            service: call.service,
            message: text,
            source: Some(source),
        },
        Some(c) if call.instance_missing.contains(&c) => {
            PortError::InstanceNotFound(call.subject.to_owned())
        }
        Some(c) if call.target_missing.contains(&c) => PortError::TargetNotFound {
            target_group: call.target_group.to_owned(),
            target: call.subject.to_owned(),
        },
        Some(_) if status.is_some_and(|s| s < 500) => PortError::InvalidRequest(text),
        // No code: a timeout, a dispatch or a response failure; or a 5xx.
        _ => PortError::Service {
            service: call.service,
            message: text,
            source: Some(source),
        },
    }
}

/// A required field the service left out of its response.
pub fn missing(call: Call<'_>, field: &str) -> PortError {
    PortError::Service {
        service: call.service,
        message: format!("{} returned no {field}", call.operation),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> autoheal_core::error::BoxError {
        "x".into()
    }

    #[test]
    fn throttling_codes_become_throttled_whatever_the_status() {
        let c = Call::new("ec2", "DescribeInstances");
        let e = classify(
            c,
            Some("RequestLimitExceeded"),
            Some("slow down"),
            Some(503),
            src(),
        );
        assert_eq!(e.error_name(), "Throttled");
        assert!(e.is_retryable());
    }

    #[test]
    fn named_not_found_codes_become_not_found() {
        let missing = ["InvalidInstanceID.NotFound"];
        let c = Call::new("ec2", "RebootInstances").instance("i-0abc", &missing);
        let e = classify(
            c,
            Some("InvalidInstanceID.NotFound"),
            None,
            Some(400),
            src(),
        );
        assert_eq!(e.error_name(), "InstanceNotFound");
        let t = ["TargetGroupNotFound"];
        let c = Call::new("elasticloadbalancing", "DescribeTargetHealth").target("arn:tg", "", &t);
        let e = classify(c, Some("TargetGroupNotFound"), None, Some(400), src());
        assert_eq!(e.error_name(), "TargetNotFound");
    }

    #[test]
    fn other_client_errors_are_invalid_and_5xx_and_transport_are_service_errors() {
        let c = Call::new("ssm", "SendCommand");
        assert_eq!(
            classify(c, Some("InvalidParameters"), None, Some(400), src()).error_name(),
            "InvalidInput"
        );
        assert_eq!(
            classify(c, Some("InternalServerError"), None, Some(500), src()).error_name(),
            "AwsServiceError"
        );
        assert_eq!(
            classify(c, None, None, None, src()).error_name(),
            "AwsServiceError"
        );
    }
}
