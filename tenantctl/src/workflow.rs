//! Step Functions on a laptop: the state machine files from infra/ run in
//! the local ASL interpreter, their Task states calling the step functions
//! in-process. Execution names are unique, as in Step Functions.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use asl::{HistoryEvent, RunOptions, StateMachine, TaskError, TaskHandler};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenancy::ports::{StartOutcome, Workflow, WorkflowError, WorkflowStarter};
use tenancy::steps::{StepError, StepName, WorkflowSteps};
use tenancy::stripe::StripeEventId;
use tenancy::telemetry::error_chain;

/// The definitions, as deployed (SAM reads the same files).
pub const PROVISION_DEFINITION: &str = include_str!("../../infra/statemachine/provision.asl.json");
pub const LIFECYCLE_DEFINITION: &str = include_str!("../../infra/statemachine/lifecycle.asl.json");

/// The ARN a local Task resource gets for a step.
pub fn local_function_arn(step: StepName) -> String {
    format!("arn:aws:lambda:local:000000000000:function:{}", step.as_str())
}

/// SAM's DefinitionSubstitutions, pointing every function at the local steps.
pub fn local_substitutions() -> HashMap<String, String> {
    StepName::ALL.iter().map(|step| (step.substitution().to_owned(), local_function_arn(*step))).collect()
}

pub fn load_machines(definitions: Option<&Path>) -> anyhow::Result<HashMap<Workflow, Arc<StateMachine>>> {
    let mut machines = HashMap::new();
    for (workflow, built_in) in
        [(Workflow::Provision, PROVISION_DEFINITION), (Workflow::Lifecycle, LIFECYCLE_DEFINITION)]
    {
        let file = format!("{}.asl.json", workflow.as_str());
        let text = match definitions {
            None => built_in.to_owned(),
            Some(dir) => std::fs::read_to_string(dir.join(&file))?,
        };
        let machine = StateMachine::from_json(&text, &local_substitutions())
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?
            .with_name(workflow.as_str());
        machines.insert(workflow, Arc::new(machine));
    }
    Ok(machines)
}

/// Calls the step a Task's resource names.
///
/// A failed step gives what Step Functions gives a catcher for a failed
/// Lambda function: `Error` is the function's `errorType`, and `Cause` is
/// the error object the runtime reported, as JSON text (for our Rust
/// functions `{"errorType": ..., "errorMessage": ...}`, the
/// `lambda_runtime::Diagnostic` that steps/lambda.rs returns). LocalStack's
/// test_task_lambda.py::test_raise_exception_catch records the same shape for
/// a Python function.
struct LocalTasks {
    steps: Arc<WorkflowSteps>,
}

#[async_trait]
impl TaskHandler for LocalTasks {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        let step = resource
            .rsplit_once(":function:")
            .and_then(|(_, name)| StepName::from_name(name))
            .ok_or_else(|| {
                TaskError::new("Lambda.ResourceNotFoundException", format!("no local function {resource}"))
            })?;
        self.steps.invoke(step, input).await.map_err(lambda_task_error)
    }
}

/// The TaskError Step Functions reports for a Lambda function that failed
/// with `error`: the same Diagnostic the deployed function returns, as JSON.
pub fn lambda_task_error(error: StepError) -> TaskError {
    let name = error.error_name().to_owned();
    let message = error_chain(&error);
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    let cause = serde_json::to_string(&diagnostic).unwrap_or(message);
    TaskError::new(name, cause)
}

/// An execution's status, as Step Functions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Over the definition's `TimeoutSeconds`.
    TimedOut,
}

/// One execution, as the Step Functions console lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub name: String,
    pub workflow: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    pub input: Value,
    pub output: Option<Value>,
    pub history: Vec<HistoryEvent>,
    /// For an execution that stopped outside its Catch paths: what the
    /// clean-up did (the EventBridge rule's work in AWS).
    #[serde(default)]
    pub cleanup: Option<String>,
}

impl ExecutionRecord {
    /// The states entered, in order (a state entered again is listed again).
    pub fn states_passed(&self) -> Vec<String> {
        self.history
            .iter()
            .filter(|event| event.kind.ends_with("StateEntered"))
            .filter_map(|event| event.state.clone())
            .collect()
    }
}

pub struct LocalWorkflows {
    machines: HashMap<Workflow, Arc<StateMachine>>,
    tasks: Arc<LocalTasks>,
    options: RunOptions,
    executions: Arc<Mutex<BTreeMap<String, Kept>>>,
    dir: Option<PathBuf>,
    /// Executions that may run at once in this process; the rest wait their
    /// turn (listed RUNNING, with no history yet).
    running_slots: Arc<Semaphore>,
    /// Where executions run; the caller's runtime when `None`.
    executor: Option<tokio::runtime::Handle>,
    /// Clean-ups of stopped executions under way (counted as running, so
    /// waiting for the stack to settle waits for them too).
    cleanups: Arc<std::sync::atomic::AtomicUsize>,
}

/// How many executions one local process runs at once. Step Functions runs
/// every execution at once on Lambda's capacity; a laptop has a few cores,
/// and steps that are CPU-bound by design (argon2id in RecordSignup) must
/// still finish within their Task timeouts, which are real time. Executions
/// mostly wait (Wait states, simulated AWS delays), so this is generous: a
/// burst of 1,000 signups is all ACTIVE as soon as with 256 (about 47 s at
/// time scale 0.01), and each running execution holds its whole history
/// (measured peak of that burst: 256 slots 586 MiB, 64 463, 32 lower still).
pub const MAX_RUNNING_EXECUTIONS: usize = 32;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn save(dir: Option<&Path>, record: &ExecutionRecord) {
    let Some(dir) = dir else { return };
    let path = dir.join(format!("{}.json", record.name));
    let written = serde_json::to_vec_pretty(record)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(path.with_extension("json.tmp"), bytes))
        .and_then(|()| std::fs::rename(path.with_extension("json.tmp"), &path));
    if let Err(error) = written {
        tracing::error!(execution = %record.name, %error, "could not save the execution");
    }
}

/// `event` without the state document a state's entry or exit carries
/// (its `input` or `output`); a Task's own events (a step's result, an
/// error and its cause) are kept whole. Thousands of executions then fit in
/// a local process: a provisioning's state documents are most of its
/// history, and each is the previous state's output again.
fn without_state_documents(event: &HistoryEvent) -> HistoryEvent {
    let carries_document = event.kind.ends_with("StateEntered") || event.kind.ends_with("StateExited");
    let detail = match (&event.detail, carries_document) {
        (Value::Object(fields), true) => Value::Object(
            fields
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "input" | "output"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        (detail, _) => detail.clone(),
    };
    HistoryEvent {
        id: event.id,
        timestamp: event.timestamp.clone(),
        kind: event.kind.clone(),
        state: event.state.clone(),
        detail,
    }
}

/// One execution as the console lists it: no history, the states it passed.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionSummary {
    pub name: String,
    pub workflow: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    pub states: Vec<String>,
    pub cleanup: Option<String>,
}

/// An execution as this process keeps it: a finished one that succeeded
/// is packed, its input, output and (compact) history as deflated JSON text
/// (a third of their size as values, then about a sixth of that), read back
/// when someone looks. A burst's thousand of them were 17 MiB as plain text,
/// the largest part of `local serve`'s memory after argon2's.
struct Kept {
    /// Without input, output and history when packed.
    record: ExecutionRecord,
    /// The whole record, as deflated JSON text.
    packed: Option<Box<[u8]>>,
    /// The states a packed history passed, for summaries without unpacking.
    packed_states: Vec<String>,
}

/// Deflate's level for packed records: 1 of 10, the fastest. A provisioning's
/// record shrinks from 17.6 KB to 2.8 KB at it (BENCHMARKS.md, section 8);
/// the slower levels were not measured.
const PACKING_LEVEL: u8 = 1;

impl Kept {
    fn new(record: ExecutionRecord) -> Kept {
        let mut kept = Kept { record, packed: None, packed_states: Vec::new() };
        kept.pack_if_succeeded();
        kept
    }

    /// A succeeded execution's history, without its state documents, packed.
    fn pack_if_succeeded(&mut self) {
        if self.record.status != RunStatus::Succeeded || self.packed.is_some() {
            return;
        }
        self.record.history = self.record.history.iter().map(without_state_documents).collect();
        if let Ok(text) = serde_json::to_string(&self.record) {
            self.packed_states = self.record.states_passed();
            self.packed = Some(miniz_oxide::deflate::compress_to_vec(text.as_bytes(), PACKING_LEVEL).into());
            self.record.history = Vec::new();
            self.record.input = Value::Null;
            self.record.output = None;
        }
    }

    fn summary(&self) -> ExecutionSummary {
        let record = &self.record;
        ExecutionSummary {
            name: record.name.clone(),
            workflow: record.workflow.clone(),
            status: record.status,
            error: record.error.clone(),
            cause: record.cause.clone(),
            started_at: record.started_at.clone(),
            stopped_at: record.stopped_at.clone(),
            states: match self.packed {
                Some(_) => self.packed_states.clone(),
                None => record.states_passed(),
            },
            cleanup: record.cleanup.clone(),
        }
    }

    /// `view` of the record with its whole history.
    fn view<R>(&self, view: impl FnOnce(&ExecutionRecord) -> R) -> R {
        let unpacked = self.packed.as_deref().map(|packed| {
            let text = miniz_oxide::inflate::decompress_to_vec(packed).map_err(|e| e.to_string())?;
            serde_json::from_slice::<ExecutionRecord>(&text).map_err(|e| e.to_string())
        });
        match unpacked {
            Some(Ok(record)) => view(&record),
            // What this process packed itself always reads back.
            None | Some(Err(_)) => view(&self.record),
        }
    }
}

impl LocalWorkflows {
    /// Loads earlier executions from `state/executions/`; ones a stopped
    /// process left RUNNING are started again from the top, which is safe
    /// because every step is idempotent.
    pub fn open(
        machines: HashMap<Workflow, Arc<StateMachine>>,
        steps: Arc<WorkflowSteps>,
        options: RunOptions,
        state: Option<&Path>,
        executor: Option<tokio::runtime::Handle>,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = state.map(|state| state.join("executions"));
        let mut executions = BTreeMap::new();
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|ext| ext == "json") {
                    let record: ExecutionRecord = serde_json::from_slice(&std::fs::read(&path)?)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    executions.insert(record.name.clone(), Kept::new(record));
                }
            }
        }
        let workflows = Arc::new(LocalWorkflows {
            machines,
            tasks: Arc::new(LocalTasks { steps }),
            options,
            executions: Arc::new(Mutex::new(executions)),
            dir,
            running_slots: Arc::new(Semaphore::new(MAX_RUNNING_EXECUTIONS)),
            executor,
            cleanups: Arc::default(),
        });
        let interrupted: Vec<ExecutionRecord> = lock(&workflows.executions)
            .values()
            .filter(|kept| kept.record.status == RunStatus::Running)
            .map(|kept| kept.record.clone())
            .collect();
        for record in interrupted {
            let workflow = workflows.machines.keys().find(|w| w.as_str() == record.workflow).copied();
            if let Some(workflow) = workflow {
                tracing::info!(execution = %record.name, "restarting an execution interrupted by a stop");
                workflows.spawn(workflow, record.name, record.input, true);
            }
        }
        Ok(workflows)
    }

    /// The steps and their ports, for running one outside any execution
    /// (an operator's command).
    pub fn steps(&self) -> &WorkflowSteps {
        &self.tasks.steps
    }

    pub fn executions(&self) -> Vec<ExecutionRecord> {
        self.each_execution(ExecutionRecord::clone)
    }

    /// `view` of every execution, oldest first, without copying the
    /// histories (a state page over thousands of executions stays cheap).
    pub fn each_execution<R>(&self, view: impl Fn(&ExecutionRecord) -> R) -> Vec<R> {
        let executions = lock(&self.executions);
        let mut all: Vec<&Kept> = executions.values().collect();
        all.sort_by(|a, b| {
            a.record.started_at.cmp(&b.record.started_at).then(a.record.name.cmp(&b.record.name))
        });
        all.into_iter().map(|kept| kept.view(&view)).collect()
    }

    /// Every execution's summary, oldest first, without reading a history
    /// back (the state page polls this over thousands of executions).
    pub fn summaries(&self) -> Vec<ExecutionSummary> {
        let executions = lock(&self.executions);
        let mut all: Vec<ExecutionSummary> = executions.values().map(Kept::summary).collect();
        all.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.name.cmp(&b.name)));
        all
    }

    pub fn execution(&self, name: &str) -> Option<ExecutionRecord> {
        lock(&self.executions).get(name).map(|kept| kept.view(ExecutionRecord::clone))
    }

    /// How many executions have each status: what a poller needs, without
    /// a summary of each.
    pub fn status_counts(&self) -> std::collections::BTreeMap<RunStatus, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for kept in lock(&self.executions).values() {
            *counts.entry(kept.record.status).or_insert(0) += 1;
        }
        counts
    }

    /// Executions still at work: running, or cleaning up after a failure.
    pub fn running(&self) -> usize {
        let cleanups = self.cleanups.load(std::sync::atomic::Ordering::SeqCst);
        cleanups
            + lock(&self.executions).values().filter(|kept| kept.record.status == RunStatus::Running).count()
    }

    /// Waits until no execution is running, or `limit` passes.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.running() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Starts an execution of any name (the dispatcher's are Stripe event
    /// ids; `reconcile --fix` names its own), unless one of that name exists.
    /// Returns whether it started.
    pub fn start_named(self: &Arc<Self>, workflow: Workflow, name: &str, input: Value) -> bool {
        self.spawn(workflow, name.to_owned(), input, false)
    }

    /// Starts an execution unless one of that name exists (`restart` runs
    /// an interrupted one again). Returns whether it started.
    fn spawn(self: &Arc<Self>, workflow: Workflow, name: String, input: Value, restart: bool) -> bool {
        let Some(machine) = self.machines.get(&workflow).cloned() else { return false };
        let record = ExecutionRecord {
            name: name.clone(),
            workflow: workflow.as_str().to_owned(),
            status: RunStatus::Running,
            error: None,
            cause: None,
            started_at: String::new(),
            stopped_at: None,
            input: input.clone(),
            output: None,
            history: Vec::new(),
            cleanup: None,
        };
        {
            let mut executions = lock(&self.executions);
            if executions.contains_key(&name) && !restart {
                return false;
            }
            save(self.dir.as_deref(), &record);
            executions.insert(name.clone(), Kept::new(record));
        }
        let this = Arc::clone(self);
        let run = async move {
            // Never closed, so this only waits for a slot.
            let _slot = this.running_slots.clone().acquire_owned().await.ok();
            let sink = {
                let executions = Arc::clone(&this.executions);
                move |execution: &str, event: &HistoryEvent| {
                    if let Some(Kept { record, .. }) = lock(&executions).get_mut(execution) {
                        if record.history.is_empty() {
                            record.started_at = event.timestamp.clone();
                        }
                        record.history.push(without_state_documents(event));
                    }
                }
            };
            let finished =
                asl::run(&machine, &name, input.clone(), this.tasks.as_ref(), &this.options, Some(&sink))
                    .await;
            let timed_out = matches!(finished.status, asl::ExecutionStatus::TimedOut { .. });
            if timed_out {
                this.cleanups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            this.record_finished(&name, finished);
            if timed_out {
                let cleanup = this.clean_up(workflow, &name, &input).await;
                this.cleanups.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(Kept { record, .. }) = lock(&this.executions).get_mut(&name) {
                    record.cleanup = Some(cleanup);
                    save(this.dir.as_deref(), record);
                }
            }
        };
        match &self.executor {
            Some(runtime) => drop(runtime.spawn(run)),
            None => drop(tokio::spawn(run)),
        }
        true
    }

    fn record_finished(&self, name: &str, finished: asl::Execution) {
        let mut executions = lock(&self.executions);
        if let Some(kept) = executions.get_mut(name) {
            let record = &mut kept.record;
            record.history = finished.history;
            record.started_at = finished.started_at;
            record.stopped_at = Some(finished.stopped_at);
            record.output = finished.output;
            match finished.status {
                asl::ExecutionStatus::Succeeded => record.status = RunStatus::Succeeded,
                asl::ExecutionStatus::Failed { error, cause } => {
                    record.status = RunStatus::Failed;
                    record.error = Some(error);
                    record.cause = Some(cause);
                }
                asl::ExecutionStatus::TimedOut { error, cause } => {
                    record.status = RunStatus::TimedOut;
                    record.error = Some(error);
                    record.cause = Some(cause);
                }
            }
            // Whole on disk; in memory, a succeeded execution keeps its
            // history packed and without the state documents (each state's
            // input and output: the bulk of it, and what a failure is read from).
            save(self.dir.as_deref(), record);
            tracing::info!(execution = %name, status = ?record.status, "execution finished");
            kept.pack_if_succeeded();
        }
    }

    /// What the stack's EventBridge rule does for an execution that stopped
    /// outside its Catch paths: the clean-up step, given Step Functions'
    /// status change, retried as EventBridge retries a failed target
    /// (waiting out a lease the stopped execution may still hold).
    async fn clean_up(&self, workflow: Workflow, name: &str, input: &Value) -> String {
        let change = serde_json::json!({"detail": {
            "name": name,
            "status": "TIMED_OUT",
            "stateMachineArn": workflow.as_str(),
            "input": input.to_string(),
        }});
        let wait = Duration::from_secs_f64((60.0 * self.options.time_scale).max(0.0));
        for attempt in 1..=CLEANUP_ATTEMPTS {
            match self.tasks.steps.invoke(StepName::CleanUpExecution, change.clone()).await {
                Ok(report) => {
                    tracing::info!(execution = %name, report = %report, "stopped execution cleaned up");
                    return report["done"].as_str().unwrap_or_default().to_owned();
                }
                Err(error)
                    if attempt < CLEANUP_ATTEMPTS
                        && matches!(
                            error.error_name(),
                            "Tenancy.Transient" | "Tenancy.Throttled" | "Tenancy.LeaseHeld"
                        ) =>
                {
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::error!(execution = %name, error = %error_chain(&error), "clean-up failed");
                    return format!("clean-up failed: {}", error_chain(&error));
                }
            }
        }
        "clean-up gave up".to_owned()
    }
}

/// How often a failed clean-up is tried (EventBridge retries a target for up
/// to a day; a local run, a few times a scaled minute apart).
const CLEANUP_ATTEMPTS: u32 = 5;

/// Lets the dispatcher start local executions through the same port as
/// Step Functions'.
pub struct LocalStarter(pub Arc<LocalWorkflows>);

#[async_trait]
impl WorkflowStarter for LocalStarter {
    async fn start(
        &self,
        workflow: Workflow,
        name: &StripeEventId,
        input: &Value,
    ) -> Result<StartOutcome, WorkflowError> {
        if !self.0.machines.contains_key(&workflow) {
            return Err(WorkflowError::Rejected(format!("no local state machine for {}", workflow.as_str())));
        }
        if self.0.spawn(workflow, name.to_string(), input.clone(), false) {
            Ok(StartOutcome::Started)
        } else {
            Ok(StartOutcome::AlreadyStarted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_history_drops_state_documents_and_keeps_each_tasks_result_and_errors() {
        let event = |kind: &str, detail: Value| HistoryEvent {
            id: 1,
            timestamp: "2026-11-27T00:00:00.000Z".into(),
            kind: kind.into(),
            state: Some("LaunchTenant".into()),
            detail,
        };
        let document = serde_json::json!({"event": {"id": "evt_1"}, "tenant": {"tenant_id": "tnt_1"}});
        let entered =
            event("TaskStateEntered", serde_json::json!({"name": "LaunchTenant", "input": document}));
        assert_eq!(without_state_documents(&entered).detail, serde_json::json!({"name": "LaunchTenant"}));
        let exited = event(
            "TaskStateExited",
            serde_json::json!({"name": "LaunchTenant", "output": document, "next": "Wait"}),
        );
        assert_eq!(
            without_state_documents(&exited).detail,
            serde_json::json!({"name": "LaunchTenant", "next": "Wait"})
        );
        for kept in [
            event("TaskSucceeded", serde_json::json!({"resource": "arn", "output": {"service_arn": "x"}})),
            event("TaskFailed", serde_json::json!({"error": "Tenancy.Transient", "cause": "later"})),
        ] {
            assert_eq!(without_state_documents(&kept), kept);
        }
    }

    /// A failed Lambda's Cause, as a catcher sees it, is the function's error
    /// object as JSON text (LocalStack's
    /// tests/aws/services/stepfunctions/v2/error_handling/test_task_lambda.py::test_raise_exception_catch,
    /// validated); ours is the Diagnostic lambda_runtime posts.
    #[test]
    fn lambda_error_cause_is_the_error_object_as_json() {
        let error = lambda_task_error(StepError::TenantUnhealthy("ECS: 502".into()));
        assert_eq!(error.error, "Tenancy.TenantUnhealthy");
        assert_eq!(
            error.cause,
            r#"{"errorType":"Tenancy.TenantUnhealthy","errorMessage":"tenant service unhealthy: ECS: 502"}"#
        );
    }

    #[test]
    fn a_succeeded_execution_is_kept_deflated_and_reads_back_whole() {
        let states = ["RecordTenant", "LaunchTenant", "WaitForHealthy", "PublishDns", "SendWelcomeMail"];
        let history = (0..60)
            .map(|i| HistoryEvent {
                id: i + 1,
                timestamp: format!("2026-11-28T10:{:02}:00.000Z", i % 60),
                kind: if i % 2 == 0 { "TaskStateEntered" } else { "TaskSucceeded" }.into(),
                state: Some(states[i as usize % states.len()].into()),
                detail: serde_json::json!({"name": states[i as usize % states.len()], "output": {"ok": i}}),
            })
            .collect();
        let record = ExecutionRecord {
            name: "evt_1".into(),
            workflow: "provision".into(),
            status: RunStatus::Succeeded,
            error: None,
            cause: None,
            started_at: "2026-11-28T10:00:00.000Z".into(),
            stopped_at: Some("2026-11-28T10:01:00.000Z".into()),
            input: serde_json::json!({"event": {"id": "evt_1"}}),
            output: Some(serde_json::json!({"tenant_id": "tnt_1"})),
            history,
            cleanup: None,
        };
        // What is packed: the record less its state documents.
        let compact = ExecutionRecord {
            history: record.history.iter().map(without_state_documents).collect(),
            ..record.clone()
        };
        let text = serde_json::to_string(&compact).unwrap();
        let kept = Kept::new(record.clone());
        let packed = kept.packed.as_deref().expect("a succeeded execution is packed");
        assert!(packed.len() * 4 < text.len(), "{} bytes packed from {}", packed.len(), text.len());
        assert!(kept.record.history.is_empty());
        assert_eq!(kept.summary().states, record.states_passed());
        assert_eq!(kept.view(|whole| serde_json::to_string(whole).unwrap()), text);
    }

    #[test]
    fn timed_out_is_named_as_step_functions_names_it() {
        assert_eq!(serde_json::to_value(RunStatus::TimedOut).unwrap(), "TIMED_OUT");
    }
}
