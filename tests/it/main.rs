//! One integration-test binary (keeps link time down); each module is one area.

mod cli;
mod engine_props;
mod examples;

mod daemon_live;
mod daemon_support;
mod http;
mod ingest;
mod ingest_connect;
mod metrics;
