//! Loading and validating a definition.
//!
//! The JSON is read into `serde_json` values and then walked by hand rather
//! than derived into structs: refusing unknown fields with a message that
//! names the state and says *why* (e.g. "HeartbeatSeconds is not supported")
//! is the point of this module, and derive's errors cannot do that. All
//! `Next` names are resolved to indexes here, so the runner never looks a
//! state up by name.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::choice::Rule;
use crate::clock;
use crate::path::Path;
use crate::template::{Expr, Template};

/// Why a definition was refused. The `Display` text is one line naming the
/// state and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefinitionError {
    #[error("definition is not valid JSON: {0}")]
    Json(String),
    #[error("definition substitution `${{{0}}}` has no value")]
    UnresolvedSubstitution(String),
    /// A problem with the top level (StartAt, States, QueryLanguage, ...).
    #[error("{0}")]
    Invalid(String),
    #[error("state `{state}`: {message}")]
    State { state: String, message: String },
}

pub(crate) const STATES_ALL: &str = "States.ALL";
const MAX_STATE_NAME: usize = 80;
const MAX_SECONDS: u64 = 99_999_999;

#[derive(Debug)]
pub(crate) struct Machine {
    pub start: usize,
    pub states: Vec<State>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Task(Task),
    Choice(Choice),
    Wait(Wait),
    Pass(Pass),
    Succeed(Io),
    Fail(Fail),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Transition {
    Next(usize),
    End,
}

/// InputPath and OutputPath; `None` is an explicit JSON `null`, which means
/// "pass `{}` on".
#[derive(Debug)]
pub(crate) struct Io {
    pub input_path: Option<Path>,
    pub output_path: Option<Path>,
}

#[derive(Debug)]
pub(crate) enum ResultPath {
    /// `"ResultPath": null`: drop the result, keep the state's input.
    Discard,
    At(Path),
}

#[derive(Debug)]
pub(crate) struct Task {
    pub resource: String,
    pub io: Io,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub timeout_seconds: Option<u64>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

#[derive(Debug)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub full_jitter: bool,
}

#[derive(Debug)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub next: usize,
    pub result_path: ResultPath,
}

#[derive(Debug)]
pub(crate) struct Choice {
    pub io: Io,
    pub choices: Vec<(Rule, usize)>,
    pub default: Option<usize>,
}

#[derive(Debug)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    /// Nanoseconds since the epoch.
    Timestamp(i128),
    TimestampPath(Path),
}

#[derive(Debug)]
pub(crate) struct Wait {
    pub io: Io,
    pub wait: WaitFor,
    pub transition: Transition,
}

#[derive(Debug)]
pub(crate) struct Pass {
    pub io: Io,
    pub parameters: Option<Template>,
    pub result: Option<Value>,
    pub result_path: ResultPath,
    pub transition: Transition,
}

/// A Fail state's Error or Cause: fixed text, or computed from the input.
#[derive(Debug)]
pub(crate) enum Text {
    Literal(String),
    Expr(Expr),
}

#[derive(Debug)]
pub(crate) struct Fail {
    pub error: Option<Text>,
    pub cause: Option<Text>,
}

/// `States` in document order, duplicates kept so they can be refused
/// (a plain JSON object would silently keep only the last one).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`States` as a JSON object of named states")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

#[derive(Deserialize)]
struct RawDefinition {
    #[serde(rename = "States")]
    states: Option<Entries>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

pub(crate) fn parse(text: &str) -> Result<Machine, DefinitionError> {
    // Parse once generically for a clear "not JSON"/"not an object" message,
    // then again for the ordered, duplicate-preserving `States`.
    let value: Value = serde_json::from_str(text).map_err(|e| DefinitionError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(DefinitionError::Invalid("the definition must be a JSON object".into()));
    }
    let raw: RawDefinition = serde_json::from_str(text).map_err(|e| DefinitionError::Json(e.to_string()))?;
    let invalid = |m: String| DefinitionError::Invalid(m);
    for key in raw.rest.keys() {
        match key.as_str() {
            "StartAt" | "Comment" | "TimeoutSeconds" | "Version" | "QueryLanguage" => {}
            _ => return Err(invalid(format!("unknown top-level field `{key}`"))),
        }
    }
    query_language(&raw.rest).map_err(invalid)?;
    let top = |key: &str| -> Result<(), DefinitionError> {
        match raw.rest.get(key) {
            None | Some(Value::String(_)) => Ok(()),
            Some(_) => Err(invalid(format!("top-level `{key}` must be a string"))),
        }
    };
    top("Comment")?;
    top("Version")?;
    let start_at = match raw.rest.get("StartAt") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("`StartAt` must be a string".into())),
        None => return Err(invalid("the definition has no `StartAt`".into())),
    };
    let timeout_seconds =
        uint(&raw.rest, "TimeoutSeconds", 1, MAX_SECONDS).map_err(|e| invalid(format!("top-level {e}")))?;
    let entries = match raw.states {
        Some(Entries(entries)) if !entries.is_empty() => entries,
        _ => return Err(invalid("the definition has no `States`".into())),
    };

    let mut index = HashMap::new();
    for (i, (name, _)) in entries.iter().enumerate() {
        if index.insert(name.clone(), i).is_some() {
            return Err(state_err(name, "the state name is used twice".into()));
        }
        if name.is_empty() || name.chars().count() > MAX_STATE_NAME {
            return Err(state_err(name, format!("state names must be 1 to {MAX_STATE_NAME} characters")));
        }
    }
    let start = *index
        .get(&start_at)
        .ok_or_else(|| invalid(format!("`StartAt` names `{start_at}`, which is not a state")))?;
    let mut states = Vec::with_capacity(entries.len());
    for (name, value) in &entries {
        let kind = parse_state(value, &index).map_err(|m| state_err(name, m))?;
        states.push(State { name: name.clone(), kind });
    }
    let machine = Machine { start, states, timeout_seconds };
    check_terminal(&machine)?;
    check_reachable(&machine)?;
    Ok(machine)
}

fn state_err(state: &str, message: String) -> DefinitionError {
    DefinitionError::State { state: state.to_string(), message }
}

fn query_language(obj: &Map<String, Value>) -> Result<(), String> {
    match obj.get("QueryLanguage") {
        None => Ok(()),
        Some(Value::String(s)) if s == "JSONPath" => Ok(()),
        Some(Value::String(s)) if s == "JSONata" => {
            Err("`QueryLanguage: JSONata` is not supported; the local runner only runs JSONPath".into())
        }
        Some(other) => Err(format!("`QueryLanguage` must be \"JSONPath\" or \"JSONata\", got {other}")),
    }
}

/// Every field name the Amazon States Language knows, so that a misplaced
/// field gets "not allowed here" instead of "unknown".
const ASL_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "QueryLanguage",
    "Resource",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "InputPath",
    "OutputPath",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "Next",
    "End",
    "Choices",
    "Default",
    "Seconds",
    "SecondsPath",
    "Timestamp",
    "TimestampPath",
    "Result",
    "Error",
    "ErrorPath",
    "Cause",
    "CausePath",
];

fn check_fields(obj: &Map<String, Value>, ty: &str, allowed: &[&str]) -> Result<(), String> {
    for key in obj.keys() {
        let key = key.as_str();
        if key == "Type" || key == "Comment" || key == "QueryLanguage" || allowed.contains(&key) {
            continue;
        }
        return Err(match key {
            "HeartbeatSeconds" | "HeartbeatSecondsPath" => {
                format!("`{key}` is not supported (the local runner has no task heartbeats)")
            }
            "TimeoutSecondsPath" => {
                "`TimeoutSecondsPath` is not supported; use a fixed `TimeoutSeconds`".into()
            }
            "Credentials" => "`Credentials` (cross-account tasks) is not supported".into(),
            "Arguments" | "Output" => format!("`{key}` belongs to JSONata, which is not supported"),
            "Assign" => "`Assign` (workflow variables) is not supported".into(),
            "Retry" | "Catch" => format!("`{key}` is only allowed on Task, Parallel and Map states"),
            "Next" | "End" => format!("a {ty} state cannot have `{key}`"),
            _ if ASL_FIELDS.contains(&key) => format!("`{key}` is not allowed in a {ty} state"),
            _ => format!("unknown field `{key}` in a {ty} state"),
        });
    }
    Ok(())
}

fn parse_state(value: &Value, index: &HashMap<String, usize>) -> Result<Kind, String> {
    let Value::Object(obj) = value else {
        return Err("a state must be a JSON object".into());
    };
    let ty = match obj.get("Type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err("`Type` must be a string".into()),
        None => return Err("the state has no `Type`".into()),
    };
    if obj.get("Comment").is_some_and(|c| !c.is_string()) {
        return Err("`Comment` must be a string".into());
    }
    query_language(obj)?;
    let kind = match ty {
        "Task" => {
            check_fields(
                obj,
                ty,
                &[
                    "Resource",
                    "Parameters",
                    "ResultSelector",
                    "ResultPath",
                    "InputPath",
                    "OutputPath",
                    "Retry",
                    "Catch",
                    "TimeoutSeconds",
                    "Next",
                    "End",
                ],
            )?;
            Kind::Task(parse_task(obj, index)?)
        }
        "Pass" => {
            check_fields(
                obj,
                ty,
                &["InputPath", "OutputPath", "Parameters", "Result", "ResultPath", "Next", "End"],
            )?;
            Kind::Pass(Pass {
                io: io(obj)?,
                parameters: template(obj, "Parameters")?,
                result: obj.get("Result").cloned(),
                result_path: result_path(obj, "ResultPath")?,
                transition: transition(obj, index)?,
            })
        }
        "Choice" => {
            check_fields(obj, ty, &["InputPath", "OutputPath", "Choices", "Default"])?;
            Kind::Choice(parse_choice(obj, index)?)
        }
        "Wait" => {
            check_fields(
                obj,
                ty,
                &[
                    "InputPath",
                    "OutputPath",
                    "Seconds",
                    "SecondsPath",
                    "Timestamp",
                    "TimestampPath",
                    "Next",
                    "End",
                ],
            )?;
            Kind::Wait(parse_wait(obj, index)?)
        }
        "Succeed" => {
            check_fields(obj, ty, &["InputPath", "OutputPath"])?;
            Kind::Succeed(io(obj)?)
        }
        "Fail" => {
            check_fields(obj, ty, &["Error", "ErrorPath", "Cause", "CausePath"])?;
            Kind::Fail(Fail {
                error: text(obj, "Error", "ErrorPath")?,
                cause: text(obj, "Cause", "CausePath")?,
            })
        }
        "Parallel" | "Map" => return Err(format!("`{ty}` states are not supported by the local runner")),
        other => return Err(format!("unknown state Type `{other}`")),
    };
    Ok(kind)
}

fn parse_task(obj: &Map<String, Value>, index: &HashMap<String, usize>) -> Result<Task, String> {
    let resource = match obj.get("Resource") {
        Some(Value::String(s)) if s.ends_with(".waitForTaskToken") => {
            return Err(format!(
                "`Resource` `{s}`: callback tasks (.waitForTaskToken) are not supported by the local runner"
            ));
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err("`Resource` must be a non-empty string".into()),
        None => return Err("a Task state needs `Resource`".into()),
    };
    let retry = match obj.get("Retry") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_retrier(v).map_err(|e| format!("Retry[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("`Retry` must be an array".into()),
    };
    all_last(retry.iter().map(|r| &r.errors), "Retry")?;
    let catch = match obj.get("Catch") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_catcher(v, index).map_err(|e| format!("Catch[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("`Catch` must be an array".into()),
    };
    all_last(catch.iter().map(|c| &c.errors), "Catch")?;
    let result_selector = template(obj, "ResultSelector")?;
    Ok(Task {
        resource,
        io: io(obj)?,
        parameters: template(obj, "Parameters")?,
        result_selector,
        result_path: result_path(obj, "ResultPath")?,
        timeout_seconds: uint(obj, "TimeoutSeconds", 1, MAX_SECONDS)?,
        retry,
        catch,
        transition: transition(obj, index)?,
    })
}

/// `States.ALL` must be the last retrier/catcher: anything after it could
/// never match.
fn all_last<'a>(lists: impl Iterator<Item = &'a Vec<String>>, field: &str) -> Result<(), String> {
    let lists: Vec<_> = lists.collect();
    for (i, errors) in lists.iter().enumerate() {
        if i + 1 < lists.len() && errors.iter().any(|e| e == STATES_ALL) {
            return Err(format!("{field}[{i}]: `States.ALL` must be in the last entry of `{field}`"));
        }
    }
    Ok(())
}

fn error_equals(obj: &Map<String, Value>) -> Result<Vec<String>, String> {
    let Some(Value::Array(items)) = obj.get("ErrorEquals") else {
        return Err("`ErrorEquals` must be a non-empty array of error names".into());
    };
    let errors = items
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .filter(|e| !e.is_empty())
        .ok_or("`ErrorEquals` must be a non-empty array of error names")?;
    if errors.len() > 1 && errors.iter().any(|e| e == STATES_ALL) {
        return Err("`States.ALL` must appear alone in `ErrorEquals`".into());
    }
    Ok(errors)
}

fn only_fields(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| k.as_str() != "Comment" && !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field `{k}` in a {what}")),
        None => Ok(()),
    }
}

fn parse_retrier(value: &Value) -> Result<Retrier, String> {
    let Value::Object(obj) = value else { return Err("a retrier must be a JSON object".into()) };
    only_fields(
        obj,
        &[
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
        ],
        "retrier",
    )?;
    let backoff_rate = match obj.get("BackoffRate") {
        None => 2.0,
        Some(v) => v
            .as_f64()
            .filter(|r| *r >= 1.0 && r.is_finite())
            .ok_or("`BackoffRate` must be a number >= 1.0")?,
    };
    let full_jitter = match obj.get("JitterStrategy") {
        None => false,
        Some(Value::String(s)) if s == "FULL" => true,
        Some(Value::String(s)) if s == "NONE" => false,
        Some(_) => return Err("`JitterStrategy` must be \"FULL\" or \"NONE\"".into()),
    };
    let max_attempts = uint(obj, "MaxAttempts", 0, MAX_SECONDS)?.unwrap_or(3);
    Ok(Retrier {
        errors: error_equals(obj)?,
        interval_seconds: uint(obj, "IntervalSeconds", 1, MAX_SECONDS)?.unwrap_or(1),
        max_attempts: u32::try_from(max_attempts).map_err(|_| "`MaxAttempts` is too large")?,
        backoff_rate,
        max_delay_seconds: uint(obj, "MaxDelaySeconds", 1, 31_622_400)?,
        full_jitter,
    })
}

fn parse_catcher(value: &Value, index: &HashMap<String, usize>) -> Result<Catcher, String> {
    let Value::Object(obj) = value else { return Err("a catcher must be a JSON object".into()) };
    only_fields(obj, &["ErrorEquals", "Next", "ResultPath"], "catcher")?;
    let next = match obj.get("Next") {
        Some(Value::String(s)) => target(index, s, "`Next`")?,
        _ => return Err("a catcher needs `Next`".into()),
    };
    Ok(Catcher { errors: error_equals(obj)?, next, result_path: result_path(obj, "ResultPath")? })
}

fn parse_choice(obj: &Map<String, Value>, index: &HashMap<String, usize>) -> Result<Choice, String> {
    let Some(Value::Array(items)) =
        obj.get("Choices").filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    else {
        return Err("a Choice state needs a non-empty `Choices` array".into());
    };
    let mut choices = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (rule, next) = Rule::parse(item, true).map_err(|e| format!("Choices[{i}]: {e}"))?;
        let next = next.ok_or_else(|| format!("Choices[{i}]: a choice rule needs `Next`"))?;
        choices.push((rule, target(index, &next, &format!("Choices[{i}] `Next`"))?));
    }
    let default = match obj.get("Default") {
        None => None,
        Some(Value::String(s)) => Some(target(index, s, "`Default`")?),
        Some(_) => return Err("`Default` must be a state name".into()),
    };
    Ok(Choice { io: io(obj)?, choices, default })
}

fn parse_wait(obj: &Map<String, Value>, index: &HashMap<String, usize>) -> Result<Wait, String> {
    let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let wait = match given.as_slice() {
        ["Seconds"] => WaitFor::Seconds(uint(obj, "Seconds", 0, MAX_SECONDS)?.unwrap_or(0)),
        ["SecondsPath"] => WaitFor::SecondsPath(path_field(obj, "SecondsPath")?),
        ["TimestampPath"] => WaitFor::TimestampPath(path_field(obj, "TimestampPath")?),
        ["Timestamp"] => {
            let text = obj.get("Timestamp").and_then(Value::as_str).unwrap_or_default();
            let at = clock::parse_rfc3339(text).ok_or_else(|| {
                format!("`Timestamp` `{text}` is not an RFC 3339 timestamp (e.g. 2024-01-31T12:00:00Z)")
            })?;
            WaitFor::Timestamp(at)
        }
        _ => {
            return Err(
                "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath".into()
            );
        }
    };
    Ok(Wait { io: io(obj)?, wait, transition: transition(obj, index)? })
}

fn text(obj: &Map<String, Value>, literal: &str, path: &str) -> Result<Option<Text>, String> {
    match (obj.get(literal), obj.get(path)) {
        (Some(_), Some(_)) => Err(format!("use `{literal}` or `{path}`, not both")),
        (Some(Value::String(s)), None) => Ok(Some(Text::Literal(s.clone()))),
        (Some(_), None) => Err(format!("`{literal}` must be a string")),
        (None, Some(Value::String(s))) => {
            Ok(Some(Text::Expr(Expr::parse(s).map_err(|e| format!("`{path}`: {e}"))?)))
        }
        (None, Some(_)) => Err(format!("`{path}` must be a JSONPath or intrinsic function string")),
        (None, None) => Ok(None),
    }
}

fn target(index: &HashMap<String, usize>, name: &str, what: &str) -> Result<usize, String> {
    index.get(name).copied().ok_or_else(|| format!("{what} names `{name}`, which is not a state"))
}

fn transition(obj: &Map<String, Value>, index: &HashMap<String, usize>) -> Result<Transition, String> {
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`End` must be true or false".into()),
    };
    match (obj.get("Next"), end) {
        (Some(_), true) => Err("a state cannot have both `Next` and `End`".into()),
        (Some(Value::String(name)), false) => target(index, name, "`Next`").map(Transition::Next),
        (Some(_), false) => Err("`Next` must be a state name".into()),
        (None, true) => Ok(Transition::End),
        (None, false) => Err("the state needs `Next` or `\"End\": true`".into()),
    }
}

/// A non-negative integer field within bounds, or `None` when absent.
fn uint(obj: &Map<String, Value>, key: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be an integer from {min} to {max}, got {v}")),
    }
}

fn io(obj: &Map<String, Value>) -> Result<Io, String> {
    Ok(Io { input_path: data_path(obj, "InputPath")?, output_path: data_path(obj, "OutputPath")? })
}

/// InputPath/OutputPath: absent means `$`, `null` means `{}` (returned as None).
fn data_path(obj: &Map<String, Value>, key: &str) -> Result<Option<Path>, String> {
    match obj.get(key) {
        None => Ok(Some(Path::root())),
        Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Path::parse(s).map(Some).map_err(|e| format!("`{key}`: {e}")),
        Some(_) => Err(format!("`{key}` must be a JSONPath string or null")),
    }
}

fn path_field(obj: &Map<String, Value>, key: &str) -> Result<Path, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Path::parse(s).map_err(|e| format!("`{key}`: {e}")),
        _ => Err(format!("`{key}` must be a JSONPath string")),
    }
}

fn result_path(obj: &Map<String, Value>, key: &str) -> Result<ResultPath, String> {
    match obj.get(key) {
        None => Ok(ResultPath::At(Path::root())),
        Some(Value::Null) => Ok(ResultPath::Discard),
        Some(Value::String(s)) => {
            Path::parse_reference(s).map(ResultPath::At).map_err(|e| format!("`{key}`: {e}"))
        }
        Some(_) => Err(format!("`{key}` must be a JSONPath string or null")),
    }
}

fn template(obj: &Map<String, Value>, key: &str) -> Result<Option<Template>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Template::parse(v).map(Some).map_err(|e| format!("`{key}`: {e}")),
        Some(_) => Err(format!("`{key}` must be a JSON object")),
    }
}

/// Like Step Functions (MISSING_END_STATE), refuse a workflow that could never end.
fn check_terminal(machine: &Machine) -> Result<(), DefinitionError> {
    let terminal = machine.states.iter().any(|s| match &s.kind {
        Kind::Task(t) => t.transition == Transition::End,
        Kind::Pass(p) => p.transition == Transition::End,
        Kind::Wait(w) => w.transition == Transition::End,
        Kind::Succeed(_) | Kind::Fail(_) => true,
        Kind::Choice(_) => false,
    });
    if terminal {
        Ok(())
    } else {
        Err(DefinitionError::Invalid(
            "the workflow has no terminal state (a Succeed or Fail state, or `\"End\": true`)".into(),
        ))
    }
}

/// Step Functions refuses definitions with states nothing can reach; so do we,
/// since such a state is almost always a typo in a `Next`.
fn check_reachable(machine: &Machine) -> Result<(), DefinitionError> {
    let mut seen = vec![false; machine.states.len()];
    let mut queue = VecDeque::from([machine.start]);
    while let Some(i) = queue.pop_front() {
        let Some(state) = machine.states.get(i) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let mut next = Vec::new();
        let mut follow = |t: &Transition| {
            if let Transition::Next(n) = t {
                next.push(*n);
            }
        };
        match &state.kind {
            Kind::Task(t) => {
                follow(&t.transition);
                next.extend(t.catch.iter().map(|c| c.next));
            }
            Kind::Pass(p) => follow(&p.transition),
            Kind::Wait(w) => follow(&w.transition),
            Kind::Choice(c) => {
                next.extend(c.choices.iter().map(|(_, n)| *n));
                next.extend(c.default);
            }
            Kind::Succeed(_) | Kind::Fail(_) => {}
        }
        queue.extend(next);
    }
    match machine.states.iter().zip(&seen).find(|(_, seen)| !**seen) {
        Some((state, _)) => Err(state_err(&state.name, "the state is not reachable from `StartAt`".into())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::load_error;

    fn with_state(state: serde_json::Value) -> serde_json::Value {
        json!({"StartAt": "S", "States": {"S": state, "Next1": {"Type": "Succeed"}}})
    }

    fn task(extra: serde_json::Value) -> serde_json::Value {
        let mut t = json!({"Type": "Task", "Resource": "arn:x", "End": true});
        if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
            t.extend(extra.clone());
        }
        json!({"StartAt": "S", "States": {"S": t, "Next1": {"Type": "Pass", "End": true}, "Other": {"Type": "Fail"}}})
    }

    #[test]
    fn refuses_with_one_line_naming_the_state() {
        let cases = [
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Parallel", "Branches": [], "End": true}}}),
                "state `S`: `Parallel` states are not supported by the local runner",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Map", "End": true}}}),
                "state `S`: `Map` states are not supported",
            ),
            (
                json!({"StartAt": "S", "QueryLanguage": "JSONata", "States": {"S": {"Type": "Succeed"}}}),
                "`QueryLanguage: JSONata` is not supported",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "QueryLanguage": "JSONata"}}}),
                "state `S`: `QueryLanguage: JSONata` is not supported",
            ),
            (task(json!({"HeartbeatSeconds": 10})), "state `S`: `HeartbeatSeconds` is not supported"),
            (task(json!({"TimeoutSecondsPath": "$.t"})), "`TimeoutSecondsPath` is not supported"),
            (task(json!({"Credentials": {}})), "`Credentials` (cross-account tasks) is not supported"),
            (task(json!({"Arguments": {}})), "`Arguments` belongs to JSONata"),
            (task(json!({"Assign": {}})), "`Assign` (workflow variables) is not supported"),
            (task(json!({"Foo": 1})), "state `S`: unknown field `Foo` in a Task state"),
            (task(json!({"Next": "Next1"})), "state `S`: a state cannot have both `Next` and `End`"),
            (task(json!({"End": false})), "the state needs `Next` or `\"End\": true`"),
            (task(json!({"Seconds": 5})), "`Seconds` is not allowed in a Task state"),
            (task(json!({"Resource": ""})), "`Resource` must be a non-empty string"),
            (
                task(json!({"Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken"})),
                "callback tasks (.waitForTaskToken) are not supported",
            ),
            (task(json!({"TimeoutSeconds": 0})), "`TimeoutSeconds` must be an integer from 1"),
            (
                task(json!({"Parameters": {"a.$": "$.x[*]"}})),
                "`Parameters`: field `a.$`: JSONPath `$.x[*]`: wildcards",
            ),
            (
                task(json!({"Parameters": {"a.$": "States.Hash($.x, 'MD5')"}})),
                "`States.Hash` is not supported",
            ),
            (task(json!({"Parameters": "nope"})), "`Parameters` must be a JSON object"),
            (task(json!({"ResultSelector": []})), "`ResultSelector` must be a JSON object"),
            (task(json!({"ResultPath": "$.a[0]"})), "`ResultPath`: `$.a[0]`: array indexes"),
            (task(json!({"ResultPath": "$$.State.Name"})), "cannot write to the context object"),
            (task(json!({"InputPath": "$..a"})), "`InputPath`: JSONPath `$..a`: recursive descent"),
            (task(json!({"OutputPath": 5})), "`OutputPath` must be a JSONPath string or null"),
            (
                task(json!({"Retry": [{"ErrorEquals": ["States.ALL", "X"]}]})),
                "Retry[0]: `States.ALL` must appear alone",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]})),
                "Retry[0]: `States.ALL` must be in the last entry of `Retry`",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": []}]})),
                "Retry[0]: `ErrorEquals` must be a non-empty array",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]})),
                "`BackoffRate` must be a number >= 1.0",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 0}]})),
                "`IntervalSeconds` must be an integer from 1",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["X"], "MaxAttempts": -1}]})),
                "`MaxAttempts` must be an integer from 0",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]})),
                "`JitterStrategy` must be",
            ),
            (
                task(json!({"Retry": [{"ErrorEquals": ["X"], "Next": "Next1"}]})),
                "Retry[0]: unknown field `Next` in a retrier",
            ),
            (task(json!({"Catch": [{"ErrorEquals": ["X"]}]})), "Catch[0]: a catcher needs `Next`"),
            (
                task(json!({"Catch": [{"ErrorEquals": ["X"], "Next": "Nowhere"}]})),
                "Catch[0]: `Next` names `Nowhere`, which is not a state",
            ),
            (
                task(
                    json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Next1"}, {"ErrorEquals": ["X"], "Next": "Next1"}]}),
                ),
                "Catch[0]: `States.ALL` must be in the last entry",
            ),
            (
                with_state(json!({"Type": "Pass", "Retry": [], "Next": "Next1"})),
                "state `S`: `Retry` is only allowed on Task, Parallel and Map states",
            ),
            (
                with_state(json!({"Type": "Pass", "Catch": [], "Next": "Next1"})),
                "`Catch` is only allowed on Task",
            ),
            (
                with_state(json!({"Type": "Pass", "Next": "Missing"})),
                "state `S`: `Next` names `Missing`, which is not a state",
            ),
            (with_state(json!({"Type": "Pass"})), "the state needs `Next` or `\"End\": true`"),
            (with_state(json!({"Type": "Succeed", "Next": "Next1"})), "a Succeed state cannot have `Next`"),
            (with_state(json!({"Type": "Fail", "End": true})), "a Fail state cannot have `End`"),
            (
                with_state(json!({"Type": "Fail", "Error": "A", "ErrorPath": "$.e"})),
                "use `Error` or `ErrorPath`, not both",
            ),
            (
                with_state(json!({"Type": "Fail", "CausePath": "States.Nope()"})),
                "`CausePath`: intrinsic function",
            ),
            (
                with_state(json!({"Type": "Choice", "Choices": [], "Default": "Next1"})),
                "needs a non-empty `Choices`",
            ),
            (
                with_state(
                    json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Next1"}], "End": true}),
                ),
                "a Choice state cannot have `End`",
            ),
            (
                with_state(
                    json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Next1"}], "Default": "Gone"}),
                ),
                "`Default` names `Gone`",
            ),
            (
                with_state(
                    json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Gone"}]}),
                ),
                "Choices[0] `Next` names `Gone`",
            ),
            (
                with_state(json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "Next": "Next1"}]})),
                "Choices[0]: a choice rule needs a comparison operator",
            ),
            (
                with_state(json!({"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "Next": "Next1"})),
                "exactly one of Seconds",
            ),
            (with_state(json!({"Type": "Wait", "Next": "Next1"})), "exactly one of Seconds"),
            (
                with_state(json!({"Type": "Wait", "Seconds": -5, "Next": "Next1"})),
                "`Seconds` must be an integer",
            ),
            (
                with_state(json!({"Type": "Wait", "Timestamp": "tomorrow", "Next": "Next1"})),
                "`Timestamp` `tomorrow` is not an RFC 3339",
            ),
            (
                with_state(json!({"Type": "Wait", "SecondsPath": "$.a.*", "Next": "Next1"})),
                "`SecondsPath`: JSONPath",
            ),
            (
                with_state(json!({"Type": "Task", "Resource": "x", "Comment": 5, "Next": "Next1"})),
                "`Comment` must be a string",
            ),
            (with_state(json!({"Type": "Bogus"})), "state `S`: unknown state Type `Bogus`"),
            (with_state(json!({"Resource": "x"})), "the state has no `Type`"),
            (with_state(json!("Succeed")), "a state must be a JSON object"),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}}}),
                "state `Orphan`: the state is not reachable from `StartAt`",
            ),
            (
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}),
                "the workflow has no terminal state",
            ),
            (
                json!({"StartAt": "Nope", "States": {"S": {"Type": "Succeed"}}}),
                "`StartAt` names `Nope`, which is not a state",
            ),
            (json!({"States": {"S": {"Type": "Succeed"}}}), "the definition has no `StartAt`"),
            (json!({"StartAt": "S"}), "the definition has no `States`"),
            (json!({"StartAt": "S", "States": {}}), "the definition has no `States`"),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "Extra": 1}),
                "unknown top-level field `Extra`",
            ),
            (
                json!({"StartAt": "S", "TimeoutSeconds": "5", "States": {"S": {"Type": "Succeed"}}}),
                "top-level `TimeoutSeconds` must be an integer",
            ),
            (
                json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}, "S2": {"Type": "Succeed"}}, "Comment": []}),
                "top-level `Comment` must be a string",
            ),
        ];
        for (definition, expected) in cases {
            let err = load_error(definition.clone());
            assert!(err.contains(expected), "{definition}\n  got: {err}\n  want: {expected}");
            assert!(!err.contains('\n'), "multi-line error: {err}");
        }
    }

    #[test]
    fn refuses_duplicate_state_names_and_bad_json() {
        let text = r#"{"StartAt": "S", "States": {"S": {"Type": "Succeed"}, "S": {"Type": "Fail"}}}"#;
        let err = crate::StateMachine::from_json(text, &Default::default()).unwrap_err().to_string();
        assert_eq!(err, "state `S`: the state name is used twice");
        let err = crate::StateMachine::from_json("{nope", &Default::default()).unwrap_err().to_string();
        assert!(err.starts_with("definition is not valid JSON"), "{err}");
        let err = crate::StateMachine::from_json("[1]", &Default::default()).unwrap_err().to_string();
        assert_eq!(err, "the definition must be a JSON object");
        let err = crate::StateMachine::from_json(r#"{"StartAt": "S", "States": []}"#, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`States` as a JSON object"), "{err}");
        let long = "x".repeat(81);
        let err = load_error(json!({"StartAt": long, "States": {long.clone(): {"Type": "Succeed"}}}));
        assert!(err.contains("1 to 80 characters"), "{err}");
    }

    #[test]
    fn accepts_comments_everywhere_and_keeps_document_order() {
        // Raw text: `json!` would sort the states by name.
        let text = r#"{
            "Comment": "top",
            "Version": "1.0",
            "QueryLanguage": "JSONPath",
            "TimeoutSeconds": 60,
            "StartAt": "Zeta",
            "States": {
                "Zeta": {
                    "Type": "Task", "Comment": "c", "Resource": "arn:x", "Next": "Alpha",
                    "Retry": [{"Comment": "c", "ErrorEquals": ["X"], "MaxDelaySeconds": 5, "JitterStrategy": "NONE"}],
                    "Catch": [{"Comment": "c", "ErrorEquals": ["States.ALL"], "Next": "Alpha"}]
                },
                "Alpha": {
                    "Type": "Choice", "Comment": "c",
                    "Choices": [{"Comment": "c", "Variable": "$.a", "IsPresent": true, "Next": "Mid"}],
                    "Default": "Mid"
                },
                "Mid": {"Type": "Wait", "Comment": "c", "Seconds": 0, "Next": "Done"},
                "Done": {"Type": "Succeed", "Comment": "c"}
            }
        }"#;
        let m = crate::StateMachine::from_json(text, &Default::default()).unwrap();
        assert_eq!(m.state_names(), vec!["Zeta", "Alpha", "Mid", "Done"]);
        assert_eq!(m.start_at(), "Zeta");
    }
}
