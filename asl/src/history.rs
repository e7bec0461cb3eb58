//! Execution history: events named like Step Functions' own, so an operator
//! can read a local run the way they read the console.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HistoryEvent {
    /// 1, 2, 3, ... in the order events happened.
    pub id: u64,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// A Step Functions history event type, e.g. `TaskStateEntered`.
    pub kind: String,
    /// The state the event belongs to; `None` for execution-level events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub detail: Value,
}

/// Receives each event as it happens (the full list is also returned in
/// [`crate::Execution::history`]).
pub trait HistorySink: Send + Sync {
    fn record(&self, execution: &str, event: &HistoryEvent);
}

impl<F> HistorySink for F
where
    F: Fn(&str, &HistoryEvent) + Send + Sync,
{
    fn record(&self, execution: &str, event: &HistoryEvent) {
        self(execution, event)
    }
}

/// Logs every event through `tracing` at INFO, with the execution name as a
/// field so local runs can be searched like deployed ones.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl HistorySink for TracingSink {
    fn record(&self, execution: &str, event: &HistoryEvent) {
        tracing::info!(
            execution,
            event_id = event.id,
            kind = %event.kind,
            state = event.state.as_deref().unwrap_or(""),
            detail = %event.detail,
            "state machine event"
        );
    }
}

pub(crate) struct Recorder<'a> {
    execution: String,
    events: Vec<HistoryEvent>,
    sink: Option<&'a dyn HistorySink>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(execution: &str, sink: Option<&'a dyn HistorySink>) -> Self {
        Recorder { execution: execution.to_string(), events: Vec::new(), sink }
    }

    /// The id the next event will get.
    pub(crate) fn next_id(&self) -> u64 {
        self.events.len() as u64 + 1
    }

    pub(crate) fn record(&mut self, kind: &str, state: Option<&str>, detail: Value) -> u64 {
        self.record_at(clock::format_millis(clock::now_millis()), kind, state, detail)
    }

    pub(crate) fn record_at(
        &mut self,
        timestamp: String,
        kind: &str,
        state: Option<&str>,
        detail: Value,
    ) -> u64 {
        let event = HistoryEvent {
            id: self.next_id(),
            timestamp,
            kind: kind.to_string(),
            state: state.map(str::to_string),
            detail,
        };
        if let Some(sink) = self.sink {
            sink.record(&self.execution, &event);
        }
        let id = event.id;
        self.events.push(event);
        id
    }

    pub(crate) fn into_events(self) -> Vec<HistoryEvent> {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_events_and_forwards_them_to_the_sink() {
        let seen = Mutex::new(Vec::new());
        let sink = |execution: &str, event: &HistoryEvent| {
            seen.lock().unwrap().push((execution.to_string(), event.id, event.kind.clone()));
        };
        let mut recorder = Recorder::new("evt_1", Some(&sink));
        assert_eq!(recorder.record("ExecutionStarted", None, json!({})), 1);
        assert_eq!(recorder.next_id(), 2);
        recorder.record("PassStateEntered", Some("P"), json!({"input": 1}));
        let events = recorder.into_events();
        assert_eq!(events[1].state.as_deref(), Some("P"));
        assert!(events[0].timestamp.ends_with('Z') && events[0].timestamp.len() == 24);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                ("evt_1".into(), 1, "ExecutionStarted".into()),
                ("evt_1".into(), 2, "PassStateEntered".into())
            ]
        );
    }

    #[test]
    fn serializes_without_missing_state() {
        let e = HistoryEvent {
            id: 1,
            timestamp: "t".into(),
            kind: "ExecutionStarted".into(),
            state: None,
            detail: json!({}),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("state"));
        assert_eq!(serde_json::from_str::<HistoryEvent>(&text).unwrap(), e);
    }
}
