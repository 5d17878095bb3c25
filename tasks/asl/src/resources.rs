//! Where Task states get their results: a trait, and its Step Functions Local mock-config
//! implementation (`MockedResponses` with numbered `Return` / `Throw`, `StateMachines.<name>.
//! TestCases`), so users' existing mock configs work unchanged. The simulator issue adds
//! in-process handlers; activities come later.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use serde_json::Value;

use crate::definition::DefinitionError;
use crate::error::StatesError;

/// One invocation of a Task state's resource.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    pub state: String,
    /// The `Resource` after placeholder substitution.
    pub resource: String,
    /// The effective parameters.
    pub input: Value,
    /// The context object (`$$`).
    pub context: Value,
    /// The task token of a `.waitForTaskToken` task.
    pub token: Option<String>,
    /// 0 for the first attempt, then 1, 2, ... for retries.
    pub retry: u32,
}

/// What an invocation produced.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutput {
    /// The task's result.
    Done(Value),
    /// `.waitForTaskToken`: the result comes later through [`crate::runner::TaskTokens`].
    AwaitCallback,
}

/// Resolves Task resources.
pub trait TaskResources {
    fn invoke(&self, call: TaskCall) -> impl Future<Output = Result<TaskOutput, StatesError>>;
}

#[derive(Debug, Clone, PartialEq)]
enum Mocked {
    Return(Value),
    Throw(StatesError),
}

/// A mocked response: outcomes by 0-based invocation number.
#[derive(Debug, Clone, PartialEq)]
struct Response {
    ranges: Vec<(u32, u32, Mocked)>,
}

/// A parsed Step Functions Local mock config file.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// state machine → test case → state → response name
    machines: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    responses: BTreeMap<String, Response>,
}

fn err(
    path: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> DefinitionError {
    DefinitionError::new(path, message, fix)
}

impl MockConfig {
    /// Parses mock-config JSON; errors name the JSON path.
    pub fn parse(text: &str) -> Result<MockConfig, DefinitionError> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            err(
                "$",
                format!("the mock config is not valid JSON: {e}"),
                "fix the JSON syntax",
            )
        })?;
        let root = v.as_object().ok_or_else(|| {
            err(
                "$",
                "the mock config must be an object",
                "write { \"StateMachines\": ..., \"MockedResponses\": ... }",
            )
        })?;
        for k in root.keys() {
            if k != "StateMachines" && k != "MockedResponses" {
                return Err(err(
                    k.clone(),
                    format!("unknown field `{k}`"),
                    "use StateMachines and MockedResponses",
                ));
            }
        }
        let mut responses = BTreeMap::new();
        if let Some(rs) = root.get("MockedResponses") {
            let rs = rs.as_object().ok_or_else(|| {
                err(
                    "MockedResponses",
                    "must be an object",
                    "map response names to responses",
                )
            })?;
            for (name, r) in rs {
                let at = format!("MockedResponses.{name}");
                let r = r.as_object().ok_or_else(|| {
                    err(
                        &at,
                        "a mocked response must be an object",
                        "map invocation numbers (\"0\", \"1-2\") to outcomes",
                    )
                })?;
                let mut ranges = Vec::new();
                for (key, outcome) in r {
                    let here = format!("{at}.{key}");
                    let (from, to) = parse_range(key).ok_or_else(|| {
                        err(
                            &here,
                            format!("{key:?} is not an invocation number or range"),
                            "use \"0\", \"1\", or a range \"1-3\"",
                        )
                    })?;
                    let o = outcome.as_object().ok_or_else(|| {
                        err(
                            &here,
                            "an outcome must be an object",
                            "write {\"Return\": ...} or {\"Throw\": {...}}",
                        )
                    })?;
                    let mocked = match (o.get("Return"), o.get("Throw"), o.len()) {
                        (Some(v), None, 1) => Mocked::Return(v.clone()),
                        (None, Some(t), 1) => {
                            let error =
                                t.get("Error").and_then(Value::as_str).ok_or_else(|| {
                                    err(
                                        format!("{here}.Throw.Error"),
                                        "Throw needs an Error string",
                                        "add \"Error\": \"Name\"",
                                    )
                                })?;
                            let cause = t.get("Cause").and_then(Value::as_str).unwrap_or_default();
                            Mocked::Throw(StatesError::new(error, cause))
                        }
                        _ => {
                            return Err(err(
                                &here,
                                "an outcome must have exactly one of Return and Throw",
                                "keep one of them",
                            ));
                        }
                    };
                    if ranges.iter().any(|(f, t, _)| from <= *t && *f <= to) {
                        return Err(err(
                            &here,
                            format!("invocations {from}-{to} overlap another entry"),
                            "make the ranges disjoint",
                        ));
                    }
                    ranges.push((from, to, mocked));
                }
                ranges.sort_by_key(|(f, _, _)| *f);
                responses.insert(name.clone(), Response { ranges });
            }
        }
        let mut machines = BTreeMap::new();
        if let Some(ms) = root.get("StateMachines") {
            let ms = ms.as_object().ok_or_else(|| {
                err(
                    "StateMachines",
                    "must be an object",
                    "map state machine names to {\"TestCases\": ...}",
                )
            })?;
            for (m, body) in ms {
                let at = format!("StateMachines.{m}");
                let cases = body
                    .get("TestCases")
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        err(
                            format!("{at}.TestCases"),
                            "TestCases is missing",
                            "add \"TestCases\": {\"Name\": {\"State\": \"Response\"}}",
                        )
                    })?;
                let mut parsed = BTreeMap::new();
                for (case, states) in cases {
                    let here = format!("{at}.TestCases.{case}");
                    let states = states.as_object().ok_or_else(|| {
                        err(
                            &here,
                            "a test case must map state names to response names",
                            "write {\"State\": \"Response\"}",
                        )
                    })?;
                    let mut map = BTreeMap::new();
                    for (state, response) in states {
                        let response = response.as_str().ok_or_else(|| {
                            err(
                                format!("{here}.{state}"),
                                "must name a mocked response",
                                "write the response name as a string",
                            )
                        })?;
                        if !responses.contains_key(response) {
                            return Err(err(
                                format!("{here}.{state}"),
                                format!("no mocked response named {response:?}"),
                                "define it under MockedResponses",
                            ));
                        }
                        map.insert(state.clone(), response.to_owned());
                    }
                    parsed.insert(case.clone(), map);
                }
                machines.insert(m.clone(), parsed);
            }
        }
        Ok(MockConfig {
            machines,
            responses,
        })
    }

    /// The resources of one test case. `machine` may be omitted when the config has one machine.
    pub fn test_case(
        &self,
        machine: Option<&str>,
        case: &str,
    ) -> Result<MockResources, DefinitionError> {
        let name = match machine {
            Some(m) => m.to_owned(),
            None if self.machines.len() == 1 => {
                self.machines.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(err(
                    "StateMachines",
                    format!("the config has {} state machines", self.machines.len()),
                    "name the state machine (--state-machine NAME)",
                ));
            }
        };
        let cases = self.machines.get(&name).ok_or_else(|| {
            err(
                format!("StateMachines.{name}"),
                format!("no state machine {name:?} in the mock config"),
                format!(
                    "use one of {}",
                    self.machines.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let states = cases.get(case).ok_or_else(|| {
            err(
                format!("StateMachines.{name}.TestCases.{case}"),
                format!("no test case {case:?}"),
                format!(
                    "use one of {}",
                    cases.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let responses = states
            .iter()
            .filter_map(|(state, r)| {
                self.responses
                    .get(r)
                    .map(|resp| (state.clone(), (r.clone(), resp.clone())))
            })
            .collect();
        Ok(MockResources {
            case: case.to_owned(),
            responses,
            calls: RefCell::new(HashMap::new()),
        })
    }
}

fn parse_range(key: &str) -> Option<(u32, u32)> {
    match key.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => key.trim().parse().ok().map(|n| (n, n)),
    }
}

/// The mocked responses of one test case. Each state counts its own invocations (retries and
/// loops included); an invocation past the last entry is an error naming the state, never a
/// silently repeated answer.
#[derive(Debug)]
pub struct MockResources {
    case: String,
    responses: HashMap<String, (String, Response)>,
    calls: RefCell<HashMap<String, u32>>,
}

impl MockResources {
    /// How often each state was invoked.
    pub fn invocations(&self) -> HashMap<String, u32> {
        self.calls.borrow().clone()
    }
}

impl TaskResources for MockResources {
    async fn invoke(&self, call: TaskCall) -> Result<TaskOutput, StatesError> {
        let Some((name, response)) = self.responses.get(&call.state) else {
            return Err(StatesError::runtime(format!(
                "test case {:?} has no mocked response for state {:?} (resource {}); add \"{}\": \"ResponseName\" to the test case",
                self.case, call.state, call.resource, call.state
            )));
        };
        let n = {
            let mut calls = self.calls.borrow_mut();
            let c = calls.entry(call.state.clone()).or_insert(0);
            let n = *c;
            *c += 1;
            n
        };
        match response
            .ranges
            .iter()
            .find(|(f, t, _)| (*f..=*t).contains(&n))
        {
            Some((_, _, Mocked::Return(v))) => Ok(TaskOutput::Done(v.clone())),
            Some((_, _, Mocked::Throw(e))) => Err(e.clone()),
            None => Err(StatesError::runtime(format!(
                "mocked response {name:?} has no entry for invocation {n} of state {:?}; add an entry \"{n}\" (or a range) to it",
                call.state
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
      "StateMachines": {"M": {"TestCases": {"Retry": {"Call": "ThrottledTwice"}}}},
      "MockedResponses": {"ThrottledTwice": {
        "0-1": {"Throw": {"Error": "Throttled", "Cause": "slow down"}},
        "2": {"Return": {"ok": true}}}}
    }"#;

    fn call() -> TaskCall {
        TaskCall {
            state: "Call".into(),
            resource: "r".into(),
            input: Value::Null,
            context: Value::Null,
            token: None,
            retry: 0,
        }
    }

    #[tokio::test]
    async fn responses_follow_the_invocation_numbers() {
        let r = MockConfig::parse(CONFIG)
            .expect("valid")
            .test_case(None, "Retry")
            .expect("case");
        assert_eq!(
            r.invoke(call()).await.map_err(|e| e.error),
            Err("Throttled".to_owned())
        );
        assert_eq!(
            r.invoke(call()).await.map_err(|e| e.error),
            Err("Throttled".to_owned())
        );
        assert_eq!(
            r.invoke(call()).await,
            Ok(TaskOutput::Done(serde_json::json!({"ok": true})))
        );
        let past = r
            .invoke(call())
            .await
            .expect_err("no entry for invocation 3");
        assert!(past.cause.contains("invocation 3"), "{}", past.cause);
    }

    #[test]
    fn unknown_response_names_and_bad_ranges_are_named() {
        let e = MockConfig::parse(
            r#"{"StateMachines":{"M":{"TestCases":{"C":{"S":"Nope"}}}},"MockedResponses":{}}"#,
        )
        .expect_err("unknown");
        assert_eq!(e.path, "StateMachines.M.TestCases.C.S");
        let e = MockConfig::parse(r#"{"MockedResponses":{"R":{"2-1":{"Return":1}}}}"#)
            .expect_err("range");
        assert_eq!(e.path, "MockedResponses.R.2-1");
        let e = MockConfig::parse(
            r#"{"MockedResponses":{"R":{"0":{"Return":1,"Throw":{"Error":"E"}}}}}"#,
        )
        .expect_err("both");
        assert!(e.message.contains("exactly one"));
    }

    #[test]
    fn a_missing_test_case_lists_the_existing_ones() {
        let e = MockConfig::parse(CONFIG)
            .expect("valid")
            .test_case(Some("M"), "Happy")
            .expect_err("missing");
        assert!(e.fix.contains("Retry"), "{e}");
    }
}
