//! The errors a task reports to Step Functions: a stable name (`autoheal_core::ERROR_NAMES`)
//! and a cause. Port errors keep their own names (`Throttled`, `LeaseHeld`, ...).

use autoheal_core::PortError;

/// A task failure as Step Functions sees it.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {cause}")]
pub struct TaskError {
    /// One of `autoheal_core::ERROR_NAMES`.
    pub name: &'static str,
    pub cause: String,
    #[source]
    pub source: Option<PortError>,
}

impl TaskError {
    pub fn new(name: &'static str, cause: impl Into<String>) -> Self {
        Self {
            name,
            cause: cause.into(),
            source: None,
        }
    }

    /// The task's input is not what the state machine sends.
    pub fn invalid_input(cause: impl Into<String>) -> Self {
        Self::new("InvalidInput", cause)
    }

    /// The heal action itself failed (the state machine records it and climbs the ladder).
    pub fn heal_failed(cause: impl Into<String>) -> Self {
        Self::new("HealFailed", cause)
    }
}

impl From<PortError> for TaskError {
    fn from(e: PortError) -> Self {
        Self {
            name: e.error_name(),
            cause: e.to_string(),
            source: Some(e),
        }
    }
}

impl From<TaskError> for autoheal_asl::StatesError {
    fn from(e: TaskError) -> Self {
        autoheal_asl::StatesError::new(e.name, e.cause)
    }
}
