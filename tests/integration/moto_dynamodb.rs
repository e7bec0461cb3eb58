//! The DynamoDB tenant store on moto's server, read back with the SDK.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{error_chain, moto_config, provisioning_record, unique_checkout, unique_name};
use tenancy::adapters::aws::DynamoTenantStore;
use tenancy::adapters::aws::dynamodb::{BY_SUBSCRIPTION_INDEX, create_table};
use tenancy::domain::{
    CustomerId, EmailAddress, Failure, HoldId, Subdomain, SubscriptionId, TenantId, TenantRecord,
    TenantStatus,
};
use tenancy::ports::{
    HeldSession, HoldLimit, HoldOutcome, HoldRequest, Inserted, Lease, LeaseOutcome, MailDelivery,
    MailMarked, MailRecord, MailSlot, RateOutcome, StoreError, TenantStore, TrailEntry, TrailOutcome,
    UnmatchedEvent,
};
use tenancy::stripe::StripeEventId;

async fn new_store() -> (Client, DynamoTenantStore) {
    let client = Client::new(&moto_config().await);
    let table = unique_name("tenants");
    create_table(&client, &table).await.unwrap();
    // Creating it again finds it.
    create_table(&client, &table).await.unwrap();
    (client.clone(), DynamoTenantStore::new(client, table))
}

async fn raw_item(
    client: &Client,
    store: &DynamoTenantStore,
    pk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    let output = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    output.item
}

fn text<'a>(item: &'a std::collections::HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no S attribute {name}"))
}

fn subdomain(name: &str) -> Subdomain {
    Subdomain::parse(name).unwrap()
}

#[tokio::test]
async fn a_tenant_is_stored_as_native_attributes_and_found_by_subscription() {
    let (client, store) = new_store().await;
    let record = provisioning_record(&unique_checkout("native"), "acme");
    assert_eq!(store.insert_tenant(&record).await.unwrap(), Inserted::New);

    let item = raw_item(&client, &store, &format!("TENANT#{}", record.id)).await.unwrap();
    assert_eq!(text(&item, "kind"), "tenant");
    assert_eq!(text(&item, "subscription_id"), "sub_1QAcmeR0b0t1csPro");
    assert_eq!(text(&item, "customer_id"), "cus_QAcmeR0b0t1cs");
    assert_eq!(text(&item, "id"), record.id.as_str());
    assert_eq!(text(&item, "status"), "PROVISIONING");
    assert_eq!(item["version"].as_n().unwrap(), "1");
    let signup = item["signup"].as_m().expect("the signup is a map, not a JSON string");
    assert_eq!(signup["subdomain"].as_s().unwrap(), "acme");
    assert_eq!(signup["plan"].as_m().unwrap()["tier"].as_n().unwrap(), "2");
    assert_eq!(item["generation"].as_n().unwrap(), "1");
    let desired = item["desired"].as_m().expect("the desired state is a map");
    assert_eq!(desired["run"].as_s().unwrap(), "running");
    assert_eq!(desired["plan"].as_m().unwrap()["key"].as_s().unwrap(), "pro");

    assert_eq!(store.get_tenant(&record.id).await.unwrap(), Some(record.clone()));

    let by_subscription = client
        .query()
        .table_name(store.table())
        .index_name(BY_SUBSCRIPTION_INDEX)
        .key_condition_expression("subscription_id = :s")
        .expression_attribute_values(":s", AttributeValue::S("sub_1QAcmeR0b0t1csPro".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_subscription.count(), 1);

    // A checkout that could not become a tenant has no subscription to index.
    let failure =
        Failure { error: "InvalidSignup".into(), cause: "metadata.subdomain is missing".into(), at: 5 };
    let rejected =
        TenantRecord::rejected(TenantId::for_checkout(&unique_checkout("rejected")), None, None, failure);
    store.insert_tenant(&rejected).await.unwrap();
    let item = raw_item(&client, &store, &format!("TENANT#{}", rejected.id)).await.unwrap();
    assert!(!item.contains_key("subscription_id") && !item.contains_key("customer_id"));
    assert_eq!(store.get_tenant(&rejected.id).await.unwrap(), Some(rejected));
}

#[tokio::test]
async fn inserting_twice_returns_what_the_first_insert_stored() {
    let (_, store) = new_store().await;
    let first = provisioning_record(&unique_checkout("twice"), "acme");
    assert_eq!(store.insert_tenant(&first).await.unwrap(), Inserted::New);

    let mut retry = first.clone();
    retry.updated_at += 60;
    retry.generation += 1;
    assert_eq!(store.insert_tenant(&retry).await.unwrap(), Inserted::Existing(Box::new(first.clone())));
    assert_eq!(store.get_tenant(&first.id).await.unwrap(), Some(first));
}

#[tokio::test]
async fn replacing_needs_the_version_that_was_read() {
    let (_, store) = new_store().await;
    let v1 = provisioning_record(&unique_checkout("versions"), "acme");
    store.insert_tenant(&v1).await.unwrap();

    let mut v2 = v1.clone();
    v2.version = 2;
    v2.status = TenantStatus::Active;
    v2.activated_at = Some(1_763_800_100);
    store.replace_tenant(&v2).await.unwrap();

    // A writer that read v1 too, and is now late.
    let mut stale = v1.clone();
    stale.version = 2;
    stale.status = TenantStatus::Failed;
    let error = store.replace_tenant(&stale).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::VersionConflict { tenant, expected: 1 } if *tenant == v1.id),
        "{error:?}"
    );
    assert_eq!(store.get_tenant(&v1.id).await.unwrap(), Some(v2.clone()));

    // Replacing a tenant that was never inserted changes nothing either.
    let mut ghost = provisioning_record(&unique_checkout("ghost"), "ghost");
    ghost.version = 2;
    assert!(matches!(store.replace_tenant(&ghost).await, Err(StoreError::VersionConflict { .. })));
    assert_eq!(store.get_tenant(&ghost.id).await.unwrap(), None);
}

#[tokio::test]
async fn record_signup_writes_claim_and_tenant_in_one_transaction_and_again_changes_nothing() {
    let (client, store) = new_store().await;
    let acme = subdomain("acme");
    let a = provisioning_record(&unique_checkout("holder-a"), "acme");
    let b = provisioning_record(&unique_checkout("holder-b"), "acme");

    assert_eq!(store.record_signup(&acme, &a, None, NOW).await.unwrap(), Inserted::New);
    let claim = raw_item(&client, &store, "SUBDOMAIN#acme").await.unwrap();
    assert_eq!((text(&claim, "kind"), text(&claim, "tenant_id")), ("subdomain", a.id.as_str()));
    assert_eq!(claim["claimed_at"].as_n().unwrap(), &NOW.to_string());
    let tenant = raw_item(&client, &store, &format!("TENANT#{}", a.id)).await.unwrap();
    assert_eq!((text(&tenant, "kind"), text(&tenant, "status")), ("tenant", "PROVISIONING"));

    // The same signup again (a retried step), later: Existing, the claim keeps its time.
    let again = store.record_signup(&acme, &a, None, NOW + 60).await.unwrap();
    assert_eq!(again, Inserted::Existing(Box::new(a.clone())));
    let claim = raw_item(&client, &store, "SUBDOMAIN#acme").await.unwrap();
    assert_eq!(claim["claimed_at"].as_n().unwrap(), &NOW.to_string());

    // Another tenant's checkout: taken (decoded from the cancellation
    // reasons), and its tenant not written.
    let taken = store.record_signup(&acme, &b, None, NOW).await.unwrap_err();
    assert!(
        matches!(&taken, StoreError::SubdomainTaken { subdomain, holder } if *subdomain == acme && *holder == a.id),
        "{}",
        error_chain(&taken)
    );
    assert_eq!(taken.to_string(), "subdomain `acme` is held by another tenant");
    assert!(raw_item(&client, &store, &format!("TENANT#{}", b.id)).await.is_none());

    // Someone else releasing it changes nothing.
    store.release_subdomain(&acme, &b.id).await.unwrap();
    assert_eq!(store.subdomain_holder(&acme).await.unwrap(), Some(a.id.clone()));
    store.release_subdomain(&acme, &a.id).await.unwrap();
    assert!(raw_item(&client, &store, "SUBDOMAIN#acme").await.is_none());
    store.release_subdomain(&acme, &a.id).await.unwrap();

    // A's step retried after its name was released: A exists, nothing is claimed again.
    assert!(matches!(store.record_signup(&acme, &a, None, NOW).await.unwrap(), Inserted::Existing(_)));
    assert_eq!(store.subdomain_holder(&acme).await.unwrap(), None);
    assert_eq!(store.record_signup(&acme, &b, None, NOW).await.unwrap(), Inserted::New);
    assert_eq!(store.subdomain_holder(&acme).await.unwrap(), Some(b.id));
}

#[tokio::test]
async fn listing_returns_tenants_only_across_scan_pages() {
    let (client, store) = new_store().await;
    let mut expected = Vec::new();
    for n in 0..3 {
        let record = provisioning_record(&unique_checkout("list"), &format!("tenant{n}"));
        store.record_signup(&subdomain(&format!("tenant{n}")), &record, None, NOW).await.unwrap();
        expected.push(record);
    }
    // Enough bulk that a Scan needs more than one 1 MB page.
    let padding = "x".repeat(350_000);
    for n in 0..4 {
        client
            .put_item()
            .table_name(store.table())
            .item("pk", AttributeValue::S(format!("PADDING#{n}")))
            .item("kind", AttributeValue::S("padding".into()))
            .item("data", AttributeValue::S(padding.clone()))
            .send()
            .await
            .unwrap();
    }
    let page = client.scan().table_name(store.table()).send().await.unwrap();
    assert!(page.last_evaluated_key().is_some(), "the padding should make the scan paginate");

    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.list_tenants().await.unwrap(), expected);
}

#[tokio::test]
async fn an_item_that_does_not_decode_is_corrupt_and_a_missing_table_unavailable() {
    let (client, store) = new_store().await;
    let id = TenantId::for_checkout(&unique_checkout("corrupt"));
    client
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S(format!("TENANT#{id}")))
        .item("kind", AttributeValue::S("tenant".into()))
        .item("id", AttributeValue::S(id.to_string()))
        .item("version", AttributeValue::S("one".into()))
        .send()
        .await
        .unwrap();
    let error = store.get_tenant(&id).await.unwrap_err();
    assert!(matches!(&error, StoreError::Corrupt { key, .. } if *key == format!("TENANT#{id}")), "{error:?}");
    assert!(matches!(store.list_tenants().await, Err(StoreError::Corrupt { .. })));

    let missing = DynamoTenantStore::new(client, unique_name("no-such-table"));
    let error = missing.get_tenant(&id).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let chain = error_chain(&error);
    assert!(
        chain.starts_with("tenant store unavailable: DynamoDB GetItem failed: ResourceNotFoundException"),
        "{chain}"
    );
    assert!(!chain.contains('\n'), "{chain}");
}

fn with_subscription(mut record: TenantRecord, subscription: &str, customer: &str) -> TenantRecord {
    let signup = record.signup.as_mut().expect("a provisioning record has a signup");
    signup.subscription = SubscriptionId::parse(subscription).unwrap();
    signup.customer = CustomerId::parse(customer).unwrap();
    record
}

fn unmatched(id: &str, subscription: Option<&str>, created: i64) -> UnmatchedEvent {
    UnmatchedEvent {
        event_id: StripeEventId::parse(id).unwrap(),
        event_type: "customer.subscription.updated".into(),
        subscription: subscription.map(|s| SubscriptionId::parse(s).unwrap()),
        customer: subscription.map(|_| CustomerId::parse("cus_Unmatched").unwrap()),
        created,
        recorded_at: created + 5,
        reason: tenancy::ports::UnmatchedReason::NotOurs,
    }
}

#[tokio::test]
async fn a_tenant_is_found_by_its_subscription_at_its_current_version() {
    let (client, store) = new_store().await;
    let record = with_subscription(
        provisioning_record(&unique_checkout("by-sub"), "findme"),
        "sub_FindMe",
        "cus_FindMe",
    );
    let other =
        with_subscription(provisioning_record(&unique_checkout("by-sub"), "other"), "sub_Other", "cus_Other");
    store.insert_tenant(&record).await.unwrap();
    store.insert_tenant(&other).await.unwrap();
    let find_me = SubscriptionId::parse("sub_FindMe").unwrap();
    assert_eq!(store.find_by_subscription(&find_me).await.unwrap(), Some(record.clone()));

    // After a write, the record as it is now, not as the first insert left it.
    let mut v2 = record.next_version(1_763_800_200);
    v2.status = TenantStatus::Active;
    v2.activated_at = Some(1_763_800_200);
    store.replace_tenant(&v2).await.unwrap();
    let found = store.find_by_subscription(&find_me).await.unwrap().expect("still found");
    assert_eq!((found.version, found.status), (2, TenantStatus::Active));
    assert_eq!(found, v2);
    assert_eq!(
        store.find_by_subscription(&SubscriptionId::parse("sub_Other").unwrap()).await.unwrap(),
        Some(other.clone())
    );

    // Unknown: nothing, even with an unmatched event recorded for it.
    let unknown = SubscriptionId::parse("sub_Unknown").unwrap();
    store.record_unmatched_event(&unmatched("evt_ForUnknown", Some("sub_Unknown"), 10)).await.unwrap();
    assert_eq!(store.find_by_subscription(&unknown).await.unwrap(), None);

    // A rejected checkout has no signup, so no subscription attribute: the
    // index never holds it, whatever is asked.
    let failure =
        Failure { error: "InvalidSignup".into(), cause: "metadata.subdomain is missing".into(), at: 5 };
    let rejected = TenantRecord::rejected(
        TenantId::for_checkout(&unique_checkout("by-sub-rejected")),
        None,
        None,
        failure,
    );
    store.insert_tenant(&rejected).await.unwrap();
    let indexed =
        client.scan().table_name(store.table()).index_name(BY_SUBSCRIPTION_INDEX).send().await.unwrap();
    let mut keys: Vec<&str> = indexed.items().iter().map(|item| text(item, "pk")).collect();
    keys.sort_unstable();
    let mut expected = vec![format!("TENANT#{}", record.id), format!("TENANT#{}", other.id)];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    for subscription in ["sub_1QAcmeR0b0t1csPro", "sub_Unknown"] {
        let found = store.find_by_subscription(&SubscriptionId::parse(subscription).unwrap()).await.unwrap();
        assert_eq!(found, None, "{subscription}");
    }
}

#[tokio::test]
async fn an_unmatched_event_is_recorded_once_as_native_attributes_and_kept_apart_from_tenants() {
    let (client, store) = new_store().await;
    let tenant = provisioning_record(&unique_checkout("unmatched"), "acme");
    store.record_signup(&subdomain("acme"), &tenant, None, NOW).await.unwrap();

    let first = unmatched("evt_Unmatched2", Some("sub_NoTenant"), 1_763_900_000);
    store.record_unmatched_event(&first).await.unwrap();
    // Recorded again (a retried step, later): the first record stays.
    let mut retry = first.clone();
    retry.recorded_at += 600;
    store.record_unmatched_event(&retry).await.unwrap();

    let page = client
        .scan()
        .table_name(store.table())
        .filter_expression("begins_with(pk, :event)")
        .expression_attribute_values(":event", AttributeValue::S("EVENT#".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.items().len(), 1, "{:?}", page.items());
    let item = &page.items()[0];
    assert_eq!(text(item, "pk"), "EVENT#evt_Unmatched2");
    assert_eq!(text(item, "kind"), "unmatched-event");
    assert_eq!(text(item, "event_id"), "evt_Unmatched2");
    assert_eq!(text(item, "event_type"), "customer.subscription.updated");
    assert_eq!(text(item, "subscription"), "sub_NoTenant");
    assert_eq!(text(item, "customer"), "cus_Unmatched");
    assert_eq!(item["created"].as_n().unwrap(), "1763900000");
    assert_eq!(item["recorded_at"].as_n().unwrap(), "1763900005", "the first recording is kept");
    assert!(!item.contains_key("subscription_id"), "an unmatched event is not in the subscription index");

    // One without a subscription, older: listed first.
    let bare = unmatched("evt_Unmatched1", None, 1_763_800_000);
    store.record_unmatched_event(&bare).await.unwrap();
    assert_eq!(store.list_unmatched_events().await.unwrap(), vec![bare, first]);
    assert_eq!(store.list_tenants().await.unwrap(), vec![tenant]);
}

#[tokio::test]
async fn a_write_at_the_right_version_is_written_whatever_event_time_it_carries() {
    let (client, store) = new_store().await;
    let v1 = provisioning_record(&unique_checkout("event-time"), "acme");
    store.insert_tenant(&v1).await.unwrap();

    // The record's event watermark is going away (the generation of the
    // desired state orders events now); set through JSON so this test does
    // not name the field, and keeps asserting the same once it is gone.
    let mut older = v1.next_version(v1.updated_at + 10);
    older.status = TenantStatus::Suspended;
    let mut json = serde_json::to_value(&older).unwrap();
    json["last_event_created"] = serde_json::json!(1);
    let older: TenantRecord = serde_json::from_value(json).unwrap();
    store.replace_tenant(&older).await.unwrap();

    let item = raw_item(&client, &store, &format!("TENANT#{}", v1.id)).await.unwrap();
    assert_eq!(item["version"].as_n().unwrap(), "2");
    assert_eq!(text(&item, "status"), "SUSPENDED");
    assert_eq!(store.get_tenant(&v1.id).await.unwrap(), Some(older));
}

fn buyer(name: &str, email: &str) -> HoldId {
    HoldId::for_buyer(&subdomain(name), &EmailAddress::parse(email).unwrap())
}

fn hold_request(name: &str, email: &str, until: i64, limits: &[(&str, u32)]) -> HoldRequest {
    HoldRequest {
        subdomain: subdomain(name),
        hold_id: buyer(name, email),
        until,
        form: "pro-annual".into(),
        limits: limits
            .iter()
            .map(|(owner, max_open)| HoldLimit { owner: (*owner).into(), max_open: *max_open })
            .collect(),
    }
}

#[tokio::test]
async fn a_hold_is_one_conditional_write_found_again_by_its_buyer_and_never_extended() {
    let (client, store) = new_store().await;
    let acme = subdomain("acme");
    let dana = hold_request("acme", "dana@acme.example", NOW + 4500, &[]);
    let held = match store.hold_subdomain(&dana, NOW).await.unwrap() {
        HoldOutcome::Held(held) => held,
        other => panic!("{other:?}"),
    };
    // The same buyer again, asking for a later end: found as it was.
    let later = HoldRequest { until: NOW + 9000, ..dana.clone() };
    assert_eq!(store.hold_subdomain(&later, NOW + 5).await.unwrap(), HoldOutcome::Existing(held));
    let session = HeldSession {
        id: "cs_test_hold".into(),
        url: "https://checkout.stripe.com/c/pay/cs_test_hold".into(),
        expires_at: NOW + 3600,
    };
    store.record_hold_session(&acme, &dana.hold_id, &session).await.unwrap();
    // On someone else's hold id: nothing is written.
    let stranger = HeldSession { id: "cs_test_other".into(), ..session.clone() };
    store.record_hold_session(&acme, &buyer("acme", "gavin@hooli.example"), &stranger).await.unwrap();

    let item = raw_item(&client, &store, "HOLD#acme").await.unwrap();
    assert_eq!(text(&item, "kind"), "hold");
    assert_eq!(text(&item, "hold_id"), dana.hold_id.as_str());
    assert_eq!(item["hold_until"].as_n().unwrap(), &(NOW + 4500).to_string());
    assert_eq!(item["expires_at"].as_n().unwrap(), &(NOW + 4500).to_string(), "the TTL attribute");
    assert_eq!(text(&item, "session_id"), "cs_test_hold");
    let found = store.subdomain_hold(&acme, NOW + 10).await.unwrap().unwrap();
    assert_eq!((found.until, found.session), (NOW + 4500, Some(session)));

    let gavin = hold_request("acme", "gavin@hooli.example", NOW + 4600, &[]);
    let second = store.hold_subdomain(&gavin, NOW + 10).await.unwrap_err();
    assert!(matches!(second, StoreError::SubdomainHeld { until, .. } if until == NOW + 4500), "{second:?}");

    // Expired: free for the next buyer, even before the TTL sweeps it.
    assert_eq!(store.subdomain_hold(&acme, NOW + 4501).await.unwrap(), None);
    assert!(matches!(store.hold_subdomain(&gavin, NOW + 4501).await.unwrap(), HoldOutcome::Held(_)));
    let item = raw_item(&client, &store, "HOLD#acme").await.unwrap();
    assert_eq!(text(&item, "hold_id"), gavin.hold_id.as_str());
    assert!(!item.contains_key("session_id"), "a new hold has no session yet");

    // A claimed name cannot be held at all: the ConditionCheck on the claim.
    let owner = provisioning_record(&unique_checkout("hold-owner"), "globex");
    store.record_signup(&subdomain("globex"), &owner, None, NOW).await.unwrap();
    let taken = store
        .hold_subdomain(&hold_request("globex", "hank@globex.example", NOW + 3600, &[]), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, StoreError::SubdomainTaken { holder, .. } if *holder == owner.id),
        "{}",
        error_chain(&taken)
    );
    assert!(raw_item(&client, &store, "HOLD#globex").await.is_none());
}

#[tokio::test]
async fn a_paid_checkout_turns_its_own_hold_into_the_claim_and_not_someone_elses() {
    let (client, store) = new_store().await;
    let acme = subdomain("acme");
    let gavin = hold_request("acme", "gavin@hooli.example", NOW + 4500, &[]);
    store.hold_subdomain(&gavin, NOW).await.unwrap();

    // Dana's checkout (another hold id) and an old one without: someone else's live hold.
    let dana = provisioning_record(&unique_checkout("dana"), "acme");
    for carried in [Some(buyer("acme", "dana@acme.example")), None] {
        let refused = store.record_signup(&acme, &dana, carried.as_ref(), NOW + 10).await.unwrap_err();
        assert!(
            matches!(refused, StoreError::SubdomainHeld { until, .. } if until == NOW + 4500),
            "{}",
            error_chain(&refused)
        );
    }
    assert!(raw_item(&client, &store, "SUBDOMAIN#acme").await.is_none());
    assert!(raw_item(&client, &store, &format!("TENANT#{}", dana.id)).await.is_none());

    // Gavin's, paid at the session's edge (in the margin): claim and tenant, hold deleted.
    let record = provisioning_record(&unique_checkout("gavin"), "acme");
    let at_edge = NOW + 3600 + 30;
    assert_eq!(
        store.record_signup(&acme, &record, Some(&gavin.hold_id), at_edge).await.unwrap(),
        Inserted::New
    );
    assert_eq!(
        text(&raw_item(&client, &store, "SUBDOMAIN#acme").await.unwrap(), "tenant_id"),
        record.id.as_str()
    );
    assert!(raw_item(&client, &store, "HOLD#acme").await.is_none());
    assert!(raw_item(&client, &store, &format!("TENANT#{}", record.id)).await.is_some());

    // An old checkout without a hold id, on a name whose hold expired: taken.
    store.hold_subdomain(&hold_request("globex", "hank@globex.example", NOW + 100, &[]), NOW).await.unwrap();
    let late = provisioning_record(&unique_checkout("late"), "globex");
    assert_eq!(
        store.record_signup(&subdomain("globex"), &late, None, NOW + 101).await.unwrap(),
        Inserted::New
    );
    // A live hold from before holds were keyed by buyer does not stop it either.
    client
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S("HOLD#initech".into()))
        .item("kind", AttributeValue::S("hold".into()))
        .item("hold_id", AttributeValue::S("checkout-0123abcd".into()))
        .item("hold_until", AttributeValue::N((NOW + 3600).to_string()))
        .send()
        .await
        .unwrap();
    let legacy = provisioning_record(&unique_checkout("legacy"), "initech");
    assert_eq!(store.record_signup(&subdomain("initech"), &legacy, None, NOW).await.unwrap(), Inserted::New);
}

#[tokio::test]
async fn an_owners_open_holds_are_counted_in_its_item_and_its_limit_holds_nothing_more() {
    let (client, store) = new_store().await;
    let limits = [("email:dana", 2), ("ip:office", 5)];
    store.hold_subdomain(&hold_request("one", "dana@acme.example", NOW + 100, &limits), NOW).await.unwrap();
    store.hold_subdomain(&hold_request("two", "dana@acme.example", NOW + 200, &limits), NOW).await.unwrap();
    let owner = raw_item(&client, &store, "HOLDS#email:dana").await.unwrap();
    let open = owner["open"].as_m().unwrap();
    assert_eq!((open.len(), open["one"].as_n().unwrap().as_str()), (2, (NOW + 100).to_string().as_str()));
    assert_eq!(owner["expires_at"].as_n().unwrap(), &(NOW + 200).to_string());
    // Each write is conditional on the version it read (two holds racing for
    // the last slot: one is refused and reads again). moto does not isolate
    // concurrent transactions, so the race itself is not played here.
    assert_eq!(owner["version"].as_n().unwrap(), "2");

    let third = hold_request("three", "dana@acme.example", NOW + 300, &limits);
    assert_eq!(
        store.hold_subdomain(&third, NOW).await.unwrap(),
        HoldOutcome::OwnerAtLimit { owner: "email:dana".into(), max_open: 2, free_at: NOW + 100 }
    );
    assert!(raw_item(&client, &store, "HOLD#three").await.is_none());
    // Once the first has ended there is room; the expired entry is dropped.
    assert!(matches!(store.hold_subdomain(&third, NOW + 101).await.unwrap(), HoldOutcome::Held(_)));
    let open = raw_item(&client, &store, "HOLDS#email:dana").await.unwrap()["open"].as_m().unwrap().clone();
    let mut names: Vec<&str> = open.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["three", "two"]);
    let open = raw_item(&client, &store, "HOLDS#ip:office").await.unwrap()["open"].as_m().unwrap().clone();
    let mut names: Vec<&str> = open.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["three", "two"], "every owner of the request counts it");
}

#[tokio::test]
async fn requests_are_counted_per_client_and_window_with_a_conditional_add() {
    let (client, store) = new_store().await;
    // NOW is 40 s into its minute: the window started at NOW - 40.
    for count in 1..=2 {
        assert_eq!(store.count_request("ip:a", NOW, 60, 2).await.unwrap(), RateOutcome::Allowed { count });
    }
    assert_eq!(
        store.count_request("ip:a", NOW + 5, 60, 2).await.unwrap(),
        RateOutcome::Limited { retry_after: 15 }
    );
    let item = raw_item(&client, &store, &format!("RATE#ip:a#{}", NOW - 40)).await.unwrap();
    assert_eq!(
        (text(&item, "kind"), item["hits"].as_n().unwrap().as_str()),
        ("rate", "2"),
        "a refusal is not counted"
    );
    assert_eq!(item["expires_at"].as_n().unwrap(), &(NOW + 20 + 300).to_string(), "TTL after the window");
    assert_eq!(store.count_request("ip:b", NOW, 60, 2).await.unwrap(), RateOutcome::Allowed { count: 1 });
    assert_eq!(
        store.count_request("ip:a", NOW + 20, 60, 2).await.unwrap(),
        RateOutcome::Allowed { count: 1 }
    );
}

const NOW: i64 = 1_763_800_000;

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no N attribute {name}"))
}

fn held_by(owner: &str, expires_at: i64) -> LeaseOutcome {
    LeaseOutcome::HeldBy(Lease { owner: owner.to_owned(), expires_at })
}

#[tokio::test]
async fn a_lease_is_one_item_exclusive_renewable_by_its_owner_and_taken_over_only_after_expiry() {
    let (client, store) = new_store().await;
    let t = TenantId::for_checkout(&unique_checkout("lease"));
    let pk = format!("LEASE#{t}");
    assert_eq!(store.acquire_lease(&t, "exec-a", NOW, 60).await.unwrap(), LeaseOutcome::Acquired);
    let item = raw_item(&client, &store, &pk).await.unwrap();
    assert_eq!(
        (text(&item, "kind"), text(&item, "tenant"), text(&item, "owner")),
        ("lease", t.as_str(), "exec-a")
    );
    assert_eq!(number(&item, "expires_at"), NOW + 60, "the expiry, also the table's TTL attribute");

    assert_eq!(store.acquire_lease(&t, "exec-b", NOW + 1, 60).await.unwrap(), held_by("exec-a", NOW + 60));
    assert_eq!(text(&raw_item(&client, &store, &pk).await.unwrap(), "owner"), "exec-a");
    // Renewed by its owner.
    assert_eq!(store.acquire_lease(&t, "exec-a", NOW + 30, 60).await.unwrap(), LeaseOutcome::Acquired);
    assert_eq!(number(&raw_item(&client, &store, &pk).await.unwrap(), "expires_at"), NOW + 90);
    assert_eq!(store.acquire_lease(&t, "exec-b", NOW + 89, 60).await.unwrap(), held_by("exec-a", NOW + 90));
    // Expired (expires_at <= now), though the item is still there: taken over.
    assert_eq!(store.acquire_lease(&t, "exec-b", NOW + 90, 60).await.unwrap(), LeaseOutcome::Acquired);
    let item = raw_item(&client, &store, &pk).await.unwrap();
    assert_eq!((text(&item, "owner"), number(&item, "expires_at")), ("exec-b", NOW + 150));
    assert_eq!(store.acquire_lease(&t, "exec-a", NOW + 91, 60).await.unwrap(), held_by("exec-b", NOW + 150));
    // The tenant item is not involved.
    assert!(raw_item(&client, &store, &format!("TENANT#{t}")).await.is_none());
}

#[tokio::test]
async fn a_lease_is_released_only_by_its_owner() {
    let (client, store) = new_store().await;
    let t = TenantId::for_checkout(&unique_checkout("release"));
    let pk = format!("LEASE#{t}");
    store.acquire_lease(&t, "exec-a", NOW, 60).await.unwrap();
    store.release_lease(&t, "exec-b").await.unwrap();
    assert_eq!(text(&raw_item(&client, &store, &pk).await.unwrap(), "owner"), "exec-a");

    store.release_lease(&t, "exec-a").await.unwrap();
    assert!(raw_item(&client, &store, &pk).await.is_none());
    store.release_lease(&t, "exec-a").await.unwrap();
    assert_eq!(store.acquire_lease(&t, "exec-b", NOW, 60).await.unwrap(), LeaseOutcome::Acquired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_acquirers_exactly_one_wins_and_the_item_names_it() {
    let (client, store) = new_store().await;
    let store = std::sync::Arc::new(store);
    let t = TenantId::for_checkout(&unique_checkout("race"));
    let racers: Vec<_> = (0..6)
        .map(|n| {
            let (store, t) = (store.clone(), t.clone());
            tokio::spawn(async move {
                let owner = format!("exec-{n}");
                let outcome = store.acquire_lease(&t, &owner, NOW, 60).await.unwrap();
                (owner, outcome)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    let winners: Vec<&String> =
        outcomes.iter().filter(|(_, o)| *o == LeaseOutcome::Acquired).map(|(owner, _)| owner).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for (_, outcome) in &outcomes {
        if let LeaseOutcome::HeldBy(lease) = outcome {
            assert_eq!((&lease.owner, lease.expires_at), (winners[0], NOW + 60));
        }
    }
    let item = raw_item(&client, &store, &format!("LEASE#{t}")).await.unwrap();
    assert_eq!(text(&item, "owner"), winners[0]);
}

fn trail_entry(tenant: &TenantId, event_id: &str, created: i64, recorded_at: i64) -> TrailEntry {
    TrailEntry {
        tenant: tenant.clone(),
        event_id: event_id.to_owned(),
        event_type: "customer.subscription.updated".to_owned(),
        created,
        recorded_at,
        outcome: TrailOutcome::Superseded,
        generation: 3,
        note: "stripe already said so".to_owned(),
    }
}

#[tokio::test]
async fn a_trail_entry_recorded_twice_is_one_item_and_the_second_call_returns_false() {
    let (client, store) = new_store().await;
    let t = TenantId::for_checkout(&unique_checkout("trail-twice"));
    let first = trail_entry(&t, "evt_Trail1", NOW - 5, NOW);
    assert!(store.record_trail(&first).await.unwrap());
    let mut again = first.clone();
    again.recorded_at = NOW + 60;
    again.outcome = TrailOutcome::Duplicate;
    assert!(!store.record_trail(&again).await.unwrap());

    let page = client
        .scan()
        .table_name(store.table())
        .filter_expression("begins_with(pk, :trail)")
        .expression_attribute_values(":trail", AttributeValue::S("TRAIL#".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.items().len(), 1, "{:?}", page.items());
    let item = &page.items()[0];
    assert_eq!(text(item, "pk"), format!("TRAIL#{t}#evt_Trail1"));
    assert_eq!(text(item, "kind"), "trail");
    assert_eq!(text(item, "tenant"), t.as_str());
    assert_eq!(text(item, "event_id"), "evt_Trail1");
    assert_eq!(text(item, "outcome"), "superseded");
    assert_eq!(number(item, "recorded_at"), NOW, "the first recording is kept");
    assert_eq!(number(item, "generation"), 3);
    assert_eq!(store.trail(&t).await.unwrap(), vec![first]);
}

#[tokio::test]
async fn the_trail_lists_a_tenants_own_entries_oldest_first() {
    let (_, store) = new_store().await;
    let t = TenantId::for_checkout(&unique_checkout("trail-order"));
    let other = TenantId::for_checkout(&unique_checkout("trail-other"));
    let late = trail_entry(&t, "evt_A", NOW - 100, NOW + 10);
    let tie_newer = trail_entry(&t, "evt_B", NOW - 50, NOW);
    let tie_older_z = trail_entry(&t, "evt_Z", NOW - 60, NOW);
    let tie_older_c = trail_entry(&t, "evt_C", NOW - 60, NOW);
    for entry in [&late, &tie_newer, &tie_older_z, &tie_older_c, &trail_entry(&other, "evt_A", NOW, NOW)] {
        assert!(store.record_trail(entry).await.unwrap());
    }
    // A mail and a lease of the same tenant are not trail entries.
    store.acquire_lease(&t, "exec-a", NOW, 60).await.unwrap();
    store.reserve_mail(&t, "welcome:1", "exec-a", NOW, 300).await.unwrap();
    assert_eq!(store.trail(&t).await.unwrap(), vec![tie_older_c, tie_older_z, tie_newer, late]);
    assert_eq!(store.trail(&other).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_mail_is_held_for_others_renewed_for_its_owner_taken_over_when_stale_and_sent_once() {
    let (client, store) = new_store().await;
    let t = TenantId::for_checkout(&unique_checkout("mail"));
    let key = "welcome:1";
    let pk = format!("MAIL#{t}#{key}");
    assert_eq!(store.reserve_mail(&t, key, "exec-a", NOW, 300).await.unwrap(), MailSlot::Reserved);
    let item = raw_item(&client, &store, &pk).await.unwrap();
    assert_eq!((text(&item, "kind"), text(&item, "tenant"), text(&item, "key")), ("mail", t.as_str(), key));
    assert_eq!((text(&item, "owner"), number(&item, "reserved_at")), ("exec-a", NOW));
    assert!(!item.contains_key("sent"));

    let held = MailSlot::HeldBy { owner: "exec-a".into(), since: NOW };
    assert_eq!(store.reserve_mail(&t, key, "exec-b", NOW + 10, 300).await.unwrap(), held);
    assert_eq!(store.reserve_mail(&t, key, "exec-a", NOW + 20, 300).await.unwrap(), MailSlot::Reserved);
    let held = MailSlot::HeldBy { owner: "exec-a".into(), since: NOW + 20 };
    assert_eq!(store.reserve_mail(&t, key, "exec-b", NOW + 320, 300).await.unwrap(), held);
    assert_eq!(store.reserve_mail(&t, key, "exec-b", NOW + 321, 300).await.unwrap(), MailSlot::Reserved);
    let item = raw_item(&client, &store, &pk).await.unwrap();
    assert_eq!((text(&item, "owner"), number(&item, "reserved_at")), ("exec-b", NOW + 321));

    let marked = store.mail_sent(&t, key, "exec-b", "ses-1", NOW + 322).await.unwrap();
    assert_eq!(marked, MailMarked::Recorded);
    let marked = store.mail_sent(&t, key, "exec-b", "ses-1", NOW + 400).await.unwrap();
    assert_eq!(marked, MailMarked::Recorded, "the same id again: a retry");
    let item = raw_item(&client, &store, &pk).await.unwrap();
    let sent = item["sent"].as_m().expect("sent is a map");
    assert_eq!(sent["message_id"].as_s().unwrap(), "ses-1");
    assert_eq!(sent["sent_at"].as_n().unwrap(), &(NOW + 322).to_string(), "the retry changed nothing");

    let slot = MailSlot::Sent { message_id: "ses-1".into() };
    for (owner, at) in [("exec-a", NOW + 330), ("exec-b", NOW + 330), ("exec-c", NOW + 100_000)] {
        assert_eq!(store.reserve_mail(&t, key, owner, at, 300).await.unwrap(), slot, "{owner}");
    }
    assert_eq!(number(&raw_item(&client, &store, &pk).await.unwrap(), "reserved_at"), NOW + 321);
    assert_eq!(
        store.mails(&t).await.unwrap(),
        vec![MailRecord {
            tenant: t.clone(),
            key: key.into(),
            owner: "exec-b".into(),
            reserved_at: NOW + 321,
            sent: Some(MailDelivery { message_id: "ses-1".into(), sent_at: NOW + 322 }),
        }]
    );
}

#[tokio::test]
async fn a_mail_sent_after_its_reservation_was_taken_over_is_recorded_once_and_the_second_send_reported() {
    let (client, store) = new_store().await;
    let t = TenantId::for_checkout(&unique_checkout("mail-late"));
    store.reserve_mail(&t, "suspended:3", "exec-a", NOW, 300).await.unwrap();
    store.reserve_mail(&t, "suspended:3", "exec-b", NOW + 400, 300).await.unwrap();
    let marked = store.mail_sent(&t, "suspended:3", "exec-a", "ses-a", NOW + 401).await.unwrap();
    assert_eq!(marked, MailMarked::Recorded);
    let marked = store.mail_sent(&t, "suspended:3", "exec-b", "ses-b", NOW + 402).await.unwrap();
    assert_eq!(marked, MailMarked::SentBefore { message_id: "ses-a".into() });
    let item = raw_item(&client, &store, &format!("MAIL#{t}#suspended:3")).await.unwrap();
    assert_eq!(text(&item, "owner"), "exec-a");
    assert_eq!(item["sent"].as_m().unwrap()["message_id"].as_s().unwrap(), "ses-a");

    // Marked sent with no reservation: recorded, and never reserved after.
    store.mail_sent(&t, "cancelled:4", "exec-c", "ses-c", NOW).await.unwrap();
    assert_eq!(
        store.reserve_mail(&t, "cancelled:4", "exec-d", NOW + 1, 300).await.unwrap(),
        MailSlot::Sent { message_id: "ses-c".into() }
    );
    let keys: Vec<String> = store.mails(&t).await.unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["cancelled:4", "suspended:3"]);
    let other = TenantId::for_checkout(&unique_checkout("mail-none"));
    assert_eq!(store.mails(&other).await.unwrap(), vec![]);
}

/// The trial contract, which the local store keeps too: reserved per hold,
/// lapsing with it unpaid, never given again once used.
async fn one_trial_per_customer(store: &dyn TenantStore) {
    use tenancy::domain::{TrialKey, TrialOffer, TrialReservation, TrialUse};
    let dana =
        TrialKey::for_email(&EmailAddress::parse(&format!("{}@acme.example", unique_name("dana"))).unwrap());
    let hold =
        |name: &str| HoldId::for_buyer(&subdomain(name), &EmailAddress::parse("dana@acme.example").unwrap());
    let reserve = |hold: HoldId, until: i64| TrialReservation { key: dana.clone(), hold, until };
    let now = 1_763_800_000;
    let first = reserve(hold("acme"), now + 3600);
    assert_eq!(store.reserve_trial(&first, now).await.unwrap(), TrialOffer::Reserved);
    // The same hold again (a retried request): still its own, not extended.
    let retried = reserve(hold("acme"), now + 7200);
    assert_eq!(store.reserve_trial(&retried, now + 10).await.unwrap(), TrialOffer::Reserved);
    let other = reserve(hold("acme-two"), now + 5000);
    assert_eq!(
        store.reserve_trial(&other, now + 20).await.unwrap(),
        TrialOffer::InAnotherCheckout { until: now + 3600 }
    );
    // The first lapsed unpaid: the other checkout may give it.
    assert_eq!(store.reserve_trial(&other, now + 3601).await.unwrap(), TrialOffer::Reserved);
    let used = TrialUse {
        tenant: TenantId::parse("tnt_00000000000000000002").unwrap(),
        customer: CustomerId::parse("cus_Dana2").unwrap(),
        used_at: now + 4000,
    };
    assert_eq!(store.record_trial_use(&dana, &used).await.unwrap(), used);
    // A second use recorded keeps the first, and says which it was.
    let again = TrialUse { tenant: TenantId::parse("tnt_00000000000000000003").unwrap(), ..used.clone() };
    assert_eq!(store.record_trial_use(&dana, &again).await.unwrap(), used);
    for (name, at) in [("acme", now + 4001), ("acme-two", now + 4001), ("acme-three", now + 900 * 86_400)] {
        let later = reserve(hold(name), at + 3600);
        assert_eq!(store.reserve_trial(&later, at).await.unwrap(), TrialOffer::Used(used.clone()));
    }
}

#[tokio::test]
async fn a_trial_is_reserved_per_checkout_and_used_once_in_dynamodb_and_locally() {
    let (client, store) = new_store().await;
    one_trial_per_customer(&store).await;
    // Stored by hash, never the address; a used trial has no TTL.
    let scanned = client.scan().table_name(store.table()).send().await.unwrap();
    let trials: Vec<_> = scanned.items().iter().filter(|item| text(item, "kind") == "trial").collect();
    assert_eq!(trials.len(), 1);
    assert!(text(trials[0], "pk").starts_with("TRIAL#") && !text(trials[0], "pk").contains('@'));
    assert!(trials[0].get("expires_at").is_none(), "{:?}", trials[0]);
    assert!(trials[0].get("used").and_then(|u| u.as_m().ok()).is_some());

    let clock: std::sync::Arc<dyn tenancy::clock::Clock> = std::sync::Arc::new(tenancy::clock::SystemClock);
    let local = tenancy::adapters::local::LocalTenantStore::open(None, clock).unwrap();
    one_trial_per_customer(&local).await;
}
