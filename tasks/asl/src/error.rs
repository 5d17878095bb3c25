//! Errors as Step Functions names them.

use serde::{Deserialize, Serialize};

/// A failure with a Step Functions error name (`States.Runtime`, `States.TaskFailed`, a task's
/// own `error_type`, ...) and a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct StatesError {
    pub error: String,
    pub cause: String,
}

impl StatesError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// `States.Runtime`: a path that does not resolve, a type mismatch, an oversized payload.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new("States.Runtime", cause)
    }

    /// `States.IntrinsicFailure`: an intrinsic function failed.
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new("States.IntrinsicFailure", cause)
    }

    /// `States.Timeout`.
    pub fn timeout(cause: impl Into<String>) -> Self {
        Self::new("States.Timeout", cause)
    }
}
