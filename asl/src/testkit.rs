//! Test helpers: a scripted TaskHandler and shortcuts for loading and running.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::{Execution, HistoryEvent, RunOptions, StateMachine, TaskError, TaskHandler, run};

type Script = Box<dyn Fn(u32, &Value) -> Result<Value, TaskError> + Send + Sync>;

/// Answers each resource from a script that sees the 1-based call number;
/// unscripted resources echo their input. Records every call.
#[derive(Default)]
pub(crate) struct FakeTasks {
    scripts: HashMap<String, Script>,
    delays: HashMap<String, Duration>,
    calls: Mutex<Vec<(String, Value)>>,
}

impl FakeTasks {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn on(
        mut self,
        resource: &str,
        script: impl Fn(u32, &Value) -> Result<Value, TaskError> + Send + Sync + 'static,
    ) -> Self {
        self.scripts.insert(resource.to_string(), Box::new(script));
        self
    }

    pub(crate) fn returning(self, resource: &str, value: Value) -> Self {
        self.on(resource, move |_, _| Ok(value.clone()))
    }

    /// Fails the first `times` calls with `error`, then returns `then`.
    pub(crate) fn failing(self, resource: &str, times: u32, error: &str, then: Value) -> Self {
        let error = error.to_string();
        self.on(resource, move |n, _| {
            if n <= times {
                Err(TaskError::new(error.clone(), format!("attempt {n} failed")))
            } else {
                Ok(then.clone())
            }
        })
    }

    /// Makes every call to `resource` take `delay` (tokio time) first.
    pub(crate) fn slow(mut self, resource: &str, delay: Duration) -> Self {
        self.delays.insert(resource.to_string(), delay);
        self
    }

    pub(crate) fn calls(&self, resource: &str) -> usize {
        self.inputs(resource).len()
    }

    pub(crate) fn inputs(&self, resource: &str) -> Vec<Value> {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|(r, _)| r == resource).map(|(_, v)| v.clone()).collect()
    }
}

#[async_trait::async_trait]
impl TaskHandler for FakeTasks {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((resource.to_string(), input.clone()));
            calls.iter().filter(|(r, _)| r == resource).count() as u32
        };
        if let Some(delay) = self.delays.get(resource) {
            tokio::time::sleep(*delay).await;
        }
        match self.scripts.get(resource) {
            Some(script) => script(n, &input),
            None => Ok(input),
        }
    }
}

pub(crate) fn machine(definition: Value) -> StateMachine {
    StateMachine::from_json(&definition.to_string(), &HashMap::new()).unwrap()
}

pub(crate) fn load_error(definition: Value) -> String {
    StateMachine::from_json(&definition.to_string(), &HashMap::new()).unwrap_err().to_string()
}

pub(crate) fn instant() -> RunOptions {
    RunOptions { time_scale: 0.0, ..RunOptions::default() }
}

pub(crate) async fn exec(machine: &StateMachine, input: Value, tasks: &FakeTasks) -> Execution {
    run(machine, "exec-1", input, tasks, &instant(), None).await
}

pub(crate) fn kinds(execution: &Execution) -> Vec<&str> {
    execution.history.iter().map(|e| e.kind.as_str()).collect()
}

/// The `delaySeconds` of every scheduled retry, in order.
pub(crate) fn retry_delays(execution: &Execution) -> Vec<f64> {
    execution
        .history
        .iter()
        .filter_map(|e: &HistoryEvent| e.detail.get("retry")?.get("delaySeconds")?.as_f64())
        .collect()
}

/// The error and cause of a `FAILED` execution (panics on any other status).
pub(crate) fn failure(execution: &Execution) -> (String, String) {
    match &execution.status {
        crate::ExecutionStatus::Failed { error, cause } => (error.clone(), cause.clone()),
        other => panic!("expected a failure, got {other:?} with output {:?}", execution.output),
    }
}

/// The error and cause of a `TIMED_OUT` execution (panics on any other status).
pub(crate) fn timed_out(execution: &Execution) -> (String, String) {
    match &execution.status {
        crate::ExecutionStatus::TimedOut { error, cause } => (error.clone(), cause.clone()),
        other => panic!("expected a time-out, got {other:?} with output {:?}", execution.output),
    }
}
