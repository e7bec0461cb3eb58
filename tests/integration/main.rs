//! Integration tests, one binary. Modules that talk to moto's server need
//! MOTO_ENDPOINT (set by `make test`).

mod api_gateway;
mod coupons;
mod doctor;
mod faults_local;
mod faults_moto;
mod inbound;
mod lifecycle;
mod local_server;
mod local_stripe;
mod moto_dynamodb;
mod moto_ecs;
mod moto_inbound;
mod moto_route53;
mod moto_sesv2;
mod moto_sfn;
mod moto_sqs;
mod moto_ssm;
mod stage;
mod stage_all;
mod stage_events;
mod stage_stripe;
mod stage_tenants;
mod status;
mod stripe_api;
mod trials;
mod workflow;
