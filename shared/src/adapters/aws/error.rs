//! One place that decides what an AWS SDK error means for the caller: try
//! again later (throttled, transient) or stop (the request itself is wrong).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::BoxError;

/// Error codes AWS services use for "slow down" (the SDK's own list, plus
/// the Route 53 and SES spellings).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes for failures that are the service's, not the request's.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
];

/// What a failed call means for whoever asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The service asked us to slow down.
    Throttled,
    /// Timeouts, network and 5xx: the same request may succeed later.
    Transient,
    /// The service understood the request and refused it (4xx), or the SDK
    /// could not build it: retrying the same request will not help.
    Refused,
}

/// Classifies any SDK operation error (every AWS SDK crate shares these types).
pub(crate) fn classify<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Fault {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Fault::Transient
        }
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or_default();
            if THROTTLING_CODES.contains(&code) || context.raw().status().as_u16() == 429 {
                Fault::Throttled
            } else if TRANSIENT_CODES.contains(&code) || context.raw().status().is_server_error() {
                Fault::Transient
            } else {
                Fault::Refused
            }
        }
        // ConstructionFailure and anything the SDK adds later.
        _ => Fault::Refused,
    }
}

/// The service's error code, if it sent one.
pub(crate) fn code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<&str> {
    match error {
        SdkError::ServiceError(context) => context.err().code(),
        _ => None,
    }
}

/// `Code: message` on one line, bounded, for `Rejected(String)` variants.
pub(crate) fn summary<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, HttpResponse>,
) -> String {
    let text = match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(message)) => message.to_owned(),
                (None, None) => format!("HTTP {}", context.raw().status().as_u16()),
            }
        }
        other => aws_sdk_dynamodb::error::DisplayErrorContext(other).to_string(),
    };
    one_line(&text)
}

/// Collapses whitespace (no multi-line log entries) and caps the length.
pub(crate) fn one_line(text: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::with_capacity(text.len().min(MAX));
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > MAX {
        out = out.chars().take(MAX - 1).collect();
        out.push('…');
    }
    out
}

/// A failed AWS call with its context: `DynamoDB PutItem failed: Code: message`.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {summary}")]
pub(crate) struct CallFailed {
    operation: &'static str,
    summary: String,
    #[source]
    source: BoxError,
}

/// Boxes an SDK error for an `Unavailable(#[source] BoxError)` variant,
/// naming the call and keeping the SDK error as the cause.
pub(crate) fn call_failed<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> BoxError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let summary = summary(&error);
    let throttled = classify(&error) == Fault::Throttled;
    let failed = Box::new(CallFailed { operation, summary, source: Box::new(error) });
    if throttled { Box::new(crate::ports::Throttled(failed)) } else { failed }
}

/// A failure without an SDK error to carry (an answer that lacks a field
/// AWS always sends, a resource in a state that needs time).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unexpected(pub String);

pub(crate) fn unexpected(message: impl Into<String>) -> BoxError {
    Box::new(Unexpected(message.into()))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::{ErrorMetadata, SdkError};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    use super::*;

    fn service_error(status: u16, code: &str) -> SdkError<GetItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("details\nmore").build();
        let raw = HttpResponse::new(status.try_into().unwrap(), "".into());
        SdkError::service_error(GetItemError::generic(meta), raw)
    }

    #[test]
    fn throttling_5xx_and_4xx_are_told_apart() {
        assert_eq!(classify(&service_error(400, "ThrottlingException")), Fault::Throttled);
        assert_eq!(classify(&service_error(400, "ProvisionedThroughputExceededException")), Fault::Throttled);
        assert_eq!(classify(&service_error(429, "Whatever")), Fault::Throttled);
        assert_eq!(classify(&service_error(500, "InternalServerError")), Fault::Transient);
        assert_eq!(classify(&service_error(503, "Unknown")), Fault::Transient);
        assert_eq!(classify(&service_error(400, "ValidationException")), Fault::Refused);
        let timeout: SdkError<GetItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify(&timeout), Fault::Transient);
        let construction: SdkError<GetItemError, HttpResponse> = SdkError::construction_failure("bad");
        assert_eq!(classify(&construction), Fault::Refused);
    }

    #[test]
    fn summaries_are_one_bounded_line() {
        assert_eq!(summary(&service_error(400, "ValidationException")), "ValidationException: details more");
        assert_eq!(code(&service_error(400, "X")), Some("X"));
        let long = one_line(&"word ".repeat(200));
        assert_eq!(long.chars().count(), 300);
        assert!(!long.contains('\n'));
    }
}
