//! Graphs of a state machine: Mermaid, Graphviz DOT, and one self-contained HTML page with an
//! inline SVG. Given an execution history, the states are coloured by the path taken, the way the
//! Step Functions console does: succeeded, failed, caught (failed, handled by a Catch), in
//! progress, not taken. Map and Parallel states are drawn around their inner machines.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde_json::Value;

use crate::definition::{
    Comparison, Kind, Operand, Rule, State, StateMachine, Transition, WaitFor,
};
use crate::history::Event;

/// The output format of `autoheal graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
    Html,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mermaid" => Ok(Self::Mermaid),
            "dot" => Ok(Self::Dot),
            "html" => Ok(Self::Html),
            _ => Err(format!(
                "unknown graph format {s:?}; accepted values: mermaid, dot, html"
            )),
        }
    }
}

/// How a state fared in an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Succeeded,
    Failed,
    Caught,
    InProgress,
    NotTaken,
}

impl NodeStatus {
    const ALL: [NodeStatus; 5] = [
        Self::Succeeded,
        Self::Failed,
        Self::Caught,
        Self::InProgress,
        Self::NotTaken,
    ];

    /// Failed > InProgress > Caught > Succeeded (> NotTaken).
    fn rank(self) -> u8 {
        match self {
            Self::NotTaken => 0,
            Self::Succeeded => 1,
            Self::Caught => 2,
            Self::InProgress => 3,
            Self::Failed => 4,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Caught => "caught",
            Self::InProgress => "inprogress",
            Self::NotTaken => "nottaken",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Caught => "caught",
            Self::InProgress => "in progress",
            Self::NotTaken => "not taken",
        }
    }

    fn fill(self) -> &'static str {
        match self {
            Self::Succeeded => "#d4edda",
            Self::Failed => "#f8d7da",
            Self::Caught => "#ffe5b4",
            Self::InProgress => "#dbeafe",
            Self::NotTaken => "#f3f4f6",
        }
    }

    fn stroke(self) -> &'static str {
        match self {
            Self::Succeeded => "#2ea44f",
            Self::Failed => "#d73a49",
            Self::Caught => "#e36209",
            Self::InProgress => "#2563eb",
            Self::NotTaken => "#9ca3af",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::NotTaken => "#6b7280",
            _ => "#111827",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// History analysis
// ---------------------------------------------------------------------------------------------

/// Events that end an attempt of a state in failure.
const FAILURES: &[&str] = &[
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "MapStateFailed",
    "ParallelStateFailed",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "ActivityFailed",
    "ActivityTimedOut",
    "ActivityScheduleFailed",
];

/// Events that end an attempt of a state successfully.
const SUCCESSES: &[&str] = &[
    "TaskSucceeded",
    "MapStateSucceeded",
    "ParallelStateSucceeded",
    "LambdaFunctionSucceeded",
    "ActivitySucceeded",
];

const TERMINALS: &[&str] = &[
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionAborted",
];

/// One entry into a state.
struct Entry<'e> {
    name: &'e str,
    fail_state: bool,
    last_failed: bool,
    exited: bool,
}

struct Analysis<'e> {
    /// Event indices in id order.
    order: Vec<usize>,
    /// For each event (by index), the entry whose thread it belongs to.
    owner: Vec<Option<usize>>,
    entries: Vec<Entry<'e>>,
    /// The last terminal execution event, if any.
    terminal: Option<&'e str>,
}

fn analyse(events: &[Event]) -> Analysis<'_> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events.get(i).map_or(0, |e| e.id));
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(events.len());
    for &i in &order {
        if let Some(e) = events.get(i) {
            index.entry(e.id).or_insert(i);
        }
    }
    let mut done = vec![false; events.len()];
    let mut owner: Vec<Option<usize>> = vec![None; events.len()];
    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut open: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut terminal = None;
    for &i in &order {
        let Some(e) = events.get(i) else { continue };
        let inherited = index
            .get(&e.previous_event_id)
            .copied()
            .filter(|&j| j != i && done.get(j).copied().unwrap_or(false))
            .and_then(|j| owner.get(j).copied().flatten());
        let kind = e.kind.as_str();
        let mine = if kind.ends_with("StateEntered") {
            e.detail_str("name").map(|name| {
                let k = entries.len();
                entries.push(Entry {
                    name,
                    fail_state: kind == "FailStateEntered",
                    last_failed: false,
                    exited: false,
                });
                open.entry(name).or_default().push(k);
                k
            })
        } else if kind.ends_with("StateExited") {
            let name = e.detail_str("name");
            let by_chain = inherited.filter(|&k| {
                entries
                    .get(k)
                    .is_some_and(|en| !en.exited && name.is_none_or(|n| en.name == n))
            });
            let target = by_chain.or_else(|| {
                let stack = open.get_mut(name?)?;
                while stack
                    .last()
                    .is_some_and(|&k| entries.get(k).is_none_or(|en| en.exited))
                {
                    stack.pop();
                }
                stack.last().copied()
            });
            if let Some(en) = target.and_then(|k| entries.get_mut(k)) {
                en.exited = true;
            }
            None
        } else {
            if FAILURES.contains(&kind) {
                if let Some(en) = inherited.and_then(|k| entries.get_mut(k)) {
                    en.last_failed = true;
                }
            } else if SUCCESSES.contains(&kind) {
                if let Some(en) = inherited.and_then(|k| entries.get_mut(k)) {
                    en.last_failed = false;
                }
            } else if TERMINALS.contains(&kind) {
                terminal = Some(kind);
            }
            inherited
        };
        if let Some(slot) = owner.get_mut(i) {
            *slot = mine;
        }
        if let Some(d) = done.get_mut(i) {
            *d = true;
        }
    }
    Analysis {
        order,
        owner,
        entries,
        terminal,
    }
}

impl Analysis<'_> {
    fn statuses(&self) -> HashMap<String, NodeStatus> {
        let mut out: HashMap<String, NodeStatus> = HashMap::new();
        for en in &self.entries {
            let st = if en.fail_state {
                NodeStatus::Failed
            } else if en.exited {
                if en.last_failed {
                    NodeStatus::Caught
                } else {
                    NodeStatus::Succeeded
                }
            } else if self.terminal.is_some() {
                NodeStatus::Failed
            } else {
                NodeStatus::InProgress
            };
            match out.get_mut(en.name) {
                Some(cur) => {
                    if st.rank() > cur.rank() {
                        *cur = st;
                    }
                }
                None => {
                    out.insert(en.name.to_owned(), st);
                }
            }
        }
        out
    }

    fn execution_status(&self, events: usize) -> &'static str {
        match self.terminal {
            Some("ExecutionSucceeded") => "succeeded",
            Some("ExecutionFailed") => "failed",
            Some("ExecutionTimedOut") => "timed out",
            Some(_) => "aborted",
            None if events == 0 => "not started",
            None => "running",
        }
    }
}

/// Status of every state name seen in the history (states never entered are absent → NotTaken).
pub fn statuses(events: &[Event]) -> HashMap<String, NodeStatus> {
    analyse(events).statuses()
}

/// Renders the definition (and the path taken, when events are given).
pub fn render(sm: &StateMachine, events: Option<&[Event]>, format: Format, title: &str) -> String {
    let model = Model::new(sm);
    let analysis = events.map(analyse);
    let st = analysis.as_ref().map(Analysis::statuses);
    match format {
        Format::Mermaid => mermaid(&model, st.as_ref(), title),
        Format::Dot => dot(&model, st.as_ref(), title),
        Format::Html => html(
            &model,
            events.zip(analysis.as_ref()),
            st.as_ref(),
            title,
            sm.comment.as_deref(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The graph model shared by the renderers
// ---------------------------------------------------------------------------------------------

struct MNode<'a> {
    name: &'a str,
    /// `None` for a placeholder of a state that a transition names but the machine lacks.
    state: Option<&'a State>,
    /// The inner machines of a Map (one) or a Parallel (one per branch).
    inner: Vec<usize>,
    /// The node `Next` leads to.
    next: Option<usize>,
}

struct MEdge {
    from: usize,
    to: usize,
    label: Option<String>,
    catch: bool,
    /// The `Next` transition.
    next: bool,
}

struct Machine {
    label: String,
    nodes: Vec<usize>,
    start: usize,
    edges: Vec<MEdge>,
    /// End states and Succeed states.
    ends: Vec<usize>,
    fails: Vec<usize>,
}

struct Model<'a> {
    nodes: Vec<MNode<'a>>,
    machines: Vec<Machine>,
}

/// An end point of a flow edge: the Start and End markers or a node.
#[derive(Clone, Copy)]
enum Pt {
    Start,
    End,
    Node(usize),
}

impl fmt::Display for Pt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start => f.write_str("start_node"),
            Self::End => f.write_str("end_node"),
            Self::Node(n) => write!(f, "s{n}"),
        }
    }
}

struct Flow<'m> {
    from: Pt,
    to: Pt,
    label: Option<&'m str>,
    catch: bool,
}

impl<'a> Model<'a> {
    fn new(sm: &'a StateMachine) -> Self {
        let mut model = Model {
            nodes: Vec::new(),
            machines: Vec::new(),
        };
        model.add_machine(sm, String::new());
        model
    }

    fn add_machine(&mut self, sm: &'a StateMachine, label: String) -> usize {
        let m = self.machines.len();
        self.machines.push(Machine {
            label,
            nodes: Vec::new(),
            start: 0,
            edges: Vec::new(),
            ends: Vec::new(),
            fails: Vec::new(),
        });
        let base = self.nodes.len();
        let mut local: HashMap<&'a str, usize> = HashMap::new();
        let mut members = Vec::with_capacity(sm.states.len());
        for s in &sm.states {
            let id = self.nodes.len();
            self.nodes.push(MNode {
                name: &s.name,
                state: Some(s),
                inner: Vec::new(),
                next: None,
            });
            local.entry(s.name.as_str()).or_insert(id);
            members.push(id);
        }
        let start = self.resolve(&mut local, &mut members, &sm.start_at);
        let mut edges = Vec::new();
        let mut ends = Vec::new();
        let mut fails = Vec::new();
        for (k, s) in sm.states.iter().enumerate() {
            let id = base + k;
            let inner = match &s.kind {
                Kind::Map(map) => {
                    vec![self.add_machine(&map.processor, format!("Map: {}", s.name))]
                }
                Kind::Parallel(p) => p
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| self.add_machine(b, format!("Branch {}", i + 1)))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(node) = self.nodes.get_mut(id) {
                node.inner = inner;
            }
            match &s.transition {
                Transition::Next(n) => {
                    let to = self.resolve(&mut local, &mut members, n);
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.next = Some(to);
                    }
                    edges.push(MEdge {
                        from: id,
                        to,
                        label: None,
                        catch: false,
                        next: true,
                    });
                }
                Transition::End => ends.push(id),
                Transition::Own => {}
            }
            match &s.kind {
                Kind::Choice(c) => {
                    for b in &c.choices {
                        let to = self.resolve(&mut local, &mut members, &b.next);
                        edges.push(MEdge {
                            from: id,
                            to,
                            label: Some(truncate(&rule_text(&b.rule), 48)),
                            catch: false,
                            next: false,
                        });
                    }
                    if let Some(d) = &c.default {
                        let to = self.resolve(&mut local, &mut members, d);
                        edges.push(MEdge {
                            from: id,
                            to,
                            label: Some("Default".to_owned()),
                            catch: false,
                            next: false,
                        });
                    }
                }
                Kind::Succeed => ends.push(id),
                Kind::Fail(_) => fails.push(id),
                _ => {}
            }
            if let Some(h) = s.kind.handling() {
                for c in &h.catch {
                    let to = self.resolve(&mut local, &mut members, &c.next);
                    edges.push(MEdge {
                        from: id,
                        to,
                        label: Some(format!("Catch: {}", c.error_equals.join(", "))),
                        catch: true,
                        next: false,
                    });
                }
            }
        }
        if let Some(machine) = self.machines.get_mut(m) {
            machine.nodes = members;
            machine.start = start;
            machine.edges = edges;
            machine.ends = ends;
            machine.fails = fails;
        }
        m
    }

    /// The node of `name` in one machine, or a new placeholder when the machine has no such state.
    fn resolve(
        &mut self,
        local: &mut HashMap<&'a str, usize>,
        members: &mut Vec<usize>,
        name: &'a str,
    ) -> usize {
        if let Some(&id) = local.get(name) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(MNode {
            name,
            state: None,
            inner: Vec::new(),
            next: None,
        });
        local.insert(name, id);
        members.push(id);
        id
    }

    fn is_container(&self, n: usize) -> bool {
        self.nodes.get(n).is_some_and(|x| !x.inner.is_empty())
    }

    fn is_map(&self, n: usize) -> bool {
        self.nodes
            .get(n)
            .and_then(|x| x.state)
            .is_some_and(|s| matches!(s.kind, Kind::Map(_)))
    }

    /// The nodes where a machine's flow leaves it successfully (End and Succeed states; for an
    /// End Map/Parallel, the exits of its inner machines).
    fn exits(&self, m: usize, out: &mut Vec<usize>) {
        let Some(machine) = self.machines.get(m) else {
            return;
        };
        for &e in &machine.ends {
            let before = out.len();
            if let Some(node) = self.nodes.get(e) {
                for &im in &node.inner {
                    self.exits(im, out);
                }
            }
            if out.len() == before {
                out.push(e);
            }
        }
    }

    /// Every edge of the flat (Mermaid, DOT) drawings: a Map/Parallel node leads into its inner
    /// machines, whose exits lead on to the state's `Next`.
    fn flow(&self) -> Vec<Flow<'_>> {
        let mut out = Vec::new();
        let Some(top) = self.machines.first() else {
            return out;
        };
        out.push(Flow {
            from: Pt::Start,
            to: Pt::Node(top.start),
            label: None,
            catch: false,
        });
        let mut through: Vec<(usize, usize, Vec<usize>)> = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            if let Some(next) = node.next
                && !node.inner.is_empty()
            {
                let mut ex = Vec::new();
                for &im in &node.inner {
                    self.exits(im, &mut ex);
                }
                if !ex.is_empty() {
                    through.push((id, next, ex));
                }
            }
        }
        for machine in &self.machines {
            for &n in &machine.nodes {
                let Some(node) = self.nodes.get(n) else {
                    continue;
                };
                for inner in node.inner.iter().filter_map(|&im| self.machines.get(im)) {
                    out.push(Flow {
                        from: Pt::Node(n),
                        to: Pt::Node(inner.start),
                        label: None,
                        catch: false,
                    });
                }
            }
            for e in &machine.edges {
                if e.next && through.iter().any(|t| t.0 == e.from) {
                    continue;
                }
                out.push(Flow {
                    from: Pt::Node(e.from),
                    to: Pt::Node(e.to),
                    label: e.label.as_deref(),
                    catch: e.catch,
                });
            }
        }
        for (_, next, ex) in &through {
            for &x in ex {
                out.push(Flow {
                    from: Pt::Node(x),
                    to: Pt::Node(*next),
                    label: None,
                    catch: false,
                });
            }
        }
        let mut ex = Vec::new();
        self.exits(0, &mut ex);
        for x in ex.into_iter().chain(top.fails.iter().copied()) {
            out.push(Flow {
                from: Pt::Node(x),
                to: Pt::End,
                label: None,
                catch: false,
            });
        }
        out
    }

    fn status_of(&self, n: usize, st: Option<&HashMap<String, NodeStatus>>) -> Option<NodeStatus> {
        let node = self.nodes.get(n)?;
        node.state?;
        st.map(|m| m.get(node.name).copied().unwrap_or(NodeStatus::NotTaken))
    }

    fn label_of(&self, n: usize) -> String {
        match self.nodes.get(n) {
            Some(node) if node.state.is_some() => node.name.to_owned(),
            Some(node) => format!("missing: {}", node.name),
            None => String::new(),
        }
    }
}

/// A short text of a Choice rule: `$.status == "ok" && IsPresent($.id)`.
fn rule_text(rule: &Rule) -> String {
    fn part(rule: &Rule) -> String {
        match rule {
            Rule::Compare { .. } | Rule::Not(_) => rule_text(rule),
            _ => format!("({})", rule_text(rule)),
        }
    }
    match rule {
        Rule::And(rs) => rs.iter().map(part).collect::<Vec<_>>().join(" && "),
        Rule::Or(rs) => rs.iter().map(part).collect::<Vec<_>>().join(" || "),
        Rule::Not(r) => format!("!{}", part(r)),
        Rule::Compare {
            variable,
            comparison,
            operand,
        } => match op_symbol(*comparison) {
            Some(op) => {
                let rhs = match operand {
                    Operand::Value(v) => v.to_string(),
                    Operand::Path(p) => p.clone(),
                };
                format!("{variable} {op} {rhs}")
            }
            None => {
                let negated = matches!(operand, Operand::Value(Value::Bool(false)));
                format!(
                    "{}{}({variable})",
                    if negated { "!" } else { "" },
                    comparison.name()
                )
            }
        },
    }
}

fn op_symbol(c: Comparison) -> Option<&'static str> {
    use Comparison as C;
    Some(match c {
        C::StringEquals | C::NumericEquals | C::BooleanEquals | C::TimestampEquals => "==",
        C::StringLessThan | C::NumericLessThan | C::TimestampLessThan => "<",
        C::StringGreaterThan | C::NumericGreaterThan | C::TimestampGreaterThan => ">",
        C::StringLessThanEquals | C::NumericLessThanEquals | C::TimestampLessThanEquals => "<=",
        C::StringGreaterThanEquals
        | C::NumericGreaterThanEquals
        | C::TimestampGreaterThanEquals => ">=",
        C::StringMatches => "matches",
        C::IsNull | C::IsPresent | C::IsNumeric | C::IsString | C::IsBoolean | C::IsTimestamp => {
            return None;
        }
    })
}

/// At most `max` characters, the last one an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Control characters (newlines included) as spaces, trimmed.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Mermaid
// ---------------------------------------------------------------------------------------------

/// Text for a quoted Mermaid label: characters Mermaid would read as syntax become entity codes.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' | '[' | ']' | '{' | '}' | '(' | ')' | '`' => {
                let _ = write!(out, "#{};", u32::from(c));
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn mermaid_shape(node: &MNode<'_>) -> (&'static str, &'static str) {
    match node.state.map(|s| &s.kind) {
        Some(Kind::Choice(_)) => ("{", "}"),
        Some(Kind::Succeed | Kind::Fail(_)) => ("([", "])"),
        Some(Kind::Wait(_)) => ("[/", "/]"),
        Some(Kind::Map(_) | Kind::Parallel(_)) => ("[[", "]]"),
        _ => ("[", "]"),
    }
}

fn mermaid_machine(model: &Model<'_>, m: usize, depth: usize, sg: &mut usize, out: &mut String) {
    let Some(machine) = model.machines.get(m) else {
        return;
    };
    let pad = "    ".repeat(depth);
    for &n in &machine.nodes {
        let Some(node) = model.nodes.get(n) else {
            continue;
        };
        let (open, close) = mermaid_shape(node);
        let label = mermaid_escape(&model.label_of(n));
        let _ = writeln!(out, "{pad}s{n}{open}\"{label}\"{close}");
        if node.inner.is_empty() {
            continue;
        }
        if model.is_map(n) {
            for &im in &node.inner {
                let title = model.machines.get(im).map_or("", |x| x.label.as_str());
                *sg += 1;
                let (id, title) = (*sg, mermaid_escape(title));
                let _ = writeln!(out, "{pad}subgraph sg{id} [\"{title}\"]");
                mermaid_machine(model, im, depth + 1, sg, out);
                let _ = writeln!(out, "{pad}end");
            }
        } else {
            *sg += 1;
            let (id, title) = (*sg, mermaid_escape(&format!("Parallel: {}", node.name)));
            let _ = writeln!(out, "{pad}subgraph sg{id} [\"{title}\"]");
            for &im in &node.inner {
                let title = model.machines.get(im).map_or("", |x| x.label.as_str());
                *sg += 1;
                let (id, title) = (*sg, mermaid_escape(title));
                let _ = writeln!(out, "{pad}    subgraph sg{id} [\"{title}\"]");
                mermaid_machine(model, im, depth + 2, sg, out);
                let _ = writeln!(out, "{pad}    end");
            }
            let _ = writeln!(out, "{pad}end");
        }
    }
}

fn mermaid(model: &Model<'_>, st: Option<&HashMap<String, NodeStatus>>, title: &str) -> String {
    let mut out = String::new();
    let title = one_line(title);
    if !title.is_empty() {
        let yaml = title.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(out, "---\ntitle: \"{yaml}\"\n---\n");
    }
    out.push_str("flowchart TD\n");
    out.push_str("    start_node((\"Start\"))\n");
    let mut sg = 0;
    mermaid_machine(model, 0, 1, &mut sg, &mut out);
    out.push_str("    end_node((\"End\"))\n");
    for f in model.flow() {
        let arrow = if f.catch { "-.->" } else { "-->" };
        match f.label {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "    {} {arrow}|\"{}\"| {}",
                    f.from,
                    mermaid_escape(l),
                    f.to
                );
            }
            None => {
                let _ = writeln!(out, "    {} {arrow} {}", f.from, f.to);
            }
        }
    }
    out.push_str("    classDef terminal fill:#1f2937,stroke:#1f2937,color:#ffffff\n");
    out.push_str("    class start_node,end_node terminal\n");
    let missing: Vec<String> = (0..model.nodes.len())
        .filter(|&n| model.nodes.get(n).is_some_and(|x| x.state.is_none()))
        .map(|n| format!("s{n}"))
        .collect();
    if !missing.is_empty() {
        out.push_str(
            "    classDef missing fill:#ffffff,stroke:#d73a49,stroke-dasharray:5 3,color:#b91c1c\n",
        );
        let _ = writeln!(out, "    class {} missing", missing.join(","));
    }
    if st.is_some() {
        for s in NodeStatus::ALL {
            let _ = write!(
                out,
                "    classDef {} fill:{},stroke:{}",
                s.class(),
                s.fill(),
                s.stroke()
            );
            if s == NodeStatus::NotTaken {
                let _ = write!(out, ",color:{}", s.text());
            }
            out.push('\n');
        }
        for s in NodeStatus::ALL {
            let ids: Vec<String> = (0..model.nodes.len())
                .filter(|&n| model.status_of(n, st) == Some(s))
                .map(|n| format!("s{n}"))
                .collect();
            if !ids.is_empty() {
                let _ = writeln!(out, "    class {} {}", ids.join(","), s.class());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Graphviz DOT
// ---------------------------------------------------------------------------------------------

fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot_node(
    model: &Model<'_>,
    n: usize,
    st: Option<&HashMap<String, NodeStatus>>,
    pad: &str,
    out: &mut String,
) {
    let Some(node) = model.nodes.get(n) else {
        return;
    };
    let label = dot_escape(&model.label_of(n));
    let Some(state) = node.state else {
        let _ = writeln!(
            out,
            "{pad}s{n} [label=\"{label}\", style=\"rounded,dashed\", color=\"#d73a49\", fontcolor=\"#b91c1c\"];"
        );
        return;
    };
    let (shape, boxy, extra) = match &state.kind {
        Kind::Choice(_) => ("diamond", false, ""),
        Kind::Succeed => ("ellipse", false, ", peripheries=2"),
        Kind::Fail(_) => ("octagon", false, ""),
        Kind::Wait(_) => ("parallelogram", false, ""),
        Kind::Map(_) | Kind::Parallel(_) => ("box", true, ", peripheries=2"),
        Kind::Task(_) | Kind::Pass(_) => ("box", true, ""),
    };
    let _ = write!(out, "{pad}s{n} [label=\"{label}\", shape={shape}{extra}");
    match model.status_of(n, st) {
        Some(s) => {
            let style = if boxy { "rounded,filled" } else { "filled" };
            let _ = write!(
                out,
                ", style=\"{style}\", fillcolor=\"{}\", color=\"{}\", fontcolor=\"{}\"",
                s.fill(),
                s.stroke(),
                s.text()
            );
        }
        None => {
            let style = if boxy { "rounded" } else { "solid" };
            let _ = write!(out, ", style=\"{style}\"");
        }
    }
    let _ = writeln!(
        out,
        ", tooltip=\"{} ({})\"];",
        dot_escape(node.name),
        state.kind.type_name()
    );
}

fn dot_machine(
    model: &Model<'_>,
    m: usize,
    depth: usize,
    cluster: &mut usize,
    st: Option<&HashMap<String, NodeStatus>>,
    out: &mut String,
) {
    let Some(machine) = model.machines.get(m) else {
        return;
    };
    let pad = "    ".repeat(depth);
    for &n in &machine.nodes {
        dot_node(model, n, st, &pad, out);
        let Some(node) = model.nodes.get(n) else {
            continue;
        };
        if node.inner.is_empty() {
            continue;
        }
        let open = |out: &mut String, cluster: &mut usize, pad: &str, label: &str| {
            *cluster += 1;
            let _ = writeln!(out, "{pad}subgraph cluster_{cluster} {{");
            let _ = writeln!(out, "{pad}    label=\"{}\";", dot_escape(label));
            let _ = writeln!(
                out,
                "{pad}    style=\"rounded,dashed\"; color=\"#9ca3af\"; fontname=\"Helvetica\"; fontsize=10; fontcolor=\"#4b5563\";"
            );
        };
        if model.is_map(n) {
            for &im in &node.inner {
                let title = model.machines.get(im).map_or("", |x| x.label.as_str());
                open(out, cluster, &pad, title);
                dot_machine(model, im, depth + 1, cluster, st, out);
                let _ = writeln!(out, "{pad}}}");
            }
        } else {
            open(out, cluster, &pad, &format!("Parallel: {}", node.name));
            let inner_pad = format!("{pad}    ");
            for &im in &node.inner {
                let title = model.machines.get(im).map_or("", |x| x.label.as_str());
                open(out, cluster, &inner_pad, title);
                dot_machine(model, im, depth + 2, cluster, st, out);
                let _ = writeln!(out, "{inner_pad}}}");
            }
            let _ = writeln!(out, "{pad}}}");
        }
    }
}

fn dot(model: &Model<'_>, st: Option<&HashMap<String, NodeStatus>>, title: &str) -> String {
    let mut out = String::new();
    let title = dot_escape(&one_line(title));
    let _ = writeln!(out, "digraph \"{title}\" {{");
    out.push_str("    rankdir=TB;\n");
    let _ = writeln!(
        out,
        "    label=\"{title}\"; labelloc=t; fontname=\"Helvetica\"; fontsize=16;"
    );
    out.push_str("    node [fontname=\"Helvetica\", fontsize=11, shape=box, style=\"rounded\", color=\"#64748b\"];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=9, color=\"#6b7280\", fontcolor=\"#374151\"];\n");
    out.push_str("    start_node [label=\"Start\", shape=circle, style=filled, fillcolor=\"#1f2937\", color=\"#1f2937\", fontcolor=\"white\", fixedsize=true, width=0.7];\n");
    let mut cluster = 0;
    dot_machine(model, 0, 1, &mut cluster, st, &mut out);
    out.push_str("    end_node [label=\"End\", shape=circle, style=filled, fillcolor=\"#1f2937\", color=\"#1f2937\", fontcolor=\"white\", fixedsize=true, width=0.7];\n");
    for f in model.flow() {
        let _ = write!(out, "    {} -> {}", f.from, f.to);
        let mut attrs = Vec::new();
        if let Some(l) = f.label {
            attrs.push(format!("label=\"{}\"", dot_escape(l)));
        }
        if f.catch {
            attrs.push("style=dashed, color=\"#e36209\", fontcolor=\"#e36209\"".to_owned());
        }
        if !attrs.is_empty() {
            let _ = write!(out, " [{}]", attrs.join(", "));
        }
        out.push_str(";\n");
    }
    out.push_str("}\n");
    out
}

// ---------------------------------------------------------------------------------------------
// HTML: layered layout and inline SVG
// ---------------------------------------------------------------------------------------------

const NODE_W: f64 = 180.0;
const NODE_H: f64 = 40.0;
const TERM_W: f64 = 84.0;
const TERM_H: f64 = 30.0;
const H_GAP: f64 = 36.0;
const V_GAP: f64 = 56.0;
const DUMMY_W: f64 = 8.0;
const DUMMY_GAP: f64 = 14.0;
const PAD: f64 = 16.0;
const HEADER: f64 = 28.0;
const ENTRY: f64 = 26.0;
const BRANCH_HEAD: f64 = 20.0;
const BRANCH_INSET: f64 = 12.0;
const LANE: f64 = 14.0;
const MARGIN: f64 = 24.0;
const LABEL_CHARS: usize = 28;
const LABEL_CHAR_W: f64 = 6.0;

/// A coordinate with one decimal.
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

#[derive(Clone, Copy)]
enum Item {
    Start,
    End,
    Node(usize),
}

/// A machine laid out in its own coordinates (drawn translated by `ox`).
struct Laid {
    w: f64,
    h: f64,
    ox: f64,
    placed: Vec<Placed>,
    wires: Vec<Wire>,
    /// Top centre of the start node of an inner machine (for its entry marker).
    entry: Option<(f64, f64)>,
}

struct Placed {
    item: Item,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    subs: Vec<Sub>,
}

/// An inner machine of a Map or Parallel box, relative to the box.
struct Sub {
    /// The branch label; `None` for a Map's processor (drawn without a frame).
    label: Option<String>,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    lx: f64,
    ly: f64,
    laid: Laid,
}

struct Wire {
    d: String,
    catch: bool,
    label: Option<WireLabel>,
}

struct WireLabel {
    text: String,
    x: f64,
    y: f64,
    start: bool,
}

struct LEdge<'m> {
    from: usize,
    to: usize,
    label: Option<&'m str>,
    catch: bool,
}

struct Slot {
    layer: usize,
    w: f64,
    h: f64,
    real: bool,
    key: (usize, usize),
    kids: Vec<usize>,
    x: f64,
}

/// Size and inner layouts of a Map or Parallel box.
fn container(model: &Model<'_>, n: usize) -> (f64, f64, Vec<Sub>) {
    let Some(node) = model.nodes.get(n) else {
        return (NODE_W, NODE_H, Vec::new());
    };
    let framed = !model.is_map(n);
    let (inset, head, top) = if framed {
        (BRANCH_INSET, BRANCH_HEAD, HEADER + 12.0)
    } else {
        (0.0, 0.0, HEADER)
    };
    let gap = 16.0;
    let mut x = PAD;
    let mut hmax: f64 = 0.0;
    let mut subs = Vec::with_capacity(node.inner.len());
    for (i, &im) in node.inner.iter().enumerate() {
        let laid = layout(model, im, false);
        let mut sw = laid.w + 2.0 * inset;
        if framed {
            sw = sw.max(120.0);
        }
        let sh = head + ENTRY + laid.h + inset;
        let label = framed.then(|| {
            model
                .machines
                .get(im)
                .map_or_else(|| format!("Branch {}", i + 1), |m| m.label.clone())
        });
        let lx = x + (sw - laid.w) / 2.0;
        subs.push(Sub {
            label,
            x,
            y: top,
            w: sw,
            h: sh,
            lx,
            ly: top + head + ENTRY,
            laid,
        });
        x += sw + gap;
        hmax = hmax.max(sh);
    }
    let content_w = if subs.is_empty() {
        2.0 * PAD
    } else {
        x - gap + PAD
    };
    let w = content_w.max(NODE_W);
    let shift = (w - content_w) / 2.0;
    if shift > 0.0 {
        for s in &mut subs {
            s.x += shift;
            s.lx += shift;
        }
    }
    (w, top + hmax + PAD, subs)
}

fn desired(sum: &[f64], cnt: &[u32], i: usize) -> f64 {
    match (sum.get(i), cnt.get(i)) {
        (Some(&s), Some(&c)) if c > 0 => s / f64::from(c),
        _ => f64::INFINITY,
    }
}

fn curve(d: &mut String, ax: f64, ay: f64, bx: f64, by: f64) {
    let my = (ay + by) / 2.0;
    let _ = write!(
        d,
        " C{} {} {} {} {} {}",
        N(ax),
        N(my),
        N(bx),
        N(my),
        N(bx),
        N(by)
    );
}

/// Lays out one machine: layers by longest path over forward edges (back edges found by DFS),
/// long edges through dummy slots, nodes placed under their predecessors.
fn layout(model: &Model<'_>, m: usize, top: bool) -> Laid {
    let Some(machine) = model.machines.get(m) else {
        return Laid {
            w: 0.0,
            h: 0.0,
            ox: 0.0,
            placed: Vec::new(),
            wires: Vec::new(),
            entry: None,
        };
    };
    let mut items = Vec::new();
    if top {
        items.push(Item::Start);
        items.push(Item::End);
    }
    let mut local: HashMap<usize, usize> = HashMap::new();
    for &n in &machine.nodes {
        local.insert(n, items.len());
        items.push(Item::Node(n));
    }
    let k = items.len();
    let mut size = Vec::with_capacity(k);
    let mut subs: Vec<Vec<Sub>> = Vec::with_capacity(k);
    for item in &items {
        match *item {
            Item::Start | Item::End => {
                size.push((TERM_W, TERM_H));
                subs.push(Vec::new());
            }
            Item::Node(n) if model.is_container(n) => {
                let (w, h, s) = container(model, n);
                size.push((w, h));
                subs.push(s);
            }
            Item::Node(_) => {
                size.push((NODE_W, NODE_H));
                subs.push(Vec::new());
            }
        }
    }

    // Edges, in local indices.
    let start = local.get(&machine.start).copied().unwrap_or(0);
    let mut edges: Vec<LEdge<'_>> = Vec::new();
    if top {
        edges.push(LEdge {
            from: 0,
            to: start,
            label: None,
            catch: false,
        });
    }
    for e in &machine.edges {
        if let (Some(&a), Some(&b)) = (local.get(&e.from), local.get(&e.to)) {
            edges.push(LEdge {
                from: a,
                to: b,
                label: e.label.as_deref(),
                catch: e.catch,
            });
        }
    }
    if top {
        for x in machine.ends.iter().chain(&machine.fails) {
            if let Some(&a) = local.get(x) {
                edges.push(LEdge {
                    from: a,
                    to: 1,
                    label: None,
                    catch: false,
                });
            }
        }
    }
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, e) in edges.iter().enumerate() {
        if let Some(list) = out_edges.get_mut(e.from) {
            list.push(i);
        }
    }

    // Depth-first search: discovery order, postorder, back edges.
    let mut seen = vec![0u8; k];
    let mut disc = vec![0usize; k];
    let mut counter = 0usize;
    let mut post = Vec::with_capacity(k);
    let mut back = vec![false; edges.len()];
    let root = if top { 0 } else { start };
    for r in std::iter::once(root).chain(0..k) {
        if seen.get(r).copied() != Some(0) {
            continue;
        }
        seen[r] = 1;
        disc[r] = counter;
        counter += 1;
        let mut stack = vec![(r, 0usize)];
        while let Some(frame) = stack.last_mut() {
            let (v, pos) = *frame;
            if let Some(&ei) = out_edges[v].get(pos) {
                frame.1 += 1;
                let w = edges[ei].to;
                match seen[w] {
                    0 => {
                        seen[w] = 1;
                        disc[w] = counter;
                        counter += 1;
                        stack.push((w, 0));
                    }
                    1 => back[ei] = true,
                    _ => {}
                }
            } else {
                seen[v] = 2;
                post.push(v);
                stack.pop();
            }
        }
    }

    // Layers: longest path from the start over forward edges.
    let mut layer = vec![usize::from(top); k];
    if top {
        layer[0] = 0;
    }
    for &v in post.iter().rev() {
        for &ei in &out_edges[v] {
            if !back[ei] {
                let w = edges[ei].to;
                layer[w] = layer[w].max(layer[v] + 1);
            }
        }
    }
    if top && k > 1 {
        let deepest = (0..k)
            .filter(|&i| i != 1)
            .map(|i| layer[i])
            .max()
            .unwrap_or(0);
        layer[1] = deepest + 1;
    }

    // Slots: the nodes, and dummies where forward edges cross layers.
    let mut slots: Vec<Slot> = (0..k)
        .map(|i| Slot {
            layer: layer[i],
            w: size[i].0,
            h: size[i].1,
            real: true,
            key: (disc[i], 0),
            kids: Vec::new(),
            x: 0.0,
        })
        .collect();
    let mut chains: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (ei, e) in edges.iter().enumerate() {
        if back[ei] {
            continue;
        }
        let mut prev = e.from;
        for l in layer[e.from] + 1..layer[e.to] {
            let d = slots.len();
            slots.push(Slot {
                layer: l,
                w: DUMMY_W,
                h: 0.0,
                real: false,
                key: (disc[e.from], ei + 1),
                kids: Vec::new(),
                x: 0.0,
            });
            slots[prev].kids.push(d);
            chains[ei].push(d);
            prev = d;
        }
        slots[prev].kids.push(e.to);
    }
    let nlayers = slots.iter().map(|s| s.layer + 1).max().unwrap_or(0);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); nlayers];
    for (i, s) in slots.iter().enumerate() {
        rows[s.layer].push(i);
    }

    // Horizontal placement, layer by layer: each slot wants to sit under its predecessors
    // (children of one node spread around it, dummies to its right), pushed right on overlap.
    let mut sum = vec![0.0f64; slots.len()];
    let mut cnt = vec![0u32; slots.len()];
    for row in &mut rows {
        row.sort_by(|&a, &b| {
            desired(&sum, &cnt, a)
                .total_cmp(&desired(&sum, &cnt, b))
                .then(slots[a].key.cmp(&slots[b].key))
        });
        let mut right = f64::NEG_INFINITY;
        let mut prev_real = false;
        for &s in row.iter() {
            let d = desired(&sum, &cnt, s);
            let w = slots[s].w;
            let gap = if slots[s].real && prev_real {
                H_GAP
            } else {
                DUMMY_GAP
            };
            let min_left = if right.is_finite() {
                right + gap
            } else {
                f64::NEG_INFINITY
            };
            let want = if d.is_finite() {
                d - w / 2.0
            } else if right.is_finite() {
                min_left
            } else {
                0.0
            };
            let left = want.max(min_left);
            slots[s].x = left;
            right = left + w;
            prev_real = slots[s].real;
        }
        for &p in row.iter() {
            let pcx = slots[p].x + slots[p].w / 2.0;
            let mut kids: Vec<usize> = Vec::new();
            for &c in &slots[p].kids {
                if !kids.contains(&c) {
                    kids.push(c);
                }
            }
            if !slots[p].real {
                for &c in &kids {
                    sum[c] += pcx;
                    cnt[c] += 1;
                }
                continue;
            }
            let reals: Vec<usize> = kids.iter().copied().filter(|&c| slots[c].real).collect();
            let total: f64 = reals.iter().map(|&c| slots[c].w).sum::<f64>()
                + H_GAP * reals.len().saturating_sub(1) as f64;
            let mut cursor = pcx - total / 2.0;
            for &c in &reals {
                sum[c] += cursor + slots[c].w / 2.0;
                cnt[c] += 1;
                cursor += slots[c].w + H_GAP;
            }
            let mut dx = pcx + (total / 2.0).max(slots[p].w / 2.0) + DUMMY_GAP + DUMMY_W / 2.0;
            for &c in kids.iter().filter(|&&c| !slots[c].real) {
                sum[c] += dx;
                cnt[c] += 1;
                dx += DUMMY_W + DUMMY_GAP;
            }
        }
    }
    let minx = slots.iter().map(|s| s.x).fold(f64::INFINITY, f64::min);
    let minx = if minx.is_finite() { minx } else { 0.0 };
    for s in &mut slots {
        s.x -= minx;
    }
    let content_w = slots.iter().map(|s| s.x + s.w).fold(0.0, f64::max);

    // Vertical placement: layers as bands, nodes at the top of their band.
    let mut band = vec![0.0f64; nlayers];
    for s in &slots {
        band[s.layer] = band[s.layer].max(s.h);
    }
    let mut tops = vec![0.0f64; nlayers];
    let mut y = 0.0;
    for (t, b) in tops.iter_mut().zip(&band) {
        *t = y;
        y += b + V_GAP;
    }
    let content_h = if nlayers > 0 { y - V_GAP } else { 0.0 };
    let ytop = |i: usize| tops[slots[i].layer];
    let ybottom = |i: usize| tops[slots[i].layer] + band[slots[i].layer];
    let center = |i: usize| slots[i].x + slots[i].w / 2.0;

    // Ports: the edges leaving (entering) a node spread along its bottom (top) side.
    let mut out_port = vec![0.0f64; edges.len()];
    let mut in_port = vec![0.0f64; edges.len()];
    let mut outs: Vec<Vec<(f64, usize)>> = vec![Vec::new(); k];
    let mut ins: Vec<Vec<(f64, usize)>> = vec![Vec::new(); k];
    for (ei, e) in edges.iter().enumerate() {
        if back[ei] {
            continue;
        }
        let first = chains[ei].first().copied().unwrap_or(e.to);
        let last = chains[ei].last().copied().unwrap_or(e.from);
        outs[e.from].push((center(first), ei));
        ins[e.to].push((center(last), ei));
    }
    for (lists, ports) in [(&mut outs, &mut out_port), (&mut ins, &mut in_port)] {
        for (v, list) in lists.iter_mut().enumerate() {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let n = list.len();
            let step = if n > 1 {
                ((slots[v].w - 24.0) / n as f64).clamp(0.0, 16.0)
            } else {
                0.0
            };
            let mid = (n as f64 - 1.0) / 2.0;
            for (j, &(_, ei)) in list.iter().enumerate() {
                ports[ei] = center(v) + (j as f64 - mid) * step;
            }
        }
    }

    // Wires.
    let mut wires = Vec::with_capacity(edges.len());
    let mut lanes = 0usize;
    for (ei, e) in edges.iter().enumerate() {
        let (a, b) = (e.from, e.to);
        if back[ei] {
            let lx = content_w + 20.0 + LANE * lanes as f64;
            lanes += 1;
            let ax = slots[a].x + slots[a].w;
            let ay = ytop(a) + slots[a].h.min(NODE_H) / 2.0 - 6.0;
            let bx = slots[b].x + slots[b].w;
            let by = ytop(b) + slots[b].h.min(NODE_H) / 2.0 + 6.0;
            let d = format!(
                "M{} {} L{} {} L{} {} L{} {}",
                N(ax),
                N(ay),
                N(lx),
                N(ay),
                N(lx),
                N(by),
                N(bx),
                N(by)
            );
            wires.push(Wire {
                d,
                catch: e.catch,
                label: e.label.map(|t| WireLabel {
                    text: t.to_owned(),
                    x: ax + 6.0,
                    y: ay - 6.0,
                    start: true,
                }),
            });
            continue;
        }
        let sx = out_port[ei];
        let sy = ytop(a) + slots[a].h;
        let mut d = format!("M{} {}", N(sx), N(sy));
        let (mut cx, mut cy) = (sx, ybottom(a));
        if cy > sy + 0.5 {
            let _ = write!(d, " L{} {}", N(cx), N(cy));
        }
        let mut label_at = None;
        for &dm in &chains[ei] {
            let (tx, ty) = (center(dm), ytop(dm));
            curve(&mut d, cx, cy, tx, ty);
            if label_at.is_none() {
                label_at = Some((cx * 0.3 + tx * 0.7, cy * 0.3 + ty * 0.7));
            }
            cx = tx;
            cy = ybottom(dm);
            let _ = write!(d, " L{} {}", N(cx), N(cy));
        }
        let (tx, ty) = (in_port[ei], ytop(b));
        curve(&mut d, cx, cy, tx, ty);
        // Labels near the target end: edges leaving one Choice fan out towards different
        // targets, so their labels do not pile up at the source.
        let (lx, ly) = label_at.unwrap_or((cx * 0.3 + tx * 0.7, cy * 0.3 + ty * 0.7));
        wires.push(Wire {
            d,
            catch: e.catch,
            label: e.label.map(|t| WireLabel {
                text: t.to_owned(),
                x: lx,
                y: ly,
                start: false,
            }),
        });
    }
    let mut lo: f64 = 0.0;
    let mut hi = if lanes > 0 {
        content_w + 20.0 + LANE * lanes as f64
    } else {
        content_w
    };
    for l in wires.iter().filter_map(|w| w.label.as_ref()) {
        let len = l.text.chars().count().min(LABEL_CHARS) as f64 * LABEL_CHAR_W + 8.0;
        if l.start {
            hi = hi.max(l.x + len);
        } else {
            lo = lo.min(l.x - len / 2.0);
            hi = hi.max(l.x + len / 2.0);
        }
    }
    let entry = (!top && start < k).then(|| (center(start), ytop(start)));
    let placed = items
        .iter()
        .zip(subs)
        .enumerate()
        .map(|(i, (&item, subs))| Placed {
            item,
            x: slots[i].x,
            y: ytop(i),
            w: slots[i].w,
            h: slots[i].h,
            subs,
        })
        .collect();
    Laid {
        w: hi - lo,
        h: content_h,
        ox: -lo,
        placed,
        wires,
        entry,
    }
}

/// Escapes text for HTML content and attribute values (control characters become spaces).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push('\n'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn short_resource(r: &str) -> &str {
    r.strip_prefix("arn:aws:states:::")
        .unwrap_or_else(|| r.rsplit(':').next().unwrap_or(r))
}

fn subtitle(state: &State) -> String {
    match &state.kind {
        Kind::Task(t) => format!("Task · {}", short_resource(&t.resource)),
        Kind::Wait(WaitFor::Seconds(s)) => format!("Wait · {s}s"),
        Kind::Fail(f) => f
            .error
            .as_deref()
            .map_or_else(|| "Fail".to_owned(), |e| format!("Fail · {e}")),
        k => k.type_name().to_owned(),
    }
}

fn svg_shape(out: &mut String, kind: Option<&Kind>, x: f64, y: f64, w: f64, h: f64) {
    match kind {
        Some(Kind::Choice(_)) => {
            let _ = write!(
                out,
                r#"<polygon class="shape" points="{},{} {},{} {},{} {},{} {},{} {},{}"/>"#,
                N(x + 14.0),
                N(y),
                N(x + w - 14.0),
                N(y),
                N(x + w),
                N(y + h / 2.0),
                N(x + w - 14.0),
                N(y + h),
                N(x + 14.0),
                N(y + h),
                N(x),
                N(y + h / 2.0)
            );
        }
        Some(Kind::Wait(_)) => {
            let _ = write!(
                out,
                r#"<polygon class="shape" points="{},{} {},{} {},{} {},{}"/>"#,
                N(x + 12.0),
                N(y),
                N(x + w),
                N(y),
                N(x + w - 12.0),
                N(y + h),
                N(x),
                N(y + h)
            );
        }
        Some(Kind::Succeed | Kind::Fail(_)) => {
            let _ = write!(
                out,
                r#"<rect class="shape" x="{}" y="{}" width="{}" height="{}" rx="{}"/>"#,
                N(x),
                N(y),
                N(w),
                N(h),
                N(h / 2.0)
            );
        }
        _ => {
            let _ = write!(
                out,
                r#"<rect class="shape" x="{}" y="{}" width="{}" height="{}" rx="6"/>"#,
                N(x),
                N(y),
                N(w),
                N(h)
            );
        }
    }
}

fn svg_node(
    out: &mut String,
    model: &Model<'_>,
    p: &Placed,
    st: Option<&HashMap<String, NodeStatus>>,
) {
    let (x, y, w, h) = (p.x, p.y, p.w, p.h);
    let cx = x + w / 2.0;
    let n = match p.item {
        Item::Start | Item::End => {
            let label = if matches!(p.item, Item::Start) {
                "Start"
            } else {
                "End"
            };
            let _ = writeln!(
                out,
                r#"<g class="n term"><rect class="shape" x="{}" y="{}" width="{}" height="{}" rx="{}"/><text x="{}" y="{}" text-anchor="middle">{label}</text></g>"#,
                N(x),
                N(y),
                N(w),
                N(h),
                N(h / 2.0),
                N(cx),
                N(y + h / 2.0 + 4.0)
            );
            return;
        }
        Item::Node(n) => n,
    };
    let Some(node) = model.nodes.get(n) else {
        return;
    };
    let status = model.status_of(n, st);
    let mut cls = String::from("n");
    match (node.state, status) {
        (None, _) => cls.push_str(" missing"),
        (Some(_), Some(s)) => {
            cls.push_str(" st-");
            cls.push_str(s.class());
        }
        (Some(_), None) => {}
    }
    if !p.subs.is_empty() {
        cls.push_str(" box");
    }
    let type_name = node.state.map_or("missing", |s| s.kind.type_name());
    let mut tip = match node.state {
        Some(_) => format!("{} ({type_name})", node.name),
        None => format!("{} (not defined in the state machine)", node.name),
    };
    if let Some(s) = status {
        let _ = write!(tip, " — {}", s.label());
    }
    if let Some(c) = node.state.and_then(|s| s.comment.as_deref()) {
        tip.push('\n');
        tip.push_str(c);
    }
    let _ = write!(out, r#"<g class="{cls}"><title>{}</title>"#, esc(&tip));
    if p.subs.is_empty() {
        svg_shape(out, node.state.map(|s| &s.kind), x, y, w, h);
        let sub = node
            .state
            .map_or_else(|| "not defined".to_owned(), subtitle);
        let _ = write!(
            out,
            r#"<text class="name" x="{}" y="{}" text-anchor="middle">{}</text><text class="type" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            N(cx),
            N(y + 17.0),
            esc(&truncate(&model.label_of(n), 23)),
            N(cx),
            N(y + 31.0),
            esc(&truncate(&sub, 30))
        );
    } else {
        let r = 8.0;
        let _ = write!(
            out,
            r#"<rect class="shape" x="{}" y="{}" width="{}" height="{}" rx="{}"/>"#,
            N(x),
            N(y),
            N(w),
            N(h),
            N(r)
        );
        let _ = write!(
            out,
            r#"<path class="hdr" d="M{} {} V{} Q{} {} {} {} H{} Q{} {} {} {} V{} Z"/>"#,
            N(x + 0.75),
            N(y + HEADER),
            N(y + r),
            N(x + 0.75),
            N(y + 0.75),
            N(x + r),
            N(y + 0.75),
            N(x + w - r),
            N(x + w - 0.75),
            N(y + 0.75),
            N(x + w - 0.75),
            N(y + r),
            N(y + HEADER)
        );
        let max_chars = (((w - 24.0) / 7.0).floor().max(4.0)) as usize;
        let _ = write!(
            out,
            r#"<text class="name" x="{}" y="{}">{}</text>"#,
            N(x + 12.0),
            N(y + 18.5),
            esc(&truncate(&format!("{type_name}: {}", node.name), max_chars))
        );
        out.push('\n');
        for sub in &p.subs {
            if let Some(label) = &sub.label {
                let _ = write!(
                    out,
                    r#"<rect class="branch" x="{}" y="{}" width="{}" height="{}" rx="6"/><text class="blabel" x="{}" y="{}">{}</text>"#,
                    N(x + sub.x),
                    N(y + sub.y),
                    N(sub.w),
                    N(sub.h),
                    N(x + sub.x + 8.0),
                    N(y + sub.y + 14.0),
                    esc(label)
                );
            }
            let _ = writeln!(
                out,
                r#"<g transform="translate({},{})">"#,
                N(x + sub.lx),
                N(y + sub.ly)
            );
            svg_laid(out, model, &sub.laid, st);
            out.push_str("</g>\n");
        }
    }
    out.push_str("</g>\n");
}

fn svg_laid(
    out: &mut String,
    model: &Model<'_>,
    laid: &Laid,
    st: Option<&HashMap<String, NodeStatus>>,
) {
    let _ = writeln!(out, r#"<g transform="translate({},0)">"#, N(laid.ox));
    for w in &laid.wires {
        let (cls, marker) = if w.catch {
            ("e catch", "ah-catch")
        } else {
            ("e", "ah")
        };
        let _ = writeln!(
            out,
            r#"<path class="{cls}" d="{}" marker-end="url(#{marker})"/>"#,
            w.d
        );
    }
    if let Some((x, y)) = laid.entry {
        let _ = writeln!(
            out,
            r#"<circle class="entry" cx="{}" cy="{}" r="4"/><path class="e" d="M{} {} L{} {}" marker-end="url(#ah)"/>"#,
            N(x),
            N(y - ENTRY + 6.0),
            N(x),
            N(y - ENTRY + 10.0),
            N(x),
            N(y)
        );
    }
    for p in &laid.placed {
        svg_node(out, model, p, st);
    }
    for l in laid.wires.iter().filter_map(|w| w.label.as_ref()) {
        let _ = writeln!(
            out,
            r#"<text class="el" x="{}" y="{}" text-anchor="{}"><title>{}</title>{}</text>"#,
            N(l.x),
            N(l.y + 4.0),
            if l.start { "start" } else { "middle" },
            esc(&l.text),
            esc(&truncate(&l.text, LABEL_CHARS))
        );
    }
    out.push_str("</g>\n");
}

const CSS: &str = r#"*{box-sizing:border-box}
body{margin:24px 32px;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2937;background:#fff;font-size:14px}
h1{font-size:22px;font-weight:600;margin:0 0 6px}
h2{font-size:16px;font-weight:600;margin:26px 0 6px}
.meta{margin:0 0 6px;color:#4b5563;font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:18px;margin:10px 0 14px;font-size:13px;color:#374151}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:14px;height:14px;border-radius:3px;border:1.5px solid}
.graph{overflow:auto;border:1px solid #e5e7eb;border-radius:10px;background:#fcfcfd;padding:8px}
.graph svg{display:block;margin:0 auto;max-width:100%;height:auto}
svg text{font-family:inherit}
.n>.shape{fill:#fff;stroke:#64748b;stroke-width:1.5}
.n>.name{font-size:13px;fill:#111827}
.n>.type{font-size:10.5px;fill:#6b7280}
.term>.shape{fill:#374151;stroke:#374151}
.term>text{font-size:12px;font-weight:600;fill:#fff}
.missing>.shape{fill:#fff;stroke:#d73a49;stroke-dasharray:5 3}
.missing>.name,.missing>.type{fill:#b91c1c}
.hdr{fill:#eef2f7}
.box>.name{font-weight:600}
.branch{fill:none;stroke:#94a3b8;stroke-dasharray:4 3}
.blabel{font-size:11px;fill:#64748b}
.entry{fill:#64748b}
.e{fill:none;stroke:#6b7280;stroke-width:1.4}
.e.catch{stroke:#e36209;stroke-dasharray:6 4}
.el{font-size:11px;fill:#374151;paint-order:stroke;stroke:#fcfcfd;stroke-width:4px;stroke-linejoin:round}
table.events{border-collapse:collapse;font-size:12px;width:100%}
.events th{text-align:left;font-weight:600;color:#374151;border-bottom:2px solid #e5e7eb;padding:4px 8px;position:sticky;top:0;background:#fff}
.events td{border-bottom:1px solid #f1f5f9;padding:3px 8px;white-space:nowrap;font-variant-numeric:tabular-nums;vertical-align:top}
.events td.err{white-space:normal;color:#b91c1c;max-width:560px}
.events tr.bad td{background:#fef2f2}
"#;

fn events_table(out: &mut String, events: &[Event], a: &Analysis<'_>) {
    out.push_str("<h2>Events</h2>\n<table class=\"events\"><thead><tr><th>#</th><th>Timestamp</th><th>Type</th><th>State</th><th>Error</th></tr></thead>\n<tbody>\n");
    for &i in &a.order {
        let Some(e) = events.get(i) else {
            continue;
        };
        let kind = e.kind.as_str();
        let owner_name = a
            .owner
            .get(i)
            .copied()
            .flatten()
            .and_then(|k| a.entries.get(k))
            .map(|en| en.name);
        let mut state = e.detail_str("name").or(owner_name).unwrap_or("").to_owned();
        if kind.starts_with("MapIteration")
            && let Some(idx) = e
                .detail()
                .and_then(|d| d.get("index"))
                .and_then(Value::as_u64)
        {
            let _ = write!(state, " [{idx}]");
        }
        let bad =
            kind.ends_with("Failed") || kind.ends_with("TimedOut") || kind.ends_with("Aborted");
        let error = e.detail_str("error").unwrap_or("");
        let cause = e.detail_str("cause").unwrap_or("");
        let mut shown = error.to_owned();
        if !cause.is_empty() {
            if !shown.is_empty() {
                shown.push_str(": ");
            }
            shown.push_str(&truncate(&one_line(cause), 160));
        }
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\" title=\"{}\">{}</td></tr>",
            if bad { " class=\"bad\"" } else { "" },
            e.id,
            esc(&e.timestamp),
            esc(kind),
            esc(&state),
            esc(cause),
            esc(&shown)
        );
    }
    out.push_str("</tbody></table>\n");
}

fn html(
    model: &Model<'_>,
    history: Option<(&[Event], &Analysis<'_>)>,
    st: Option<&HashMap<String, NodeStatus>>,
    title: &str,
    comment: Option<&str>,
) -> String {
    let laid = layout(model, 0, true);
    let width = laid.w + 2.0 * MARGIN;
    let height = laid.h + 2.0 * MARGIN;
    let title = one_line(title);
    let mut out = String::with_capacity(16_384);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", esc(&title));
    out.push_str("<style>\n");
    out.push_str(CSS);
    for s in NodeStatus::ALL {
        let _ = writeln!(
            out,
            ".st-{c}>.shape{{fill:{f};stroke:{k}}}.st-{c}>.hdr{{fill:{f}}}.st-{c}>.name{{fill:{t}}}",
            c = s.class(),
            f = s.fill(),
            k = s.stroke(),
            t = s.text()
        );
    }
    out.push_str(".box>.shape{fill:#fbfcfe}\n</style>\n</head>\n<body>\n");
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    if let Some(c) = comment.map(one_line).filter(|c| !c.is_empty()) {
        let _ = writeln!(out, "<p class=\"meta\">{}</p>", esc(&c));
    }
    if let Some((events, a)) = history {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Execution {} · {} event{}</p>",
            a.execution_status(events.len()),
            events.len(),
            if events.len() == 1 { "" } else { "s" }
        );
        out.push_str("<div class=\"legend\">");
        for s in NodeStatus::ALL {
            let _ = write!(
                out,
                "<span><i style=\"background:{};border-color:{}\"></i>{}</span>",
                s.fill(),
                s.stroke(),
                s.label()
            );
        }
        out.push_str("</div>\n");
    }
    let _ = writeln!(
        out,
        "<div class=\"graph\"><svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
        esc(&title),
        w = N(width),
        h = N(height)
    );
    out.push_str(concat!(
        "<defs>",
        r##"<marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L10 5L0 10z" fill="#6b7280"/></marker>"##,
        r##"<marker id="ah-catch" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L10 5L0 10z" fill="#e36209"/></marker>"##,
        "</defs>\n"
    ));
    let _ = writeln!(out, r#"<g transform="translate({m},{m})">"#, m = N(MARGIN));
    svg_laid(&mut out, model, &laid, st);
    out.push_str("</g>\n</svg></div>\n");
    if let Some((events, a)) = history {
        if events.is_empty() {
            out.push_str("<p class=\"meta\">The history has no events.</p>\n");
        } else {
            events_table(&mut out, events, a);
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEAL: &str = r#"{
        "StartAt": "Diagnose",
        "States": {
            "Diagnose": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Healthy?",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Notify"}]},
            "Healthy?": {"Type": "Choice",
                "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Done"}],
                "Default": "Restart"},
            "Restart": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 5, "Next": "Diagnose"},
            "Notify": {"Type": "Pass", "Next": "Give up"},
            "Give up": {"Type": "Fail", "Error": "Unhealthy"},
            "Done": {"Type": "Succeed"}
        }
    }"#;

    const NESTED: &str = r#"{
        "StartAt": "Fan",
        "States": {
            "Fan": {"Type": "Parallel", "Next": "Each", "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": true}}},
                {"StartAt": "Right", "States": {"Right": {"Type": "Pass", "End": true}}}
            ]},
            "Each": {"Type": "Map", "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "Work", "States": {
                    "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
                "End": true},
            "Recover": {"Type": "Pass", "End": true}
        }
    }"#;

    fn sm(text: &str) -> StateMachine {
        StateMachine::parse(text).expect("valid")
    }

    fn ev(id: u64, prev: u64, kind: &str, details: Value) -> Event {
        let mut map = serde_json::Map::new();
        if let Some(key) = crate::history::details_key(kind)
            && !details.is_null()
        {
            map.insert(key.to_owned(), details);
        }
        Event {
            timestamp: format!("2024-05-01T00:00:00.{id:03}Z"),
            kind: kind.to_owned(),
            id,
            previous_event_id: prev,
            details: map,
        }
    }

    /// One thread: each event follows the one before.
    fn thread(steps: &[(&str, Value)]) -> Vec<Event> {
        steps
            .iter()
            .zip(1u64..)
            .map(|((kind, d), id)| ev(id, id - 1, kind, d.clone()))
            .collect()
    }

    fn name(n: &str) -> Value {
        json!({"name": n})
    }

    fn caught_history() -> Vec<Event> {
        thread(&[
            ("ExecutionStarted", json!({"input": "{}"})),
            ("TaskStateEntered", name("Diagnose")),
            ("TaskScheduled", json!({"resource": "invoke"})),
            ("TaskStarted", json!({})),
            (
                "TaskFailed",
                json!({"error": "Boom", "cause": "it <broke>"}),
            ),
            ("TaskScheduled", json!({"resource": "invoke"})),
            ("TaskStarted", json!({})),
            ("TaskFailed", json!({"error": "Boom", "cause": "again"})),
            ("TaskStateExited", name("Diagnose")),
            ("PassStateEntered", name("Notify")),
            ("PassStateExited", name("Notify")),
            ("FailStateEntered", name("Give up")),
            (
                "ExecutionFailed",
                json!({"error": "Unhealthy", "cause": ""}),
            ),
        ])
    }

    #[test]
    fn format_parses_the_three_names_and_names_them_on_error() {
        assert_eq!("mermaid".parse::<Format>(), Ok(Format::Mermaid));
        assert_eq!("DOT".parse::<Format>(), Ok(Format::Dot));
        assert_eq!("html".parse::<Format>(), Ok(Format::Html));
        let err = "svg".parse::<Format>().expect_err("unknown");
        assert!(err.contains("mermaid") && err.contains("dot") && err.contains("html"));
    }

    #[test]
    fn mermaid_contains_every_state_label_and_the_choice_shape() {
        let out = render(&sm(HEAL), None, Format::Mermaid, "heal");
        assert!(out.contains("flowchart TD"));
        for label in [
            "Diagnose", "Healthy?", "Restart", "Pause", "Notify", "Give up", "Done",
        ] {
            assert!(
                out.contains(&format!("\"{label}\"")),
                "{label} missing in {out}"
            );
        }
        assert!(out.contains("{\"Healthy?\"}"), "choice is a rhombus: {out}");
        assert!(out.contains("([\"Give up\"])"), "fail is a stadium");
        assert!(
            out.contains("-.->|\"Catch: States.ALL\"|"),
            "catch edge: {out}"
        );
        assert!(out.contains("|\"Default\"|"));
        assert!(out.contains("start_node --> s0"));
        assert!(out.contains("--> end_node"));
        assert!(
            !out.contains("classDef succeeded"),
            "no status classes without a history"
        );
    }

    #[test]
    fn mermaid_escapes_quotes_and_brackets_and_uses_generated_ids() {
        let def = r#"{"StartAt": "Say \"hi\" (now) [x]: {y}?", "States": {
            "Say \"hi\" (now) [x]: {y}?": {"Type": "Pass", "Next": "B|C"},
            "B|C": {"Type": "Succeed"}}}"#;
        let out = render(&sm(def), None, Format::Mermaid, "t");
        assert!(out.contains("#quot;hi#quot;"), "{out}");
        assert!(out.contains("#40;now#41;"));
        assert!(out.contains("#91;x#93;"));
        assert!(out.contains("B#124;C"));
        assert!(!out.contains("\"hi\""));
        for line in out.lines().map(str::trim) {
            if line.contains("#quot;hi") && !line.contains("-->") {
                assert!(line.starts_with("s0[") || line.starts_with("s1["), "{line}");
            }
        }
    }

    #[test]
    fn mermaid_colours_states_with_a_history() {
        let out = render(&sm(HEAL), Some(&caught_history()), Format::Mermaid, "t");
        assert!(out.contains("classDef caught fill:#ffe5b4,stroke:#e36209"));
        assert!(out.contains("classDef nottaken fill:#f3f4f6,stroke:#9ca3af,color:#6b7280"));
        assert!(
            out.lines()
                .any(|l| l.trim().starts_with("class ") && l.ends_with(" caught"))
        );
    }

    #[test]
    fn mermaid_draws_map_and_parallel_as_subgraphs() {
        let out = render(&sm(NESTED), None, Format::Mermaid, "t");
        assert!(out.contains("[\"Map: Each\"]"), "{out}");
        assert!(out.contains("[\"Parallel: Fan\"]"));
        assert!(out.contains("[\"Branch 1\"]") && out.contains("[\"Branch 2\"]"));
        assert_eq!(out.matches("subgraph ").count(), 4);
        assert_eq!(
            out.lines().filter(|l| l.trim() == "end").count(),
            4,
            "every subgraph is closed"
        );
    }

    #[test]
    fn dot_has_clusters_for_map_and_parallel() {
        let out = render(&sm(NESTED), None, Format::Dot, "nested \"x\"");
        assert!(out.starts_with("digraph \"nested \\\"x\\\"\" {"));
        assert!(out.contains("rankdir=TB"));
        assert!(out.contains("node [fontname=\"Helvetica\""));
        assert_eq!(out.matches("subgraph cluster_").count(), 4);
        assert!(out.contains("label=\"Map: Each\""));
        assert!(out.contains("label=\"Parallel: Fan\""));
        assert!(out.contains("style=dashed"));
        assert_eq!(out.matches('{').count(), out.matches('}').count());
    }

    #[test]
    fn dot_shapes_escapes_and_fills() {
        let def = r#"{"StartAt": "A \\ \"b\"", "States": {
            "A \\ \"b\"": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericGreaterThan": 3, "Next": "Ok"}], "Default": "No"},
            "Ok": {"Type": "Succeed"}, "No": {"Type": "Fail"}}}"#;
        let events = thread(&[
            ("ChoiceStateEntered", name("A \\ \"b\"")),
            ("ChoiceStateExited", name("A \\ \"b\"")),
            ("SucceedStateEntered", name("Ok")),
            ("SucceedStateExited", name("Ok")),
            ("ExecutionSucceeded", json!({})),
        ]);
        let out = render(&sm(def), Some(&events), Format::Dot, "t");
        assert!(out.contains("label=\"A \\\\ \\\"b\\\"\""), "{out}");
        assert!(out.contains("shape=diamond"));
        assert!(out.contains("shape=octagon"));
        assert!(out.contains("label=\"$.x > 3\""));
        assert!(out.contains("fillcolor=\"#d4edda\""));
        assert!(out.contains("fillcolor=\"#f3f4f6\""));
    }

    #[test]
    fn a_caught_task_is_caught_and_a_fail_state_failed() {
        let st = statuses(&caught_history());
        assert_eq!(st.get("Diagnose"), Some(&NodeStatus::Caught));
        assert_eq!(st.get("Notify"), Some(&NodeStatus::Succeeded));
        assert_eq!(st.get("Give up"), Some(&NodeStatus::Failed));
        assert_eq!(st.get("Restart"), None, "never entered");
        assert_eq!(st.len(), 3);
    }

    #[test]
    fn a_task_that_succeeds_on_retry_succeeded() {
        let st = statuses(&thread(&[
            ("TaskStateEntered", name("Diagnose")),
            ("TaskScheduled", json!({})),
            ("TaskFailed", json!({"error": "Boom"})),
            ("TaskScheduled", json!({})),
            ("TaskSucceeded", json!({"output": "{}"})),
            ("TaskStateExited", name("Diagnose")),
        ]));
        assert_eq!(st.get("Diagnose"), Some(&NodeStatus::Succeeded));
    }

    #[test]
    fn an_entered_state_without_exit_is_in_progress_while_running_and_failed_after() {
        let mut events = thread(&[
            ("ExecutionStarted", json!({})),
            ("TaskStateEntered", name("Diagnose")),
            ("TaskScheduled", json!({})),
        ]);
        assert_eq!(
            statuses(&events).get("Diagnose"),
            Some(&NodeStatus::InProgress)
        );
        events.push(ev(
            4,
            3,
            "ExecutionTimedOut",
            json!({"error": "States.Timeout"}),
        ));
        assert_eq!(statuses(&events).get("Diagnose"), Some(&NodeStatus::Failed));
    }

    #[test]
    fn a_state_entered_several_times_takes_the_worst_status() {
        let st = statuses(&thread(&[
            ("TaskStateEntered", name("Diagnose")),
            ("TaskSucceeded", json!({})),
            ("TaskStateExited", name("Diagnose")),
            ("TaskStateEntered", name("Diagnose")),
            ("TaskFailed", json!({"error": "Boom"})),
            ("TaskStateExited", name("Diagnose")),
            ("TaskStateEntered", name("Diagnose")),
            ("TaskSucceeded", json!({})),
            ("TaskStateExited", name("Diagnose")),
        ]));
        assert_eq!(st.get("Diagnose"), Some(&NodeStatus::Caught));
    }

    #[test]
    fn task_events_are_attributed_to_their_own_thread() {
        // A Map with two iterations interleaved: iteration 0 fails, iteration 1 succeeds, the
        // Map fails and its Catch handles it.
        let events = vec![
            ev(1, 0, "ExecutionStarted", json!({})),
            ev(2, 1, "MapStateEntered", name("Each")),
            ev(3, 2, "MapStateStarted", json!({"length": 2})),
            ev(
                4,
                3,
                "MapIterationStarted",
                json!({"name": "Each", "index": 0}),
            ),
            ev(
                5,
                3,
                "MapIterationStarted",
                json!({"name": "Each", "index": 1}),
            ),
            ev(6, 4, "TaskStateEntered", name("Work")),
            ev(7, 5, "TaskStateEntered", name("Work")),
            ev(8, 6, "TaskScheduled", json!({})),
            ev(9, 7, "TaskScheduled", json!({})),
            ev(10, 8, "TaskFailed", json!({"error": "Boom"})),
            ev(11, 9, "TaskSucceeded", json!({})),
            ev(12, 11, "TaskStateExited", name("Work")),
            ev(
                13,
                12,
                "MapIterationSucceeded",
                json!({"name": "Each", "index": 1}),
            ),
            ev(
                14,
                10,
                "MapIterationFailed",
                json!({"name": "Each", "index": 0}),
            ),
            ev(15, 3, "MapStateFailed", Value::Null),
            ev(16, 15, "MapStateExited", name("Each")),
            ev(17, 16, "PassStateEntered", name("Recover")),
            ev(18, 17, "PassStateExited", name("Recover")),
            ev(19, 18, "ExecutionSucceeded", json!({})),
        ];
        let st = statuses(&events);
        assert_eq!(st.get("Work"), Some(&NodeStatus::Failed));
        assert_eq!(st.get("Each"), Some(&NodeStatus::Caught));
        assert_eq!(st.get("Recover"), Some(&NodeStatus::Succeeded));
        assert_eq!(st.get("Fan"), None);
        let html = render(&sm(NESTED), Some(&events), Format::Html, "nested");
        assert!(html.contains("n st-caught box"), "the Map box is caught");
        assert!(
            html.contains("Each [0]"),
            "iteration index in the events table"
        );
    }

    #[test]
    fn html_is_self_contained_and_escapes_state_names() {
        let def = r#"{"StartAt": "<script>alert('x')</script>", "States": {
            "<script>alert('x')</script>": {"Type": "Pass", "Next": "A & B"},
            "A & B": {"Type": "Succeed"}}}"#;
        let out = render(&sm(def), None, Format::Html, "<b>title</b>");
        assert!(out.starts_with("<!DOCTYPE html>"));
        assert!(out.contains("<svg"));
        assert!(out.contains("<h1>&lt;b&gt;title&lt;/b&gt;</h1>"));
        assert!(!out.contains("<script"));
        assert!(out.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        assert!(out.contains("A &amp; B"));
        assert!(!out.contains("src=\"http"));
        assert!(!out.contains("href=\"http"));
        assert!(!out.contains("<link"));
        assert!(!out.contains("@import"));
    }

    #[test]
    fn html_truncates_long_labels_and_keeps_the_full_name_in_a_tooltip() {
        let long = "Restart the service on every host of the fleet";
        let def = format!(
            r#"{{"StartAt": "{long}", "States": {{"{long}": {{"Type": "Pass", "End": true}}}}}}"#
        );
        let out = render(&sm(&def), None, Format::Html, "t");
        assert!(out.contains(&format!("<title>{long} (Pass)</title>")));
        assert!(out.contains("Restart the service on…"), "{out}");
    }

    #[test]
    fn html_has_the_legend_and_events_only_with_a_history() {
        let def = sm(HEAL);
        let plain = render(&def, None, Format::Html, "t");
        assert!(!plain.contains("class=\"legend\""));
        assert!(!plain.contains("<table"));
        let events = caught_history();
        let coloured = render(&def, Some(&events), Format::Html, "t");
        assert!(coloured.contains("class=\"legend\""));
        for label in ["succeeded", "failed", "caught", "in progress", "not taken"] {
            assert!(coloured.contains(&format!("</i>{label}</span>")), "{label}");
        }
        assert!(coloured.contains("<table class=\"events\">"));
        assert!(coloured.contains("it &lt;broke&gt;"));
        assert!(coloured.contains("n st-caught"));
        assert!(coloured.contains("n st-nottaken"));
        assert!(coloured.contains("Execution failed"));
    }

    #[test]
    fn html_draws_nested_boxes_and_dashed_catch_edges() {
        let out = render(&sm(NESTED), None, Format::Html, "t");
        assert!(out.contains("Map: Each"));
        assert!(out.contains("Parallel: Fan"));
        assert!(out.contains("Branch 2"));
        assert!(out.contains("class=\"e catch\""));
        assert!(out.contains("<marker id=\"ah\""));
        let back = render(&sm(HEAL), None, Format::Html, "t");
        assert!(back.contains("Default"));
    }

    #[test]
    fn rendering_never_panics_on_an_empty_history_or_a_missing_state() {
        let broken = sm(r#"{"StartAt": "Ghost", "States": {
            "A": {"Type": "Pass", "Next": "Nowhere"},
            "B": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "B"}], "Default": "A"},
            "M": {"Type": "Map", "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "Next": "Lost"}}}, "End": true}
        }}"#);
        for def in [&broken, &sm(HEAL), &sm(NESTED)] {
            for format in [Format::Mermaid, Format::Dot, Format::Html] {
                for events in [None, Some(&[][..])] {
                    let out = render(def, events, format, "");
                    assert!(!out.is_empty());
                }
            }
        }
        let out = render(&broken, Some(&[]), Format::Mermaid, "t");
        assert!(out.contains("missing: Nowhere"));
        assert!(out.contains("missing: Ghost"));
        assert!(out.contains("missing: Lost"));
        assert!(out.contains("IsPresent#40;$.x#41;"));
        assert!(statuses(&[]).is_empty());
    }

    #[test]
    fn odd_histories_do_not_panic() {
        let events = vec![
            ev(5, 5, "TaskStateExited", name("X")),
            ev(3, 9, "TaskFailed", json!({})),
            ev(3, 3, "TaskStateEntered", name("X")),
            ev(1, 0, "TaskStateEntered", Value::Null),
        ];
        let st = statuses(&events);
        assert_eq!(st.get("X"), Some(&NodeStatus::Succeeded));
        let out = render(&sm(HEAL), Some(&events), Format::Html, "t");
        assert!(out.contains("Execution running"));
    }
}
