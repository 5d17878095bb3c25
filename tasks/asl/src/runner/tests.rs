use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::resources::{TaskCall, TaskOutput, TaskResources};
use crate::{StateMachine, run_virtual};

/// Resources scripted per state: each call takes the next outcome; `Sleep(s)` waits first.
#[derive(Default)]
struct Script {
    outcomes: RefCell<HashMap<String, Vec<Outcome>>>,
    calls: RefCell<Vec<TaskCall>>,
}

#[derive(Clone)]
enum Outcome {
    Ok(Value),
    Err(&'static str),
    Sleep(u64, Value),
    Callback,
    Echo,
}

impl Script {
    fn with(self, state: &str, outcomes: Vec<Outcome>) -> Self {
        self.outcomes.borrow_mut().insert(state.into(), outcomes);
        self
    }
}

impl TaskResources for Script {
    async fn invoke(&self, call: TaskCall) -> Result<TaskOutput, StatesError> {
        self.calls.borrow_mut().push(call.clone());
        let next = {
            let mut all = self.outcomes.borrow_mut();
            let list = all.entry(call.state.clone()).or_default();
            if list.len() > 1 {
                list.remove(0)
            } else {
                list.first().cloned().unwrap_or(Outcome::Echo)
            }
        };
        match next {
            Outcome::Ok(v) => Ok(TaskOutput::Done(v)),
            Outcome::Err(e) => Err(StatesError::new(e, format!("{e} from {}", call.state))),
            Outcome::Sleep(s, v) => {
                tokio::time::sleep(Duration::from_secs(s)).await;
                Ok(TaskOutput::Done(v))
            }
            Outcome::Callback => Ok(TaskOutput::AwaitCallback),
            Outcome::Echo => Ok(TaskOutput::Done(call.input)),
        }
    }
}

fn machine(text: &str) -> StateMachine {
    let sm = StateMachine::parse(text).expect("parses");
    let problems = crate::validate::validate(&sm);
    assert!(problems.is_empty(), "{problems:?}");
    sm
}

fn run(sm: &StateMachine, r: &Script, input: Value) -> Execution {
    run_virtual(sm, r, input, RunOptions::default()).expect("runtime")
}

fn kinds(e: &Execution) -> Vec<&str> {
    e.events.iter().map(|e| e.kind.as_str()).collect()
}

fn count(e: &Execution, kind: &str) -> usize {
    e.events.iter().filter(|x| x.kind == kind).count()
}

#[test]
fn pass_applies_parameters_result_path_and_output_path() {
    let sm = machine(
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$.in","Parameters":{"v.$":"$.x","k":"lit"},"ResultPath":"$.out","OutputPath":"$.out","End":true}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({"in": {"x": 1}}));
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(e.output, Some(json!({"v": 1, "k": "lit"})));
    assert_eq!(
        kinds(&e),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn events_are_numbered_and_chained_by_previous_event_id() {
    let sm = machine(
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Succeed"}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({}));
    for (i, ev) in e.events.iter().enumerate() {
        assert_eq!(ev.id, i as u64 + 1);
        assert_eq!(ev.previous_event_id, i as u64);
    }
}

const RETRY: &str = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${Fn}","End":true,
    "Retry":[{"ErrorEquals":["Throttled"],"IntervalSeconds":2,"BackoffRate":3,"MaxAttempts":3}],
    "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"Recover"}]},
  "Recover":{"Type":"Pass","End":true}}}"#;

#[test]
fn a_throttled_task_is_retried_with_backoff_in_virtual_time() {
    let sm = machine(RETRY);
    let r = Script::default().with(
        "T",
        vec![
            Outcome::Err("Throttled"),
            Outcome::Err("Throttled"),
            Outcome::Ok(json!({"done": true})),
        ],
    );
    let e = run(&sm, &r, json!({}));
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(e.output, Some(json!({"done": true})));
    assert_eq!(count(&e, "TaskFailed"), 2);
    assert_eq!(count(&e, "TaskSucceeded"), 1);
    // 2 s, then 2 × 3 = 6 s.
    assert!((e.duration_s - 8.0).abs() < 0.01, "{}", e.duration_s);
    let retries: Vec<u32> = r.calls.borrow().iter().map(|c| c.retry).collect();
    assert_eq!(retries, [0, 1, 2]);
}

#[test]
fn retries_exhausted_fall_through_to_the_catcher() {
    let sm = machine(RETRY);
    let r = Script::default().with("T", vec![Outcome::Err("Throttled")]);
    let e = run(&sm, &r, json!({"keep": 1}));
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(count(&e, "TaskFailed"), 4, "one attempt and three retries");
    let out = e.output.expect("output");
    assert_eq!(out["keep"], 1);
    assert_eq!(out["error"]["Error"], "Throttled");
    assert_eq!(out["error"]["Cause"], "Throttled from T");
}

#[test]
fn states_all_does_not_catch_states_runtime() {
    let sm = machine(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","InputPath":"$.missing","End":true,
        "Catch":[{"ErrorEquals":["States.ALL"],"Next":"C"}]},"C":{"Type":"Succeed"}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({}));
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
}

#[test]
fn states_task_failed_matches_everything_but_timeouts() {
    assert!(matches(&["States.TaskFailed".into()], "HealFailed"));
    assert!(!matches(&["States.TaskFailed".into()], "States.Timeout"));
    assert!(matches(&["States.ALL".into()], "States.Timeout"));
    assert!(!matches(&["States.ALL".into()], "States.DataLimitExceeded"));
}

#[test]
fn full_jitter_keeps_the_delay_within_the_backoff() {
    let sm = machine(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","End":true,
        "Retry":[{"ErrorEquals":["X"],"IntervalSeconds":10,"MaxAttempts":1,"JitterStrategy":"FULL"}]}}}"#,
    );
    let r = Script::default().with("T", vec![Outcome::Err("X"), Outcome::Ok(json!(1))]);
    let e = run(&sm, &r, json!({}));
    assert!(
        e.duration_s >= 0.0 && e.duration_s <= 10.0,
        "{}",
        e.duration_s
    );
}

#[test]
fn max_delay_caps_the_backoff() {
    let sm = machine(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","End":true,
        "Retry":[{"ErrorEquals":["X"],"IntervalSeconds":10,"BackoffRate":10,"MaxAttempts":3,"MaxDelaySeconds":15}]}}}"#,
    );
    let r = Script::default().with(
        "T",
        vec![
            Outcome::Err("X"),
            Outcome::Err("X"),
            Outcome::Err("X"),
            Outcome::Ok(json!(1)),
        ],
    );
    let e = run(&sm, &r, json!({}));
    // 10 + min(100, 15) + min(1000, 15)
    assert!((e.duration_s - 40.0).abs() < 0.01, "{}", e.duration_s);
}

#[test]
fn an_hour_of_waiting_takes_no_real_time() {
    let sm =
        machine(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","End":true}}}"#);
    let t = std::time::Instant::now();
    let e = run(&sm, &Script::default(), json!({"s": 3600}));
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert!((e.duration_s - 3600.0).abs() < 0.01);
    assert_eq!(
        e.events.last().map(|x| x.timestamp.as_str()),
        Some("2027-01-15T09:00:00Z")
    );
}

#[test]
fn wait_until_a_timestamp_uses_the_execution_clock() {
    let sm = machine(
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Timestamp":"2027-01-15T08:10:00Z","End":true}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({}));
    assert!((e.duration_s - 600.0).abs() < 0.01, "{}", e.duration_s);
}

#[test]
fn choice_routes_and_no_match_without_default_fails() {
    let sm = machine(
        r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":1,"Next":"Big"}]},"Big":{"Type":"Succeed"}}}"#,
    );
    assert_eq!(
        run(&sm, &Script::default(), json!({"n": 2})).status,
        Status::Succeeded
    );
    let e = run(&sm, &Script::default(), json!({"n": 0}));
    assert_eq!(e.error.as_deref(), Some("States.NoChoiceMatched"));
}

#[test]
fn map_runs_at_most_max_concurrency_iterations_at_once() {
    let sm = machine(
        r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":2,
        "ItemSelector":{"value.$":"$$.Map.Item.Value","index.$":"$$.Map.Item.Index"},
        "ItemProcessor":{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"r","End":true}}},"End":true}}}"#,
    );
    let r = Script::default().with("Work", vec![Outcome::Sleep(10, json!("done"))]);
    let e = run(&sm, &r, json!({"items": [1, 2, 3, 4]}));
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(e.output, Some(json!(["done", "done", "done", "done"])));
    assert!(
        (e.duration_s - 20.0).abs() < 0.01,
        "two waves of 10 s: {}",
        e.duration_s
    );
    assert_eq!(count(&e, "MapIterationStarted"), 4);
    let inputs: Vec<Value> = r.calls.borrow().iter().map(|c| c.input.clone()).collect();
    assert!(
        inputs.contains(&json!({"value": 3, "index": 2})),
        "{inputs:?}"
    );
}

#[test]
fn an_unbounded_map_runs_every_iteration_at_once() {
    let sm = machine(
        r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"r","End":true}}},"End":true}}}"#,
    );
    let r = Script::default().with("Work", vec![Outcome::Sleep(10, json!(0))]);
    let e = run(&sm, &r, json!([1, 2, 3, 4, 5]));
    assert!((e.duration_s - 10.0).abs() < 0.01, "{}", e.duration_s);
}

#[test]
fn a_failed_iteration_fails_the_map_unless_tolerated() {
    let text = r#"{"StartAt":"M","States":{"M":{"Type":"Map",TOL"ItemProcessor":{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"r","End":true}}},"End":true}}}"#;
    let r = || {
        Script::default().with(
            "Work",
            vec![
                Outcome::Ok(json!(1)),
                Outcome::Err("Boom"),
                Outcome::Ok(json!(3)),
            ],
        )
    };
    let e = run(&machine(&text.replace("TOL", "")), &r(), json!([1, 2, 3]));
    assert_eq!(e.error.as_deref(), Some("Boom"));
    assert_eq!(count(&e, "MapStateFailed"), 1);
    let e = run(
        &machine(&text.replace("TOL", r#""ToleratedFailureCount":1,"#)),
        &r(),
        json!([1, 2, 3]),
    );
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(e.output.expect("out")[1]["Error"], "Boom");
    let e = run(
        &machine(&text.replace("TOL", r#""ToleratedFailurePercentage":10,"#)),
        &r(),
        json!([1, 2, 3]),
    );
    assert_eq!(
        e.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
}

#[test]
fn parallel_branches_run_together_and_a_failing_branch_fails_the_state() {
    let sm = machine(
        r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[
        {"StartAt":"A","States":{"A":{"Type":"Task","Resource":"r","End":true}}},
        {"StartAt":"B","States":{"B":{"Type":"Wait","Seconds":5,"End":true}}}]}}}"#,
    );
    let r = Script::default().with("A", vec![Outcome::Sleep(5, json!("a"))]);
    let e = run(&sm, &r, json!({"x": 1}));
    assert_eq!(e.output, Some(json!(["a", {"x": 1}])));
    assert!((e.duration_s - 5.0).abs() < 0.01);
    let r = Script::default().with("A", vec![Outcome::Err("BranchBroke")]);
    let e = run(&sm, &r, json!({}));
    assert_eq!(e.error.as_deref(), Some("BranchBroke"));
    assert_eq!(count(&e, "ParallelStateFailed"), 1);
}

const APPROVAL: &str = r#"{"StartAt":"Ask","States":{"Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
    "Parameters":{"Token.$":"$$.Task.Token","Action":"replace"},"HeartbeatSeconds":HB,"TimeoutSeconds":3600,"End":true}}}"#;

#[test]
fn a_task_token_is_completed_by_an_operator_running_beside_the_execution() {
    let sm = machine(&APPROVAL.replace("HB", "600"));
    let r = Script::default().with("Ask", vec![Outcome::Callback]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("rt");
    let runner = Runner::new(&sm, &r, RunOptions::default());
    let tokens = runner.tokens();
    let operator = async {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let waiting = tokens.waiting();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].input["Action"], "replace");
        assert_eq!(waiting[0].input["Token"], json!(waiting[0].token));
        tokens
            .succeed(&waiting[0].token, json!({"approved": true}))
            .expect("waiting");
    };
    let (e, ()) = rt.block_on(async { tokio::join!(runner.run(json!({})), operator) });
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(e.output, Some(json!({"approved": true})));
    assert!((e.duration_s - 300.0).abs() < 0.01);
    assert_eq!(count(&e, "TaskSubmitted"), 1);
    assert!(
        tokens.succeed("nope", json!(1)).is_err(),
        "unknown tokens are refused"
    );
}

#[test]
fn a_callback_without_heartbeats_times_out() {
    let sm = machine(&APPROVAL.replace("HB", "60"));
    let r = Script::default().with("Ask", vec![Outcome::Callback]);
    let e = run(&sm, &r, json!({}));
    assert_eq!(e.error.as_deref(), Some("States.HeartbeatTimeout"));
    assert_eq!(count(&e, "TaskTimedOut"), 1);
    assert!((e.duration_s - 60.0).abs() < 0.01);
}

#[test]
fn a_slow_task_times_out_with_states_timeout() {
    let sm = machine(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","TimeoutSeconds":5,"End":true}}}"#,
    );
    let r = Script::default().with("T", vec![Outcome::Sleep(60, json!(1))]);
    let e = run(&sm, &r, json!({}));
    assert_eq!(e.error.as_deref(), Some("States.Timeout"));
    assert_eq!(count(&e, "TaskTimedOut"), 1);
}

#[test]
fn the_execution_times_out_after_its_timeout_seconds() {
    let sm = machine(
        r#"{"TimeoutSeconds":10,"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({}));
    assert_eq!(e.status, Status::TimedOut);
    assert_eq!(
        e.events.last().map(|x| x.kind.as_str()),
        Some("ExecutionTimedOut")
    );
}

#[test]
fn a_loop_that_never_ends_stops_at_the_history_limit() {
    let sm = machine(
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"C"},
        "C":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"Done"}],"Default":"A"},"Done":{"Type":"Succeed"}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({}));
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    assert!(e.cause.as_deref().unwrap_or_default().contains("25000"));
    assert_eq!(
        e.events.len(),
        MAX_HISTORY_EVENTS + 1,
        "the limit plus the final ExecutionFailed"
    );
}

#[test]
fn an_oversized_payload_fails_with_data_limit_exceeded() {
    let big = "x".repeat(MAX_PAYLOAD_BYTES);
    let sm = machine(&format!(
        r#"{{"StartAt":"P","States":{{"P":{{"Type":"Pass","Result":"{big}","End":true}}}}}}"#
    ));
    let e = run(&sm, &Script::default(), json!({}));
    assert_eq!(e.error.as_deref(), Some("States.DataLimitExceeded"));
}

#[test]
fn fail_takes_error_and_cause_from_paths_and_intrinsics() {
    let sm = machine(
        r#"{"StartAt":"F","States":{"F":{"Type":"Fail","ErrorPath":"$.e","CausePath":"States.Format('bad {}', $.n)"}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({"e": "Custom", "n": 3}));
    assert_eq!(
        (e.error.as_deref(), e.cause.as_deref()),
        (Some("Custom"), Some("bad 3"))
    );
    assert_eq!(
        kinds(&e),
        ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]
    );
}

#[test]
fn the_context_object_reaches_tasks() {
    let sm = machine(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","Parameters":{"name.$":"$$.Execution.Name","state.$":"$$.State.Name","retry.$":"$$.State.RetryCount"},"End":true}}}"#,
    );
    let r = Script::default();
    let opts = RunOptions {
        execution_name: "exec-7".into(),
        ..RunOptions::default()
    };
    let e = run_virtual(&sm, &r, json!({}), opts).expect("rt");
    assert_eq!(
        e.output,
        Some(json!({"name": "exec-7", "state": "T", "retry": 0}))
    );
}

#[test]
fn result_selector_shapes_the_raw_result_before_result_path() {
    let sm = machine(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","ResultSelector":{"code.$":"$.Payload.code"},"ResultPath":"$.r","End":true}}}"#,
    );
    let r = Script::default().with(
        "T",
        vec![Outcome::Ok(json!({"Payload": {"code": 200, "noise": 1}}))],
    );
    let e = run(&sm, &r, json!({"in": 1}));
    assert_eq!(e.output, Some(json!({"in": 1, "r": {"code": 200}})));
}

#[test]
fn equal_inputs_and_seeds_give_equal_histories() {
    let sm = machine(
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"r.$":"States.MathRandom(1, 1000)","u.$":"States.UUID()"},"End":true}}}"#,
    );
    let a = run(&sm, &Script::default(), json!({}));
    let b = run(&sm, &Script::default(), json!({}));
    assert_eq!(a, b);
}

#[test]
fn a_pass_state_with_parameters_and_result_outputs_the_result() {
    let sm = machine(
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"x.$":"$.a"},"Result":"r","ResultPath":"$.res","End":true}}}"#,
    );
    let e = run(&sm, &Script::default(), json!({"a": 1}));
    assert_eq!(e.output, Some(json!({"a": 1, "res": "r"})));
    let e = run(&sm, &Script::default(), json!({}));
    assert_eq!(
        e.error.as_deref(),
        Some("States.Runtime"),
        "Parameters is still evaluated"
    );
}

#[test]
fn without_history_payloads_events_keep_names_and_sizes_are_still_checked() {
    let sm = machine(
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"big.$":"$.big"},"End":true}}}"#,
    );
    let lean = |max_payload_bytes| RunOptions {
        history_payloads: false,
        max_payload_bytes,
        ..RunOptions::default()
    };
    let e = run_virtual(&sm, &Script::default(), json!({"big": "x"}), lean(1000)).expect("rt");
    assert_eq!(e.status, Status::Succeeded);
    assert_eq!(e.output, Some(json!({"big": "x"})));
    let entered = e
        .events
        .iter()
        .find(|ev| ev.kind == "PassStateEntered")
        .expect("entered");
    assert_eq!(entered.detail_str("name"), Some("P"));
    assert_eq!(entered.detail_str("input"), Some(""));
    let e = run_virtual(
        &sm,
        &Script::default(),
        json!({"big": "x".repeat(2000)}),
        lean(1000),
    )
    .expect("rt");
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("States.DataLimitExceeded"));
}
