//! The signup API before the webhook: is a subdomain free, and start a
//! Stripe Checkout Session for a plan (`GET /subdomains/{name}`,
//! `POST /checkout`), with CORS for the marketing site.
//!
//! Its rooms: this file, the API type and its settings; `http`, routing,
//! CORS, the signup form and the answers; `hold`, a subdomain held while its
//! buyer pays (and whether one is free); `limits`, how much one client may
//! ask; `coupon`, a promotion code checked against Stripe for the plan;
//! `trial`, the plan's free trial, once per customer; `session`, the
//! Stripe Checkout Session; `billing_link`, the mails' links to the
//! billing portal; `status`, the tenant app's live status (`GET /status`);
//! `lambda`, the API Gateway glue.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{ConfigError, Lookup, count_setting, required};
use crate::domain::Catalog;
use crate::ports::{RoutingCapacity, StripeGateway, TenantStore};
use crate::stripe::StripeMode;

pub mod billing_link;
mod coupon;
mod hold;
mod http;
pub mod lambda;
mod limits;
pub mod room;
mod session;
pub mod status;
#[cfg(test)]
mod testing;
mod trial;

pub use http::{ApiAnswer, CheckoutRequest};

pub const CHECKOUT_SUCCESS_URL: &str = "CHECKOUT_SUCCESS_URL";
pub const CHECKOUT_CANCEL_URL: &str = "CHECKOUT_CANCEL_URL";
pub const CHECKOUT_HOLD_MINUTES: &str = "CHECKOUT_HOLD_MINUTES";
pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
pub const CHECKOUT_MAX_HOLDS_PER_EMAIL: &str = "CHECKOUT_MAX_HOLDS_PER_EMAIL";
pub const CHECKOUT_MAX_HOLDS_PER_IP: &str = "CHECKOUT_MAX_HOLDS_PER_IP";
pub const CHECKOUT_REQUESTS_PER_MINUTE: &str = "CHECKOUT_REQUESTS_PER_MINUTE";

/// How long a hold outlives its Checkout Session: Stripe may finish a
/// payment started just before the session expired, and the name must still
/// be that buyer's when the checkout event arrives.
pub const HOLD_MARGIN_SECONDS: i64 = 15 * 60;
/// Open holds one e-mail address, or one client address, may have at once.
pub const DEFAULT_MAX_HOLDS: u32 = 3;
/// Requests a minute one client address may make to the signup routes
/// (`GET /subdomains/{name}` and `POST /checkout` together): enough for a
/// form that checks names as they are typed, not for a script.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 30;

/// How the API is set up for a stage.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    pub mode: StripeMode,
    pub success_url: String,
    pub cancel_url: String,
    /// How long a Checkout Session lives; its subdomain is held
    /// `hold_margin_seconds` longer, so nobody can pay after their hold ran out.
    pub hold_seconds: i64,
    /// See [`HOLD_MARGIN_SECONDS`].
    pub hold_margin_seconds: i64,
    /// At most this many open holds per buyer e-mail address.
    pub max_holds_per_email: u32,
    /// At most this many open holds per client address.
    pub max_holds_per_ip: u32,
    /// Requests per minute per client address on the signup routes.
    pub requests_per_minute: u32,
    /// Origins allowed to call the API from a browser.
    pub allowed_origins: Vec<String>,
}

fn url_setting(env: &dyn Lookup, var: &'static str) -> Result<String, ConfigError> {
    let url = required(env, var)?.trim().to_owned();
    let ok = (url.starts_with("https://")
        || url.starts_with("http://localhost")
        || url.starts_with("http://127.0.0.1"))
        && !url.contains(char::is_whitespace);
    if ok { Ok(url) } else { Err(ConfigError::Invalid { var, reason: "expected an https:// URL".into() }) }
}

impl CheckoutSettings {
    pub fn from_lookup(env: &dyn Lookup, mode: StripeMode) -> Result<Self, ConfigError> {
        let hold_minutes = match env.get(CHECKOUT_HOLD_MINUTES) {
            None => 60,
            // Stripe lets a session live 30 minutes to 24 hours.
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(minutes @ 30..=1440) => minutes,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: CHECKOUT_HOLD_MINUTES,
                        reason: format!("expected minutes from 30 to 1440, got `{}`", raw.trim()),
                    });
                }
            },
        };
        let allowed_origins: Vec<String> = required(env, ALLOWED_ORIGINS)?
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        if allowed_origins.is_empty()
            || allowed_origins.iter().any(|o| {
                !(o.starts_with("https://")
                    || o.starts_with("http://localhost")
                    || o.starts_with("http://127.0.0.1"))
            })
        {
            return Err(ConfigError::Invalid {
                var: ALLOWED_ORIGINS,
                reason: "expected comma-separated origins such as https://www.example.com".into(),
            });
        }
        Ok(CheckoutSettings {
            mode,
            success_url: url_setting(env, CHECKOUT_SUCCESS_URL)?,
            cancel_url: url_setting(env, CHECKOUT_CANCEL_URL)?,
            hold_seconds: hold_minutes * 60,
            hold_margin_seconds: HOLD_MARGIN_SECONDS,
            max_holds_per_email: count_setting(env, CHECKOUT_MAX_HOLDS_PER_EMAIL, DEFAULT_MAX_HOLDS, 100)?,
            max_holds_per_ip: count_setting(env, CHECKOUT_MAX_HOLDS_PER_IP, DEFAULT_MAX_HOLDS, 1000)?,
            requests_per_minute: count_setting(
                env,
                CHECKOUT_REQUESTS_PER_MINUTE,
                DEFAULT_REQUESTS_PER_MINUTE,
                100_000,
            )?,
            allowed_origins,
        })
    }
}

/// The API's handlers, over the tenant table and Stripe.
pub struct CheckoutApi {
    store: Arc<dyn TenantStore>,
    stripe: Arc<dyn StripeGateway>,
    catalog: Catalog,
    settings: CheckoutSettings,
    clock: Arc<dyn Clock>,
    /// `GET /billing/{token}`: the mails' card links, checked, then a
    /// portal session returning to `return_url`. Not answered without.
    billing: Option<(billing_link::BillingLinks, String)>,
    /// `GET /status`: the tenant apps' status tokens checked. Not answered without.
    status: Option<status::StatusEndpoint>,
    /// Price ids found by lookup key, with when they were found.
    prices: session::PriceCache,
    /// The room behind the load balancer, asked before a sale; not asked without.
    room: Option<room::RoomCheck>,
}

impl CheckoutApi {
    /// Prices are found in the key's own Stripe account by the catalog's
    /// lookup keys, on the first checkout that needs each (so a stage whose
    /// catalog was never synced starts, and its checkouts say why not).
    pub fn new(
        store: Arc<dyn TenantStore>,
        stripe: Arc<dyn StripeGateway>,
        catalog: Catalog,
        settings: CheckoutSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CheckoutApi {
            store,
            stripe,
            catalog,
            settings,
            clock,
            billing: None,
            status: None,
            prices: Default::default(),
            room: None,
        }
    }

    /// Answers the billing links `links` makes (see [`billing_link`]),
    /// sending customers back to `return_url` from Stripe's portal.
    pub fn with_billing_links(mut self, links: billing_link::BillingLinks, return_url: &str) -> Self {
        self.billing = Some((links, return_url.to_owned()));
        self
    }

    /// Answers `GET /status` for the tokens `key` derives (see [`status`]);
    /// its billing links under `base` (the API's public URL) when given,
    /// else under the URL each request came to.
    pub fn with_status(mut self, key: crate::domain::password::PasswordKey, base: Option<&str>) -> Self {
        let base = base.map(|b| b.trim_end_matches('/').to_owned());
        self.status = Some(status::StatusEndpoint { key, base });
        self
    }

    /// Refuses a sale (503, before anything is held) when `capacity` has no
    /// more free places than `reserve`: the tenant could not be routed.
    pub fn with_room_check(mut self, capacity: Arc<dyn RoutingCapacity>, reserve: u32) -> Self {
        self.room = Some(room::RoomCheck::new(capacity, reserve));
        self
    }
}
