//! One integration-test binary (keeps link time down); each module is one area.

mod demo;
mod demo_live;
mod engine_props;
mod examples;
mod simulate;
