//! A local interpreter for the Amazon States Language.
//!
//! The project's workflows are the `infra/statemachine/*.asl.json` files that
//! Step Functions runs in AWS. On a laptop the same files run here, with Task
//! states calling Rust code in-process through a [`TaskHandler`]. The aim is
//! to behave like Step Functions for everything accepted, and to refuse at
//! load time — with one line naming the state and the problem — everything
//! else, so a definition that runs locally also means the same in AWS.
//!
//! Supported: Task, Choice, Wait, Pass, Succeed, Fail; InputPath, Parameters,
//! ResultSelector, ResultPath, OutputPath; Retry and Catch; a JSONPath subset
//! (`$.a.b`, `$.a[0]`, `$['a']`, some `$$` context paths); the intrinsics
//! Format, StringToJson, JsonToString, Array, ArrayLength, MathAdd and UUID;
//! execution `TimeoutSeconds` (waits counted at their unscaled length, task
//! work at real time, see [`RunOptions`]) and Task `TimeoutSeconds` (on real
//! time).
//! Refused: Parallel, Map, JSONata, variables (`Assign`), heartbeats,
//! `TimeoutSecondsPath`, `Credentials`, `.waitForTaskToken` resources, and
//! JSONPath beyond the subset.
//!
//! ```
//! use std::collections::HashMap;
//!
//! use asl::{RunOptions, StateMachine, TaskError, TaskHandler, run};
//! use serde_json::{Value, json};
//!
//! struct Handlers;
//!
//! #[async_trait::async_trait]
//! impl TaskHandler for Handlers {
//!     async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
//!         match resource {
//!             "arn:greet" => Ok(json!({ "greeting": format!("hello {}", input["name"].as_str().unwrap_or("?")) })),
//!             other => Err(TaskError::new("Local.UnknownResource", other)),
//!         }
//!     }
//! }
//!
//! let definition = r#"{"StartAt": "Greet", "States": {
//!     "Greet": {"Type": "Task", "Resource": "${GreetArn}", "ResultPath": "$.out", "End": true}}}"#;
//! let substitutions = HashMap::from([("GreetArn".to_string(), "arn:greet".to_string())]);
//! let machine = StateMachine::from_json(definition, &substitutions)?;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! let options = RunOptions { time_scale: 0.0, ..RunOptions::default() };
//! let execution = runtime.block_on(run(&machine, "evt_1", json!({"name": "Ann"}), &Handlers, &options, None));
//! assert_eq!(execution.output, Some(json!({"name": "Ann", "out": {"greeting": "hello Ann"}})));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod choice;
mod clock;
mod definition;
mod history;
mod intrinsics;
mod path;
mod rng;
mod run;
mod template;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use definition::DefinitionError;
pub use history::{HistoryEvent, HistorySink, TracingSink};
pub use run::{Execution, ExecutionStatus, RunOptions, TaskError, TaskHandler, run};

/// A loaded, validated state machine definition.
#[derive(Debug)]
pub struct StateMachine {
    name: String,
    machine: definition::Machine,
}

impl StateMachine {
    /// `substitutions` are SAM DefinitionSubstitutions: every `${Name}` in the raw
    /// text is replaced before parsing; an unresolved `${Name}` is a load error.
    pub fn from_json(
        definition: &str,
        substitutions: &HashMap<String, String>,
    ) -> Result<Self, DefinitionError> {
        let text = substitute(definition, substitutions)?;
        let machine = definition::parse(&text)?;
        Ok(StateMachine { name: "StateMachine".into(), machine })
    }

    /// Sets the name `$$.StateMachine.Name` reports (and that appears in
    /// execution ids); defaults to `StateMachine`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `arn:aws:states:local:000000000000:stateMachine:{name}`, as `$$.StateMachine.Id`.
    pub fn arn(&self) -> String {
        format!("arn:aws:states:local:000000000000:stateMachine:{}", self.name)
    }

    /// State names in the order the definition lists them.
    pub fn state_names(&self) -> Vec<&str> {
        self.machine.states.iter().map(|s| s.name.as_str()).collect()
    }

    /// The name of the first state.
    pub fn start_at(&self) -> &str {
        self.machine.states.get(self.machine.start).map(|s| s.name.as_str()).unwrap_or_default()
    }
}

/// SAM-style `${Name}` replacement on the raw text. Values are inserted
/// verbatim, as SAM does, so they must already be valid inside a JSON string.
fn substitute(text: &str, values: &HashMap<String, String>) -> Result<String, DefinitionError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            let snippet: String = rest[start..].chars().take(30).collect();
            return Err(DefinitionError::Invalid(format!("unterminated substitution `{snippet}`")));
        };
        let name = &after[..end];
        let value =
            values.get(name).ok_or_else(|| DefinitionError::UnresolvedSubstitution(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
