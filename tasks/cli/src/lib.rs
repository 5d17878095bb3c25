//! The `autoheal` command line. Every command returns its output as text (so tests read exactly
//! what a person sees) and an exit code: 0 success, 1 a negative result (validation problems, a
//! failed execution), 2 bad usage or input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autoheal_asl::graph::{self, Format};
use autoheal_asl::{
    Event, Execution, MockConfig, RunOptions, StateMachine, Status, validate::validate,
};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

pub mod incidents;
pub mod operate;
pub mod report;
pub mod sim;

/// The placeholder values that bind each Task to its in-process handler.
fn in_process_substitutions() -> Vec<(String, String)> {
    autoheal_handlers::substitutions().into_iter().collect()
}

/// Self-healing for AWS load balancers.
#[derive(Debug, Parser)]
#[command(name = "autoheal", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check state machines, diagnosis rules and policies; errors name file, path and fix.
    Validate(ValidateArgs),
    /// Amazon States Language tools.
    Asl {
        #[command(subcommand)]
        command: AslCommand,
    },
    /// Render a state machine (and the path an execution took) as Mermaid, DOT or HTML.
    Graph(GraphArgs),
    /// Classify one host: what autoheal concludes from the output of ssm/diagnostics.yml and
    /// what the load balancer, EC2 and SSM report.
    Diagnose(DiagnoseArgs),
    /// Run the built-in scenarios under autoheal and under asg-replace: a table, the figures
    /// and DIR/report.html. No AWS, no network.
    Demo(sim::DemoArgs),
    /// Run one scenario on the simulated region, the real state machine and the real handlers.
    Simulate(sim::SimulateArgs),
    /// Incident history: the embedded store a run wrote (--store) or the stack's DynamoDB
    /// table (--table, with the `aws` feature).
    Incidents {
        #[command(subcommand)]
        command: incidents::IncidentsCommand,
    },
    /// Approve a heal waiting for a person (SendTaskSuccess with the notification's token).
    Approve(operate::ApproveArgs),
    /// Deny a heal waiting for a person (SendTaskFailure ApprovalDenied): the incident is held.
    Deny(operate::DenyArgs),
    /// Replay an execution on AWS (redrive or restart), or a recorded incident locally.
    Replay(operate::ReplayArgs),
    /// Run task handlers as Step Functions activity workers (the stack's activity mode).
    Worker(operate::WorkerArgs),
    /// Start an execution now, from an alarm event or for a target group (as the trigger does).
    Start(operate::StartArgs),
    /// Run one task handler locally against a simulated fleet (no AWS).
    Invoke(operate::InvokeArgs),
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// The stdout of ssm/diagnostics.yml (`-` for standard input); omit when SSM delivered nothing.
    #[arg(long)]
    pub diagnostics: Option<PathBuf>,
    /// Target health state (initial, healthy, unhealthy, unused, draining, unavailable, unhealthy.draining).
    #[arg(long, default_value = "unhealthy")]
    pub elb_state: String,
    /// ELB reason code, e.g. Target.Timeout.
    #[arg(long)]
    pub elb_reason: Option<String>,
    /// EC2 instance status check (ok, impaired, insufficient-data, not-applicable, initializing).
    #[arg(long, default_value = "ok")]
    pub instance_status: String,
    /// EC2 system status check.
    #[arg(long, default_value = "ok")]
    pub system_status: String,
    /// Status of the diagnostics SSM command (success, failed, timed_out, delivery_timed_out, undeliverable, ...).
    #[arg(long, default_value = "success")]
    pub ssm_command: String,
    /// SSM agent ping status (online, connection_lost, inactive, not_registered).
    #[arg(long, default_value = "online")]
    pub agent: String,
    /// A rules file (default: the shipped rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Print the diagnosis as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AslCommand {
    /// Run any ASL definition locally; Task results come from a Step Functions Local mock config.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// State machine definitions (default: statemachine/autoheal.asl.json).
    #[arg(long = "definition")]
    pub definitions: Vec<PathBuf>,
    /// A diagnosis rules file (default: the shipped rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Policy files.
    #[arg(long = "policy")]
    pub policies: Vec<PathBuf>,
    /// Scenario files (docs/scenarios.md).
    #[arg(long = "scenario")]
    pub scenarios: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long)]
    pub definition: PathBuf,
    /// Execution input as a JSON file (default: {}).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// A Step Functions Local mock config (MockedResponses, StateMachines.<name>.TestCases).
    #[arg(long)]
    pub mock_config: Option<PathBuf>,
    /// The test case of the mock config to use.
    #[arg(long, requires = "mock_config")]
    pub test_case: Option<String>,
    /// The state machine of the mock config (needed when it has several).
    #[arg(long)]
    pub state_machine: Option<String>,
    /// Placeholder values, `Name=value` for `${Name}` (default: a Lambda ARN per placeholder).
    #[arg(long = "substitute", value_parser = parse_kv)]
    pub substitutions: Vec<(String, String)>,
    /// The execution name (also the execution ARN's last part).
    #[arg(long, default_value = "local-execution")]
    pub name: String,
    /// Print the execution (status, output, error, events) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Let Waits, backoffs and timeouts take real time (default: a virtual clock).
    #[arg(long)]
    pub real_time: bool,
    /// Also write the history events as JSON to this file (for `autoheal graph --history`).
    #[arg(long)]
    pub history_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[arg(long)]
    pub definition: PathBuf,
    /// History events: a JSON array, or the output of `autoheal asl run --json`.
    #[arg(long)]
    pub history: Option<PathBuf>,
    #[arg(long, default_value = "mermaid")]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not Name=value"))
}

/// What a command printed and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub code: u8,
}

/// A command that could not run: bad usage or unreadable input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("{}: cannot read: {e}", path.display())))
}

pub(crate) fn json_file(path: &Path) -> Result<Value, CliError> {
    serde_json::from_str(&read(path)?)
        .map_err(|e| CliError(format!("{}: not valid JSON: {e}", path.display())))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<Output, CliError> {
    match cli.command {
        Command::Validate(a) => Ok(validate_cmd(&a)),
        Command::Asl {
            command: AslCommand::Run(a),
        } => asl_run(&a),
        Command::Graph(a) => graph_cmd(&a),
        Command::Diagnose(a) => diagnose_cmd(&a),
        Command::Demo(a) => sim::demo_cmd(&a),
        Command::Simulate(a) => sim::simulate_cmd(&a),
        Command::Incidents { command } => incidents::incidents_cmd(&command),
        Command::Approve(a) => operate::approve_cmd(&a),
        Command::Deny(a) => operate::deny_cmd(&a),
        Command::Replay(a) => operate::replay_cmd(&a),
        Command::Worker(a) => operate::worker_cmd(&a),
        Command::Start(a) => operate::start_cmd(&a),
        Command::Invoke(a) => operate::invoke_cmd(&a),
    }
}

/// The default placeholder value: a Lambda ARN named after the placeholder.
fn default_substitutions(text: &str, region: &str, account: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else { break };
        let name = &after[..j];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            let base = name
                .strip_suffix("FunctionArn")
                .or_else(|| name.strip_suffix("Arn"))
                .unwrap_or(name);
            out.insert(
                name.to_owned(),
                format!("arn:aws:lambda:{region}:{account}:function:autoheal-{base}"),
            );
        }
        rest = &after[j..];
    }
    out
}

/// Loads a definition file, substituting placeholders.
pub fn load_definition(
    path: &Path,
    overrides: &[(String, String)],
) -> Result<StateMachine, CliError> {
    let text = read(path)?;
    let opts = RunOptions::default();
    let mut subs = default_substitutions(&text, &opts.region, &opts.account);
    subs.extend(overrides.iter().cloned());
    StateMachine::parse(&autoheal_asl::substitute(&text, &subs))
        .map_err(|e| CliError(format!("{}: {e}", path.display())))
}

fn validate_cmd(a: &ValidateArgs) -> Output {
    let mut out = String::new();
    let mut bad = 0usize;
    let defs = if a.definitions.is_empty() {
        vec![PathBuf::from("statemachine/autoheal.asl.json")]
    } else {
        a.definitions.clone()
    };
    for d in &defs {
        match load_definition(d, &[]) {
            Err(e) => {
                bad += 1;
                out.push_str(&format!("{e}\n"));
            }
            Ok(sm) => {
                let problems = validate(&sm);
                if problems.is_empty() {
                    out.push_str(&format!(
                        "ok       {} ({} states)\n",
                        d.display(),
                        count_states(&sm)
                    ));
                }
                for p in problems {
                    bad += 1;
                    out.push_str(&format!("{}: {p}\n", d.display()));
                }
            }
        }
    }
    let rules = match &a.rules {
        Some(p) => autoheal_core::RuleSet::load(p).map(|r| (p.display().to_string(), r)),
        None => autoheal_core::RuleSet::builtin().map(|r| {
            (
                "tasks/core/rules/diagnosis_rules.json (built in)".to_owned(),
                r,
            )
        }),
    };
    match rules {
        Ok((name, r)) => out.push_str(&format!("ok       {name} ({} rules)\n", r.rules.len())),
        Err(e) => {
            bad += 1;
            out.push_str(&format!("{e}\n"));
        }
    }
    for p in &a.policies {
        match autoheal_core::GlobalPolicy::load(p) {
            Ok(_) => out.push_str(&format!("ok       {}\n", p.display())),
            Err(e) => {
                bad += 1;
                out.push_str(&format!("{e}\n"));
            }
        }
    }
    for p in &a.scenarios {
        match autoheal_sim::Scenario::load(p) {
            Ok(s) => out.push_str(&format!(
                "ok       {} ({} faults, {} target groups, {} targets)\n",
                p.display(),
                s.faults.len(),
                s.fleet.target_groups.len(),
                s.targets()
            )),
            Err(e) => {
                bad += 1;
                out.push_str(&format!("{e}\n"));
            }
        }
    }
    if bad > 0 {
        out.push_str(&format!("{bad} problem(s)\n"));
    }
    Output {
        stdout: out,
        code: u8::from(bad > 0),
    }
}

fn count_states(sm: &StateMachine) -> usize {
    sm.states
        .iter()
        .map(|s| {
            1 + match &s.kind {
                autoheal_asl::definition::Kind::Map(m) => count_states(&m.processor),
                autoheal_asl::definition::Kind::Parallel(p) => {
                    p.branches.iter().map(count_states).sum()
                }
                _ => 0,
            }
        })
        .sum()
}

/// Runs an execution as `autoheal asl run` does and returns it.
pub fn execute(a: &RunArgs) -> Result<Execution, CliError> {
    let sm = load_definition(&a.definition, &a.substitutions)?;
    let problems = validate(&sm);
    if let Some(p) = problems.first() {
        return Err(CliError(format!(
            "{}: {p} ({} problem(s); run `autoheal validate --definition {}`)",
            a.definition.display(),
            problems.len(),
            a.definition.display()
        )));
    }
    let input = match &a.input {
        Some(p) => json_file(p)?,
        None => Value::Object(serde_json::Map::new()),
    };
    let config = match &a.mock_config {
        Some(p) => {
            MockConfig::parse(&read(p)?).map_err(|e| CliError(format!("{}: {e}", p.display())))?
        }
        None => MockConfig::parse(
            r#"{"StateMachines":{"none":{"TestCases":{"none":{}}}},"MockedResponses":{}}"#,
        )
        .map_err(|e| CliError(e.to_string()))?,
    };
    let case = a.test_case.as_deref().unwrap_or("none");
    let machine = if a.mock_config.is_some() {
        a.state_machine.as_deref()
    } else {
        Some("none")
    };
    let resources = config
        .test_case(machine, case)
        .map_err(|e| CliError(format!("mock config: {e}")))?;
    let opts = RunOptions {
        execution_name: a.name.clone(),
        state_machine_name: a.state_machine.clone().unwrap_or_else(|| {
            a.definition
                .file_stem()
                .and_then(|s| s.to_str())
                .map_or("StateMachine".to_owned(), |s| {
                    s.trim_end_matches(".asl").to_owned()
                })
        }),
        ..RunOptions::default()
    };
    autoheal_asl::run_blocking(
        &sm,
        &resources,
        input,
        opts,
        if a.real_time {
            autoheal_asl::Clock::RealTime
        } else {
            autoheal_asl::Clock::Virtual
        },
    )
    .map_err(|e| CliError(format!("cannot start the runtime: {e}")))
}

fn asl_run(a: &RunArgs) -> Result<Output, CliError> {
    let e = execute(a)?;
    if let Some(p) = &a.history_out {
        let text =
            serde_json::to_string_pretty(&e.events).map_err(|err| CliError(err.to_string()))?;
        std::fs::write(p, text + "\n")
            .map_err(|err| CliError(format!("{}: cannot write: {err}", p.display())))?;
    }
    let stdout = if a.json {
        serde_json::to_string_pretty(&e).map_err(|err| CliError(err.to_string()))? + "\n"
    } else {
        render_execution(
            &e,
            if a.real_time {
                "real time"
            } else {
                "virtual time"
            },
        )
    };
    Ok(Output {
        stdout,
        code: u8::from(e.status != Status::Succeeded),
    })
}

fn state_of(ev: &Event) -> String {
    if let Some(n) = ev.detail_str("name") {
        return n.to_owned();
    }
    if ev.kind == "TaskScheduled" {
        let resource = ev.detail_str("resource").unwrap_or_default();
        return resource.rsplit(':').next().unwrap_or(resource).to_owned();
    }
    match (ev.detail_str("error"), ev.detail_str("cause")) {
        (Some(e), Some(c)) => format!("{e}: {}", truncate(c, 90)),
        (Some(e), None) => e.to_owned(),
        _ => String::new(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// The execution as a person reads it: status, output, and the history.
pub fn render_execution(e: &Execution, clock: &str) -> String {
    let mut out = String::new();
    let status = match e.status {
        Status::Succeeded => "SUCCEEDED",
        Status::Failed => "FAILED",
        Status::TimedOut => "TIMED_OUT",
    };
    out.push_str(&format!("execution  {}\n", e.execution_arn));
    out.push_str(&format!(
        "status     {status} after {} ({clock})\n",
        human(e.duration_s)
    ));
    if let Some(err) = &e.error {
        out.push_str(&format!(
            "error      {err}\ncause      {}\n",
            e.cause.as_deref().unwrap_or_default()
        ));
    }
    if let Some(o) = &e.output {
        out.push_str(&format!("output     {}\n", truncate(&o.to_string(), 400)));
    }
    let retries = e.events.iter().filter(|x| x.kind == "TaskFailed").count();
    out.push_str(&format!(
        "history    {} events, {} task failures\n\n",
        e.events.len(),
        retries
    ));
    out.push_str(&format!(
        "{:>5}  {:>9}  {:<24} {}\n",
        "id", "time", "event", "state / detail"
    ));
    let start = e
        .events
        .first()
        .map(|x| x.timestamp.clone())
        .unwrap_or_default();
    let t0 = parse_ts(&start);
    for ev in &e.events {
        let dt = parse_ts(&ev.timestamp) - t0;
        out.push_str(&format!(
            "{:>5}  {:>9}  {:<24} {}\n",
            ev.id,
            format!("+{}", human(dt)),
            ev.kind,
            state_of(ev)
        ));
    }
    out
}

fn parse_ts(s: &str) -> f64 {
    autoheal_asl::choice::parse_timestamp(s).map_or(0.0, |t| t.unix_timestamp_nanos() as f64 / 1e9)
}

fn human(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// Reads history events from a JSON array or from `autoheal asl run --json` output.
pub fn load_events(path: &Path) -> Result<Vec<Event>, CliError> {
    let v = json_file(path)?;
    let events = match v {
        Value::Array(_) => v,
        Value::Object(mut m) => m
            .remove("events")
            .ok_or_else(|| CliError(format!("{}: no \"events\" field", path.display())))?,
        _ => {
            return Err(CliError(format!(
                "{}: expected an array of events",
                path.display()
            )));
        }
    };
    serde_json::from_value(events).map_err(|e| {
        CliError(format!(
            "{}: not a list of history events: {e}",
            path.display()
        ))
    })
}

fn graph_cmd(a: &GraphArgs) -> Result<Output, CliError> {
    let sm = load_definition(&a.definition, &[])?;
    let events = match &a.history {
        Some(p) => Some(load_events(p)?),
        None => None,
    };
    let title = a
        .definition
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("state machine");
    let text = graph::render(&sm, events.as_deref(), a.format, title);
    match &a.out {
        Some(p) => {
            std::fs::write(p, &text)
                .map_err(|e| CliError(format!("{}: cannot write: {e}", p.display())))?;
            Ok(Output {
                stdout: format!("wrote {}\n", p.display()),
                code: 0,
            })
        }
        None => Ok(Output {
            stdout: text,
            code: 0,
        }),
    }
}

fn enum_arg<T: serde::de::DeserializeOwned>(
    flag: &str,
    value: &str,
    accepted: &str,
) -> Result<T, CliError> {
    serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
        CliError(format!(
            "--{flag} {value:?} is not valid: use one of {accepted}"
        ))
    })
}

/// Classifies one host from its raw outputs, as the Diagnose task does.
pub fn diagnose_cmd(a: &DiagnoseArgs) -> Result<Output, CliError> {
    use autoheal_core::facts::Observation;
    use autoheal_core::health::TargetHealth;
    use autoheal_core::observe::InstanceInfo;
    let text = match a.diagnostics.as_deref() {
        None => None,
        Some(p) if p == Path::new("-") => {
            let mut buf = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                .map_err(|e| CliError(format!("standard input: {e}")))?;
            Some(buf)
        }
        Some(p) => Some(read(p)?),
    };
    let (diagnostics, diagnostics_error) =
        match text.as_deref().map(autoheal_core::parse_diagnostics) {
            None => (None, None),
            Some(Ok(d)) => (Some(d), None),
            Some(Err(e)) => (None, Some(e.to_string())),
        };
    let instance = autoheal_core::InstanceId::parse("i-00000000000000000")
        .map_err(|e| CliError(e.to_string()))?;
    let state = autoheal_core::HealthState::parse(&a.elb_state)
        .map_err(|e| CliError(format!("--elb-state: {e}")))?;
    let checks = "ok, impaired, insufficient-data, not-applicable, initializing";
    let obs = Observation {
        target: TargetHealth {
            instance: instance.clone(),
            port: 80,
            state,
            reason: a.elb_reason.clone().map(autoheal_core::ReasonCode::from),
            description: None,
            anomaly: None,
        },
        instance: Some(InstanceInfo {
            instance,
            state: autoheal_core::observe::InstanceState::Running,
            instance_status: enum_arg("instance-status", &a.instance_status, checks)?,
            system_status: enum_arg("system-status", &a.system_status, checks)?,
            tags: BTreeMap::new(),
            asg: None,
            launched_at: None,
        }),
        command: Some(enum_arg(
            "ssm-command",
            &a.ssm_command,
            "pending, in_progress, delayed, success, failed, cancelled, timed_out, delivery_timed_out, undeliverable",
        )?),
        agent: Some(enum_arg(
            "agent",
            &a.agent,
            "online, connection_lost, inactive, not_registered",
        )?),
        diagnostics,
        diagnostics_error: diagnostics_error.clone(),
    };
    let rules = match &a.rules {
        Some(p) => autoheal_core::RuleSet::load(p),
        None => autoheal_core::RuleSet::builtin(),
    }
    .map_err(|e| CliError(e.to_string()))?;
    let d = rules.diagnose(&obs);
    let stdout = if a.json {
        let mut v = serde_json::to_value(&d).map_err(|e| CliError(e.to_string()))?;
        if let (Some(obj), Some(err)) = (v.as_object_mut(), &diagnostics_error) {
            obj.insert("diagnostics_error".into(), Value::String(err.clone()));
        }
        serde_json::to_string_pretty(&v).map_err(|e| CliError(e.to_string()))? + "\n"
    } else {
        let mut out = format!("class       {}\n", d.class);
        out.push_str(&format!("confidence  {:.2}\n", d.confidence));
        out.push_str(&format!(
            "rule        {}\n",
            d.rule_id.as_deref().unwrap_or("(none matched)")
        ));
        out.push_str(&format!("summary     {}\n", d.summary));
        if let Some(err) = &diagnostics_error {
            out.push_str(&format!("output      rejected: {err}\n"));
        }
        for e in &d.evidence {
            out.push_str(&format!("evidence    {e}\n"));
        }
        for c in &d.candidates {
            out.push_str(&format!(
                "runner-up   {} ({}, {:.2})\n",
                c.class, c.rule_id, c.confidence
            ));
        }
        out
    };
    Ok(Output { stdout, code: 0 })
}
