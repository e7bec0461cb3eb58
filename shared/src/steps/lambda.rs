//! Lambda glue for a step: JSON in, JSON out, and the error's name as
//! Lambda's `errorType`, which is what Retry/Catch match.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

use super::StepError;
use crate::ingress::webhook::error_chain;

impl From<StepError> for Diagnostic {
    fn from(error: StepError) -> Diagnostic {
        Diagnostic { error_type: error.error_name().to_owned(), error_message: error_chain(&error) }
    }
}

/// Serves one step. `step` gets the task's input as JSON.
pub async fn serve<F>(step_name: &'static str, step: F) -> Result<(), lambda_runtime::Error>
where
    F: AsyncFn(Value) -> Result<Value, StepError>,
{
    let step = &step;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        // Tasks pass `$$.Execution.Name` (the Stripe event id) as event_id
        // and the tenant id where known, so every log line carries them.
        let span = tracing::info_span!(
            "step",
            step = step_name,
            event_id = event.payload.get("event_id").and_then(serde_json::Value::as_str).unwrap_or_default(),
            tenant_id =
                event.payload.get("tenant_id").and_then(serde_json::Value::as_str).unwrap_or_default(),
        );
        let work = async move {
            let result = step(event.payload).await;
            if let Err(error) = &result {
                tracing::warn!(error_type = error.error_name(), error = %error_chain(error), "step failed");
            }
            result.map_err(Diagnostic::from)
        };
        work.instrument(span)
    }))
    .await
}
