//! One integration-test binary (keeps link time down); each module is one area.

mod engine_props;
mod examples;
mod simulate;
mod demo;
