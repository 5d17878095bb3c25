//! The interpreter: runs a [`StateMachine`] against [`TaskResources`], recording the history as
//! Step Functions does.
//!
//! Time comes from tokio's clock. Under a paused runtime ([`crate::run_virtual`]) every Wait,
//! retry backoff and timeout advances *virtual* time: when all branches are waiting, the clock
//! jumps to the next timer, so concurrent Map iterations keep their true relative timing and an
//! hour of waits takes microseconds. Under a normal runtime the same code runs in real time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::definition::{
    Handling, Kind, PathField, Retrier, Seconds, State, StateMachine, Transition, WaitFor,
};
use crate::error::StatesError;
use crate::history::{Event, details_key, format_ms};
use crate::resources::{TaskCall, TaskOutput, TaskResources};
use crate::{choice, intrinsics, path};

/// Step Functions' payload limit (input and output of every state).
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// Step Functions' history limit of one execution.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// How an execution is identified and bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub execution_name: String,
    pub state_machine_name: String,
    pub region: String,
    pub account: String,
    /// Epoch milliseconds the execution starts at.
    pub start_time_ms: i64,
    /// Seed of the jitter, MathRandom and UUID source.
    pub seed: u64,
    pub max_events: usize,
    pub max_payload_bytes: usize,
    /// Keep the states' input and output text in the history events, as Step Functions does.
    /// Off, the events keep their types, names and errors only (sizes are still checked): for
    /// simulations that run thousands of executions and read only their outcome.
    pub history_payloads: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            execution_name: "local-execution".into(),
            state_machine_name: "StateMachine".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            start_time_ms: 1_800_000_000_000,
            seed: 0x5eed,
            max_events: MAX_HISTORY_EVENTS,
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            history_payloads: true,
        }
    }
}

impl RunOptions {
    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.region, self.account, self.state_machine_name
        )
    }

    pub fn execution_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            self.region, self.account, self.state_machine_name, self.execution_name
        )
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
}

/// A finished execution.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub execution_arn: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub start_date: String,
    pub stop_date: String,
    /// Virtual (or real) seconds the execution took.
    pub duration_s: f64,
    pub events: Vec<Event>,
}

struct Pending {
    state: String,
    input: Value,
    sender: Option<oneshot::Sender<Result<Value, StatesError>>>,
    last_heartbeat: Instant,
}

/// The task tokens of `.waitForTaskToken` tasks waiting for a callback: SendTaskSuccess,
/// SendTaskFailure and SendTaskHeartbeat, locally. Clone it before `run` and drive it from a
/// future running beside the execution.
#[derive(Clone, Default)]
pub struct TaskTokens(Rc<RefCell<BTreeMap<String, Pending>>>);

/// A task waiting for its callback.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingTask {
    pub token: String,
    pub state: String,
    pub input: Value,
}

impl TaskTokens {
    /// Tasks waiting for a callback, oldest token first.
    pub fn waiting(&self) -> Vec<WaitingTask> {
        self.0
            .borrow()
            .iter()
            .filter(|(_, p)| p.sender.is_some())
            .map(|(t, p)| WaitingTask {
                token: t.clone(),
                state: p.state.clone(),
                input: p.input.clone(),
            })
            .collect()
    }

    fn complete(&self, token: &str, result: Result<Value, StatesError>) -> Result<(), StatesError> {
        let sender = self
            .0
            .borrow_mut()
            .get_mut(token)
            .and_then(|p| p.sender.take());
        match sender {
            Some(s) => s
                .send(result)
                .map_err(|_| StatesError::new("TaskTimedOut", "the task is no longer waiting")),
            None => Err(StatesError::new(
                "TaskDoesNotExist",
                format!("no task is waiting for token {token}"),
            )),
        }
    }

    /// SendTaskSuccess.
    pub fn succeed(&self, token: &str, output: Value) -> Result<(), StatesError> {
        self.complete(token, Ok(output))
    }

    /// SendTaskFailure.
    pub fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), StatesError> {
        self.complete(token, Err(StatesError::new(error, cause)))
    }

    /// SendTaskHeartbeat.
    pub fn heartbeat(&self, token: &str) -> Result<(), StatesError> {
        match self.0.borrow_mut().get_mut(token) {
            Some(p) if p.sender.is_some() => {
                p.last_heartbeat = Instant::now();
                Ok(())
            }
            _ => Err(StatesError::new(
                "TaskDoesNotExist",
                format!("no task is waiting for token {token}"),
            )),
        }
    }

    fn last_heartbeat(&self, token: &str) -> Option<Instant> {
        self.0.borrow().get(token).map(|p| p.last_heartbeat)
    }
}

/// The previous-event id of one thread of the execution (the execution, a branch, an iteration).
struct Cursor(Cell<u64>);

type Step<'a> = Pin<Box<dyn Future<Output = Result<Value, StatesError>> + 'a>>;

/// One execution of a state machine.
pub struct Runner<'a, R: TaskResources> {
    sm: &'a StateMachine,
    resources: &'a R,
    opts: RunOptions,
    tokens: TaskTokens,
    events: RefCell<Vec<Event>>,
    rng: Cell<u64>,
    started: Cell<Option<Instant>>,
    input: RefCell<Value>,
    /// The last formatted timestamp (milliseconds, text).
    stamp: RefCell<(i64, String)>,
}

fn matches(list: &[String], error: &str) -> bool {
    let terminal = matches!(error, "States.Runtime" | "States.DataLimitExceeded");
    list.iter().any(|e| {
        e == error
            || (!terminal
                && (e == "States.ALL" || (e == "States.TaskFailed" && error != "States.Timeout")))
    })
}

/// The length of a value's compact JSON text, without building the text.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

/// Whether a payload template reads the context object (`$$` paths, also inside intrinsics).
fn reads_context(tpl: &Value) -> bool {
    match tpl {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k.ends_with(".$") && v.as_str().is_some_and(|s| s.contains("$$"))) || reads_context(v)
        }),
        Value::Array(a) => a.iter().any(reads_context),
        _ => false,
    }
}

/// The context object for a path, or a placeholder when the path does not read it.
fn needs_ctx<'c>(path: Option<&str>, ctx: impl FnOnce() -> &'c Value) -> &'c Value {
    static EMPTY: Value = Value::Null;
    if path.is_some_and(|p| p.starts_with("$$")) {
        ctx()
    } else {
        &EMPTY
    }
}

fn resource_parts(resource: &str) -> (String, String) {
    if let Some(rest) = resource.strip_prefix("arn:aws:states:::") {
        let (service, action) = rest.split_once(':').unwrap_or((rest, ""));
        return (service.to_owned(), action.to_owned());
    }
    if resource.contains(":activity:") {
        return ("activities".to_owned(), resource.to_owned());
    }
    if resource.contains(":lambda:") {
        return ("lambda".to_owned(), resource.to_owned());
    }
    ("local".to_owned(), resource.to_owned())
}

impl<'a, R: TaskResources> Runner<'a, R> {
    pub fn new(sm: &'a StateMachine, resources: &'a R, opts: RunOptions) -> Self {
        let seed = opts.seed;
        Self {
            sm,
            resources,
            opts,
            tokens: TaskTokens::default(),
            events: RefCell::new(Vec::new()),
            rng: Cell::new(seed),
            started: Cell::new(None),
            input: RefCell::new(Value::Null),
            stamp: RefCell::new((0, String::new())),
        }
    }

    /// The token table, to complete `.waitForTaskToken` tasks while `run` is in progress.
    pub fn tokens(&self) -> TaskTokens {
        self.tokens.clone()
    }

    /// SplitMix64.
    fn random(&self) -> u64 {
        let mut z = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The current time as history text; virtual time often stands still, so the last
    /// formatted instant is kept.
    fn now_text(&self) -> String {
        let ms = self.now_ms();
        let mut cache = self.stamp.borrow_mut();
        if cache.0 != ms || cache.1.is_empty() {
            *cache = (ms, format_ms(ms));
        }
        cache.1.clone()
    }

    fn now_ms(&self) -> i64 {
        let elapsed = self.started.get().map_or(0, |s| s.elapsed().as_millis());
        self.opts
            .start_time_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    fn emit(&self, cur: &Cursor, kind: &str, details: Option<Value>) -> Result<(), StatesError> {
        self.push(cur, kind, details, false)
    }

    fn push(
        &self,
        cur: &Cursor,
        kind: &str,
        details: Option<Value>,
        force: bool,
    ) -> Result<(), StatesError> {
        let mut events = self.events.borrow_mut();
        if !force && events.len() >= self.opts.max_events {
            return Err(StatesError::runtime(format!(
                "The execution reached the maximum number of history events ({}); bound the loops of the state machine",
                self.opts.max_events
            )));
        }
        let id = events.len() as u64 + 1;
        let mut map = Map::new();
        if let (Some(d), Some(key)) = (details, details_key(kind)) {
            map.insert(key.to_owned(), d);
        }
        events.push(Event {
            timestamp: self.now_text(),
            kind: kind.to_owned(),
            id,
            previous_event_id: cur.0.get(),
            details: map,
        });
        cur.0.set(id);
        Ok(())
    }

    fn context(
        &self,
        state: &State,
        retry: u32,
        item: Option<&(usize, Value)>,
        token: Option<&str>,
    ) -> Value {
        let mut ctx = json!({
            "Execution": {
                "Id": self.opts.execution_arn(),
                "Input": self.input.borrow().clone(),
                "Name": self.opts.execution_name,
                "RoleArn": format!("arn:aws:iam::{}:role/StepFunctionsLocal", self.opts.account),
                "StartTime": format_ms(self.opts.start_time_ms),
                "RedriveCount": 0,
            },
            "StateMachine": { "Id": self.opts.state_machine_arn(), "Name": self.opts.state_machine_name },
            "State": { "Name": state.name, "EnteredTime": self.now_text(), "RetryCount": retry },
        });
        if let Some(obj) = ctx.as_object_mut() {
            if let Some((i, v)) = item {
                obj.insert("Map".into(), json!({"Item": {"Index": i, "Value": v}}));
            }
            if let Some(t) = token {
                obj.insert("Task".into(), json!({"Token": t}));
            }
        }
        ctx
    }

    /// A payload's text for the history (empty without `history_payloads`), its size checked.
    fn payload(&self, v: &Value, what: &str) -> Result<String, StatesError> {
        if self.opts.history_payloads {
            let text = v.to_string();
            self.check_len(text.len(), what)?;
            Ok(text)
        } else {
            self.check_size(v, what)?;
            Ok(String::new())
        }
    }

    /// A payload's text for the history (empty without `history_payloads`).
    fn text(&self, v: &Value) -> String {
        if self.opts.history_payloads {
            v.to_string()
        } else {
            String::new()
        }
    }

    fn check_size(&self, v: &Value, what: &str) -> Result<(), StatesError> {
        self.check_len(json_len(v), what)
    }

    fn check_len(&self, n: usize, what: &str) -> Result<(), StatesError> {
        if n > self.opts.max_payload_bytes {
            return Err(StatesError::new(
                "States.DataLimitExceeded",
                format!(
                    "The {what} has a size of {n} bytes, which exceeds the maximum of {} bytes",
                    self.opts.max_payload_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Runs the execution to its end.
    pub async fn run(&self, input: Value) -> Execution {
        self.started.set(Some(Instant::now()));
        self.events.borrow_mut().clear();
        *self.input.borrow_mut() = input.clone();
        let cur = Cursor(Cell::new(0));
        let text = self.text(&input);
        let started = self.emit(
            &cur,
            "ExecutionStarted",
            Some(json!({"input": text, "inputDetails": {"truncated": false}, "roleArn": format!("arn:aws:iam::{}:role/StepFunctionsLocal", self.opts.account)})),
        );
        let mut timed_out = false;
        let result = match started.and_then(|()| self.check_size(&input, "execution input")) {
            Err(e) => Err(e),
            Ok(()) => {
                let body = self.run_machine(self.sm, input, None, &cur);
                match self.sm.timeout_seconds {
                    Some(t) => tokio::time::timeout(Duration::from_secs(t), body)
                        .await
                        .unwrap_or_else(|_| {
                            timed_out = true;
                            Err(StatesError::timeout(format!(
                                "The execution timed out after {t} seconds (TimeoutSeconds)"
                            )))
                        }),
                    None => body.await,
                }
            }
        };
        let result = result.and_then(|v| self.check_size(&v, "execution output").map(|()| v));
        let (status, output, error) = match result {
            Ok(v) => {
                let _ = self.push(
                    &cur,
                    "ExecutionSucceeded",
                    Some(json!({"output": self.text(&v), "outputDetails": {"truncated": false}})),
                    true,
                );
                (Status::Succeeded, Some(v), None)
            }
            Err(e) => {
                let (kind, status) = if timed_out {
                    ("ExecutionTimedOut", Status::TimedOut)
                } else {
                    ("ExecutionFailed", Status::Failed)
                };
                let _ = self.push(
                    &cur,
                    kind,
                    Some(json!({"error": e.error, "cause": e.cause})),
                    true,
                );
                (status, None, Some(e))
            }
        };
        let stop = self.now_ms();
        Execution {
            execution_arn: self.opts.execution_arn(),
            status,
            output,
            error: error.as_ref().map(|e| e.error.clone()),
            cause: error.map(|e| e.cause),
            start_date: format_ms(self.opts.start_time_ms),
            stop_date: format_ms(stop),
            duration_s: (stop - self.opts.start_time_ms) as f64 / 1000.0,
            events: std::mem::take(&mut *self.events.borrow_mut()),
        }
    }

    fn run_machine<'s>(
        &'s self,
        sm: &'s StateMachine,
        input: Value,
        item: Option<&'s (usize, Value)>,
        cur: &'s Cursor,
    ) -> Step<'s> {
        Box::pin(async move {
            let mut name = sm.start_at.as_str();
            let mut input = input;
            loop {
                let state = sm.state(name).ok_or_else(|| {
                    StatesError::runtime(format!("state {name:?} does not exist"))
                })?;
                let (output, next) = self.run_state(state, input, item, cur).await?;
                match next {
                    Some(n) => {
                        name = n;
                        input = output;
                    }
                    None => return Ok(output),
                }
            }
        })
    }

    async fn run_state<'s>(
        &'s self,
        state: &'s State,
        input: Value,
        item: Option<&'s (usize, Value)>,
        cur: &'s Cursor,
    ) -> Result<(Value, Option<&'s str>), StatesError> {
        let ty = state.kind.type_name();
        let text = self.payload(&input, &format!("input of state {:?}", state.name))?;
        self.emit(
            cur,
            &format!("{ty}StateEntered"),
            Some(json!({"name": state.name, "input": text})),
        )?;
        let next = match &state.transition {
            Transition::Next(n) => Some(n.as_str()),
            _ => None,
        };
        // The context object costs a copy of the execution input: build it only when read.
        let ctx_cell = std::cell::OnceCell::new();
        let ctx = || ctx_cell.get_or_init(|| self.context(state, 0, item, None));
        let effective = || {
            path::apply_filter(
                state.input_path.path(),
                &input,
                needs_ctx(state.input_path.path(), ctx),
            )
        };
        let output = match &state.kind {
            Kind::Pass(p) => {
                let eff = effective()?;
                // Parameters is the input of the virtual task and Result its output: with both,
                // Parameters is still evaluated (its errors surface) but Result is the result.
                let input_of_task = match &p.parameters {
                    Some(t) => self.fill(t, &eff, ctx)?,
                    None => eff,
                };
                let result = match &p.result {
                    Some(r) => r.clone(),
                    None => input_of_task,
                };
                self.place(state, &p.result_path, &input, result, ctx)?
            }
            Kind::Choice(c) => {
                let eff = effective()?;
                let mut chosen = None;
                for b in &c.choices {
                    if choice::evaluate(&b.rule, &eff, ctx())? {
                        chosen = Some(b.next.as_str());
                        break;
                    }
                }
                let chosen = chosen.or(c.default.as_deref()).ok_or_else(|| {
                    StatesError::new(
                        "States.NoChoiceMatched",
                        format!(
                            "No Choice rule of state {:?} matched, and there is no Default",
                            state.name
                        ),
                    )
                })?;
                let out = path::apply_filter(
                    state.output_path.path(),
                    &eff,
                    needs_ctx(state.output_path.path(), ctx),
                )?;
                self.exit(state, &out, cur)?;
                return Ok((out, Some(chosen)));
            }
            Kind::Wait(w) => {
                let eff = effective()?;
                let secs: f64 = match w {
                    WaitFor::Seconds(s) => *s as f64,
                    WaitFor::SecondsPath(p) => {
                        let v = path::select(p, &eff, ctx())?;
                        v.as_u64().map(|n| n as f64).ok_or_else(|| {
                            StatesError::runtime(format!("The SecondsPath '{p}' of state {:?} must point to a non-negative integer, found {v}", state.name))
                        })?
                    }
                    WaitFor::Timestamp(t) => self.until(t, &state.name)?,
                    WaitFor::TimestampPath(p) => {
                        let v = path::select(p, &eff, ctx())?;
                        let t = v.as_str().ok_or_else(|| StatesError::runtime(format!("The TimestampPath '{p}' must point to a timestamp string, found {v}")))?;
                        self.until(t, &state.name)?
                    }
                };
                tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
                path::apply_filter(
                    state.output_path.path(),
                    &eff,
                    needs_ctx(state.output_path.path(), ctx),
                )?
            }
            Kind::Succeed => {
                let eff = effective()?;
                let out = path::apply_filter(
                    state.output_path.path(),
                    &eff,
                    needs_ctx(state.output_path.path(), ctx),
                )?;
                self.exit(state, &out, cur)?;
                return Ok((out, None));
            }
            Kind::Fail(f) => {
                let eff = input.clone();
                let resolve =
                    |lit: &Option<String>, p: &Option<String>| -> Result<String, StatesError> {
                        if let Some(l) = lit {
                            return Ok(l.clone());
                        }
                        let Some(p) = p else { return Ok(String::new()) };
                        let v = if intrinsics::is_intrinsic(p) {
                            intrinsics::evaluate(
                                p,
                                &|q: &str| path::select(q, &eff, ctx()),
                                &mut || self.random(),
                            )?
                        } else {
                            path::select(p, &eff, ctx())?
                        };
                        Ok(v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    };
                return Err(StatesError::new(
                    resolve(&f.error, &f.error_path)?,
                    resolve(&f.cause, &f.cause_path)?,
                ));
            }
            Kind::Task(_) | Kind::Parallel(_) | Kind::Map(_) => {
                return self.run_with_handling(state, input, item, cur, next).await;
            }
        };
        self.exit(state, &output, cur)?;
        Ok((output, next))
    }

    fn exit(&self, state: &State, output: &Value, cur: &Cursor) -> Result<(), StatesError> {
        let text = self.payload(output, &format!("output of state {:?}", state.name))?;
        self.emit(
            cur,
            &format!("{}StateExited", state.kind.type_name()),
            Some(json!({"name": state.name, "output": text})),
        )
    }

    fn until(&self, ts: &str, state: &str) -> Result<f64, StatesError> {
        let t = choice::parse_timestamp(ts).ok_or_else(|| {
            StatesError::runtime(format!(
                "Wait state {state:?}: {ts:?} is not an RFC 3339 timestamp"
            ))
        })?;
        let target_ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        Ok((target_ms - self.now_ms()) as f64 / 1000.0)
    }

    fn delay(&self, r: &Retrier, attempt: u32) -> Duration {
        let mut d = r.interval_seconds as f64
            * r.backoff_rate
                .powi(i32::try_from(attempt).unwrap_or(i32::MAX));
        if let Some(max) = r.max_delay_seconds {
            d = d.min(max as f64);
        }
        if r.jitter_strategy == crate::definition::Jitter::Full {
            d *= (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        }
        Duration::from_secs_f64(if d.is_finite() {
            d.clamp(0.0, 31_536_000.0)
        } else {
            31_536_000.0
        })
    }

    /// Task, Parallel and Map: Retry, then Catch, around the state's work.
    async fn run_with_handling<'s>(
        &'s self,
        state: &'s State,
        input: Value,
        item: Option<&'s (usize, Value)>,
        cur: &'s Cursor,
        next: Option<&'s str>,
    ) -> Result<(Value, Option<&'s str>), StatesError> {
        let Some(h) = state.kind.handling() else {
            return Err(StatesError::runtime(format!(
                "state {:?} has no Retry/Catch handling",
                state.name
            )));
        };
        let mut counts = vec![0u32; h.retry.len()];
        let mut retry = 0u32;
        loop {
            let attempt = self.attempt(state, &input, item, cur, retry).await;
            let result = match attempt {
                Ok(raw) => self.finish(state, h, &input, raw, item, retry),
                Err(e) => Err(e),
            };
            match result {
                Ok(out) => {
                    self.exit(state, &out, cur)?;
                    return Ok((out, next));
                }
                Err(e) => {
                    if let Some(i) = h
                        .retry
                        .iter()
                        .position(|r| matches(&r.error_equals, &e.error))
                    {
                        let r = &h.retry[i];
                        if counts[i] < r.max_attempts {
                            let d = self.delay(r, counts[i]);
                            counts[i] += 1;
                            retry += 1;
                            tokio::time::sleep(d).await;
                            continue;
                        }
                    }
                    if let Some(c) = h.catch.iter().find(|c| matches(&c.error_equals, &e.error)) {
                        let caught = path::insert(
                            c.result_path.path(),
                            input.clone(),
                            json!({"Error": e.error, "Cause": e.cause}),
                        )?;
                        self.exit(state, &caught, cur)?;
                        return Ok((caught, Some(c.next.as_str())));
                    }
                    return Err(e);
                }
            }
        }
    }

    /// ResultSelector, ResultPath and OutputPath on a successful raw result.
    fn finish(
        &self,
        state: &State,
        h: &Handling,
        input: &Value,
        raw: Value,
        item: Option<&(usize, Value)>,
        retry: u32,
    ) -> Result<Value, StatesError> {
        let ctx_cell = std::cell::OnceCell::new();
        let ctx = || ctx_cell.get_or_init(|| self.context(state, retry, item, None));
        let selected = match &h.result_selector {
            Some(t) => self.fill(t, &raw, ctx)?,
            None => raw,
        };
        self.place(state, &h.result_path, input, selected, ctx)
    }

    /// Fills a payload template, building the context object only when the template reads it.
    fn fill<'c>(
        &self,
        tpl: &Value,
        input: &Value,
        ctx: impl FnOnce() -> &'c Value,
    ) -> Result<Value, StatesError> {
        let ctx = if reads_context(tpl) {
            ctx()
        } else {
            &Value::Null
        };
        path::template(tpl, input, ctx, &mut || self.random())
    }

    /// Places a state's result into its raw input at ResultPath, then applies OutputPath.
    fn place<'c>(
        &self,
        state: &State,
        result_path: &PathField,
        input: &Value,
        result: Value,
        ctx: impl FnOnce() -> &'c Value,
    ) -> Result<Value, StatesError> {
        let merged = path::insert(result_path.path(), input.clone(), result)?;
        path::apply_filter(
            state.output_path.path(),
            &merged,
            needs_ctx(state.output_path.path(), ctx),
        )
    }

    fn seconds_of(
        &self,
        s: &Option<Seconds>,
        eff: &Value,
        ctx: &Value,
        field: &str,
    ) -> Result<Option<u64>, StatesError> {
        match s {
            None => Ok(None),
            Some(Seconds::Literal(n)) => Ok(Some(*n)),
            Some(Seconds::Path(p)) => {
                let v = path::select(p, eff, ctx)?;
                v.as_u64().map(Some).ok_or_else(|| {
                    StatesError::runtime(format!(
                        "{field} '{p}' must point to a non-negative integer, found {v}"
                    ))
                })
            }
        }
    }

    /// One attempt of a Task, Parallel or Map: its raw result.
    async fn attempt<'s>(
        &'s self,
        state: &'s State,
        input: &Value,
        item: Option<&'s (usize, Value)>,
        cur: &'s Cursor,
        retry: u32,
    ) -> Result<Value, StatesError> {
        let token = match &state.kind {
            Kind::Task(t) if t.waits_for_token() => {
                Some(format!("{:016x}{:016x}", self.random(), self.random()))
            }
            _ => None,
        };
        let ctx = self.context(state, retry, item, token.as_deref());
        let eff = path::apply_filter(state.input_path.path(), input, &ctx)?;
        match &state.kind {
            Kind::Task(t) => {
                let params = match &t.handling.parameters {
                    Some(tpl) => path::template(tpl, &eff, &ctx, &mut || self.random())?,
                    None => eff.clone(),
                };
                self.check_size(&params, &format!("input of task {:?}", state.name))?;
                let timeout = self.seconds_of(&t.timeout, &eff, &ctx, "TimeoutSecondsPath")?;
                let heartbeat =
                    self.seconds_of(&t.heartbeat, &eff, &ctx, "HeartbeatSecondsPath")?;
                let (resource_type, resource) = resource_parts(&t.resource);
                let mut scheduled = json!({"resourceType": resource_type, "resource": resource, "region": self.opts.region, "parameters": self.text(&params)});
                if let Some(obj) = scheduled.as_object_mut() {
                    if let Some(s) = timeout {
                        obj.insert("timeoutInSeconds".into(), json!(s));
                    }
                    if let Some(s) = heartbeat {
                        obj.insert("heartbeatInSeconds".into(), json!(s));
                    }
                }
                self.emit(cur, "TaskScheduled", Some(scheduled))?;
                self.emit(
                    cur,
                    "TaskStarted",
                    Some(json!({"resourceType": resource_type, "resource": resource})),
                )?;
                let call = TaskCall {
                    state: state.name.clone(),
                    resource: t.resource.clone(),
                    input: params.clone(),
                    context: ctx,
                    token: token.clone(),
                    retry,
                };
                let work = async {
                    match self.resources.invoke(call).await? {
                        TaskOutput::Done(v) => Ok(v),
                        TaskOutput::AwaitCallback => {
                            let Some(token) = token.clone() else {
                                return Err(StatesError::runtime(format!(
                                    "task {:?} asked to wait for a callback without .waitForTaskToken",
                                    state.name
                                )));
                            };
                            self.emit(cur, "TaskSubmitted", Some(json!({"resourceType": resource_type, "resource": resource, "output": "{}"})))?;
                            self.await_callback(&token, &state.name, params, heartbeat)
                                .await
                        }
                    }
                };
                let result = match timeout {
                    Some(s) => tokio::time::timeout(Duration::from_secs(s), work)
                        .await
                        .unwrap_or_else(|_| {
                            Err(StatesError::timeout(format!(
                                "Task {:?} timed out after {s} seconds",
                                state.name
                            )))
                        }),
                    None => work.await,
                };
                match &result {
                    Ok(v) => {
                        self.check_size(v, &format!("result of task {:?}", state.name))?;
                        self.emit(cur, "TaskSucceeded", Some(json!({"resourceType": resource_type, "resource": resource, "output": self.text(v)})))?;
                    }
                    Err(e) => {
                        let kind = if e.error == "States.Timeout"
                            || e.error == "States.HeartbeatTimeout"
                        {
                            "TaskTimedOut"
                        } else {
                            "TaskFailed"
                        };
                        self.emit(cur, kind, Some(json!({"resourceType": resource_type, "resource": resource, "error": e.error, "cause": e.cause})))?;
                    }
                }
                result
            }
            Kind::Parallel(p) => {
                let params = match &p.handling.parameters {
                    Some(tpl) => path::template(tpl, &eff, &ctx, &mut || self.random())?,
                    None => eff,
                };
                self.emit(cur, "ParallelStateStarted", None)?;
                let cursors: Vec<Cursor> = p
                    .branches
                    .iter()
                    .map(|_| Cursor(Cell::new(cur.0.get())))
                    .collect();
                let runs = p
                    .branches
                    .iter()
                    .zip(&cursors)
                    .map(|(b, c)| self.run_machine(b, params.clone(), None, c));
                let result = futures_util::future::try_join_all(runs).await;
                match result {
                    Ok(outputs) => {
                        self.emit(cur, "ParallelStateSucceeded", None)?;
                        Ok(Value::Array(outputs))
                    }
                    Err(e) => {
                        self.emit(cur, "ParallelStateFailed", None)?;
                        Err(e)
                    }
                }
            }
            Kind::Map(m) => self.run_map(state, m, eff, &ctx, cur).await,
            _ => Err(StatesError::runtime(format!(
                "state {:?} has no work to attempt",
                state.name
            ))),
        }
    }

    async fn await_callback(
        &self,
        token: &str,
        state: &str,
        input: Value,
        heartbeat: Option<u64>,
    ) -> Result<Value, StatesError> {
        let (tx, mut rx) = oneshot::channel();
        self.tokens.0.borrow_mut().insert(
            token.to_owned(),
            Pending {
                state: state.to_owned(),
                input,
                sender: Some(tx),
                last_heartbeat: Instant::now(),
            },
        );
        let result = loop {
            let Some(hb) = heartbeat else {
                break rx
                    .await
                    .unwrap_or_else(|_| Err(StatesError::runtime("the callback channel closed")));
            };
            let last = self
                .tokens
                .last_heartbeat(token)
                .unwrap_or_else(Instant::now);
            let deadline = last + Duration::from_secs(hb);
            tokio::select! {
                r = &mut rx => break r.unwrap_or_else(|_| Err(StatesError::runtime("the callback channel closed"))),
                () = tokio::time::sleep_until(deadline) => {
                    if self.tokens.last_heartbeat(token).is_some_and(|l| l + Duration::from_secs(hb) <= Instant::now()) {
                        break Err(StatesError::new("States.HeartbeatTimeout", format!("Task {state:?} sent no heartbeat for {hb} seconds")));
                    }
                }
            }
        };
        self.tokens.0.borrow_mut().remove(token);
        result
    }

    async fn run_map<'s>(
        &'s self,
        state: &'s State,
        m: &'s crate::definition::MapState,
        eff: Value,
        ctx: &Value,
        cur: &'s Cursor,
    ) -> Result<Value, StatesError> {
        let items = match &m.items_path {
            PathField::Null => eff.clone(),
            other => path::apply_filter(other.path(), &eff, ctx)?,
        };
        let Value::Array(items) = items else {
            return Err(StatesError::runtime(format!(
                "The ItemsPath of Map state {:?} must point to a JSON array, found {}",
                state.name,
                match items {
                    Value::Object(_) => "an object",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )));
        };
        let limit = match self.seconds_of(&m.max_concurrency, &eff, ctx, "MaxConcurrencyPath")? {
            None | Some(0) => items.len().max(1),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let tolerated_count = self.seconds_of(
            &m.tolerated_failure_count,
            &eff,
            ctx,
            "ToleratedFailureCountPath",
        )?;
        let tolerant = tolerated_count.is_some() || m.tolerated_failure_percentage.is_some();
        self.emit(cur, "MapStateStarted", Some(json!({"length": items.len()})))?;
        let n = items.len();
        let iterations = items.into_iter().enumerate().map(|(i, value)| {
            let eff = &eff;
            async move {
                let icur = Cursor(Cell::new(cur.0.get()));
                self.emit(
                    &icur,
                    "MapIterationStarted",
                    Some(json!({"name": state.name, "index": i})),
                )?;
                let item = (i, value);
                let item_ctx = self.context(state, 0, Some(&item), None);
                let item_input = match &m.item_selector {
                    Some(tpl) => path::template(tpl, eff, &item_ctx, &mut || self.random())?,
                    None => item.1.clone(),
                };
                let result = self
                    .run_machine(&m.processor, item_input, None, &icur)
                    .await;
                let kind = if result.is_ok() {
                    "MapIterationSucceeded"
                } else {
                    "MapIterationFailed"
                };
                self.emit(&icur, kind, Some(json!({"name": state.name, "index": i})))?;
                result
            }
        });
        let mut stream = futures_util::stream::iter(iterations).buffered(limit);
        let mut results = Vec::with_capacity(n);
        let mut failures = 0usize;
        while let Some(r) = stream.next().await {
            match r {
                Ok(v) => results.push(v),
                // History and payload limits end the execution whatever the tolerance.
                Err(e)
                    if !tolerant
                        || matches!(
                            e.error.as_str(),
                            "States.Runtime" | "States.DataLimitExceeded"
                        ) =>
                {
                    drop(stream);
                    self.emit(cur, "MapStateFailed", None)?;
                    return Err(e);
                }
                Err(e) => {
                    failures += 1;
                    results.push(json!({"Error": e.error, "Cause": e.cause}));
                }
            }
        }
        drop(stream);
        let over_count = tolerated_count.is_some_and(|c| failures as u64 > c);
        let over_pct = m
            .tolerated_failure_percentage
            .is_some_and(|p| n > 0 && failures as f64 * 100.0 / n as f64 > p);
        if over_count
            || over_pct
            || (tolerant && tolerated_count.is_none() && m.tolerated_failure_percentage.is_none())
        {
            self.emit(cur, "MapStateFailed", None)?;
            return Err(StatesError::new(
                "States.ExceedToleratedFailureThreshold",
                format!(
                    "{failures} of {n} iterations of Map state {:?} failed, more than tolerated",
                    state.name
                ),
            ));
        }
        self.emit(cur, "MapStateSucceeded", None)?;
        Ok(Value::Array(results))
    }
}

#[cfg(test)]
mod tests;
