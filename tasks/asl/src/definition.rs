//! The parsed state machine: every state type of the Amazon States Language (JSONPath query
//! language), with the fields AWS documents. Parsing rejects unknown fields, wrong types and
//! `QueryLanguage: JSONata`, naming the state and the field.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A definition that could not be parsed or failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// Where: `States.Diagnose.Retry[0].MaxAttempts`, `StartAt`, `$`.
    pub path: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}; fix: {}", self.path, self.message, self.fix)
    }
}

impl std::error::Error for DefinitionError {}

impl DefinitionError {
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: cut(path.into(), 300),
            message: cut(message.into(), 500),
            fix: cut(fix.into(), 500),
        }
    }
}

/// Errors quote what they found; a hostile definition must not make them unbounded.
fn cut(s: String, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s;
    }
    let mut out: String = s.chars().take(max_chars).collect();
    out.push('…');
    out
}

/// A path field that may be absent (default `$`), a path, or `null` (discard / empty object).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PathField {
    #[default]
    Default,
    Path(String),
    Null,
}

impl PathField {
    /// The effective path, `None` for `null`.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Default => Some("$"),
            Self::Path(p) => Some(p),
            Self::Null => None,
        }
    }
}

fn path_field<'de, D: Deserializer<'de>>(d: D) -> Result<PathField, D::Error> {
    Ok(match Option::<String>::deserialize(d)? {
        None => PathField::Null,
        Some(p) => PathField::Path(p),
    })
}

/// `JitterStrategy` of a retrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Jitter {
    Full,
    #[default]
    None,
}

/// One entry of `Retry`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    #[serde(default = "one")]
    pub interval_seconds: u64,
    #[serde(default = "three")]
    pub max_attempts: u32,
    #[serde(default = "two")]
    pub backoff_rate: f64,
    #[serde(default)]
    pub max_delay_seconds: Option<u64>,
    #[serde(default)]
    pub jitter_strategy: Jitter,
    #[serde(default)]
    pub comment: Option<String>,
}

fn one() -> u64 {
    1
}
fn three() -> u32 {
    3
}
fn two() -> f64 {
    2.0
}

/// One entry of `Catch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    #[serde(default, deserialize_with = "path_field")]
    pub result_path: PathField,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A number of seconds given literally or by a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seconds {
    Literal(u64),
    Path(String),
}

/// Fields shared by Task, Parallel and Map.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Handling {
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub result_path: PathField,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub resource: String,
    pub handling: Handling,
    pub timeout: Option<Seconds>,
    pub heartbeat: Option<Seconds>,
}

impl Task {
    /// `.waitForTaskToken` integration pattern.
    pub fn waits_for_token(&self) -> bool {
        self.resource.ends_with(".waitForTaskToken")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub result: Option<Value>,
    pub result_path: PathField,
    pub parameters: Option<Value>,
}

/// The comparison operators of Choice rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

impl Comparison {
    pub const ALL: [Comparison; 23] = [
        Self::StringEquals,
        Self::StringLessThan,
        Self::StringGreaterThan,
        Self::StringLessThanEquals,
        Self::StringGreaterThanEquals,
        Self::StringMatches,
        Self::NumericEquals,
        Self::NumericLessThan,
        Self::NumericGreaterThan,
        Self::NumericLessThanEquals,
        Self::NumericGreaterThanEquals,
        Self::BooleanEquals,
        Self::TimestampEquals,
        Self::TimestampLessThan,
        Self::TimestampGreaterThan,
        Self::TimestampLessThanEquals,
        Self::TimestampGreaterThanEquals,
        Self::IsNull,
        Self::IsPresent,
        Self::IsNumeric,
        Self::IsString,
        Self::IsBoolean,
        Self::IsTimestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::StringEquals => "StringEquals",
            Self::StringLessThan => "StringLessThan",
            Self::StringGreaterThan => "StringGreaterThan",
            Self::StringLessThanEquals => "StringLessThanEquals",
            Self::StringGreaterThanEquals => "StringGreaterThanEquals",
            Self::StringMatches => "StringMatches",
            Self::NumericEquals => "NumericEquals",
            Self::NumericLessThan => "NumericLessThan",
            Self::NumericGreaterThan => "NumericGreaterThan",
            Self::NumericLessThanEquals => "NumericLessThanEquals",
            Self::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            Self::BooleanEquals => "BooleanEquals",
            Self::TimestampEquals => "TimestampEquals",
            Self::TimestampLessThan => "TimestampLessThan",
            Self::TimestampGreaterThan => "TimestampGreaterThan",
            Self::TimestampLessThanEquals => "TimestampLessThanEquals",
            Self::TimestampGreaterThanEquals => "TimestampGreaterThanEquals",
            Self::IsNull => "IsNull",
            Self::IsPresent => "IsPresent",
            Self::IsNumeric => "IsNumeric",
            Self::IsString => "IsString",
            Self::IsBoolean => "IsBoolean",
            Self::IsTimestamp => "IsTimestamp",
        }
    }

    /// The `Is*` tests take a boolean operand and have no `*Path` form; StringMatches has none.
    pub fn has_path_form(self) -> bool {
        !matches!(
            self,
            Self::StringMatches
                | Self::IsNull
                | Self::IsPresent
                | Self::IsNumeric
                | Self::IsString
                | Self::IsBoolean
                | Self::IsTimestamp
        )
    }
}

/// What a comparison compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(Value),
    Path(String),
}

/// A Choice rule (without its `Next`).
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare {
        variable: String,
        comparison: Comparison,
        operand: Operand,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceBranch {
    pub rule: Rule,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub choices: Vec<ChoiceBranch>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    Timestamp(String),
    SecondsPath(String),
    TimestampPath(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub error: Option<String>,
    pub cause: Option<String>,
    pub error_path: Option<String>,
    pub cause_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    pub branches: Vec<StateMachine>,
    pub handling: Handling,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    pub items_path: PathField,
    /// `ItemSelector` (or the legacy `Parameters` of a Map).
    pub item_selector: Option<Value>,
    /// `ItemProcessor` (or the legacy `Iterator`).
    pub processor: Box<StateMachine>,
    pub max_concurrency: Option<Seconds>,
    pub tolerated_failure_count: Option<Seconds>,
    pub tolerated_failure_percentage: Option<f64>,
    pub handling: Handling,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Pass(Pass),
    Task(Box<Task>),
    Choice(Choice),
    Wait(WaitFor),
    Succeed,
    Fail(Fail),
    Parallel(Parallel),
    Map(Box<MapState>),
}

impl Kind {
    /// The `Type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Pass(_) => "Pass",
            Self::Task(_) => "Task",
            Self::Choice(_) => "Choice",
            Self::Wait(_) => "Wait",
            Self::Succeed => "Succeed",
            Self::Fail(_) => "Fail",
            Self::Parallel(_) => "Parallel",
            Self::Map(_) => "Map",
        }
    }

    /// Retry, Catch and the rest of the result handling, for the states that have them.
    pub fn handling(&self) -> Option<&Handling> {
        match self {
            Self::Task(t) => Some(&t.handling),
            Self::Parallel(p) => Some(&p.handling),
            Self::Map(m) => Some(&m.handling),
            _ => None,
        }
    }
}

/// How a state hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Next(String),
    End,
    /// Choice, Succeed and Fail decide for themselves.
    Own,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub comment: Option<String>,
    pub input_path: PathField,
    pub output_path: PathField,
    pub transition: Transition,
    pub kind: Kind,
}

impl State {
    /// Every state this one may hand on to (Next, Choice targets and Default, Catch targets).
    pub fn successors(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Transition::Next(n) = &self.transition {
            out.push(n.as_str());
        }
        if let Kind::Choice(c) = &self.kind {
            out.extend(c.choices.iter().map(|b| b.next.as_str()));
            out.extend(c.default.as_deref());
        }
        if let Some(h) = self.kind.handling() {
            out.extend(h.catch.iter().map(|c| c.next.as_str()));
        }
        out
    }
}

/// A state machine (or a Parallel branch, or a Map's processor).
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub start_at: String,
    /// States in definition order.
    pub states: Vec<State>,
    index: HashMap<String, usize>,
    pub timeout_seconds: Option<u64>,
}

impl StateMachine {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.index.get(name).map(|i| &self.states[*i])
    }

    /// Parses a definition from JSON text. Parsing checks shapes and types; [`crate::validate`]
    /// checks the graph (transitions, reachability, Retry/Catch order, paths).
    pub fn parse(text: &str) -> Result<StateMachine, DefinitionError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            DefinitionError::new(
                "$",
                format!("the definition is not valid JSON: {e}"),
                "check for a missing comma, quote or bracket at the position given",
            )
        })?;
        Self::from_value(&value, "")
    }

    /// Parses a definition already read as JSON; `at` prefixes error paths (for branches).
    pub fn from_value(value: &Value, at: &str) -> Result<StateMachine, DefinitionError> {
        let p = |field: &str| {
            if at.is_empty() {
                field.to_owned()
            } else {
                format!("{at}.{field}")
            }
        };
        let obj = value.as_object().ok_or_else(|| {
            DefinitionError::new(
                p("$"),
                "a state machine must be a JSON object",
                "wrap the definition in { }",
            )
        })?;
        check_fields(
            obj,
            &p(""),
            &[
                "Comment",
                "StartAt",
                "States",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
            ],
            "a state machine",
        )?;
        if let Some(ql) = obj.get("QueryLanguage").and_then(Value::as_str)
            && ql != "JSONPath"
        {
            return Err(DefinitionError::new(
                p("QueryLanguage"),
                format!("QueryLanguage {ql:?} is not supported by this runner"),
                "use \"JSONPath\" (JSONata is out of scope for now)",
            ));
        }
        let start_at = obj.get("StartAt").and_then(Value::as_str).ok_or_else(|| {
            DefinitionError::new(
                p("StartAt"),
                "StartAt is missing or not a string",
                "name the first state: \"StartAt\": \"MyState\"",
            )
        })?;
        let states_obj = obj
            .get("States")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                DefinitionError::new(
                    p("States"),
                    "States is missing or not an object",
                    "add \"States\": { \"Name\": { \"Type\": ... } }",
                )
            })?;
        if states_obj.is_empty() {
            return Err(DefinitionError::new(
                p("States"),
                "States is empty",
                "add at least one state",
            ));
        }
        let mut states = Vec::with_capacity(states_obj.len());
        let mut index = HashMap::new();
        for (name, v) in states_obj {
            let state = parse_state(name, v, &p(&format!("States.{name}")))?;
            index.insert(name.clone(), states.len());
            states.push(state);
        }
        let timeout_seconds = match obj.get("TimeoutSeconds") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                DefinitionError::new(
                    p("TimeoutSeconds"),
                    "TimeoutSeconds must be a positive integer",
                    "give a whole number of seconds",
                )
            })?),
        };
        Ok(StateMachine {
            comment: obj
                .get("Comment")
                .and_then(Value::as_str)
                .map(str::to_owned),
            start_at: start_at.to_owned(),
            states,
            index,
            timeout_seconds,
        })
    }
}

fn check_fields(
    obj: &serde_json::Map<String, Value>,
    at: &str,
    allowed: &[&str],
    what: &str,
) -> Result<(), DefinitionError> {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            return Err(DefinitionError::new(
                path,
                format!("unknown field `{key}` for {what}"),
                format!("remove it or use one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn typed<T: DeserializeOwned>(v: &Value, at: &str, what: &str) -> Result<T, DefinitionError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner.is_empty() || inner == "." {
            at.to_owned()
        } else if inner.starts_with('[') {
            format!("{at}{inner}")
        } else {
            format!("{at}.{inner}")
        };
        DefinitionError::new(
            path,
            e.into_inner().to_string(),
            format!("see the AWS documentation of {what}"),
        )
    })
}

const COMMON: &[&str] = &[
    "Type",
    "Comment",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
];

fn allowed_for(ty: &str) -> Option<Vec<&'static str>> {
    let extra: &[&str] = match ty {
        "Pass" => &["Next", "End", "ResultPath", "Parameters", "Result"],
        "Task" => &[
            "Next",
            "End",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        "Choice" => &["Choices", "Default"],
        "Wait" => &[
            "Next",
            "End",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
        ],
        "Succeed" => &[],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Map" => &[
            "Next",
            "End",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "ItemsPath",
            "ItemSelector",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "Label",
        ],
        _ => return None,
    };
    let mut all: Vec<&str> = COMMON.to_vec();
    if matches!(ty, "Fail") {
        all.retain(|f| !matches!(*f, "InputPath" | "OutputPath"));
    }
    all.extend_from_slice(extra);
    Some(all)
}

fn opt_str(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<String>, DefinitionError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(DefinitionError::new(
            format!("{at}.{key}"),
            format!("{key} must be a string, found {other}"),
            format!("write {key} as a JSON string"),
        )),
    }
}

fn path_of(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<PathField, DefinitionError> {
    match obj.get(key) {
        None => Ok(PathField::Default),
        Some(Value::Null) => Ok(PathField::Null),
        Some(Value::String(s)) => Ok(PathField::Path(s.clone())),
        Some(other) => Err(DefinitionError::new(
            format!("{at}.{key}"),
            format!("{key} must be a path string or null, found {other}"),
            format!("write {key} as \"$.field\" or null"),
        )),
    }
}

fn seconds(
    obj: &serde_json::Map<String, Value>,
    literal: &str,
    path: &str,
    at: &str,
) -> Result<Option<Seconds>, DefinitionError> {
    match (obj.get(literal), obj.get(path)) {
        (Some(_), Some(_)) => Err(DefinitionError::new(
            format!("{at}.{literal}"),
            format!("{literal} and {path} are both set"),
            format!("keep only one of {literal} and {path}"),
        )),
        (Some(v), None) => v
            .as_u64()
            .map(|n| Some(Seconds::Literal(n)))
            .ok_or_else(|| {
                DefinitionError::new(
                    format!("{at}.{literal}"),
                    format!("{literal} must be a non-negative integer, found {v}"),
                    "use a whole number",
                )
            }),
        (None, Some(v)) => v
            .as_str()
            .map(|s| Some(Seconds::Path(s.to_owned())))
            .ok_or_else(|| {
                DefinitionError::new(
                    format!("{at}.{path}"),
                    format!("{path} must be a path string"),
                    "write it as \"$.field\"",
                )
            }),
        (None, None) => Ok(None),
    }
}

fn handling(obj: &serde_json::Map<String, Value>, at: &str) -> Result<Handling, DefinitionError> {
    Ok(Handling {
        parameters: obj.get("Parameters").cloned(),
        result_selector: obj.get("ResultSelector").cloned(),
        result_path: path_of(obj, "ResultPath", at)?,
        retry: match obj.get("Retry") {
            None => Vec::new(),
            Some(v) => typed(v, &format!("{at}.Retry"), "Retry")?,
        },
        catch: match obj.get("Catch") {
            None => Vec::new(),
            Some(v) => typed(v, &format!("{at}.Catch"), "Catch")?,
        },
    })
}

fn parse_state(name: &str, v: &Value, at: &str) -> Result<State, DefinitionError> {
    let obj = v.as_object().ok_or_else(|| {
        DefinitionError::new(
            at,
            format!("state {name:?} must be a JSON object"),
            "write the state as { \"Type\": ... }",
        )
    })?;
    if name.is_empty() || name.chars().count() > 80 {
        return Err(DefinitionError::new(
            at,
            format!("state name {name:?} must have 1 to 80 characters"),
            "shorten the state name",
        ));
    }
    let ty = obj.get("Type").and_then(Value::as_str).ok_or_else(|| {
        DefinitionError::new(
            format!("{at}.Type"),
            format!("state {name:?} has no Type"),
            "add \"Type\": one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map",
        )
    })?;
    let allowed = allowed_for(ty).ok_or_else(|| {
        DefinitionError::new(
            format!("{at}.Type"),
            format!("state {name:?} has unknown Type {ty:?}"),
            "use one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map",
        )
    })?;
    check_fields(obj, at, &allowed, &format!("a {ty} state"))?;
    if let Some(ql) = obj.get("QueryLanguage").and_then(Value::as_str)
        && ql != "JSONPath"
    {
        return Err(DefinitionError::new(
            format!("{at}.QueryLanguage"),
            format!("state {name:?} uses QueryLanguage {ql:?}, which this runner does not support"),
            "use JSONPath (JSONata is out of scope for now)",
        ));
    }
    let transition = match (obj.get("Next"), obj.get("End")) {
        (Some(_), Some(_)) => {
            return Err(DefinitionError::new(
                format!("{at}.End"),
                format!("state {name:?} has both Next and End"),
                "keep only one of Next and End",
            ));
        }
        (Some(Value::String(n)), None) => Transition::Next(n.clone()),
        (Some(other), None) => {
            return Err(DefinitionError::new(
                format!("{at}.Next"),
                format!("Next must be a state name, found {other}"),
                "write Next as a string",
            ));
        }
        (None, Some(Value::Bool(true))) => Transition::End,
        (None, Some(other)) => {
            return Err(DefinitionError::new(
                format!("{at}.End"),
                format!("End must be true, found {other}"),
                "write \"End\": true or use Next",
            ));
        }
        (None, None) => Transition::Own,
    };
    let kind = match ty {
        "Pass" => Kind::Pass(Pass {
            result: obj.get("Result").cloned(),
            result_path: path_of(obj, "ResultPath", at)?,
            parameters: obj.get("Parameters").cloned(),
        }),
        "Task" => {
            let resource = opt_str(obj, "Resource", at)?.ok_or_else(|| {
                DefinitionError::new(
                    format!("{at}.Resource"),
                    format!("Task {name:?} has no Resource"),
                    "add \"Resource\": an ARN or a ${Placeholder}",
                )
            })?;
            Kind::Task(Box::new(Task {
                resource,
                handling: handling(obj, at)?,
                timeout: seconds(obj, "TimeoutSeconds", "TimeoutSecondsPath", at)?,
                heartbeat: seconds(obj, "HeartbeatSeconds", "HeartbeatSecondsPath", at)?,
            }))
        }
        "Choice" => Kind::Choice(parse_choice(obj, at)?),
        "Wait" => {
            let set: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                .into_iter()
                .filter(|k| obj.contains_key(*k))
                .collect();
            if set.len() != 1 {
                return Err(DefinitionError::new(
                    at,
                    format!(
                        "Wait {name:?} must have exactly one of Seconds, Timestamp, SecondsPath, TimestampPath (has {})",
                        if set.is_empty() {
                            "none".to_owned()
                        } else {
                            set.join(", ")
                        }
                    ),
                    "keep exactly one of them",
                ));
            }
            let field = set[0];
            let v = &obj[field];
            let bad = || {
                DefinitionError::new(
                    format!("{at}.{field}"),
                    format!("{field} has the wrong type: {v}"),
                    "Seconds takes a whole number, the others a string",
                )
            };
            Kind::Wait(match field {
                "Seconds" => WaitFor::Seconds(v.as_u64().ok_or_else(bad)?),
                "Timestamp" => WaitFor::Timestamp(v.as_str().ok_or_else(bad)?.to_owned()),
                "SecondsPath" => WaitFor::SecondsPath(v.as_str().ok_or_else(bad)?.to_owned()),
                _ => WaitFor::TimestampPath(v.as_str().ok_or_else(bad)?.to_owned()),
            })
        }
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail(Fail {
            error: opt_str(obj, "Error", at)?,
            cause: opt_str(obj, "Cause", at)?,
            error_path: opt_str(obj, "ErrorPath", at)?,
            cause_path: opt_str(obj, "CausePath", at)?,
        }),
        "Parallel" => {
            let branches = obj
                .get("Branches")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    DefinitionError::new(
                        format!("{at}.Branches"),
                        format!("Parallel {name:?} has no Branches array"),
                        "add \"Branches\": [ {\"StartAt\": ..., \"States\": {...}} ]",
                    )
                })?;
            if branches.is_empty() {
                return Err(DefinitionError::new(
                    format!("{at}.Branches"),
                    "Branches is empty",
                    "add at least one branch",
                ));
            }
            Kind::Parallel(Parallel {
                branches: branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| StateMachine::from_value(b, &format!("{at}.Branches[{i}]")))
                    .collect::<Result<_, _>>()?,
                handling: handling(obj, at)?,
            })
        }
        "Map" => {
            let (key, proc_value) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
                (Some(_), Some(_)) => {
                    return Err(DefinitionError::new(
                        format!("{at}.Iterator"),
                        "both ItemProcessor and Iterator are set",
                        "keep ItemProcessor (Iterator is its legacy name)",
                    ));
                }
                (Some(p), None) => ("ItemProcessor", p),
                (None, Some(p)) => ("Iterator", p),
                (None, None) => {
                    return Err(DefinitionError::new(
                        at,
                        format!("Map {name:?} has no ItemProcessor"),
                        "add \"ItemProcessor\": {\"StartAt\": ..., \"States\": {...}}",
                    ));
                }
            };
            let proc_at = format!("{at}.{key}");
            let mut proc_value = proc_value.clone();
            if let Some(p) = proc_value.as_object_mut()
                && let Some(cfg) = p.remove("ProcessorConfig")
            {
                let mode = cfg.get("Mode").and_then(Value::as_str).unwrap_or("INLINE");
                if mode != "INLINE" {
                    return Err(DefinitionError::new(
                        format!("{proc_at}.ProcessorConfig.Mode"),
                        format!(
                            "Map {name:?} uses {mode} mode, which this runner does not support"
                        ),
                        "use INLINE mode locally",
                    ));
                }
            }
            let (item_selector, parameters) = (
                obj.get("ItemSelector").cloned(),
                obj.get("Parameters").cloned(),
            );
            if item_selector.is_some() && parameters.is_some() {
                return Err(DefinitionError::new(
                    format!("{at}.Parameters"),
                    "both ItemSelector and Parameters are set on a Map",
                    "keep ItemSelector (Parameters is its legacy name)",
                ));
            }
            let pct = match obj.get("ToleratedFailurePercentage") {
                None => None,
                Some(v) => Some(
                    v.as_f64()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| {
                            DefinitionError::new(
                                format!("{at}.ToleratedFailurePercentage"),
                                format!("{v} is not a percentage"),
                                "use a number from 0 to 100",
                            )
                        })?,
                ),
            };
            let mut h = handling(obj, at)?;
            h.parameters = None;
            Kind::Map(Box::new(MapState {
                items_path: path_of(obj, "ItemsPath", at)?,
                item_selector: item_selector.or(parameters),
                processor: Box::new(StateMachine::from_value(&proc_value, &proc_at)?),
                max_concurrency: seconds(obj, "MaxConcurrency", "MaxConcurrencyPath", at)?,
                tolerated_failure_count: seconds(
                    obj,
                    "ToleratedFailureCount",
                    "ToleratedFailureCountPath",
                    at,
                )?,
                tolerated_failure_percentage: pct,
                handling: h,
                label: opt_str(obj, "Label", at)?,
            }))
        }
        _ => unreachable_type(ty, at)?,
    };
    Ok(State {
        name: name.to_owned(),
        comment: opt_str(obj, "Comment", at)?,
        input_path: if ty == "Fail" {
            PathField::Default
        } else {
            path_of(obj, "InputPath", at)?
        },
        output_path: if ty == "Fail" {
            PathField::Default
        } else {
            path_of(obj, "OutputPath", at)?
        },
        transition,
        kind,
    })
}

fn unreachable_type(ty: &str, at: &str) -> Result<Kind, DefinitionError> {
    Err(DefinitionError::new(
        format!("{at}.Type"),
        format!("unknown Type {ty:?}"),
        "use one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map",
    ))
}

fn parse_choice(obj: &serde_json::Map<String, Value>, at: &str) -> Result<Choice, DefinitionError> {
    let choices = obj
        .get("Choices")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            DefinitionError::new(
                format!("{at}.Choices"),
                "a Choice state needs a Choices array",
                "add \"Choices\": [ {\"Variable\": ..., \"StringEquals\": ..., \"Next\": ...} ]",
            )
        })?;
    if choices.is_empty() {
        return Err(DefinitionError::new(
            format!("{at}.Choices"),
            "Choices is empty",
            "add at least one choice rule",
        ));
    }
    let branches = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = format!("{at}.Choices[{i}]");
            let next = c.get("Next").and_then(Value::as_str).ok_or_else(|| {
                DefinitionError::new(
                    format!("{p}.Next"),
                    "a top-level choice rule needs Next",
                    "add \"Next\": a state name",
                )
            })?;
            Ok(ChoiceBranch {
                rule: parse_rule(c, &p, true, 0)?,
                next: next.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, DefinitionError>>()?;
    Ok(Choice {
        choices: branches,
        default: opt_str(obj, "Default", at)?,
    })
}

fn parse_rule(v: &Value, at: &str, top: bool, depth: usize) -> Result<Rule, DefinitionError> {
    if depth > 64 {
        return Err(DefinitionError::new(
            at,
            "choice rules nest too deeply",
            "flatten the rule",
        ));
    }
    let obj = v.as_object().ok_or_else(|| {
        DefinitionError::new(
            at,
            "a choice rule must be an object",
            "write it as { \"Variable\": ..., ... }",
        )
    })?;
    for key in obj.keys() {
        let known = matches!(key.as_str(), "Variable" | "And" | "Or" | "Not" | "Comment")
            || (top && key == "Next")
            || Comparison::ALL.iter().any(|c| {
                key == c.name() || (c.has_path_form() && key.strip_suffix("Path") == Some(c.name()))
            });
        if !known {
            return Err(DefinitionError::new(
                format!("{at}.{key}"),
                format!("unknown field `{key}` in a choice rule"),
                if key == "Next" {
                    "Next is only allowed on top-level choice rules".to_owned()
                } else {
                    "use Variable with one comparison operator, or And / Or / Not".to_owned()
                },
            ));
        }
    }
    let list = |key: &str| -> Result<Vec<Rule>, DefinitionError> {
        let items = obj[key]
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                DefinitionError::new(
                    format!("{at}.{key}"),
                    format!("{key} must be a non-empty array of rules"),
                    "list at least one rule",
                )
            })?;
        items
            .iter()
            .enumerate()
            .map(|(i, r)| parse_rule(r, &format!("{at}.{key}[{i}]"), false, depth + 1))
            .collect()
    };
    let combinators = ["And", "Or", "Not"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    if combinators > 0 {
        if combinators > 1 || obj.contains_key("Variable") {
            return Err(DefinitionError::new(
                at,
                "a rule combines And/Or/Not with another operator",
                "use exactly one of And, Or, Not, or Variable + comparison",
            ));
        }
        if obj.contains_key("And") {
            return Ok(Rule::And(list("And")?));
        }
        if obj.contains_key("Or") {
            return Ok(Rule::Or(list("Or")?));
        }
        return Ok(Rule::Not(Box::new(parse_rule(
            &obj["Not"],
            &format!("{at}.Not"),
            false,
            depth + 1,
        )?)));
    }
    let variable = obj.get("Variable").and_then(Value::as_str).ok_or_else(|| {
        DefinitionError::new(
            format!("{at}.Variable"),
            "a comparison needs Variable (a path string)",
            "add \"Variable\": \"$.field\"",
        )
    })?;
    let ops: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "Variable" | "Next" | "Comment"))
        .collect();
    let [(key, operand)] = ops.as_slice() else {
        return Err(DefinitionError::new(
            at,
            format!(
                "a comparison needs exactly one operator, found {}",
                ops.len()
            ),
            "keep one of StringEquals, NumericGreaterThan, IsPresent, ...",
        ));
    };
    let (comparison, is_path) = Comparison::ALL
        .iter()
        .find_map(|c| {
            if key.as_str() == c.name() {
                Some((*c, false))
            } else if c.has_path_form() && key.strip_suffix("Path") == Some(c.name()) {
                Some((*c, true))
            } else {
                None
            }
        })
        .ok_or_else(|| {
            DefinitionError::new(
                format!("{at}.{key}"),
                format!("unknown operator {key}"),
                "see the Choice state documentation",
            )
        })?;
    let wrong = |want: &str| {
        DefinitionError::new(
            format!("{at}.{key}"),
            format!("{key} takes {want}, found {operand}"),
            format!("give {key} {want}"),
        )
    };
    let operand = if is_path {
        Operand::Path(
            operand
                .as_str()
                .ok_or_else(|| wrong("a path string"))?
                .to_owned(),
        )
    } else {
        use Comparison::*;
        let ok = match comparison {
            StringEquals
            | StringLessThan
            | StringGreaterThan
            | StringLessThanEquals
            | StringGreaterThanEquals
            | StringMatches
            | TimestampEquals
            | TimestampLessThan
            | TimestampGreaterThan
            | TimestampLessThanEquals
            | TimestampGreaterThanEquals => operand.is_string(),
            NumericEquals
            | NumericLessThan
            | NumericGreaterThan
            | NumericLessThanEquals
            | NumericGreaterThanEquals => operand.is_number(),
            BooleanEquals | IsNull | IsPresent | IsNumeric | IsString | IsBoolean | IsTimestamp => {
                operand.is_boolean()
            }
        };
        if !ok {
            let want = if comparison.name().starts_with("String")
                || comparison.name().starts_with("Timestamp")
            {
                "a string"
            } else if comparison.name().starts_with("Numeric") {
                "a number"
            } else {
                "true or false"
            };
            return Err(wrong(want));
        }
        Operand::Value((*operand).clone())
    };
    Ok(Rule::Compare {
        variable: variable.to_owned(),
        comparison,
        operand,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> DefinitionError {
        StateMachine::parse(text).expect_err("invalid")
    }

    #[test]
    fn a_minimal_machine_parses() {
        let m = StateMachine::parse(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#)
            .expect("valid");
        assert_eq!(m.start_at, "A");
        assert_eq!(
            m.state("A").map(|s| s.transition.clone()),
            Some(Transition::End)
        );
    }

    #[test]
    fn unknown_state_types_name_the_state() {
        let e = err(r#"{"StartAt":"A","States":{"A":{"Type":"Sleep","End":true}}}"#);
        assert_eq!(e.path, "States.A.Type");
        assert!(e.message.contains("Sleep"), "{e}");
    }

    #[test]
    fn unknown_fields_name_the_state_and_field() {
        let e = err(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Retry":[]}}}"#);
        assert_eq!(e.path, "States.A.Retry");
        assert!(e.message.contains("a Pass state"), "{e}");
    }

    #[test]
    fn jsonata_is_refused_with_the_state_named() {
        let e = err(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","QueryLanguage":"JSONata","End":true}}}"#,
        );
        assert_eq!(e.path, "States.A.QueryLanguage");
        assert!(e.fix.contains("JSONPath"));
    }

    #[test]
    fn wrongly_typed_retry_fields_give_the_path() {
        let e = err(
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"r","End":true,"Retry":[{"ErrorEquals":["X"],"MaxAttempts":"three"}]}}}"#,
        );
        assert_eq!(e.path, "States.A.Retry[0].MaxAttempts");
    }

    #[test]
    fn choice_rules_parse_with_paths_and_combinators() {
        let m = StateMachine::parse(
            r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[
                {"And":[{"Variable":"$.a","NumericGreaterThanPath":"$.b"},{"Not":{"Variable":"$.s","StringMatches":"x*"}}],"Next":"D"}],
                "Default":"D"},"D":{"Type":"Succeed"}}}"#,
        )
        .expect("valid");
        let Some(State {
            kind: Kind::Choice(c),
            ..
        }) = m.state("C")
        else {
            panic!("choice")
        };
        assert!(matches!(&c.choices[0].rule, Rule::And(v) if v.len() == 2));
    }

    #[test]
    fn a_comparison_with_the_wrong_operand_type_is_named() {
        let e = err(
            r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.a","NumericEquals":"1","Next":"D"}]},"D":{"Type":"Succeed"}}}"#,
        );
        assert_eq!(e.path, "States.C.Choices[0].NumericEquals");
        assert!(e.message.contains("a number"), "{e}");
    }

    #[test]
    fn next_inside_a_nested_rule_is_rejected() {
        let e = err(
            r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Not":{"Variable":"$.a","IsNull":true,"Next":"D"},"Next":"D"}]},"D":{"Type":"Succeed"}}}"#,
        );
        assert_eq!(e.path, "States.C.Choices[0].Not.Next");
    }

    #[test]
    fn a_wait_needs_exactly_one_duration() {
        let e = err(
            r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"SecondsPath":"$.s","End":true}}}"#,
        );
        assert!(e.message.contains("exactly one"), "{e}");
    }

    #[test]
    fn map_and_parallel_nest_with_paths_in_errors() {
        let e = err(
            r#"{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Bogus","End":true}}}}}}"#,
        );
        assert_eq!(e.path, "States.M.ItemProcessor.States.X.Type");
        let e = err(
            r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass","End":true,"Bad":1}}}]}}}"#,
        );
        assert_eq!(e.path, "States.P.Branches[0].States.X.Bad");
    }

    #[test]
    fn invalid_json_is_a_clear_error() {
        let e = err("{\"StartAt\": ");
        assert_eq!(e.path, "$");
        assert!(e.message.contains("not valid JSON"));
    }

    #[test]
    fn distributed_map_is_refused() {
        let e = err(
            r#"{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED"},"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}}}}"#,
        );
        assert!(e.message.contains("DISTRIBUTED"), "{e}");
    }
}
