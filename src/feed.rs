//! `/ws/floor`: the floor pushed to wallboards as a snapshot, then deltas.
//!
//! Owns: the feed task, which turns published floor changes into one encoded message per
//! change (at most every [`FEED_INTERVAL`]) for every client at once, and the per-client
//! stream. Must not: read the engine (it reads the published [`crate::floor::Floor`]) or let
//! a client slow anyone else down.
//!
//! # Messages (JSON text frames)
//!
//! - `{"type":"snapshot","version":V,...}`: every field of `GET /api/v1/floor`. First on
//!   connect, and again whenever the client fell more than [`CLIENT_QUEUE`] messages behind.
//! - `{"type":"delta","version":V,"agents":[...],...}`: the agent views that changed since
//!   version V-1 (replace by `agent`), and the small rest of the floor in full (`engine_clock`,
//!   `sources_connected`, `queues`, `floor`, `ring_percentiles`, `open_violations`). Versions
//!   count up by one; a client applies the deltas after its snapshot's version.
//! - `{"type":"heartbeat","engine_clock":...,"sources_connected":N}` after [`HEARTBEAT`]
//!   without another message, so that a wallboard can tell a quiet floor from a dead link.
//!
//! # Bounds
//!
//! One encoded message per change is shared by all clients (a broadcast ring of
//! [`CLIENT_QUEUE`] messages): a client that falls behind gets a fresh snapshot instead of
//! the backlog; a client that does not take a message within
//! [`WRITE_TIMEOUT`] is disconnected.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{self, Utf8Bytes, WebSocket};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::Id;
use crate::floor::Floor;
use crate::sockets::{LiveSockets, CLOSE_GOING_AWAY, WRITE_TIMEOUT};

/// At most one delta per this interval; changes in between are coalesced.
pub const FEED_INTERVAL: Duration = Duration::from_millis(250);
/// A heartbeat after this long without a message.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Messages a client may be behind before it is resynchronised with a snapshot.
pub const CLIENT_QUEUE: usize = 64;

/// The parts of the floor message other than the agents, as JSON object members (no braces).
pub trait FloorParts: Send + Sync + 'static {
    /// `"engine_clock":...,"sources_connected":...,"queues":...` and the rest that changes.
    fn rest_members(&self) -> String;
    /// `"language":...,"teams":...,"limits":...`: fixed for the daemon's life.
    fn static_members(&self) -> String;
    /// `"engine_clock":...,"sources_connected":...` for heartbeats.
    fn heartbeat_members(&self) -> String;
}

struct State {
    version: u64,
    /// The latest JSON of every agent view sent.
    agents: BTreeMap<Id, String>,
    /// The latest rest members sent.
    rest: String,
    /// No wallboard was connected at the last publish: `agents` and `rest` were dropped, and
    /// the next subscriber rebuilds them from the floor.
    idle: bool,
}

/// The shared feed: one per daemon.
pub struct FloorFeed {
    floor: Arc<Floor>,
    parts: Box<dyn FloorParts>,
    statics: String,
    state: Mutex<State>,
    tx: broadcast::Sender<(u64, Utf8Bytes)>,
    live: LiveSockets,
}

/// Sends one text frame; false when the client is gone or took longer than the write timeout.
async fn send(socket: &mut WebSocket, text: Utf8Bytes) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, socket.send(ws::Message::Text(text))).await,
        Ok(Ok(()))
    )
}

impl FloorFeed {
    pub fn new(floor: Arc<Floor>, parts: impl FloorParts) -> Arc<FloorFeed> {
        let (tx, _) = broadcast::channel(CLIENT_QUEUE);
        let statics = parts.static_members();
        Arc::new(FloorFeed {
            floor,
            statics,
            parts: Box::new(parts),
            state: Mutex::new(State {
                version: 0,
                agents: BTreeMap::new(),
                rest: String::new(),
                idle: false,
            }),
            tx,
            live: LiveSockets::default(),
        })
    }

    /// Resolves once every wallboard connection has ended.
    pub fn all_closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.live.all_closed()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what changed on the floor since the last call; sends a delta if anything did.
    /// Returns the delta's version.
    ///
    /// With no wallboard connected nothing is encoded or kept (the JSON of every agent is a
    /// few hundred bytes each, and encoding the rest every 250 ms is work for nobody); the
    /// next subscriber starts from the floor as it is then.
    pub fn publish(&self) -> Option<u64> {
        let mut st = self.state();
        if self.tx.receiver_count() == 0 {
            self.floor.discard_changed_agents();
            if !st.idle {
                st.idle = true;
                st.agents = BTreeMap::new();
                st.rest = String::new();
            }
            return None;
        }
        let changed = self.floor.take_changed_agents();
        let rest = self.parts.rest_members();
        let mut agents = Vec::new();
        for view in changed {
            let Ok(json) = serde_json::to_string(&view) else {
                continue;
            };
            if st.agents.get(&view.agent) != Some(&json) {
                agents.push(json.clone());
                st.agents.insert(view.agent, json);
            }
        }
        if agents.is_empty() && rest == st.rest && st.version > 0 {
            return None;
        }
        st.version += 1;
        st.rest = rest;
        let text = format!(
            r#"{{"type":"delta","version":{},"agents":[{}],{}}}"#,
            st.version,
            agents.join(","),
            st.rest
        );
        // Sent under the lock, so that a snapshot and the deltas after it never cross.
        let _ = self.tx.send((st.version, text.into()));
        Some(st.version)
    }

    /// The current snapshot and a receiver of every delta after it.
    pub fn subscribe(&self) -> (u64, Utf8Bytes, broadcast::Receiver<(u64, Utf8Bytes)>) {
        let mut st = self.state();
        let rx = self.tx.subscribe();
        if st.idle {
            st.idle = false;
            st.agents = self
                .floor
                .agents()
                .into_iter()
                .filter_map(|v| Some((v.agent.clone(), serde_json::to_string(&v).ok()?)))
                .collect();
            st.rest = self.parts.rest_members();
            st.version += 1;
        }
        let agents: Vec<&str> = st.agents.values().map(String::as_str).collect();
        let rest = if st.rest.is_empty() {
            self.parts.rest_members()
        } else {
            st.rest.clone()
        };
        let text = format!(
            r#"{{"type":"snapshot","version":{},"agents":[{}],{},{}}}"#,
            st.version,
            agents.join(","),
            rest,
            self.statics
        );
        (st.version, text.into(), rx)
    }

    /// The feed task: publishes a delta after each floor change, at most every
    /// [`FEED_INTERVAL`], until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut changes = self.floor.subscribe();
        loop {
            changes.mark_unchanged();
            self.publish();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(FEED_INTERVAL) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Serves one client until it goes, lags past a write timeout, or the daemon stops.
    pub async fn serve(self: Arc<Self>, mut socket: WebSocket, shutdown: CancellationToken) {
        let _live = self.live.hold();
        let (mut version, snapshot, mut rx) = self.subscribe();
        if !send(&mut socket, snapshot).await {
            return;
        }
        let mut quiet = tokio::time::interval(HEARTBEAT);
        quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        quiet.reset();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let close = ws::CloseFrame {
                        code: CLOSE_GOING_AWAY,
                        reason: "daemon shutting down".into(),
                    };
                    let send = socket.send(ws::Message::Close(Some(close)));
                    // A wallboard that does not read must not hold up shutdown.
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, send).await;
                    return;
                }
                msg = rx.recv() => {
                    let text = match msg {
                        Ok((v, _)) if v <= version => continue,
                        Ok((v, text)) => {
                            version = v;
                            text
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let (v, snapshot, fresh) = self.subscribe();
                            version = v;
                            rx = fresh;
                            snapshot
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if !send(&mut socket, text).await {
                        return;
                    }
                    quiet.reset();
                }
                _ = quiet.tick() => {
                    let text = format!(r#"{{"type":"heartbeat",{}}}"#, self.parts.heartbeat_members());
                    if !send(&mut socket, text.into()).await {
                        return;
                    }
                }
                msg = socket.recv() => match msg {
                    Some(Ok(ws::Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{AgentView, EffectiveState};
    use crate::time::{Calendar, Timestamp};
    use serde_json::Value;

    struct Parts(Arc<Floor>);

    impl FloorParts for Parts {
        fn rest_members(&self) -> String {
            format!(r#""sources_connected":{}"#, self.0.sources_connected())
        }
        fn static_members(&self) -> String {
            r#""language":"en""#.into()
        }
        fn heartbeat_members(&self) -> String {
            self.rest_members()
        }
    }

    fn view(agent: &str, state: EffectiveState, since: i64) -> AgentView {
        AgentView {
            agent: agent.into(),
            team: "t1".into(),
            name: None,
            logged_in: true,
            presence: None,
            reason: Id::default(),
            since: Timestamp(since),
            effective: Some(state),
            effective_since: Timestamp(since),
            call: None,
            open_violations: 0,
        }
    }

    fn json(text: &Utf8Bytes) -> Value {
        serde_json::from_str(text.as_str()).expect("json")
    }

    fn ids(v: &Value) -> Vec<String> {
        v["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| a["agent"].as_str().expect("id").to_string())
            .collect()
    }

    #[test]
    fn deltas_carry_only_changed_agents_and_a_snapshot_sees_them_all() {
        let floor = Arc::new(Floor::new(Calendar::utc()));
        let feed = FloorFeed::new(floor.clone(), Parts(floor.clone()));
        floor.put_agent(view("a1", EffectiveState::Ready, 0));
        floor.put_agent(view("a2", EffectiveState::Ready, 0));
        // Nobody listens: nothing is sent or kept, and the first subscriber still sees
        // everything.
        assert_eq!(feed.publish(), None);
        assert!(feed.state().agents.is_empty());
        let (v, snapshot, mut rx) = feed.subscribe();
        let snapshot = json(&snapshot);
        assert_eq!((v, snapshot["type"].as_str()), (1, Some("snapshot")));
        assert_eq!(ids(&snapshot), ["a1", "a2"]);
        assert_eq!(snapshot["language"], "en");

        // a1 is put again unchanged, a2 changes: the delta names a2 alone.
        floor.put_agent(view("a1", EffectiveState::Ready, 0));
        floor.put_agent(view("a2", EffectiveState::Talking, 5));
        assert_eq!(feed.publish(), Some(2));
        let (v2, text) = rx.try_recv().expect("a delta");
        let delta = json(&text);
        assert_eq!((v2, delta["type"].as_str()), (2, Some("delta")));
        assert_eq!(ids(&delta), ["a2"]);
        assert_eq!(delta["agents"][0]["effective"], "talking");
        // Nothing changed: no message.
        assert_eq!(feed.publish(), None);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_client_that_falls_behind_is_told_so_and_its_next_snapshot_is_current() {
        let floor = Arc::new(Floor::new(Calendar::utc()));
        let feed = FloorFeed::new(floor.clone(), Parts(floor.clone()));
        let (_, _, mut rx) = feed.subscribe();
        for i in 0..(CLIENT_QUEUE as i64 + 10) {
            floor.put_agent(view("a1", EffectiveState::Ready, i));
            feed.publish();
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        let (v, snapshot, _) = feed.subscribe();
        assert_eq!(v, CLIENT_QUEUE as u64 + 10);
        let snapshot = json(&snapshot);
        assert_eq!(
            snapshot["agents"][0]["effective_since"],
            Timestamp(CLIENT_QUEUE as i64 + 9).to_string()
        );
    }
}
