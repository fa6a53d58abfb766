//! Bookkeeping shared by the daemon's WebSocket servers (`/ingest` in [`crate::ingest`],
//! `/ws/floor` in [`crate::feed`]): the count of open connections that shutdown waits on, the
//! write timeout and the close code of a shutdown.
//!
//! Owns: [`LiveSockets`] and the constants both servers use. Must not: read or write a socket
//! itself, or know what either server speaks.

use std::time::Duration;

/// Close code when the daemon shuts down ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// A write to a WebSocket peer (a source or a wallboard) that takes longer than this drops
/// the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts open WebSocket connections, so that shutdown can wait until each has sent its
/// close frame (axum detaches upgraded connections from the server).
#[derive(Debug)]
pub struct LiveSockets(tokio::sync::watch::Sender<usize>);

impl Default for LiveSockets {
    fn default() -> LiveSockets {
        LiveSockets(tokio::sync::watch::channel(0).0)
    }
}

/// One open connection of a [`LiveSockets`]; the count drops with it.
pub struct SocketGuard<'a>(&'a LiveSockets);

impl LiveSockets {
    pub fn hold(&self) -> SocketGuard<'_> {
        self.0.send_modify(|n| *n += 1);
        SocketGuard(self)
    }

    /// Resolves once no connection is open.
    pub fn all_closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|n| *n == 0).await;
        }
    }
}

impl Drop for SocketGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn all_closed_waits_for_the_last_guard() {
        let live = LiveSockets::default();
        assert_eq!(live.all_closed().now_or_never(), Some(()));
        let a = live.hold();
        let b = live.hold();
        let mut closed = Box::pin(live.all_closed());
        assert!(closed.as_mut().now_or_never().is_none());
        drop(a);
        assert!(closed.as_mut().now_or_never().is_none());
        drop(b);
        assert_eq!(closed.now_or_never(), Some(()));
    }
}
