//! Adapters for phone systems that do not speak the floorwatch protocol: each turns the
//! platform's native events into protocol [`Event`]s and sends them down the same path as
//! WebSocket ingest (journal, engine, metrics), so replay and audit work the same.
//!
//! Owns: per platform, a pure mapper (native message in, protocol events out; no I/O, no
//! clock) and the I/O task that reads the platform and feeds an [`EngineSink`].
//! Must not: apply rules (the engine does) or bypass the engine task.

pub mod ami;
pub mod queue_log;

use crate::clock::Clock;
use crate::daemon::{BatchReply, ConnId, EngineClient, EngineStopped};
use crate::event::{Event, Id};

/// Where an adapter's events go: the engine task, as one source connection.
pub struct EngineSink {
    engine: EngineClient,
    clock: Clock,
    source: Id,
    conn: Option<ConnId>,
}

impl EngineSink {
    pub fn new(engine: EngineClient, clock: Clock, source: &str) -> EngineSink {
        EngineSink {
            engine,
            clock,
            source: Id::from(source),
            conn: None,
        }
    }

    /// The source name events are journaled under.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The platform is connected: registers the source connection (counted by
    /// `floorwatch_source_connected`). Returns the highest `seq` of this source already
    /// stored, for adapters that number their events (a file offset, say).
    pub async fn connected(&mut self) -> Result<Option<u64>, EngineStopped> {
        if let Some(c) = self.conn.take() {
            self.engine.disconnect(c).await;
        }
        let (conn, resume) = self.engine.connect(&self.source).await?;
        self.conn = Some(conn);
        Ok(resume)
    }

    /// Applies `events` (in time order), received now. Connects first if needed.
    pub async fn send(&mut self, events: Vec<Event>) -> Result<BatchReply, EngineStopped> {
        let conn = match self.conn {
            Some(c) => c,
            None => {
                self.connected().await?;
                self.conn.ok_or(EngineStopped)?
            }
        };
        self.engine.apply(conn, self.clock.now(), events).await
    }

    /// The platform connection is gone (the engine clock stops following the wall clock
    /// for this source, as for a WebSocket source).
    pub async fn disconnected(&mut self) {
        if let Some(c) = self.conn.take() {
            self.engine.disconnect(c).await;
        }
    }
}
