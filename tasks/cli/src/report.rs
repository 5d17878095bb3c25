//! The demo's `report.html`: one self-contained page (inline CSS and SVG, no JavaScript, no
//! external resources) that compares autoheal with the `asg-replace` baseline over the built-in
//! scenarios: headline figures, time to restore, serving capacity over time, the incidents, and
//! the path the state machine took in the executions that acted.
//!
//! A pure renderer: it reads [`Simulation`]s and writes a string.

use std::fmt::Write as _;

use autoheal_asl::StateMachine;
use autoheal_asl::graph::{self, Format};
use autoheal_sim::scenario::FaultEvent;
use autoheal_sim::simulate::{ExecutionRun, IncidentOutcome, Summary};
use autoheal_sim::{Scenario, Simulation};

/// The colour of autoheal in charts (the CSS class `ah` uses the same).
const AUTOHEAL_COLOUR: &str = "#0f766e";
/// The colour of the asg-replace baseline in charts (the CSS class `bl` uses the same).
const BASELINE_COLOUR: &str = "#c2410c";
/// Rows of the baseline's table shown per scenario.
const BASELINE_ROWS: usize = 50;
/// Rows of autoheal's incident table shown per scenario.
const INCIDENT_ROWS: usize = 500;
/// Execution graphs shown per scenario.
const GRAPHS_PER_SCENARIO: usize = 6;
/// The states of `statemachine/autoheal.asl.json` that change a host.
const HEAL_STATES: [&str; 4] = [
    "Restart service",
    "Clean up disk",
    "Reboot instance",
    "Replace via Auto Scaling",
];
/// Width of every chart's view box.
const CHART_W: f64 = 960.0;

/// One built-in scenario run under both policies.
pub struct Pair<'a> {
    pub scenario: &'a Scenario,
    pub autoheal: &'a Simulation,
    /// The same scenario under the policy `asg-replace`.
    pub baseline: &'a Simulation,
}

/// The whole report as one HTML page.
pub fn render(pairs: &[Pair<'_>], sm: &StateMachine, generated_by: &str) -> String {
    let title = format!(
        "autoheal demo: {} scenario{}, autoheal vs asg-replace",
        pairs.len(),
        plural(pairs.len())
    );
    let mut body = String::with_capacity(1 << 16);
    intro(&mut body, &title, pairs, generated_by);
    headline(&mut body, pairs);
    mttr_chart(&mut body, pairs);
    for (si, p) in pairs.iter().enumerate() {
        scenario_section(&mut body, si, p, sm);
    }
    let mut out = String::with_capacity(body.len() + 8192);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", esc(&title));
    out.push_str("<style>\n");
    out.push_str(CSS);
    out.push_str(&graph_css(&graph::render(
        sm,
        None,
        Format::Html,
        "autoheal",
    )));
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    out.push_str(&body);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Page sections
// ---------------------------------------------------------------------------------------------

const INTRO: &str = "<p>Each scenario runs twice in a simulated AWS region (load balancers, \
target groups, Auto Scaling groups, EC2 and SSM) on a virtual clock, with the faults of the \
scenario file as ground truth. Under <b class=\"ah\">autoheal</b>, CloudWatch alarms and an \
EventBridge schedule start executions of the real state machine \
<code>statemachine/autoheal.asl.json</code>, whose Task states run the real task handlers: \
detect, diagnose over SSM, decide, drain, restart, clean up, reboot or replace, verify, record. \
Under <b class=\"bl\">asg-replace</b>, the baseline, an Auto Scaling group with ELB health checks \
replaces every instance the load balancer marks unhealthy once it is past the health-check grace \
period, with no diagnosis and no fleet guard. Times are minutes:seconds from the start of the \
scenario.</p>\n";

fn intro(out: &mut String, title: &str, pairs: &[Pair<'_>], generated_by: &str) {
    let _ = writeln!(out, "<h1>{}</h1>", esc(title));
    out.push_str(INTRO);
    let _ = writeln!(out, "<p class=\"small\">{}</p>", esc(generated_by));
    if pairs.is_empty() {
        return;
    }
    out.push_str("<nav class=\"toc\">Scenarios: ");
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(" · ");
        }
        let n = esc(&p.scenario.name);
        let _ = write!(out, "<a href=\"#{n}\">{n}</a>");
    }
    out.push_str("</nav>\n");
}

/// Sums of one policy's figures over all scenarios.
#[derive(Default)]
struct Totals {
    replacements: u64,
    restarts: u64,
    reboots: u64,
    fleet_heals: u64,
    lost: u64,
    blast: u64,
    right: u64,
    diagnosed: u64,
    mttrs: Vec<f64>,
}

impl Totals {
    fn of<'a>(sims: impl Iterator<Item = &'a Simulation>) -> Self {
        let mut t = Self::default();
        for s in sims {
            let m = &s.summary;
            t.replacements += u64::from(m.replacements);
            t.restarts += u64::from(m.restarts);
            t.reboots += u64::from(m.reboots);
            t.fleet_heals += u64::from(m.heals_during_fleet_faults);
            t.lost += m.capacity_lost_target_s;
            t.blast += u64::from(m.blast_radius_violations);
            t.right += u64::from(m.diagnosed_right);
            t.diagnosed += u64::from(m.diagnosed);
            t.mttrs.extend(m.mttr_median_s);
        }
        t
    }
}

fn headline(out: &mut String, pairs: &[Pair<'_>]) {
    let a = Totals::of(pairs.iter().map(|p| p.autoheal));
    let b = Totals::of(pairs.iter().map(|p| p.baseline));
    out.push_str("<h2 id=\"headline\">Headline figures</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"small\">Totals over all {} scenario{}; MTTR is the median of the per-scenario medians. Bold marks the better value where lower or higher is better.</p>",
        pairs.len(),
        plural(pairs.len())
    );
    figures_head(out);
    let counts = [
        (
            "replacements",
            Better::Neither,
            a.replacements,
            b.replacements,
        ),
        ("service restarts", Better::Neither, a.restarts, b.restarts),
        ("reboots", Better::Neither, a.reboots, b.reboots),
        (
            "heals during fleet faults",
            Better::Lower,
            a.fleet_heals,
            b.fleet_heals,
        ),
        ("capacity lost (target·s)", Better::Lower, a.lost, b.lost),
        ("blast-radius violations", Better::Lower, a.blast, b.blast),
    ];
    for (label, better, x, y) in counts {
        row(out, label, better, Some(x as f64), Some(y as f64), count);
    }
    row(
        out,
        "MTTR (median of scenario medians)",
        Better::Lower,
        median(a.mttrs),
        median(b.mttrs),
        secs,
    );
    text_row(out, "diagnosis accuracy", &accuracy(a.right, a.diagnosed));
    out.push_str("</tbody></table>\n");
    out.push_str(GLOSSARY);
}

const GLOSSARY: &str = "<details class=\"glossary\"><summary>What the figures mean</summary><dl>\n\
<dt>MTTR</dt><dd>Seconds from a host fault to its target group serving all its targets again \
(median and 95th percentile over the scenario's host faults).</dd>\n\
<dt>overhead</dt><dd>Time to restore minus the load balancer's own floor ((unhealthy + healthy \
threshold) × health-check interval), over service-level faults: the time the healing itself \
took.</dd>\n\
<dt>replacements, restarts, reboots</dt><dd>Instances terminated to be replaced, service \
restarts over SSM, instance reboots.</dd>\n\
<dt>heals during fleet faults</dt><dd>Heals made while an overload or a dependency outage was on \
the group: they cannot help and cost capacity.</dd>\n\
<dt>capacity lost</dt><dd>Targets not serving × seconds, summed over the scenario \
(target·s).</dd>\n\
<dt>blast-radius violations</dt><dd>Heal calls made while more heals than the policy's \
<code>max_concurrent_heals</code> were open in the same group.</dd>\n\
<dt>diagnosis accuracy</dt><dd>Faults whose diagnosed (or decided) class matched the fault \
model, of the faults diagnosed.</dd>\n\
</dl></details>\n";

fn mttr_chart(out: &mut String, pairs: &[Pair<'_>]) {
    out.push_str("<h2 id=\"mttr\">Time to restore per scenario (median)</h2>\n");
    let rows: Vec<(&str, Option<f64>, Option<f64>)> = pairs
        .iter()
        .map(|p| {
            (
                p.scenario.name.as_str(),
                p.autoheal.summary.mttr_median_s,
                p.baseline.summary.mttr_median_s,
            )
        })
        .filter(|(_, a, b)| a.is_some() || b.is_some())
        .collect();
    if rows.is_empty() {
        out.push_str("<p>No host fault was restored under either policy.</p>\n");
        return;
    }
    policy_legend(out, "");
    let max = rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .flatten()
        .fold(1.0_f64, f64::max);
    let step = nice_step(max / 5.0).max(1.0);
    const LABEL: f64 = 200.0;
    const ROW: f64 = 34.0;
    const BAR: f64 = 12.0;
    const HEAD: f64 = 24.0;
    let f = Frame {
        left: LABEL,
        top: HEAD,
        w: CHART_W - LABEL - 80.0,
        h: ROW * rows.len() as f64,
        x_max: (max / step).ceil() * step,
        y_max: 1.0,
    };
    let height = HEAD + f.h + 8.0;
    let _ = writeln!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {height}\" role=\"img\" aria-label=\"median time to restore per scenario\">"
    );
    let ticks = (f.x_max / step).round() as usize;
    for k in 0..=ticks {
        let v = k as f64 * step;
        let x = f.x(v);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            HEAD - 4.0,
            HEAD + f.h,
            HEAD - 9.0,
            secs(v)
        );
    }
    for (i, (name, a, b)) in rows.iter().enumerate() {
        let y = HEAD + ROW * i as f64 + 4.0;
        let n = esc(name);
        let _ = writeln!(
            out,
            "<a href=\"#{n}\"><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{n}</text></a>",
            LABEL - 10.0,
            y + BAR + 4.0
        );
        hbar(out, &f, y, BAR, *a, AUTOHEAL_COLOUR, "autoheal");
        hbar(
            out,
            &f,
            y + BAR + 2.0,
            BAR,
            *b,
            BASELINE_COLOUR,
            "asg-replace",
        );
    }
    out.push_str("</svg>\n<p class=\"small\">Median seconds from a host fault to its group serving all targets again. n/a: no host fault restored under that policy; scenarios with neither are left out.</p>\n");
}

fn hbar(out: &mut String, f: &Frame, y: f64, bar: f64, v: Option<f64>, colour: &str, who: &str) {
    let text_y = y + bar - 2.0;
    match v {
        Some(v) => {
            let w = (f.x(v) - f.left).max(1.0);
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar:.1}\" rx=\"2\" fill=\"{colour}\"><title>{who}: {}</title></rect><text x=\"{:.1}\" y=\"{text_y:.1}\">{}</text>",
                f.left,
                secs(v),
                f.left + w + 5.0,
                secs(v)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "<text class=\"na\" x=\"{:.1}\" y=\"{text_y:.1}\">n/a ({who})</text>",
                f.left + 5.0
            );
        }
    }
}

fn scenario_section(out: &mut String, si: usize, p: &Pair<'_>, sm: &StateMachine) {
    let name = esc(&p.scenario.name);
    let _ = writeln!(out, "<section id=\"{name}\">\n<h2>{name}</h2>");
    if let Some(d) = &p.scenario.description {
        let _ = writeln!(out, "<p class=\"desc\">{}</p>", esc(d));
    }
    facts(out, p);
    figures_head(out);
    summary_rows(out, &p.autoheal.summary, &p.baseline.summary);
    out.push_str("</tbody></table>\n");
    capacity(out, p);
    out.push_str("<h3><span class=\"ah\">autoheal</span> incidents</h3>\n");
    if p.autoheal.incidents.is_empty() {
        out.push_str("<p>No incident recorded and no fault left unhandled.</p>\n");
    } else {
        incidents_table(out, &p.autoheal.incidents, INCIDENT_ROWS);
    }
    baseline_rows(out, &p.baseline.incidents);
    executions(out, si, p.autoheal, sm);
    out.push_str("</section>\n");
}

fn facts(out: &mut String, p: &Pair<'_>) {
    let s = p.scenario;
    let groups = &s.fleet.target_groups;
    let fleet = if groups.len() <= 6 {
        groups
            .iter()
            .map(|g| format!("{} ({})", esc(&g.name), g.instances))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!("{} target groups", groups.len())
    };
    let m = &p.autoheal.summary;
    let _ = writeln!(
        out,
        "<p class=\"small\">{} min · {} targets in {fleet} · {} fault{} · autoheal ran {} execution{} ({} start{} deduplicated)</p>",
        s.duration_s / 60,
        thousands(s.targets()),
        s.faults.len(),
        plural(s.faults.len()),
        m.executions,
        plural(m.executions as usize),
        m.starts_deduplicated,
        plural(m.starts_deduplicated as usize)
    );
}

/// One figure of a scenario's table.
struct Metric {
    label: &'static str,
    better: Better,
    value: fn(&Summary) -> Option<f64>,
    show: fn(f64) -> String,
    /// The baseline has no such figure (it runs no executions and diagnoses nothing).
    autoheal_only: bool,
}

const SCENARIO_METRICS: &[Metric] = &[
    Metric {
        label: "MTTR median",
        better: Better::Lower,
        value: |s| s.mttr_median_s,
        show: secs,
        autoheal_only: false,
    },
    Metric {
        label: "MTTR p95",
        better: Better::Lower,
        value: |s| s.mttr_p95_s,
        show: secs,
        autoheal_only: false,
    },
    Metric {
        label: "overhead over the load balancer's floor (median)",
        better: Better::Lower,
        value: |s| s.overhead_median_s,
        show: secs,
        autoheal_only: false,
    },
    Metric {
        label: "replacements",
        better: Better::Neither,
        value: |s| Some(f64::from(s.replacements)),
        show: count,
        autoheal_only: false,
    },
    Metric {
        label: "service restarts",
        better: Better::Neither,
        value: |s| Some(f64::from(s.restarts)),
        show: count,
        autoheal_only: false,
    },
    Metric {
        label: "reboots",
        better: Better::Neither,
        value: |s| Some(f64::from(s.reboots)),
        show: count,
        autoheal_only: false,
    },
    Metric {
        label: "heals during fleet faults",
        better: Better::Lower,
        value: |s| Some(f64::from(s.heals_during_fleet_faults)),
        show: count,
        autoheal_only: false,
    },
    Metric {
        label: "capacity lost (target·s)",
        better: Better::Lower,
        value: |s| Some(s.capacity_lost_target_s as f64),
        show: count,
        autoheal_only: false,
    },
    Metric {
        label: "lowest serving ratio",
        better: Better::Higher,
        value: |s| Some(s.min_healthy_ratio),
        show: percent,
        autoheal_only: false,
    },
    Metric {
        label: "blast-radius violations",
        better: Better::Lower,
        value: |s| Some(f64::from(s.blast_radius_violations)),
        show: count,
        autoheal_only: false,
    },
    Metric {
        label: "incidents recorded",
        better: Better::Neither,
        value: |s| Some(f64::from(s.incidents)),
        show: count,
        autoheal_only: true,
    },
    Metric {
        label: "fleet faults held back",
        better: Better::Neither,
        value: |s| Some(f64::from(s.held_back)),
        show: count,
        autoheal_only: true,
    },
];

fn summary_rows(out: &mut String, a: &Summary, b: &Summary) {
    for m in SCENARIO_METRICS {
        let baseline = if m.autoheal_only { None } else { (m.value)(b) };
        row(out, m.label, m.better, (m.value)(a), baseline, m.show);
    }
    let (right, of) = (u64::from(a.diagnosed_right), u64::from(a.diagnosed));
    text_row(out, "diagnosis accuracy", &accuracy(right, of));
}

fn capacity(out: &mut String, p: &Pair<'_>) {
    let a = serving_total(p.autoheal);
    let b = serving_total(p.baseline);
    let peak = |s: &[(u64, u64)]| s.iter().map(|x| x.1).max().unwrap_or(0);
    let last = |s: &[(u64, u64)]| s.last().map_or(0, |x| x.0);
    let size = p.scenario.targets().max(peak(&a)).max(peak(&b)).max(1);
    let end = p.scenario.duration_s.max(last(&a)).max(last(&b)).max(1);
    out.push_str("<h3>Serving targets over time</h3>\n");
    policy_legend(
        out,
        "<span><i class=\"fault-key\"></i>fault injected</span><span><i style=\"background:#fef3c7;border-color:#f59e0b\"></i>fleet-wide fault</span><span><i style=\"background:#f3f4f6;border-color:#d1d5db\"></i>after the scenario's end</span>",
    );
    let f = Frame {
        left: 52.0,
        top: 12.0,
        w: CHART_W - 52.0 - 20.0,
        h: 200.0,
        x_max: end as f64,
        y_max: size as f64,
    };
    let _ = writeln!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {:.0}\" role=\"img\" aria-label=\"serving targets over time\">",
        f.top + f.h + 36.0
    );
    windows(out, &f, p.scenario);
    y_axis(out, &f);
    x_axis(out, &f);
    let _ = writeln!(
        out,
        "<path d=\"{}\" fill=\"none\" stroke=\"{BASELINE_COLOUR}\" stroke-width=\"3\" stroke-opacity=\"0.8\" stroke-linejoin=\"round\"><title>asg-replace</title></path>",
        step_path(&f, &b)
    );
    let _ = writeln!(
        out,
        "<path d=\"{}\" fill=\"none\" stroke=\"{AUTOHEAL_COLOUR}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"><title>autoheal</title></path>",
        step_path(&f, &a)
    );
    fault_marks(out, &f, p.scenario);
    out.push_str("</svg>\n");
    let low = |s: &[(u64, u64)]| {
        s.iter().min_by_key(|x| (x.1, x.0)).map_or_else(
            || "no samples".to_owned(),
            |&(t, v)| format!("{} of {} at {}", thousands(v), thousands(size), mmss(t)),
        )
    };
    let _ = writeln!(
        out,
        "<p class=\"small\">Lowest: <span class=\"ah\">autoheal {}</span> · <span class=\"bl\">asg-replace {}</span>. Hover a marker for the fault's target.</p>",
        low(&a),
        low(&b)
    );
}

fn baseline_rows(out: &mut String, rows: &[IncidentOutcome]) {
    if rows.is_empty() {
        out.push_str("<p><span class=\"bl\">asg-replace</span> replaced nothing and left no fault unhandled.</p>\n");
        return;
    }
    let replaced = rows.iter().filter(|r| r.outcome == "replaced").count();
    let _ = writeln!(
        out,
        "<details><summary><span class=\"bl\">asg-replace</span>: {} row{}, {} replacement{}{}</summary>",
        rows.len(),
        plural(rows.len()),
        replaced,
        plural(replaced),
        if rows.len() > BASELINE_ROWS {
            format!(" (first {BASELINE_ROWS} shown)")
        } else {
            String::new()
        }
    );
    incidents_table(out, rows, BASELINE_ROWS);
    out.push_str("</details>\n");
}

fn incidents_table(out: &mut String, rows: &[IncidentOutcome], limit: usize) {
    out.push_str("<div class=\"wrap\"><table class=\"incidents\"><thead><tr><th>target group</th><th>instance</th><th>fault</th><th class=\"num\">fault at</th><th class=\"num\">detected at</th><th>diagnosis</th><th>action</th><th>outcome</th><th class=\"num\">time to restore</th><th>reason</th></tr></thead>\n<tbody>\n");
    for r in rows.iter().take(limit) {
        incident_row(out, r);
    }
    out.push_str("</tbody></table></div>\n");
    if rows.len() > limit {
        let more = rows.len() - limit;
        let _ = writeln!(
            out,
            "<p class=\"small\">{more} more row{} not shown.</p>",
            plural(more)
        );
    }
}

fn incident_row(out: &mut String, r: &IncidentOutcome) {
    let tip: Vec<String> = [
        r.incident_id.as_deref().map(|i| format!("incident {i}")),
        r.execution.as_deref().map(|e| format!("execution {e}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let title = if tip.is_empty() {
        String::new()
    } else {
        format!(" title=\"{}\"", esc(&tip.join(" · ")))
    };
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td class=\"mono\"{title}>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><span class=\"o {}\">{}</span></td><td class=\"num\">{}</td><td class=\"reason\">{}</td></tr>",
        esc(&r.target_group),
        esc(&r.instance),
        esc(&r.fault),
        opt_mmss(r.fault_at_s),
        opt_mmss(r.detected_at_s),
        diagnosis_cell(r),
        esc(&r.action),
        outcome_class(&r.outcome),
        esc(&r.outcome),
        r.time_to_restore_s
            .map_or_else(na, |v| format!("{} s", thousands(v))),
        opt_text(r.reason.as_deref())
    );
}

/// The diagnosed class, and the class the decision acted on when that differs.
fn diagnosis_cell(r: &IncidentOutcome) -> String {
    match (r.diagnosis.as_deref(), r.class.as_deref()) {
        (Some(d), Some(c)) if d != c => {
            let (d, c) = (esc(d), esc(c));
            format!("<span title=\"diagnosed {d}; the decision acted on {c}\">{d} → {c}</span>")
        }
        (d, c) => opt_text(d.or(c)),
    }
}

fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "healed" => "o-good",
        "held" | "observed" | "no_action" => "o-hold",
        "escalated" | "failed" | "missed" | "open" | "healed-during-fleet-fault" => "o-bad",
        "replaced" => "o-repl",
        _ => "o-other",
    }
}

// ---------------------------------------------------------------------------------------------
// Execution graphs
// ---------------------------------------------------------------------------------------------

fn has_heal(run: &ExecutionRun) -> bool {
    run.history.iter().any(|e| {
        e.kind == "TaskStateEntered"
            && e.detail_str("name")
                .is_some_and(|n| HEAL_STATES.contains(&n))
    })
}

fn executions(out: &mut String, si: usize, sim: &Simulation, sm: &StateMachine) {
    out.push_str("<h3><span class=\"ah\">autoheal</span> executions</h3>\n");
    let acted: Vec<&ExecutionRun> = sim
        .executions
        .iter()
        .filter(|r| !r.incidents.is_empty() && !r.history.is_empty())
        .collect();
    if acted.is_empty() {
        out.push_str("<p>No execution with a kept history recorded an incident.</p>\n");
        return;
    }
    let mut chosen: Vec<&ExecutionRun> = acted
        .iter()
        .copied()
        .filter(|r| has_heal(r))
        .take(GRAPHS_PER_SCENARIO)
        .collect();
    let room = GRAPHS_PER_SCENARIO - chosen.len();
    chosen.extend(acted.iter().copied().filter(|r| !has_heal(r)).take(room));
    chosen.sort_by(|a, b| (a.started_at_s, &a.name).cmp(&(b.started_at_s, &b.name)));
    let omitted = acted.len() - chosen.len();
    let _ = writeln!(
        out,
        "<p class=\"small\">{} of {} execution{} recorded incidents. Open one to see the path it took through the state machine{}.</p>",
        acted.len(),
        sim.executions.len(),
        plural(sim.executions.len()),
        if omitted > 0 {
            format!(
                "; {} shown, those that healed first, {omitted} more omitted",
                chosen.len()
            )
        } else {
            String::new()
        }
    );
    for (ei, run) in chosen.iter().enumerate() {
        execution_details(out, &format!("{si}-{ei}"), run, sm);
    }
}

fn execution_details(out: &mut String, suffix: &str, run: &ExecutionRun, sm: &StateMachine) {
    let _ = writeln!(
        out,
        "<details class=\"exec\"><summary>execution {} ({}, {}, started {})</summary>",
        esc(&run.name),
        esc(&run.status),
        esc(&run.trigger),
        mmss(run.started_at_s)
    );
    let _ = writeln!(
        out,
        "<p class=\"small\">target group {} · ended {} · {} state transitions · {} events · verdict {} · incidents {}</p>",
        esc(&run.target_group),
        mmss(run.ended_at_s),
        run.state_transitions,
        run.events,
        opt_text(run.verdict.as_deref()),
        esc(&run.incidents.join(", "))
    );
    let page = graph::render(sm, Some(run.history.as_slice()), Format::Html, &run.name);
    match embed(&page, suffix) {
        Some(g) => out.push_str(&g),
        None => out.push_str("<p>The graph could not be drawn.</p>"),
    }
    out.push_str("\n</details>\n");
}

/// The legend and the `<div class="graph">…</div>` of a page of [`graph::render`], with the
/// SVG's marker ids made unique by `suffix` (several graphs share one page; a `url(#id)` takes
/// the first element of that id in the document, which may sit in a closed `<details>`).
fn embed(page: &str, suffix: &str) -> Option<String> {
    let svg = between(page, "<div class=\"graph\">", "</svg></div>")?
        .replace("url(#ah-catch)", &format!("url(#ah-catch-{suffix})"))
        .replace("url(#ah)", &format!("url(#ah-{suffix})"))
        .replace("id=\"ah-catch\"", &format!("id=\"ah-catch-{suffix}\""))
        .replace("id=\"ah\"", &format!("id=\"ah-{suffix}\""));
    let legend = between(page, "<div class=\"legend\">", "</div>").unwrap_or_default();
    Some(format!("{legend}\n{svg}"))
}

/// The graph page's CSS for the SVG, every selector scoped under `.graph` so it cannot touch
/// the report; page-level rules (body, headings, legend, events table) are left out.
fn graph_css(page: &str) -> String {
    let Some(css) = between(page, "<style>", "</style>")
        .and_then(|s| s.strip_prefix("<style>"))
        .and_then(|s| s.strip_suffix("</style>"))
    else {
        return String::new();
    };
    let mut out = String::new();
    for rule in css.split('}') {
        let Some((selectors, decls)) = rule.split_once('{') else {
            continue;
        };
        let scoped: Vec<String> = selectors
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && graph_selector(s))
            .map(|s| {
                if s.starts_with(".graph") {
                    s.to_owned()
                } else {
                    format!(".graph {s}")
                }
            })
            .collect();
        if !scoped.is_empty() {
            let _ = writeln!(out, "{}{{{}}}", scoped.join(","), decls.trim());
        }
    }
    out
}

fn graph_selector(s: &str) -> bool {
    !(s == "*"
        || s == "body"
        || s.starts_with("h1")
        || s.starts_with("h2")
        || s.starts_with(".meta")
        || s.starts_with(".legend")
        || s.contains("events"))
}

/// The first `open…close` in `s`, both included.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)?;
    let rest = s.get(start..)?;
    let end = rest.find(close)? + close.len();
    rest.get(..end)
}

// ---------------------------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------------------------

/// A plot area in view-box units and the data range it shows (both from 0).
struct Frame {
    left: f64,
    top: f64,
    w: f64,
    h: f64,
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.left + self.w * v / self.x_max
    }

    fn y(&self, v: f64) -> f64 {
        self.top + self.h * (1.0 - v / self.y_max)
    }

    fn bottom(&self) -> f64 {
        self.top + self.h
    }
}

fn policy_legend(out: &mut String, extra: &str) {
    let _ = writeln!(
        out,
        "<div class=\"legend\"><span><i style=\"background:{AUTOHEAL_COLOUR};border-color:{AUTOHEAL_COLOUR}\"></i>autoheal</span><span><i style=\"background:{BASELINE_COLOUR};border-color:{BASELINE_COLOUR}\"></i>asg-replace (baseline)</span>{extra}</div>"
    );
}

/// Total serving targets per sample: `(t_s, serving)`.
fn serving_total(sim: &Simulation) -> Vec<(u64, u64)> {
    sim.timeline
        .iter()
        .map(|s| (s.t_s, s.serving.iter().map(|&v| u64::from(v)).sum()))
        .collect()
}

/// A step line through the samples (capacity changes in whole targets).
fn step_path(f: &Frame, series: &[(u64, u64)]) -> String {
    let mut d = String::new();
    let mut prev: Option<u64> = None;
    for &(t, v) in series {
        let (x, y) = (f.x(t as f64), f.y(v as f64));
        match prev {
            None => {
                let _ = write!(d, "M{x:.1} {y:.1}");
            }
            Some(p) if p != v => {
                let _ = write!(d, "L{x:.1} {:.1}L{x:.1} {y:.1}", f.y(p as f64));
            }
            Some(_) => {}
        }
        prev = Some(v);
    }
    if let (Some(&(t, _)), Some(p)) = (series.last(), prev) {
        let _ = write!(d, "L{:.1} {:.1}", f.x(t as f64), f.y(p as f64));
    }
    d
}

/// Shaded spans: fleet-wide faults, and the time after the scenario's end.
fn windows(out: &mut String, f: &Frame, s: &Scenario) {
    let end = s.duration_s as f64;
    if end < f.x_max {
        let x = f.x(end);
        let _ = writeln!(
            out,
            "<rect class=\"after\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>after the scenario's end: executions finishing</title></rect>",
            f.top,
            f.x(f.x_max) - x,
            f.h
        );
    }
    for fe in s.faults.iter().filter(|fe| fe.kind.is_fleet_wide()) {
        let Some(d) = fe.duration_s else {
            continue;
        };
        let x0 = f.x(fe.at_s as f64);
        let x1 = f.x((fe.at_s.saturating_add(d) as f64).min(f.x_max));
        let _ = writeln!(
            out,
            "<rect class=\"band\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            f.top,
            (x1 - x0).max(1.0),
            f.h,
            esc(&format!(
                "{} on {} from {} to {}",
                fe.kind.as_str(),
                fe.target_group,
                mmss(fe.at_s),
                mmss(fe.at_s.saturating_add(d))
            ))
        );
    }
}

fn y_axis(out: &mut String, f: &Frame) {
    let step = nice_step(f.y_max / 4.0).max(1.0);
    let mut ticks: Vec<f64> = (0_u32..)
        .map(|k| f64::from(k) * step)
        .take_while(|v| *v < f.y_max)
        .collect();
    ticks.push(f.y_max);
    for v in ticks {
        let y = f.y(v);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            f.left,
            f.left + f.w,
            f.left - 6.0,
            y + 4.0,
            thousands(v.round() as u64)
        );
    }
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{l:.1}\" y1=\"{:.1}\" x2=\"{l:.1}\" y2=\"{b:.1}\"/><line class=\"axis\" x1=\"{l:.1}\" y1=\"{b:.1}\" x2=\"{:.1}\" y2=\"{b:.1}\"/>",
        f.top,
        f.left + f.w,
        l = f.left,
        b = f.bottom()
    );
}

fn x_axis(out: &mut String, f: &Frame) {
    let minutes = f.x_max / 60.0;
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 240.0, 360.0, 720.0, 1440.0,
    ]
    .into_iter()
    .find(|s| minutes / *s <= 10.0)
    .unwrap_or(2880.0);
    let b = f.bottom();
    for k in 0..=(minutes / step).floor() as u32 {
        let m = f64::from(k) * step;
        let x = f.x(m * 60.0);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{b:.1}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{m:.0}</text>",
            f.top,
            b + 15.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">minutes</text>",
        f.left + f.w,
        b + 31.0
    );
}

/// A dashed line at each fault, labelled with its kind (labels pushed apart when close).
fn fault_marks(out: &mut String, f: &Frame, s: &Scenario) {
    let mut faults: Vec<&FaultEvent> = s.faults.iter().collect();
    faults.sort_by_key(|fe| fe.at_s);
    let b = f.bottom();
    let mut free = f64::NEG_INFINITY;
    for fe in faults {
        let x = f.x(fe.at_s as f64);
        let lx = x.max(free);
        free = lx + 13.0;
        let place = match fe.instance {
            Some(i) => format!("{}[{i}]", fe.target_group),
            None => fe.target_group.clone(),
        };
        let tip = esc(&format!(
            "{} on {place} at {}",
            fe.kind.as_str(),
            mmss(fe.at_s)
        ));
        let _ = writeln!(
            out,
            "<line class=\"fault\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{b:.1}\"><title>{tip}</title></line><text class=\"flabel\" transform=\"translate({:.1},{:.1}) rotate(-90)\"><title>{tip}</title>{}</text>",
            f.top,
            lx + 12.0,
            b - 6.0,
            esc(fe.kind.as_str())
        );
    }
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10_f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

// ---------------------------------------------------------------------------------------------
// Tables and formatting
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
    Neither,
}

fn figures_head(out: &mut String) {
    out.push_str("<table class=\"figures\"><thead><tr><th></th><th class=\"num ah\">autoheal</th><th class=\"num bl\">asg-replace</th></tr></thead>\n<tbody>\n");
}

/// A row of the figures table; the better value is bold when `better` says which is.
fn row(
    out: &mut String,
    label: &str,
    better: Better,
    a: Option<f64>,
    b: Option<f64>,
    show: fn(f64) -> String,
) {
    let (wa, wb) = match (a, b, better) {
        (Some(x), Some(y), Better::Lower) => (x < y, y < x),
        (Some(x), Some(y), Better::Higher) => (x > y, y > x),
        _ => (false, false),
    };
    let _ = writeln!(
        out,
        "<tr><th scope=\"row\">{}</th>{}{}</tr>",
        esc(label),
        cell(a, wa, show),
        cell(b, wb, show)
    );
}

/// A row whose autoheal value is text and which the baseline does not have.
fn text_row(out: &mut String, label: &str, autoheal: &str) {
    let _ = writeln!(
        out,
        "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num na\">—</td></tr>",
        esc(label),
        esc(autoheal)
    );
}

fn cell(v: Option<f64>, win: bool, show: fn(f64) -> String) -> String {
    match v {
        Some(x) => format!(
            "<td class=\"num{}\">{}</td>",
            if win { " win" } else { "" },
            show(x)
        ),
        None => "<td class=\"num na\">—</td>".to_owned(),
    }
}

fn accuracy(right: u64, of: u64) -> String {
    if of == 0 {
        return "—".to_owned();
    }
    format!(
        "{:.0} % ({right} of {of})",
        right as f64 * 100.0 / of as f64
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

fn count(v: f64) -> String {
    thousands(v.round().max(0.0) as u64)
}

fn secs(v: f64) -> String {
    format!("{} s", count(v))
}

fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds from the scenario's start as `m:ss`.
fn mmss(s: u64) -> String {
    format!("{}:{:02}", s / 60, s % 60)
}

fn na() -> String {
    "<span class=\"na\">—</span>".to_owned()
}

fn opt_mmss(s: Option<u64>) -> String {
    s.map_or_else(na, mmss)
}

fn opt_text(s: Option<&str>) -> String {
    s.map_or_else(na, esc)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Escapes text for HTML content and attribute values (the graph renderer's own).
fn esc(s: &str) -> String {
    autoheal_asl::graph::esc(s)
}

/// The report's own CSS. `.ah` and `.bl` use [`AUTOHEAL_COLOUR`] and [`BASELINE_COLOUR`].
const CSS: &str = r#"*{box-sizing:border-box}
body{margin:0;background:#f1f5f9;color:#1f2937;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:28px 32px 56px;background:#fff;min-height:100vh}
h1{font-size:24px;font-weight:650;margin:0 0 10px}
h2{font-size:19px;font-weight:650;margin:40px 0 8px;padding-top:14px;border-top:1px solid #e5e7eb}
h3{font-size:15px;font-weight:600;margin:22px 0 6px}
p{margin:6px 0 10px;max-width:100ch}
a{color:#1d4ed8;text-decoration:none}
a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.small{font-size:12.5px;color:#4b5563}
.desc{color:#374151}
.toc{font-size:13px;line-height:1.9;margin:10px 0}
.ah{color:#0f766e}
.bl{color:#c2410c}
b.ah,b.bl{font-weight:650}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border:1px solid #e5e7eb;padding:4px 10px;text-align:left;vertical-align:top}
thead th{background:#f8fafc;font-weight:600;color:#374151}
tbody th{font-weight:500;color:#374151;background:#fcfcfd}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.ah{border-top:3px solid #0f766e}
th.bl{border-top:3px solid #c2410c}
table.figures td{min-width:110px}
td.win{font-weight:700}
.na{color:#9ca3af}
.wrap{overflow-x:auto}
table.incidents{width:100%;font-size:12.5px}
table.incidents td{white-space:nowrap}
table.incidents td.reason{white-space:normal;min-width:240px;color:#374151}
.o{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;white-space:nowrap}
.o-good{background:#d1fae5;color:#065f46}
.o-hold{background:#dbeafe;color:#1e40af}
.o-bad{background:#fee2e2;color:#991b1b}
.o-repl{background:#ffedd5;color:#9a3412}
.o-other{background:#f3f4f6;color:#374151}
.legend{display:flex;flex-wrap:wrap;gap:18px;margin:6px 0 8px;font-size:13px;color:#374151}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:14px;height:14px;border-radius:3px;border:1.5px solid}
.legend i.fault-key{width:0;height:14px;border:0;border-left:1.5px dashed #6b7280;border-radius:0}
svg.chart{display:block;width:100%;height:auto;max-width:1000px;margin:4px 0}
svg.chart text{font-family:inherit;font-size:11px;fill:#374151}
svg.chart .na{fill:#9ca3af}
.chart .grid{stroke:#eef0f3;stroke-width:1}
.chart .axis{stroke:#9ca3af;stroke-width:1}
.chart .fault{stroke:#6b7280;stroke-width:1.2;stroke-dasharray:4 3}
.chart .flabel{font-size:10.5px;fill:#4b5563;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.chart .band{fill:#fef3c7;opacity:.7}
.chart .after{fill:#f3f4f6}
details{margin:8px 0;border:1px solid #e5e7eb;border-radius:8px;padding:6px 12px;background:#fff}
details>summary{cursor:pointer;font-weight:600;color:#374151}
details[open]>summary{margin-bottom:6px}
details.exec>summary{font-weight:500;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.glossary dl{margin:4px 0;font-size:13px}
.glossary dt{font-weight:600;margin-top:6px}
.glossary dd{margin:0 0 0 16px;color:#374151}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use autoheal_asl::Event;
    use autoheal_sim::PolicyKind;
    use autoheal_sim::simulate::Sample;
    use serde_json::{Map, Value, json};

    const TINY: &str = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#;
    const HOSTILE: &str = "<script>alert('x')</script> & \"more\"";

    fn scenario() -> Scenario {
        let (file, text) = autoheal_sim::scenario::BUILTIN[0];
        Scenario::parse(file, text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn machine() -> StateMachine {
        StateMachine::parse(TINY).unwrap_or_else(|e| panic!("{e}"))
    }

    fn event(id: u64, kind: &str, details: Value) -> Event {
        let mut map = Map::new();
        if let Some(key) = autoheal_asl::history::details_key(kind) {
            map.insert(key.to_owned(), details);
        }
        Event {
            timestamp: format!("2027-01-15T08:03:{id:02}.000Z"),
            kind: kind.to_owned(),
            id,
            previous_event_id: id - 1,
            details: map,
        }
    }

    fn history() -> Vec<Event> {
        vec![
            event(1, "ExecutionStarted", json!({"input": "{}"})),
            event(2, "PassStateEntered", json!({"name": "A", "input": "{}"})),
            event(3, "PassStateExited", json!({"name": "A", "output": "{}"})),
            event(4, "ExecutionSucceeded", json!({"output": "{}"})),
        ]
    }

    fn run(history: Vec<Event>, incidents: &[&str]) -> ExecutionRun {
        ExecutionRun {
            name: "web-20270115T0803".into(),
            trigger: "alarm".into(),
            target_group: "web".into(),
            started_at_s: 180,
            ended_at_s: 300,
            status: "SUCCEEDED".into(),
            verdict: Some("healed".into()),
            incidents: incidents.iter().map(|s| (*s).to_owned()).collect(),
            state_transitions: 1,
            events: history.len(),
            history,
            input: serde_json::Value::Null,
            heals_entered: 0,
        }
    }

    fn summary(mttr: Option<f64>) -> Summary {
        Summary {
            mttr_median_s: mttr,
            mttr_p95_s: mttr,
            overhead_median_s: None,
            replacements: 0,
            restarts: 1,
            reboots: 0,
            heals_during_fleet_faults: 0,
            capacity_lost_target_s: 120,
            min_healthy_ratio: 0.9,
            blast_radius_violations: 0,
            state_transitions: 1,
            executions: 1,
            starts_deduplicated: 0,
            incidents: 1,
            held_back: 0,
            diagnosed_right: 1,
            diagnosed: 1,
            double_heals: 0,
            lost_incidents: 0,
            stuck_leases: 0,
            chaos: None,
        }
    }

    fn outcome(reason: &str) -> IncidentOutcome {
        IncidentOutcome {
            target_group: "web".into(),
            instance: "i-0123456789abcdef0".into(),
            fault: "app_crash".into(),
            fault_at_s: Some(120),
            detected_at_s: Some(180),
            diagnosis: Some("Application".into()),
            class: Some("Application".into()),
            action: "restart_service".into(),
            restored_at_s: Some(240),
            outcome: "healed".into(),
            time_to_restore_s: Some(120),
            incident_id: Some("inc-1".into()),
            execution: Some("web-20270115T0803".into()),
            reason: Some(reason.into()),
        }
    }

    fn simulation(
        s: &Scenario,
        policy: PolicyKind,
        mttr: Option<f64>,
        reason: &str,
        executions: Vec<ExecutionRun>,
    ) -> Simulation {
        let groups: Vec<(String, u32)> = s
            .fleet
            .target_groups
            .iter()
            .map(|g| (g.name.clone(), g.instances))
            .collect();
        let full: Vec<u32> = groups.iter().map(|g| g.1).collect();
        let mut dipped = full.clone();
        if let Some(first) = dipped.first_mut() {
            *first -= 1;
        }
        Simulation {
            scenario: s.name.clone(),
            policy,
            incidents: vec![outcome(reason)],
            summary: summary(mttr),
            executions,
            notifications: Vec::new(),
            elb_api: Default::default(),
            groups,
            timeline: vec![
                Sample {
                    t_s: 0,
                    serving: full.clone(),
                },
                Sample {
                    t_s: 120,
                    serving: dipped,
                },
                Sample {
                    t_s: 240,
                    serving: full,
                },
            ],
            records: Vec::new(),
            ended_at_s: s.duration_s,
        }
    }

    #[test]
    fn the_page_compares_both_policies_embeds_the_graph_and_escapes_data() {
        let s = scenario();
        let sm = machine();
        let ah = simulation(
            &s,
            PolicyKind::Autoheal,
            Some(95.0),
            HOSTILE,
            vec![run(history(), &["inc-1"])],
        );
        let bl = simulation(
            &s,
            PolicyKind::AsgReplace,
            Some(480.0),
            "unhealthy",
            Vec::new(),
        );
        let pairs = [Pair {
            scenario: &s,
            autoheal: &ah,
            baseline: &bl,
        }];
        let page = render(&pairs, &sm, "autoheal demo <test>");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("autoheal demo: 1 scenario, autoheal vs asg-replace"));
        assert!(page.contains(">autoheal<") && page.contains(">asg-replace<"));
        assert!(page.contains(&format!("<section id=\"{}\">", s.name)));
        assert!(page.contains("<svg"));
        assert!(
            page.contains("<div class=\"graph\">"),
            "the execution's graph is embedded"
        );
        assert!(page.contains("id=\"ah-0-0\""), "marker ids are made unique");
        assert!(!page.contains("url(#ah)"));
        assert!(page.contains("execution web-20270115T0803 (SUCCEEDED, alarm, started 3:00)"));
        assert!(!page.contains("<script"), "data is escaped");
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;")
        );
        assert!(page.contains("autoheal demo &lt;test&gt;"));
        assert!(page.contains("95 s") && page.contains("480 s"));
        assert!(
            !page.contains("<link") && !page.contains(" src="),
            "no external resources"
        );
    }

    #[test]
    fn executions_without_incidents_or_history_get_no_graph_and_a_missing_mttr_is_na() {
        let s = scenario();
        let sm = machine();
        let runs = vec![run(history(), &[]), run(Vec::new(), &["inc-2"])];
        let ah = simulation(&s, PolicyKind::Autoheal, None, "r", runs);
        let bl = simulation(&s, PolicyKind::AsgReplace, Some(300.0), "r", Vec::new());
        let pairs = [Pair {
            scenario: &s,
            autoheal: &ah,
            baseline: &bl,
        }];
        let page = render(&pairs, &sm, "t");
        assert!(!page.contains("<div class=\"graph\">"));
        assert!(page.contains("n/a (autoheal)"));
        assert!(page.contains("300 s"));
    }

    #[test]
    fn the_graph_css_is_scoped_and_the_graph_is_cut_out_of_its_page() {
        let sm = machine();
        let page = graph::render(&sm, Some(history().as_slice()), Format::Html, "t");
        let css = graph_css(&page);
        assert!(css.contains(".graph "), "{css}");
        assert!(!css.contains("body{") && !css.contains("h1{"), "{css}");
        let g = embed(&page, "7-1").unwrap_or_else(|| panic!("no graph in {page}"));
        assert!(g.contains("<div class=\"graph\"><svg") && g.ends_with("</svg></div>"));
        assert!(!g.contains("<h1>") && !g.contains("<body"));
    }

    #[test]
    fn helpers_format_times_numbers_and_escape() {
        assert_eq!(mmss(0), "0:00");
        assert_eq!(mmss(95), "1:35");
        assert_eq!(mmss(3600), "60:00");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(secs(94.6), "95 s");
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(accuracy(3, 4), "75 % (3 of 4)");
        assert_eq!(outcome_class("healed"), "o-good");
    }
}
