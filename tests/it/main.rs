//! One integration-test binary (keeps link time down); each module is one area.

mod cli;
mod engine_props;
mod examples;
