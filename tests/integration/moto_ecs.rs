//! The ECS Fargate launcher with its ALB routing on moto's server, against
//! the resources `tenantctl::emulator::bootstrap` makes, read back with the SDK.
//!
//! moto runs no containers: a new service reports 0 running tasks, and no
//! target registers itself in the target group. The health test plays ECS's
//! part (scales the service, which moto answers with running tasks, and
//! registers a task IP as a target), so the launcher's verdict is checked
//! against what ECS and the ALB would report.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{AssignPublicIp, Compatibility, NetworkMode, TaskDefinitionStatus};
use aws_sdk_elasticloadbalancingv2::types::{Rule, TargetDescription};
use integration_tests::{emulator, lookup, moto_config, unique_checkout, unique_name};
use tenancy::adapters::aws::launcher::{TENANT_TAG, TenantNames};
use tenancy::adapters::aws::{EcsTenantLauncher, LauncherConfig};
use tenancy::domain::TenantId;
use tenancy::ports::{LaunchSpec, LauncherError, ServiceHealth, TenantLauncher};
use tenantctl::emulator::EmulatorResources;

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tenant-app:1.4.2";

struct Fixture {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    launcher: EcsTenantLauncher,
    resources: &'static EmulatorResources,
}

async fn fixture() -> Fixture {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let config = LauncherConfig::from_lookup(&lookup(&resources.environment(IMAGE))).unwrap();
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    Fixture { launcher: EcsTenantLauncher::new(ecs.clone(), elb.clone(), config), ecs, elb, resources }
}

fn spec(resources: &EmulatorResources, prefix: &str) -> LaunchSpec {
    let tenant = TenantId::for_checkout(&unique_checkout(prefix));
    let environment = BTreeMap::from([
        ("TIER".to_owned(), "2".to_owned()),
        ("PLAN".to_owned(), "pro".to_owned()),
        ("ORGANIZATION".to_owned(), "Zoë’s Café".to_owned()),
        ("ADMIN_EMAIL".to_owned(), "dana@acme.example".to_owned()),
        ("ADMIN_PASSWORD_HASH".to_owned(), "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
    ]);
    LaunchSpec {
        tenant,
        host: format!("{}.{}", unique_name(prefix), resources.domain),
        environment,
        desired_count: 1,
    }
}

impl Fixture {
    /// `size` load balancers of the test's own on the emulator's network,
    /// each with its listener, so other tests' tenants do not count.
    async fn pool_of_its_own(
        &self,
        prefix: &str,
        size: usize,
    ) -> Vec<(tenantctl::emulator::Balancer, String)> {
        use tenantctl::emulator::{ensure_listener, ensure_load_balancer};
        let mut pool = Vec::new();
        for n in 0..size {
            let name = format!("{prefix}{n}-{}", std::process::id() % 100_000);
            let balancer = ensure_load_balancer(&self.elb, &name, &self.resources.network).await.unwrap();
            let listener = ensure_listener(&self.elb, &balancer.arn).await.unwrap();
            pool.push((balancer, listener));
        }
        pool
    }

    async fn rules_for(&self, host: &str) -> Vec<Rule> {
        let rules =
            self.elb.describe_rules().listener_arn(&self.resources.listener_arn).send().await.unwrap();
        rules
            .rules()
            .iter()
            .filter(|rule| {
                rule.conditions().iter().any(|c| {
                    let config = c.host_header_config().map(|h| h.values()).unwrap_or_default();
                    config.iter().chain(c.values()).any(|v| v == host)
                })
            })
            .cloned()
            .collect()
    }

    async fn active_revisions(&self, family: &str) -> Vec<String> {
        let listed = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(TaskDefinitionStatus::Active)
            .send()
            .await
            .unwrap();
        listed.task_definition_arns().to_vec()
    }

    async fn service(&self, name: &str) -> Option<aws_sdk_ecs::types::Service> {
        let described = self
            .ecs
            .describe_services()
            .cluster(&self.resources.cluster_arn)
            .services(name)
            .send()
            .await
            .unwrap();
        described.services().first().cloned()
    }

    /// The tags ECS holds for a task definition or service.
    async fn ecs_tags(&self, arn: &str) -> Vec<(String, String)> {
        let listed = self.ecs.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
        listed
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect()
    }

    /// The tags the load balancer holds for a target group or listener rule.
    async fn elb_tags(&self, arn: &str) -> Vec<(String, String)> {
        let described = self.elb.describe_tags().resource_arns(arn).send().await.unwrap();
        described.tag_descriptions()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect()
    }

    async fn target_group_exists(&self, name: &str) -> bool {
        match self.elb.describe_target_groups().names(name).send().await {
            Ok(found) => !found.target_groups().is_empty(),
            Err(error)
                if error.as_service_error().is_some_and(|e| e.is_target_group_not_found_exception()) =>
            {
                false
            }
            Err(error) => panic!("{error:?}"),
        }
    }
}

#[tokio::test]
async fn launching_twice_makes_one_task_definition_target_group_rule_and_service() {
    let f = fixture().await;
    let spec = spec(f.resources, "launch");
    let names = TenantNames::of(&spec.tenant);

    let first = f.launcher.launch(&spec).await.unwrap();
    let second = f.launcher.launch(&spec).await.unwrap();
    assert_eq!(first, second, "a retried launch finds what the first one made");

    // One revision, holding the tenant's settings.
    let revisions = f.active_revisions(&names.family).await;
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    let described = f.ecs.describe_task_definition().task_definition(&revisions[0]).send().await.unwrap();
    let td = described.task_definition().unwrap();
    assert_eq!(td.family(), Some(names.family.as_str()));
    assert_eq!(td.network_mode(), Some(&NetworkMode::Awsvpc));
    assert_eq!(td.requires_compatibilities(), [Compatibility::Fargate]);
    assert_eq!((td.cpu(), td.memory()), (Some("256"), Some("512")));
    assert_eq!(td.execution_role_arn(), Some(f.resources.execution_role_arn.as_str()));
    let container = &td.container_definitions()[0];
    assert_eq!((container.name(), container.image()), (Some("app"), Some(IMAGE)));
    assert_eq!(container.port_mappings()[0].container_port(), Some(8080));
    let environment: BTreeMap<String, String> = container
        .environment()
        .iter()
        .map(|kv| (kv.name().unwrap().to_owned(), kv.value().unwrap().to_owned()))
        .collect();
    assert_eq!(environment, spec.environment);

    // One target group: IP targets over HTTP, checked on /health.
    let groups = f.elb.describe_target_groups().names(&names.target_group).send().await.unwrap();
    let group = &groups.target_groups()[0];
    assert_eq!(group.target_group_arn(), Some(first.target_group_arn.as_str()));
    assert_eq!(group.target_type().map(|t| t.as_str()), Some("ip"));
    assert_eq!((group.protocol().map(|p| p.as_str()), group.port()), (Some("HTTP"), Some(8080)));
    assert_eq!(group.health_check_path(), Some("/health"));
    assert_eq!(group.vpc_id(), Some(f.resources.network.vpc_id.as_str()));

    // One rule for the host, forwarding to the target group.
    let rules = f.rules_for(&spec.host).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].rule_arn(), Some(first.listener_rule_arn.as_str()));
    let action = &rules[0].actions()[0];
    assert_eq!(action.target_group_arn(), Some(first.target_group_arn.as_str()));

    // One Fargate service with the network and the load balancer mapping.
    let listed = f.ecs.list_services().cluster(&f.resources.cluster_arn).send().await.unwrap();
    let ours: Vec<_> = listed.service_arns().iter().filter(|arn| arn.ends_with(&names.service)).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let service = f.service(&names.service).await.unwrap();
    assert_eq!(service.service_arn(), Some(first.service_arn.as_str()));
    assert_eq!(service.status(), Some("ACTIVE"));
    assert_eq!(service.desired_count(), 1);
    assert_eq!(service.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert_eq!(service.task_definition(), Some(revisions[0].as_str()));
    let vpc = service.network_configuration().unwrap().awsvpc_configuration().unwrap();
    assert_eq!(vpc.subnets(), f.resources.network.subnets.as_slice());
    assert_eq!(vpc.security_groups(), std::slice::from_ref(&f.resources.network.security_group));
    assert_eq!(vpc.assign_public_ip(), Some(&AssignPublicIp::Disabled));
    let balancer = &service.load_balancers()[0];
    assert_eq!(balancer.target_group_arn(), Some(first.target_group_arn.as_str()));
    assert_eq!((balancer.container_name(), balancer.container_port()), (Some("app"), Some(8080)));

    // Each carries the tenant's tag and no other: the stack's IAM policy lets
    // the create calls through only with that one tag key in the request.
    let tagged = vec![(TENANT_TAG.to_owned(), spec.tenant.as_str().to_owned())];
    assert_eq!(f.ecs_tags(&revisions[0]).await, tagged, "task definition");
    assert_eq!(f.ecs_tags(&first.service_arn).await, tagged, "service");
    assert_eq!(f.elb_tags(&first.target_group_arn).await, tagged, "target group");
    assert_eq!(f.elb_tags(&first.listener_rule_arn).await, tagged, "listener rule");
}

#[tokio::test]
async fn new_settings_register_a_new_revision_and_move_the_service_to_it() {
    let f = fixture().await;
    let mut spec = spec(f.resources, "upgrade");
    let names = TenantNames::of(&spec.tenant);
    let first = f.launcher.launch(&spec).await.unwrap();

    spec.environment.insert("TIER".into(), "3".into());
    spec.environment.insert("PLAN".into(), "ultimate".into());
    let second = f.launcher.launch(&spec).await.unwrap();
    assert_eq!(first, second);

    let revisions = f.active_revisions(&names.family).await;
    assert_eq!(revisions.len(), 2, "{revisions:?}");
    let latest = revisions.iter().find(|arn| arn.ends_with(":2")).unwrap();
    let service = f.service(&names.service).await.unwrap();
    assert_eq!(service.task_definition(), Some(latest.as_str()));
    // Every revision is registered tagged, not only a family's first.
    let tagged = vec![(TENANT_TAG.to_owned(), spec.tenant.as_str().to_owned())];
    assert_eq!(f.ecs_tags(latest).await, tagged);
    assert_eq!(f.rules_for(&spec.host).await.len(), 1);
}

#[tokio::test]
async fn tenants_get_their_own_rules_and_a_taken_host_is_refused() {
    let f = fixture().await;
    let a = spec(f.resources, "first");
    let b = spec(f.resources, "second");
    let launched_a = f.launcher.launch(&a).await.unwrap();
    let launched_b = f.launcher.launch(&b).await.unwrap();
    assert_ne!(launched_a.listener_rule_arn, launched_b.listener_rule_arn);
    let priority = |rules: Vec<Rule>| rules[0].priority().unwrap().to_owned();
    assert_ne!(priority(f.rules_for(&a.host).await), priority(f.rules_for(&b.host).await));

    // Another tenant with a's host: refused, a's routing untouched.
    let mut intruder = spec(f.resources, "intruder");
    intruder.host = a.host.clone();
    let error = f.launcher.launch(&intruder).await.unwrap_err();
    assert!(
        matches!(&error, LauncherError::Rejected(reason) if reason.contains("already routed")),
        "{error:?}"
    );
    let rules = f.rules_for(&a.host).await;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].actions()[0].target_group_arn(), Some(launched_a.target_group_arn.as_str()));
    f.launcher.remove(&intruder.tenant).await.unwrap();
}

#[tokio::test]
async fn health_follows_running_tasks_and_healthy_targets() {
    let f = fixture().await;
    let spec = spec(f.resources, "health");
    let names = TenantNames::of(&spec.tenant);
    let launched = f.launcher.launch(&spec).await.unwrap();

    // moto: a new service has no running task yet.
    let health = f.launcher.health(&spec.tenant).await.unwrap();
    assert!(matches!(&health, ServiceHealth::Starting { detail } if detail.contains("0 of 1")), "{health:?}");

    // ECS starts the task (moto reports a scaled service as running) ...
    f.ecs
        .update_service()
        .cluster(&f.resources.cluster_arn)
        .service(&names.service)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let health = f.launcher.health(&spec.tenant).await.unwrap();
    assert_eq!(health, ServiceHealth::Starting { detail: "no target registered yet".into() });

    // ... and registers its IP with the target group, whose check passes.
    f.elb
        .register_targets()
        .target_group_arn(&launched.target_group_arn)
        .targets(TargetDescription::builder().id("10.0.1.23").port(8080).build())
        .send()
        .await
        .unwrap();
    assert_eq!(f.launcher.health(&spec.tenant).await.unwrap(), ServiceHealth::Healthy);

    f.launcher.remove(&spec.tenant).await.unwrap();
    let health = f.launcher.health(&spec.tenant).await.unwrap();
    assert!(matches!(health, ServiceHealth::Broken { .. }), "{health:?}");

    let never = TenantId::for_checkout(&unique_checkout("never"));
    let health = f.launcher.health(&never).await.unwrap();
    assert!(
        matches!(&health, ServiceHealth::Broken { reason } if reason.contains("does not exist")),
        "{health:?}"
    );
}

#[tokio::test]
async fn removing_twice_leaves_nothing_and_the_tenant_can_come_back() {
    let f = fixture().await;
    let spec = spec(f.resources, "remove");
    let names = TenantNames::of(&spec.tenant);
    f.launcher.launch(&spec).await.unwrap();

    f.launcher.remove(&spec.tenant).await.unwrap();
    f.launcher.remove(&spec.tenant).await.unwrap();

    let service = f.service(&names.service).await;
    assert!(service.as_ref().is_none_or(|s| s.status() == Some("INACTIVE")), "{service:?}");
    assert!(f.rules_for(&spec.host).await.is_empty());
    assert!(!f.target_group_exists(&names.target_group).await);
    assert!(f.active_revisions(&names.family).await.is_empty());

    // Removing a tenant that never ran is fine too.
    f.launcher.remove(&TenantId::for_checkout(&unique_checkout("nobody"))).await.unwrap();

    let again = f.launcher.launch(&spec).await.unwrap();
    assert_eq!(f.service(&names.service).await.unwrap().status(), Some("ACTIVE"));
    assert_eq!(f.rules_for(&spec.host).await.len(), 1);
    assert!(f.target_group_exists(&names.target_group).await);
    assert_eq!(f.active_revisions(&names.family).await.len(), 1);
    assert!(again.service_arn.ends_with(&names.service));
    f.launcher.remove(&spec.tenant).await.unwrap();
}

#[tokio::test]
async fn scaling_sets_the_desired_count_and_a_tenant_without_a_service_is_refused() {
    let f = fixture().await;
    let spec = spec(f.resources, "scale");
    let names = TenantNames::of(&spec.tenant);
    f.launcher.launch(&spec).await.unwrap();
    assert_eq!(f.service(&names.service).await.unwrap().desired_count(), 1);

    // Suspended, then resumed; each twice, as a retried step would.
    for desired in [0, 0, 1, 1] {
        f.launcher.scale(&spec.tenant, desired).await.unwrap();
        let service = f.service(&names.service).await.unwrap();
        assert_eq!(service.status(), Some("ACTIVE"));
        assert_eq!(service.desired_count(), i32::try_from(desired).unwrap());
    }
    // Scaling changes neither the routing nor the revision.
    assert_eq!(f.rules_for(&spec.host).await.len(), 1);
    assert_eq!(f.active_revisions(&names.family).await.len(), 1);

    let never = TenantId::for_checkout(&unique_checkout("unscaled"));
    let error = f.launcher.scale(&never, 0).await.unwrap_err();
    let service = TenantNames::of(&never).service;
    assert!(
        matches!(&error, LauncherError::Rejected(reason)
            if reason.contains("has no active service") && reason.contains(&service)),
        "{error:?}"
    );
    assert!(f.service(&service).await.is_none(), "scaling made no service");
    f.launcher.remove(&spec.tenant).await.unwrap();
}

/// A pool of two load balancers of this test's own, each holding two
/// tenants: tenants are placed where there is room and stay there, their
/// alias points at their own load balancer, the room the checkout API reads
/// is the listeners' rules added up, a full pool refuses, and a removal
/// gives a place back.
#[tokio::test]
async fn the_pool_places_tenants_where_there_is_room_and_reads_its_room_from_the_rules() {
    use std::collections::BTreeSet;
    use tenancy::adapters::aws::pool::{ALB_LISTENER_ARNS, PoolCapacity};
    use tenancy::ports::{Room, RoutingCapacity};

    let f = fixture().await;
    let pool = f.pool_of_its_own("pool", 2).await;
    let mut environment = f.resources.environment(IMAGE);
    let listeners: Vec<String> = pool.iter().map(|(_, listener)| listener.clone()).collect();
    environment.insert(ALB_LISTENER_ARNS, format!("{},", listeners.join(",")));
    environment.insert(tenancy::ports::capacity::ALB_MAX_RULES, "2".into());
    let env = lookup(&environment);
    let capacity = PoolCapacity::from_lookup(f.elb.clone(), &env).unwrap();
    assert_eq!(capacity.room().await.unwrap(), Room { used: 0, capacity: 4 }, "default rules are no tenants");

    let launcher =
        EcsTenantLauncher::new(f.ecs.clone(), f.elb.clone(), LauncherConfig::from_lookup(&env).unwrap());
    let specs: Vec<LaunchSpec> = (0..5).map(|n| spec(f.resources, &format!("pool-{n}"))).collect();
    let mut placed = Vec::new();
    for spec in &specs[..4] {
        placed.push(launcher.launch(spec).await.unwrap());
    }
    for launched in &placed {
        let (balancer, _) =
            pool.iter().find(|(_, l)| *l == launched.listener_arn).expect("a listener of the pool");
        assert_eq!(
            launched.load_balancer.dns_name, balancer.dns_name,
            "the alias goes to the tenant's own ALB"
        );
        assert_eq!(launched.load_balancer.hosted_zone_id, balancer.hosted_zone_id);
        let rules = f.elb.describe_rules().rule_arns(&launched.listener_rule_arn).send().await.unwrap();
        assert_eq!(rules.rules().len(), 1, "the rule is on that listener");
    }
    let used: BTreeSet<&str> = placed.iter().map(|l| l.listener_arn.as_str()).collect();
    assert_eq!(used.len(), 2, "both load balancers took tenants");
    assert_eq!(capacity.room().await.unwrap(), Room { used: 4, capacity: 4 });

    let again = launcher.launch(&LaunchSpec { desired_count: 0, ..specs[1].clone() }).await.unwrap();
    assert_eq!(again, placed[1], "a tenant launched again stays where it is and is not counted twice");
    let refused = launcher.launch(&specs[4]).await.unwrap_err();
    assert!(
        matches!(&refused, LauncherError::Rejected(why) if why.contains("NoRoom") && why.contains("all 2 load balancers")),
        "{refused:?}"
    );

    launcher.remove(&specs[0].tenant).await.unwrap();
    assert_eq!(
        capacity.room().await.unwrap(),
        Room { used: 3, capacity: 4 },
        "a removal gives its place back"
    );
    let fifth = launcher.launch(&specs[4]).await.unwrap();
    assert_eq!(fifth.listener_arn, placed[0].listener_arn, "the freed place is the only one");

    // Taken out of the pool, a load balancer's tenants are not moved behind
    // the operator's back: their launch says where they are.
    let mut shrunk = environment.clone();
    let other = listeners.iter().find(|l| **l != fifth.listener_arn).unwrap();
    shrunk.insert(ALB_LISTENER_ARNS, other.clone());
    let narrow = EcsTenantLauncher::new(
        f.ecs.clone(),
        f.elb.clone(),
        LauncherConfig::from_lookup(&lookup(&shrunk)).unwrap(),
    );
    let error = narrow.launch(&specs[4]).await.unwrap_err().to_string();
    assert!(error.contains("not in the pool") && error.contains(ALB_LISTENER_ARNS), "{error}");
    // Its removal still finds the rule: through the target group, not the pool.
    narrow.remove(&specs[4].tenant).await.unwrap();
    for spec in &specs[1..4] {
        launcher.remove(&spec.tenant).await.unwrap();
    }
    assert_eq!(capacity.room().await.unwrap(), Room { used: 0, capacity: 4 });
}

/// Growing the pool is appending a listener: the tenants already placed
/// stay exactly where they are (same listener, same alias target, so their
/// DNS records are not touched), and new tenants take the new room.
#[tokio::test]
async fn adding_a_load_balancer_to_the_pool_moves_no_tenant_and_gives_new_ones_room() {
    use tenancy::adapters::aws::pool::ALB_LISTENER_ARNS;

    let f = fixture().await;
    let listeners: Vec<String> =
        f.pool_of_its_own("grow", 2).await.into_iter().map(|(_, listener)| listener).collect();
    let launcher_on = |pool: &[String]| {
        let mut environment = f.resources.environment(IMAGE);
        environment.insert(ALB_LISTENER_ARNS, pool.join(","));
        environment.insert(tenancy::ports::capacity::ALB_MAX_RULES, "2".into());
        EcsTenantLauncher::new(
            f.ecs.clone(),
            f.elb.clone(),
            LauncherConfig::from_lookup(&lookup(&environment)).unwrap(),
        )
    };
    let (one, two) = (launcher_on(&listeners[..1]), launcher_on(&listeners));
    let specs: Vec<LaunchSpec> = (0..3).map(|n| spec(f.resources, &format!("grow-{n}"))).collect();
    let before = [one.launch(&specs[0]).await.unwrap(), one.launch(&specs[1]).await.unwrap()];
    assert!(one.launch(&specs[2]).await.unwrap_err().to_string().contains("NoRoom"), "a pool of one is full");

    for (spec, placed) in specs.iter().zip(&before) {
        assert_eq!(&two.launch(spec).await.unwrap(), placed, "a tenant already placed is not moved");
    }
    let third = two.launch(&specs[2]).await.unwrap();
    assert_eq!(third.listener_arn, listeners[1], "the new tenant takes the new load balancer's room");
    assert_ne!(third.load_balancer, before[0].load_balancer);
    for spec in &specs {
        two.remove(&spec.tenant).await.unwrap();
    }
}
