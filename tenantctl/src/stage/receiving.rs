//! The doctor's checks of the tenants' own mail addresses (SES receiving):
//! the stack's receipt rule in the region's active rule set, the mail
//! domain's MX pointing at SES, and the domain verified (SES receives only
//! for verified domains). A stage deployed without `TenantMailDomain` has
//! no addresses, and one check says so.

use tenancy::adapters::aws::sdk::{route53, sesv2};

use super::Stage;
use super::doctor::Check;

const RULE_SET: &str = "mail receiving";
const MX: &str = "mail MX record";
const DOMAIN: &str = "mail domain";

/// The checks, in the order an operator fixes them.
pub async fn tenant_mail(stage: &Stage) -> Vec<Check> {
    let domain = match stage.parameter("TenantMailDomain") {
        Ok(domain) if !domain.trim().is_empty() => domain.trim_end_matches('.').to_ascii_lowercase(),
        // Empty, or a stack from before tenant addresses.
        _ => return vec![Check::pass(RULE_SET, "no tenant addresses (TenantMailDomain is empty)")],
    };
    let region = stage.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    vec![
        active_rule(stage).await,
        mx_record(stage, &domain, &region).await,
        domain_identity(stage, &domain).await,
    ]
}

async fn active_rule(stage: &Stage) -> Check {
    let (ours, rule) =
        match (stage.output("TenantMailReceiptRuleSetName"), stage.output("TenantMailReceiptRuleName")) {
            (Ok(set), Ok(rule)) => (set.to_owned(), rule.to_owned()),
            (Err(e), _) | (_, Err(e)) => return Check::from_stage(RULE_SET, e),
        };
    let activate = format!("aws ses set-active-receipt-rule-set --rule-set-name {ours}");
    let ses = aws_sdk_ses::Client::new(&stage.sdk);
    let active = match ses.describe_active_receipt_rule_set().send().await {
        Ok(active) => active,
        Err(error) => {
            return Check::unknown(
                RULE_SET,
                format!("SES's active receipt rule set could not be read: {}", super::one_line(&error)),
            );
        }
    };
    let Some(name) = active.metadata().and_then(|m| m.name()) else {
        return Check::fail(
            RULE_SET,
            "no receipt rule set is active: SES receives no mail in this region",
            activate,
        );
    };
    if name != ours {
        return Check::fail(
            RULE_SET,
            format!("`{name}` is the active rule set; the stack's rule is in `{ours}`"),
            format!(
                "redeploy with MailReceiptRuleSet={name} (adds the rule to it), or {activate} (its rules then stop)"
            ),
        );
    }
    match active.rules().iter().find(|r| r.name() == rule) {
        Some(found) if found.enabled() => {
            Check::pass(RULE_SET, format!("`{ours}` is active; rule `{rule}` receives"))
        }
        Some(_) => Check::fail(
            RULE_SET,
            format!("rule `{rule}` is disabled"),
            "deploy the current template (sam deploy --config-env …): it enables the rule",
        ),
        None => Check::fail(
            RULE_SET,
            format!("`{ours}` is active but has no rule `{rule}`"),
            "deploy the current template (sam deploy --config-env …)",
        ),
    }
}

async fn mx_record(stage: &Stage, domain: &str, region: &str) -> Check {
    let inbound = format!("inbound-smtp.{region}.amazonaws.com");
    let Ok(zone) = stage.parameter("HostedZoneId") else {
        return Check::unknown(MX, format!("no hosted zone to read: {domain}'s MX must be 10 {inbound}"));
    };
    let route53 = route53::Client::new(&stage.sdk);
    let zone_name = match route53.get_hosted_zone().id(zone).send().await {
        Ok(found) => found.hosted_zone().map(|z| z.name().trim_end_matches('.').to_ascii_lowercase()),
        Err(error) => {
            return Check::unknown(
                MX,
                format!("hosted zone {zone} could not be read: {}", super::one_line(&error)),
            );
        }
    };
    let in_zone = zone_name.as_deref().is_some_and(|z| domain == z || domain.ends_with(&format!(".{z}")));
    if !in_zone {
        return Check::unknown(
            MX,
            format!("{domain} is not in the stack's hosted zone: its MX must be 10 {inbound}"),
        );
    }
    let fix = format!("redeploy with CreateMailMxRecord=true, or add the record: {domain} MX 10 {inbound}");
    let listed = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(domain)
        .start_record_type(route53::types::RrType::Mx)
        .max_items(1)
        .send()
        .await;
    let sets = match listed {
        Ok(listed) => listed.resource_record_sets,
        Err(error) => {
            return Check::unknown(
                MX,
                format!("records of {zone} could not be read: {}", super::one_line(&error)),
            );
        }
    };
    let mx = sets.iter().find(|set| {
        set.name().trim_end_matches('.').eq_ignore_ascii_case(domain)
            && set.r#type() == &route53::types::RrType::Mx
    });
    let Some(mx) = mx else {
        return Check::fail(
            MX,
            format!("{domain} has no MX record: mail to the tenants' addresses bounces"),
            fix,
        );
    };
    let values: Vec<&str> = mx.resource_records().iter().map(|r| r.value()).collect();
    let to_ses = |value: &&str| {
        value.split_whitespace().nth(1).is_some_and(|host| host.trim_end_matches('.') == inbound)
    };
    if values.iter().any(to_ses) {
        Check::pass(MX, format!("{domain} MX → {inbound}"))
    } else {
        Check::fail(MX, format!("{domain} MX is `{}`, not SES in {region}", values.join(", ")), fix)
    }
}

async fn domain_identity(stage: &Stage, domain: &str) -> Check {
    let ses = sesv2::Client::new(&stage.sdk);
    let fix = format!("verify {domain} in the SES console → Verified identities (its DKIM records in DNS)");
    match ses.get_email_identity().email_identity(domain).send().await {
        Ok(found) if super::doctor::verified(&found) => Check::pass(DOMAIN, format!("{domain} is verified")),
        Ok(_) => Check::fail(DOMAIN, format!("{domain} is not verified yet: SES refuses mail for it"), fix),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found_exception()) => {
            Check::fail(DOMAIN, format!("{domain} is no SES identity: SES refuses mail for it"), fix)
        }
        Err(error) => {
            Check::unknown(DOMAIN, format!("{domain} could not be read: {}", super::one_line(&error)))
        }
    }
}
