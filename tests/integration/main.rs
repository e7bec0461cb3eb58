//! Integration tests, one binary. Modules that talk to moto's server need
//! MOTO_ENDPOINT (set by `make test`).

mod api_gateway;
mod local_server;
mod moto_sqs;
mod moto_ssm;
mod workflow;
