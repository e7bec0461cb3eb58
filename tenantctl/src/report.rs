//! `tenantctl local state`: the local server's state, printed for people.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::http_client::HttpClient;

/// `GET /local/state`: everything the local server holds.
pub async fn fetch_state(server: &str) -> Result<Value> {
    fetch(server, "/local/state").await
}

/// `GET /local/progress`: counts, and whether the work has settled.
pub async fn fetch_progress(server: &str) -> Result<Value> {
    fetch(server, "/local/progress").await
}

async fn fetch(server: &str, path: &str) -> Result<Value> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let (status, body) = HttpClient::default().get(&url).await?;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    serde_json::from_slice(&body).with_context(|| format!("reading {url}"))
}

/// Fetches the state, waiting up to `wait_secs` for the work to settle.
/// The wait polls the progress counts: the whole state is built once.
pub async fn settled_state(server: &str, wait_secs: u64) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_secs);
    while fetch_progress(server).await?["settled"] != true && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fetch_state(server).await
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

pub async fn print_state(server: &str, wait_secs: u64) -> Result<()> {
    let state = settled_state(server, wait_secs).await?;
    print!("{}", render(&state));
    Ok(())
}

pub fn render(state: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let list = |key: &str| state[key].as_array().unwrap_or(&empty).clone();

    out.push_str("Executions (Step Functions)\n");
    for execution in list("executions") {
        let states: Vec<&str> = execution["states"].as_array().unwrap_or(&empty).iter().map(text).collect();
        out.push_str(&format!(
            "  {:<28} {:<10} {:<9} {} states\n",
            text(&execution["name"]),
            text(&execution["workflow"]),
            text(&execution["status"]),
            states.len()
        ));
        out.push_str(&format!("      {}\n", states.join(" → ")));
        if execution["status"] == "FAILED" || execution["status"] == "TIMED_OUT" {
            // A Lambda error's Cause is its error object as JSON text, as in
            // AWS: the console shows its message.
            let cause = text(&execution["cause"]);
            let message = serde_json::from_str::<Value>(cause)
                .ok()
                .and_then(|c| c["errorMessage"].as_str().map(str::to_owned))
                .unwrap_or_else(|| cause.to_owned());
            out.push_str(&format!("      error: {}: {message}\n", text(&execution["error"])));
        }
        if let Some(cleanup) = execution["cleanup"].as_str() {
            out.push_str(&format!("      cleaned up: {cleanup}\n"));
        }
    }
    out.push_str("Tenants (DynamoDB)\n");
    for tenant in list("tenants") {
        let signup = &tenant["signup"];
        if signup.is_null() {
            out.push_str(&format!(
                "  {} {:<10} {:<12} checkout {} could not become a tenant\n",
                text(&tenant["id"]),
                "-",
                text(&tenant["status"]),
                text(&tenant["checkout_session"]),
            ));
        } else {
            // The current plan, which may differ from the one signed up for.
            let plan = if tenant["plan"].is_null() { &signup["plan"] } else { &tenant["plan"] };
            let billing = if tenant["billing"].is_null() { &signup["billing"] } else { &tenant["billing"] };
            out.push_str(&format!(
                "  {} {:<10} {:<12} plan {} (tier {}) {}  admin {}{}\n",
                text(&tenant["id"]),
                text(&signup["subdomain"]),
                text(&tenant["status"]),
                text(&plan["key"]),
                plan["tier"],
                text(billing),
                text(&signup["admin_email"]),
                match tenant["provisioning_seconds"].as_i64() {
                    Some(seconds) => format!(", provisioned in {seconds}s"),
                    None => String::new(),
                }
            ));
        }
        if let (Some(generation), false) = (tenant["generation"].as_u64(), tenant["desired"].is_null()) {
            out.push_str(&format!(
                "      desired at generation {generation}: {} on {}; generation {} reached\n",
                text(&tenant["desired"]["run"]),
                text(&tenant["desired"]["plan"]["key"]),
                tenant["reached_generation"]
            ));
        }
        let trail: Vec<String> = tenant["trail"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|e| format!("{} {} (g{})", text(&e["event_type"]), text(&e["outcome"]), e["generation"]))
            .collect();
        if !trail.is_empty() {
            out.push_str(&format!("      events: {}\n", trail.join(" · ")));
        }
        if let Some(failure) = tenant["failure"].as_object() {
            out.push_str(&format!(
                "      failure: {}: {}\n",
                text(&failure["error"]),
                text(&failure["cause"])
            ));
        }
    }
    out.push_str("Services (ECS + ALB)\n");
    for service in list("services") {
        let env = &service["environment"];
        out.push_str(&format!(
            "  {} host {} desired {} (TIER={} PLAN={} LIMIT_ACTIVITIES={})\n",
            text(&service["service_arn"]),
            text(&service["host"]),
            service["desired_count"],
            text(&env["TIER"]),
            text(&env["PLAN"]),
            text(&env["LIMIT_ACTIVITIES"]),
        ));
    }
    out.push_str("DNS records (Route 53)\n");
    for record in list("dns_records") {
        out.push_str(&format!(
            "  {} {} ALIAS {}\n",
            text(&record["name"]),
            text(&record["record_type"]),
            text(&record["alias_target"])
        ));
    }
    out.push_str("Mails (SES)\n");
    for mail in list("emails") {
        out.push_str(&format!(
            "  {} to {}: {}\n",
            text(&mail["message_id"]),
            text(&mail["to"]),
            text(&mail["subject"])
        ));
        for line in text(&mail["text"]).lines() {
            out.push_str(&format!("      | {line}\n"));
        }
    }
    let unmatched = list("unmatched_events");
    if !unmatched.is_empty() {
        out.push_str("Events no tenant took\n");
        for event in unmatched {
            out.push_str(&format!(
                "  {} {} subscription {} ({})\n",
                text(&event["event_id"]),
                text(&event["event_type"]),
                text(&event["subscription"]),
                text(&event["reason"]).replace('_', " ")
            ));
        }
    }
    let dead = list("dead_letters");
    if !dead.is_empty() {
        out.push_str("Dead letters\n");
        for letter in dead {
            out.push_str(&format!(
                "  {} {}: {}\n",
                text(&letter["event_id"]),
                text(&letter["event_type"]),
                text(&letter["error"])
            ));
        }
    }
    out
}

/// What `tenantctl local subscription` prints: the subscription's new
/// status, then each delivery with the webhook's answer.
pub fn render_deliveries(answer: &Value) -> String {
    if let Some(error) = answer["error"].as_str() {
        return format!("error: {error}\n");
    }
    let mut out = format!(
        "{} {}: now {}\n",
        text(&answer["subscription"]),
        text(&answer["action"]),
        text(&answer["status"])
    );
    if let Some(seed) = answer["seed"].as_u64() {
        out.push_str(&format!("  deliveries shuffled with --seed {seed}\n"));
    }
    let empty = Vec::new();
    for delivery in answer["deliveries"].as_array().unwrap_or(&empty) {
        out.push_str(&format!(
            "  delivered {:<40} {:<22} -> {}\n",
            text(&delivery["type"]),
            text(&delivery["event_id"]),
            delivery["webhook_status"]
        ));
    }
    out
}

/// What `tenantctl local subscriptions` prints.
pub fn render_subscriptions(list: &Value) -> String {
    let mut out = format!(
        "{:<18} {:<16} {:<10} {:<20} {:<16} {:<12} {}\n",
        "SUBSCRIPTION", "CUSTOMER", "STATUS", "SUBDOMAIN", "PLAN", "PERIOD END", "REFUNDED"
    );
    let empty = Vec::new();
    for sub in list.as_array().unwrap_or(&empty) {
        let refunded = sub["refunded"].as_i64().unwrap_or_default();
        out.push_str(&format!(
            "{:<18} {:<16} {:<10} {:<20} {:<16} {:<12} {}\n",
            text(&sub["id"]),
            text(&sub["customer"]),
            text(&sub["status"]),
            text(&sub["subdomain"]),
            text(&sub["lookup_key"]),
            sub["current_period_end"],
            if refunded > 0 { format!("{}.{:02}", refunded / 100, refunded % 100) } else { "-".to_owned() }
        ));
    }
    out
}
