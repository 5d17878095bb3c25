//! Choice rules: every comparison operator (and its `*Path` form), `StringMatches`, the `Is*`
//! tests and And / Or / Not.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::definition::{Comparison, Operand, Rule};
use crate::error::StatesError;
use crate::path;

/// Parses an RFC 3339 timestamp as AWS accepts it (uppercase `T` separator, `Z` or an offset).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if !s.contains('T') {
        return None;
    }
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star, `\\` a literal
/// backslash.
pub fn string_matches(value: &str, pattern: &str) -> bool {
    #[derive(Debug, PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.push(Tok::Char(chars.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let v: Vec<char> = value.chars().collect();
    // Iterative wildcard matching with backtracking to the last star: O(len(v) * len(p)).
    let (mut i, mut j) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while i < v.len() {
        if j < toks.len() && toks[j] == Tok::Char(v[i]) {
            i += 1;
            j += 1;
        } else if j < toks.len() && toks[j] == Tok::Star {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(s) = star {
            j = s + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while j < toks.len() && toks[j] == Tok::Star {
        j += 1;
    }
    j == toks.len()
}

/// Evaluates a rule against the state's effective input.
pub fn evaluate(rule: &Rule, input: &Value, context: &Value) -> Result<bool, StatesError> {
    match rule {
        Rule::And(rules) => {
            for r in rules {
                if !evaluate(r, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for r in rules {
                if evaluate(r, input, context)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!evaluate(r, input, context)?),
        Rule::Compare {
            variable,
            comparison,
            operand,
        } => compare(variable, *comparison, operand, input, context),
    }
}

fn compare(
    variable: &str,
    cmp: Comparison,
    operand: &Operand,
    input: &Value,
    context: &Value,
) -> Result<bool, StatesError> {
    use Comparison::*;
    if cmp == IsPresent {
        let present = path::exists(variable, input, context);
        return Ok(matches!(operand, Operand::Value(Value::Bool(b)) if *b == present));
    }
    let value = path::select(variable, input, context).map_err(|_| {
        StatesError::runtime(format!("Invalid path '{variable}': The choice state's condition path references an invalid value."))
    })?;
    let expected = match operand {
        Operand::Value(v) => v.clone(),
        Operand::Path(p) => path::select(p, input, context).map_err(|_| {
            StatesError::runtime(format!("Invalid path '{p}': The choice state's comparison path references an invalid value."))
        })?,
    };
    let flag = |b: bool| matches!(expected, Value::Bool(e) if e == b);
    Ok(match cmp {
        IsNull => flag(value.is_null()),
        IsNumeric => flag(value.is_number()),
        IsString => flag(value.is_string()),
        IsBoolean => flag(value.is_boolean()),
        IsTimestamp => flag(value.as_str().and_then(parse_timestamp).is_some()),
        IsPresent => false,
        StringEquals
        | StringLessThan
        | StringGreaterThan
        | StringLessThanEquals
        | StringGreaterThanEquals => match (value.as_str(), expected.as_str()) {
            (Some(a), Some(b)) => ordered(cmp, a.cmp(b)),
            _ => false,
        },
        StringMatches => match (value.as_str(), expected.as_str()) {
            (Some(a), Some(p)) => string_matches(a, p),
            _ => false,
        },
        NumericEquals
        | NumericLessThan
        | NumericGreaterThan
        | NumericLessThanEquals
        | NumericGreaterThanEquals => match (value.as_f64(), expected.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordered(cmp, o)),
            _ => false,
        },
        BooleanEquals => {
            matches!((value.as_bool(), expected.as_bool()), (Some(a), Some(b)) if a == b)
        }
        TimestampEquals
        | TimestampLessThan
        | TimestampGreaterThan
        | TimestampLessThanEquals
        | TimestampGreaterThanEquals => {
            match (
                value.as_str().and_then(parse_timestamp),
                expected.as_str().and_then(parse_timestamp),
            ) {
                (Some(a), Some(b)) => ordered(cmp, a.cmp(&b)),
                _ => false,
            }
        }
    })
}

fn ordered(cmp: Comparison, o: std::cmp::Ordering) -> bool {
    use Comparison::*;
    use std::cmp::Ordering::*;
    match cmp {
        StringEquals | NumericEquals | TimestampEquals => o == Equal,
        StringLessThan | NumericLessThan | TimestampLessThan => o == Less,
        StringGreaterThan | NumericGreaterThan | TimestampGreaterThan => o == Greater,
        StringLessThanEquals | NumericLessThanEquals | TimestampLessThanEquals => o != Greater,
        StringGreaterThanEquals | NumericGreaterThanEquals | TimestampGreaterThanEquals => {
            o != Less
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmp(variable: &str, c: Comparison, v: Value) -> Rule {
        Rule::Compare {
            variable: variable.into(),
            comparison: c,
            operand: Operand::Value(v),
        }
    }

    fn eval(rule: &Rule, input: Value) -> Result<bool, StatesError> {
        evaluate(rule, &input, &json!({}))
    }

    #[test]
    fn string_matches_supports_wildcards_and_escapes() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("abc", "*"));
        assert!(string_matches("", "*"));
        assert!(!string_matches("abc", "a*d"));
        assert!(string_matches("a*c", "a\\*c"));
        assert!(!string_matches("abc", "a\\*c"));
        assert!(string_matches("a\\c", "a\\\\c"));
        assert!(string_matches("aXbXc", "a*b*c"));
    }

    #[test]
    fn every_numeric_operator_compares_numbers() {
        use Comparison::*;
        let input = json!({"n": 5});
        for (c, v, want) in [
            (NumericEquals, 5, true),
            (NumericLessThan, 6, true),
            (NumericGreaterThan, 6, false),
            (NumericLessThanEquals, 5, true),
            (NumericGreaterThanEquals, 6, false),
        ] {
            assert_eq!(
                eval(&cmp("$.n", c, json!(v)), input.clone()),
                Ok(want),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_type_mismatch_is_false_not_an_error() {
        assert_eq!(
            eval(
                &cmp("$.n", Comparison::StringEquals, json!("5")),
                json!({"n": 5})
            ),
            Ok(false)
        );
    }

    #[test]
    fn a_missing_variable_is_a_runtime_error_except_for_is_present() {
        let e =
            eval(&cmp("$.x", Comparison::NumericEquals, json!(1)), json!({})).expect_err("missing");
        assert_eq!(e.error, "States.Runtime");
        assert_eq!(
            eval(&cmp("$.x", Comparison::IsPresent, json!(false)), json!({})),
            Ok(true)
        );
        assert_eq!(
            eval(
                &cmp("$.x", Comparison::IsPresent, json!(true)),
                json!({"x": null})
            ),
            Ok(true)
        );
    }

    #[test]
    fn path_operands_compare_with_another_field() {
        let r = Rule::Compare {
            variable: "$.a".into(),
            comparison: Comparison::NumericGreaterThan,
            operand: Operand::Path("$.b".into()),
        };
        assert_eq!(eval(&r, json!({"a": 3, "b": 2})), Ok(true));
    }

    #[test]
    fn timestamps_compare_as_instants_across_offsets() {
        let r = cmp(
            "$.t",
            Comparison::TimestampEquals,
            json!("2026-01-01T01:00:00+01:00"),
        );
        assert_eq!(eval(&r, json!({"t": "2026-01-01T00:00:00Z"})), Ok(true));
        assert_eq!(
            eval(
                &cmp("$.t", Comparison::IsTimestamp, json!(true)),
                json!({"t": "2026-01-01"})
            ),
            Ok(false)
        );
    }

    #[test]
    fn combinators_short_circuit() {
        let r = Rule::Or(vec![
            cmp("$.a", Comparison::BooleanEquals, json!(true)),
            cmp("$.missing", Comparison::NumericEquals, json!(1)),
        ]);
        assert_eq!(eval(&r, json!({"a": true})), Ok(true));
        let r = Rule::Not(Box::new(cmp("$.a", Comparison::IsNull, json!(true))));
        assert_eq!(eval(&r, json!({"a": 1})), Ok(true));
    }
}
