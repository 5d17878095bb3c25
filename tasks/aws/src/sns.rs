//! SNS: [`Notifier`] as one Publish to the topic of `AUTOHEAL_TOPIC_ARN`.
//!
//! - **Subject**: the notification's subject made acceptable to SNS ([`subject`]): printable
//!   ASCII only (line breaks and tabs become spaces, other characters `?`), runs of spaces
//!   collapsed, no leading space, and fewer than 100 characters (SNS: "less than 100 characters
//!   long"; a longer one is cut and ends with `...`). An empty subject becomes `autoheal`.
//! - **Message**: per protocol (`MessageStructure=json`): e-mail and SMS subscribers (`default`,
//!   `email`) get the summary as text (`autoheal_handlers::summary::text`); SQS, Lambda, HTTP(S),
//!   `email-json` and Firehose subscribers get the whole [`Notification`] as JSON. SNS takes at
//!   most 256 KiB per message including attributes; if it does not fit, incidents are left out
//!   from the end until it does (the `incidents` attribute still counts them all, and
//!   `incidents_omitted` says how many are missing).
//! - **Message attributes** (for subscription filter policies): `severity` (String: `info`,
//!   `warning`, `critical`), `target_group` (String: the target group ARN), `incidents` (Number:
//!   how many incidents the notification is about), `action` and `outcome` (String.Array: the
//!   distinct actions and incident statuses, `["none"]` when there are none, `held` when fleet
//!   safety held a decision back), and `incidents_omitted` (Number) only when some were left out.

use std::collections::HashMap;

use autoheal_core::error::PortError;
use autoheal_core::ports::{Notification, Notifier, PortResult};
use autoheal_handlers::summary::{Summary, sns_attributes};
use aws_sdk_sns::types::MessageAttributeValue;

use crate::Aws;
use crate::Settings;
use crate::error::{self, Call};

const SERVICE: &str = "sns";

/// SNS subjects must be shorter than 100 characters.
pub const SUBJECT_MAX_CHARS: usize = 99;
/// SNS's limit on a message with its attributes.
pub const MESSAGE_MAX_BYTES: usize = 262_144;
/// Room left for the subject and the message attributes.
const ATTRIBUTES_RESERVE_BYTES: usize = 2_048;

impl Notifier for Aws {
    async fn notify(&self, notification: &Notification) -> PortResult<()> {
        // Slack and Teams first, best effort: a failed webhook is a log line, never a failed
        // notification (and never a failed heal).
        let summary = Summary::from_notification(notification);
        if let Some(channels) = &self.webhooks {
            for d in channels.send(&summary).await {
                if !d.delivered {
                    eprintln!(
                        "{}",
                        serde_json::json!({
                            "level": "WARN",
                            "message": "webhook notification not delivered",
                            "delivery": d,
                        })
                    );
                }
            }
        }
        let topic = Settings::require(&self.settings.topic_arn, "AUTOHEAL_TOPIC_ARN")?;
        let (body, omitted) = message(notification, MESSAGE_MAX_BYTES - ATTRIBUTES_RESERVE_BYTES)?;
        let mut req = self
            .sns
            .publish()
            .topic_arn(topic)
            .subject(subject(&notification.subject))
            .message_structure("json")
            .message(body);
        for (name, value) in attributes(&summary, omitted)? {
            req = req.message_attributes(name, value);
        }
        req.send()
            .await
            .map_err(|e| error::map(Call::new(SERVICE, "Publish"), e))?;
        Ok(())
    }
}

/// A subject SNS accepts: printable ASCII, one line, fewer than 100 characters.
pub fn subject(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(SUBJECT_MAX_CHARS));
    for c in raw.chars() {
        let c = if c.is_whitespace() {
            ' '
        } else if c.is_ascii_graphic() {
            c
        } else {
            '?'
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_end();
    if trimmed.is_empty() {
        return "autoheal".to_owned();
    }
    if trimmed.len() <= SUBJECT_MAX_CHARS {
        return trimmed.to_owned();
    }
    let cut: String = trimmed.chars().take(SUBJECT_MAX_CHARS - 3).collect();
    format!("{}...", cut.trim_end())
}

/// Subscription protocols that get the notification as JSON; every other (e-mail, SMS) gets
/// the summary's text (`default`).
const JSON_PROTOCOLS: &[&str] = &["sqs", "lambda", "http", "https", "email-json", "firehose"];

/// The per-protocol message (`MessageStructure=json`) within `max_bytes`: the summary as text
/// for people (`default`, `email`), the notification as JSON for programs; and how many
/// incidents had to be left out (from the end) to fit.
pub fn message(n: &Notification, max_bytes: usize) -> PortResult<(String, usize)> {
    let encode_err = |e: serde_json::Error| {
        PortError::InvalidRequest(format!("SNS: cannot encode the notification as JSON: {e}"))
    };
    let mut trimmed = n.clone();
    loop {
        let summary = Summary::from_notification(&trimmed);
        let text = autoheal_handlers::summary::text(&summary);
        let json = serde_json::to_string(&trimmed).map_err(encode_err)?;
        let mut body = serde_json::Map::new();
        body.insert("default".into(), text.clone().into());
        body.insert("email".into(), text.into());
        for p in JSON_PROTOCOLS {
            body.insert((*p).into(), json.clone().into());
        }
        let body = serde_json::to_string(&body).map_err(encode_err)?;
        if body.len() <= max_bytes || trimmed.incidents.pop().is_none() {
            return Ok((body, n.incidents.len() - trimmed.incidents.len()));
        }
    }
}

/// What a protocol's subscribers receive of a structured message.
pub fn for_protocol(body: &str, protocol: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(protocol)
        .or_else(|| v.get("default"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// The message attributes: the summary's (`autoheal_handlers::summary::sns_attributes`:
/// severity, target group, action, outcome, incidents) and `incidents_omitted` when the message
/// had to leave some out.
pub fn attributes(
    summary: &Summary,
    omitted: usize,
) -> PortResult<HashMap<String, MessageAttributeValue>> {
    let mut attrs = HashMap::new();
    for (name, data_type, value) in sns_attributes(summary) {
        attrs.insert(name, attribute(data_type, &value)?);
    }
    if omitted > 0 {
        attrs.insert(
            "incidents_omitted".to_owned(),
            attribute("Number", &omitted.to_string())?,
        );
    }
    Ok(attrs)
}

fn attribute(data_type: &str, value: &str) -> PortResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| PortError::InvalidRequest(format!("SNS message attribute: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use autoheal_core::incident::{Incident, IncidentRecord, IncidentStatus, Step};
    use autoheal_core::{IncidentId, InstanceId, TargetGroupArn, Timestamp};

    use super::*;

    fn tg() -> TargetGroupArn {
        TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .expect("valid")
    }

    fn record(n: u32, detail: &str) -> IncidentRecord {
        IncidentRecord {
            incident: Incident {
                id: IncidentId::parse(format!("web-{n}")).expect("valid"),
                target_group: tg(),
                instance: InstanceId::parse(format!("i-{n:08x}")).expect("valid"),
                asg: None,
                detected_at: Timestamp(100),
                tags: BTreeMap::new(),
                launched_at: None,
            },
            status: IncidentStatus::Open,
            diagnosis: None,
            decision: None,
            steps: vec![Step {
                name: "Diagnose".to_owned(),
                at: Timestamp(100),
                detail: detail.to_owned(),
            }],
            failure: None,
            execution_arn: None,
            updated_at: Timestamp(100),
        }
    }

    fn notification(incidents: Vec<IncidentRecord>) -> Notification {
        Notification {
            subject: "autoheal: web".to_owned(),
            severity: autoheal_core::ports::Severity::Warning,
            target_group: tg(),
            incidents,
            held_back: vec![],
            execution_url: None,
            approval_token: None,
        }
    }

    #[test]
    fn subjects_are_one_line_of_printable_ascii_under_100_characters() {
        assert_eq!(
            subject("web: 2 targets\nhealed\t ok"),
            "web: 2 targets healed ok"
        );
        assert_eq!(subject("  héllo — wörld  "), "h?llo ? w?rld");
        assert_eq!(subject(" \n "), "autoheal");
        let long = subject(&"x".repeat(300));
        assert_eq!(long.len(), 99);
        assert!(long.ends_with("..."));
        let s = subject(&format!("{}\u{7}", "é".repeat(150)));
        assert!(s.len() < 100 && s.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }

    #[test]
    fn people_get_the_summary_text_and_programs_the_notification() {
        let n = notification(vec![record(1, "ok")]);
        let (body, omitted) = message(&n, MESSAGE_MAX_BYTES).expect("encodes");
        assert_eq!(omitted, 0);
        for p in JSON_PROTOCOLS {
            let back: Notification =
                serde_json::from_str(&for_protocol(&body, p).expect(p)).expect("json");
            assert_eq!(back, n);
        }
        let email = for_protocol(&body, "email").expect("email");
        assert!(email.starts_with(&n.subject), "{email}");
        assert_eq!(for_protocol(&body, "sms"), for_protocol(&body, "default"));
    }

    #[test]
    fn an_oversized_message_is_trimmed_from_the_end() {
        let n = notification((1..=4).map(|i| record(i, &"d".repeat(1000))).collect());
        let (full, omitted) = message(&n, MESSAGE_MAX_BYTES).expect("encodes");
        assert_eq!(omitted, 0);
        let (body, omitted) = message(&n, full.len() / 2).expect("encodes");
        assert!(body.len() <= full.len() / 2, "{}", body.len());
        assert!(omitted >= 2);
        let back: Notification =
            serde_json::from_str(&for_protocol(&body, "sqs").expect("sqs")).expect("json");
        assert_eq!(back.incidents.len() + omitted, 4);
        assert_eq!(back.incidents[0], n.incidents[0]);
    }

    #[test]
    fn attributes_carry_severity_target_group_and_counts() {
        let n = notification(vec![record(1, "a"), record(2, "b")]);
        let a = attributes(&Summary::from_notification(&n), 0).expect("builds");
        assert_eq!(a["severity"].string_value(), Some("warning"));
        assert_eq!(a["severity"].data_type(), "String");
        assert_eq!(a["target_group"].string_value(), Some(tg().as_str()));
        assert_eq!(a["incidents"].data_type(), "Number");
        assert_eq!(a["incidents"].string_value(), Some("2"));
        assert!(!a.contains_key("incidents_omitted"));
        let a = attributes(&Summary::from_notification(&n), 1).expect("builds");
        assert_eq!(a["incidents_omitted"].string_value(), Some("1"));
    }
}
