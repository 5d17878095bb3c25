//! The data-driven classifier: `tasks/core/rules/diagnosis_rules.json` maps facts to fault
//! classes.
//!
//! A rule is `{id, class, confidence, priority, description, when}` where `when` is a condition
//! tree: `{"all": [..]}`, `{"any": [..]}`, `{"not": {..}}`, or a leaf `{"fact": NAME, OP: VALUE}`
//! with OP one of `eq ne in gt gte lt lte matches exists`. Every rule is validated at load against
//! the fact catalogue ([`crate::facts::FACTS`]): unknown facts, operators that do not fit the
//! fact's type, values outside a closed fact's set and bad regexes are errors naming the file,
//! the JSON path and the fix.
//!
//! Classification evaluates every rule; the matching rule with the highest priority (then
//! confidence, then file order) wins. No match, or a winner under `min_confidence`, yields
//! [`FaultClass::Unknown`]: never a guess presented as fact.

use std::fmt;

use regex::Regex;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{ConfigError, last_field, parse_json};
use crate::facts::{FactType, FactValue, Facts, fact_spec};

/// The rules-file format version this build reads.
pub const RULES_VERSION: u32 = 1;
/// The rules shipped with autoheal (`tasks/core/rules/diagnosis_rules.json`).
pub const DEFAULT_RULES: &str = include_str!("../rules/diagnosis_rules.json");
const DEFAULT_RULES_FILE: &str = "tasks/core/rules/diagnosis_rules.json";
const MAX_DEPTH: usize = 16;
const MAX_REGEX_LEN: usize = 256;

/// The fault classes of DESIGN.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultClass {
    Application,
    ResourceBottleneck,
    DiskFull,
    DiskCorruption,
    AgentFailure,
    #[serde(rename = "OSLevel")]
    OsLevel,
    Network,
    Hardware,
    Dependency,
    Flapping,
    Unknown,
}

impl FaultClass {
    pub const ALL: [FaultClass; 11] = [
        Self::Application,
        Self::ResourceBottleneck,
        Self::DiskFull,
        Self::DiskCorruption,
        Self::AgentFailure,
        Self::OsLevel,
        Self::Network,
        Self::Hardware,
        Self::Dependency,
        Self::Flapping,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "Application",
            Self::ResourceBottleneck => "ResourceBottleneck",
            Self::DiskFull => "DiskFull",
            Self::DiskCorruption => "DiskCorruption",
            Self::AgentFailure => "AgentFailure",
            Self::OsLevel => "OSLevel",
            Self::Network => "Network",
            Self::Hardware => "Hardware",
            Self::Dependency => "Dependency",
            Self::Flapping => "Flapping",
            Self::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    version: u32,
    #[serde(default = "default_min_confidence")]
    min_confidence: f64,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    rules: Vec<RawRule>,
}

fn default_min_confidence() -> f64 {
    0.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    class: FaultClass,
    confidence: f64,
    #[serde(default)]
    priority: i32,
    description: String,
    when: RawCondition,
}

#[derive(Debug)]
enum RawCondition {
    All(Vec<RawCondition>),
    Any(Vec<RawCondition>),
    Not(Box<RawCondition>),
    Leaf {
        fact: String,
        op: Op,
        value: serde_json::Value,
    },
}

/// A leaf comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Eq,
    Ne,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
    Matches,
    Exists,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::Eq,
        Op::Ne,
        Op::In,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Matches,
        Op::Exists,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Matches => "matches",
            Op::Exists => "exists",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl<'de> Deserialize<'de> for RawCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ConditionVisitor)
    }
}

struct ConditionVisitor;

const CONDITION_SHAPES: &str = "{\"all\": [..]}, {\"any\": [..]}, {\"not\": {..}} or {\"fact\": NAME, OP: VALUE} with OP one of eq, ne, in, gt, gte, lt, lte, matches, exists";

impl<'de> Visitor<'de> for ConditionVisitor {
    type Value = RawCondition;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a condition: {CONDITION_SHAPES}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCondition, A::Error> {
        let mut combinator: Option<RawCondition> = None;
        let mut fact: Option<String> = None;
        let mut op: Option<(Op, serde_json::Value)> = None;
        let mut keys = 0usize;
        while let Some(key) = map.next_key::<String>()? {
            keys += 1;
            match key.as_str() {
                "all" => combinator = Some(RawCondition::All(map.next_value()?)),
                "any" => combinator = Some(RawCondition::Any(map.next_value()?)),
                "not" => combinator = Some(RawCondition::Not(Box::new(map.next_value()?))),
                "fact" => fact = Some(map.next_value()?),
                other => match Op::parse(other) {
                    Some(o) if op.is_none() => op = Some((o, map.next_value()?)),
                    Some(o) => {
                        return Err(de::Error::custom(format!(
                            "a leaf condition takes exactly one operator, found a second one `{}`",
                            o.as_str()
                        )));
                    }
                    None => {
                        return Err(de::Error::custom(format!(
                            "unknown key `{other}` in a condition: expected {CONDITION_SHAPES}"
                        )));
                    }
                },
            }
        }
        match (combinator, fact, op) {
            (Some(c), None, None) if keys == 1 => Ok(c),
            (None, Some(fact), Some((op, value))) => Ok(RawCondition::Leaf { fact, op, value }),
            (None, Some(fact), None) => Err(de::Error::custom(format!(
                "the condition on fact `{fact}` has no operator: add one of eq, ne, in, gt, gte, lt, lte, matches, exists"
            ))),
            (None, None, Some((op, _))) => Err(de::Error::custom(format!(
                "the `{}` condition names no fact: add \"fact\": NAME",
                op.as_str()
            ))),
            _ => Err(de::Error::custom(format!(
                "a condition must be exactly one of {CONDITION_SHAPES}"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled, validated rules

/// What a leaf compares the fact's value with.
#[derive(Debug, Clone)]
enum Test {
    Eq(FactValue),
    Ne(FactValue),
    In(Vec<FactValue>),
    Cmp(Op, f64),
    Matches(Regex),
    Exists(bool),
}

#[derive(Debug, Clone)]
enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Leaf {
        fact: &'static str,
        op: Op,
        expected: serde_json::Value,
        test: Test,
    },
}

impl fmt::Display for Condition {
    /// Renders a condition for people: `diag.cpu_percent ≥ 95 or diag.load_per_core ≥ 4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[Condition], sep: &str| -> fmt::Result {
            for (i, c) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                match c {
                    Condition::All(v) | Condition::Any(v) if v.len() > 1 => write!(f, "({c})")?,
                    _ => write!(f, "{c}")?,
                }
            }
            Ok(())
        };
        match self {
            Condition::All(items) => join(f, items, " and "),
            Condition::Any(items) => join(f, items, " or "),
            Condition::Not(inner) => write!(f, "not ({inner})"),
            Condition::Leaf {
                fact, op, expected, ..
            } => {
                let v = match expected {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" | "),
                    other => other.to_string(),
                };
                match op {
                    Op::Eq => write!(f, "{fact} = {v}"),
                    Op::Ne => write!(f, "{fact} ≠ {v}"),
                    Op::In => write!(f, "{fact} ∈ {{{v}}}"),
                    Op::Gt => write!(f, "{fact} > {v}"),
                    Op::Gte => write!(f, "{fact} ≥ {v}"),
                    Op::Lt => write!(f, "{fact} < {v}"),
                    Op::Lte => write!(f, "{fact} ≤ {v}"),
                    Op::Matches => write!(f, "{fact} ~ /{v}/"),
                    Op::Exists if expected == &serde_json::Value::Bool(true) => {
                        write!(f, "{fact} is observed")
                    }
                    Op::Exists => write!(f, "{fact} is not observed"),
                }
            }
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub class: FaultClass,
    pub confidence: f64,
    pub priority: i32,
    pub description: String,
    when: Condition,
}

impl Rule {
    /// The rule's condition, rendered for people.
    pub fn condition_text(&self) -> String {
        self.when.to_string()
    }
}

/// A validated rules file, ready to classify.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub version: u32,
    pub min_confidence: f64,
    pub rules: Vec<Rule>,
}

/// One piece of evidence behind a diagnosis: a fact, how the rule tested it, and what it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub fact: String,
    /// The operator, prefixed with `not ` inside a negation; `observed` for plain observations
    /// listed with an Unknown diagnosis.
    pub test: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<serde_json::Value>,
    /// The observed value; absent when the fact could not be observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<FactValue>,
}

/// `fact test expected (actual: value)`, as the CLI and the notifications show it.
impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.fact, self.test)?;
        if let Some(v) = &self.expected {
            write!(f, " {v}")?;
        }
        match &self.actual {
            Some(a) => write!(f, " (actual: {a})"),
            None => write!(f, " (actual: not observed)"),
        }
    }
}

/// Another rule that matched but did not win.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub rule_id: String,
    pub class: FaultClass,
    pub confidence: f64,
}

/// The classifier's verdict on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub class: FaultClass,
    /// 0 for Unknown, otherwise the winning rule's confidence.
    pub confidence: f64,
    /// The winning rule, absent for Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// One sentence for people.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// Other rules that matched, best first.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
}

impl Diagnosis {
    /// A diagnosis that says nothing is known.
    pub fn unknown(summary: impl Into<String>) -> Self {
        Self {
            class: FaultClass::Unknown,
            confidence: 0.0,
            rule_id: None,
            summary: summary.into(),
            evidence: Vec::new(),
            candidates: Vec::new(),
        }
    }
}

impl RuleSet {
    /// The rules shipped with autoheal.
    pub fn builtin() -> Result<RuleSet, ConfigError> {
        Self::parse(DEFAULT_RULES_FILE, DEFAULT_RULES)
    }

    /// Loads a rules file from disk.
    pub fn load(path: &std::path::Path) -> Result<RuleSet, ConfigError> {
        let (file, text) = crate::config::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parses and validates rules text; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<RuleSet, ConfigError> {
        let raw: RawRuleSet = parse_json(file, text, rules_fix)?;
        let err =
            |path: String, message: String, fix: &str| ConfigError::new(file, path, message, fix);
        if raw.version != RULES_VERSION {
            return Err(err(
                "version".into(),
                format!("rules version {} is not supported", raw.version),
                "set \"version\": 1 (the only version this build reads)",
            ));
        }
        if !(raw.min_confidence > 0.0 && raw.min_confidence <= 1.0) {
            return Err(err(
                "min_confidence".into(),
                format!("{} is not in (0, 1]", raw.min_confidence),
                "use a number greater than 0 and at most 1, e.g. 0.5",
            ));
        }
        if raw.rules.is_empty() {
            return Err(err(
                "rules".into(),
                "no rules".into(),
                "add at least one rule",
            ));
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            if r.id.is_empty()
                || r.id.len() > 64
                || !r
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            {
                return Err(err(
                    at("id"),
                    format!("rule id {:?} is not a lowercase identifier", r.id),
                    "use 1-64 characters of a-z, 0-9, `.`, `_`, `-`, e.g. app.service-down",
                ));
            }
            if rules.iter().any(|x: &Rule| x.id == r.id) {
                return Err(err(
                    at("id"),
                    format!("rule id `{}` is used twice", r.id),
                    "give every rule its own id",
                ));
            }
            if r.class == FaultClass::Unknown {
                return Err(err(
                    at("class"),
                    format!("rule `{}` concludes Unknown", r.id),
                    "Unknown is what no match means; delete the rule or name a real class",
                ));
            }
            if !(r.confidence > 0.0 && r.confidence <= 1.0) {
                return Err(err(
                    at("confidence"),
                    format!(
                        "rule `{}`: confidence {} is not in (0, 1]",
                        r.id, r.confidence
                    ),
                    "use a number greater than 0 and at most 1, e.g. 0.8",
                ));
            }
            if r.description.trim().is_empty() {
                return Err(err(
                    at("description"),
                    format!("rule `{}` has an empty description", r.id),
                    "say in one sentence what the evidence means; it is shown to operators",
                ));
            }
            let when = compile(file, &r.id, &at("when"), r.when, 0)?;
            rules.push(Rule {
                id: r.id,
                class: r.class,
                confidence: r.confidence,
                priority: r.priority,
                description: r.description,
                when,
            });
        }
        Ok(RuleSet {
            version: raw.version,
            min_confidence: raw.min_confidence,
            rules,
        })
    }

    /// Classifies one target from its facts.
    pub fn classify(&self, facts: &Facts) -> Diagnosis {
        let mut matched: Vec<(usize, &Rule, Vec<Evidence>)> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let mut evidence = Vec::new();
            if eval(&rule.when, facts, false, &mut evidence) {
                matched.push((i, rule, evidence));
            }
        }
        // Highest priority, then highest confidence, then file order.
        matched.sort_by(|a, b| {
            b.1.priority
                .cmp(&a.1.priority)
                .then(b.1.confidence.total_cmp(&a.1.confidence))
                .then(a.0.cmp(&b.0))
        });
        let mut iter = matched.into_iter();
        let Some((_, winner, evidence)) = iter.next() else {
            let mut d = Diagnosis::unknown("no diagnosis rule matched the evidence");
            d.evidence = observed(facts);
            return d;
        };
        let candidates: Vec<Candidate> = iter
            .map(|(_, r, _)| Candidate {
                rule_id: r.id.clone(),
                class: r.class,
                confidence: r.confidence,
            })
            .collect();
        if winner.confidence < self.min_confidence {
            let mut d = Diagnosis::unknown(format!(
                "the best match ({} → {}, confidence {}) is below the minimum confidence {}",
                winner.id, winner.class, winner.confidence, self.min_confidence
            ));
            d.evidence = evidence;
            d.candidates = std::iter::once(Candidate {
                rule_id: winner.id.clone(),
                class: winner.class,
                confidence: winner.confidence,
            })
            .chain(candidates)
            .collect();
            return d;
        }
        Diagnosis {
            class: winner.class,
            confidence: winner.confidence,
            rule_id: Some(winner.id.clone()),
            summary: winner.description.clone(),
            evidence,
            candidates,
        }
    }

    /// Classifies an observation (computes its facts first).
    pub fn diagnose(&self, obs: &crate::facts::Observation) -> Diagnosis {
        self.classify(&Facts::of(obs))
    }
}

/// The observations shown with an Unknown diagnosis: what the load balancer, EC2 and SSM said.
fn observed(facts: &Facts) -> Vec<Evidence> {
    facts
        .iter()
        .filter(|(name, _)| {
            name.starts_with("elb.")
                || name.starts_with("ec2.")
                || name.starts_with("ssm.")
                || *name == "diag.present"
        })
        .map(|(name, v)| Evidence {
            fact: name.to_owned(),
            test: "observed".into(),
            expected: None,
            actual: Some(v.clone()),
        })
        .collect()
}

fn rules_fix(path: &str, message: &str) -> String {
    match last_field(path) {
        "class" => format!(
            "use one of {}",
            FaultClass::ALL
                .iter()
                .filter(|c| **c != FaultClass::Unknown)
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "confidence" | "min_confidence" => "use a number greater than 0 and at most 1".into(),
        "priority" => "use a whole number; higher wins".into(),
        _ if message.contains("unknown field") => {
            "remove the field or correct its spelling (see docs/diagnosis-rules.md)".into()
        }
        _ => "see docs/diagnosis-rules.md for the format".into(),
    }
}

fn compile(
    file: &str,
    rule: &str,
    path: &str,
    raw: RawCondition,
    depth: usize,
) -> Result<Condition, ConfigError> {
    let err = |path: &str, message: String, fix: String| ConfigError::new(file, path, message, fix);
    if depth > MAX_DEPTH {
        return Err(err(
            path,
            format!("rule `{rule}`: conditions nest deeper than {MAX_DEPTH}"),
            "flatten the condition".into(),
        ));
    }
    let list = |kind: &str, items: Vec<RawCondition>| -> Result<Vec<Condition>, ConfigError> {
        if items.is_empty() {
            return Err(err(
                &format!("{path}.{kind}"),
                format!("rule `{rule}`: `{kind}` has no conditions"),
                format!("put at least one condition in `{kind}`"),
            ));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, c)| compile(file, rule, &format!("{path}.{kind}[{i}]"), c, depth + 1))
            .collect()
    };
    match raw {
        RawCondition::All(items) => Ok(Condition::All(list("all", items)?)),
        RawCondition::Any(items) => Ok(Condition::Any(list("any", items)?)),
        RawCondition::Not(inner) => Ok(Condition::Not(Box::new(compile(
            file,
            rule,
            &format!("{path}.not"),
            *inner,
            depth + 1,
        )?))),
        RawCondition::Leaf { fact, op, value } => {
            let Some(spec) = fact_spec(&fact) else {
                let near = crate::facts::FACTS
                    .iter()
                    .filter(|f| f.name.split('.').next() == fact.split('.').next())
                    .map(|f| f.name)
                    .collect::<Vec<_>>();
                return Err(err(
                    &format!("{path}.fact"),
                    format!("rule `{rule}`: unknown fact `{fact}`"),
                    if near.is_empty() {
                        "use a fact listed in docs/diagnosis-rules.md".into()
                    } else {
                        format!("use one of {}", near.join(", "))
                    },
                ));
            };
            let at = format!("{path}.{}", op.as_str());
            let test = leaf_test(spec, op, &value).map_err(|(message, fix)| {
                err(
                    &at,
                    format!(
                        "rule `{rule}`: fact `{}` ({:?}): {message}",
                        spec.name, spec.ty
                    ),
                    fix,
                )
            })?;
            Ok(Condition::Leaf {
                fact: spec.name,
                op,
                expected: value,
                test,
            })
        }
    }
}

fn leaf_test(
    spec: &crate::facts::FactSpec,
    op: Op,
    value: &serde_json::Value,
) -> Result<Test, (String, String)> {
    let typed = |v: &serde_json::Value| -> Result<FactValue, (String, String)> {
        match (spec.ty, v) {
            (FactType::Bool, serde_json::Value::Bool(b)) => Ok(FactValue::Bool(*b)),
            (FactType::Number, serde_json::Value::Number(n)) => n
                .as_f64()
                .map(FactValue::Number)
                .ok_or_else(|| ("number out of range".into(), "use a finite number".into())),
            (FactType::String, serde_json::Value::String(s)) => {
                if !spec.values.is_empty() && !spec.values.contains(&s.as_str()) {
                    Err((
                        format!("{s:?} is not a value this fact takes"),
                        format!("use one of {}", spec.values.join(", ")),
                    ))
                } else {
                    Ok(FactValue::String(s.clone()))
                }
            }
            (ty, other) => Err((
                format!("{other} is not a {}", type_name(ty)),
                format!("compare with a {} value", type_name(ty)),
            )),
        }
    };
    match op {
        Op::Eq => Ok(Test::Eq(typed(value)?)),
        Op::Ne => Ok(Test::Ne(typed(value)?)),
        Op::In => {
            let items = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                (
                    "`in` needs a non-empty array".to_owned(),
                    "write the candidate values as a JSON array".to_owned(),
                )
            })?;
            Ok(Test::In(items.iter().map(typed).collect::<Result<_, _>>()?))
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            if spec.ty != FactType::Number {
                return Err((
                    format!("`{}` compares numbers", op.as_str()),
                    "use eq, ne or in for this fact".into(),
                ));
            }
            let n = value.as_f64().ok_or_else(|| {
                (
                    format!("{value} is not a number"),
                    format!("give `{}` a number", op.as_str()),
                )
            })?;
            Ok(Test::Cmp(op, n))
        }
        Op::Matches => {
            if spec.ty != FactType::String {
                return Err((
                    "`matches` applies to string facts".into(),
                    "use eq, gt, lt, ... for this fact".into(),
                ));
            }
            let pattern = value.as_str().ok_or_else(|| {
                (
                    "`matches` needs a regular expression string".to_owned(),
                    "write the pattern as a JSON string".to_owned(),
                )
            })?;
            if pattern.len() > MAX_REGEX_LEN {
                return Err((
                    format!(
                        "pattern of {} characters is longer than {MAX_REGEX_LEN}",
                        pattern.len()
                    ),
                    "shorten the pattern".into(),
                ));
            }
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    (
                        format!("invalid regular expression: {e}"),
                        "fix the pattern (Rust regex syntax)".to_owned(),
                    )
                })?;
            Ok(Test::Matches(re))
        }
        Op::Exists => value.as_bool().map(Test::Exists).ok_or_else(|| {
            (
                "`exists` takes true or false".into(),
                "write \"exists\": true".into(),
            )
        }),
    }
}

fn type_name(ty: FactType) -> &'static str {
    match ty {
        FactType::String => "string",
        FactType::Number => "number",
        FactType::Bool => "boolean",
    }
}

fn eval(c: &Condition, facts: &Facts, negated: bool, out: &mut Vec<Evidence>) -> bool {
    match c {
        Condition::All(items) => {
            let mut local = Vec::new();
            for item in items {
                if !eval(item, facts, negated, &mut local) {
                    return false;
                }
            }
            out.extend(local);
            true
        }
        Condition::Any(items) => {
            let mut any = false;
            for item in items {
                let mut local = Vec::new();
                if eval(item, facts, negated, &mut local) {
                    any = true;
                    out.extend(local);
                }
            }
            any
        }
        Condition::Not(inner) => {
            let mut local = Vec::new();
            let inner_true = eval(inner, facts, !negated, &mut local);
            if !inner_true {
                // The inner leaves that were false are the evidence for the negation.
                collect_leaves(inner, facts, !negated, out);
            }
            !inner_true
        }
        Condition::Leaf {
            fact,
            op,
            expected,
            test,
        } => {
            let actual = facts.get(fact);
            let hit = leaf_holds(test, actual);
            if hit {
                out.push(evidence(fact, *op, expected, actual, negated));
            }
            hit
        }
    }
}

fn collect_leaves(c: &Condition, facts: &Facts, negated: bool, out: &mut Vec<Evidence>) {
    match c {
        Condition::All(items) | Condition::Any(items) => {
            for item in items {
                collect_leaves(item, facts, negated, out);
            }
        }
        Condition::Not(inner) => collect_leaves(inner, facts, !negated, out),
        Condition::Leaf {
            fact, op, expected, ..
        } => {
            out.push(evidence(fact, *op, expected, facts.get(fact), negated));
        }
    }
}

fn evidence(
    fact: &str,
    op: Op,
    expected: &serde_json::Value,
    actual: Option<&FactValue>,
    negated: bool,
) -> Evidence {
    Evidence {
        fact: fact.to_owned(),
        test: if negated {
            format!("not {}", op.as_str())
        } else {
            op.as_str().to_owned()
        },
        expected: Some(expected.clone()),
        actual: actual.cloned(),
    }
}

fn leaf_holds(test: &Test, actual: Option<&FactValue>) -> bool {
    match (test, actual) {
        (Test::Exists(want), a) => a.is_some() == *want,
        (_, None) => false,
        (Test::Eq(v), Some(a)) => a == v,
        (Test::Ne(v), Some(a)) => a != v,
        (Test::In(vs), Some(a)) => vs.contains(a),
        (Test::Cmp(op, n), Some(FactValue::Number(a))) => match op {
            Op::Gt => a > n,
            Op::Gte => a >= n,
            Op::Lt => a < n,
            Op::Lte => a <= n,
            _ => false,
        },
        (Test::Matches(re), Some(FactValue::String(s))) => re.is_match(s),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuleSet, ConfigError> {
        RuleSet::parse("rules.json", text)
    }

    fn one_rule(when: &str) -> String {
        format!(
            r#"{{"version":1,"rules":[{{"id":"r.one","class":"Application","confidence":0.9,"description":"d","when":{when}}}]}}"#
        )
    }

    #[test]
    fn the_shipped_rules_load() {
        let rules = RuleSet::builtin().expect("shipped rules are valid");
        assert!(rules.rules.len() >= 10);
    }

    #[test]
    fn an_unknown_fact_is_named_with_its_path_and_neighbours() {
        let err =
            parse(&one_rule(r#"{"all":[{"fact":"diag.cpu","gt":90}]}"#)).expect_err("unknown fact");
        assert_eq!(err.path, "rules[0].when.all[0].fact");
        assert!(
            err.message.contains("r.one") && err.message.contains("diag.cpu"),
            "{err}"
        );
        assert!(err.fix.contains("diag.cpu_percent"), "{err}");
    }

    #[test]
    fn an_unknown_operator_is_rejected() {
        let err = parse(&one_rule(r#"{"fact":"diag.cpu_percent","greater":90}"#))
            .expect_err("unknown op");
        assert!(err.message.contains("greater"), "{err}");
        assert!(err.path.starts_with("rules[0].when"), "{err}");
    }

    #[test]
    fn a_bad_regex_is_rejected_at_load() {
        let err = parse(&one_rule(
            r#"{"fact":"elb.reason","matches":"Target.(Timeout"}"#,
        ))
        .expect_err("bad regex");
        assert_eq!(err.path, "rules[0].when.matches");
        assert!(err.message.contains("invalid regular expression"), "{err}");
    }

    #[test]
    fn numeric_operators_on_string_facts_are_rejected() {
        let err = parse(&one_rule(r#"{"fact":"elb.state","gt":3}"#)).expect_err("type");
        assert!(err.fix.contains("eq, ne or in"), "{err}");
    }

    #[test]
    fn values_outside_a_closed_fact_are_rejected_with_the_accepted_set() {
        let err =
            parse(&one_rule(r#"{"fact":"ssm.command","eq":"undelivarable"}"#)).expect_err("typo");
        assert!(err.fix.contains("undeliverable"), "{err}");
    }

    #[test]
    fn unknown_fields_in_a_rule_are_rejected() {
        let text = r#"{"version":1,"rules":[{"id":"r","class":"Application","confidence":0.9,"description":"d","when":{"fact":"diag.present","eq":true},"severity":"high"}]}"#;
        let err = parse(text).expect_err("unknown field");
        assert_eq!(err.path, "rules[0].severity");
        assert!(err.message.contains("severity"), "{err}");
    }

    #[test]
    fn impossible_confidences_and_duplicate_ids_are_rejected() {
        let bad = one_rule(r#"{"fact":"diag.present","eq":true}"#).replace("0.9", "1.5");
        assert_eq!(parse(&bad).expect_err("conf").path, "rules[0].confidence");
        let dup = r#"{"version":1,"rules":[
            {"id":"a","class":"Application","confidence":0.9,"description":"d","when":{"fact":"diag.present","eq":true}},
            {"id":"a","class":"Network","confidence":0.9,"description":"d","when":{"fact":"diag.present","eq":true}}]}"#;
        assert_eq!(parse(dup).expect_err("dup").path, "rules[1].id");
    }

    #[test]
    fn an_unknown_class_lists_the_real_ones() {
        let bad =
            one_rule(r#"{"fact":"diag.present","eq":true}"#).replace("Application", "Gremlins");
        let err = parse(&bad).expect_err("class");
        assert_eq!(err.path, "rules[0].class");
        assert!(err.fix.contains("DiskCorruption"), "{err}");
    }

    #[test]
    fn an_unsupported_version_is_rejected() {
        let bad = one_rule(r#"{"fact":"diag.present","eq":true}"#)
            .replace("\"version\":1", "\"version\":2");
        assert_eq!(parse(&bad).expect_err("version").path, "version");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Arbitrary JSON, biased toward the shapes of a rules file.
        pub(crate) fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::Bool),
                any::<i64>().prop_map(|n| serde_json::json!(n)),
                any::<f64>().prop_map(|n| serde_json::json!(n)),
                prop::sample::select(vec![
                    "all",
                    "any",
                    "not",
                    "fact",
                    "eq",
                    "in",
                    "gt",
                    "matches",
                    "exists",
                    "diag.cpu_percent",
                    "elb.reason",
                    "ssm.command",
                    "Application",
                    "(",
                    "[a-",
                    ".*",
                    "undeliverable",
                ])
                .prop_map(|s| serde_json::Value::String(s.to_owned())),
                "\\PC{0,12}".prop_map(serde_json::Value::String),
            ];
            leaf.prop_recursive(6, 64, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                    prop::collection::vec(
                        (
                            prop::sample::select(vec![
                                "version",
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
                                "min_confidence",
                                "bogus",
                            ]),
                            inner,
                        ),
                        0..7,
                    )
                    .prop_map(|kv| {
                        serde_json::Value::Object(
                            kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                        )
                    }),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_json_never_panics_the_rules_loader(v in json()) {
                let _ = RuleSet::parse("fuzz.json", &v.to_string());
            }

            #[test]
            fn arbitrary_conditions_in_a_valid_frame_load_or_fail_cleanly(when in json()) {
                let text = serde_json::json!({"version": 1, "rules": [{"id": "f", "class": "Network", "confidence": 0.5, "description": "d", "when": when}]}).to_string();
                if let Ok(rules) = RuleSet::parse("fuzz.json", &text) {
                    let _ = rules.classify(&Facts::default());
                    let _ = rules.rules[0].condition_text();
                }
            }

            #[test]
            fn arbitrary_text_never_panics_the_rules_loader(s in "\\PC{0,200}") {
                let _ = RuleSet::parse("fuzz.json", &s);
            }
        }
    }

    #[test]
    fn errors_name_the_file() {
        let err = RuleSet::parse("custom/rules.json", "{}").expect_err("missing fields");
        assert_eq!(err.file, "custom/rules.json");
        assert!(
            err.to_string().starts_with("custom/rules.json: at "),
            "{err}"
        );
    }

    #[test]
    fn conditions_render_for_people() {
        let rules = parse(&one_rule(
            r#"{"all":[{"fact":"ssm.command","in":["undeliverable","timed_out"]},{"any":[{"fact":"diag.cpu_percent","gte":95},{"fact":"diag.dns_ok","eq":false}]}]}"#,
        ))
        .expect("valid");
        assert_eq!(
            rules.rules[0].condition_text(),
            "ssm.command ∈ {undeliverable | timed_out} and (diag.cpu_percent ≥ 95 or diag.dns_ok = false)"
        );
    }

    #[test]
    fn nothing_matched_is_unknown_with_the_observations() {
        let rules = parse(&one_rule(r#"{"fact":"diag.cpu_percent","gt":90}"#)).expect("valid");
        let d = rules.classify(&Facts::default());
        assert_eq!(d.class, FaultClass::Unknown);
        assert_eq!(d.confidence, 0.0);
        assert!(d.rule_id.is_none());
    }

    #[test]
    fn a_match_below_min_confidence_is_unknown_but_lists_the_candidate() {
        let text = r#"{"version":1,"min_confidence":0.6,"rules":[{"id":"weak","class":"Network","confidence":0.4,"description":"d","when":{"fact":"diag.cpu_percent","exists":false}}]}"#;
        let rules = parse(text).expect("valid");
        let d = rules.classify(&Facts::default());
        assert_eq!(d.class, FaultClass::Unknown);
        assert_eq!(
            d.candidates.first().map(|c| c.rule_id.as_str()),
            Some("weak")
        );
    }

    #[test]
    fn absent_facts_never_satisfy_a_comparison_but_satisfy_its_negation() {
        let rules =
            parse(&one_rule(r#"{"not":{"fact":"diag.cpu_percent","gt":90}}"#)).expect("valid");
        let d = rules.classify(&Facts::default());
        assert_eq!(d.class, FaultClass::Application);
        assert_eq!(d.evidence[0].test, "not gt");
        assert_eq!(d.evidence[0].actual, None);
    }
}
