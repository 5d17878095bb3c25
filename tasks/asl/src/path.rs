//! Paths: `$`-paths over the input, `$$`-paths over the context object, reference paths for
//! `ResultPath`, and the template evaluation of `Parameters` / `ResultSelector` / `ItemSelector`.
//!
//! A *reference path* (`$`, `$.a.b`, `$['a b']`, `$.list[2]`) selects one node and is evaluated
//! directly. Any other JSONPath (wildcards, filters, slices, recursive descent) goes through
//! `serde_json_path` (RFC 9535): like AWS, such an *indefinite* path yields an array of every
//! match, while a reference path that matches nothing is an error.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::error::StatesError;
use crate::intrinsics;

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Parses a reference path (`$`, `$.a`, `$['a']`, `$["a"]`, `$.a[0]`), or `None` when the
/// path uses anything else.
pub fn reference(path: &str) -> Option<Vec<Segment>> {
    let rest = path.strip_prefix('$')?;
    let b = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && !matches!(b[j], b'.' | b'[') {
                    j += 1;
                }
                let key = &rest[start..j];
                if key.is_empty()
                    || key.contains(['*', '@', '?', '$', ']', '\'', '"', ' ', '(', ')', ',', ':'])
                {
                    return None;
                }
                out.push(Segment::Key(key.to_owned()));
                i = j;
            }
            b'[' => {
                let close = rest[i..].find(']')? + i;
                let inner = &rest[i + 1..close];
                if let Some(q) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    if q.contains(['\'', '"', '\\']) {
                        return None;
                    }
                    out.push(Segment::Key(q.to_owned()));
                } else if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit()) {
                    out.push(Segment::Index(inner.parse().ok()?));
                } else {
                    return None;
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn walk<'v>(mut v: &'v Value, segments: &[Segment]) -> Option<&'v Value> {
    for s in segments {
        v = match (s, v) {
            (Segment::Key(k), Value::Object(m)) => m.get(k)?,
            (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

thread_local! {
    static COMPILED: RefCell<HashMap<String, Result<JsonPath, String>>> = RefCell::new(HashMap::new());
}

fn compile(path: &str) -> Result<JsonPath, String> {
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 4096 {
            c.clear();
        }
        c.entry(path.to_owned())
            .or_insert_with(|| JsonPath::parse(path).map_err(|e| e.to_string()))
            .clone()
    })
}

/// Checks that `path` is a valid `$`- or `$$`-path, without evaluating it.
pub fn check(path: &str) -> Result<(), String> {
    let p = path.strip_prefix('$').map_or(path, |rest| {
        if rest.starts_with('$') {
            &path[1..]
        } else {
            path
        }
    });
    if !p.starts_with('$') {
        return Err(format!(
            "{path:?} is not a path: paths start with $ (input) or $$ (context)"
        ));
    }
    if reference(p).is_some() {
        return Ok(());
    }
    compile(p).map(|_| ())
}

/// Checks that `path` is a reference path (as ResultPath requires).
pub fn check_reference(path: &str) -> Result<(), String> {
    reference(path).map(|_| ()).ok_or_else(|| {
        format!("{path:?} is not a reference path: use $, $.field, $['field'] or $.list[0], without wildcards or filters")
    })
}

/// Evaluates a path against `input` (`$...`) or `context` (`$$...`).
pub fn select(path: &str, input: &Value, context: &Value) -> Result<Value, StatesError> {
    let (p, doc) = match path.strip_prefix("$$") {
        Some(rest) => (format!("${rest}"), context),
        None => (path.to_owned(), input),
    };
    if let Some(segments) = reference(&p) {
        return walk(doc, &segments).cloned().ok_or_else(|| {
            StatesError::runtime(format!(
                "Invalid path '{path}': the path could not be found in the {}",
                if std::ptr::eq(doc, context) {
                    "context object"
                } else {
                    "input"
                }
            ))
        });
    }
    let compiled =
        compile(&p).map_err(|e| StatesError::runtime(format!("Invalid path '{path}': {e}")))?;
    Ok(Value::Array(
        compiled.query(doc).all().into_iter().cloned().collect(),
    ))
}

/// Whether the path resolves (for `IsPresent`).
pub fn exists(path: &str, input: &Value, context: &Value) -> bool {
    let relative = if path.starts_with("$$") {
        &path[1..]
    } else {
        path
    };
    match select(path, input, context) {
        Ok(Value::Array(a)) if reference(relative).is_none() => !a.is_empty(),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Applies an InputPath / OutputPath: `$` keeps everything, `null` gives `{}`.
pub fn apply_filter(
    path: Option<&str>,
    input: &Value,
    context: &Value,
) -> Result<Value, StatesError> {
    match path {
        None => Ok(Value::Object(Map::new())),
        Some("$") => Ok(input.clone()),
        Some(p) => select(p, input, context),
    }
}

/// Places `result` into `input` at the reference path `result_path` (`None` = `null`: keep the
/// input, drop the result). Missing objects on the way are created.
pub fn insert(
    result_path: Option<&str>,
    input: Value,
    result: Value,
) -> Result<Value, StatesError> {
    let Some(path) = result_path else {
        return Ok(input);
    };
    let segments = reference(path).ok_or_else(|| {
        StatesError::new(
            "States.ResultPathMatchFailure",
            format!("ResultPath '{path}' is not a reference path"),
        )
    })?;
    if segments.is_empty() {
        return Ok(result);
    }
    let mut root = input;
    {
        let mut cur = &mut root;
        for (i, seg) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            match seg {
                Segment::Key(k) => {
                    let Value::Object(m) = cur else {
                        return Err(StatesError::new(
                            "States.ResultPathMatchFailure",
                            format!(
                                "Unable to apply ResultPath '{path}': the value before '{k}' is not an object"
                            ),
                        ));
                    };
                    if last {
                        m.insert(k.clone(), result);
                        break;
                    }
                    cur = m
                        .entry(k.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                }
                Segment::Index(idx) => {
                    let Some(slot) = cur.as_array_mut().and_then(|a| a.get_mut(*idx)) else {
                        return Err(StatesError::new(
                            "States.ResultPathMatchFailure",
                            format!(
                                "Unable to apply ResultPath '{path}': index {idx} does not exist"
                            ),
                        ));
                    };
                    if last {
                        *slot = result;
                        break;
                    }
                    cur = slot;
                }
            }
        }
    }
    Ok(root)
}

/// Evaluates a payload template (Parameters, ResultSelector, ItemSelector): keys ending in `.$`
/// take their value from a path or an intrinsic function and lose the suffix.
pub fn template(
    tpl: &Value,
    input: &Value,
    context: &Value,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, StatesError> {
    match tpl {
        Value::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, v) in m {
                if let Some(name) = k.strip_suffix(".$") {
                    let expr = v.as_str().ok_or_else(|| {
                        StatesError::runtime(format!("The value of the field '{k}' must be a path or an intrinsic function string"))
                    })?;
                    let value = if intrinsics::is_intrinsic(expr) {
                        intrinsics::evaluate(expr, &|p: &str| select(p, input, context), random)?
                    } else {
                        select(expr, input, context).map_err(|e| {
                            StatesError::runtime(format!("The JSONPath '{expr}' specified for the field '{k}' could not be found: {}", e.cause))
                        })?
                    };
                    out.insert(name.to_owned(), value);
                } else {
                    out.insert(k.clone(), template(v, input, context, random)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .map(|v| template(v, input, context, random))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_random() -> impl FnMut() -> u64 {
        || 4
    }

    #[test]
    fn reference_paths_parse_in_every_notation() {
        assert_eq!(reference("$"), Some(vec![]));
        assert_eq!(
            reference("$.a['b c'][2].d"),
            Some(vec![
                Segment::Key("a".into()),
                Segment::Key("b c".into()),
                Segment::Index(2),
                Segment::Key("d".into())
            ])
        );
        for indefinite in [
            "$.a[*]",
            "$..a",
            "$.a[?(@.x)]",
            "$.a[0:2]",
            "$.a[0,1]",
            "a",
            "$.",
        ] {
            assert_eq!(reference(indefinite), None, "{indefinite}");
        }
    }

    #[test]
    fn a_missing_reference_path_is_a_runtime_error() {
        let e = select("$.missing", &json!({"a": 1}), &json!({})).expect_err("missing");
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("$.missing"));
    }

    #[test]
    fn indefinite_paths_return_every_match_as_an_array() {
        let input = json!({"items": [{"n": 1}, {"n": 2}, {"m": 3}]});
        assert_eq!(
            select("$.items[*].n", &input, &json!({})).expect("ok"),
            json!([1, 2])
        );
        assert_eq!(
            select("$.items[?(@.n > 1)].n", &input, &json!({})).expect("ok"),
            json!([2])
        );
        assert_eq!(
            select("$.items[*].zzz", &input, &json!({})).expect("ok"),
            json!([])
        );
    }

    #[test]
    fn context_paths_read_the_context_object() {
        let ctx = json!({"Execution": {"Name": "exec-1"}});
        assert_eq!(
            select("$$.Execution.Name", &json!({}), &ctx).expect("ok"),
            json!("exec-1")
        );
    }

    #[test]
    fn result_path_inserts_creating_objects_on_the_way() {
        let out = insert(Some("$.a.b"), json!({"x": 1}), json!(2)).expect("ok");
        assert_eq!(out, json!({"x": 1, "a": {"b": 2}}));
        assert_eq!(
            insert(Some("$"), json!({"x": 1}), json!(5)).expect("ok"),
            json!(5)
        );
        assert_eq!(
            insert(None, json!({"x": 1}), json!(5)).expect("ok"),
            json!({"x": 1})
        );
        let e = insert(Some("$.x.y"), json!({"x": 1}), json!(5)).expect_err("not an object");
        assert_eq!(e.error, "States.ResultPathMatchFailure");
    }

    #[test]
    fn templates_resolve_paths_context_and_intrinsics() {
        let tpl = json!({"a.$": "$.n", "ctx.$": "$$.Execution.Name", "f.$": "States.Format('{}-{}', $.n, $$.Execution.Name)", "lit": {"k": [1, {"in.$": "$.n"}]}});
        let out = template(
            &tpl,
            &json!({"n": 7}),
            &json!({"Execution": {"Name": "e"}}),
            &mut no_random(),
        )
        .expect("ok");
        assert_eq!(
            out,
            json!({"a": 7, "ctx": "e", "f": "7-e", "lit": {"k": [1, {"in": 7}]}})
        );
    }

    #[test]
    fn a_template_path_that_is_missing_names_the_field() {
        let e = template(
            &json!({"a.$": "$.nope"}),
            &json!({}),
            &json!({}),
            &mut no_random(),
        )
        .expect_err("missing");
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("'a.$'"), "{}", e.cause);
    }

    #[test]
    fn filters_of_null_give_an_empty_object() {
        assert_eq!(
            apply_filter(None, &json!({"a": 1}), &json!({})).expect("ok"),
            json!({})
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_paths_never_panic(p in "\\$[\\PC]{0,40}") {
                let input = json!({"a": [1, {"b": "c"}], "d": {"e": null}});
                let _ = select(&p, &input, &input);
                let _ = insert(Some(&p), input.clone(), json!(1));
                let _ = check(&p);
            }

            #[test]
            fn reference_paths_select_what_they_insert(keys in prop::collection::vec("[a-z]{1,6}", 1..5), v in any::<i64>()) {
                let path = format!("$.{}", keys.join("."));
                let doc = insert(Some(&path), json!({}), json!(v)).expect("insert into objects");
                prop_assert_eq!(select(&path, &doc, &json!({})).expect("select"), json!(v));
            }
        }
    }
}
