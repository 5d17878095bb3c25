//! autoheal-lambdas: the Lambda side of every task. Each binary in `src/bin/` is one function of
//! the CDK stack (`target/lambda/<name>/bootstrap`) and calls [`serve`] with its task's name, or
//! [`serve_trigger`]. The handler is the same code the local runner calls
//! (`autoheal_handlers::InProcess`), over the AWS adapters (`autoheal_aws::Aws`).
//!
//! - Errors reach Step Functions as the Lambda `errorType` the ASL's `ErrorEquals` match (the
//!   stable names of `autoheal_core::ERROR_NAMES`), with the cause as `errorMessage`.
//! - Every invocation writes one structured JSON log line with the Powertools key names
//!   (`level`, `message`, `timestamp`, `service`, `cold_start`, `function_request_id`,
//!   `xray_trace_id`) and one CloudWatch embedded-metric-format line: the task's duration and
//!   errors, the group's healthy and unhealthy counts (detect), `Actions` by action (decide),
//!   `Incidents` and `MttrSeconds` (record): the names the stack's dashboard charts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use autoheal_aws::Aws;
use autoheal_handlers::trigger::{TriggerConfig, trigger};
use autoheal_handlers::{Config, InProcess, TaskError, World};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// One invocation's work, boxed.
type Invocation =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, Failure>> + Send>>;

/// A task failure as Lambda reports it to Step Functions.
#[derive(Debug)]
pub struct Failure(pub TaskError);

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Diagnostic {
        Diagnostic {
            error_type: f.0.name.to_owned(),
            error_message: f.0.cause,
        }
    }
}

/// Runs one invocation of `task` on `world` and writes its log and metrics lines.
pub async fn handle<W: World>(
    task: &str,
    world: &W,
    config: &Config,
    event: LambdaEvent<Value>,
    cold_start: bool,
) -> Result<Value, Failure> {
    let started = Instant::now();
    let result = InProcess::new(world, config.clone())
        .call(task, event.payload)
        .await;
    report(task, &event.context, cold_start, started, &result);
    result.map_err(Failure)
}

fn report(
    task: &str,
    ctx: &lambda_runtime::Context,
    cold_start: bool,
    started: Instant,
    result: &Result<Value, TaskError>,
) {
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = autoheal_core::ports::SystemClock;
    let now_ms = autoheal_core::ports::Clock::now(&now).secs() * 1000;
    println!(
        "{}",
        log_line(
            task,
            &ctx.request_id,
            ctx.xray_trace_id.as_deref(),
            cold_start,
            ms,
            result
        )
    );
    println!("{}", emf_line(task, now_ms, ms, result));
}

/// The structured log line of one invocation (Powertools key names). Never carries the
/// payload: inputs may hold webhook URLs or task tokens.
pub fn log_line(
    task: &str,
    request_id: &str,
    trace: Option<&str>,
    cold_start: bool,
    duration_ms: u64,
    result: &Result<Value, TaskError>,
) -> Value {
    let (level, message, error) = match result {
        // An event the trigger does not act on is recorded with the reason, never dropped
        // silently (OK / INSUFFICIENT_DATA alarms, other sources).
        Ok(v) if v.get("ignored").is_some() => (
            "INFO",
            format!(
                "{task} ignored the event: {}",
                v.get("ignored").and_then(Value::as_str).unwrap_or_default()
            ),
            Value::Null,
        ),
        Ok(_) => ("INFO", format!("{task} succeeded"), Value::Null),
        Err(e) => (
            "ERROR",
            format!("{task} failed"),
            json!({"name": e.name, "cause": e.cause}),
        ),
    };
    let mut v = json!({
        "level": level,
        "message": message,
        "timestamp": autoheal_core::ports::Clock::now(&autoheal_core::ports::SystemClock).to_rfc3339(),
        "service": "autoheal",
        "task": task,
        "cold_start": cold_start,
        "function_request_id": request_id,
        "duration_ms": duration_ms,
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(t) = trace {
            o.insert("xray_trace_id".into(), json!(t));
        }
        if !error.is_null() {
            o.insert("error".into(), error);
        }
    }
    v
}

/// The CloudWatch embedded-metric-format line of one invocation.
pub fn emf_line(
    task: &str,
    now_ms: i64,
    duration_ms: u64,
    result: &Result<Value, TaskError>,
) -> Value {
    let mut metrics = vec![
        json!({"Name": "TaskDuration", "Unit": "Milliseconds"}),
        json!({"Name": "TaskErrors", "Unit": "Count"}),
    ];
    let mut v = json!({
        "service": "autoheal",
        "task": task,
        "TaskDuration": duration_ms,
        "TaskErrors": u8::from(result.is_err()),
    });
    if let (Ok(out), Some(o)) = (result, v.as_object_mut()) {
        if let Some(c) = out.get("counts") {
            for (metric, field) in [
                ("HealthyTargets", "serving"),
                ("UnhealthyTargets", "failing"),
                ("SlowTargets", "slow"),
            ] {
                o.insert(metric.into(), c.get(field).cloned().unwrap_or(json!(0)));
                metrics.push(json!({"Name": metric, "Unit": "Count"}));
            }
        }
        // The names the stack's dashboard charts (cdk/lib/autoheal.ts).
        if let Some(a) = out.get("action").and_then(Value::as_str) {
            o.insert("action".into(), json!(a));
            o.insert("Actions".into(), json!(1));
            metrics.push(json!({"Name": "Actions", "Unit": "Count"}));
        }
        if task == "record" && out.get("incident_id").is_some() {
            o.insert("Incidents".into(), json!(1));
            metrics.push(json!({"Name": "Incidents", "Unit": "Count"}));
        }
        if let Some(e) = out.get("mttr_s").and_then(Value::as_u64) {
            o.insert("MttrSeconds".into(), json!(e));
            metrics.push(json!({"Name": "MttrSeconds", "Unit": "Seconds"}));
        }
    }
    let dims = if v.get("action").is_some() {
        json!([["service", "task"], ["service", "task", "action"]])
    } else {
        json!([["service", "task"]])
    };
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "_aws".into(),
            json!({"Timestamp": now_ms, "CloudWatchMetrics": [{
                "Namespace": "autoheal", "Dimensions": dims, "Metrics": metrics}]}),
        );
    }
    v
}

/// The Lambda of task `task` (one of `autoheal_handlers`' handlers): clients and settings are
/// built once, at init.
pub async fn serve(task: &'static str) -> Result<(), lambda_runtime::Error> {
    let mut aws = Aws::from_env().await;
    if task == "notify" {
        // Only notify may read the Slack / Teams webhook URLs; a channel that does not load is
        // one error line at init, and the others (SNS included) still work.
        let (loaded, errors) = aws.load_webhooks().await;
        aws = loaded;
        for e in errors {
            eprintln!(
                "{}",
                json!({"level": "ERROR", "message": e, "function_name": task})
            );
        }
    }
    let world = Arc::new(aws);
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let cold = Arc::new(AtomicBool::new(true));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (world, config, cold) = (Arc::clone(&world), config.clone(), Arc::clone(&cold));
        // Boxed: the handlers' futures are deep types, the runtime's need not carry them.
        let fut: Invocation = Box::pin(async move {
            let first = cold.swap(false, Ordering::Relaxed);
            handle(task, &*world, &config, event, first).await
        });
        fut
    }))
    .await
}

/// The trigger's Lambda: EventBridge alarm state changes and schedules → StartExecution.
pub async fn serve_trigger() -> Result<(), lambda_runtime::Error> {
    let world = Arc::new(Aws::from_env().await);
    let config = TriggerConfig::from_env().map_err(|e| e.to_string())?;
    let cold = Arc::new(AtomicBool::new(true));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (world, config, cold) = (Arc::clone(&world), config.clone(), Arc::clone(&cold));
        let fut: Invocation = Box::pin(async move {
            let started = Instant::now();
            let first = cold.swap(false, Ordering::Relaxed);
            let result = trigger(&*world, &config, event.payload).await;
            report("trigger", &event.context, first, started, &result);
            result.map_err(Failure)
        });
        fut
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reaches_step_functions_under_its_stable_name() {
        let d: Diagnostic = Failure(TaskError::new("LeaseHeld", "i-0abc is leased")).into();
        assert_eq!(d.error_type, "LeaseHeld");
        assert_eq!(d.error_message, "i-0abc is leased");
    }

    #[test]
    fn an_ignored_event_is_logged_with_its_reason() {
        let out = Ok(json!({"ignored": "the alarm went to OK, not ALARM: nothing to heal"}));
        let v = log_line("trigger", "r-1", None, false, 3, &out);
        assert_eq!(v["level"], "INFO");
        assert_eq!(
            v["message"],
            "trigger ignored the event: the alarm went to OK, not ALARM: nothing to heal"
        );
    }

    #[test]
    fn detect_publishes_the_group_counts_and_decide_the_action() {
        let out = Ok(json!({"counts": {"total": 6, "serving": 5, "failing": 1, "slow": 0}}));
        let v = emf_line("detect", 1_800_000_000_000, 42, &out);
        assert_eq!(v["UnhealthyTargets"], 1);
        assert_eq!(v["HealthyTargets"], 5);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "autoheal");
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x["Name"].as_str()).collect())
            .unwrap_or_default();
        assert!(names.contains(&"UnhealthyTargets") && names.contains(&"TaskDuration"));
        let d = emf_line("decide", 0, 3, &Ok(json!({"action": "restart_service"})));
        assert_eq!(d["action"], "restart_service");
        assert_eq!(d["Actions"], 1);
        let r = emf_line(
            "record",
            0,
            3,
            &Ok(json!({"incident_id": "web-i-1", "action": "restart_service", "mttr_s": 212})),
        );
        assert_eq!(r["Incidents"], 1);
        assert_eq!(r["MttrSeconds"], 212);
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][1][2],
            "action"
        );
        let e = emf_line("diagnose", 0, 3, &Err(TaskError::new("Throttled", "x")));
        assert_eq!(e["TaskErrors"], 1);
    }

    #[test]
    fn log_lines_use_powertools_keys_and_never_the_payload() {
        let out: Result<Value, TaskError> = Ok(json!({"task_token": "secret-token"}));
        let v = log_line("notify", "req-1", Some("Root=1-x"), true, 7, &out);
        for k in [
            "level",
            "message",
            "timestamp",
            "service",
            "cold_start",
            "function_request_id",
            "xray_trace_id",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(!v.to_string().contains("secret-token"));
        let err = log_line(
            "lease",
            "req-2",
            None,
            false,
            1,
            &Err(TaskError::new("LeaseHeld", "held")),
        );
        assert_eq!(err["level"], "ERROR");
        assert_eq!(err["error"]["name"], "LeaseHeld");
    }
}
