//! The handlers as Task resources of the local runner: the same functions the Lambda binaries
//! wrap, called in-process.

use std::collections::BTreeMap;

use autoheal_asl::{StatesError, TaskCall, TaskOutput, TaskResources};
use serde_json::Value;

use crate::{Config, TaskError, World, handlers};

/// The placeholders of `statemachine/autoheal.asl.json` and the function each names.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("DetectFunctionArn", "detect"),
    ("LeaseFunctionArn", "lease"),
    ("DiagnoseFunctionArn", "diagnose"),
    ("DecideFunctionArn", "decide"),
    ("DrainFunctionArn", "drain"),
    ("RestartServiceFunctionArn", "restart_service"),
    ("CleanupFunctionArn", "cleanup"),
    ("RebootFunctionArn", "reboot"),
    ("ReplaceFunctionArn", "replace"),
    ("QuarantineFunctionArn", "quarantine"),
    ("VerifyFunctionArn", "verify"),
    ("RestoreFunctionArn", "restore"),
    ("RecordFunctionArn", "record"),
    ("NotifyFunctionArn", "notify"),
];

/// The `definitionSubstitutions` for a local run: each placeholder becomes a Lambda ARN whose
/// function name is the handler's (`…:function:autoheal-detect`), which [`InProcess`] dispatches on.
pub fn substitutions() -> BTreeMap<String, String> {
    FUNCTIONS
        .iter()
        .map(|(p, f)| {
            (
                (*p).to_owned(),
                format!("arn:aws:lambda:us-east-1:123456789012:function:autoheal-{f}"),
            )
        })
        .collect()
}

/// The handlers of a world, as Task resources.
pub struct InProcess<'w, W: World> {
    pub world: &'w W,
    pub config: Config,
}

impl<'w, W: World> InProcess<'w, W> {
    pub fn new(world: &'w W, config: Config) -> Self {
        Self { world, config }
    }

    /// Runs the handler called `function` on `input`.
    pub async fn call(&self, function: &str, input: Value) -> Result<Value, TaskError> {
        dispatch(self.world, &self.config, function, input).await
    }
}

/// Runs the handler of the task called `function` (`detect`, `diagnose`, …) on `input`: what the
/// local runner, `autoheal invoke` and the activity workers call.
pub async fn dispatch(
    w: &impl World,
    c: &Config,
    function: &str,
    input: Value,
) -> Result<Value, TaskError> {
    {
        match function {
            "detect" => handlers::detect(w, c, input).await,
            "lease" => handlers::lease(w, c, input).await,
            "diagnose" => handlers::diagnose(w, c, input).await,
            "decide" => handlers::decide(w, c, input).await,
            "drain" => handlers::drain(w, c, input).await,
            "restart_service" => handlers::restart_service(w, c, input).await,
            "cleanup" => handlers::cleanup(w, c, input).await,
            "reboot" => handlers::reboot(w, c, input).await,
            "replace" => handlers::replace(w, c, input).await,
            "quarantine" => handlers::quarantine(w, c, input).await,
            "verify" => handlers::verify(w, c, input).await,
            "restore" => handlers::restore(w, c, input).await,
            "record" => handlers::record(w, c, input).await,
            "notify" => handlers::notify(w, c, input).await,
            other => Err(TaskError::invalid_input(format!(
                "no handler is called {other:?}"
            ))),
        }
    }
}

/// `arn:…:function:autoheal-detect` → `detect`.
fn function_of(arn: &str) -> Option<&str> {
    arn.rsplit(':')
        .next()
        .and_then(|f| f.strip_prefix("autoheal-"))
}

impl<W: World> TaskResources for InProcess<'_, W> {
    async fn invoke(&self, call: TaskCall) -> Result<TaskOutput, StatesError> {
        // The service integration `arn:aws:states:::lambda:invoke[.waitForTaskToken]` carries
        // the function and its payload in the parameters; a plain Lambda ARN takes the input.
        if let Some(pattern) = call.resource.strip_prefix("arn:aws:states:::lambda:invoke") {
            let function = call
                .input
                .get("FunctionName")
                .and_then(Value::as_str)
                .and_then(function_of)
                .ok_or_else(|| {
                    StatesError::runtime(format!(
                        "state {:?}: FunctionName is not an autoheal function",
                        call.state
                    ))
                })?;
            let payload = call.input.get("Payload").cloned().unwrap_or(Value::Null);
            let out = self.call(function, payload).await?;
            return Ok(if pattern == ".waitForTaskToken" {
                TaskOutput::AwaitCallback
            } else {
                TaskOutput::Done(serde_json::json!({"Payload": out}))
            });
        }
        let function = function_of(&call.resource).ok_or_else(|| {
            StatesError::runtime(format!(
                "state {:?}: {} is not an autoheal function",
                call.state, call.resource
            ))
        })?;
        Ok(TaskOutput::Done(self.call(function, call.input).await?))
    }
}
