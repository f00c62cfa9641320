//! Integration tests: a real node on an ephemeral port, real clients, both storage
//! profiles (PostgreSQL when `NEXUS_TEST_DATABASE_URL` is set).

mod agent_client;
mod auth;
mod cli;
mod cluster;
mod cluster_faults;
mod crash;
mod delivery;
mod fake_providers;
mod gateway;
mod helpers;
mod mirror;
mod mirror_config;
mod pg_concurrency;
mod probes;
mod proxy;
mod queue;
mod routing_api;
mod schema;
mod serve;
mod webhook_support;
mod webhooks;
