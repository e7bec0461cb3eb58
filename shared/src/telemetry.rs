//! JSON logs through `tracing` (docs/architecture.md decision 10).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;

/// One JSON object per line, carrying the fields of the current span (the
/// Stripe event id once known). Level from `RUST_LOG`, `info` by default.
pub fn init_json_logs() {
    let filter = EnvFilter::new(log_directives(std::env::var("RUST_LOG").ok().as_deref()));
    // A second init (tests, tools) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .try_init();
}

/// The crates whose debug and trace logs carry requests and answers whole
/// (the SDK's wire logging; an SES request holds the welcome mail's
/// password): capped at info whatever the level asked for.
const WIRE_LOGGERS: [&str; 6] =
    ["aws_smithy_runtime", "aws_smithy_runtime_api", "aws_smithy_http", "aws_sigv4", "hyper", "h2"];

/// The filter for `RUST_LOG`: a level (error, warn, info, debug or trace;
/// info when unset or anything else), with [`WIRE_LOGGERS`] capped at info.
/// Per-target directives are not taken: they are how wire logging is turned on.
pub fn log_directives(raw: Option<&str>) -> String {
    let level = raw
        .map(str::trim)
        .filter(|level| matches!(*level, "error" | "warn" | "info" | "debug" | "trace"))
        .unwrap_or("info");
    let caps: Vec<String> = WIRE_LOGGERS.iter().map(|target| format!("{target}=info")).collect();
    format!("{level},{}", caps.join(","))
}

/// A cold start's phases, timed and logged as one line when it is over:
/// where an init's time goes, on every start in production as in the
/// benchmark (BENCHMARKS.md, section 2).
pub struct InitPhases {
    /// When `main` began, as Unix microseconds: what came before (the exec,
    /// the loader) is the time from the process's start to it.
    main_at_micros: u128,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl InitPhases {
    /// Call first thing in `main`.
    pub fn start() -> Self {
        let main_at_micros = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros();
        InitPhases { main_at_micros, last: Instant::now(), phases: Vec::with_capacity(8) }
    }

    /// The phase called `name` ends now.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.phases.push((name, now - self.last));
        self.last = now;
    }

    /// `name=µs` for each phase, in order: `config=85 sdk=410`.
    pub fn summary(&self) -> String {
        let phases: Vec<String> =
            self.phases.iter().map(|(name, took)| format!("{name}={}", took.as_micros())).collect();
        phases.join(" ")
    }

    /// Logs the phases (at info, as `init_phases_us`) with when `main` began.
    pub fn finish(self) {
        tracing::info!(main_at_us = self.main_at_micros as u64, init_phases_us = %self.summary(), "initialised");
    }
}

/// `error: cause: cause` on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn init_phases_are_summed_up_in_order() {
        let mut phases = super::InitPhases::start();
        phases.mark("config");
        std::thread::sleep(std::time::Duration::from_millis(2));
        phases.mark("sdk");
        let summary = phases.summary();
        let parts: Vec<(&str, u64)> = summary
            .split(' ')
            .map(|part| part.split_once('=').map(|(name, us)| (name, us.parse().unwrap())).unwrap())
            .collect();
        assert_eq!(parts.iter().map(|(name, _)| *name).collect::<Vec<_>>(), ["config", "sdk"]);
        assert!(parts[1].1 >= 2_000, "{summary}");
    }

    #[test]
    fn a_level_is_taken_and_wire_logging_is_never_turned_on() {
        assert!(log_directives(Some("debug")).starts_with("debug,aws_smithy_runtime=info,"));
        assert!(log_directives(None).starts_with("info,"));
        for sneaky in ["aws_smithy_runtime=trace", "debug,hyper=trace", "trace,aws_smithy_http=trace"] {
            let directives = log_directives(Some(sneaky));
            assert!(directives.starts_with("info,"), "{sneaky} → {directives}");
            assert!(!directives.contains("=trace") && !directives.contains("=debug"), "{directives}");
        }
        // Even trace leaves the SDK's wire at info.
        assert!(log_directives(Some("trace")).contains("aws_smithy_runtime=info"));
    }
}
