//! One integration-test binary (keeps link time down); each module is one area.

mod alert_rules;
mod alerts;
mod asterisk;
mod browser;
mod cli;
mod crash;
mod daemon_live;
mod daemon_support;
mod dashboards;
mod demo;
mod demo_live;
mod engine_props;
mod examples;
mod fault;
mod freeswitch;
mod http;
mod ingest;
mod ingest_connect;
mod journal;
mod metrics;
mod report;
mod servers;
mod simulate;
mod store;
mod wallboard;
