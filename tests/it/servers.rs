//! Real Prometheus and Alertmanager on loopback for the tests, and a webhook receiver that
//! records what Alertmanager sends.
//!
//! Each server runs in the foreground as a child process with a temp dir of its own and a free
//! 127.0.0.1 port; `start` returns once `/-/ready` answers 200, and dropping the value kills
//! the child. The binaries come from the Debian packages `prometheus` and
//! `prometheus-alertmanager`, which scripts/test installs.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::daemon_support as sup;

/// How long a server may take to answer `/-/ready` (both take about 0.5 s here).
const READY: Duration = Duration::from_secs(20);

/// One server binary running as a child, restartable on the same port.
struct Server {
    bin: &'static str,
    package: &'static str,
    args: Vec<String>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Option<Child>,
    /// Restarts so far; each run logs to a file of its own.
    runs: u32,
}

impl Server {
    async fn start(
        bin: &'static str,
        package: &'static str,
        dir: tempfile::TempDir,
        args: impl FnOnce(&Path, SocketAddr) -> Vec<String>,
    ) -> Server {
        let addr = sup::free_port();
        let args = args(dir.path(), addr);
        let mut s = Server {
            bin,
            package,
            args,
            dir,
            addr,
            child: None,
            runs: 0,
        };
        s.spawn().await;
        s
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.{}.log", self.bin, self.runs))
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.bin);
        self.runs += 1;
        let log = File::create(self.log_path()).expect("create log file");
        let child = Command::new(self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run {} ({e}): scripts/test installs it (apt-get install {})",
                self.bin, self.package
            ),
        };
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            if probe(self.addr, "/-/ready").await == Some(200) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!(
                    "{} exited ({status}) before ready:\n{}",
                    self.bin,
                    self.log()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} not ready on {} within {READY:?}:\n{}",
                    self.bin,
                    self.addr,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The current run's output (stdout and stderr).
    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Alertmanager on loopback (gossip off).
pub struct Alertmanager {
    server: Server,
}

impl Alertmanager {
    pub async fn start(config_yaml: &str) -> Alertmanager {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("alertmanager.yml"), config_yaml).expect("write config");
        let server = Server::start(
            "prometheus-alertmanager",
            "prometheus-alertmanager",
            dir,
            |dir, addr| {
                vec![
                    format!("--config.file={}", dir.join("alertmanager.yml").display()),
                    format!("--storage.path={}", dir.join("data").display()),
                    format!("--web.listen-address={addr}"),
                    "--cluster.listen-address=".into(),
                ]
            },
        )
        .await;
        Alertmanager { server }
    }

    /// Two Alertmanagers gossiping as one cluster (`--cluster.peer` each other) with
    /// `config_yaml`, timed for tests: the second peer waits 1 s for the first's notification
    /// (`--cluster.peer-timeout`) instead of 15 s, and the cluster settles within 5 s.
    pub async fn start_cluster(config_yaml: &str) -> (Alertmanager, Alertmanager) {
        let gossip = [sup::free_port(), sup::free_port()];
        let mut out = Vec::new();
        for i in 0..2 {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("alertmanager.yml"), config_yaml).expect("write config");
            let (me, peer) = (gossip[i], gossip[1 - i]);
            let server = Server::start(
                "prometheus-alertmanager",
                "prometheus-alertmanager",
                dir,
                |dir, addr| {
                    vec![
                        format!("--config.file={}", dir.join("alertmanager.yml").display()),
                        format!("--storage.path={}", dir.join("data").display()),
                        format!("--web.listen-address={addr}"),
                        format!("--cluster.listen-address={me}"),
                        format!("--cluster.peer={peer}"),
                        "--cluster.peer-timeout=1s".into(),
                        "--cluster.gossip-interval=50ms".into(),
                        "--cluster.pushpull-interval=1s".into(),
                        "--cluster.settle-timeout=5s".into(),
                    ]
                },
            )
            .await;
            out.push(Alertmanager { server });
        }
        let b = out.pop().expect("two");
        let a = out.pop().expect("two");
        (a, b)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`, stable across [`Alertmanager::restart`].
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Kills the process; the port stays reserved for [`Alertmanager::restart`] (by number
    /// only: nothing holds it while stopped).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the process again on the same port and storage; returns once ready.
    pub async fn restart(&mut self) {
        self.server.stop();
        self.server.spawn().await;
    }

    /// Output of the current run, for failure messages.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// A real Prometheus on loopback.
pub struct Prometheus {
    server: Server,
}

impl Prometheus {
    /// `rule_files` are written next to the config as (file name, content), so the config
    /// names them relative to itself (`rule_files: [rules.yml]`).
    pub async fn start(config_yaml: &str, rule_files: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("prometheus.yml"), config_yaml).expect("write config");
        for (name, content) in rule_files {
            std::fs::write(dir.path().join(name), content).expect("write rule file");
        }
        let server = Server::start("prometheus", "prometheus", dir, |dir, addr| {
            vec![
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
            ]
        })
        .await;
        Prometheus { server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// An instant query through `/api/v1/query`: the whole response (`status`, `data`).
    pub async fn query(&self, expr: &str) -> Value {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let (status, _, body) = sup::get(self.server.addr, &path).await;
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {expr}: {e}: {status} {body}"));
        assert_eq!(v["status"], "success", "query {expr}: {v}");
        v
    }

    /// `GET path` (e.g. `/api/v1/alerts`) parsed as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        sup::get_json(self.server.addr, path).await.1
    }

    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// What a [`WebhookReceiver`] got: headers and JSON body of each POST, in arrival order.
type Received = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// An HTTP server on 127.0.0.1:0 that records every POST (any path) with a JSON body, the way
/// an Alertmanager webhook receiver would get it. Non-JSON bodies are recorded as strings.
pub struct WebhookReceiver {
    addr: SocketAddr,
    received: Received,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let received = Received::default();
        let rec = received.clone();
        let app = Router::new().fallback(axum::routing::post(
            move |headers: HeaderMap, body: Bytes| {
                let rec = rec.clone();
                async move {
                    let v = serde_json::from_slice(&body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&body).into_owned())
                    });
                    let mut headers = headers;
                    // The body as sent, for signature checks (hex, so it fits a header map).
                    if let Ok(raw) = axum::http::HeaderValue::from_str(&hex(&body)) {
                        headers.insert("x-test-raw-body-hex", raw);
                    }
                    rec.lock().expect("lock").push((headers, v));
                    "ok"
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook receiver");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("webhook receiver");
        });
        WebhookReceiver {
            addr,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:PORT/` (any path is accepted).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn received(&self) -> Vec<(HeaderMap, Value)> {
        self.received.lock().expect("lock").clone()
    }

    /// The first POST (already received or arriving within `timeout`) that `predicate`
    /// accepts; `None` if there is none by then.
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&HeaderMap, &Value) -> bool,
        timeout: Duration,
    ) -> Option<(HeaderMap, Value)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let hit = self
                .received
                .lock()
                .expect("lock")
                .iter()
                .find(|(h, v)| predicate(h, v))
                .cloned();
            if hit.is_some() {
                return hit;
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Status of `GET path`, or `None` if nothing answers (connection refused, reset, timeout).
async fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

/// POST a JSON value: status and response body.
pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, String) {
    sup::post(addr, path, &body.to_string()).await
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query strings).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An Alertmanager config that sends every alert to `webhook_url` at once (group_wait 0s,
/// group_interval 1s), resolved ones included.
pub fn alertmanager_to_webhook(webhook_url: &str) -> String {
    format!(
        r#"route:
  receiver: webhook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: '{webhook_url}'
        send_resolved: true
"#
    )
}

#[tokio::test]
async fn an_alert_posted_to_alertmanager_reaches_the_webhook_and_survives_a_restart() {
    let hook = WebhookReceiver::start().await;
    let mut am = Alertmanager::start(&alertmanager_to_webhook(&hook.url())).await;
    let port = am.addr().port();
    let alert = |name: &str| {
        serde_json::json!([{
            "labels": {"alertname": name, "team": "hotline-1"},
            "annotations": {"summary": "test"},
        }])
    };
    let (status, body) = post_json(am.addr(), "/api/v2/alerts", &alert("First")).await;
    assert_eq!(status, 200, "{body}");
    let firing = |name: &'static str| {
        move |_: &HeaderMap, v: &Value| {
            v["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == name))
        }
    };
    let (headers, v) = hook
        .wait_for(firing("First"), Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no notification; got {:?}\n{}", hook.received(), am.log()));
    assert_eq!(v["status"], "firing", "{v}");
    assert_eq!(v["alerts"][0]["labels"]["team"], "hotline-1", "{v}");
    assert!(
        headers
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap_or("").starts_with("application/json")),
        "{headers:?}"
    );

    am.stop();
    assert_eq!(probe(am.addr(), "/-/ready").await, None, "stopped");
    am.restart().await;
    assert_eq!(
        am.url(),
        format!("http://127.0.0.1:{port}"),
        "same port after restart"
    );
    let (status, body) = post_json(am.addr(), "/api/v2/alerts", &alert("Second")).await;
    assert_eq!(status, 200, "{body}");
    hook.wait_for(firing("Second"), Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no notification after restart; got {:?}", hook.received()));
}

#[tokio::test]
async fn prometheus_answers_queries_and_loads_rule_files() {
    let rules =
        "groups:\n  - name: g\n    rules:\n      - record: answer\n        expr: vector(42)\n";
    let p = Prometheus::start(
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n",
        &[("rules.yml", rules)],
    )
    .await;
    assert_eq!(p.url(), format!("http://{}", p.addr()));
    let v = p.query("vector(1) + 41").await;
    assert_eq!(v["data"]["result"][0]["value"][1], "42", "{v}");
    let groups = p.get_json("/api/v1/rules").await;
    assert_eq!(
        groups["data"]["groups"][0]["rules"][0]["name"],
        "answer",
        "{groups}\n{}",
        p.log()
    );
}
