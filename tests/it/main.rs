//! One integration-test binary (keeps link time down); each module is one area.

mod demo;
mod engine_props;
mod examples;
mod simulate;
