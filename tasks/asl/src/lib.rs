//! autoheal-asl: a local Amazon States Language runner, the Step Functions Local equivalent of
//! this project. Point it at any state machine that uses the JSONPath query language:
//!
//! - [`definition`]: parsing, with errors that name the state and field;
//! - [`validate`]: static checks (transitions, reachability, Retry/Catch order, paths);
//! - [`runner`]: the interpreter, with Retry/Catch, Map/Parallel, task tokens, timeouts, a
//!   virtual clock, and the execution history as Step Functions event types;
//! - [`resources`]: where Task states get results (mock configs, in-process handlers);
//! - [`path`], [`intrinsics`], [`choice`]: JSONPath, intrinsic functions, Choice rules.

pub mod choice;
pub mod definition;
pub mod error;
pub mod graph;
pub mod history;
pub mod intrinsics;
pub mod path;
pub mod resources;
pub mod runner;
pub mod validate;

pub use definition::{DefinitionError, StateMachine};
pub use error::StatesError;
pub use history::Event;
pub use resources::{MockConfig, MockResources, TaskCall, TaskOutput, TaskResources};
pub use runner::{Execution, RunOptions, Runner, Status, TaskTokens};

/// Which clock an execution runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Waits, backoffs and timeouts advance virtual time and take no real time.
    Virtual,
    /// Waits and backoffs take the time they say (runs against real services).
    RealTime,
}

/// Runs one execution to its end on a fresh single-threaded runtime with the given clock.
pub fn run_blocking<R: TaskResources>(
    sm: &StateMachine,
    resources: &R,
    input: serde_json::Value,
    opts: RunOptions,
    clock: Clock,
) -> Result<Execution, std::io::Error> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(clock == Clock::Virtual);
    let rt = builder.build()?;
    Ok(rt.block_on(Runner::new(sm, resources, opts).run(input)))
}

/// [`run_blocking`] on the virtual clock.
pub fn run_virtual<R: TaskResources>(
    sm: &StateMachine,
    resources: &R,
    input: serde_json::Value,
    opts: RunOptions,
) -> Result<Execution, std::io::Error> {
    run_blocking(sm, resources, input, opts, Clock::Virtual)
}

/// Replaces `${Name}` placeholders in a definition's text (as CDK's `definitionSubstitutions`
/// do). Unknown placeholders are left as they are.
pub fn substitute(text: &str, values: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    out
}
