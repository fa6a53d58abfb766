//! Placeholder: being written (issue 6).

use crate::adapter::AdapterContext;

pub async fn run<C>(_config: C, cx: AdapterContext) {
    tracing::error!(source = %cx.name, "this adapter kind is not implemented yet");
    cx.shutdown.cancelled().await;
}
