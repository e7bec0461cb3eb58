//! Running an execution: one state at a time, with input/output processing in
//! the order the Amazon States Language specifies (InputPath, Parameters,
//! task, ResultSelector, ResultPath, OutputPath), retries, catchers, waits and
//! timeouts.
//!
//! Time: Wait and retry delays sleep for their length multiplied by
//! `RunOptions::time_scale`. A Task's `TimeoutSeconds` bounds real work and
//! is never scaled. The execution's `TimeoutSeconds` is compared with the
//! execution's time as Step Functions would count it: every Wait and retry
//! delay at its full, unscaled length, and everything else (task work) at
//! real time, so a scaled run times out exactly when the same run in AWS
//! would, whatever the scale (issue 12).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::StateMachine;
use crate::clock;
use crate::definition::{
    Catcher, Fail, Io, Kind, Pass, ResultPath, Retrier, STATES_ALL, State, Task, Text, Transition, Wait,
    WaitFor,
};
use crate::history::{HistoryEvent, HistorySink, Recorder};
use crate::intrinsics::type_name;
use crate::path;
use crate::rng::Rng;
use crate::template::{Env, preview};

const STATES_RUNTIME: &str = "States.Runtime";
const STATES_TIMEOUT: &str = "States.Timeout";
const STATES_TASK_FAILED: &str = "States.TaskFailed";
const STATES_DATA_LIMIT: &str = "States.DataLimitExceeded";
/// Step Functions' payload quota (256 KiB of UTF-8). An oversized execution
/// input or task input is a terminal `States.DataLimitExceeded`; an
/// oversized task *result* is a task failure that Retry and Catch see (AWS
/// catches it with `States.ALL`, recorded in LocalStack's
/// test_states_errors.py::test_task_lambda_catch_state_all_data_limit_exceeded_on_large_utf8_response).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 262_144;
/// Longest single sleep (about 100 years): keeps `Duration` arithmetic finite.
const MAX_SLEEP_SECS: f64 = 3.2e9;

/// Runs the Rust code behind a Task state's `Resource`.
#[async_trait::async_trait]
pub trait TaskHandler: Send + Sync {
    /// `resource` is the Task's Resource string after substitution (e.g. a Lambda ARN).
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError>;
}

/// A failed task, as Retry and Catch see it: `error` is the name matched by
/// `ErrorEquals`, `cause` the human explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

impl TaskError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskError { error: error.into(), cause: cause.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunOptions {
    /// Multiplies the real time Wait states and retry delays sleep; 0.0 = no
    /// waiting. Default 1.0. Timeouts are not scaled: a Task's bounds real
    /// time, and the execution's counts each wait at its unscaled length
    /// plus real task time (see the module documentation).
    pub time_scale: f64,
    /// State transitions allowed before the execution fails with
    /// `States.Runtime` (a guard against endless loops).
    pub max_transitions: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { time_scale: 1.0, max_transitions: 10_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed {
        error: String,
        cause: String,
    },
    /// The execution exceeded its `TimeoutSeconds`: status `TIMED_OUT` in
    /// Step Functions, not `FAILED` (LocalStack's
    /// test_timeouts.py::test_global_timeout); `error` is `States.Timeout`
    /// and the history ends with `ExecutionTimedOut`.
    TimedOut {
        error: String,
        cause: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub name: String,
    /// `arn:aws:states:local:000000000000:execution:{machine}:{name}`.
    pub id: String,
    pub status: ExecutionStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub history: Vec<HistoryEvent>,
    /// RFC 3339 UTC with milliseconds.
    pub started_at: String,
    pub stopped_at: String,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }

    /// History events of one kind, e.g. `"TaskScheduled"`.
    pub fn events<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a HistoryEvent> + 'a {
        self.history.iter().filter(move |e| e.kind == kind)
    }
}

/// Runs one execution to the end. Never panics on definition or input data:
/// every problem ends the execution as `Failed` with an explanation.
pub async fn run(
    machine: &StateMachine,
    execution_name: &str,
    input: Value,
    tasks: &dyn TaskHandler,
    options: &RunOptions,
    sink: Option<&dyn HistorySink>,
) -> Execution {
    let started_at = clock::format_millis(clock::now_millis());
    let id = format!("arn:aws:states:local:000000000000:execution:{}:{execution_name}", machine.name());
    let mut runner = Runner {
        machine,
        tasks,
        recorder: Recorder::new(execution_name, sink),
        rng: Rng::from_time(),
        scale: options.time_scale,
        timeout: machine.machine.timeout_seconds.map(|s| s as f64),
        clock: ExecutionClock::start(),
        execution_id: id.clone(),
        execution_name: execution_name.to_string(),
        start_time: started_at.clone(),
        input: input.clone(),
    };
    runner.recorder.record_at(
        started_at.clone(),
        "ExecutionStarted",
        None,
        json!({
            "name": execution_name,
            "executionArn": id,
            "stateMachineArn": machine.arn(),
            "input": input,
        }),
    );
    let (status, output) = match runner.drive(options).await {
        Ok(output) => {
            runner.recorder.record("ExecutionSucceeded", None, json!({ "output": output }));
            (ExecutionStatus::Succeeded, Some(output))
        }
        Err(Stop::Failed { error, cause }) => {
            runner.recorder.record("ExecutionFailed", None, json!({ "error": error, "cause": cause }));
            (ExecutionStatus::Failed { error, cause }, None)
        }
        Err(Stop::TimedOut(cause)) => {
            runner.recorder.record(
                "ExecutionTimedOut",
                None,
                json!({ "error": STATES_TIMEOUT, "cause": cause }),
            );
            (ExecutionStatus::TimedOut { error: STATES_TIMEOUT.into(), cause }, None)
        }
    };
    Execution {
        name: execution_name.to_string(),
        id,
        status,
        input,
        output,
        history: runner.recorder.into_events(),
        started_at,
        stopped_at: clock::format_millis(clock::now_millis()),
    }
}

/// Why an execution stops early.
enum Stop {
    Failed { error: String, cause: String },
    TimedOut(String),
}

enum Flow {
    Next(usize, Value),
    End(Value),
}

/// The state being executed, for the context object and error causes.
struct Scope<'a> {
    name: &'a str,
    entered_id: u64,
    entered_time: String,
}

impl Scope<'_> {
    /// A `States.Runtime` failure, worded like Step Functions' own.
    fn runtime(&self, message: impl std::fmt::Display) -> Stop {
        Stop::Failed {
            error: STATES_RUNTIME.into(),
            cause: format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {message}",
                self.name, self.entered_id
            ),
        }
    }
}

/// The execution's elapsed time as Step Functions counts it: sleeps (Wait
/// states, retry delays) at their unscaled length, everything else at real
/// time.
struct ExecutionClock {
    started: Instant,
    /// Real time spent in (scaled) sleeps.
    slept_real: Duration,
    /// The same sleeps at their unscaled length, in seconds.
    slept_workflow: f64,
}

impl ExecutionClock {
    fn start() -> Self {
        ExecutionClock { started: Instant::now(), slept_real: Duration::ZERO, slept_workflow: 0.0 }
    }

    fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().saturating_sub(self.slept_real).as_secs_f64() + self.slept_workflow
    }
}

struct Runner<'a> {
    machine: &'a StateMachine,
    tasks: &'a dyn TaskHandler,
    recorder: Recorder<'a>,
    rng: Rng,
    scale: f64,
    /// The execution's `TimeoutSeconds`.
    timeout: Option<f64>,
    clock: ExecutionClock,
    execution_id: String,
    execution_name: String,
    start_time: String,
    input: Value,
}

impl Runner<'_> {
    async fn drive(&mut self, options: &RunOptions) -> Result<Value, Stop> {
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return Err(Stop::Failed {
                error: STATES_RUNTIME.into(),
                cause: format!("RunOptions.time_scale must be a finite number >= 0, got {}", self.scale),
            });
        }
        check_size(&self.input, "the execution input")?;
        let mut current = self.machine.machine.start;
        let mut data = self.input.clone();
        let mut transitions: u32 = 0;
        loop {
            let machine = self.machine;
            let Some(state) = machine.machine.states.get(current) else {
                return Err(Stop::Failed {
                    error: STATES_RUNTIME.into(),
                    cause: format!("no state #{current}"),
                });
            };
            if transitions >= options.max_transitions {
                return Err(Stop::Failed {
                    error: STATES_RUNTIME.into(),
                    cause: format!(
                        "The execution exceeded max_transitions ({}) before entering state '{}'; \
                         is there an endless loop?",
                        options.max_transitions, state.name
                    ),
                });
            }
            transitions += 1;
            self.check_deadline()?;
            match self.step(state, data).await? {
                Flow::Next(next, output) => {
                    current = next;
                    data = output;
                }
                Flow::End(output) => return Ok(output),
            }
        }
    }

    async fn step(&mut self, state: &State, input: Value) -> Result<Flow, Stop> {
        let scope = Scope {
            name: &state.name,
            entered_id: self.recorder.next_id(),
            entered_time: clock::format_millis(clock::now_millis()),
        };
        match &state.kind {
            Kind::Task(task) => self.task(&scope, task, input).await,
            Kind::Pass(pass) => self.pass(&scope, pass, input),
            Kind::Choice(choice) => {
                self.enter(&scope, "ChoiceStateEntered", &input, None);
                let ctx = self.context(&scope, None);
                let effective = input_path(&choice.io, &input, &ctx).map_err(|e| scope.runtime(e))?;
                let env = Env { input: &effective, context: &ctx, rng: &self.rng };
                let mut next = None;
                for (rule, target) in &choice.choices {
                    if rule.eval(&env).map_err(|e| scope.runtime(e))? {
                        next = Some(*target);
                        break;
                    }
                }
                let Some(next) = next.or(choice.default) else {
                    return Err(Stop::Failed {
                        error: "States.NoChoiceMatched".into(),
                        cause: format!("No choice rule matched and state '{}' has no Default", scope.name),
                    });
                };
                let output = output_path(&choice.io, &effective, &ctx).map_err(|e| scope.runtime(e))?;
                self.exit(&scope, "ChoiceStateExited", output, Transition::Next(next), None)
            }
            Kind::Wait(wait) => self.wait(&scope, wait, input).await,
            Kind::Succeed(io) => {
                self.enter(&scope, "SucceedStateEntered", &input, None);
                let ctx = self.context(&scope, None);
                let effective = input_path(io, &input, &ctx).map_err(|e| scope.runtime(e))?;
                let output = output_path(io, &effective, &ctx).map_err(|e| scope.runtime(e))?;
                self.exit(&scope, "SucceedStateExited", output, Transition::End, None)
            }
            Kind::Fail(fail) => Err(self.fail(&scope, fail, input)),
        }
    }

    fn enter(&mut self, scope: &Scope<'_>, kind: &str, input: &Value, extra: Option<Value>) {
        let mut detail = json!({ "name": scope.name, "input": input });
        merge(&mut detail, extra);
        self.recorder.record_at(scope.entered_time.clone(), kind, Some(scope.name), detail);
    }

    fn exit(
        &mut self,
        scope: &Scope<'_>,
        kind: &str,
        output: Value,
        transition: Transition,
        extra: Option<Value>,
    ) -> Result<Flow, Stop> {
        check_size(&output, &format!("the output of state '{}'", scope.name))?;
        let next = match transition {
            Transition::Next(n) => self.state_name(n),
            Transition::End => None,
        };
        let mut detail = json!({ "name": scope.name, "output": output, "next": next });
        merge(&mut detail, extra);
        self.recorder.record(kind, Some(scope.name), detail);
        Ok(match transition {
            Transition::Next(n) => Flow::Next(n, output),
            Transition::End => Flow::End(output),
        })
    }

    fn state_name(&self, index: usize) -> Option<String> {
        self.machine.machine.states.get(index).map(|s| s.name.clone())
    }

    /// The `$$` object for the current state. `$$.State.RetryCount` exists
    /// in Task states only (`retry_count` is `None` elsewhere): a Pass
    /// state's context has just Name and EnteredTime (LocalStack's
    /// test_base.py::test_query_context_object_values).
    fn context(&self, scope: &Scope<'_>, retry_count: Option<u32>) -> Value {
        let mut state = json!({ "Name": scope.name, "EnteredTime": scope.entered_time });
        if let Some(count) = retry_count {
            state["RetryCount"] = json!(count);
        }
        json!({
            "Execution": {
                "Id": self.execution_id,
                "Name": self.execution_name,
                "Input": self.input,
                "StartTime": self.start_time,
            },
            "State": state,
            "StateMachine": { "Id": self.machine.arn(), "Name": self.machine.name() },
        })
    }

    fn pass(&mut self, scope: &Scope<'_>, pass: &Pass, raw: Value) -> Result<Flow, Stop> {
        self.enter(scope, "PassStateEntered", &raw, None);
        let ctx = self.context(scope, None);
        let effective = input_path(&pass.io, &raw, &ctx).map_err(|e| scope.runtime(e))?;
        let result = match (&pass.result, &pass.parameters) {
            (Some(result), _) => result.clone(),
            (None, Some(template)) => template
                .eval(&Env { input: &effective, context: &ctx, rng: &self.rng })
                .map_err(|e| scope.runtime(format!("Parameters: {e}")))?,
            (None, None) => effective,
        };
        let combined = result_path(&pass.result_path, raw, result).map_err(|e| scope.runtime(e))?;
        let output = output_path(&pass.io, &combined, &ctx).map_err(|e| scope.runtime(e))?;
        self.exit(scope, "PassStateExited", output, pass.transition, None)
    }

    async fn wait(&mut self, scope: &Scope<'_>, wait: &Wait, raw: Value) -> Result<Flow, Stop> {
        // The length is worked out before WaitStateEntered so the event can
        // say how long the wait will be; a failure is reported after it.
        let ctx = self.context(scope, None);
        let planned = input_path(&wait.io, &raw, &ctx).and_then(|effective| {
            let secs = wait_seconds(&wait.wait, &effective, &ctx)?;
            Ok((effective, secs))
        });
        let extra = planned.as_ref().ok().map(|(_, secs)| json!({ "waitSeconds": secs }));
        self.enter(scope, "WaitStateEntered", &raw, extra);
        let (effective, secs) = planned.map_err(|e| scope.runtime(e))?;
        self.sleep(secs).await?;
        let output = output_path(&wait.io, &effective, &ctx).map_err(|e| scope.runtime(e))?;
        self.exit(scope, "WaitStateExited", output, wait.transition, None)
    }

    fn fail(&mut self, scope: &Scope<'_>, fail: &Fail, raw: Value) -> Stop {
        let ctx = self.context(scope, None);
        let env = Env { input: &raw, context: &ctx, rng: &self.rng };
        let text = |t: &Option<Text>, field: &str| -> Result<String, String> {
            match t {
                None => Ok(String::new()),
                Some(Text::Literal(s)) => Ok(s.clone()),
                Some(Text::Expr(expr)) => match expr.eval(&env).map_err(|e| format!("{field}: {e}"))? {
                    Value::String(s) => Ok(s),
                    other => Err(format!("{field} must select a string, got {}", type_name(&other))),
                },
            }
        };
        let resolved = text(&fail.error, "ErrorPath").and_then(|e| Ok((e, text(&fail.cause, "CausePath")?)));
        let extra = resolved.as_ref().ok().map(|(error, cause)| json!({ "error": error, "cause": cause }));
        self.enter(scope, "FailStateEntered", &raw, extra);
        match resolved {
            Ok((error, cause)) => Stop::Failed { error, cause },
            Err(e) => scope.runtime(e),
        }
    }

    async fn task(&mut self, scope: &Scope<'_>, task: &Task, raw: Value) -> Result<Flow, Stop> {
        self.enter(scope, "TaskStateEntered", &raw, None);
        let name = Some(scope.name);
        let resource = task.resource.as_str();
        let mut retry_count: u32 = 0;
        let mut attempts_by_retrier = vec![0_u32; task.retry.len()];
        loop {
            // Parameters are re-evaluated per attempt: $$.State.RetryCount changes.
            let ctx = self.context(scope, Some(retry_count));
            let effective = input_path(&task.io, &raw, &ctx).map_err(|e| scope.runtime(e))?;
            let parameters = match &task.parameters {
                Some(template) => template
                    .eval(&Env { input: &effective, context: &ctx, rng: &self.rng })
                    .map_err(|e| scope.runtime(format!("Parameters: {e}")))?,
                None => effective,
            };
            check_size(&parameters, &format!("the input of task state '{}'", scope.name))?;
            self.recorder.record(
                "TaskScheduled",
                name,
                json!({
                    "resource": resource,
                    "parameters": parameters,
                    "retryCount": retry_count,
                    "timeoutInSeconds": task.timeout_seconds,
                }),
            );
            let outcome = match self.invoke(task, parameters).await? {
                Ok(result) if payload_size(&result) > MAX_PAYLOAD_BYTES => Err((
                    "TaskFailed",
                    TaskError::new(
                        STATES_DATA_LIMIT,
                        format!(
                            "The state/task '{resource}' returned a result with a size exceeding the \
                             maximum number of bytes service limit."
                        ),
                    ),
                )),
                other => other,
            };
            let (failed_kind, err) = match outcome {
                Ok(result) => {
                    self.recorder.record(
                        "TaskSucceeded",
                        name,
                        json!({ "resource": resource, "output": result }),
                    );
                    let selected = match &task.result_selector {
                        Some(template) => template
                            .eval(&Env { input: &result, context: &ctx, rng: &self.rng })
                            .map_err(|e| scope.runtime(format!("ResultSelector: {e}")))?,
                        None => result,
                    };
                    let combined =
                        result_path(&task.result_path, raw, selected).map_err(|e| scope.runtime(e))?;
                    let output = output_path(&task.io, &combined, &ctx).map_err(|e| scope.runtime(e))?;
                    return self.exit(scope, "TaskStateExited", output, task.transition, None);
                }
                Err(failure) => failure,
            };
            let mut detail = json!({ "resource": resource, "error": err.error, "cause": err.cause });

            // Retry: the first retrier whose ErrorEquals matches decides, even
            // when it has no attempts left (later retriers are not consulted).
            let retrier = task.retry.iter().enumerate().find(|(_, r)| error_matches(&r.errors, &err.error));
            if let Some((i, r)) = retrier {
                let used = attempts_by_retrier.get(i).copied().unwrap_or(u32::MAX);
                if used < r.max_attempts {
                    let delay = retry_delay(r, used, &self.rng);
                    if let Some(slot) = attempts_by_retrier.get_mut(i) {
                        *slot += 1;
                    }
                    retry_count += 1;
                    detail["retry"] = json!({
                        "retrier": i,
                        "errorEquals": r.errors,
                        "attempt": used + 1,
                        "maxAttempts": r.max_attempts,
                        "delaySeconds": delay,
                    });
                    self.recorder.record(failed_kind, name, detail);
                    self.sleep(delay).await?;
                    continue;
                }
                detail["retriesExhausted"] =
                    json!({ "retrier": i, "errorEquals": r.errors, "maxAttempts": r.max_attempts });
            }

            let catcher = task.catch.iter().enumerate().find(|(_, c)| error_matches(&c.errors, &err.error));
            let Some((i, catcher)) = catcher else {
                detail["unhandled"] = json!(true);
                self.recorder.record(failed_kind, name, detail);
                return Err(Stop::Failed { error: err.error, cause: err.cause });
            };
            detail["caught"] =
                json!({ "catcher": i, "errorEquals": catcher.errors, "next": self.state_name(catcher.next) });
            self.recorder.record(failed_kind, name, detail);
            return self.caught(scope, catcher, raw, err);
        }
    }

    fn caught(
        &mut self,
        scope: &Scope<'_>,
        catcher: &Catcher,
        raw: Value,
        err: TaskError,
    ) -> Result<Flow, Stop> {
        let error_output = json!({ "Error": err.error, "Cause": err.cause });
        let output = result_path(&catcher.result_path, raw, error_output).map_err(|e| scope.runtime(e))?;
        let extra = json!({ "caught": err.error });
        self.exit(scope, "TaskStateExited", output, Transition::Next(catcher.next), Some(extra))
    }

    /// Calls the handler under the Task's and the execution's timeouts. The
    /// inner `Err` is a task failure (`TaskFailed` or `TaskTimedOut` event);
    /// the outer one means the whole execution timed out.
    async fn invoke(
        &self,
        task: &Task,
        input: Value,
    ) -> Result<Result<Value, (&'static str, TaskError)>, Stop> {
        let call = self.tasks.invoke(&task.resource, input);
        // A task's work is real work, not workflow time: its timeout is never
        // scaled (a scaled one fires on a busy machine and runs the task twice).
        let now = Instant::now();
        let task_deadline = task.timeout_seconds.and_then(|s| now.checked_add(seconds(s as f64)));
        // Task time counts in real time against the execution's timeout.
        let execution_deadline = self.remaining_secs().and_then(|r| now.checked_add(seconds(r)));
        let limit = match (task_deadline, execution_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(limit) = limit else {
            return Ok(call.await.map_err(|e| ("TaskFailed", e)));
        };
        match tokio::time::timeout_at(limit, call).await {
            Ok(result) => Ok(result.map_err(|e| ("TaskFailed", e))),
            Err(_) if execution_deadline.is_some_and(|d| Instant::now() >= d) => Err(self.timed_out()),
            // Step Functions gives a task timeout no cause: a catcher sees
            // `"Cause": ""` (LocalStack's test_timeouts.py::test_fixed_timeout_lambda
            // records `LambdaFunctionTimedOut` with an error and no cause).
            Err(_) => Ok(Err(("TaskTimedOut", TaskError::new(STATES_TIMEOUT, "")))),
        }
    }

    /// Sleeps for `secs` of workflow time (scaled), unless the execution's
    /// own timeout comes first: then it sleeps (scaled) until the timeout.
    async fn sleep(&mut self, secs: f64) -> Result<(), Stop> {
        let (planned, times_out) = match self.remaining_secs() {
            Some(left) if secs >= left => (left.max(0.0), true),
            _ => (secs, false),
        };
        let duration = seconds(planned * self.scale);
        let before = Instant::now();
        if !duration.is_zero() {
            tokio::time::sleep(duration).await;
        }
        self.clock.slept_real += before.elapsed();
        self.clock.slept_workflow += planned;
        if times_out { Err(self.timed_out()) } else { Ok(()) }
    }

    /// Seconds left before the execution's `TimeoutSeconds`, if it has one.
    fn remaining_secs(&self) -> Option<f64> {
        self.timeout.map(|t| t - self.clock.elapsed_secs())
    }

    fn check_deadline(&self) -> Result<(), Stop> {
        match self.remaining_secs() {
            Some(left) if left <= 0.0 => Err(self.timed_out()),
            _ => Ok(()),
        }
    }

    fn timed_out(&self) -> Stop {
        Stop::TimedOut(format!(
            "The execution did not finish within TimeoutSeconds ({})",
            self.machine.machine.timeout_seconds.unwrap_or(0)
        ))
    }
}

fn payload_size(value: &Value) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX)
}

fn check_size(value: &Value, what: &str) -> Result<(), Stop> {
    let size = payload_size(value);
    if size <= MAX_PAYLOAD_BYTES {
        return Ok(());
    }
    Err(Stop::Failed {
        error: STATES_DATA_LIMIT.into(),
        cause: format!("{what} is {size} bytes, more than the {MAX_PAYLOAD_BYTES}-byte payload quota"),
    })
}

fn merge(detail: &mut Value, extra: Option<Value>) {
    if let (Value::Object(d), Some(Value::Object(e))) = (detail, extra) {
        d.extend(e);
    }
}

fn seconds(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs.min(MAX_SLEEP_SECS)).unwrap_or(Duration::ZERO)
}

/// ErrorEquals semantics: exact names, `States.ALL` for anything, and
/// `States.TaskFailed` for anything but `States.Timeout`.
fn error_matches(patterns: &[String], error: &str) -> bool {
    patterns
        .iter()
        .any(|p| p == STATES_ALL || p == error || (p == STATES_TASK_FAILED && error != STATES_TIMEOUT))
}

/// IntervalSeconds × BackoffRate^(retries so far), capped by
/// MaxDelaySeconds; FULL jitter picks uniformly below that.
fn retry_delay(retrier: &Retrier, previous_attempts: u32, rng: &Rng) -> f64 {
    let exponent = i32::try_from(previous_attempts).unwrap_or(i32::MAX);
    let mut delay = retrier.interval_seconds as f64 * retrier.backoff_rate.powi(exponent);
    if let Some(max) = retrier.max_delay_seconds {
        delay = delay.min(max as f64);
    }
    if !delay.is_finite() {
        delay = MAX_SLEEP_SECS;
    }
    if retrier.full_jitter {
        delay = (delay * rng.next_f64() * 1000.0).round() / 1000.0;
    }
    delay
}

fn input_path(io: &Io, input: &Value, ctx: &Value) -> Result<Value, String> {
    select(io.input_path.as_ref(), input, ctx, "InputPath")
}

fn output_path(io: &Io, output: &Value, ctx: &Value) -> Result<Value, String> {
    select(io.output_path.as_ref(), output, ctx, "OutputPath")
}

/// `None` is an explicit `null` path, which passes on `{}`.
fn select(path: Option<&path::Path>, value: &Value, ctx: &Value, field: &str) -> Result<Value, String> {
    match path {
        None => Ok(json!({})),
        Some(p) => p.select(value, ctx).cloned().ok_or_else(|| {
            format!("Invalid {field} `{p}`: the JSONPath could not be found in the input {}", preview(value))
        }),
    }
}

fn result_path(rp: &ResultPath, raw: Value, result: Value) -> Result<Value, String> {
    match rp {
        ResultPath::Discard => Ok(raw),
        ResultPath::At(p) => path::put(raw, p, result),
    }
}

fn wait_seconds(wait: &WaitFor, input: &Value, ctx: &Value) -> Result<f64, String> {
    let until = |at: i128| ((at - clock::now_nanos()).max(0) as f64) / 1e9;
    match wait {
        WaitFor::Seconds(n) => Ok(*n as f64),
        WaitFor::Timestamp(at) => Ok(until(*at)),
        WaitFor::SecondsPath(p) => {
            let v = p
                .select(input, ctx)
                .ok_or_else(|| format!("SecondsPath `{p}` could not be found in the input"))?;
            v.as_u64()
                .map(|n| n as f64)
                .ok_or_else(|| format!("SecondsPath `{p}` must select a non-negative integer, got {v}"))
        }
        WaitFor::TimestampPath(p) => {
            let v = p
                .select(input, ctx)
                .ok_or_else(|| format!("TimestampPath `{p}` could not be found in the input"))?;
            v.as_str()
                .and_then(clock::parse_rfc3339)
                .map(until)
                .ok_or_else(|| format!("TimestampPath `{p}` must select an RFC 3339 timestamp, got {v}"))
        }
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
