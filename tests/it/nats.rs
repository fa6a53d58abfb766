//! Real `nats-server` processes on loopback for the scale-out tests: one server, or a cluster
//! of three with JetStream, each a child with its own store directory and free ports, killed
//! (SIGKILL) on drop. The binary comes from the Debian package `nats-server` (scripts/test
//! installs it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;

use crate::daemon_support::free_port;

/// How long a server may take to listen, and a cluster to elect its meta leader.
const READY: Duration = Duration::from_secs(30);

struct Node {
    client: SocketAddr,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A JetStream server or cluster.
pub struct Nats {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// `n` servers (1: a lone server; 3: a cluster with routes between all), listening.
    pub async fn start(n: usize, extra: &str) -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let clients: Vec<SocketAddr> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<SocketAddr> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let store = dir.path().join(format!("n{i}"));
            let cluster = if n > 1 {
                let list = routes
                    .iter()
                    .map(|r| format!("nats-route://{r}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "cluster {{ name: fw, listen: {}, routes: [{list}] }}\n",
                    routes[i]
                )
            } else {
                String::new()
            };
            let conf = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: {}\njetstream {{ store_dir: {:?} }}\n{cluster}{extra}\n",
                    clients[i],
                    store.display().to_string()
                ),
            )
            .expect("write nats config");
            nodes.push(Node {
                client: clients[i],
                conf,
                log: dir.path().join(format!("n{i}.log")),
                child: None,
            });
        }
        let mut nats = Nats { nodes, _dir: dir };
        for i in 0..n {
            nats.spawn(i);
        }
        for i in 0..n {
            nats.wait_listening(i).await;
        }
        nats
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {i} is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("nats log");
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let bin = if Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(&node.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run nats-server ({e}): scripts/test installs it (apt-get install nats-server)")
            });
        node.child = Some(child);
    }

    async fn wait_listening(&self, i: usize) {
        let deadline = tokio::time::Instant::now() + READY;
        while tokio::net::TcpStream::connect(self.nodes[i].client)
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server n{i} did not listen:\n{}",
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `nats://` URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://{}", n.client))
            .collect()
    }

    /// The URLs as a TOML array.
    pub fn urls_toml(&self) -> String {
        let list: Vec<String> = self.urls().iter().map(|u| format!("{u:?}")).collect();
        format!("[{}]", list.join(", "))
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again on its ports and store.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_listening(i).await;
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// A client of every node (with `user`/`password` when the servers want them).
    pub async fn client(&self, auth: Option<(&str, &str)>) -> async_nats::Client {
        self.client_of(&(0..self.nodes.len()).collect::<Vec<_>>(), auth)
            .await
    }

    /// A client of the nodes `which` only.
    pub async fn client_of(
        &self,
        which: &[usize],
        auth: Option<(&str, &str)>,
    ) -> async_nats::Client {
        let urls = self.urls();
        let addrs: Vec<async_nats::ServerAddr> = which
            .iter()
            .map(|i| urls[*i].parse().expect("server addr"))
            .collect();
        let mut options = async_nats::ConnectOptions::new();
        if let Some((u, p)) = auth {
            options = options.user_and_password(u.into(), p.into());
        }
        options.connect(addrs).await.expect("connect to nats")
    }

    /// Creates stream `name` on `subjects` with `replicas`, retrying while the cluster
    /// elects its leaders.
    pub async fn create_stream(
        &self,
        client: &async_nats::Client,
        name: &str,
        subjects: &[&str],
        replicas: usize,
    ) {
        let js = jetstream::new(client.clone());
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            let made = js
                .create_stream(jetstream::stream::Config {
                    name: name.into(),
                    subjects: subjects.iter().map(|s| s.to_string()).collect(),
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await;
            match made {
                Ok(_) => return,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("stream not made yet: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("cannot create stream {name}: {e}\n{}", self.log(0)),
            }
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Every message of `stream` on `subject` (no wildcards): stream sequence and payload, up to
/// the subject's last message when called. (Read up to that sequence, not until the
/// consumer reports nothing pending: an ordered consumer made anew under load has been seen
/// to say so early.)
pub async fn messages(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
) -> Vec<(u64, Vec<u8>)> {
    use futures_util::StreamExt;
    let js = jetstream::new(client.clone());
    // Right after a node died the cluster may take a while to answer and place a consumer.
    let deadline = tokio::time::Instant::now() + READY;
    let (last, consumer) = loop {
        let made = async {
            let s = js.get_stream(stream).await?;
            let last = match s.get_last_raw_message_by_subject(subject).await {
                Ok(m) => m.sequence,
                Err(e)
                    if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    0
                }
                Err(e) => return Err(async_nats::Error::from(e)),
            };
            let c = s
                .create_consumer(jetstream::consumer::pull::OrderedConfig {
                    filter_subject: subject.into(),
                    ..Default::default()
                })
                .await
                .map_err(async_nats::Error::from)?;
            Ok::<_, async_nats::Error>((last, c))
        };
        match made.await {
            Ok(r) => break r,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("ordered consumer not made yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("ordered consumer: {e}"),
        }
    };
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let mut msgs = consumer.messages().await.expect("messages");
    loop {
        let m = tokio::time::timeout(READY, msgs.next())
            .await
            .unwrap_or_else(|_| panic!("no message of {subject} before sequence {last}"))
            .unwrap_or_else(|| panic!("the messages of {subject} ended before sequence {last}"))
            .expect("message");
        let seq = m.info().expect("info").stream_sequence;
        out.push((seq, m.payload.to_vec()));
        if seq >= last {
            return out;
        }
    }
}
