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

/// Runs one execution on a fresh single-threaded runtime with a paused (virtual) clock: Waits,
/// backoffs and timeouts take no real time.
pub fn run_virtual<R: TaskResources>(
    sm: &StateMachine,
    resources: &R,
    input: serde_json::Value,
    opts: RunOptions,
) -> Result<Execution, std::io::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    Ok(rt.block_on(Runner::new(sm, resources, opts).run(input)))
}

/// Runs one execution on a fresh single-threaded runtime in real time: Waits and backoffs take
/// the time they say (for runs against real services, or to watch an execution progress).
pub fn run_real_time<R: TaskResources>(
    sm: &StateMachine,
    resources: &R,
    input: serde_json::Value,
    opts: RunOptions,
) -> Result<Execution, std::io::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    Ok(rt.block_on(Runner::new(sm, resources, opts).run(input)))
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
