//! The execution history as Step Functions' GetExecutionHistory shows it: events with ids,
//! previous-event ids, timestamps, types (`TaskStateEntered`, `TaskScheduled`, ...) and the
//! same `…EventDetails` objects.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub timestamp: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: u64,
    pub previous_event_id: u64,
    /// `{"stateEnteredEventDetails": {...}}` and the like; empty for events without details.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl Event {
    /// The details object of this event (whatever its key), if any.
    pub fn detail(&self) -> Option<&Map<String, Value>> {
        self.details.values().next().and_then(Value::as_object)
    }

    /// A string field of the details (`name`, `error`, `cause`, ...).
    pub fn detail_str(&self, field: &str) -> Option<&str> {
        self.detail()
            .and_then(|d| d.get(field))
            .and_then(Value::as_str)
    }
}

/// Milliseconds since the epoch as Step Functions prints them (RFC 3339, milliseconds, UTC).
pub fn format_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// The details key of an event type: `TaskStateEntered` → `stateEnteredEventDetails`.
pub fn details_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ExecutionStarted" => "executionStartedEventDetails",
        "ExecutionSucceeded" => "executionSucceededEventDetails",
        "ExecutionFailed" => "executionFailedEventDetails",
        "ExecutionTimedOut" => "executionTimedOutEventDetails",
        k if k.ends_with("StateEntered") => "stateEnteredEventDetails",
        k if k.ends_with("StateExited") => "stateExitedEventDetails",
        "TaskScheduled" => "taskScheduledEventDetails",
        "TaskStarted" => "taskStartedEventDetails",
        "TaskSubmitted" => "taskSubmittedEventDetails",
        "TaskSucceeded" => "taskSucceededEventDetails",
        "TaskFailed" => "taskFailedEventDetails",
        "TaskTimedOut" => "taskTimedOutEventDetails",
        "MapStateStarted" => "mapStateStartedEventDetails",
        "MapIterationStarted" => "mapIterationStartedEventDetails",
        "MapIterationSucceeded" => "mapIterationSucceededEventDetails",
        "MapIterationFailed" => "mapIterationFailedEventDetails",
        "MapIterationAborted" => "mapIterationAbortedEventDetails",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_in_utc() {
        assert_eq!(format_ms(1_800_000_000_123), "2027-01-15T08:00:00.123Z");
    }

    #[test]
    fn events_serialise_like_get_execution_history() {
        let mut details = Map::new();
        details.insert(
            "stateEnteredEventDetails".into(),
            serde_json::json!({"name": "A", "input": "{}"}),
        );
        let e = Event {
            timestamp: format_ms(0),
            kind: "PassStateEntered".into(),
            id: 2,
            previous_event_id: 1,
            details,
        };
        let v = serde_json::to_value(&e).expect("ser");
        assert_eq!(v["type"], "PassStateEntered");
        assert_eq!(v["previousEventId"], 1);
        assert_eq!(v["stateEnteredEventDetails"]["name"], "A");
        assert_eq!(e.detail_str("name"), Some("A"));
    }
}
