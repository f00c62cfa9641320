//! Integration tests: a real node on an ephemeral port, real clients, both storage
//! profiles (PostgreSQL when `NEXUS_TEST_DATABASE_URL` is set) and the cluster profile
//! (also `NEXUS_TEST_REDIS_URL`). Tests name their profiles through `both_profiles!`,
//! `postgres_profile!` or `cluster_profile!`, which skip what is not configured (fail,
//! in CI): `cargo test --test api postgres` runs one profile.

mod agent_client;
mod agents_api;
mod alerts_api;
mod audit_api;
mod auth;
mod backlog;
mod batch_api;
mod bounds;
mod browser;
mod cli;
mod cluster;
mod cluster_faults;
mod cors;
mod crash;
mod crash_writes;
mod dashboard;
mod delivery;
mod fake_providers;
mod gateway;
mod helpers;
mod http_gate;
mod http_limits;
mod lists_api;
mod metrics;
mod mirror;
mod mirror_changes;
mod mirror_config;
mod odd_input;
mod openapi;
mod operator_api;
mod outage;
mod pg_concurrency;
mod presence;
mod probes;
mod proxy;
mod pull_api;
mod putio;
mod queue;
mod quotas;
mod revocation;
mod routing_api;
mod schema;
mod secrets;
mod serve;
mod sessions_api;
mod sources_api;
mod storage_errors;
mod tenant_log;
mod trace;
mod transport;
mod usage_api;
mod webhook_scope;
mod webhook_support;
mod webhooks;
mod worker;
mod worker_failures;
mod worker_host;
mod worker_pull;
mod workers_api;
