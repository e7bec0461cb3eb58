//! Whole-machine tests: substitutions and a workflow shaped like the
//! project's tenant provisioning.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::testkit::{FakeTasks, exec, failure, kinds, retry_delays};
use crate::{DefinitionError, Execution, RunOptions, StateMachine, TaskError, TracingSink, run};

const PROVISION: &str = include_str!("../testdata/provision.asl.json");
const RECORD: &str = "arn:aws:lambda:local:000000000000:function:record-signup";
const REJECT: &str = "arn:aws:lambda:local:000000000000:function:reject-signup";
const LAUNCH: &str = "arn:aws:lambda:local:000000000000:function:launch-tenant";
const HEALTH: &str = "arn:aws:lambda:local:000000000000:function:check-health";
const MAIL: &str = "arn:aws:lambda:local:000000000000:function:send-welcome-mail";
const COMPENSATE: &str = "arn:aws:lambda:local:000000000000:function:compensate";

fn substitutions() -> HashMap<String, String> {
    [
        ("RecordSignupFunctionArn", RECORD),
        ("RejectSignupFunctionArn", REJECT),
        ("LaunchTenantFunctionArn", LAUNCH),
        ("CheckHealthFunctionArn", HEALTH),
        ("SendWelcomeMailFunctionArn", MAIL),
        ("CompensateFunctionArn", COMPENSATE),
        ("Domain", "apps.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn provision() -> StateMachine {
    StateMachine::from_json(PROVISION, &substitutions()).unwrap().with_name("ProvisionTenant")
}

fn signup() -> Value {
    json!({"signup": {"email": "ann@example.com", "subdomain": "acme", "plan": "pro"}})
}

fn tenant() -> Value {
    json!({"tenantId": "t-1", "status": "PROVISIONING"})
}

/// Every step works; the tenant is healthy on health check number `healthy_on`.
fn world(healthy_on: u32) -> FakeTasks {
    FakeTasks::new()
        .returning(RECORD, tenant())
        .returning(LAUNCH, json!({"serviceArn": "arn:aws:ecs:svc/t-1", "taskCount": 1}))
        .on(HEALTH, move |n, _| Ok(json!({"healthy": n >= healthy_on, "targets": 1})))
        .returning(MAIL, json!({"messageId": "m-1"}))
        .returning(COMPENSATE, json!({"removed": true}))
}

async fn provision_run(tasks: &FakeTasks) -> Execution {
    let options = RunOptions { time_scale: 0.0, ..RunOptions::default() };
    run(&provision(), "evt_1", signup(), tasks, &options, Some(&TracingSink)).await
}

#[test]
fn provisioning_definition_loads() {
    let m = provision();
    assert_eq!(m.start_at(), "RecordSignup");
    assert_eq!(m.state_names().len(), 14);
    assert!(m.state_names().contains(&"Compensate"));
}

#[tokio::test]
async fn provisioning_happy_path() {
    let tasks = world(3);
    let ex = provision_run(&tasks).await;
    assert!(ex.succeeded(), "{:?}", ex.status);
    assert_eq!(ex.output, Some(tenant()));
    assert_eq!(tasks.inputs(RECORD), vec![json!({"eventId": "evt_1", "signup": signup()["signup"]})]);
    assert_eq!(tasks.inputs(LAUNCH), vec![json!({"tenantId": "t-1", "subdomain": "acme"})]);
    assert_eq!(tasks.inputs(HEALTH), vec![json!({"serviceArn": "arn:aws:ecs:svc/t-1"}); 3]);
    assert_eq!(
        tasks.inputs(MAIL),
        vec![json!({"tenantId": "t-1", "email": "ann@example.com", "url": "https://acme.apps.example.com"})]
    );
    assert_eq!(tasks.calls(COMPENSATE) + tasks.calls(REJECT), 0);
    assert_eq!(ex.events("WaitStateEntered").count(), 3);
    assert_eq!(ex.events("TaskFailed").count(), 0);
    let visited: Vec<&str> =
        ex.events("ChoiceStateExited").filter_map(|e| e.detail["next"].as_str()).collect();
    assert_eq!(visited, vec!["WaitForHealthy", "WaitForHealthy", "SendWelcomeMail"]);
    assert_eq!(kinds(&ex).last(), Some(&"ExecutionSucceeded"));
    assert!(ex.id.ends_with(":execution:ProvisionTenant:evt_1"));
}

#[tokio::test]
async fn provisioning_retries_a_transient_failure() {
    let tasks = world(1).failing(RECORD, 2, "Tenancy.Transient", tenant());
    let ex = provision_run(&tasks).await;
    assert!(ex.succeeded(), "{:?}", ex.status);
    assert_eq!(tasks.calls(RECORD), 3);
    assert_eq!(retry_delays(&ex), vec![2.0, 4.0]);
    let failed: Vec<_> = ex.events("TaskFailed").collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e.state.as_deref() == Some("RecordSignup")));
    assert_eq!(tasks.calls(COMPENSATE), 0);
}

#[tokio::test]
async fn provisioning_compensates_when_transient_failures_persist() {
    let tasks = world(1).failing(RECORD, 99, "Tenancy.Transient", tenant());
    let ex = provision_run(&tasks).await;
    assert_eq!(failure(&ex), ("Tenancy.Transient".into(), "attempt 4 failed".into()));
    assert_eq!(tasks.calls(RECORD), 4);
    assert_eq!(retry_delays(&ex), vec![2.0, 4.0, 8.0]);
    let compensate = tasks.inputs(COMPENSATE);
    assert_eq!(compensate.len(), 1);
    assert_eq!(
        compensate[0]["input"]["error"],
        json!({"Error": "Tenancy.Transient", "Cause": "attempt 4 failed"})
    );
    assert_eq!(tasks.calls(LAUNCH), 0);
}

#[tokio::test]
async fn provisioning_permanent_failure_compensates_then_fails() {
    let tasks =
        world(1).on(LAUNCH, |_, _| Err(TaskError::new("Tenancy.LaunchFailed", "ECS refused the service")));
    let ex = provision_run(&tasks).await;
    assert_eq!(failure(&ex), ("Tenancy.LaunchFailed".into(), "ECS refused the service".into()));
    assert_eq!(tasks.calls(LAUNCH), 1, "only Tenancy.Transient is retried");
    let compensate = tasks.inputs(COMPENSATE);
    assert_eq!(compensate.len(), 1);
    assert_eq!(compensate[0]["eventId"], json!("evt_1"));
    assert_eq!(compensate[0]["input"]["tenant"], tenant());
    assert_eq!(tasks.calls(HEALTH) + tasks.calls(MAIL), 0);
    let states: Vec<&str> = ex
        .history
        .iter()
        .filter(|e| e.kind.ends_with("StateEntered"))
        .filter_map(|e| e.state.as_deref())
        .collect();
    assert_eq!(states, vec!["RecordSignup", "LaunchTenant", "Compensate", "ProvisioningFailed"]);
    assert_eq!(ex.history.last().map(|e| e.kind.as_str()), Some("ExecutionFailed"));
}

#[tokio::test]
async fn provisioning_rejects_a_taken_subdomain() {
    let tasks =
        world(1).on(RECORD, |_, _| Err(TaskError::new("Tenancy.SubdomainTaken", "acme belongs to t-0")));
    let ex = provision_run(&tasks).await;
    assert_eq!(failure(&ex), ("Tenancy.SubdomainTaken".into(), "subdomain acme is already taken".into()));
    assert_eq!(
        tasks.inputs(REJECT),
        vec![json!({"email": "ann@example.com", "reason": "acme belongs to t-0"})]
    );
    assert_eq!(tasks.calls(LAUNCH) + tasks.calls(COMPENSATE), 0);
}

#[tokio::test]
async fn provisioning_gives_up_on_a_tenant_that_never_gets_healthy() {
    let tasks = world(u32::MAX);
    let ex = provision_run(&tasks).await;
    assert_eq!(
        failure(&ex),
        ("Tenancy.Unhealthy".into(), "tenant t-1 was not healthy after 5 checks".into())
    );
    assert_eq!(tasks.calls(HEALTH), 5);
    assert_eq!(tasks.calls(COMPENSATE), 1);
    assert_eq!(tasks.calls(MAIL), 0);
}

#[tokio::test]
async fn provisioning_retries_a_flaky_compensation() {
    let tasks = world(1).on(MAIL, |_, _| Err(TaskError::new("Tenancy.MailRejected", "bad address"))).failing(
        COMPENSATE,
        2,
        "Tenancy.Transient",
        json!({}),
    );
    let ex = provision_run(&tasks).await;
    assert_eq!(failure(&ex).0, "Tenancy.MailRejected");
    assert_eq!(tasks.calls(COMPENSATE), 3);
}

#[tokio::test]
async fn substitutions_are_applied_before_parsing() {
    let def = r#"{"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "${Fn}", "End": true}}}"#;
    let values: HashMap<String, String> = [("Fn".to_string(), "arn:fn:1".to_string())].into();
    let m = StateMachine::from_json(def, &values).unwrap();
    let tasks = FakeTasks::new().returning("arn:fn:1", json!("called"));
    assert_eq!(exec(&m, json!({}), &tasks).await.output, Some(json!("called")));

    let err = StateMachine::from_json(def, &HashMap::new()).unwrap_err();
    assert_eq!(err, DefinitionError::UnresolvedSubstitution("Fn".into()));
    assert_eq!(err.to_string(), "definition substitution `${Fn}` has no value");

    let err = StateMachine::from_json(PROVISION, &HashMap::new()).unwrap_err();
    assert_eq!(err, DefinitionError::UnresolvedSubstitution("RecordSignupFunctionArn".into()));

    let err = StateMachine::from_json(r#"{"StartAt": "${Open"#, &values).unwrap_err().to_string();
    assert!(err.contains("unterminated substitution"), "{err}");
}
