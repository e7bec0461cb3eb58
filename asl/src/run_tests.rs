//! Execution semantics, one state type or feature at a time.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::testkit::{FakeTasks, exec, failure, instant, kinds, machine, retry_delays, timed_out};

/// A machine around one Task `Work`. Unless the task says otherwise it goes
/// on to `Handler`, an echoing Pass, so catchers have a reachable target.
fn one_task(task: Value) -> StateMachine {
    let mut task = task;
    task["Type"] = json!("Task");
    if task.get("Resource").is_none() {
        task["Resource"] = json!("arn:work");
    }
    if task.get("Next").is_none() {
        task["Next"] = json!("Handler");
    }
    let mut states = json!({"Work": task, "Handler": {"Type": "Pass", "End": true}});
    if task.to_string().contains("TimeoutHandler") {
        states["TimeoutHandler"] = json!({"Type": "Pass", "Result": "timed out", "End": true});
    }
    machine(json!({"StartAt": "Work", "States": states}))
}

fn single(state: Value) -> StateMachine {
    machine(json!({"StartAt": "Only", "States": {"Only": state}}))
}

#[tokio::test]
async fn pass_applies_paths_result_and_parameters() {
    let tasks = FakeTasks::new();
    let input = json!({"a": {"b": 1}, "keep": true});

    let echo = single(json!({"Type": "Pass", "End": true}));
    assert_eq!(exec(&echo, input.clone(), &tasks).await.output, Some(input.clone()));

    let result = single(json!({"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.a.c", "End": true}));
    assert_eq!(
        exec(&result, input.clone(), &tasks).await.output,
        Some(json!({"a": {"b": 1, "c": {"x": 1}}, "keep": true}))
    );

    let params = single(json!({
        "Type": "Pass",
        "InputPath": "$.a",
        "Parameters": {
            "b.$": "$.b",
            "exec.$": "$$.Execution.Name",
            "state.$": "$$.State.Name",
            "machine.$": "$$.StateMachine.Name",
            "original.$": "$$.Execution.Input.keep",
            "id.$": "$$.Execution.Id",
            "started.$": "$$.Execution.StartTime",
            "entered.$": "$$.State.EnteredTime"
        },
        "ResultPath": "$.p",
        "OutputPath": "$.p",
        "End": true
    }))
    .with_name("Provision");
    let out = exec(&params, input.clone(), &tasks).await.output.unwrap();
    assert_eq!(out["b"], json!(1));
    assert_eq!(out["exec"], json!("exec-1"));
    assert_eq!(out["state"], json!("Only"));
    assert_eq!(out["machine"], json!("Provision"));
    assert_eq!(out["original"], json!(true));
    assert_eq!(out["id"], json!("arn:aws:states:local:000000000000:execution:Provision:exec-1"));
    for field in ["started", "entered"] {
        assert!(clock::parse_rfc3339(out[field].as_str().unwrap()).is_some(), "{field}: {out}");
    }
}

#[tokio::test]
async fn null_paths_mean_empty_object_and_discarded_result() {
    let tasks = FakeTasks::new();
    let input = json!({"a": 1});
    let null_in = single(json!({"Type": "Pass", "InputPath": null, "End": true}));
    assert_eq!(exec(&null_in, input.clone(), &tasks).await.output, Some(json!({})));
    let null_out = single(json!({"Type": "Pass", "OutputPath": null, "End": true}));
    assert_eq!(exec(&null_out, input.clone(), &tasks).await.output, Some(json!({})));
    let discard = single(json!({"Type": "Pass", "Result": 5, "ResultPath": null, "End": true}));
    assert_eq!(exec(&discard, input.clone(), &tasks).await.output, Some(input));
}

#[tokio::test]
async fn task_processes_input_and_output_in_spec_order() {
    let tasks = FakeTasks::new().returning("arn:work", json!({"a": {"b": 42}, "noise": [1, 2, 3]}));
    let m = one_task(json!({
        "InputPath": "$.order",
        "Parameters": {
            "id.$": "$.id",
            "label.$": "States.Format('order {} for {}', $.id, $$.Execution.Input.customer)",
            "fixed": {"nested": ["x"]}
        },
        "ResultSelector": {"answer.$": "$.a.b"},
        "ResultPath": "$.result",
        "OutputPath": "$.result"
    }));
    let ex = exec(&m, json!({"order": {"id": "o-1"}, "customer": "cus_9"}), &tasks).await;
    assert!(ex.succeeded(), "{:?}", ex.status);
    assert_eq!(
        tasks.inputs("arn:work"),
        vec![json!({"id": "o-1", "label": "order o-1 for cus_9", "fixed": {"nested": ["x"]}})]
    );
    assert_eq!(ex.output, Some(json!({"answer": 42})));
    assert_eq!(
        kinds(&ex),
        vec![
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskSucceeded",
            "TaskStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let scheduled = ex.events("TaskScheduled").next().unwrap();
    assert_eq!(scheduled.detail["resource"], json!("arn:work"));
    assert_eq!(scheduled.detail["parameters"]["id"], json!("o-1"));
}

#[tokio::test]
async fn result_path_defaults_to_replacing_the_input() {
    let tasks = FakeTasks::new().returning("arn:work", json!("result"));
    let ex = exec(&one_task(json!({})), json!({"in": 1}), &tasks).await;
    assert_eq!(ex.output, Some(json!("result")));
    let keep = one_task(json!({"ResultPath": null}));
    assert_eq!(exec(&keep, json!({"in": 1}), &tasks).await.output, Some(json!({"in": 1})));
}

#[tokio::test]
async fn missing_paths_fail_with_states_runtime_and_are_not_caught() {
    let catch_all = json!([{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]);
    let retry_all = json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]);
    for (task, needle) in [
        (json!({"InputPath": "$.nope"}), "Invalid InputPath `$.nope`"),
        (
            json!({"Parameters": {"x.$": "$.nope"}}),
            "Parameters: field `x.$`: the JSONPath `$.nope` could not be found",
        ),
        (json!({"ResultSelector": {"x.$": "$.nope"}}), "ResultSelector: field `x.$`"),
        (json!({"OutputPath": "$.nope"}), "Invalid OutputPath `$.nope`"),
        (json!({"ResultPath": "$.in.deeper"}), "not a JSON object"),
        (json!({"Parameters": {"x.$": "States.StringToJson($.in)"}}), "must be a string"),
    ] {
        let mut task = task;
        task["Catch"] = catch_all.clone();
        task["Retry"] = retry_all.clone();
        let tasks = FakeTasks::new();
        let ex = exec(&one_task(task.clone()), json!({"in": 5}), &tasks).await;
        let (error, cause) = failure(&ex);
        assert_eq!(error, "States.Runtime", "{task}");
        assert!(cause.contains(needle), "{task}: {cause}");
        assert!(cause.contains("state 'Work' (entered at the event id #2)"), "{cause}");
        assert!(ex.events("PassStateEntered").next().is_none(), "caught a runtime error: {task}");
        assert!(tasks.calls("arn:work") <= 1, "retried a runtime error: {task}");
        assert_eq!(ex.history.last().unwrap().kind, "ExecutionFailed");
    }
}

/// An oversized task result is caught by `States.ALL`, as AWS recorded in
/// LocalStack's tests/aws/services/stepfunctions/v2/error_handling/
/// test_states_errors.py::test_task_lambda_catch_state_all_data_limit_exceeded_on_large_utf8_response
/// (validated): `LambdaFunctionFailed` with `States.DataLimitExceeded`, then
/// the catcher's state gets `{"Error", "Cause"}`. The Developer Guide's
/// error-handling page still calls it uncatchable; the recording wins.
#[tokio::test]
async fn oversized_task_result_is_a_data_limit_error_that_states_all_catches() {
    let big = json!("x".repeat(MAX_PAYLOAD_BYTES));
    let tasks = FakeTasks::new().returning("arn:work", big.clone());
    let m = one_task(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]}));
    let ex = exec(&m, json!({}), &tasks).await;
    assert!(ex.succeeded(), "{:?}", ex.status);
    let cause = "The state/task 'arn:work' returned a result with a size exceeding the maximum number of \
                 bytes service limit.";
    assert_eq!(ex.output, Some(json!({"Error": "States.DataLimitExceeded", "Cause": cause})));
    let failed = ex.events("TaskFailed").next().expect("a TaskFailed event");
    assert_eq!(failed.detail["error"], json!("States.DataLimitExceeded"));
    assert!(ex.events("TaskSucceeded").next().is_none());

    // Without a catcher the execution fails with it.
    let uncaught = one_task(json!({}));
    let (error, failed_cause) = failure(&exec(&uncaught, json!({}), &tasks).await);
    assert_eq!((error.as_str(), failed_cause.as_str()), ("States.DataLimitExceeded", cause));

    // Just under the quota is fine.
    let ok = json!("x".repeat(MAX_PAYLOAD_BYTES - 2));
    let tasks = FakeTasks::new().returning("arn:work", ok);
    assert!(exec(&uncaught, json!({}), &tasks).await.succeeded());
}

/// An oversized execution input, or task input after Parameters, stays
/// terminal: no catcher sees it (Developer Guide, "Handling errors in Step
/// Functions workflows", States.DataLimitExceeded; LocalStack's
/// test_states_errors.py::test_start_large_input).
#[tokio::test]
async fn oversized_inputs_are_terminal_data_limit_errors() {
    let big = json!("x".repeat(MAX_PAYLOAD_BYTES));
    let m = one_task(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]}));
    let (error, cause) = failure(&exec(&m, big, &FakeTasks::new()).await);
    assert_eq!(error, "States.DataLimitExceeded");
    assert!(cause.contains("the execution input"), "{cause}");
    let padded = one_task(json!({
        "Parameters": {"a.$": "$.s", "b.$": "$.s"},
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]
    }));
    let half = json!({"s": "x".repeat(MAX_PAYLOAD_BYTES / 2)});
    let tasks = FakeTasks::new();
    let (error, cause) = failure(&exec(&padded, half, &tasks).await);
    assert_eq!(error, "States.DataLimitExceeded");
    assert!(cause.contains("the input of task state 'Work'"), "{cause}");
    assert_eq!(tasks.calls("arn:work"), 0);
}

#[tokio::test]
async fn retries_with_backoff_until_success() {
    let tasks = FakeTasks::new().failing("arn:work", 3, "Tenancy.Transient", json!({"ok": true}));
    let m = one_task(json!({
        "Retry": [{"ErrorEquals": ["Tenancy.Transient"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 5}]
    }));
    let ex = exec(&m, json!({}), &tasks).await;
    assert!(ex.succeeded(), "{:?}", ex.status);
    assert_eq!(tasks.calls("arn:work"), 4);
    assert_eq!(retry_delays(&ex), vec![2.0, 6.0, 18.0]);
    let counts: Vec<Value> = ex.events("TaskScheduled").map(|e| e.detail["retryCount"].clone()).collect();
    assert_eq!(counts, vec![json!(0), json!(1), json!(2), json!(3)]);
    let failed: Vec<&HistoryEvent> = ex.events("TaskFailed").collect();
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[2].detail["error"], json!("Tenancy.Transient"));
    assert_eq!(failed[2].detail["cause"], json!("attempt 3 failed"));
    assert_eq!(failed[2].detail["retry"]["attempt"], json!(3));
    assert_eq!(failed[2].detail["retry"]["maxAttempts"], json!(5));
}

#[tokio::test]
async fn retry_count_is_visible_to_parameters() {
    let tasks = FakeTasks::new().failing("arn:work", 2, "E", json!(null));
    let m = one_task(json!({
        "Parameters": {"try.$": "$$.State.RetryCount"},
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 1}]
    }));
    exec(&m, json!({}), &tasks).await;
    assert_eq!(tasks.inputs("arn:work"), vec![json!({"try": 0}), json!({"try": 1}), json!({"try": 2})]);
}

/// `$$.State.RetryCount` exists only in Task states: a Pass state's context
/// object has just `Name` and `EnteredTime` (LocalStack's
/// tests/aws/services/stepfunctions/v2/base/test_base.py::test_query_context_object_values,
/// validated), so reading it there is a missing path, `States.Runtime`.
#[tokio::test]
async fn retry_count_exists_only_in_task_states() {
    let m = single(json!({"Type": "Pass", "Parameters": {"n.$": "$$.State.RetryCount"}, "End": true}));
    let (error, cause) = failure(&exec(&m, json!({}), &FakeTasks::new()).await);
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("$$.State.RetryCount"), "{cause}");
}

#[tokio::test]
async fn retry_defaults_and_max_delay() {
    let tasks = FakeTasks::new().failing("arn:work", 99, "E", json!(null));
    let defaults = one_task(json!({"Retry": [{"ErrorEquals": ["E"]}]}));
    let ex = exec(&defaults, json!({}), &tasks).await;
    assert_eq!(retry_delays(&ex), vec![1.0, 2.0, 4.0]);
    assert_eq!(tasks.calls("arn:work"), 4);
    assert_eq!(failure(&ex).0, "E");
    let last = ex.events("TaskFailed").last().unwrap();
    assert_eq!(last.detail["retriesExhausted"]["maxAttempts"], json!(3));
    assert_eq!(last.detail["unhandled"], json!(true));

    let tasks = FakeTasks::new().failing("arn:work", 99, "E", json!(null));
    let capped = one_task(json!({
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 3, "MaxAttempts": 4, "MaxDelaySeconds": 10}]
    }));
    assert_eq!(retry_delays(&exec(&capped, json!({}), &tasks).await), vec![3.0, 6.0, 10.0, 10.0]);

    let tasks = FakeTasks::new().failing("arn:work", 99, "E", json!(null));
    let never = one_task(json!({"Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 0}]}));
    let ex = exec(&never, json!({}), &tasks).await;
    assert_eq!(tasks.calls("arn:work"), 1);
    assert!(retry_delays(&ex).is_empty());
}

#[tokio::test]
async fn full_jitter_stays_below_the_backoff() {
    let tasks = FakeTasks::new().failing("arn:work", 99, "E", json!(null));
    let m = one_task(json!({
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 4, "MaxAttempts": 6, "JitterStrategy": "FULL"}]
    }));
    let delays = retry_delays(&exec(&m, json!({}), &tasks).await);
    assert_eq!(delays.len(), 6);
    for (i, d) in delays.iter().enumerate() {
        let ceiling = 4.0 * 2f64.powi(i as i32);
        assert!((0.0..=ceiling).contains(d), "retry {i}: {d} > {ceiling}");
    }
}

#[tokio::test]
async fn first_matching_retrier_wins_and_counts_its_own_attempts() {
    // The example from the Step Functions error-handling guide: errors A, B,
    // C, B against retriers [A,B] (max 2) and [C] (interval 5).
    let errors = ["ErrorA", "ErrorB", "ErrorC", "ErrorB"];
    let tasks = FakeTasks::new().on("arn:work", move |n, _| {
        Err(TaskError::new(errors.get(n as usize - 1).copied().unwrap_or("Done"), "x"))
    });
    let m = one_task(json!({
        "Retry": [
            {"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2},
            {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5},
            {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 60}
        ],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]
    }));
    let ex = exec(&m, json!({}), &tasks).await;
    assert!(ex.succeeded());
    assert_eq!(tasks.calls("arn:work"), 4);
    assert_eq!(retry_delays(&ex), vec![1.0, 2.0, 5.0]);
    let retriers: Vec<Value> =
        ex.events("TaskFailed").map(|e| e.detail["retry"]["retrier"].clone()).collect();
    assert_eq!(retriers, vec![json!(0), json!(0), json!(1), Value::Null]);
    let last = ex.events("TaskFailed").last().unwrap();
    assert_eq!(last.detail["retriesExhausted"]["retrier"], json!(0));
    assert_eq!(last.detail["caught"]["next"], json!("Handler"));
}

#[tokio::test]
async fn catch_routes_with_result_path() {
    let tasks = FakeTasks::new().on("arn:work", |_, _| Err(TaskError::new("Tenancy.Boom", "it broke")));
    let into = one_task(json!({
        "Catch": [
            {"ErrorEquals": ["Other"], "Next": "TimeoutHandler"},
            {"ErrorEquals": ["Tenancy.Boom"], "ResultPath": "$.error", "Next": "Handler"}
        ]
    }));
    let ex = exec(&into, json!({"order": 1}), &tasks).await;
    assert!(ex.succeeded());
    assert_eq!(ex.output, Some(json!({"order": 1, "error": {"Error": "Tenancy.Boom", "Cause": "it broke"}})));
    let exited = ex.events("TaskStateExited").next().unwrap();
    assert_eq!(exited.detail["next"], json!("Handler"));
    assert_eq!(exited.detail["caught"], json!("Tenancy.Boom"));

    let replace = one_task(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]}));
    let ex = exec(&replace, json!({"order": 1}), &tasks).await;
    assert_eq!(ex.output, Some(json!({"Error": "Tenancy.Boom", "Cause": "it broke"})));

    let keep =
        one_task(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": null, "Next": "Handler"}]}));
    assert_eq!(exec(&keep, json!({"order": 1}), &tasks).await.output, Some(json!({"order": 1})));
}

#[tokio::test]
async fn uncaught_task_error_fails_the_execution_with_its_name() {
    let tasks = FakeTasks::new().on("arn:work", |_, _| Err(TaskError::new("Tenancy.Boom", "it broke")));
    let m = one_task(json!({"Catch": [{"ErrorEquals": ["Other"], "Next": "Handler"}]}));
    let ex = exec(&m, json!({}), &tasks).await;
    assert_eq!(failure(&ex), ("Tenancy.Boom".into(), "it broke".into()));
    assert_eq!(ex.output, None);
    assert_eq!(ex.history.last().unwrap().detail, json!({"error": "Tenancy.Boom", "cause": "it broke"}));
}

#[tokio::test]
async fn task_failed_matches_everything_but_timeouts() {
    let tasks = FakeTasks::new().failing("arn:work", 1, "Anything.AtAll", json!("ok"));
    let m = one_task(json!({"Retry": [{"ErrorEquals": ["States.TaskFailed"]}]}));
    let ex = exec(&m, json!({}), &tasks).await;
    assert!(ex.succeeded());
    assert_eq!(retry_delays(&ex), vec![1.0]);
}

#[tokio::test(start_paused = true)]
async fn task_timeout_is_states_timeout_not_task_failed() {
    let tasks = FakeTasks::new().slow("arn:work", Duration::from_secs(60));
    let m = one_task(json!({
        "TimeoutSeconds": 5,
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 3}],
        "Catch": [
            {"ErrorEquals": ["States.TaskFailed"], "Next": "Handler"},
            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timeout", "Next": "TimeoutHandler"}
        ]
    }));
    let started = tokio::time::Instant::now();
    let ex = exec(&m, json!({}), &tasks).await;
    assert!(ex.succeeded());
    assert_eq!(tasks.calls("arn:work"), 1, "TaskFailed must not retry a timeout");
    assert_eq!(ex.output, Some(json!("timed out")));
    let event = ex.events("TaskTimedOut").next().expect("a TaskTimedOut event");
    assert_eq!(event.detail["error"], json!("States.Timeout"));
    assert_eq!(event.detail["caught"]["next"], json!("TimeoutHandler"));
    // time_scale 0: timeouts run on unscaled seconds.
    assert_eq!(started.elapsed().as_secs(), 5);
}

/// A caught task timeout carries an empty Cause: LocalStack's
/// tests/aws/services/stepfunctions/v2/timeouts/test_timeouts.py::test_fixed_timeout_lambda
/// (validated) records `LambdaFunctionTimedOut` with `error: States.Timeout`
/// and no cause, and the execution then fails with no cause either.
#[tokio::test(start_paused = true)]
async fn task_timeout_has_an_empty_cause() {
    let tasks = FakeTasks::new().slow("arn:work", Duration::from_secs(60));
    let caught = one_task(json!({
        "TimeoutSeconds": 5,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "Handler"}]
    }));
    let ex = exec(&caught, json!({"in": 1}), &tasks).await;
    assert_eq!(ex.output, Some(json!({"in": 1, "error": {"Error": "States.Timeout", "Cause": ""}})));
    assert_eq!(ex.events("TaskTimedOut").next().unwrap().detail["cause"], json!(""));

    let uncaught = one_task(json!({"TimeoutSeconds": 5}));
    let ex = exec(&uncaught, json!({}), &tasks).await;
    assert_eq!(failure(&ex), ("States.Timeout".into(), String::new()));
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_retried_by_states_all_and_only_the_delays_scaled() {
    let tasks = FakeTasks::new().slow("arn:work", Duration::from_secs(60));
    let m = one_task(json!({
        "TimeoutSeconds": 10,
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 4}]
    }));
    let started = tokio::time::Instant::now();
    let options = RunOptions { time_scale: 0.5, ..RunOptions::default() };
    let ex = run(&m, "e", json!({}), &tasks, &options, None).await;
    assert_eq!(failure(&ex).0, "States.Timeout");
    assert_eq!(tasks.calls("arn:work"), 3);
    // 3 × 10 s real timeouts, then the 4 s + 8 s delays halved.
    assert_eq!(started.elapsed().as_secs(), 36);
}

#[tokio::test(start_paused = true)]
async fn execution_timeout_stops_a_long_wait() {
    let m = machine(json!({
        "StartAt": "Nap",
        "TimeoutSeconds": 10,
        "States": {"Nap": {"Type": "Wait", "Seconds": 100, "End": true}}
    }));
    let started = tokio::time::Instant::now();
    let options = RunOptions { time_scale: 1.0, ..RunOptions::default() };
    let ex = run(&m, "e", json!({}), &FakeTasks::new(), &options, None).await;
    let (error, cause) = timed_out(&ex);
    assert_eq!(error, "States.Timeout");
    assert!(cause.contains("TimeoutSeconds (10)"));
    assert_eq!(ex.history.last().unwrap().kind, "ExecutionTimedOut");
    assert_eq!(started.elapsed().as_secs(), 10);
}

/// An execution over its TimeoutSeconds ends TIMED_OUT, not FAILED
/// (LocalStack's tests/aws/services/stepfunctions/v2/timeouts/
/// test_timeouts.py::test_global_timeout, validated: describe_execution says
/// `"status": "TIMED_OUT"`, for a 60 s Wait under a shorter timeout).
#[tokio::test(start_paused = true)]
async fn execution_timeout_status_is_timed_out() {
    let m = machine(json!({
        "StartAt": "State_1",
        "TimeoutSeconds": 5,
        "States": {
            "State_1": {"Type": "Wait", "Seconds": 60, "Next": "State_2"},
            "State_2": {"Type": "Pass", "End": true}
        }
    }));
    let ex = run(&m, "e", json!({}), &FakeTasks::new(), &RunOptions::default(), None).await;
    assert!(matches!(ex.status, ExecutionStatus::TimedOut { .. }), "{:?}", ex.status);
    assert!(!ex.succeeded());
    assert_eq!(serde_json::to_value(&ex).unwrap()["status"]["status"], json!("TIMED_OUT"));
}

/// Issue 12: the execution timeout counts waits at their unscaled length and
/// task work at real time, so a scaled run times out when AWS would, not
/// sooner. Here TimeoutSeconds is 60 and a task takes 20 s of real time:
/// the old rule (60 s × 0.01 = 0.6 s of real time) killed it.
#[tokio::test(start_paused = true)]
async fn execution_timeout_counts_real_task_time_and_unscaled_waits() {
    let m = machine(json!({
        "StartAt": "Nap",
        "TimeoutSeconds": 60,
        "States": {
            "Nap": {"Type": "Wait", "Seconds": 30, "Next": "Work"},
            "Work": {"Type": "Task", "Resource": "arn:work", "End": true}
        }
    }));
    let options = RunOptions { time_scale: 0.01, ..RunOptions::default() };
    let quick = FakeTasks::new().slow("arn:work", Duration::from_secs(20));
    let started = tokio::time::Instant::now();
    let ex = run(&m, "e", json!({}), &quick, &options, None).await;
    assert!(ex.succeeded(), "30 s of waiting + 20 s of work fit in 60 s: {:?}", ex.status);
    assert_eq!(started.elapsed(), Duration::from_millis(20_300));

    // 30 s of waiting + 40 s of work do not: the task is cut off 30 s in.
    let slow = FakeTasks::new().slow("arn:work", Duration::from_secs(40));
    let started = tokio::time::Instant::now();
    let ex = run(&m, "e", json!({}), &slow, &options, None).await;
    assert_eq!(timed_out(&ex).0, "States.Timeout");
    assert_eq!(started.elapsed(), Duration::from_millis(30_300));

    // A wait longer than what is left times out at the scaled moment the
    // timeout falls: 60 s of workflow time into a 100 s wait, at 0.01.
    let long_wait = machine(json!({
        "StartAt": "Nap",
        "TimeoutSeconds": 60,
        "States": {"Nap": {"Type": "Wait", "Seconds": 100, "End": true}}
    }));
    let started = tokio::time::Instant::now();
    let ex = run(&long_wait, "e", json!({}), &quick, &options, None).await;
    assert_eq!(timed_out(&ex).0, "States.Timeout");
    assert_eq!(started.elapsed(), Duration::from_millis(600));

    // With time_scale 0 nothing sleeps, but the wait still counts in full.
    let ex = run(&long_wait, "e", json!({}), &quick, &instant(), None).await;
    assert_eq!(timed_out(&ex).0, "States.Timeout");
}

#[tokio::test(start_paused = true)]
async fn execution_timeout_interrupts_a_task() {
    let m = machine(json!({
        "StartAt": "Work",
        "TimeoutSeconds": 3,
        "States": {"Work": {"Type": "Task", "Resource": "arn:work", "TimeoutSeconds": 30, "End": true}}
    }));
    let tasks = FakeTasks::new().slow("arn:work", Duration::from_secs(60));
    let ex = run(&m, "e", json!({}), &tasks, &RunOptions::default(), None).await;
    assert_eq!(timed_out(&ex).0, "States.Timeout");
    assert_eq!(ex.history.last().unwrap().kind, "ExecutionTimedOut");
    assert!(ex.events("TaskTimedOut").next().is_none());
}

#[tokio::test(start_paused = true)]
async fn wait_sleeps_for_scaled_time() {
    let m = single(json!({"Type": "Wait", "Seconds": 30, "End": true}));
    let started = tokio::time::Instant::now();
    let options = RunOptions { time_scale: 0.5, ..RunOptions::default() };
    let ex = run(&m, "e", json!({"x": 1}), &FakeTasks::new(), &options, None).await;
    assert!(ex.succeeded());
    assert_eq!(started.elapsed().as_secs(), 15);
    assert_eq!(ex.output, Some(json!({"x": 1})));
    assert_eq!(ex.events("WaitStateEntered").next().unwrap().detail["waitSeconds"], json!(30.0));
}

#[tokio::test]
async fn wait_forms() {
    let tasks = FakeTasks::new();
    let input = json!({"secs": 7, "when": "2000-01-01T00:00:00Z", "bad": -1, "text": "soon"});
    let seconds_path = single(json!({"Type": "Wait", "SecondsPath": "$.secs", "End": true}));
    let ex = exec(&seconds_path, input.clone(), &tasks).await;
    assert_eq!(ex.events("WaitStateEntered").next().unwrap().detail["waitSeconds"], json!(7.0));
    assert!(ex.events("WaitStateExited").next().is_some());

    let past = single(json!({"Type": "Wait", "Timestamp": "2001-02-03T04:05:06Z", "End": true}));
    let ex = exec(&past, input.clone(), &tasks).await;
    assert_eq!(ex.events("WaitStateEntered").next().unwrap().detail["waitSeconds"], json!(0.0));

    let ts_path = single(json!({"Type": "Wait", "TimestampPath": "$.when", "End": true}));
    assert!(exec(&ts_path, input.clone(), &tasks).await.succeeded());

    let future = single(json!({"Type": "Wait", "Timestamp": "2999-01-01T00:00:00Z", "End": true}));
    let ex = exec(&future, input.clone(), &tasks).await;
    let secs = ex.events("WaitStateEntered").next().unwrap().detail["waitSeconds"].as_f64().unwrap();
    assert!(secs > 3.0e10, "{secs}");

    for (state, needle) in [
        (json!({"Type": "Wait", "SecondsPath": "$.bad", "End": true}), "non-negative integer"),
        (json!({"Type": "Wait", "SecondsPath": "$.gone", "End": true}), "could not be found"),
        (json!({"Type": "Wait", "TimestampPath": "$.text", "End": true}), "RFC 3339"),
    ] {
        let ex = exec(&single(state), input.clone(), &tasks).await;
        let (error, cause) = failure(&ex);
        assert_eq!(error, "States.Runtime");
        assert!(cause.contains(needle), "{cause}");
        assert_eq!(kinds(&ex), vec!["ExecutionStarted", "WaitStateEntered", "ExecutionFailed"]);
    }
}

fn router() -> StateMachine {
    machine(json!({
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "InputPath": "$.order",
                "OutputPath": "$.meta",
                "Choices": [
                    {"Variable": "$.total", "NumericGreaterThanEquals": 100, "Next": "Big"},
                    {"And": [
                        {"Variable": "$.coupon", "IsPresent": true},
                        {"Not": {"Variable": "$.coupon", "StringEquals": ""}}
                    ], "Next": "Discounted"}
                ],
                "Default": "Small"
            },
            "Big": {"Type": "Pass", "Result": "big", "End": true},
            "Discounted": {"Type": "Pass", "Result": "discounted", "End": true},
            "Small": {"Type": "Succeed"}
        }
    }))
}

#[tokio::test]
async fn choice_routes_in_order_with_default() {
    let m = router();
    let tasks = FakeTasks::new();
    let run_with = |order: Value| {
        let m = &m;
        let tasks = &tasks;
        async move { exec(m, json!({"order": order}), tasks).await }
    };
    assert_eq!(run_with(json!({"total": 150, "coupon": "X", "meta": 1})).await.output, Some(json!("big")));
    assert_eq!(
        run_with(json!({"total": 5, "coupon": "X", "meta": 1})).await.output,
        Some(json!("discounted"))
    );
    let small = run_with(json!({"total": 5, "coupon": "", "meta": {"m": 1}})).await;
    assert_eq!(small.output, Some(json!({"m": 1})));
    let exited = small.events("ChoiceStateExited").next().unwrap();
    assert_eq!(exited.detail["next"], json!("Small"));
    assert_eq!(exited.detail["output"], json!({"m": 1}));
    // Default taken, but OutputPath `$.meta` is missing: runtime error.
    let (error, cause) = failure(&run_with(json!({"total": 5})).await);
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("OutputPath `$.meta`"), "{cause}");
    // A missing Variable is a runtime error too.
    let (error, cause) = failure(&run_with(json!({"coupon": "x"})).await);
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("`$.total`"), "{cause}");
}

#[tokio::test]
async fn choice_without_match_or_default_fails() {
    let m = machine(json!({
        "StartAt": "Only",
        "States": {
            "Only": {"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "Yes"}]},
            "Yes": {"Type": "Succeed"}
        }
    }));
    let ex = exec(&m, json!({"x": false}), &FakeTasks::new()).await;
    let (error, cause) = failure(&ex);
    assert_eq!(error, "States.NoChoiceMatched");
    assert!(cause.contains("'Only'"), "{cause}");
}

#[tokio::test]
async fn fail_state_with_literals_paths_and_intrinsics() {
    let tasks = FakeTasks::new();
    let literal = single(json!({"Type": "Fail", "Error": "Tenancy.Rejected", "Cause": "no"}));
    let ex = exec(&literal, json!({}), &tasks).await;
    assert_eq!(failure(&ex), ("Tenancy.Rejected".into(), "no".into()));
    assert_eq!(kinds(&ex), vec!["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]);
    assert_eq!(ex.events("FailStateEntered").next().unwrap().detail["error"], json!("Tenancy.Rejected"));

    let dynamic = single(json!({
        "Type": "Fail",
        "ErrorPath": "$.error.Error",
        "CausePath": "States.Format('{} (tenant {})', $.error.Cause, $.tenant)"
    }));
    let input = json!({"tenant": "t-1", "error": {"Error": "E", "Cause": "bad"}});
    assert_eq!(failure(&exec(&dynamic, input, &tasks).await), ("E".into(), "bad (tenant t-1)".into()));

    let bare = single(json!({"Type": "Fail"}));
    assert_eq!(failure(&exec(&bare, json!({}), &tasks).await), (String::new(), String::new()));

    let not_string = single(json!({"Type": "Fail", "ErrorPath": "$.n"}));
    let (error, cause) = failure(&exec(&not_string, json!({"n": 1}), &tasks).await);
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("ErrorPath must select a string"), "{cause}");
}

#[tokio::test]
async fn succeed_applies_its_paths() {
    let m = single(json!({"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}));
    let ex = exec(&m, json!({"a": {"b": 2}}), &FakeTasks::new()).await;
    assert_eq!(ex.output, Some(json!(2)));
    assert_eq!(
        kinds(&ex),
        vec!["ExecutionStarted", "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded"]
    );
}

#[tokio::test]
async fn endless_loop_is_stopped_by_max_transitions() {
    let m = machine(json!({
        "StartAt": "Ping",
        "States": {
            "Ping": {"Type": "Pass", "Next": "Pong"},
            "Pong": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": true, "Next": "Done"}],
                "Default": "Ping"
            },
            "Done": {"Type": "Succeed"}
        }
    }));
    let options = RunOptions { time_scale: 0.0, max_transitions: 50 };
    let ex = run(&m, "loop", json!({}), &FakeTasks::new(), &options, None).await;
    let (error, cause) = failure(&ex);
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("max_transitions (50)"), "{cause}");
    assert_eq!(ex.events("PassStateEntered").count(), 25);
    assert_eq!(ex.events("ChoiceStateEntered").count(), 25);
    assert_eq!(RunOptions::default().max_transitions, 10_000);
}

#[tokio::test]
async fn counter_loop_with_intrinsics() {
    let m = machine(json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.n", "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Bump"}],
                "Default": "Done"
            },
            "Bump": {
                "Type": "Pass",
                "Parameters": {"n.$": "States.MathAdd($.n, 1)", "seen.$": "States.Array($.n)"},
                "Next": "Check"
            },
            "Done": {
                "Type": "Pass",
                "Parameters": {"text.$": "States.Format('n={}', $.n)", "id.$": "States.UUID()"},
                "End": true
            }
        }
    }));
    let ex = exec(&m, json!({}), &FakeTasks::new()).await;
    let out = ex.output.unwrap();
    assert_eq!(out["text"], json!("n=3"));
    assert_eq!(out["id"].as_str().map(str::len), Some(36));
}

#[tokio::test]
async fn history_is_numbered_timestamped_and_streamed() {
    let streamed = Mutex::new(Vec::new());
    let sink = |execution: &str, event: &HistoryEvent| {
        assert_eq!(execution, "evt_123");
        streamed.lock().unwrap().push(event.clone());
    };
    let tasks = FakeTasks::new();
    let ex = run(
        &router(),
        "evt_123",
        json!({"order": {"total": 500, "meta": 1}}),
        &tasks,
        &instant(),
        Some(&sink),
    )
    .await;
    assert_eq!(*streamed.lock().unwrap(), ex.history);
    assert_eq!(ex.name, "evt_123");
    assert_eq!(ex.input, json!({"order": {"total": 500, "meta": 1}}));
    for (i, e) in ex.history.iter().enumerate() {
        assert_eq!(e.id, i as u64 + 1);
        assert!(clock::parse_rfc3339(&e.timestamp).is_some(), "{}", e.timestamp);
    }
    let started = &ex.history[0];
    assert_eq!(started.kind, "ExecutionStarted");
    assert_eq!(started.state, None);
    assert_eq!(started.detail["input"], ex.input);
    assert_eq!(ex.history[1].state.as_deref(), Some("Route"));
    assert!(clock::parse_rfc3339(&ex.started_at).is_some() && clock::parse_rfc3339(&ex.stopped_at).is_some());
    let text = serde_json::to_value(&ex).unwrap();
    assert_eq!(text["status"], json!({"status": "SUCCEEDED"}));
}

#[tokio::test]
async fn invalid_time_scale_fails_cleanly() {
    let m = single(json!({"Type": "Succeed"}));
    for scale in [f64::NAN, -1.0, f64::INFINITY] {
        let options = RunOptions { time_scale: scale, ..RunOptions::default() };
        let ex = run(&m, "e", json!({}), &FakeTasks::new(), &options, None).await;
        assert!(failure(&ex).1.contains("time_scale"));
    }
}

#[test]
fn execution_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let m = single(json!({"Type": "Succeed"}));
    let tasks = FakeTasks::new();
    let options = RunOptions::default();
    assert_send(run(&m, "e", json!({}), &tasks, &options, None));
}
