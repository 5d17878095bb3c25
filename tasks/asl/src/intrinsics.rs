//! Amazon States Language intrinsic functions (`States.Format`, `States.Hash`, ...).
//!
//! [`evaluate`] parses one intrinsic function expression, such as
//! `States.Format('{} of {}', $.count, $$.Execution.Name)`, with a small hand-written
//! recursive-descent parser, then evaluates it with AWS Step Functions semantics. Every failure is
//! a `States.IntrinsicFailure` naming the function and the problem, except the errors of the
//! caller's path resolver, which pass through unchanged.
//!
//! Where the AWS documentation is silent or ambiguous, this module assumes:
//! - `States.StringSplit` drops empty pieces: consecutive, leading or trailing separators produce
//!   no empty strings (this matches the AWS examples and LocalStack's emulation).
//! - A `States.Format` template read from a path, or returned by a nested call, has no escape
//!   sequences: every `{}` in it is a placeholder. In a template written as a string literal,
//!   `\{` and `\}` are literal braces and only unescaped `{}` pairs are placeholders.
//! - Inside string literals, an unescaped `{` or `}` that is not part of a `{}` pair is kept as a
//!   literal character; a backslash before anything other than `'`, `{`, `}` or `\` is an error.
//! - Integer arguments may be written as numbers with a zero fractional part (`2.0`); any other
//!   fraction is an error, not rounded.
//! - `States.ArrayRange` returns `[]` when the step points away from the end
//!   (`States.ArrayRange(5, 1, 1)`).
//! - `States.Array()` with no arguments returns `[]`; `States.ArrayPartition` of `[]` returns `[]`.
//! - `States.Hash` algorithm names are case-sensitive (`SHA-256`, not `sha-256`).

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::StatesError;

/// Deepest nesting of intrinsic calls that [`evaluate`] accepts (the outermost call counts as 1).
const MAX_NESTING: usize = 32;
/// Most items `States.ArrayRange` may produce.
const MAX_RANGE_ITEMS: i128 = 1000;
/// Longest string (in characters) `States.Base64Encode` accepts.
const MAX_BASE64_ENCODE_CHARS: usize = 10_000;
/// Longest string (in characters) `States.Base64Decode` accepts.
const MAX_BASE64_DECODE_CHARS: usize = 10_000;
/// Longest data (in characters) `States.Hash` accepts.
const MAX_HASH_CHARS: usize = 10_000;
/// The algorithms `States.Hash` supports, for error messages.
const HASH_ALGORITHMS: &str = "MD5, SHA-1, SHA-256, SHA-384, SHA-512";
/// How much of an expression or a string value error messages quote.
const SNIPPET_CHARS: usize = 80;

/// True when `s` is an intrinsic function call (starts with `States.` and has a `(`).
#[must_use]
pub fn is_intrinsic(s: &str) -> bool {
    s.starts_with("States.") && s.contains('(')
}

/// Evaluates one intrinsic function expression, e.g.
/// `States.Format('{} of {}', $.count, $$.Execution.Name)`.
/// `resolve` resolves a path argument (`$`, `$.a.b`, `$$.Execution.Id`, `$.items[0]`, ...) to its
/// value; it returns Err(StatesError) when the path does not resolve. `random` returns
/// uniformly distributed u64s (the runner seeds it for reproducibility); use it for
/// States.MathRandom (when no seed argument is given) and States.UUID (v4: set version/variant bits).
pub fn evaluate(
    expr: &str,
    resolve: &dyn Fn(&str) -> Result<Value, StatesError>,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, StatesError> {
    let call = Parser::new(expr).parse_expression()?;
    let mut evaluator = Evaluator { resolve, random };
    evaluator.call(&call)
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

/// The intrinsic functions AWS Step Functions provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    const ALL: [Self; 18] = [
        Self::Format,
        Self::StringToJson,
        Self::JsonToString,
        Self::Array,
        Self::ArrayPartition,
        Self::ArrayContains,
        Self::ArrayRange,
        Self::ArrayGetItem,
        Self::ArrayLength,
        Self::ArrayUnique,
        Self::Base64Encode,
        Self::Base64Decode,
        Self::Hash,
        Self::JsonMerge,
        Self::MathRandom,
        Self::MathAdd,
        Self::StringSplit,
        Self::Uuid,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Format => "States.Format",
            Self::StringToJson => "States.StringToJson",
            Self::JsonToString => "States.JsonToString",
            Self::Array => "States.Array",
            Self::ArrayPartition => "States.ArrayPartition",
            Self::ArrayContains => "States.ArrayContains",
            Self::ArrayRange => "States.ArrayRange",
            Self::ArrayGetItem => "States.ArrayGetItem",
            Self::ArrayLength => "States.ArrayLength",
            Self::ArrayUnique => "States.ArrayUnique",
            Self::Base64Encode => "States.Base64Encode",
            Self::Base64Decode => "States.Base64Decode",
            Self::Hash => "States.Hash",
            Self::JsonMerge => "States.JsonMerge",
            Self::MathRandom => "States.MathRandom",
            Self::MathAdd => "States.MathAdd",
            Self::StringSplit => "States.StringSplit",
            Self::Uuid => "States.UUID",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The least and the most arguments the function takes (`None`: no upper bound).
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Self::Format => (1, None),
            Self::Array => (0, None),
            Self::Uuid => (0, Some(0)),
            Self::StringToJson
            | Self::JsonToString
            | Self::ArrayLength
            | Self::ArrayUnique
            | Self::Base64Encode
            | Self::Base64Decode => (1, Some(1)),
            Self::ArrayPartition
            | Self::ArrayContains
            | Self::ArrayGetItem
            | Self::Hash
            | Self::MathAdd
            | Self::StringSplit => (2, Some(2)),
            Self::ArrayRange | Self::JsonMerge => (3, Some(3)),
            Self::MathRandom => (2, Some(3)),
        }
    }

    fn check_arity(self, got: usize) -> Result<(), StatesError> {
        let (min, max) = self.arity();
        if got >= min && max.is_none_or(|max| got <= max) {
            return Ok(());
        }
        let expected = match max {
            Some(max) if max == min => plural(min, "argument"),
            Some(max) => format!("{min} to {max} arguments"),
            None => format!("at least {}", plural(min, "argument")),
        };
        Err(fail(self, format!("expects {expected}, got {got}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree and parser
// ---------------------------------------------------------------------------------------------

/// A piece of a string literal: text, or an unescaped `{}` (a `States.Format` placeholder).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Placeholder,
}

/// One argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A single-quoted string literal, kept in segments so escaped braces stay literal.
    Str(Vec<Segment>),
    /// A number, `true`, `false` or `null`.
    Literal(Value),
    /// A path starting with `$` (including context paths starting with `$$`).
    Path(String),
    /// A nested intrinsic call.
    Call(Call),
}

#[derive(Debug, Clone, PartialEq)]
struct Call {
    func: Func,
    args: Vec<Arg>,
}

struct Parser<'s> {
    src: &'s str,
    /// Byte offset of the next character; always on a character boundary.
    pos: usize,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// The text from byte offset `start` to the current position.
    fn since(&self, start: usize) -> &'s str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// A syntax error at the current position.
    fn error(&self, message: impl std::fmt::Display) -> StatesError {
        let character = self.src.get(..self.pos).map_or(0, |s| s.chars().count()) + 1;
        StatesError::intrinsic(format!(
            "invalid intrinsic function expression '{}': {message} at character {character}",
            snippet(self.src)
        ))
    }

    /// A syntax error at byte offset `pos`.
    fn error_at(&mut self, pos: usize, message: impl std::fmt::Display) -> StatesError {
        self.pos = pos;
        self.error(message)
    }

    /// The whole expression: one intrinsic call, optionally surrounded by whitespace.
    fn parse_expression(mut self) -> Result<Call, StatesError> {
        self.skip_ws();
        if !self.rest().starts_with("States.") {
            return Err(
                self.error("expected an intrinsic function call such as States.Format(...)")
            );
        }
        let call = self.parse_call(1)?;
        self.skip_ws();
        if let Some(c) = self.peek() {
            return Err(self.error(format!(
                "unexpected '{c}' after the end of the {} call",
                call.func.name()
            )));
        }
        Ok(call)
    }

    /// Letters, digits, `_` and `.`: a function name or a keyword.
    fn take_identifier(&mut self) -> &'s str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                break;
            }
            self.pos += 1;
        }
        self.since(start)
    }

    /// `States.Name(arg, ...)`; `depth` is the nesting level of this call (1 for the outermost).
    fn parse_call(&mut self, depth: usize) -> Result<Call, StatesError> {
        if depth > MAX_NESTING {
            return Err(self.error(format!(
                "intrinsic functions are nested more than {MAX_NESTING} levels deep"
            )));
        }
        let name = self.take_identifier();
        let Some(func) = Func::from_name(name) else {
            return Err(StatesError::intrinsic(format!(
                "unknown intrinsic function '{}'",
                snippet(name)
            )));
        };
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error(format!("expected '(' after {}", func.name())));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.parse_arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => {
                        return Err(self.error(format!(
                            "expected ',' or ')' in the arguments of {} but found '{c}'",
                            func.name()
                        )));
                    }
                    None => {
                        return Err(self.error(format!("missing ')' to close {}", func.name())));
                    }
                }
            }
        }
        func.check_arity(args.len())?;
        Ok(Call { func, args })
    }

    fn parse_arg(&mut self, depth: usize) -> Result<Arg, StatesError> {
        match self.peek() {
            Some('\'') => self.parse_string().map(Arg::Str),
            Some('$') => self.parse_path().map(Arg::Path),
            Some(c) if c == '-' || c.is_ascii_digit() => self.parse_number().map(Arg::Literal),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                let word = self.take_identifier();
                match word {
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    "null" => Ok(Arg::Literal(Value::Null)),
                    _ if word.starts_with("States.") => {
                        self.pos = start;
                        self.parse_call(depth + 1).map(Arg::Call)
                    }
                    _ => Err(self.error_at(
                        start,
                        format!(
                            "unexpected '{}'; an argument must be a string in single quotes, a number, \
                             true, false, null, a path starting with $ or an intrinsic function",
                            snippet(word)
                        ),
                    )),
                }
            }
            Some(',' | ')') | None => Err(self.error("missing argument")),
            Some(c) => Err(self.error(format!(
                "unexpected '{c}'; an argument must be a string in single quotes, a number, \
                 true, false, null, a path starting with $ or an intrinsic function"
            ))),
        }
    }

    /// A single-quoted string literal with the escapes `\'`, `\{`, `\}` and `\\`.
    fn parse_string(&mut self) -> Result<Vec<Segment>, StatesError> {
        let open = self.pos;
        self.pos += 1; // the opening quote
        let mut segments = Vec::new();
        let mut text = String::new();
        loop {
            let at = self.pos;
            let Some(c) = self.bump() else {
                return Err(self.error_at(open, "unterminated string literal"));
            };
            match c {
                '\'' => break,
                '\\' => match self.bump() {
                    Some(escaped @ ('\'' | '{' | '}' | '\\')) => text.push(escaped),
                    Some(other) => {
                        return Err(self.error_at(
                            at,
                            format!(
                                "invalid escape sequence '\\{other}' in a string literal \
                                 (only \\', \\{{, \\}} and \\\\ are allowed)"
                            ),
                        ));
                    }
                    None => return Err(self.error_at(open, "unterminated string literal")),
                },
                '{' if self.peek() == Some('}') => {
                    self.pos += 1;
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    segments.push(Segment::Placeholder);
                }
                other => text.push(other),
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(segments)
    }

    /// A path: from `$` to the next `,` or `)` outside brackets and quotes.
    fn parse_path(&mut self) -> Result<String, StatesError> {
        let start = self.pos;
        let mut depth = 0_usize;
        let mut quote: Option<(char, usize)> = None;
        let mut open_bracket = start;
        while let Some(c) = self.peek() {
            if let Some((q, _)) = quote {
                self.pos += c.len_utf8();
                if c == '\\' {
                    if let Some(escaped) = self.peek() {
                        self.pos += escaped.len_utf8();
                    }
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                ',' | ')' if depth == 0 => break,
                '[' => {
                    if depth == 0 {
                        open_bracket = self.pos;
                    }
                    depth += 1;
                }
                ']' => {
                    if depth == 0 {
                        return Err(self.error("unbalanced ']' in a path"));
                    }
                    depth -= 1;
                }
                '\'' | '"' if depth > 0 => quote = Some((c, self.pos)),
                _ => {}
            }
            self.pos += c.len_utf8();
        }
        if let Some((_, at)) = quote {
            return Err(self.error_at(at, "unterminated quoted name in a path"));
        }
        if depth > 0 {
            return Err(self.error_at(open_bracket, "unclosed '[' in a path"));
        }
        Ok(self.since(start).trim_end().to_owned())
    }

    /// An integer or decimal number, optionally negative, with an optional exponent.
    fn parse_number(&mut self) -> Result<Value, StatesError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
                break;
            }
            self.pos += 1;
        }
        let text = self.since(start);
        if !is_json_number(text) {
            return Err(self.error_at(start, format!("invalid number '{}'", snippet(text))));
        }
        match serde_json::from_str::<Value>(text) {
            Ok(number @ Value::Number(_)) => Ok(number),
            _ => Err(self.error_at(start, format!("number '{}' is out of range", snippet(text)))),
        }
    }
}

/// True when `s` is a number in JSON syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let bytes = s.as_bytes();
    let int_start = usize::from(bytes.first() == Some(&b'-'));
    let mut i = skip_digits(bytes, int_start);
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && bytes.get(int_start) == Some(&b'0')) {
        return false;
    }
    if bytes.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        i = skip_digits(bytes, frac_start);
        if i == frac_start {
            return false;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        i = skip_digits(bytes, exp_start);
        if i == exp_start {
            return false;
        }
    }
    i == bytes.len()
}

fn skip_digits(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

struct Evaluator<'r, 'g> {
    resolve: &'r dyn Fn(&str) -> Result<Value, StatesError>,
    random: &'g mut dyn FnMut() -> u64,
}

impl Evaluator<'_, '_> {
    fn arg(&mut self, arg: &Arg) -> Result<Value, StatesError> {
        match arg {
            Arg::Str(segments) => Ok(Value::String(join_segments(segments))),
            Arg::Literal(value) => Ok(value.clone()),
            Arg::Path(path) => (self.resolve)(path),
            Arg::Call(call) => self.call(call),
        }
    }

    fn call(&mut self, call: &Call) -> Result<Value, StatesError> {
        let f = call.func;
        if f == Func::Format {
            return self.format(&call.args);
        }
        let args = call
            .args
            .iter()
            .map(|arg| self.arg(arg))
            .collect::<Result<Vec<_>, _>>()?;
        if f == Func::Array {
            return Ok(Value::Array(args));
        }
        match (f, args.as_slice()) {
            (Func::StringToJson, [s]) => string_to_json(s),
            (Func::JsonToString, [v]) => json_to_string(v),
            (Func::ArrayPartition, [array, size]) => array_partition(array, size),
            (Func::ArrayContains, [array, value]) => array_contains(array, value),
            (Func::ArrayRange, [start, end, step]) => array_range(start, end, step),
            (Func::ArrayGetItem, [array, index]) => array_get_item(array, index),
            (Func::ArrayLength, [array]) => array_length(array),
            (Func::ArrayUnique, [array]) => array_unique(array),
            (Func::Base64Encode, [s]) => base64_encode(s),
            (Func::Base64Decode, [s]) => base64_decode(s),
            (Func::Hash, [data, algorithm]) => hash(data, algorithm),
            (Func::JsonMerge, [left, right, deep]) => json_merge(left, right, deep),
            (Func::MathRandom, [start, end]) => self.math_random(start, end, None),
            (Func::MathRandom, [start, end, seed]) => self.math_random(start, end, Some(seed)),
            (Func::MathAdd, [a, b]) => math_add(a, b),
            (Func::StringSplit, [s, separators]) => string_split(s, separators),
            (Func::Uuid, []) => {
                let high = (self.random)();
                let low = (self.random)();
                Ok(Value::String(uuid_v4(high, low)))
            }
            _ => Err(fail(
                f,
                format!("cannot be called with {}", plural(args.len(), "argument")),
            )),
        }
    }

    /// `States.Format(template, args...)`.
    fn format(&mut self, args: &[Arg]) -> Result<Value, StatesError> {
        let f = Func::Format;
        let Some((template, rest)) = args.split_first() else {
            return Err(fail(f, "expects at least 1 argument, got 0"));
        };
        let runtime_segments;
        let segments: &[Segment] = match template {
            Arg::Str(segments) => segments,
            other => match self.arg(other)? {
                Value::String(s) => {
                    runtime_segments = template_segments(&s);
                    &runtime_segments
                }
                value => {
                    return Err(fail(
                        f,
                        format!("the template must be a string, got {}", describe(&value)),
                    ));
                }
            },
        };
        let placeholders = segments
            .iter()
            .filter(|segment| matches!(segment, Segment::Placeholder))
            .count();
        if placeholders != rest.len() {
            return Err(fail(
                f,
                format!(
                    "the template has {} but {} {} given",
                    plural(placeholders, "placeholder"),
                    plural(rest.len(), "argument"),
                    if rest.len() == 1 { "was" } else { "were" }
                ),
            ));
        }
        let mut out = String::new();
        let mut values = rest.iter().enumerate();
        for segment in segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Placeholder => {
                    let Some((index, arg)) = values.next() else {
                        break;
                    };
                    match self.arg(arg)? {
                        Value::String(s) => out.push_str(&s),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                        Value::Null => out.push_str("null"),
                        value @ (Value::Array(_) | Value::Object(_)) => {
                            return Err(fail(
                                f,
                                format!(
                                    "argument {} is {}; only strings, numbers, booleans and null \
                                     can be formatted",
                                    index + 2,
                                    describe(&value)
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(Value::String(out))
    }

    /// `States.MathRandom(start, end[, seed])`: an integer in `[start, end)`.
    fn math_random(
        &mut self,
        start: &Value,
        end: &Value,
        seed: Option<&Value>,
    ) -> Result<Value, StatesError> {
        let f = Func::MathRandom;
        let start = want_int(f, "the start", start)?;
        let end = want_int(f, "the end", end)?;
        if start >= end {
            return Err(fail(
                f,
                format!(
                    "the start ({start}) must be less than the end ({end}), which is exclusive"
                ),
            ));
        }
        let r = match seed {
            Some(seed) => splitmix64(want_int(f, "the seed", seed)? as u64),
            None => (self.random)(),
        };
        pick_in_range(start, end, r).map(Value::from)
    }
}

/// The text of a string literal, with `{}` placeholders written back as `{}`.
fn join_segments(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Placeholder => out.push_str("{}"),
        }
    }
    out
}

/// The segments of a template that is a runtime value: every `{}` is a placeholder.
fn template_segments(template: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut parts = template.split("{}");
    if let Some(first) = parts.next().filter(|first| !first.is_empty()) {
        segments.push(Segment::Text(first.to_owned()));
    }
    for part in parts {
        segments.push(Segment::Placeholder);
        if !part.is_empty() {
            segments.push(Segment::Text(part.to_owned()));
        }
    }
    segments
}

fn string_to_json(s: &Value) -> Result<Value, StatesError> {
    let f = Func::StringToJson;
    let text = want_str(f, "the argument", s)?;
    serde_json::from_str(text).map_err(|e| fail(f, format!("the string is not valid JSON: {e}")))
}

fn json_to_string(v: &Value) -> Result<Value, StatesError> {
    serde_json::to_string(v).map(Value::String).map_err(|e| {
        fail(
            Func::JsonToString,
            format!("cannot serialise the value: {e}"),
        )
    })
}

fn array_partition(array: &Value, size: &Value) -> Result<Value, StatesError> {
    let f = Func::ArrayPartition;
    let items = want_array(f, "the first argument", array)?;
    let size = want_int(f, "the chunk size", size)?;
    let chunk = usize::try_from(size)
        .ok()
        .filter(|chunk| *chunk > 0)
        .ok_or_else(|| {
            fail(
                f,
                format!("the chunk size must be a positive integer, got {size}"),
            )
        })?;
    Ok(Value::Array(
        items
            .chunks(chunk)
            .map(|part| Value::Array(part.to_vec()))
            .collect(),
    ))
}

fn array_contains(array: &Value, value: &Value) -> Result<Value, StatesError> {
    let items = want_array(Func::ArrayContains, "the first argument", array)?;
    Ok(Value::Bool(items.contains(value)))
}

fn array_range(start: &Value, end: &Value, step: &Value) -> Result<Value, StatesError> {
    let f = Func::ArrayRange;
    let start = i128::from(want_int(f, "the start", start)?);
    let end = i128::from(want_int(f, "the end", end)?);
    let step = i128::from(want_int(f, "the step", step)?);
    if step == 0 {
        return Err(fail(f, "the step must not be 0"));
    }
    let count = if (step > 0 && start > end) || (step < 0 && start < end) {
        0
    } else {
        (end - start) / step + 1
    };
    if count > MAX_RANGE_ITEMS {
        return Err(fail(
            f,
            format!("the range has {count} items; at most {MAX_RANGE_ITEMS} are allowed"),
        ));
    }
    let mut items = Vec::new();
    let mut current = start;
    for _ in 0..count {
        let item = i64::try_from(current)
            .map_err(|_| fail(f, format!("{current} is out of the 64-bit integer range")))?;
        items.push(Value::from(item));
        current += step;
    }
    Ok(Value::Array(items))
}

fn array_get_item(array: &Value, index: &Value) -> Result<Value, StatesError> {
    let f = Func::ArrayGetItem;
    let items = want_array(f, "the first argument", array)?;
    let index = want_int(f, "the index", index)?;
    usize::try_from(index)
        .ok()
        .and_then(|i| items.get(i))
        .cloned()
        .ok_or_else(|| {
            fail(
                f,
                format!(
                    "index {index} is out of range for an array of {}",
                    plural(items.len(), "item")
                ),
            )
        })
}

fn array_length(array: &Value) -> Result<Value, StatesError> {
    let items = want_array(Func::ArrayLength, "the argument", array)?;
    let len =
        i64::try_from(items.len()).map_err(|_| fail(Func::ArrayLength, "the array is too long"))?;
    Ok(Value::from(len))
}

fn array_unique(array: &Value) -> Result<Value, StatesError> {
    let items = want_array(Func::ArrayUnique, "the argument", array)?;
    let mut unique: Vec<Value> = Vec::new();
    // Scalars whose JSON text identifies them exactly (strings, booleans, null, integers) are
    // deduplicated with a set; other values (floats, arrays, objects) by JSON equality.
    let mut seen: HashSet<String> = HashSet::new();
    for item in items {
        let is_new = match identity_key(item) {
            Some(key) => seen.insert(key),
            None => !unique.contains(item),
        };
        if is_new {
            unique.push(item.clone());
        }
    }
    Ok(Value::Array(unique))
}

/// A key equal for two values exactly when the values are equal, for the values that have one.
fn identity_key(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => serde_json::to_string(value).ok(),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn base64_encode(s: &Value) -> Result<Value, StatesError> {
    let f = Func::Base64Encode;
    let text = want_str(f, "the argument", s)?;
    check_length(f, "the input", text, MAX_BASE64_ENCODE_CHARS)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
    ))
}

fn base64_decode(s: &Value) -> Result<Value, StatesError> {
    let f = Func::Base64Decode;
    let text = want_str(f, "the argument", s)?;
    check_length(f, "the input", text, MAX_BASE64_DECODE_CHARS)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| fail(f, format!("the input is not valid base64: {e}")))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| fail(f, "the decoded bytes are not valid UTF-8"))
}

fn hash(data: &Value, algorithm: &Value) -> Result<Value, StatesError> {
    let f = Func::Hash;
    let algorithm = want_str(f, "the algorithm", algorithm)?;
    // A non-string value is hashed as its JSON text.
    let text: Cow<'_, str> = match data {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(
            serde_json::to_string(other)
                .map_err(|e| fail(f, format!("cannot serialise the data: {e}")))?,
        ),
    };
    check_length(f, "the data", &text, MAX_HASH_CHARS)?;
    let bytes = text.as_bytes();
    let digest = match algorithm {
        "MD5" => hex_lower(<md5::Md5 as md5::Digest>::digest(bytes).as_slice()),
        "SHA-1" => hex_lower(<sha1::Sha1 as sha1::Digest>::digest(bytes).as_slice()),
        "SHA-256" => hex_lower(<sha2::Sha256 as sha2::Digest>::digest(bytes).as_slice()),
        "SHA-384" => hex_lower(<sha2::Sha384 as sha2::Digest>::digest(bytes).as_slice()),
        "SHA-512" => hex_lower(<sha2::Sha512 as sha2::Digest>::digest(bytes).as_slice()),
        other => {
            return Err(fail(
                f,
                format!(
                    "unsupported algorithm '{}'; expected one of {HASH_ALGORITHMS}",
                    snippet(other)
                ),
            ));
        }
    };
    Ok(Value::String(digest))
}

fn json_merge(left: &Value, right: &Value, deep: &Value) -> Result<Value, StatesError> {
    let f = Func::JsonMerge;
    let left = want_object(f, "the first argument", left)?;
    let right = want_object(f, "the second argument", right)?;
    if want_bool(f, "isDeepMerge (the third argument)", deep)? {
        return Err(fail(
            f,
            "deep merge is not supported; isDeepMerge (the third argument) must be false",
        ));
    }
    let mut merged = left.clone();
    for (key, value) in right {
        merged.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(merged))
}

fn math_add(a: &Value, b: &Value) -> Result<Value, StatesError> {
    let f = Func::MathAdd;
    let a = want_int(f, "the first argument", a)?;
    let b = want_int(f, "the second argument", b)?;
    a.checked_add(b)
        .map(Value::from)
        .ok_or_else(|| fail(f, format!("{a} + {b} overflows a 64-bit integer")))
}

/// Splits on every character of `separators`; empty pieces are dropped (see the module docs).
fn string_split(s: &Value, separators: &Value) -> Result<Value, StatesError> {
    let f = Func::StringSplit;
    let text = want_str(f, "the first argument", s)?;
    let separators = want_str(f, "the separators (the second argument)", separators)?;
    Ok(Value::Array(
        text.split(|c: char| separators.contains(c))
            .filter(|piece| !piece.is_empty())
            .map(|piece| Value::String(piece.to_owned()))
            .collect(),
    ))
}

/// A version 4 (random) UUID from 128 random bits, lowercase, 8-4-4-4-12.
fn uuid_v4(high: u64, low: u64) -> String {
    let mut bits = (u128::from(high) << 64) | u128::from(low);
    // Version 4 in the high nibble of byte 6.
    bits = (bits & !(0xF_u128 << 76)) | (0x4_u128 << 76);
    // Variant 0b10 in the two high bits of byte 8.
    bits = (bits & !(0x3_u128 << 62)) | (0x2_u128 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        bits >> 96,
        (bits >> 80) & 0xFFFF,
        (bits >> 64) & 0xFFFF,
        (bits >> 48) & 0xFFFF,
        bits & 0xFFFF_FFFF_FFFF
    )
}

/// SplitMix64: a well-mixed u64 from a seed, so a seeded `States.MathRandom` is deterministic.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a uniform u64 onto `[start, end)` (requires `start < end`).
fn pick_in_range(start: i64, end: i64, r: u64) -> Result<i64, StatesError> {
    let span = (i128::from(end) - i128::from(start)).unsigned_abs();
    // r < 2^64 and span < 2^64, so the product fits in a u128 and the offset is below span.
    let offset = (u128::from(r) * span) >> 64;
    let offset = i128::try_from(offset)
        .map_err(|_| fail(Func::MathRandom, "the random offset is out of range"))?;
    i64::try_from(i128::from(start) + offset)
        .map_err(|_| fail(Func::MathRandom, "the random value is out of range"))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A `States.IntrinsicFailure` whose cause names the function.
fn fail(f: Func, message: impl std::fmt::Display) -> StatesError {
    StatesError::intrinsic(format!("{}: {message}", f.name()))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// At most [`SNIPPET_CHARS`] characters of `s`, with `...` when cut.
fn snippet(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}...", s.get(..cut).unwrap_or(""))),
        None => Cow::Borrowed(s),
    }
}

/// A short description of a value's type (and, for scalars, the value) for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string '{}'", snippet(s)),
        Value::Array(items) => format!("an array of {}", plural(items.len(), "item")),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The value as an i64 when it is a number with no fractional part that fits.
fn as_integer(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None; // above i64::MAX
    }
    let x = n.as_f64()?;
    // 2^63, exactly representable. -2^63 <= x < 2^63 are the f64 values that convert to i64
    // without saturating.
    let bound = -(i64::MIN as f64);
    if x.is_finite() && x.fract() == 0.0 && (-bound..bound).contains(&x) {
        Some(x as i64)
    } else {
        None
    }
}

fn want_int(f: Func, what: &str, value: &Value) -> Result<i64, StatesError> {
    as_integer(value).ok_or_else(|| {
        fail(
            f,
            format!("{what} must be a 64-bit integer, got {}", describe(value)),
        )
    })
}

fn want_str<'v>(f: Func, what: &str, value: &'v Value) -> Result<&'v str, StatesError> {
    value.as_str().ok_or_else(|| {
        fail(
            f,
            format!("{what} must be a string, got {}", describe(value)),
        )
    })
}

fn want_array<'v>(f: Func, what: &str, value: &'v Value) -> Result<&'v [Value], StatesError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| {
        fail(
            f,
            format!("{what} must be an array, got {}", describe(value)),
        )
    })
}

fn want_object<'v>(
    f: Func,
    what: &str,
    value: &'v Value,
) -> Result<&'v Map<String, Value>, StatesError> {
    value.as_object().ok_or_else(|| {
        fail(
            f,
            format!("{what} must be an object, got {}", describe(value)),
        )
    })
}

fn want_bool(f: Func, what: &str, value: &Value) -> Result<bool, StatesError> {
    value.as_bool().ok_or_else(|| {
        fail(
            f,
            format!("{what} must be a boolean, got {}", describe(value)),
        )
    })
}

fn check_length(f: Func, what: &str, text: &str, max: usize) -> Result<(), StatesError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(fail(
            f,
            format!("{what} has {chars} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> Value {
        json!({
            "name": "Arnav",
            "template": "Hello, my name is {}.",
            "count": 3,
            "escapedJsonString": "{\"foo\": \"bar\"}",
            "unescapedJson": {"foo": "bar"},
            "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9],
            "lookingFor": 5,
            "index": 5,
            "duplicates": [1, 2, 3, 3, 3, 3, 3, 3, 4],
            "input": "Data to encode",
            "base64": "RGF0YSB0byBlbmNvZGU=",
            "Data": "input data",
            "Algorithm": "SHA-1",
            "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
            "json2": {"a": {"a3": 1, "a4": 2}, "c": 3},
            "value1": 111,
            "step": -1,
            "start": 1,
            "end": 999,
            "inputString": "This.is+a,test=string",
            "splitter": ".+,=",
            "float": 2.5,
            "obj": {"k": 1}
        })
    }

    fn context() -> Value {
        json!({"Execution": {"Name": "exec-1", "Id": "arn:aws:states:us-east-1:123:execution:sm:exec-1"}})
    }

    /// Resolves `$`, `$.a.b` and `$$.a.b` by walking object keys; anything else fails.
    fn resolve_in(input: &Value, context: &Value, path: &str) -> Result<Value, StatesError> {
        let (root, rest) = if let Some(rest) = path.strip_prefix("$$") {
            (context, rest)
        } else if let Some(rest) = path.strip_prefix('$') {
            (input, rest)
        } else {
            return Err(StatesError::runtime(format!("not a path: {path}")));
        };
        let mut current = root;
        for key in rest.split('.').filter(|k| !k.is_empty()) {
            current = current.get(key).ok_or_else(|| {
                StatesError::runtime(format!(
                    "The JSONPath '{path}' could not be found in the input"
                ))
            })?;
        }
        Ok(current.clone())
    }

    fn run_with(expr: &str, random: &mut dyn FnMut() -> u64) -> Result<Value, StatesError> {
        let input = input();
        let context = context();
        let resolve = |path: &str| resolve_in(&input, &context, path);
        evaluate(expr, &resolve, random)
    }

    fn run(expr: &str) -> Result<Value, StatesError> {
        let mut counter = 0_u64;
        let mut random = || {
            counter = counter.wrapping_add(1);
            splitmix64(counter)
        };
        run_with(expr, &mut random)
    }

    fn ok(expr: &str) -> Value {
        match run(expr) {
            Ok(value) => value,
            Err(e) => panic!("{expr} failed: {e:?}"),
        }
    }

    fn err(expr: &str) -> StatesError {
        match run(expr) {
            Ok(value) => panic!("{expr} should fail but returned {value}"),
            Err(e) => e,
        }
    }

    /// Asserts the expression fails with States.IntrinsicFailure and a cause containing `needle`.
    fn fails_with(expr: &str, needle: &str) {
        let e = err(expr);
        assert_eq!(e.error, "States.IntrinsicFailure", "{expr}: {e:?}");
        assert!(
            e.cause.contains(needle),
            "{expr}: cause {:?} lacks {needle:?}",
            e.cause
        );
    }

    #[test]
    fn is_intrinsic_recognises_calls_and_rejects_other_strings() {
        assert!(is_intrinsic("States.Format('x')"));
        assert!(is_intrinsic("States.UUID()"));
        assert!(!is_intrinsic("$.a"));
        assert!(!is_intrinsic("States.Format"));
        assert!(!is_intrinsic("Hello (world)"));
        assert!(!is_intrinsic(" States.UUID()"));
    }

    #[test]
    fn format_replaces_placeholders_in_order() {
        assert_eq!(
            ok("States.Format('Hello, my name is {}.', $.name)"),
            json!("Hello, my name is Arnav.")
        );
        assert_eq!(
            ok("States.Format('{} of {}', $.count, $$.Execution.Name)"),
            json!("3 of exec-1")
        );
        assert_eq!(
            ok("States.Format('no placeholders')"),
            json!("no placeholders")
        );
        assert_eq!(ok("States.Format('{}{}', 'a', 'b')"), json!("ab"));
    }

    #[test]
    fn format_reads_the_template_from_a_path() {
        assert_eq!(
            ok("States.Format($.template, $.name)"),
            json!("Hello, my name is Arnav.")
        );
    }

    #[test]
    fn format_renders_numbers_booleans_and_null_as_json_text() {
        assert_eq!(
            ok("States.Format('{} {} {} {} {}', 42, -1.5, true, false, null)"),
            json!("42 -1.5 true false null")
        );
        assert_eq!(ok("States.Format('[{}]', $.float)"), json!("[2.5]"));
        // String arguments are inserted without quotes, and their braces are plain text.
        assert_eq!(ok("States.Format('{}', 'a{}b')"), json!("a{}b"));
    }

    #[test]
    fn format_keeps_escaped_braces_and_quotes_literal() {
        assert_eq!(ok("States.Format('a \\{\\} b {}', 'x')"), json!("a {} b x"));
        assert_eq!(
            ok(r"States.Format('Welcome to {} {}\'s playlist.', 'Jane', 'Doe')"),
            json!("Welcome to Jane Doe's playlist.")
        );
        assert_eq!(
            ok(r"States.Format('back\\slash {}', 1)"),
            json!(r"back\slash 1")
        );
        assert_eq!(ok(r"States.Format('\{}{}', 1)"), json!("{}1"));
    }

    #[test]
    fn format_rejects_a_placeholder_count_mismatch() {
        fails_with(
            "States.Format('{} and {}', 'x')",
            "States.Format: the template has 2 placeholders but 1 argument was given",
        );
        fails_with(
            "States.Format('none', 'x')",
            "0 placeholders but 1 argument",
        );
        fails_with(r"States.Format('a \{\} b', 'x')", "0 placeholders");
    }

    #[test]
    fn format_rejects_object_and_array_arguments() {
        fails_with("States.Format('{}', $.obj)", "argument 2 is an object");
        fails_with(
            "States.Format('{}', States.Array(1))",
            "argument 2 is an array",
        );
    }

    #[test]
    fn format_rejects_a_non_string_template() {
        fails_with("States.Format($.count)", "the template must be a string");
        fails_with(
            "States.Format()",
            "States.Format: expects at least 1 argument, got 0",
        );
    }

    #[test]
    fn string_to_json_parses_an_escaped_json_string() {
        assert_eq!(
            ok("States.StringToJson($.escapedJsonString)"),
            json!({"foo": "bar"})
        );
        assert_eq!(ok("States.StringToJson('[1, 2]')"), json!([1, 2]));
    }

    #[test]
    fn string_to_json_rejects_invalid_json_and_non_strings() {
        fails_with(
            "States.StringToJson('not json')",
            "States.StringToJson: the string is not valid JSON",
        );
        fails_with(
            "States.StringToJson($.obj)",
            "must be a string, got an object",
        );
    }

    #[test]
    fn json_to_string_serialises_compactly() {
        assert_eq!(
            ok("States.JsonToString($.unescapedJson)"),
            json!("{\"foo\":\"bar\"}")
        );
        assert_eq!(ok("States.JsonToString(States.Array(1,2))"), json!("[1,2]"));
        assert_eq!(ok("States.JsonToString('s')"), json!("\"s\""));
    }

    #[test]
    fn array_collects_arguments_of_any_type() {
        assert_eq!(
            ok("States.Array('Foo', 2020, $.unescapedJson, null)"),
            json!(["Foo", 2020, {"foo": "bar"}, null])
        );
        assert_eq!(ok("States.Array()"), json!([]));
    }

    #[test]
    fn array_partition_chunks_the_array_with_a_smaller_last_chunk() {
        assert_eq!(
            ok("States.ArrayPartition(States.Array(1,2,3,4,5,6,7,8,9), 4)"),
            json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
        );
        assert_eq!(
            ok("States.ArrayPartition($.inputArray, 9)"),
            json!([[1, 2, 3, 4, 5, 6, 7, 8, 9]])
        );
        assert_eq!(ok("States.ArrayPartition(States.Array(), 2)"), json!([]));
    }

    #[test]
    fn array_partition_rejects_non_positive_or_fractional_chunk_sizes() {
        fails_with(
            "States.ArrayPartition($.inputArray, 0)",
            "chunk size must be a positive integer, got 0",
        );
        fails_with(
            "States.ArrayPartition($.inputArray, -2)",
            "positive integer",
        );
        fails_with(
            "States.ArrayPartition($.inputArray, 1.5)",
            "must be a 64-bit integer, got number 1.5",
        );
        fails_with(
            "States.ArrayPartition($.name, 2)",
            "the first argument must be an array",
        );
    }

    #[test]
    fn array_contains_uses_json_equality() {
        assert_eq!(
            ok("States.ArrayContains($.inputArray, $.lookingFor)"),
            json!(true)
        );
        assert_eq!(ok("States.ArrayContains($.inputArray, 10)"), json!(false));
        assert_eq!(ok("States.ArrayContains($.inputArray, '5')"), json!(false));
        assert_eq!(
            ok(
                "States.ArrayContains(States.Array($.unescapedJson), States.StringToJson('{\"foo\":\"bar\"}'))"
            ),
            json!(true)
        );
    }

    #[test]
    fn array_range_counts_inclusively_by_step() {
        assert_eq!(ok("States.ArrayRange(1, 9, 2)"), json!([1, 3, 5, 7, 9]));
        assert_eq!(ok("States.ArrayRange(1, 10, 2)"), json!([1, 3, 5, 7, 9]));
        assert_eq!(ok("States.ArrayRange(9, 1, -3)"), json!([9, 6, 3]));
        assert_eq!(ok("States.ArrayRange(4, 4, 1)"), json!([4]));
        assert_eq!(ok("States.ArrayRange(5, 1, 1)"), json!([]));
        assert_eq!(
            ok("States.ArrayRange(1, 1000, 1)").as_array().map(Vec::len),
            Some(1000)
        );
    }

    #[test]
    fn array_range_rejects_zero_step_fractional_arguments_and_more_than_1000_items() {
        fails_with(
            "States.ArrayRange(1, 9, 0)",
            "States.ArrayRange: the step must not be 0",
        );
        fails_with(
            "States.ArrayRange(1.5, 9, 1)",
            "the start must be a 64-bit integer",
        );
        fails_with(
            "States.ArrayRange(1, 1001, 1)",
            "the range has 1001 items; at most 1000",
        );
        fails_with(
            "States.ArrayRange(-9223372036854775808, 9223372036854775807, 1)",
            "at most 1000",
        );
    }

    #[test]
    fn array_get_item_returns_the_item_at_the_index() {
        assert_eq!(ok("States.ArrayGetItem($.inputArray, $.index)"), json!(6));
        assert_eq!(ok("States.ArrayGetItem($.inputArray, 0)"), json!(1));
    }

    #[test]
    fn array_get_item_rejects_an_out_of_range_index() {
        fails_with(
            "States.ArrayGetItem(States.Array(1,2,3), 5)",
            "States.ArrayGetItem: index 5 is out of range for an array of 3 items",
        );
        fails_with(
            "States.ArrayGetItem(States.Array(1,2,3), -1)",
            "index -1 is out of range",
        );
        fails_with(
            "States.ArrayGetItem(States.Array(1,2,3), '1')",
            "the index must be a 64-bit integer",
        );
    }

    #[test]
    fn array_length_counts_items() {
        assert_eq!(ok("States.ArrayLength($.inputArray)"), json!(9));
        assert_eq!(ok("States.ArrayLength(States.Array())"), json!(0));
        fails_with(
            "States.ArrayLength($.obj)",
            "must be an array, got an object",
        );
    }

    #[test]
    fn array_unique_keeps_first_occurrences_in_order() {
        assert_eq!(ok("States.ArrayUnique($.duplicates)"), json!([1, 2, 3, 4]));
        assert_eq!(
            ok(
                "States.ArrayUnique(States.Array('b', 'a', 'b', 1.5, 1.5, $.obj, $.obj, null, null, 1))"
            ),
            json!(["b", "a", 1.5, {"k": 1}, null, 1])
        );
    }

    #[test]
    fn base64_encode_and_decode_round_trip() {
        assert_eq!(
            ok("States.Base64Encode('Data to encode')"),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            ok("States.Base64Encode($.input)"),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(ok("States.Base64Decode($.base64)"), json!("Data to encode"));
        assert_eq!(ok("States.Base64Encode('héllo')"), json!("aMOpbGxv"));
        assert_eq!(
            ok("States.Base64Decode(States.Base64Encode('héllo'))"),
            json!("héllo")
        );
    }

    #[test]
    fn base64_rejects_invalid_input_non_utf8_and_oversized_strings() {
        fails_with(
            "States.Base64Decode('not base64!')",
            "States.Base64Decode: the input is not valid base64",
        );
        fails_with("States.Base64Decode('/w==')", "not valid UTF-8");
        fails_with("States.Base64Encode(1)", "must be a string, got number 1");
        let long = "a".repeat(10_001);
        fails_with(
            &format!("States.Base64Encode('{long}')"),
            "10001 characters; at most 10000",
        );
        fails_with(
            &format!("States.Base64Decode('{long}')"),
            "10001 characters; at most 10000",
        );
        let limit = "a".repeat(10_000);
        assert!(run(&format!("States.Base64Encode('{limit}')")).is_ok());
    }

    #[test]
    fn hash_supports_every_algorithm() {
        assert_eq!(
            ok("States.Hash('input data', 'SHA-1')"),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            ok("States.Hash($.Data, $.Algorithm)"),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            ok("States.Hash('input data', 'MD5')"),
            json!("812f45842bc6d66ee14572ce20db8e86")
        );
        assert_eq!(
            ok("States.Hash('input data', 'SHA-256')"),
            json!("b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3")
        );
        assert_eq!(
            ok("States.Hash('input data', 'SHA-384')"),
            json!(
                "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"
            )
        );
        assert_eq!(
            ok("States.Hash('input data', 'SHA-512')"),
            json!(
                "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"
            )
        );
        assert_eq!(
            ok("States.Hash('', 'SHA-256')"),
            json!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn hash_hashes_the_json_text_of_non_strings() {
        assert_eq!(
            ok("States.Hash($.unescapedJson, 'SHA-256')"),
            json!("7a38bf81f383f69433ad6e900d35b3e2385593f76a7b7ab5d4355b8ba41ee24b")
        );
        assert_eq!(
            ok("States.Hash(States.Array(1, 2), 'MD5')"),
            json!("f79408e5ca998cd53faf44af31e6eb45")
        );
        assert_eq!(
            ok("States.Hash(42, 'MD5')"),
            json!("a1d0c6e83f027327d8461063f4ac58a6")
        );
    }

    #[test]
    fn hash_rejects_unknown_algorithms_and_oversized_data() {
        fails_with(
            "States.Hash('x', 'SHA-3')",
            "States.Hash: unsupported algorithm 'SHA-3'; expected one of MD5, SHA-1, SHA-256, SHA-384, SHA-512",
        );
        fails_with("States.Hash('x', 'sha-256')", "unsupported algorithm");
        fails_with("States.Hash('x', 1)", "the algorithm must be a string");
        let long = "a".repeat(10_001);
        fails_with(
            &format!("States.Hash('{long}', 'MD5')"),
            "the data has 10001 characters",
        );
    }

    #[test]
    fn json_merge_merges_shallowly_with_the_second_object_winning() {
        assert_eq!(
            ok("States.JsonMerge($.json1, $.json2, false)"),
            json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3})
        );
        let merged = ok("States.JsonMerge($.json1, $.json2, false)");
        let keys: Vec<&String> = merged
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn json_merge_rejects_deep_merge_and_non_objects() {
        fails_with(
            "States.JsonMerge($.json1, $.json2, true)",
            "States.JsonMerge: deep merge is not supported",
        );
        fails_with(
            "States.JsonMerge($.json1, $.inputArray, false)",
            "the second argument must be an object",
        );
        fails_with(
            "States.JsonMerge($.json1, $.json2, 'false')",
            "must be a boolean",
        );
    }

    #[test]
    fn math_random_stays_within_start_inclusive_end_exclusive() {
        let value = ok("States.MathRandom($.start, $.end)");
        let n = value.as_i64().expect("an integer");
        assert!((1..999).contains(&n), "{n}");

        let mut low = || 0_u64;
        assert_eq!(
            run_with("States.MathRandom(1, 999)", &mut low),
            Ok(json!(1))
        );
        let mut high = || u64::MAX;
        assert_eq!(
            run_with("States.MathRandom(1, 999)", &mut high),
            Ok(json!(998))
        );
        assert_eq!(
            run_with("States.MathRandom(-5, -4)", &mut high),
            Ok(json!(-5))
        );
        assert_eq!(
            run_with(
                "States.MathRandom(-9223372036854775808, 9223372036854775807)",
                &mut high
            ),
            Ok(json!(9_223_372_036_854_775_806_i64))
        );
    }

    #[test]
    fn math_random_with_a_seed_is_deterministic_and_ignores_random() {
        let mut calls = 0_u32;
        let mut random = || {
            calls += 1;
            7_u64
        };
        let first = run_with("States.MathRandom(1, 999, 1234)", &mut random).expect("evaluates");
        let second = run_with("States.MathRandom(1, 999, 1234)", &mut random).expect("evaluates");
        assert_eq!(calls, 0);
        assert_eq!(first, second);
        let n = first.as_i64().expect("an integer");
        assert!((1..999).contains(&n), "{n}");
        fails_with(
            "States.MathRandom(1, 999, 1.5)",
            "the seed must be a 64-bit integer",
        );
    }

    #[test]
    fn math_random_rejects_an_empty_range() {
        fails_with(
            "States.MathRandom(5, 5)",
            "States.MathRandom: the start (5) must be less than the end (5)",
        );
        fails_with("States.MathRandom(6, 5)", "must be less than the end");
        fails_with(
            "States.MathRandom('1', 5)",
            "the start must be a 64-bit integer",
        );
    }

    #[test]
    fn math_add_adds_integers() {
        assert_eq!(ok("States.MathAdd(111, -1)"), json!(110));
        assert_eq!(ok("States.MathAdd($.value1, $.step)"), json!(110));
        assert_eq!(
            ok("States.MathAdd(-9223372036854775808, 9223372036854775807)"),
            json!(-1)
        );
    }

    #[test]
    fn math_add_rejects_fractions_and_overflow() {
        fails_with(
            "States.MathAdd(1.5, 1)",
            "States.MathAdd: the first argument must be a 64-bit integer, got number 1.5",
        );
        fails_with(
            "States.MathAdd(9223372036854775807, 1)",
            "overflows a 64-bit integer",
        );
        fails_with(
            "States.MathAdd(1, '1')",
            "the second argument must be a 64-bit integer, got string '1'",
        );
    }

    #[test]
    fn integers_are_returned_as_json_integers() {
        let sum = ok("States.MathAdd(1.0, 2)");
        assert!(sum.is_i64(), "{sum}");
        assert_eq!(sum, json!(3));
        let range = ok("States.ArrayRange(1.0, 3, 1)");
        assert!(
            range
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_i64)),
            "{range}"
        );
        assert!(ok("States.ArrayLength($.inputArray)").is_u64());
    }

    #[test]
    fn string_split_splits_on_any_separator_character() {
        assert_eq!(
            ok("States.StringSplit('1,2,3,4,5', ',')"),
            json!(["1", "2", "3", "4", "5"])
        );
        assert_eq!(
            ok("States.StringSplit('This.is+a,test=string', '.+,=')"),
            json!(["This", "is", "a", "test", "string"])
        );
        assert_eq!(
            ok("States.StringSplit($.inputString, $.splitter)"),
            json!(["This", "is", "a", "test", "string"])
        );
        assert_eq!(ok("States.StringSplit('abc', '')"), json!(["abc"]));
    }

    #[test]
    fn string_split_drops_empty_pieces() {
        assert_eq!(ok("States.StringSplit(',a,,b,', ',')"), json!(["a", "b"]));
        assert_eq!(ok("States.StringSplit('', ',')"), json!([]));
        fails_with(
            "States.StringSplit(1, ',')",
            "States.StringSplit: the first argument must be a string",
        );
        fails_with(
            "States.StringSplit('a', 1)",
            "the separators (the second argument) must be a string",
        );
    }

    #[test]
    fn uuid_is_a_lowercase_version_4_uuid() {
        let value = ok("States.UUID()");
        let uuid = value.as_str().expect("a string");
        assert_eq!(uuid.len(), 36, "{uuid}");
        let groups: Vec<&str> = uuid.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{uuid}"
        );
        assert!(
            uuid.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{uuid}"
        );
        assert_eq!(uuid.chars().nth(14), Some('4'), "{uuid}");
        assert!(
            uuid.chars().nth(19).is_some_and(|c| "89ab".contains(c)),
            "{uuid}"
        );

        assert_eq!(uuid_v4(0, 0), "00000000-0000-4000-8000-000000000000");
        assert_eq!(
            uuid_v4(u64::MAX, u64::MAX),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        let two = ok("States.Array(States.UUID(), States.UUID())");
        assert_ne!(two.pointer("/0"), two.pointer("/1"));
    }

    #[test]
    fn uuid_takes_no_arguments() {
        fails_with("States.UUID(1)", "States.UUID: expects 0 arguments, got 1");
    }

    #[test]
    fn nested_calls_are_evaluated_inside_out() {
        assert_eq!(
            ok("States.ArrayLength(States.ArrayPartition(States.ArrayRange(1, 10, 1), 3))"),
            json!(4)
        );
        assert_eq!(
            ok("States.Format('{} items', States.ArrayLength(States.StringSplit('a b c', ' ')))"),
            json!("3 items")
        );
        assert_eq!(
            ok("States.Format(States.Format('{}', '{}!'), 'hi')"),
            json!("hi!")
        );
    }

    #[test]
    fn paths_with_brackets_and_quotes_are_passed_whole_to_the_resolver() {
        let echo =
            |path: &str| -> Result<Value, StatesError> { Ok(Value::String(path.to_owned())) };
        let mut random = || 0_u64;
        let result = evaluate(
            "States.Array($['a,b'], $.c[0], $.items[?(@.x > 1)], $[\"q)\"] , $, $$.Execution.Id)",
            &echo,
            &mut random,
        );
        assert_eq!(
            result,
            Ok(json!([
                "$['a,b']",
                "$.c[0]",
                "$.items[?(@.x > 1)]",
                "$[\"q)\"]",
                "$",
                "$$.Execution.Id"
            ]))
        );
        fails_with("States.Array($.a])", "unbalanced ']'");
        fails_with("States.Array($.a[0)", "unclosed '['");
        fails_with("States.Array($['a)", "unterminated quoted name");
    }

    #[test]
    fn resolve_errors_pass_through_unchanged() {
        let e = err("States.ArrayLength($.missing)");
        assert_eq!(
            e,
            StatesError::runtime("The JSONPath '$.missing' could not be found in the input")
        );
        let e = err("States.Format('{}', States.JsonToString($.nope))");
        assert_eq!(e.error, "States.Runtime");
    }

    #[test]
    fn unknown_functions_are_rejected() {
        fails_with("States.Nope(1)", "unknown intrinsic function 'States.Nope'");
        fails_with(
            "States.Array(States.format('x'))",
            "unknown intrinsic function 'States.format'",
        );
        fails_with("Foo.Bar(1)", "expected an intrinsic function call");
    }

    #[test]
    fn wrong_argument_counts_are_rejected() {
        fails_with(
            "States.MathAdd(1, 2, 3)",
            "States.MathAdd: expects 2 arguments, got 3",
        );
        fails_with(
            "States.ArrayLength()",
            "States.ArrayLength: expects 1 argument, got 0",
        );
        fails_with(
            "States.MathRandom(1)",
            "States.MathRandom: expects 2 to 3 arguments, got 1",
        );
        fails_with(
            "States.JsonMerge($.json1, $.json2)",
            "expects 3 arguments, got 2",
        );
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        fails_with(
            "States.Array(1) x",
            "unexpected 'x' after the end of the States.Array call",
        );
        fails_with("States.Array(1))", "unexpected ')'");
        fails_with("States.Array(1)States.Array(2)", "unexpected 'S'");
    }

    #[test]
    fn syntax_errors_are_intrinsic_failures() {
        fails_with("States.Array('abc)", "unterminated string literal");
        fails_with("States.Array(1, 2", "missing ')' to close States.Array");
        fails_with("States.Array(1 2)", "expected ',' or ')'");
        fails_with("States.Array(1,)", "missing argument");
        fails_with("States.Array(,1)", "missing argument");
        fails_with("States.Array(1, ,2)", "missing argument");
        fails_with(r"States.Array('a\nb')", "invalid escape sequence");
        fails_with("States.Array(01)", "invalid number '01'");
        fails_with("States.Array(1.)", "invalid number '1.'");
        fails_with("States.Array(1e999)", "out of range");
        fails_with("States.Array(bogus)", "unexpected 'bogus'");
        fails_with("States.Array", "expected '(' after States.Array");
        fails_with("", "expected an intrinsic function call");
        fails_with("States.Array(+1)", "unexpected '+'");
    }

    #[test]
    fn nesting_is_bounded() {
        let nested =
            |depth: usize| format!("{}1{}", "States.Array(".repeat(depth), ")".repeat(depth));
        assert!(run(&nested(MAX_NESTING)).is_ok());
        fails_with(&nested(MAX_NESTING + 1), "nested more than 32 levels deep");
        fails_with(&nested(100_000), "nested more than 32 levels deep");
    }

    #[test]
    fn whitespace_around_arguments_is_allowed() {
        assert_eq!(
            ok("  States.Array( 1 ,\t'a' ,\n $.count , States.MathAdd( 1 , 2 ) )  "),
            json!([1, "a", 3, 3])
        );
        assert_eq!(ok("States.UUID( )").as_str().map(str::len), Some(36));
    }

    #[test]
    fn literals_keep_their_json_types() {
        assert_eq!(
            ok("States.Array(-1, 2.5, 1e3, true, false, null, '')"),
            json!([-1, 2.5, 1000.0, true, false, null, ""])
        );
    }

    #[test]
    fn unescaped_lone_braces_in_literals_are_kept() {
        assert_eq!(ok("States.StringToJson('{\"a\": 1}')"), json!({"a": 1}));
        assert_eq!(ok("States.Format('{ {} }', 'x')"), json!("{ x }"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn function_names() -> Vec<&'static str> {
            Func::ALL.iter().map(|f| f.name()).collect()
        }

        proptest! {
            #[test]
            fn evaluate_never_panics_on_arbitrary_strings(s in "\\PC{0,80}") {
                let _ = run(&s);
            }

            #[test]
            fn evaluate_never_panics_on_arbitrary_strings_after_the_states_prefix(s in "\\PC{0,80}") {
                let _ = run(&format!("States.{s}"));
            }

            #[test]
            fn evaluate_never_panics_on_arbitrary_arguments_to_known_functions(
                name in prop::sample::select(function_names()),
                args in r"[-$.,()'\\{}a-z0-9 \[\]]{0,60}",
            ) {
                let _ = run(&format!("{name}({args}"));
            }
        }
    }
}
