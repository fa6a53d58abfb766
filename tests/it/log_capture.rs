//! Every log line of the test binary, at trace level for floorwatch, kept in memory so that
//! tests can say what the daemon must never log. The subscriber is global (daemon tasks run
//! on runtime and blocking threads alike), so the text holds other tests' logs too: tests
//! assert on what is absent, and find their own lines by a unique marker.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log sink").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts capturing (once per test binary); later calls return at once.
pub fn start() {
    SINK.get_or_init(|| {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("floorwatch=trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        sink
    });
}

/// Everything logged since [`start`].
pub fn text() -> String {
    let sink = SINK.get().expect("log_capture::start first");
    String::from_utf8_lossy(&sink.0.lock().expect("log sink")).into_owned()
}
