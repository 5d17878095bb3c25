//! Errors with stable names. Every error that crosses into Step Functions carries one of
//! [`ERROR_NAMES`] as its `error_type`, and the state machine's `ErrorEquals` use the same
//! strings (a test in the state-machine suite checks both sets agree).

/// A boxed cause, kept (never stringified) so retryability stays inspectable.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every stable error name a task can produce.
pub const ERROR_NAMES: &[&str] = &[
    "Throttled",
    "AwsServiceError",
    "TargetNotFound",
    "InstanceNotFound",
    "LeaseHeld",
    "InvalidInput",
    "DiagnosticsUnavailable",
    "DiagnosticsInvalid",
    "HealFailed",
    "VerificationFailed",
    "ApprovalDenied",
];

/// A failure of a port (an AWS API in production, the simulator locally).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Rate limiting (ThrottlingException, RequestLimitExceeded, ...): retry with backoff.
    #[error("{service} throttled the request: {message}")]
    Throttled {
        service: &'static str,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A 5xx or transport failure of the service: retryable.
    #[error("{service} failed: {message}")]
    Service {
        service: &'static str,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("target {target} is not registered in {target_group}")]
    TargetNotFound {
        target_group: String,
        target: String,
    },
    #[error("instance {0} does not exist")]
    InstanceNotFound(String),
    /// Another incident holds the instance's lease (one incident per target).
    #[error("instance {instance} is leased by {holder} until {expires_at}")]
    LeaseHeld {
        instance: String,
        holder: String,
        expires_at: String,
    },
    /// The request itself is wrong (a bug or bad input): not retryable.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl PortError {
    /// The stable name Step Functions sees.
    pub fn error_name(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "Throttled",
            Self::Service { .. } => "AwsServiceError",
            Self::TargetNotFound { .. } => "TargetNotFound",
            Self::InstanceNotFound(_) => "InstanceNotFound",
            Self::LeaseHeld { .. } => "LeaseHeld",
            Self::InvalidRequest(_) => "InvalidInput",
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Service { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_error_name_is_a_published_name() {
        let errors = [
            PortError::Throttled {
                service: "elbv2",
                message: "slow down".into(),
                source: None,
            },
            PortError::Service {
                service: "ec2",
                message: "503".into(),
                source: None,
            },
            PortError::TargetNotFound {
                target_group: "tg".into(),
                target: "i-1".into(),
            },
            PortError::InstanceNotFound("i-1".into()),
            PortError::LeaseHeld {
                instance: "i-1".into(),
                holder: "inc".into(),
                expires_at: "t".into(),
            },
            PortError::InvalidRequest("bad".into()),
        ];
        for e in &errors {
            assert!(ERROR_NAMES.contains(&e.error_name()), "{}", e.error_name());
        }
        assert!(errors[0].is_retryable() && errors[1].is_retryable() && !errors[4].is_retryable());
    }

    #[test]
    fn causes_are_kept_as_sources() {
        let io = std::io::Error::other("connection reset");
        let e = PortError::Service {
            service: "ssm",
            message: "transport".into(),
            source: Some(Box::new(io)),
        };
        let src = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(src.as_deref(), Some("connection reset"));
    }
}
