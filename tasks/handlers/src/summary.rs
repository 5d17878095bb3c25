//! One summary of a [`Notification`] for the people who read it, and its renderings: Slack
//! (Block Kit, [`slack_payload`]), Microsoft Teams (an Adaptive Card, [`teams_payload`]), and SNS
//! (plain text for e-mail subscribers, [`text`], with message attributes for subscription filter
//! policies, [`sns_attributes`]).
//!
//! The summary is built once ([`Summary::from_notification`]); the renderers only lay it out and
//! keep to each channel's limits. Evidence comes from SSM output on the instance and is untrusted:
//! it is made one line (control and bidi characters become spaces) and cut here, and each renderer
//! escapes it for its own markup.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use autoheal_core::incident::{IncidentRecord, IncidentStatus};
use autoheal_core::ports::{Notification, Severity};
use autoheal_core::rules::{Evidence, FaultClass};
use serde::Serialize;
use serde_json::{Value, json};

/// Evidence lines kept per incident.
pub const MAX_EVIDENCE_LINES: usize = 5;
/// The longest evidence line, step detail or held-back sentence, in characters (cut with `…`).
pub const MAX_LINE_CHARS: usize = 300;
/// The longest failure shown, in characters.
pub const MAX_FAILURE_CHARS: usize = 1000;

/// Slack: blocks per message.
pub const SLACK_MAX_BLOCKS: usize = 50;
/// Slack: characters of a header block's text.
pub const SLACK_HEADER_MAX_CHARS: usize = 150;
/// Slack: characters of a section's (or a context element's) text.
pub const SLACK_TEXT_MAX_CHARS: usize = 3000;
/// Slack: fields of a section, and characters per field.
pub const SLACK_MAX_FIELDS: usize = 10;
pub const SLACK_FIELD_MAX_CHARS: usize = 2000;

/// Teams: the serialised message stays below this many bytes (Teams rejects messages over 28 KB;
/// the budget is the smaller reading of "KB", 28,000 bytes).
pub const TEAMS_MAX_BYTES: usize = 28_000;
/// Teams: held-back sentences shown before "… and N more".
const TEAMS_MAX_HELD: usize = 20;

/// SNS: bytes of incident text in an e-mail (SNS takes 256 KiB per message, attributes included).
const TEXT_INCIDENTS_MAX_BYTES: usize = 150_000;
/// SNS: held-back sentences listed in an e-mail.
const TEXT_MAX_HELD: usize = 100;

/// What one notification says, channel-neutral.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The notification's subject.
    pub title: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub target_group_arn: String,
    /// The target group's name (from its ARN).
    pub target_group: String,
    pub incidents: Vec<IncidentSummary>,
    /// Decisions held back by fleet safety (the notification's sentences), then one line per
    /// held incident with its decision's reason.
    pub held_back: Vec<String>,
    /// The Step Functions console page of the execution.
    pub execution_url: Option<String>,
    /// Present when the notification asks a person to approve or deny a heal.
    pub approval: Option<ApprovalRequest>,
}

/// One incident of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentSummary {
    pub incident_id: String,
    pub instance: String,
    /// [`IncidentStatus::as_str`]: `healed`, `failed`, `held`, ...
    pub status: String,
    /// RFC 3339.
    pub detected_at: String,
    /// The diagnosis's class (`Application`, `OSLevel`, ...), absent when not diagnosed.
    pub fault_class: Option<String>,
    /// The winning rule's confidence; absent when not diagnosed or the class is `Unknown`.
    pub confidence: Option<f64>,
    /// The diagnosis's sentence for people.
    pub diagnosis: Option<String>,
    /// At most [`MAX_EVIDENCE_LINES`] lines of [`MAX_LINE_CHARS`] characters each.
    pub evidence: Vec<String>,
    /// Evidence lines left out beyond [`MAX_EVIDENCE_LINES`].
    pub evidence_omitted: usize,
    /// The decision's action (`restart_service`, `hold`, ...), absent when nothing was decided.
    pub action: Option<String>,
    /// In dry-run, the heal that would have run.
    pub intended: Option<String>,
    /// The decision's reason.
    pub reason: Option<String>,
    pub steps: Vec<StepLine>,
    /// The detail of the last verification step, when the steps show one.
    pub verification: Option<String>,
    /// Seconds from detection to the record, for healed incidents.
    pub mttr_s: Option<u64>,
    /// The stable error name and cause, for failed incidents.
    pub failure: Option<String>,
}

/// One step of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepLine {
    pub name: String,
    /// RFC 3339.
    pub at: String,
    pub detail: String,
}

/// An approval a person is asked for, with the commands that answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    /// The Step Functions task token.
    pub token: String,
    /// `autoheal approve --token <T>`
    pub approve_command: String,
    /// `autoheal deny --token <T> --reason "<why>"`
    pub deny_command: String,
}

impl Summary {
    /// Summarises a notification (evidence made one line and cut; held incidents listed as held
    /// back with their decision's reason).
    pub fn from_notification(n: &Notification) -> Summary {
        let mut held_back: Vec<String> = n
            .held_back
            .iter()
            .map(|h| {
                let h = cut(&one_line(h), MAX_LINE_CHARS);
                if h.trim().is_empty() {
                    "a decision was held back (no reason given)".to_owned()
                } else {
                    h
                }
            })
            .collect();
        for r in n
            .incidents
            .iter()
            .filter(|r| r.status == IncidentStatus::Held)
        {
            let why = r.decision.as_ref().map_or_else(
                || "held, no decision recorded".to_owned(),
                |d| one_line(&d.reason),
            );
            held_back.push(cut(
                &format!("{}: {why}", r.incident.instance),
                MAX_LINE_CHARS,
            ));
        }
        Summary {
            title: one_line(&n.subject),
            severity: severity_name(n.severity).to_owned(),
            target_group_arn: n.target_group.as_str().to_owned(),
            target_group: n.target_group.name().to_owned(),
            incidents: n
                .incidents
                .iter()
                .map(IncidentSummary::from_record)
                .collect(),
            held_back,
            execution_url: n.execution_url.clone(),
            approval: n.approval_token.as_deref().map(ApprovalRequest::new),
        }
    }
}

impl IncidentSummary {
    /// Summarises one stored incident.
    pub fn from_record(r: &IncidentRecord) -> IncidentSummary {
        let d = r.diagnosis.as_ref();
        let all_evidence: Vec<String> = d
            .map(|d| d.evidence.iter().map(evidence_line).collect())
            .unwrap_or_default();
        let evidence_omitted = all_evidence.len().saturating_sub(MAX_EVIDENCE_LINES);
        let evidence = all_evidence
            .into_iter()
            .take(MAX_EVIDENCE_LINES)
            .map(|l| cut(&l, MAX_LINE_CHARS))
            .collect();
        let verification = r
            .steps
            .iter()
            .rev()
            .find(|s| s.name.to_ascii_lowercase().contains("verify"))
            .map(|s| cut(&one_line(&s.detail), MAX_LINE_CHARS));
        IncidentSummary {
            incident_id: r.incident.id.as_str().to_owned(),
            instance: r.incident.instance.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            detected_at: r.incident.detected_at.to_rfc3339(),
            fault_class: d.map(|d| d.class.as_str().to_owned()),
            confidence: d
                .filter(|d| d.class != FaultClass::Unknown)
                .map(|d| d.confidence),
            diagnosis: d.map(|d| cut(&one_line(&d.summary), MAX_LINE_CHARS)),
            evidence,
            evidence_omitted,
            action: r.decision.as_ref().map(|d| d.action.as_str().to_owned()),
            intended: r
                .decision
                .as_ref()
                .and_then(|d| d.intended)
                .map(|a| a.as_str().to_owned()),
            reason: r.decision.as_ref().map(|d| one_line(&d.reason)),
            steps: r
                .steps
                .iter()
                .map(|s| StepLine {
                    name: cut(&one_line(&s.name), MAX_LINE_CHARS),
                    at: s.at.to_rfc3339(),
                    detail: cut(&one_line(&s.detail), MAX_LINE_CHARS),
                })
                .collect(),
            verification,
            mttr_s: (r.status == IncidentStatus::Healed)
                .then(|| r.updated_at.seconds_since(r.incident.detected_at)),
            failure: r
                .failure
                .as_deref()
                .map(|f| cut(&one_line(f), MAX_FAILURE_CHARS)),
        }
    }
}

impl ApprovalRequest {
    /// The request for `token`, with the two commands an operator runs.
    pub fn new(token: &str) -> ApprovalRequest {
        let t = shell_word(token);
        ApprovalRequest {
            token: token.to_owned(),
            approve_command: format!("autoheal approve --token {t}"),
            deny_command: format!("autoheal deny --token {t} --reason \"<why>\""),
        }
    }
}

/// The wire name of a severity.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

// ---------------------------------------------------------------------------------------------
// SNS: plain text and message attributes

/// The plain-text rendering for SNS e-mail subscribers: what happened per incident, the steps
/// with their times, what was held back, the approval commands and the console link.
pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", s.title);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Target group: {} ({})",
        s.target_group, s.target_group_arn
    );
    let _ = writeln!(out, "Severity:     {}", s.severity);
    let _ = writeln!(out, "Incidents:    {}", s.incidents.len());
    let mut used = 0;
    for (k, i) in s.incidents.iter().enumerate() {
        let block = text_incident(i);
        if used + block.len() > TEXT_INCIDENTS_MAX_BYTES {
            let _ = writeln!(out);
            let _ = writeln!(out, "{}", more_incidents(s.incidents.len() - k));
            break;
        }
        used += block.len();
        out.push_str(&block);
    }
    if !s.held_back.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Held back:");
        for h in s.held_back.iter().take(TEXT_MAX_HELD) {
            let _ = writeln!(out, "  - {h}");
        }
        if s.held_back.len() > TEXT_MAX_HELD {
            let _ = writeln!(out, "  - … and {} more", s.held_back.len() - TEXT_MAX_HELD);
        }
    }
    if let Some(a) = &s.approval {
        let _ = writeln!(out);
        let _ = writeln!(out, "Approval required. To approve, run:");
        let _ = writeln!(out, "  {}", a.approve_command);
        let _ = writeln!(out, "To deny, run:");
        let _ = writeln!(out, "  {}", a.deny_command);
    }
    if let Some(url) = &s.execution_url {
        let _ = writeln!(out);
        let _ = writeln!(out, "Execution: {url}");
    }
    out
}

fn text_incident(i: &IncidentSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "[{}] {} (incident {})",
        i.status, i.instance, i.incident_id
    );
    let _ = writeln!(out, "  Detected:   {}", i.detected_at);
    match &i.fault_class {
        Some(class) => {
            let _ = writeln!(
                out,
                "  Diagnosis:  {}{}",
                fault_text(class, i.confidence),
                i.diagnosis
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "  Diagnosis:  none");
        }
    }
    for (k, e) in i.evidence.iter().enumerate() {
        let label = if k == 0 { "Evidence:" } else { "" };
        let _ = writeln!(out, "  {label:<11} - {e}");
    }
    if i.evidence_omitted > 0 {
        let label = if i.evidence.is_empty() {
            "Evidence:"
        } else {
            ""
        };
        let _ = writeln!(out, "  {label:<11} - … and {} more", i.evidence_omitted);
    }
    let _ = writeln!(out, "  Action:     {}", action_text(i));
    if let Some(v) = &i.verification {
        let _ = writeln!(out, "  Verified:   {v}");
    }
    if let Some(m) = i.mttr_s {
        let _ = writeln!(out, "  MTTR:       {}", duration(m));
    }
    if let Some(f) = &i.failure {
        let _ = writeln!(out, "  Failure:    {f}");
    }
    if !i.steps.is_empty() {
        let _ = writeln!(out, "  Steps:");
        for st in &i.steps {
            let _ = writeln!(out, "    {}  {}: {}", st.at, st.name, st.detail);
        }
    }
    out
}

/// SNS message attributes for subscription filter policies, as (name, DataType, value):
/// `severity` and `target_group` (String), `action` and `outcome` (String.Array: a JSON array of
/// the distinct decided actions and incident statuses, `["none"]` when there are none; a
/// notification with held-back decisions counts `held` as an outcome), `incidents` (Number).
pub fn sns_attributes(s: &Summary) -> Vec<(String, &'static str, String)> {
    let actions: BTreeSet<&str> = s
        .incidents
        .iter()
        .filter_map(|i| i.action.as_deref())
        .collect();
    let mut outcomes: BTreeSet<&str> = s.incidents.iter().map(|i| i.status.as_str()).collect();
    if !s.held_back.is_empty() {
        outcomes.insert(IncidentStatus::Held.as_str());
    }
    let array = |set: BTreeSet<&str>| -> String {
        let items: Vec<&str> = if set.is_empty() {
            vec!["none"]
        } else {
            set.into_iter().collect()
        };
        Value::from(items).to_string()
    };
    vec![
        ("severity".to_owned(), "String", s.severity.clone()),
        (
            "target_group".to_owned(),
            "String",
            s.target_group_arn.clone(),
        ),
        ("action".to_owned(), "String.Array", array(actions)),
        ("outcome".to_owned(), "String.Array", array(outcomes)),
        (
            "incidents".to_owned(),
            "Number",
            s.incidents.len().to_string(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Slack

/// A Slack incoming-webhook message in Block Kit: a header, the group's fields, per incident a
/// section and a context block of its steps, the held-back decisions, the approval commands,
/// and a button to the execution. Within Slack's limits (50 blocks, 150-character header,
/// 3000-character sections, 10 fields of 2000 characters); incidents that do not fit are
/// summarised in one line. Every text from the summary is escaped for mrkdwn.
pub fn slack_payload(s: &Summary) -> Value {
    let title = if s.title.trim().is_empty() {
        "autoheal"
    } else {
        s.title.as_str()
    };
    let mut fields = vec![
        format!("*Target group*\n{}", esc(&s.target_group)),
        format!("*Severity*\n{}", esc(&s.severity)),
        format!("*Incidents*\n{}", s.incidents.len()),
    ];
    if !s.held_back.is_empty() {
        fields.push(format!("*Held back*\n{}", s.held_back.len()));
    }
    let fields: Vec<Value> = fields
        .into_iter()
        .take(SLACK_MAX_FIELDS)
        .map(|f| mrkdwn(cut_escaped(&f, SLACK_FIELD_MAX_CHARS)))
        .collect();
    let head = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": cut(title, SLACK_HEADER_MAX_CHARS),
                "emoji": true,
            },
        }),
        json!({"type": "section", "fields": fields}),
    ];

    let mut tail = Vec::new();
    if !s.held_back.is_empty() {
        let items: Vec<String> = s
            .held_back
            .iter()
            .map(|h| format!("• {}", esc(h)))
            .collect();
        tail.push(section(fit_lines(
            &["*Held back*".to_owned()],
            &items,
            0,
            &|n: usize| format!("• … and {n} more"),
            &[],
            SLACK_TEXT_MAX_CHARS,
        )));
    }
    if let Some(a) = &s.approval {
        let approve = esc(&a.approve_command);
        let deny = esc(&a.deny_command);
        let both = format!("*Approval required.* Run one of:\n```{approve}\n{deny}```");
        if both.chars().count() <= SLACK_TEXT_MAX_CHARS {
            tail.push(section(both));
        } else {
            tail.push(section(format!(
                "*Approval required.* To approve:\n```{approve}```"
            )));
            tail.push(section(format!("To deny:\n```{deny}```")));
        }
    }
    if let Some(url) = &s.execution_url {
        tail.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open the execution"},
                "url": url,
                "action_id": "open_execution",
            }],
        }));
    }

    let per_incident: Vec<Vec<Value>> = s.incidents.iter().map(slack_incident).collect();
    let room = SLACK_MAX_BLOCKS.saturating_sub(head.len() + tail.len());
    let mut blocks = head;
    if per_incident.iter().map(Vec::len).sum::<usize>() <= room {
        blocks.extend(per_incident.into_iter().flatten());
    } else {
        // One block stays free for the line that counts the rest.
        let room = room.saturating_sub(1);
        let mut used = 0;
        let mut shown = 0;
        for b in per_incident {
            if used + b.len() > room {
                break;
            }
            used += b.len();
            shown += 1;
            blocks.extend(b);
        }
        blocks.push(section(more_incidents(s.incidents.len() - shown)));
    }
    blocks.extend(tail);
    json!({
        "text": esc(&format!("{title} ({})", tally(s))),
        "blocks": blocks,
    })
}

fn slack_incident(i: &IncidentSummary) -> Vec<Value> {
    let mut before = vec![
        format!("*{}* — {}", esc(&i.instance), esc(&i.status)),
        format!(
            "Incident `{}`, detected {}",
            esc(&i.incident_id),
            esc(&i.detected_at)
        ),
    ];
    before.push(match &i.fault_class {
        Some(class) => format!(
            "*Fault:* {}{}",
            esc(&fault_text(class, i.confidence)),
            i.diagnosis
                .as_deref()
                .map(|d| format!(": {}", esc(d)))
                .unwrap_or_default()
        ),
        None => "*Fault:* not diagnosed".to_owned(),
    });
    let evidence: Vec<String> = i.evidence.iter().map(|e| format!("> {}", esc(e))).collect();
    let after = vec![
        format!("*Action:* {}", esc(&action_text(i))),
        format!("*Outcome:* {}", esc(&outcome_text(i))),
    ]
    .into_iter()
    .chain(i.failure.iter().map(|f| format!("*Failure:* {}", esc(f))))
    .collect::<Vec<_>>();
    let mut blocks = vec![section(fit_lines(
        &before,
        &evidence,
        i.evidence_omitted,
        &|n: usize| format!("> … and {n} more evidence lines"),
        &after,
        SLACK_TEXT_MAX_CHARS,
    ))];
    if !i.steps.is_empty() {
        let steps: Vec<String> = i
            .steps
            .iter()
            .map(|st| format!("`{}` *{}* {}", esc(&st.at), esc(&st.name), esc(&st.detail)))
            .collect();
        let timeline = fit_lines(
            &[],
            &steps,
            0,
            &|n: usize| format!("… and {n} more steps"),
            &[],
            SLACK_TEXT_MAX_CHARS,
        );
        blocks.push(json!({"type": "context", "elements": [mrkdwn(timeline)]}));
    }
    blocks
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// A section of mrkdwn text (already escaped), within Slack's limit.
fn section(text: String) -> Value {
    json!({
        "type": "section",
        "text": mrkdwn(cut_escaped(&text, SLACK_TEXT_MAX_CHARS)),
    })
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` (no mention, link or command can form).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts escaped text to `max` characters without splitting an `&…;` entity.
fn cut_escaped(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

/// `before`, as many of `items` as fit, a line counting the ones left out (plus
/// `already_omitted`), and `after`, joined by newlines within `max` characters.
fn fit_lines(
    before: &[String],
    items: &[String],
    already_omitted: usize,
    more: &dyn Fn(usize) -> String,
    after: &[String],
    max: usize,
) -> String {
    let mut keep = items.len();
    loop {
        let omitted = already_omitted + (items.len() - keep);
        let mut lines: Vec<String> = before.to_vec();
        lines.extend(items[..keep].iter().cloned());
        if omitted > 0 {
            lines.push(more(omitted));
        }
        lines.extend(after.iter().cloned());
        let text = lines.join("\n");
        if keep == 0 || text.chars().count() <= max {
            return cut_escaped(&text, max);
        }
        keep -= 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Teams

/// How much of the summary a Teams card shows.
#[derive(Debug, Clone, Copy)]
struct Fit {
    evidence: usize,
    steps: usize,
    incidents: usize,
}

/// A Teams incoming-webhook message carrying an Adaptive Card (1.4): the title, the group's
/// facts, per incident a container of facts and its steps, the held-back decisions, the approval
/// commands, and a button to the execution. Below [`TEAMS_MAX_BYTES`] serialised: evidence and
/// steps are cut first, then incidents beyond those that fit are summarised in one line.
pub fn teams_payload(s: &Summary) -> Value {
    let all = s.incidents.len();
    let fits = |v: &Value| serde_json::to_vec(v).is_ok_and(|b| b.len() < TEAMS_MAX_BYTES);
    for (evidence, steps) in [
        (MAX_EVIDENCE_LINES, usize::MAX),
        (2, usize::MAX),
        (0, 10),
        (0, 3),
        (0, 0),
    ] {
        let v = teams_message(
            s,
            Fit {
                evidence,
                steps,
                incidents: all,
            },
        );
        if fits(&v) {
            return v;
        }
    }
    // The most incidents that fit without evidence or steps: `lo` fits (none shown always does,
    // as everything else is bounded), `hi` does not.
    let few = |incidents| Fit {
        evidence: 0,
        steps: 0,
        incidents,
    };
    let (mut lo, mut hi) = (0, all);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(&teams_message(s, few(mid))) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    teams_message(s, few(lo))
}

fn teams_message(s: &Summary, fit: Fit) -> Value {
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": teams_text(&cut(&s.title, MAX_LINE_CHARS)),
            "size": "Large",
            "weight": "Bolder",
            "wrap": true,
        }),
        json!({
            "type": "FactSet",
            "facts": [
                fact("Target group", &s.target_group),
                fact("Severity", &s.severity),
                fact("Incidents", &s.incidents.len().to_string()),
            ],
        }),
    ];
    let shown = fit.incidents.min(s.incidents.len());
    body.extend(s.incidents[..shown].iter().map(|i| teams_incident(i, fit)));
    if shown < s.incidents.len() {
        body.push(json!({
            "type": "TextBlock",
            "text": more_incidents(s.incidents.len() - shown),
            "isSubtle": true,
            "wrap": true,
        }));
    }
    if !s.held_back.is_empty() {
        body.push(json!({
            "type": "TextBlock",
            "text": "Held back",
            "weight": "Bolder",
            "separator": true,
            "wrap": true,
        }));
        for h in s.held_back.iter().take(TEAMS_MAX_HELD) {
            body.push(
                json!({"type": "TextBlock", "text": teams_text(&format!("• {h}")), "wrap": true}),
            );
        }
        if s.held_back.len() > TEAMS_MAX_HELD {
            body.push(json!({
                "type": "TextBlock",
                "text": format!("• … and {} more", s.held_back.len() - TEAMS_MAX_HELD),
                "wrap": true,
            }));
        }
    }
    if let Some(a) = &s.approval {
        body.push(json!({
            "type": "TextBlock",
            "text": "Approval required. Run one of:",
            "weight": "Bolder",
            "separator": true,
            "wrap": true,
        }));
        for cmd in [&a.approve_command, &a.deny_command] {
            body.push(json!({
                "type": "TextBlock",
                "text": teams_text(cmd),
                "fontType": "Monospace",
                "wrap": true,
            }));
        }
    }
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(url) = &s.execution_url {
        content["actions"] = json!([{
            "type": "Action.OpenUrl",
            "title": "Open the execution",
            "url": url,
        }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

fn teams_incident(i: &IncidentSummary, fit: Fit) -> Value {
    let mut facts = vec![
        fact("Instance", &i.instance),
        fact("Incident", &i.incident_id),
        fact("Detected", &i.detected_at),
        fact(
            "Fault class",
            &i.fault_class.as_deref().map_or_else(
                || "not diagnosed".to_owned(),
                |c| fault_text(c, i.confidence),
            ),
        ),
    ];
    if let Some(d) = &i.diagnosis {
        facts.push(fact("Diagnosis", d));
    }
    let shown = fit.evidence.min(i.evidence.len());
    let omitted = i.evidence_omitted + (i.evidence.len() - shown);
    let mut evidence: Vec<String> = i.evidence[..shown].to_vec();
    if omitted > 0 {
        evidence.push(format!("… and {omitted} more"));
    }
    for (k, e) in evidence.iter().enumerate() {
        facts.push(fact(if k == 0 { "Evidence" } else { "" }, e));
    }
    facts.push(fact(
        "Action",
        &i.action.as_deref().map_or_else(
            || "none decided".to_owned(),
            |a| match &i.intended {
                Some(w) => format!("{a} (would {w})"),
                None => a.to_owned(),
            },
        ),
    ));
    if let Some(r) = &i.reason {
        facts.push(fact("Reason", r));
    }
    facts.push(fact("Outcome", &i.status));
    if let Some(v) = &i.verification {
        facts.push(fact("Verification", v));
    }
    if let Some(m) = i.mttr_s {
        facts.push(fact("MTTR", &duration(m)));
    }
    if let Some(f) = &i.failure {
        facts.push(fact("Failure", f));
    }
    let mut items = vec![
        json!({
            "type": "TextBlock",
            "text": teams_text(&format!("{} — {}", i.instance, i.status)),
            "weight": "Bolder",
            "wrap": true,
        }),
        json!({"type": "FactSet", "facts": facts}),
    ];
    let shown = fit.steps.min(i.steps.len());
    if !i.steps.is_empty() {
        let mut steps: Vec<Value> = i.steps[..shown]
            .iter()
            .map(|st| fact(&st.at, &format!("{}: {}", st.name, st.detail)))
            .collect();
        if shown < i.steps.len() {
            steps.push(fact("…", &format!("{} more steps", i.steps.len() - shown)));
        }
        items.push(json!({"type": "FactSet", "facts": steps}));
    }
    json!({"type": "Container", "separator": true, "items": items})
}

fn fact(title: &str, value: &str) -> Value {
    json!({"title": teams_text(title), "value": teams_text(value)})
}

/// Keeps untrusted text from forming a Markdown link in a card (TextBlock and Fact values render
/// Markdown): a zero-width space goes between `]` and `(`.
fn teams_text(s: &str) -> String {
    s.replace("](", "]\u{200B}(")
}

// ---------------------------------------------------------------------------------------------
// Shared wording and text hygiene

fn fault_text(class: &str, confidence: Option<f64>) -> String {
    match confidence {
        Some(c) => format!("{class} (confidence {c:.2})"),
        None => class.to_owned(),
    }
}

fn action_text(i: &IncidentSummary) -> String {
    let Some(a) = &i.action else {
        return "none decided".to_owned();
    };
    let a = match &i.intended {
        Some(w) => format!("{a} (would {w})"),
        None => a.clone(),
    };
    match &i.reason {
        Some(r) => format!("{a}: {r}"),
        None => a,
    }
}

fn outcome_text(i: &IncidentSummary) -> String {
    let mut parts = vec![i.status.clone()];
    if let Some(v) = &i.verification {
        parts.push(format!("verified: {v}"));
    }
    if let Some(m) = i.mttr_s {
        parts.push(format!("MTTR {}", duration(m)));
    }
    parts.join(" · ")
}

/// `… and N more incidents`.
fn more_incidents(n: usize) -> String {
    if n == 1 {
        "… and 1 more incident".to_owned()
    } else {
        format!("… and {n} more incidents")
    }
}

/// `2 healed, 1 failed`, or what was held back when there are no incidents.
fn tally(s: &Summary) -> String {
    if s.incidents.is_empty() {
        return if s.held_back.is_empty() {
            "no incidents".to_owned()
        } else {
            format!("{} held back", s.held_back.len())
        };
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for i in &s.incidents {
        match counts.iter_mut().find(|(st, _)| *st == i.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((i.status.as_str(), 1)),
        }
    }
    counts
        .iter()
        .map(|(st, n)| format!("{n} {st}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `45s`, `2m 35s`, `1h 05m`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// One evidence item as a line: `fact test expected (actual: value)`.
fn evidence_line(e: &Evidence) -> String {
    one_line(&e.to_string())
}

/// Control characters (line breaks included) and bidirectional overrides become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// At most `max` characters; a longer text keeps `max - 1` and ends with `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A shell word: the token as is when it has only characters a shell leaves alone, else
/// single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=_.:,@%-".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use autoheal_core::Decision;
    use autoheal_core::facts::FactValue;
    use autoheal_core::incident::{Incident, Step};
    use autoheal_core::policy::Action;
    use autoheal_core::rules::Diagnosis;
    use autoheal_core::{IncidentId, InstanceId, TargetGroupArn, Timestamp};

    use super::*;

    const T0: i64 = 1_800_000_000;

    fn tg() -> TargetGroupArn {
        TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .expect("valid")
    }

    fn evidence(actual: &str) -> Evidence {
        Evidence {
            fact: "diag.probe_error".to_owned(),
            test: "eq".to_owned(),
            expected: Some(json!("timeout")),
            actual: Some(FactValue::String(actual.to_owned())),
        }
    }

    fn record(n: usize, status: IncidentStatus, evidence: Vec<Evidence>) -> IncidentRecord {
        IncidentRecord {
            incident: Incident {
                id: IncidentId::parse(format!("web-i-{n:017x}-{T0}")).expect("valid"),
                target_group: tg(),
                instance: InstanceId::parse(format!("i-{n:017x}")).expect("valid"),
                asg: None,
                detected_at: Timestamp(T0),
                tags: BTreeMap::new(),
                launched_at: None,
            },
            status,
            diagnosis: Some(Diagnosis {
                class: FaultClass::Application,
                confidence: 0.8,
                rule_id: Some("app.hung".to_owned()),
                summary: "The application is hung.".to_owned(),
                evidence,
                candidates: vec![],
            }),
            decision: Some(Decision {
                action: Action::RestartService,
                intended: None,
                requires_approval: false,
                class: FaultClass::Application,
                reason: "restart_service (attempt 1 of 2) for Application: the application is hung"
                    .to_owned(),
                rule_ids: vec!["diagnosis.app.hung".to_owned()],
                rung: None,
            }),
            steps: [
                "Acquire lease",
                "Diagnose",
                "Decide",
                "Drain",
                "Restart service",
                "Verify health",
                "Restore",
                "record",
            ]
            .iter()
            .zip(0..)
            .map(|(name, k)| Step {
                name: (*name).to_owned(),
                at: Timestamp(T0 + 10 * k),
                detail: format!("{name} done after a while, with some words of detail"),
            })
            .collect(),
            failure: None,
            execution_arn: None,
            updated_at: Timestamp(T0 + 155),
        }
    }

    fn notification(incidents: Vec<IncidentRecord>) -> Notification {
        Notification {
            subject: format!("autoheal: {} incident(s) in web", incidents.len()),
            severity: Severity::Info,
            target_group: tg(),
            incidents,
            held_back: vec![],
            execution_url: Some("https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/arn:aws:states:us-east-1:123456789012:execution:autoheal:web-1800000000".to_owned()),
            approval_token: None,
        }
    }

    /// Every mrkdwn or plain text of a Slack payload.
    fn slack_texts(v: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for b in v["blocks"].as_array().expect("blocks") {
            let kind = b["type"].as_str().unwrap_or_default().to_owned();
            if let Some(t) = b["text"]["text"].as_str() {
                out.push((kind.clone(), t.to_owned()));
            }
            for f in b["fields"].as_array().into_iter().flatten() {
                out.push((
                    "field".to_owned(),
                    f["text"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                if let Some(t) = e["text"].as_str() {
                    out.push((kind.clone(), t.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn two_hundred_incidents_stay_within_slack_and_teams_limits() {
        let long: Vec<Evidence> = (0..8)
            .map(|k| evidence(&format!("{k}{}", "<&>".repeat(400))))
            .collect();
        let mut n = notification(
            (1..=200)
                .map(|k| record(k, IncidentStatus::Healed, long.clone()))
                .collect(),
        );
        n.held_back = (0..300)
            .map(|k| format!("decision {k} held: {}", "x".repeat(400)))
            .collect();
        n.approval_token = Some("AQCEAAAAKgAAAAMAAAAAAAAAA".repeat(40));
        let s = Summary::from_notification(&n);

        let slack = slack_payload(&s);
        let blocks = slack["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= SLACK_MAX_BLOCKS, "{} blocks", blocks.len());
        assert!(
            blocks.iter().any(|b| b["text"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("more incidents"))),
            "the incidents that do not fit are counted"
        );
        assert_eq!(blocks.last().map(|b| &b["type"]), Some(&json!("actions")));
        for (kind, t) in slack_texts(&slack) {
            let max = match kind.as_str() {
                "header" => SLACK_HEADER_MAX_CHARS,
                "field" => SLACK_FIELD_MAX_CHARS,
                _ => SLACK_TEXT_MAX_CHARS,
            };
            assert!(
                t.chars().count() <= max,
                "{kind}: {} characters",
                t.chars().count()
            );
        }
        for b in blocks {
            assert!(b["fields"].as_array().map_or(0, Vec::len) <= SLACK_MAX_FIELDS);
        }

        let teams = teams_payload(&s);
        let bytes = serde_json::to_vec(&teams).expect("json").len();
        assert!(bytes < 28 * 1024, "{bytes} bytes");
        let body = teams["attachments"][0]["content"]["body"]
            .as_array()
            .expect("body");
        assert!(body.iter().any(|b| {
            b["text"]
                .as_str()
                .is_some_and(|t| t.contains("more incidents"))
        }));
        assert!(
            body.iter().filter(|b| b["type"] == "Container").count() >= 1,
            "some incidents are still shown"
        );
    }

    #[test]
    fn a_small_summary_keeps_all_its_evidence_and_steps_in_teams() {
        let s = Summary::from_notification(&notification(vec![record(
            1,
            IncidentStatus::Healed,
            vec![evidence("timeout")],
        )]));
        let teams = teams_payload(&s);
        let text = teams.to_string();
        assert!(
            text.contains("diag.probe_error eq \\\"timeout\\\" (actual: timeout)"),
            "{text}"
        );
        assert!(text.contains("Verify health: Verify health done"), "{text}");
        assert_eq!(
            teams["attachments"][0]["content"]["actions"][0]["type"],
            json!("Action.OpenUrl")
        );
    }

    #[test]
    fn a_ten_thousand_character_evidence_line_is_cut() {
        let many = (0..7).map(|_| evidence(&"a".repeat(10_000))).collect();
        let s = Summary::from_notification(&notification(vec![record(
            1,
            IncidentStatus::Healed,
            many,
        )]));
        let i = &s.incidents[0];
        assert_eq!(i.evidence.len(), MAX_EVIDENCE_LINES);
        assert_eq!(i.evidence_omitted, 2);
        for e in &i.evidence {
            assert_eq!(e.chars().count(), MAX_LINE_CHARS);
            assert!(e.ends_with('…'));
        }
        assert!(text(&s).contains("… and 2 more"));
    }

    #[test]
    fn evidence_from_the_instance_is_escaped_for_slack() {
        let hostile = evidence(
            "<script>alert(1)</script> <!channel> <https://evil.example|click> & co\nline two",
        );
        let s = Summary::from_notification(&notification(vec![record(
            1,
            IncidentStatus::Healed,
            vec![hostile],
        )]));
        assert!(!s.incidents[0].evidence[0].contains('\n'), "one line");
        let slack = slack_payload(&s).to_string();
        assert!(!slack.contains("<script>"), "{slack}");
        assert!(!slack.contains("<!channel>"), "{slack}");
        assert!(!slack.contains("<https://evil"), "{slack}");
        assert!(
            slack.contains("&lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt;"),
            "{slack}"
        );
        assert!(slack.contains("&amp; co line two"), "{slack}");
    }

    #[test]
    fn markdown_links_in_evidence_do_not_form_in_teams() {
        let s = Summary::from_notification(&notification(vec![record(
            1,
            IncidentStatus::Healed,
            vec![evidence("[sign in](https://evil.example)")],
        )]));
        let teams = teams_payload(&s).to_string();
        assert!(!teams.contains("](https://evil"), "{teams}");
    }

    #[test]
    fn the_approval_commands_carry_the_token() {
        let mut n = notification(vec![]);
        n.approval_token = Some("AQCEAAAAKgAAAAMAAAAAAAAAAX+y/z==".to_owned());
        let s = Summary::from_notification(&n);
        let a = s.approval.as_ref().expect("an approval");
        assert_eq!(
            a.approve_command,
            "autoheal approve --token AQCEAAAAKgAAAAMAAAAAAAAAAX+y/z=="
        );
        assert_eq!(
            a.deny_command,
            "autoheal deny --token AQCEAAAAKgAAAAMAAAAAAAAAAX+y/z== --reason \"<why>\""
        );
        assert!(text(&s).contains(&a.approve_command));
        let slack = slack_payload(&s).to_string();
        assert!(slack.contains("autoheal approve --token AQCEAAAAKgAAAAMAAAAAAAAAAX+y/z=="));
        assert!(slack.contains("--reason \\\"&lt;why&gt;\\\""), "{slack}");
        let teams = teams_payload(&s).to_string();
        assert!(teams.contains("\"fontType\":\"Monospace\""));
        assert!(teams.contains(&a.approve_command));
        // A token a shell would split is quoted.
        let odd = ApprovalRequest::new("a b'c");
        assert_eq!(odd.approve_command, r"autoheal approve --token 'a b'\''c'");
    }

    #[test]
    fn attributes_are_what_filter_policies_need() {
        let mut failed = record(2, IncidentStatus::Failed, vec![]);
        if let Some(d) = failed.decision.as_mut() {
            d.action = Action::Reboot;
        }
        let n = notification(vec![
            record(1, IncidentStatus::Healed, vec![]),
            failed,
            record(3, IncidentStatus::Healed, vec![]),
        ]);
        let a = sns_attributes(&Summary::from_notification(&n));
        let get = |name: &str| {
            a.iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, t, v)| (*t, v.as_str()))
        };
        assert_eq!(get("severity"), Some(("String", "info")));
        assert_eq!(get("target_group"), Some(("String", tg().as_str())));
        assert_eq!(
            get("action"),
            Some(("String.Array", r#"["reboot","restart_service"]"#))
        );
        assert_eq!(
            get("outcome"),
            Some(("String.Array", r#"["failed","healed"]"#))
        );
        assert_eq!(get("incidents"), Some(("Number", "3")));

        let mut held = notification(vec![]);
        held.held_back = vec!["5 of 6 targets are failing at once".to_owned()];
        let a = sns_attributes(&Summary::from_notification(&held));
        assert_eq!(
            a[2],
            (
                "action".to_owned(),
                "String.Array",
                r#"["none"]"#.to_owned()
            )
        );
        assert_eq!(
            a[3],
            (
                "outcome".to_owned(),
                "String.Array",
                r#"["held"]"#.to_owned()
            )
        );
        assert_eq!(a[4], ("incidents".to_owned(), "Number", "0".to_owned()));
    }

    #[test]
    fn held_incidents_are_held_back_with_their_reason_and_healed_ones_have_an_mttr() {
        let mut held = record(2, IncidentStatus::Held, vec![]);
        if let Some(d) = held.decision.as_mut() {
            d.action = Action::Hold;
            d.reason =
                "taking i-00000000000000002 out would leave 1 of 3 targets serving".to_owned();
        }
        let mut n = notification(vec![record(1, IncidentStatus::Healed, vec![]), held]);
        n.held_back = vec!["a dependency outage is suspected".to_owned()];
        let s = Summary::from_notification(&n);
        assert_eq!(
            s.held_back,
            [
                "a dependency outage is suspected",
                "i-00000000000000002: taking i-00000000000000002 out would leave 1 of 3 targets serving"
            ]
        );
        assert_eq!(s.incidents[0].mttr_s, Some(155));
        assert_eq!(s.incidents[1].mttr_s, None);
        assert_eq!(
            s.incidents[0].verification.as_deref(),
            Some("Verify health done after a while, with some words of detail")
        );
        assert!(text(&s).contains("MTTR:       2m 35s"));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(155), "2m 35s");
        assert_eq!(duration(3900), "1h 05m");
    }
}
