//! What a service manager sees of the daemon: systemd's readiness protocol (`Type=notify`)
//! and the reload signal (`ExecReload=/bin/kill -HUP $MAINPID`).
//!
//! Owns the datagrams to `$NOTIFY_SOCKET` (`READY=1` once the daemon serves, `STOPPING=1`
//! when it begins to shut down, `STATUS=` lines for `systemctl status`) and the handling of
//! SIGHUP. Without `$NOTIFY_SOCKET` (not under systemd) notifying does nothing.
//!
//! SIGHUP is the rulebook reload signal: the daemon hands this module what a reload does,
//! and `systemctl reload` never stops the daemon (the default action of SIGHUP would).
//!
//! Must not: fail the daemon. A notification that cannot be sent is logged at debug level.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=value` lines) to the service manager, if the daemon
/// runs under one (`$NOTIFY_SOCKET` is set): a path, or `@name` for an abstract socket.
/// Returns whether it was sent.
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send(&socket, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "cannot notify the service manager");
            false
        }
    }
}

fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let tx = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            tx.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            tx.send_to(state.as_bytes(), std::path::Path::new(socket))?;
        }
    }
    Ok(())
}

/// The daemon serves: the store is restored and the port is bound (`/healthz` answers).
/// `/readyz` may still say 503 (a phone system not connected yet): that is for load
/// balancers, and a phone-system outage must not fail the unit's start.
pub fn ready(listen: std::net::SocketAddr) {
    notify(&format!("READY=1\nSTATUS=serving on {listen}"));
}

/// The daemon begins its graceful shutdown.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=shutting down");
}

/// Listens for SIGHUP from now on: from this call, a SIGHUP no longer ends the process by
/// its default action (call it before the port is bound). `None` when it cannot listen.
pub fn listen_reload_signal() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; a reload would stop the daemon");
            None
        }
    }
}

/// Handles SIGHUP for the rest of the process's life: each one runs `reload` (the daemon
/// reloads its rulebook), one at a time; signals that arrive meanwhile are merged into one
/// more run.
pub fn handle_reload_signal<F, Fut>(hup: Option<tokio::signal::unix::Signal>, mut reload: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let Some(mut hup) = hup else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the rulebook from the config file");
            notify("RELOADING=1\nSTATUS=reloading the rulebook");
            reload().await;
            notify("READY=1\nSTATUS=serving");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).expect("bind");
        send(path.as_os_str(), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("floorwatch-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        let rx = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
