//! Bounds the state machine relies on to stay far below Step Functions' 25,000-event history
//! limit (the worst case is tested in `tests/tests/statemachine.rs`).

/// Targets one execution heals at most; Detect defers the rest to the next execution.
pub const MAX_CANDIDATES_PER_EXECUTION: usize = 20;
/// Verification checks per heal at most (`max_attempts` returned by the Verify task).
pub const MAX_VERIFY_ATTEMPTS: u32 = 10;
/// Escalations per incident at most (the `Escalate?` Choice of the state machine).
pub const MAX_ESCALATIONS: u32 = 3;
