//! Fuzzing of every parser of untrusted or hand-written input, with proptest: arbitrary input
//! and mutations of the real documents (the built-in scenarios, the state machine, the rules, the
//! diagnostics fixtures, a CloudWatch alarm event). The property everywhere: no panic, and every
//! error has text, under 4 KB (clear and bounded). `make test` runs 256 cases per target;
//! `make fuzz` runs 100,000 (`AUTOHEAL_FUZZ_CASES`).

use autoheal_asl::{StateMachine, intrinsics, path};
use autoheal_core::rules::DEFAULT_RULES;
use autoheal_core::{GlobalPolicy, IncidentId, RuleSet, Timestamp, parse_diagnostics};
use autoheal_handlers::trigger::{Request, execution_name, parse_event};
use autoheal_sim::Scenario;
use autoheal_sim::scenario::BUILTIN;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

/// Longest error text a parser may produce.
const MAX_ERROR_BYTES: usize = 4096;

/// Cases per target: `AUTOHEAL_FUZZ_CASES`, 256 by default.
fn cases() -> u32 {
    std::env::var("AUTOHEAL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// An error's text is there and bounded.
fn check_text(text: &str, limit: usize) -> Result<(), TestCaseError> {
    prop_assert!(!text.trim().is_empty(), "an error without text");
    prop_assert!(
        text.len() < limit,
        "an error of {} bytes: {}…",
        text.len(),
        text.chars().take(300).collect::<String>()
    );
    Ok(())
}

/// Any result is fine; an error must have text under [`MAX_ERROR_BYTES`].
fn check<T, E: std::fmt::Display>(r: &Result<T, E>) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => check_text(&e.to_string(), MAX_ERROR_BYTES),
    }
}

// ---------------------------------------------------------------------------- strategies

/// Field names and values of every format fuzzed here, so arbitrary JSON often has the right
/// shape in places.
const WORDS: &[&str] = &[
    // CloudWatch and EventBridge events
    "source",
    "detail-type",
    "detail",
    "time",
    "region",
    "account",
    "target_group_arn",
    "instance_id",
    "alarmName",
    "state",
    "value",
    "configuration",
    "metrics",
    "metricStat",
    "metric",
    "dimensions",
    "TargetGroup",
    "aws.cloudwatch",
    "CloudWatch Alarm State Change",
    "aws.events",
    "aws.scheduler",
    "Scheduled Event",
    "ALARM",
    "OK",
    "2027-01-15T08:03:09Z",
    "9999-12-31T23:59:60Z",
    "targetgroup/web/0123456789abcdef",
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    "i-0123456789abcdef0",
    // policies and scenarios
    "version",
    "dry_run",
    "min_healthy_percent",
    "max_unhealthy_percent",
    "max_concurrent_heals",
    "cooldown_s",
    "flapping",
    "transitions",
    "ladder",
    "approval_required_for",
    "services",
    "instances",
    "replace",
    "app.service",
    "name",
    "duration_s",
    "fleet",
    "target_groups",
    "faults",
    "at_s",
    "kind",
    "app_crash",
    // state machines
    "StartAt",
    "States",
    "Type",
    "Pass",
    "Task",
    "Choice",
    "Map",
    "Parallel",
    "Next",
    "End",
    "Resource",
    "ResultPath",
    "Retry",
    "Catch",
    "ErrorEquals",
    "Branches",
    "ItemProcessor",
    "$",
    "$.a",
    "$$.Execution.Id",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(|s| s.to_owned()),
        1 => any::<String>(),
    ]
}

/// Arbitrary JSON: at most 4 levels deep and about 64 nodes.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Numbers that break parsers: huge, negative, out of every integer type's range, not numbers.
const NUMBERS: &[&str] = &[
    "-1",
    "-5",
    "0",
    "-0",
    "1.5",
    "101",
    "256",
    "65536",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999",
    "1e999",
    "-1e999",
    "1e-999",
    "NaN",
];

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(NUMBERS).prop_map(|s| s.to_owned()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|n| n.to_string()),
    ]
}

/// One change to a document's text.
#[derive(Debug, Clone)]
enum TextEdit {
    /// Cut the text at a (char boundary near a) random byte.
    Truncate(Index),
    /// Insert one character.
    Insert(Index, char),
    /// Replace one number literal.
    Number(Index, String),
    /// Rename one object key.
    Rename(Index, String),
}

fn text_edit(names: &'static [&'static str]) -> impl Strategy<Value = TextEdit> {
    let name = prop_oneof![
        2 => prop::sample::select(names).prop_map(|s| s.to_owned()),
        1 => any::<String>(),
    ];
    prop_oneof![
        any::<Index>().prop_map(TextEdit::Truncate),
        (any::<Index>(), any::<char>()).prop_map(|(i, c)| TextEdit::Insert(i, c)),
        (any::<Index>(), number()).prop_map(|(i, n)| TextEdit::Number(i, n)),
        (any::<Index>(), name).prop_map(|(i, n)| TextEdit::Rename(i, n)),
    ]
}

fn text_edits(names: &'static [&'static str]) -> impl Strategy<Value = Vec<TextEdit>> {
    prop::collection::vec(text_edit(names), 1..4)
}

/// The byte spans of the number literals and of the object keys (quotes included) outside
/// strings.
/// Byte ranges `(start, end)` in a text.
type Spans = Vec<(usize, usize)>;

fn tokens(text: &str) -> (Spans, Spans) {
    let b = text.as_bytes();
    let (mut numbers, mut keys) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                // `i` is at a closing quote (ASCII) or past the end: a char boundary either way.
                let end = (i + 1).min(b.len());
                if text[end..].trim_start().starts_with(':') {
                    keys.push((start, end));
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                numbers.push((start, i));
            }
            _ => i += 1,
        }
    }
    (numbers, keys)
}

/// A char boundary at or before the byte `i` picks.
fn boundary(text: &str, i: Index) -> usize {
    let mut p = i.index(text.len() + 1);
    while !text.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn mutate(text: &str, edits: &[TextEdit]) -> String {
    let mut out = text.to_owned();
    for edit in edits {
        match edit {
            TextEdit::Truncate(i) => {
                let p = boundary(&out, *i);
                out.truncate(p);
            }
            TextEdit::Insert(i, c) => {
                let p = boundary(&out, *i);
                out.insert(p, *c);
            }
            TextEdit::Number(i, n) => {
                let (numbers, _) = tokens(&out);
                if !numbers.is_empty() {
                    let (start, end) = numbers[i.index(numbers.len())];
                    out.replace_range(start..end, n);
                }
            }
            TextEdit::Rename(i, name) => {
                let (_, keys) = tokens(&out);
                if !keys.is_empty() {
                    let (start, end) = keys[i.index(keys.len())];
                    let quoted = serde_json::to_string(name).unwrap_or_default();
                    out.replace_range(start..end, &quoted);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------- events

/// A real CloudWatch alarm state change for target group `web`.
fn alarm_event() -> Value {
    json!({
        "version": "0", "id": "e", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2027-01-15T08:03:09Z",
        "region": "us-east-1", "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:autoheal-web-UnHealthyHostCount"],
        "detail": {"alarmName": "autoheal-web-UnHealthyHostCount",
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2027-01-15T08:03:09.000+0000"},
            "previousState": {"value": "OK"},
            "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {
                "namespace": "AWS/ApplicationELB", "name": "UnHealthyHostCount",
                "dimensions": {"TargetGroup": "targetgroup/web/0123456789abcdef", "LoadBalancer": "app/lb/1"}},
                "period": 60, "stat": "Maximum"}, "returnData": true}]}}
    })
}

/// One change to an event.
#[derive(Debug, Clone)]
enum EventEdit {
    /// Replace the value at a random JSON pointer (the root included) by arbitrary JSON.
    Replace(Index, Value),
    /// Delete the field or item at a random JSON pointer.
    Delete(Index),
    /// Set `detail.state.value`.
    State(String),
    /// Set the first metric's dimensions.
    Dimensions(Vec<(String, String)>),
}

const STATES: &[&str] = &["ALARM", "OK", "INSUFFICIENT_DATA", "alarm", ""];

const DIMENSION_KEYS: &[&str] = &["TargetGroup", "LoadBalancer", "InstanceId"];

const DIMENSIONS: &[&str] = &[
    "targetgroup/web/0123456789abcdef",
    "targetgroup/../0123456789abcdef",
    "../",
    "targetgroup/web/0123456789abcdef; reboot",
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    "loadbalancer/app/web/0123456789abcdef",
    "",
];

fn dimension_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(DIMENSION_KEYS).prop_map(|s| s.to_owned()),
        1 => any::<String>(),
    ]
}

fn dimension_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(DIMENSIONS).prop_map(|s| s.to_owned()),
        ("[a-zA-Z0-9-]{0,40}", "[0-9a-f]{14,18}")
            .prop_map(|(name, id)| format!("targetgroup/{name}/{id}")),
        any::<String>(),
    ]
}

fn event_edit() -> impl Strategy<Value = EventEdit> {
    prop_oneof![
        (any::<Index>(), arb_json()).prop_map(|(i, v)| EventEdit::Replace(i, v)),
        any::<Index>().prop_map(EventEdit::Delete),
        prop_oneof![
            prop::sample::select(STATES).prop_map(|s| s.to_owned()),
            any::<String>(),
        ]
        .prop_map(EventEdit::State),
        prop::collection::vec((dimension_key(), dimension_value()), 0..4)
            .prop_map(EventEdit::Dimensions),
    ]
}

/// Every JSON pointer into `v`, the root (`""`) included.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    walk(x, format!("{at}/{key}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn delete(v: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&key);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

fn apply(v: &mut Value, edit: &EventEdit) {
    match edit {
        EventEdit::Replace(i, new) => {
            let all = pointers(v);
            let p = &all[i.index(all.len())];
            if let Some(slot) = v.pointer_mut(p) {
                *slot = new.clone();
            }
        }
        EventEdit::Delete(i) => {
            let all = pointers(v);
            let p = all[i.index(all.len())].clone();
            delete(v, &p);
        }
        EventEdit::State(s) => {
            if let Some(slot) = v.pointer_mut("/detail/state/value") {
                *slot = Value::String(s.clone());
            }
        }
        EventEdit::Dimensions(d) => {
            if let Some(slot) =
                v.pointer_mut("/detail/configuration/metrics/0/metricStat/metric/dimensions")
            {
                *slot = Value::Object(
                    d.iter()
                        .map(|(k, x)| (k.clone(), Value::String(x.clone())))
                        .collect(),
                );
            }
        }
    }
}

/// The trigger on one event: never a panic, bounded errors, and every group it would start gets
/// an execution name that Step Functions (and `IncidentId`) accepts.
fn check_trigger(event: &Value) -> Result<(), TestCaseError> {
    let r = parse_event(event, Timestamp(1_800_000_000));
    check(&r)?;
    if let Ok(Request::Start { groups, at, .. }) = &r {
        for g in groups {
            let name = execution_name(g, *at);
            prop_assert!(IncidentId::parse(name.clone()).is_ok(), "{name}");
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------ documents

const SCENARIO_FIELDS: &[&str] = &[
    "name",
    "description",
    "seed",
    "duration_s",
    "timings",
    "health_check_interval_s",
    "health_check_timeout_s",
    "healthy_threshold",
    "fleet",
    "target_groups",
    "lb",
    "protocol",
    "asg",
    "instances",
    "services",
    "policy",
    "faults",
    "at_s",
    "target_group",
    "instance",
    "kind",
    "recurs_every_s",
    "with",
    "outages",
    "service",
    "operator",
    "answer",
    "after_s",
    "max_concurrent_heals",
    "bogus",
];

const DIAGNOSTICS_FIELDS: &[&str] = &[
    "schema_version",
    "collected_at",
    "uptime_s",
    "services",
    "name",
    "active_state",
    "restarts",
    "listening_ports",
    "port",
    "health_probe",
    "ok",
    "status_code",
    "error",
    "cpu",
    "busy_percent",
    "cores",
    "memory",
    "total_mb",
    "available_mb",
    "load",
    "one",
    "disks",
    "mount",
    "used_percent",
    "read_only",
    "dmesg",
    "lines",
    "ssm_agent",
    "network",
    "dns_ok",
    "timed_out_checks",
];

const RULES_FIELDS: &[&str] = &[
    "version",
    "min_confidence",
    "rules",
    "id",
    "class",
    "confidence",
    "priority",
    "description",
    "when",
    "all",
    "any",
    "not",
    "fact",
    "eq",
    "ne",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "matches",
    "exists",
];

/// New key names for the state machine: none is a field of the language, so a rename is an
/// unknown field or a renamed state. Renaming to a real field can put a whole JSON value into
/// an error (`Next must be a state name, found {…}`): see `hostile.rs`,
/// `a_state_machine_with_a_huge_next_gets_a_bounded_error`.
const ASL_RENAMES: &[&str] = &["", "$", "Bogus", "next", "NEXT", "Type.$", "States.ALL"];

const POLICY_FIELDS: &[&str] = &[
    "version",
    "dry_run",
    "min_healthy_percent",
    "max_unhealthy_percent",
    "outage_min_targets",
    "overload_slow_percent",
    "max_concurrent_heals",
    "cooldown_s",
    "launch_grace_s",
    "flapping",
    "ladder",
    "attempt_window_s",
    "max_attempts",
    "approval_required_for",
    "services",
    "instances",
    "bogus",
];

const DEFINITION: &str = include_str!("../../statemachine/autoheal.asl.json");

const DIAGNOSTICS_FIXTURES: &[&str] = &[
    include_str!("../fixtures/diagnostics/app_crash.json"),
    include_str!("../fixtures/diagnostics/app_hang.json"),
    include_str!("../fixtures/diagnostics/cpu_runaway.json"),
    include_str!("../fixtures/diagnostics/dependency_outage.json"),
    include_str!("../fixtures/diagnostics/disk_corruption.json"),
    include_str!("../fixtures/diagnostics/disk_full.json"),
    include_str!("../fixtures/diagnostics/healthy.json"),
    include_str!("../fixtures/diagnostics/memory_leak.json"),
    include_str!("../fixtures/diagnostics/network_misconfig.json"),
    include_str!("../fixtures/diagnostics/overload.json"),
];

/// A state machine's text, parsed and (when it parses) validated. A definition error may quote a
/// JSON value of the definition whole (the gap named at [`ASL_RENAMES`]), so the bound here is
/// 4 KB plus the definition's size; the mutations of the real definition never rename into a
/// real field, so they stay within 4 KB.
fn check_definition(
    sm: Result<StateMachine, autoheal_asl::DefinitionError>,
    size: usize,
) -> Result<(), TestCaseError> {
    match sm {
        Err(e) => check_text(&e.to_string(), MAX_ERROR_BYTES + size),
        Ok(sm) => {
            for e in autoheal_asl::validate::validate(&sm) {
                check_text(&e.to_string(), MAX_ERROR_BYTES + size)?;
            }
            Ok(())
        }
    }
}

/// The input of the path and intrinsic tests.
fn path_input() -> Value {
    json!({"a": [1, {"b": "c"}], "d": {"e": null}, "s": "x,y", "n": 3, "list": [3, 1, 2]})
}

const PATH_TOKENS: &[&str] = &[
    "$",
    "$$",
    ".",
    "..",
    "[",
    "]",
    "'",
    "\"",
    "*",
    "?",
    "@",
    "(",
    ")",
    ",",
    ":",
    " ",
    "\\",
    "{}",
    "==",
    "<",
    "&&",
    "0",
    "1",
    "-1",
    "9999999999999999999",
    "a",
    "b",
    "list",
    "Execution",
    "length",
    "true",
    "null",
    "'SHA-256'",
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

/// Paths and intrinsic calls: arbitrary text, `$`-prefixed text, and token soup.
fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<String>().prop_map(|s| format!("${s}")),
        any::<String>().prop_map(|s| format!("States.{s}")),
        prop::collection::vec(prop::sample::select(PATH_TOKENS), 0..24).prop_map(|t| t.concat()),
    ]
}

// ------------------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_trigger_answers_arbitrary_json_cleanly(event in arb_json()) {
        check_trigger(&event)?;
    }

    #[test]
    fn the_trigger_answers_mutated_alarm_events_cleanly(
        edits in prop::collection::vec(event_edit(), 1..4),
    ) {
        let mut event = alarm_event();
        for e in &edits {
            apply(&mut event, e);
        }
        check_trigger(&event)?;
    }

    #[test]
    fn mutated_builtin_scenarios_load_or_fail_cleanly(
        (file, text) in prop::sample::select(BUILTIN),
        edits in text_edits(SCENARIO_FIELDS),
    ) {
        check(&Scenario::parse(file, &mutate(text, &edits)))?;
    }

    #[test]
    fn arbitrary_scenario_text_loads_or_fails_cleanly(
        text in prop_oneof![any::<String>(), arb_json().prop_map(|v| v.to_string())],
    ) {
        check(&Scenario::parse("fuzz.json", &text))?;
    }

    #[test]
    fn arbitrary_paths_evaluate_or_fail_cleanly(p in expression()) {
        let input = path_input();
        check(&path::check(&p))?;
        check(&path::check_reference(&p))?;
        check(&path::select(&p, &input, &input))?;
        check(&path::insert(Some(p.as_str()), input.clone(), json!(1)))?;
        let _ = path::exists(&p, &input, &input);
    }

    #[test]
    fn arbitrary_intrinsic_calls_evaluate_or_fail_cleanly(expr in expression()) {
        let input = path_input();
        let mut n = 0_u64;
        let mut random = || {
            n = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
            n
        };
        let resolve = |p: &str| path::select(p, &input, &input);
        check(&intrinsics::evaluate(&expr, &resolve, &mut random))?;
        check(&path::template(&json!({"x.$": expr}), &input, &input, &mut random))?;
    }

    #[test]
    fn mutated_state_machines_parse_and_validate_or_fail_cleanly(edits in text_edits(ASL_RENAMES)) {
        let text = autoheal_asl::substitute(&mutate(DEFINITION, &edits), &autoheal_handlers::substitutions());
        // The mutations of the real definition stay within the strict bound (see ASL_RENAMES).
        check_definition(StateMachine::parse(&text), 0)?;
    }

    #[test]
    fn arbitrary_json_state_machines_parse_and_validate_or_fail_cleanly(v in arb_json()) {
        let size = v.to_string().len();
        check_definition(StateMachine::from_value(&v, ""), size)?;
    }

    #[test]
    fn arbitrary_diagnostics_output_parses_or_fails_cleanly(
        text in prop_oneof![any::<String>(), arb_json().prop_map(|v| v.to_string())],
    ) {
        check(&parse_diagnostics(&text))?;
    }

    #[test]
    fn mutated_diagnostics_documents_parse_or_fail_cleanly(
        doc in prop::sample::select(DIAGNOSTICS_FIXTURES),
        edits in text_edits(DIAGNOSTICS_FIELDS),
    ) {
        check(&parse_diagnostics(&mutate(doc, &edits)))?;
    }

    #[test]
    fn mutated_builtin_rules_load_or_fail_cleanly(edits in text_edits(RULES_FIELDS)) {
        check(&RuleSet::parse("tasks/core/rules/diagnosis_rules.json", &mutate(DEFAULT_RULES, &edits)))?;
    }

    #[test]
    fn arbitrary_policies_load_or_fail_cleanly(
        v in prop_oneof![
            arb_json(),
            prop::collection::vec(
                (prop::sample::select(POLICY_FIELDS).prop_map(|s| s.to_owned()), arb_json()),
                0..6,
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ],
    ) {
        let r = GlobalPolicy::from_value("fuzz policy", &v);
        check(&r)?;
        if let Ok(p) = r {
            prop_assert!(p.min_healthy_percent <= 100 && p.max_concurrent_heals >= 1);
        }
    }
}
