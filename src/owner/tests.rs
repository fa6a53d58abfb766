//! The owner task in a daemon of a pair, with the stream looped back in the test: what the
//! API submits is published, and applied only when it comes back as the stream's.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{JetStreamSource, NatsAuth, NatsConnection};
use crate::event::{decode_event, Body};

/// A [`Submit`] that hands every published event to the test (the "stream"), or refuses.
struct Loopback {
    tx: mpsc::UnboundedSender<Event>,
    refuse: bool,
}

impl Submit for Loopback {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if self.refuse {
                return Err("no servers available".into());
            }
            self.tx
                .send(event.clone())
                .map_err(|_| "the test stopped".to_string())
        })
    }
}

struct Pair {
    client: EngineClient,
    conn: ConnId,
    published: mpsc::UnboundedReceiver<Event>,
    link: Arc<StreamLink>,
    /// The stream's next sequence.
    next: u64,
    _shutdown: CancellationToken,
}

fn paired_config() -> Config {
    Config {
        jetstream: Some(JetStreamSource {
            name: "stream".into(),
            connection: NatsConnection {
                servers: vec!["nats://127.0.0.1:4222".into()],
                auth: NatsAuth::None,
                ca: None,
            },
            stream: "FLOOR".into(),
            subject: "floor.>".into(),
            durable: "a".into(),
            api_subject: "floor.api".into(),
        }),
        ..Config::default()
    }
}

async fn pair(refuse: bool) -> Pair {
    let config = paired_config();
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}")));
    let task = EngineTask::spawn(&config, Clock::system(), metrics, shutdown.clone())
        .unwrap_or_else(|e| panic!("engine task: {e}"));
    let link = task
        .stream_link()
        .unwrap_or_else(|| panic!("no stream link"));
    let (tx, published) = mpsc::unbounded_channel();
    link.set_submit(Arc::new(Loopback { tx, refuse }));
    let client = task.client();
    let (conn, _) = client
        .connect("stream")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The task runs until the shutdown token is dropped with the pair.
    std::mem::forget(task);
    Pair {
        client,
        conn,
        published,
        link,
        next: 1,
        _shutdown: shutdown,
    }
}

fn ev(text: &str) -> Event {
    decode_event(text).unwrap_or_else(|(_, e)| panic!("{text}: {e}"))
}

impl Pair {
    /// Appends `events` to the stream as one message and applies it as the daemon does.
    async fn stream(&mut self, mut events: Vec<Event>) -> BatchReply {
        for e in events.iter_mut() {
            e.seq = None;
        }
        if let Some(last) = events.last_mut() {
            last.seq = Some(self.next);
        }
        self.next += 1;
        self.client
            .apply(self.conn, Clock::system().now(), events)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next event the daemon published, within a second.
    async fn next_published(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(1), self.published.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing was published"))
            .unwrap_or_else(|| panic!("the publisher is gone"))
    }
}

/// 2026-11-10T09:00:00Z.
const T0: i64 = 1_794_301_200_000;

#[tokio::test]
async fn a_submitted_approval_applies_only_when_it_comes_back_from_the_stream() {
    let mut p = pair(false).await;
    p.stream(vec![ev(&format!(
        r#"{{"type":"agent.login","ts":{T0},"agent":"a1","team":"t1"}}"#
    ))])
    .await;
    let approval = ev(&format!(
        r#"{{"type":"approval.granted","ts":{},"agent":"a1","reason":"meeting","minutes":30,"by":"lead"}}"#,
        T0 + 1_000
    ));
    let client = p.client.clone();
    let submitted = tokio::spawn(async move { client.submit(approval).await });
    let published = p.next_published().await;
    assert!(published.id.is_some(), "a submitted event carries an id");
    assert!(matches!(published.body, Body::ApprovalGranted { .. }));
    // Published, not applied: the engine has no approval yet.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !submitted.is_finished(),
        "answered before the stream gave it back"
    );
    assert!(p.client.approvals().await.unwrap_or_default().is_empty());
    // Something else from the stream first, then the approval in its place.
    p.stream(vec![ev(&format!(
        r#"{{"type":"agent.state","ts":{},"agent":"a1","state":"ready"}}"#,
        T0 + 500
    ))])
    .await;
    p.stream(vec![published]).await;
    let reply = submitted
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(reply.at.0, T0 + 1_000);
    assert!(reply.stored);
    let active = p.client.approvals().await.unwrap_or_default();
    assert_eq!(active.len(), 1, "{active:?}");
}

#[tokio::test]
async fn a_change_the_stream_does_not_take_changes_nothing_and_says_so() {
    let mut p = pair(true).await;
    p.stream(vec![ev(&format!(
        r#"{{"type":"agent.login","ts":{T0},"agent":"a1"}}"#
    ))])
    .await;
    let approval = ev(&format!(
        r#"{{"type":"approval.granted","ts":{T0},"agent":"a1","reason":"meeting","minutes":30,"by":"lead"}}"#
    ));
    let r = p
        .client
        .submit(approval)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match r {
        Err(ApiRefused::Stream(m)) => assert!(m.contains("no servers available"), "{m}"),
        other => panic!("want a stream refusal, got {other:?}"),
    }
    assert!(p.client.approvals().await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn a_change_that_does_not_come_back_in_time_gets_a_timeout() {
    let mut p = pair(false).await;
    p.link.set_timeout(Duration::from_millis(200));
    let approval = ev(&format!(
        r#"{{"type":"approval.granted","ts":{T0},"agent":"a1","reason":"meeting","minutes":30,"by":"lead"}}"#
    ));
    let r = p
        .client
        .submit(approval)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let published = p.next_published().await;
    match r {
        Err(ApiRefused::Timeout(m)) => assert!(m.contains("not back from it"), "{m}"),
        other => panic!("want a timeout, got {other:?}"),
    }
    // It still applies in its place, once the stream delivers it.
    p.stream(vec![ev(&format!(
        r#"{{"type":"agent.login","ts":{T0},"agent":"a1"}}"#
    ))])
    .await;
    p.stream(vec![published]).await;
    assert_eq!(p.client.approvals().await.unwrap_or_default().len(), 1);
}

#[tokio::test]
async fn a_refused_waiver_from_the_stream_answers_with_the_refusal() {
    let mut p = pair(false).await;
    p.stream(vec![ev(&format!(
        r#"{{"type":"agent.login","ts":{T0},"agent":"a1"}}"#
    ))])
    .await;
    let waiver = ev(&format!(
        r#"{{"type":"violation.waived","ts":{T0},"violation":99,"by":"lead","why":"test"}}"#
    ));
    let client = p.client.clone();
    let submitted = tokio::spawn(async move { client.submit(waiver).await });
    let published = p.next_published().await;
    p.stream(vec![published]).await;
    match submitted.await.unwrap_or_else(|e| panic!("{e}")) {
        Ok(Err(ApiRefused::Record(r))) => assert_eq!(r.reason_label(), "unknown_violation"),
        other => panic!("want the engine's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_close_freezes_the_statement_at_its_place_in_the_stream() {
    let mut p = pair(false).await;
    let demerit = |ts: i64, points: u32| {
        ev(&format!(
            r#"{{"type":"demerit.recorded","ts":{ts},"agent":"a1","item":"equipment_damage","points":{points},"by":"lead"}}"#
        ))
    };
    p.stream(vec![
        ev(&format!(
            r#"{{"type":"agent.login","ts":{T0},"agent":"a1","team":"t1"}}"#
        )),
        demerit(T0 + 1_000, 2),
    ])
    .await;
    // Move into December, then ask for November's close.
    let december = T0 + 25 * 86_400_000;
    p.stream(vec![ev(&format!(
        r#"{{"type":"agent.logout","ts":{december},"agent":"a1"}}"#
    ))])
    .await;
    let client = p.client.clone();
    let closing =
        tokio::spawn(async move { client.close(Id::from("2026-11"), Id::from("qa")).await });
    let published = p.next_published().await;
    let Body::PeriodClosed { digest: asked, .. } = &published.body else {
        panic!("published {published:?}");
    };
    let asked = asked.to_string();
    // A waiver of the November demerit reaches the stream before the close does.
    p.stream(vec![ev(&format!(
        r#"{{"type":"violation.waived","ts":{december},"violation":1,"by":"lead","why":"broken before"}}"#
    ))])
    .await;
    p.stream(vec![published]).await;
    let closed = closing
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("refused: {e}"));
    assert_ne!(
        closed.digest, asked,
        "the statement changed before the close's turn"
    );
    assert_eq!(closed.digest, crate::config::digest_of(&closed.csv));
    let mut lines = closed.csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "points")
        .unwrap_or_else(|| panic!("no points column: {header:?}"));
    let row: Vec<&str> = lines
        .find(|l| l.starts_with("a1,"))
        .unwrap_or_else(|| panic!("no row of a1:\n{}", closed.csv))
        .split(',')
        .collect();
    assert_eq!(
        row[col], "0",
        "the waived demerit counts no points: {row:?}"
    );
    // Closed once: a second close from the stream is refused by the engine.
    let client = p.client.clone();
    let again =
        tokio::spawn(async move { client.close(Id::from("2026-11"), Id::from("qa")).await });
    let published = p.next_published().await;
    p.stream(vec![published]).await;
    match again.await.unwrap_or_else(|e| panic!("{e}")) {
        Ok(Err(ApiRefused::Record(r))) => assert_eq!(r.reason_label(), "already_closed"),
        other => panic!("want already_closed, got {other:?}"),
    }
}
