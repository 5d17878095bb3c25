//! Static validation of a parsed state machine. Every problem is reported (not just the first),
//! each naming the state and field: dangling `Next`, unreachable states, states from which the
//! machine can never finish, a missing `Next`/`End`, `States.ALL` not alone or not last in Retry
//! and Catch, unknown `States.*` error names, bad paths, bad templates, a `.waitForTaskToken`
//! task that never passes its token, and impossible timeouts.

use std::collections::{BTreeSet, HashSet, VecDeque};

use serde_json::Value;

use crate::definition::{
    DefinitionError, Kind, Operand, PathField, Rule, Seconds, State, StateMachine, Transition,
    WaitFor,
};
use crate::{choice, intrinsics, path};

/// The error names Step Functions defines (`States.*`).
pub const STATES_ERRORS: &[&str] = &[
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
    "States.BranchFailed",
    "States.QueryEvaluationError",
];

/// Validates a whole definition; an empty list means valid.
pub fn validate(sm: &StateMachine) -> Vec<DefinitionError> {
    let mut errors = Vec::new();
    machine(sm, "", &mut errors);
    errors
}

fn at(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else {
        format!("{prefix}.{rest}")
    }
}

fn machine(sm: &StateMachine, prefix: &str, out: &mut Vec<DefinitionError>) {
    if sm.state(&sm.start_at).is_none() {
        out.push(DefinitionError::new(
            at(prefix, "StartAt"),
            format!("StartAt names {:?}, which is not a state", sm.start_at),
            format!("use one of {}", names(sm)),
        ));
    }
    for s in &sm.states {
        state(sm, s, &at(prefix, &format!("States.{}", s.name)), out);
    }
    // Reachability from StartAt.
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([sm.start_at.as_str()]);
    while let Some(n) = queue.pop_front() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(s) = sm.state(n) {
            queue.extend(s.successors());
        }
    }
    for s in &sm.states {
        if !seen.contains(s.name.as_str()) {
            out.push(DefinitionError::new(
                at(prefix, &format!("States.{}", s.name)),
                format!(
                    "state {:?} is unreachable from StartAt {:?}",
                    s.name, sm.start_at
                ),
                "point a Next, Default or Catch at it, or remove it",
            ));
        }
    }
    // Every reachable state must be able to finish (reach an End, Succeed or Fail).
    let terminal = |s: &State| {
        matches!(s.transition, Transition::End) || matches!(s.kind, Kind::Succeed | Kind::Fail(_))
    };
    let mut can_finish: HashSet<&str> = sm
        .states
        .iter()
        .filter(|s| terminal(s))
        .map(|s| s.name.as_str())
        .collect();
    loop {
        let before = can_finish.len();
        for s in &sm.states {
            if !can_finish.contains(s.name.as_str())
                && s.successors().iter().any(|n| can_finish.contains(n))
            {
                can_finish.insert(s.name.as_str());
            }
        }
        if can_finish.len() == before {
            break;
        }
    }
    if can_finish.is_empty() {
        out.push(DefinitionError::new(
            at(prefix, "States"),
            "no state ends the machine",
            "give a state \"End\": true, or add a Succeed or Fail state",
        ));
    } else {
        for s in &sm.states {
            if seen.contains(s.name.as_str()) && !can_finish.contains(s.name.as_str()) {
                out.push(DefinitionError::new(
                    at(prefix, &format!("States.{}", s.name)),
                    format!(
                        "from state {:?} the machine can never finish (a loop with no way out)",
                        s.name
                    ),
                    "add a Choice branch or Catch that leaves the loop",
                ));
            }
        }
    }
}

fn names(sm: &StateMachine) -> String {
    sm.states
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn target(sm: &StateMachine, name: &str, path: String, out: &mut Vec<DefinitionError>) {
    if sm.state(name).is_none() {
        out.push(DefinitionError::new(
            path,
            format!("{name:?} is not a state of this machine"),
            format!("use one of {}", names(sm)),
        ));
    }
}

fn check_path(p: &str, path_at: String, out: &mut Vec<DefinitionError>) {
    if let Err(e) = path::check(p) {
        out.push(DefinitionError::new(
            path_at,
            e,
            "write a JSONPath such as $.field, $.list[0] or $$.Execution.Id",
        ));
    }
}

fn check_field(f: &PathField, path_at: String, reference: bool, out: &mut Vec<DefinitionError>) {
    if let PathField::Path(p) = f {
        if reference {
            if let Err(e) = path::check_reference(p) {
                out.push(DefinitionError::new(
                    path_at,
                    e,
                    "ResultPath takes a reference path such as $.result",
                ));
            }
        } else {
            check_path(p, path_at, out);
        }
    }
}

fn check_template(v: &Value, path_at: &str, out: &mut Vec<DefinitionError>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let here = format!("{path_at}.{k}");
                if k.ends_with(".$") {
                    match v.as_str() {
                        Some(s) if intrinsics::is_intrinsic(s) => {}
                        Some(s) => check_path(s, here, out),
                        None => out.push(DefinitionError::new(here, format!("the field {k:?} ends in .$ but its value is not a string"), "give it a path ($.x, $$.x) or an intrinsic function (States.Format(...))")),
                    }
                } else {
                    check_template(v, &here, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_template(v, &format!("{path_at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn mentions_token(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k.ends_with(".$") && v.as_str().is_some_and(|s| s.contains("$$.Task.Token")))
                || mentions_token(v)
        }),
        Value::Array(a) => a.iter().any(mentions_token),
        _ => false,
    }
}

fn error_names(
    list: &[String],
    path_at: &str,
    what: &str,
    is_last: bool,
    out: &mut Vec<DefinitionError>,
) {
    if list.is_empty() {
        out.push(DefinitionError::new(
            format!("{path_at}.ErrorEquals"),
            format!("a {what} with an empty ErrorEquals never matches"),
            "list at least one error name",
        ));
    }
    for name in list {
        if name.starts_with("States.") && !STATES_ERRORS.contains(&name.as_str()) {
            out.push(DefinitionError::new(
                format!("{path_at}.ErrorEquals"),
                format!("{name:?} is not an error Step Functions defines"),
                "use a States.* name from the documentation, or your task's own error name (which must not start with States.)",
            ));
        }
    }
    if list.iter().any(|n| n == "States.ALL") {
        if list.len() > 1 {
            out.push(DefinitionError::new(
                format!("{path_at}.ErrorEquals"),
                "States.ALL must appear alone in ErrorEquals",
                "move the other names into an earlier entry",
            ));
        }
        if !is_last {
            out.push(DefinitionError::new(
                path_at.to_owned(),
                format!("a {what} after the States.ALL {what} can never match"),
                format!("make the States.ALL {what} the last one"),
            ));
        }
    }
}

fn seconds(s: &Option<Seconds>, path_at: String, out: &mut Vec<DefinitionError>) -> Option<u64> {
    match s {
        Some(Seconds::Literal(n)) => Some(*n),
        Some(Seconds::Path(p)) => {
            check_path(p, path_at, out);
            None
        }
        None => None,
    }
}

fn rule(r: &Rule, path_at: &str, out: &mut Vec<DefinitionError>) {
    match r {
        Rule::And(v) | Rule::Or(v) => {
            let key = if matches!(r, Rule::And(_)) {
                "And"
            } else {
                "Or"
            };
            for (i, r) in v.iter().enumerate() {
                rule(r, &format!("{path_at}.{key}[{i}]"), out);
            }
        }
        Rule::Not(r) => rule(r, &format!("{path_at}.Not"), out),
        Rule::Compare {
            variable,
            comparison,
            operand,
        } => {
            check_path(variable, format!("{path_at}.Variable"), out);
            match operand {
                Operand::Path(p) => {
                    check_path(p, format!("{path_at}.{}Path", comparison.name()), out)
                }
                Operand::Value(Value::String(s))
                    if comparison.name().starts_with("Timestamp")
                        && choice::parse_timestamp(s).is_none() =>
                {
                    out.push(DefinitionError::new(
                        format!("{path_at}.{}", comparison.name()),
                        format!("{s:?} is not an RFC 3339 timestamp"),
                        "write it like 2026-01-01T00:00:00Z",
                    ));
                }
                Operand::Value(_) => {}
            }
        }
    }
}

fn state(sm: &StateMachine, s: &State, here: &str, out: &mut Vec<DefinitionError>) {
    let needs_transition = matches!(
        s.kind,
        Kind::Pass(_) | Kind::Task(_) | Kind::Wait(_) | Kind::Parallel(_) | Kind::Map(_)
    );
    match &s.transition {
        Transition::Next(n) => target(sm, n, format!("{here}.Next"), out),
        Transition::Own if needs_transition => out.push(DefinitionError::new(
            here.to_owned(),
            format!(
                "{} state {:?} has neither Next nor End",
                s.kind.type_name(),
                s.name
            ),
            "add \"Next\": a state name, or \"End\": true",
        )),
        _ => {}
    }
    check_field(&s.input_path, format!("{here}.InputPath"), false, out);
    check_field(&s.output_path, format!("{here}.OutputPath"), false, out);
    if let Some(h) = s.kind.handling() {
        check_field(&h.result_path, format!("{here}.ResultPath"), true, out);
        if let Some(p) = &h.parameters {
            check_template(p, &format!("{here}.Parameters"), out);
        }
        if let Some(p) = &h.result_selector {
            check_template(p, &format!("{here}.ResultSelector"), out);
        }
        for (i, r) in h.retry.iter().enumerate() {
            let p = format!("{here}.Retry[{i}]");
            error_names(&r.error_equals, &p, "retrier", i + 1 == h.retry.len(), out);
            if r.backoff_rate < 1.0 || !r.backoff_rate.is_finite() {
                out.push(DefinitionError::new(
                    format!("{p}.BackoffRate"),
                    format!("BackoffRate {} is below 1.0", r.backoff_rate),
                    "use 1.0 or more",
                ));
            }
            if r.interval_seconds == 0 {
                out.push(DefinitionError::new(
                    format!("{p}.IntervalSeconds"),
                    "IntervalSeconds must be at least 1",
                    "use a whole number ≥ 1",
                ));
            }
            if r.max_delay_seconds == Some(0) {
                out.push(DefinitionError::new(
                    format!("{p}.MaxDelaySeconds"),
                    "MaxDelaySeconds must be at least 1",
                    "use a whole number ≥ 1 or remove it",
                ));
            }
        }
        for (i, c) in h.catch.iter().enumerate() {
            let p = format!("{here}.Catch[{i}]");
            error_names(&c.error_equals, &p, "catcher", i + 1 == h.catch.len(), out);
            target(sm, &c.next, format!("{p}.Next"), out);
            check_field(&c.result_path, format!("{p}.ResultPath"), true, out);
        }
    }
    match &s.kind {
        Kind::Pass(p) => {
            check_field(&p.result_path, format!("{here}.ResultPath"), true, out);
            if let Some(t) = &p.parameters {
                check_template(t, &format!("{here}.Parameters"), out);
            }
        }
        Kind::Task(t) => {
            let timeout = seconds(&t.timeout, format!("{here}.TimeoutSecondsPath"), out);
            let heartbeat = seconds(&t.heartbeat, format!("{here}.HeartbeatSecondsPath"), out);
            if timeout == Some(0) {
                out.push(DefinitionError::new(
                    format!("{here}.TimeoutSeconds"),
                    "TimeoutSeconds must be at least 1",
                    "use a positive whole number",
                ));
            }
            if let (Some(t), Some(h)) = (timeout, heartbeat)
                && h >= t
            {
                out.push(DefinitionError::new(
                    format!("{here}.HeartbeatSeconds"),
                    format!("HeartbeatSeconds {h} is not below TimeoutSeconds {t}"),
                    "make the heartbeat shorter than the timeout",
                ));
            }
            if t.waits_for_token() && !t.handling.parameters.as_ref().is_some_and(mentions_token) {
                out.push(DefinitionError::new(
                    format!("{here}.Parameters"),
                    format!(
                        "Task {:?} waits for a task token but never passes $$.Task.Token",
                        s.name
                    ),
                    "add a parameter such as \"TaskToken.$\": \"$$.Task.Token\"",
                ));
            }
        }
        Kind::Choice(c) => {
            for (i, b) in c.choices.iter().enumerate() {
                let p = format!("{here}.Choices[{i}]");
                target(sm, &b.next, format!("{p}.Next"), out);
                rule(&b.rule, &p, out);
            }
            if let Some(d) = &c.default {
                target(sm, d, format!("{here}.Default"), out);
            }
        }
        Kind::Wait(w) => match w {
            WaitFor::Timestamp(ts) if choice::parse_timestamp(ts).is_none() => {
                out.push(DefinitionError::new(
                    format!("{here}.Timestamp"),
                    format!("{ts:?} is not an RFC 3339 timestamp"),
                    "write it like 2026-01-01T00:00:00Z",
                ));
            }
            WaitFor::SecondsPath(p) => check_path(p, format!("{here}.SecondsPath"), out),
            WaitFor::TimestampPath(p) => check_path(p, format!("{here}.TimestampPath"), out),
            _ => {}
        },
        Kind::Fail(f) => {
            if f.error.is_some() && f.error_path.is_some() {
                out.push(DefinitionError::new(
                    format!("{here}.ErrorPath"),
                    "Error and ErrorPath are both set",
                    "keep one",
                ));
            }
            if f.cause.is_some() && f.cause_path.is_some() {
                out.push(DefinitionError::new(
                    format!("{here}.CausePath"),
                    "Cause and CausePath are both set",
                    "keep one",
                ));
            }
            for (field, p) in [("ErrorPath", &f.error_path), ("CausePath", &f.cause_path)] {
                if let Some(p) = p
                    && !intrinsics::is_intrinsic(p)
                {
                    check_path(p, format!("{here}.{field}"), out);
                }
            }
        }
        Kind::Parallel(p) => {
            for (i, b) in p.branches.iter().enumerate() {
                machine(b, &format!("{here}.Branches[{i}]"), out);
            }
        }
        Kind::Map(m) => {
            check_field(&m.items_path, format!("{here}.ItemsPath"), false, out);
            if let Some(t) = &m.item_selector {
                check_template(t, &format!("{here}.ItemSelector"), out);
            }
            seconds(
                &m.max_concurrency,
                format!("{here}.MaxConcurrencyPath"),
                out,
            );
            seconds(
                &m.tolerated_failure_count,
                format!("{here}.ToleratedFailureCountPath"),
                out,
            );
            machine(&m.processor, &format!("{here}.ItemProcessor"), out);
        }
        Kind::Succeed => {}
    }
}

/// The non-`States.*` error names a definition matches on in Retry and Catch (for checking that
/// the tasks produce them).
pub fn custom_error_names(sm: &StateMachine) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in &sm.states {
        if let Some(h) = s.kind.handling() {
            for name in h
                .retry
                .iter()
                .flat_map(|r| &r.error_equals)
                .chain(h.catch.iter().flat_map(|c| &c.error_equals))
            {
                if !name.starts_with("States.") {
                    out.insert(name.clone());
                }
            }
        }
        match &s.kind {
            Kind::Parallel(p) => p
                .branches
                .iter()
                .for_each(|b| out.extend(custom_error_names(b))),
            Kind::Map(m) => out.extend(custom_error_names(&m.processor)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<DefinitionError> {
        validate(&StateMachine::parse(text).expect("parses"))
    }

    fn has(errors: &[DefinitionError], path: &str, needle: &str) -> bool {
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle))
    }

    #[test]
    fn a_dangling_next_is_named() {
        let e = problems(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#);
        assert!(has(&e, "States.A.Next", "\"B\" is not a state"), "{e:?}");
    }

    #[test]
    fn unreachable_states_are_reported() {
        let e =
            problems(r#"{"StartAt":"A","States":{"A":{"Type":"Succeed"},"B":{"Type":"Succeed"}}}"#);
        assert!(has(&e, "States.B", "unreachable"), "{e:?}");
    }

    #[test]
    fn a_state_without_next_or_end_is_reported() {
        let e = problems(r#"{"StartAt":"A","States":{"A":{"Type":"Pass"}}}"#);
        assert!(has(&e, "States.A", "neither Next nor End"), "{e:?}");
    }

    #[test]
    fn a_loop_with_no_way_out_is_reported() {
        let e = problems(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Wait","Seconds":1,"Next":"A"}}}"#,
        );
        assert!(has(&e, "States", "no state ends"), "{e:?}");
    }

    #[test]
    fn a_retrier_after_states_all_is_reported() {
        let e = problems(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","End":true,
            "Retry":[{"ErrorEquals":["States.ALL"]},{"ErrorEquals":["Throttled"]}]}}}"#,
        );
        assert!(has(&e, "States.T.Retry[0]", "can never match"), "{e:?}");
    }

    #[test]
    fn states_all_must_be_alone_and_unknown_states_errors_are_named() {
        let e = problems(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","End":true,
            "Catch":[{"ErrorEquals":["States.ALL","X"],"Next":"T"}],"Retry":[{"ErrorEquals":["States.Throttled"]}]}}}"#,
        );
        assert!(has(&e, "States.T.Catch[0].ErrorEquals", "alone"), "{e:?}");
        assert!(
            has(&e, "States.T.Retry[0].ErrorEquals", "States.Throttled"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_paths_and_result_paths_are_reported() {
        let e = problems(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","InputPath":"a.b","ResultPath":"$.x[*]","End":true}}}"#,
        );
        assert!(has(&e, "States.A.InputPath", "not a path"), "{e:?}");
        assert!(
            has(&e, "States.A.ResultPath", "not a reference path"),
            "{e:?}"
        );
    }

    #[test]
    fn a_token_task_must_pass_its_token() {
        let e = problems(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::sns:publish.waitForTaskToken","Parameters":{"Message":"hi"},"End":true}}}"#,
        );
        assert!(has(&e, "States.T.Parameters", "$$.Task.Token"), "{e:?}");
    }

    #[test]
    fn a_heartbeat_longer_than_the_timeout_is_reported() {
        let e = problems(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","TimeoutSeconds":10,"HeartbeatSeconds":20,"End":true}}}"#,
        );
        assert!(has(&e, "States.T.HeartbeatSeconds", "not below"), "{e:?}");
    }

    #[test]
    fn nested_machines_are_validated_with_their_paths() {
        let e = problems(
            r#"{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Pass","Next":"Y"}}}}}}"#,
        );
        assert!(
            has(&e, "States.M.ItemProcessor.States.X.Next", "\"Y\""),
            "{e:?}"
        );
    }

    #[test]
    fn a_valid_machine_has_no_problems() {
        let e = problems(
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"r","Next":"B",
            "Retry":[{"ErrorEquals":["Throttled"],"BackoffRate":2,"JitterStrategy":"FULL"},{"ErrorEquals":["States.ALL"]}],
            "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"F"}]},
            "B":{"Type":"Choice","Choices":[{"Variable":"$.x","IsPresent":true,"Next":"C"}],"Default":"C"},
            "C":{"Type":"Succeed"},"F":{"Type":"Fail","Error":"E"}}}"#,
        );
        assert!(e.is_empty(), "{e:?}");
    }
}
