//! NATS JetStream, the shared stream of a scale-out layout (docs/scale-out.md): the
//! `nats-jetstream` source of a daemon ([`source`]), the publishing of what its API receives
//! ([`Publisher`], the [`Submit`] of the owner task's mailbox) and of its config's rulebook
//! ([`adopt_rulebook`]), and the pieces `floorwatch relay` and `floorwatch stream-export` use
//! (the client, a message's events, a source's subject token).
//!
//! A message of the stream is one protocol frame: one event, or a batch. Its stream sequence
//! is the source `seq`: the message's last valid event carries it, the events before it in a
//! batch none (**Decision**: the engine's `seq` de-duplication is per event, strictly
//! increasing; one sequence number cannot be given to several events, and the daemon keeps
//! its own position so that a redelivered message is skipped whole).
//!
//! Owns: the NATS client options, the consumer of the source and everything about its
//! position, the mapping of messages to events. Must not: touch the engine other than through
//! [`EngineClient`], or decide anything about judgments.

pub mod source;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{JetStreamSource, NatsAuth, NatsConnection, RulesConfig};
use crate::event::{decode_frame_limited, Event, Rejected};
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::owner::{EngineClient, StreamLink, Submit};

/// Why the NATS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    #[error("not a NATS server address {server:?}: {error}")]
    Server { server: String, error: String },
    #[error("cannot read the CA file {path}: {error}")]
    Ca { path: String, error: String },
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
}

/// How long one JetStream request (a publish's acknowledgement, a stream's or consumer's
/// info, making a consumer) may take: short, so that a request lost while the cluster elects
/// new leaders after a server died is tried again soon.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The client's connection as it changes: how many times it has connected, and whether it
/// is connected now.
pub type Connection = tokio::sync::watch::Receiver<(u64, bool)>;

/// A client of the cluster in `c`, named `name` (the server's connection list shows it), and
/// a watch of its connection. It returns at once: the client connects in the background,
/// tries every listed server (and those the cluster tells it of) and reconnects forever,
/// with back-off.
pub async fn connect(
    c: &NatsConnection,
    name: &str,
) -> Result<(async_nats::Client, Connection), JetStreamError> {
    let servers = c
        .servers
        .iter()
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| JetStreamError::Server {
                    server: s.clone(),
                    error: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, rx) = tokio::sync::watch::channel((0u64, false));
    let tx = Arc::new(tx);
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .reconnect_delay_callback(|attempts| {
            crate::redial::backoff(
                u32::try_from(attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_sub(1),
            )
        })
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tx.send_modify(|(n, up)| {
                            *n += 1;
                            *up = true;
                        });
                    }
                    async_nats::Event::Disconnected => tx.send_modify(|(_, up)| *up = false),
                    other => tracing::debug!(event = %other, "nats client"),
                }
            }
        });
    options = match &c.auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.0.clone())
        }
        NatsAuth::Token(t) => options.token(t.0.clone()),
    };
    if let Some(ca) = &c.ca {
        crate::tls::load_ca(ca).map_err(|e| JetStreamError::Ca {
            path: ca.display().to_string(),
            error: e.to_string(),
        })?;
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let client = options
        .connect(servers)
        .await
        .map_err(|e| JetStreamError::Connect(e.to_string()))?;
    Ok((client, rx))
}

/// The events of one stream message at stream sequence `seq`: its payload decoded as a
/// frame, the last valid event carrying `seq` and the others none (whatever `seq` they were
/// sent with), and the rejected ones.
pub fn message_events(payload: &[u8], seq: u64, max_batch: usize) -> (Vec<Event>, Vec<Rejected>) {
    let Ok(text) = std::str::from_utf8(payload) else {
        let rejected = Rejected {
            index: None,
            seq: Some(seq),
            error: crate::event::DecodeError::InvalidJson("the message is not UTF-8".into()),
        };
        return (Vec::new(), vec![rejected]);
    };
    let frame = decode_frame_limited(text, max_batch);
    let mut events: Vec<Event> = frame
        .events
        .into_iter()
        .map(|(_, mut e)| {
            e.seq = None;
            e
        })
        .collect();
    if let Some(last) = events.last_mut() {
        last.seq = Some(seq);
    }
    let rejected = frame
        .rejected
        .into_iter()
        .map(|mut r| {
            r.seq = Some(seq);
            r
        })
        .collect();
    (events, rejected)
}

/// The payload of a message holding `events`: one event object, or a batch.
pub fn frame_of(events: &[Event]) -> String {
    match events {
        [one] => one.to_json(),
        many => {
            let mut out = String::with_capacity(many.len() * 160 + 2);
            out.push('[');
            for (i, e) in many.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&e.to_json());
            }
            out.push(']');
            out
        }
    }
}

/// A source name as one subject token: itself when it is made of ASCII letters, digits, `-`
/// and `_` only; else `x~` and its bytes in hex (`~` is in no plain name, so two names never
/// share a token).
pub fn source_token(source: &str) -> String {
    let plain = !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return source.to_string();
    }
    let mut t = String::with_capacity(2 + source.len() * 2);
    t.push_str("x~");
    for b in source.bytes() {
        t.push_str(&format!("{b:02x}"));
    }
    t
}

/// Publishes what a daemon's API receives (and its rulebook) to its `api_subject`, with the
/// event's `id` as `Nats-Msg-Id` (a retry within the stream's duplicate window is stored
/// once).
pub struct Publisher {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    subject: String,
}

impl Publisher {
    pub fn new(client: async_nats::Client, subject: &str) -> Publisher {
        Publisher {
            js: async_nats::jetstream::new(client.clone()),
            client,
            subject: subject.to_string(),
        }
    }
}

impl Submit for Publisher {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if self.client.connection_state() != async_nats::connection::State::Connected {
                return Err("not connected to NATS".into());
            }
            let mut headers = async_nats::HeaderMap::new();
            if let Some(id) = &event.id {
                headers.insert("Nats-Msg-Id", id.as_str());
            }
            let ack = self
                .js
                .publish_with_headers(self.subject.clone(), headers, event.to_json().into())
                .await
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(REQUEST_TIMEOUT, ack).await {
                Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
                // Sent, but whether the stream stored it is not known: its coming back (or
                // the submitter's timeout) will tell.
                Err(_) => {
                    tracing::warn!(id = ?event.id, "no acknowledgement from the stream in time; waiting for the event to come back");
                    Ok(())
                }
            }
        })
    }
}

/// The id of a `rulebook` event put on the stream: it names the rulebook and the one it
/// follows, so that both daemons of a pair, started or reloaded with the same config, put it
/// there once (the stream's duplicate window drops the second).
pub fn rulebook_id(digest: &str, in_force: &str) -> crate::event::Id {
    let short = |d: &str| d.get(..16).unwrap_or(d).to_string();
    crate::event::Id::from(format!(
        "rulebook:{}:after:{}",
        short(digest),
        short(in_force)
    ))
}

/// Submits the config's rulebook to the stream once the source has caught up with it, when
/// it is not the one in force there (the stream decides what both daemons of a pair judge
/// by; a daemon started with a changed config changes it for both). The event's id names
/// the rulebook and the one it follows, so that two daemons started with the same config
/// publish it once (within the stream's duplicate window).
pub async fn adopt_rulebook(
    engine: EngineClient,
    rules: RulesConfig,
    clock: Clock,
    mut caught_up: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        r = caught_up.wait_for(|c| *c) => if r.is_err() { return },
    }
    let digest = rules.rulebook_digest();
    let mut delay = Duration::from_secs(1);
    loop {
        let Ok((in_force, journaled)) = engine.rulebook_in_force().await else {
            return;
        };
        if journaled && in_force == digest {
            tracing::info!(digest = %digest, "the stream's rulebook is the config's");
            return;
        }
        // A rulebook never moves the engine clock: it applies at each daemon's clock.
        let mut event = crate::owner::rulebook_event(&rules, None, clock.now_micros());
        event.id = Some(rulebook_id(&digest, &in_force));
        match engine.submit(event).await {
            Ok(Ok(_)) => {
                tracing::info!(digest = %digest, was = %in_force, "the config's rulebook is in force on the stream from now on");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot submit the config's rulebook to the stream; retrying")
            }
            Err(_) => return,
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Starts the nats-jetstream source of a daemon: the client, the [`Publisher`] behind its
/// `link`, the consumer task and the rulebook's adoption. The tasks end with `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    cfg: &JetStreamSource,
    link: Arc<StreamLink>,
    engine: EngineClient,
    rules: RulesConfig,
    clock: Clock,
    metrics: Arc<Metrics>,
    limiter: Arc<Limiter>,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, JetStreamError> {
    let (client, connection) =
        connect(&cfg.connection, &format!("floorwatch {}", cfg.durable)).await?;
    link.set_submit(Arc::new(Publisher::new(client.clone(), &cfg.api_subject)));
    let (caught_tx, caught_rx) = tokio::sync::watch::channel(false);
    let task = source::SourceTask {
        cfg: cfg.clone(),
        js: async_nats::jetstream::new(client),
        connection,
        engine: engine.clone(),
        clock,
        metrics,
        limiter,
        caught_up: caught_tx,
        shutdown: shutdown.clone(),
        applied: None,
    };
    Ok(vec![
        tokio::spawn(task.run()),
        tokio::spawn(adopt_rulebook(engine, rules, clock, caught_rx, shutdown)),
    ])
}

/// Writes the events of `cfg`'s stream (its `subject`) as protocol NDJSON to `out`, one line
/// per message (an event, or a batch) with `seq` as the daemon applies it (the message's
/// stream sequence on its last valid event), up to the stream's end when it starts: what
/// `floorwatch replay` judges as the daemons of the stream do. Returns the messages and
/// the events written, and the events left out as invalid.
pub async fn export(
    cfg: &JetStreamSource,
    max_batch: usize,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<(u64, u64, u64)> {
    use anyhow::Context;
    use futures_util::StreamExt;
    let (client, _) = connect(&cfg.connection, "floorwatch stream-export").await?;
    let js = async_nats::jetstream::new(client);
    let stream = tokio::time::timeout(Duration::from_secs(30), js.get_stream(&cfg.stream))
        .await
        .context("no answer from NATS within 30s")?
        .with_context(|| format!("cannot open stream {:?}", cfg.stream))?;
    // The last message on the subject when the export starts: it reads up to there.
    let last = match stream.get_last_raw_message_by_subject(&cfg.subject).await {
        Ok(m) => m.sequence,
        Err(e)
            if e.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            return Ok((0, 0, 0))
        }
        Err(e) => return Err(anyhow::Error::new(e).context("cannot read the stream")),
    };
    let (mut messages, mut events, mut left_out) = (0u64, 0u64, 0u64);
    // A cluster that just lost a server may take a while to place the reading consumer.
    let mut tries = 0;
    let consumer = loop {
        let made = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: cfg.subject.clone(),
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await;
        match made {
            Ok(c) => break c,
            Err(e) if tries < 10 => {
                tries += 1;
                tracing::debug!(error = %e, "cannot read the stream yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot read the stream")),
        }
    };
    let mut stream_of = consumer
        .messages()
        .await
        .context("cannot read the stream")?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), stream_of.next())
            .await
            .with_context(|| {
                format!("no message from the stream for 60s, before sequence {last}")
            })?;
        let Some(m) = next else {
            anyhow::bail!("the stream ended before sequence {last}");
        };
        let m = m.context("cannot read the stream")?;
        let seq = match m.info() {
            Ok(i) => i.stream_sequence,
            Err(e) => anyhow::bail!("a message without stream metadata: {e}"),
        };
        let (evs, rejected) = message_events(&m.payload, seq, max_batch);
        left_out += rejected.len() as u64;
        if !evs.is_empty() {
            writeln!(out, "{}", frame_of(&evs)).context("cannot write")?;
            events += evs.len() as u64;
        }
        messages += 1;
        if seq >= last {
            break;
        }
    }
    out.flush().context("cannot write")?;
    Ok((messages, events, left_out))
}

/// `floorwatch stream-export --config FILE [-o OUT]`.
pub fn export_main(args: crate::cli::StreamExportArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = crate::config::load(Some(&args.config))?;
    let Some(cfg) = config.jetstream.clone() else {
        anyhow::bail!(
            "{} has no [[sources]] table of kind = \"nats-jetstream\"",
            args.config.display()
        );
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out: Box<dyn std::io::Write + Send> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (messages, events, left_out) =
        runtime.block_on(export(&cfg, config.limits.max_batch, &mut *out))?;
    eprintln!(
        "{messages} messages, {events} events{}",
        if left_out > 0 {
            format!(", {left_out} invalid events left out")
        } else {
            String::new()
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_message_carries_its_sequence_on_its_last_valid_event() {
        let payload = br#"[{"type":"agent.login","ts":1000,"seq":7,"agent":"a1"},
            {"type":"agent.logout","ts":2000,"seq":8,"agent":"a2"},
            {"type":"nonsense","ts":3000}]"#;
        let (events, rejected) = message_events(payload, 42, 100);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].seq, None);
        assert_eq!(events[1].seq, Some(42));
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].index, Some(2));
        assert_eq!(rejected[0].seq, Some(42));
    }

    #[test]
    fn a_single_event_message_has_the_stream_sequence_as_seq() {
        let (events, rejected) =
            message_events(br#"{"type":"agent.login","ts":1000,"agent":"a1"}"#, 9, 100);
        assert!(rejected.is_empty());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].seq, Some(9));
        let (events, rejected) = message_events(b"\xff\xfe", 10, 100);
        assert!(events.is_empty());
        assert_eq!(rejected.len(), 1);
    }

    #[test]
    fn a_frame_decodes_back_to_its_events() {
        let (events, _) = message_events(
            br#"[{"type":"agent.login","ts":1000,"agent":"a1","team":"t"},{"type":"agent.logout","ts":2000,"agent":"a1"}]"#,
            3,
            100,
        );
        let (again, rejected) = message_events(frame_of(&events).as_bytes(), 3, 100);
        assert!(rejected.is_empty());
        assert_eq!(again, events);
        let (one, _) = message_events(frame_of(&events[..1]).as_bytes(), 1, 100);
        assert_eq!(one[0].body, events[0].body);
    }

    #[test]
    fn source_names_become_unique_subject_tokens() {
        assert_eq!(source_token("pbx-1"), "pbx-1");
        assert_eq!(source_token("pbx_2"), "pbx_2");
        assert_eq!(source_token("pbx.1"), "x~7062782e31");
        assert_eq!(source_token("a b"), "x~612062");
        // An escaped-looking name is escaped itself, so no two names share a token.
        assert_ne!(source_token("x~7062782e31"), source_token("pbx.1"));
        for t in ["pbx.1", "*", ">", "x~00", "站点"] {
            let tok = source_token(t);
            assert!(
                crate::config::valid_subject(&tok, false),
                "{t:?} -> {tok:?}"
            );
        }
    }
}
