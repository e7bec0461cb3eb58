//! No sale without room: a checkout whose tenant could not be routed is
//! refused before anyone pays (docs/architecture.md decision 8), with an
//! error line the operator's alarm counts. A few places are kept back for
//! checkouts already at Stripe, which may all be paid.

use std::sync::Mutex;

use http::StatusCode;

use super::{ApiAnswer, CheckoutApi};
use crate::config::{ConfigError, Lookup};
use crate::ports::{Room, RoutingCapacity};

/// How long a process trusts a room it read with plenty of places left (the
/// load balancer's rules are listed once per this, not on every request).
const ROOM_TTL_SECONDS: i64 = 10;
/// Places beyond the reserve under which the room is asked on every sale:
/// near the wall a cached answer could sell what is not there, and a full
/// load balancer reopens to sales as soon as a place frees.
const UNCACHED_BELOW: u32 = 10;

/// The places kept back by default for checkouts already being paid.
pub const DEFAULT_ROOM_RESERVE: u32 = 3;
pub const CHECKOUT_ROOM_RESERVE: &str = "CHECKOUT_ROOM_RESERVE";

/// [`CHECKOUT_ROOM_RESERVE`]: 0 to 1,000 places, [`DEFAULT_ROOM_RESERVE`] when unset.
pub fn room_reserve(env: &dyn Lookup) -> Result<u32, ConfigError> {
    match env.get(CHECKOUT_ROOM_RESERVE) {
        None => Ok(DEFAULT_ROOM_RESERVE),
        Some(raw) => raw.trim().parse::<u32>().ok().filter(|reserve| *reserve <= 1000).ok_or_else(|| {
            ConfigError::Invalid {
                var: CHECKOUT_ROOM_RESERVE,
                reason: format!("expected 0 to 1000 places, got `{}`", raw.trim()),
            }
        }),
    }
}

/// What the checkout asks of the load balancer, and the last answer.
pub(super) struct RoomCheck {
    capacity: std::sync::Arc<dyn RoutingCapacity>,
    reserve: u32,
    last: Mutex<Option<(Room, i64)>>,
}

impl RoomCheck {
    pub(super) fn new(capacity: std::sync::Arc<dyn RoutingCapacity>, reserve: u32) -> Self {
        RoomCheck { capacity, reserve, last: Mutex::new(None) }
    }
}

/// Why a signup is refused when there is no room: the same words on both routes.
pub const NO_ROOM: &str = "we cannot take new signups right now; nothing was charged, and we have been told";

impl CheckoutApi {
    /// Whether a new tenant could be routed now: more places free than the
    /// reserve. Without a room check configured (unit tests), always. A
    /// load balancer that cannot be asked is not a reason to turn buyers
    /// away: the sale goes ahead, and a launch the quota refuses is still
    /// given its money back.
    pub(super) async fn has_room(&self) -> bool {
        let Some(check) = &self.room else { return true };
        let now = self.clock.now_unix();
        let cached =
            check.last.lock().ok().and_then(|last| *last).filter(|(_, at)| now - at < ROOM_TTL_SECONDS);
        let room = match cached {
            Some((room, _)) => room,
            None => match check.capacity.room().await {
                Ok(room) => {
                    if let Ok(mut last) = check.last.lock() {
                        let plenty = room.free() > check.reserve.saturating_add(UNCACHED_BELOW);
                        *last = plenty.then_some((room, now));
                    }
                    room
                }
                Err(error) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&error), "room behind the load balancer unknown; selling");
                    return true;
                }
            },
        };
        let enough = room.free() > check.reserve;
        if !enough {
            tracing::error!(
                alarm = "no_room",
                used = room.used,
                capacity = room.capacity,
                reserve = check.reserve,
                "no room behind the load balancer: signups refused until tenants leave or the pool grows"
            );
        }
        enough
    }

    /// Whether the request's buyer already holds its name for a checkout.
    pub(super) async fn holds_open_checkout(&self, request: &super::CheckoutRequest, now: i64) -> bool {
        let ours = crate::domain::HoldId::for_buyer(&request.subdomain, &request.email);
        matches!(
            self.store.subdomain_hold(&request.subdomain, now).await,
            Ok(Some(hold)) if hold.hold_id == ours.as_str()
        )
    }

    pub(super) fn no_room() -> ApiAnswer {
        ApiAnswer::error(StatusCode::SERVICE_UNAVAILABLE, NO_ROOM)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use http::{Method, StatusCode};

    use super::super::testing::{NOW, body, fixture_with, form, from_origin};
    use super::*;
    use crate::adapters::local::LocalLauncher;
    use crate::clock::FixedClock;
    use crate::domain::{Subdomain, TenantId};
    use crate::ports::{AlbQuotas, LaunchSpec, LauncherError, TenantLauncher, TenantStore};

    /// A local load balancer that holds `tenants`.
    fn launcher_of(tenants: u32) -> Arc<LocalLauncher> {
        let launcher = LocalLauncher::open(None, Arc::new(FixedClock(NOW)), Duration::ZERO).unwrap();
        Arc::new(launcher.with_pool(1, AlbQuotas { target_groups: tenants, rules: 100 }))
    }

    /// Another customer's tenant takes a place.
    async fn someone_launched(launcher: &LocalLauncher) {
        let spec = LaunchSpec {
            tenant: TenantId::parse("tnt_00000000000000000001").unwrap(),
            host: "someone.apps.example.com".into(),
            environment: Default::default(),
            desired_count: 1,
        };
        launcher.launch(&spec).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_load_balancer_refuses_the_sale_before_anything_is_held() {
        let launcher = launcher_of(2);
        let f = fixture_with(None);
        let api = f.api.with_room_check(launcher.clone(), 1);
        let ask = async |name: &str| {
            body(&api.handle(&Method::GET, &format!("/subdomains/{name}"), &from_origin(), b"", None).await)
        };
        assert_eq!(ask("acme").await["available"], true, "two places, one kept back: one to sell");

        someone_launched(&launcher).await;
        // Near the wall the room is asked on every sale, never taken from a cache.
        let answer = api.handle(&Method::GET, "/subdomains/acme", &from_origin(), b"", None).await;
        assert_eq!(body(&answer), serde_json::json!({"available": false, "reason": NO_ROOM}));
        let refused = api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"), None)
            .await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
        assert_eq!(body(&refused)["error"], NO_ROOM);
        assert!(f.stripe.sessions().is_empty(), "no Checkout Session");
        let acme = Subdomain::parse("acme").unwrap();
        assert!(f.store.subdomain_hold(&acme, NOW).await.unwrap().is_none(), "nothing held");
    }

    #[tokio::test]
    async fn a_buyer_whose_checkout_is_open_gets_it_back_when_the_load_balancer_fills_meanwhile() {
        let launcher = launcher_of(1);
        let f = fixture_with(None);
        let api = f.api.with_room_check(launcher.clone(), 0);
        let checkout = async |name: &str, email: &str| {
            api.handle(&Method::POST, "/checkout", &from_origin(), &form(name, email), None).await
        };
        let first = checkout("acme", "dana@acme.example").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        someone_launched(&launcher).await;
        let again = checkout("acme", "dana@acme.example").await;
        assert_eq!((again.status, body(&again)["id"].clone()), (StatusCode::OK, body(&first)["id"].clone()));
        let stranger = checkout("other", "gavin@hooli.example").await;
        assert_eq!(stranger.status, StatusCode::SERVICE_UNAVAILABLE, "{}", stranger.body);
    }

    struct Unreachable;

    #[async_trait]
    impl RoutingCapacity for Unreachable {
        async fn room(&self) -> Result<Room, LauncherError> {
            Err(LauncherError::Unavailable("ELB DescribeRules: throttled".into()))
        }
    }

    #[tokio::test]
    async fn a_load_balancer_that_cannot_be_asked_does_not_turn_buyers_away() {
        let f = fixture_with(None);
        let api = f.api.with_room_check(Arc::new(Unreachable), DEFAULT_ROOM_RESERVE);
        let answer = api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }

    #[test]
    fn the_reserve_is_read_from_the_environment_and_checked() {
        assert_eq!(room_reserve(&|_: &str| None::<String>).unwrap(), DEFAULT_ROOM_RESERVE);
        assert_eq!(room_reserve(&|_: &str| Some("0".to_owned())).unwrap(), 0);
        let error = room_reserve(&|_: &str| Some("lots".to_owned())).unwrap_err().to_string();
        assert!(error.contains("CHECKOUT_ROOM_RESERVE"), "{error}");
    }
}
