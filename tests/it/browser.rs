//! A real headless Chromium driven over the Chrome DevTools Protocol (CDP), for tests of the
//! wallboard: navigate, evaluate JavaScript in the page, take screenshots.
//!
//! Owns: one Chromium process (`/usr/bin/chromium`, or `$CHROMIUM`) with a profile in a
//! temporary directory, and one WebSocket to its first page target. Chromium is killed when
//! the [`Browser`] is dropped. Must not: download a browser or use the network beyond
//! loopback.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemon_support::{Ws, WAIT};

/// How long Chromium may take to start and print its DevTools address.
const LAUNCH_WAIT: Duration = Duration::from_secs(30);

/// How to start Chromium.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub width: u32,
    pub height: u32,
    /// Emulate a phone (touch, mobile viewport).
    pub mobile: bool,
    /// Hide every system font but DejaVu (no CJK font at all), as on a minimal kiosk.
    pub no_cjk_fonts: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            width: 1920,
            height: 1080,
            mobile: false,
            no_cjk_fonts: false,
        }
    }
}

pub struct Browser {
    _process: Process,
    // Fields drop in order: the process is killed before its profile is removed.
    _profile: tempfile::TempDir,
    ws: Ws,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium headless with a 1920×1080 window and connects to its page.
    pub async fn launch() -> Browser {
        Browser::launch_with(Options::default()).await
    }

    /// Starts Chromium headless with `o`'s window and fonts and connects to its page.
    pub async fn launch_with(o: Options) -> Browser {
        let exe = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().expect("profile dir");
        let mut cmd = Command::new(&exe);
        if o.no_cjk_fonts {
            // Chromium finds fonts through fontconfig: a config naming DejaVu's directory
            // only leaves it without any CJK font, whatever the machine has installed.
            let conf = profile.path().join("fonts.conf");
            std::fs::write(
                &conf,
                format!(
                    "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n\
                     <fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir>\
                     <cachedir>{}</cachedir></fontconfig>\n",
                    profile.path().join("fc-cache").display()
                ),
            )
            .expect("fonts.conf");
            cmd.env("FONTCONFIG_FILE", &conf);
        }
        let mut child = cmd
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={},{}", o.width, o.height))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe} (apt-get install chromium): {e}"));
        let stderr = child.stderr.take().expect("stderr");
        // Killed on every way out from here on, a panic included.
        let process = Process(child);
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads stderr to its end: Chromium blocks once a full pipe is not drained.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("DevTools listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_string());
                    }
                }
            }
        });
        let browser_url = match rx.recv_timeout(LAUNCH_WAIT) {
            Ok(u) => u,
            Err(_) => panic!("chromium printed no DevTools address within {LAUNCH_WAIT:?}"),
        };
        // ws://127.0.0.1:PORT/devtools/browser/ID
        let addr: SocketAddr = browser_url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected DevTools address {browser_url}"));
        let targets = targets(addr).await;
        let page = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target in {targets}"))
            .to_string();
        let (ws, _) = tokio_tungstenite::connect_async(page.as_str())
            .await
            .expect("connect to the page target");
        let mut b = Browser {
            _process: process,
            _profile: profile,
            ws,
            next_id: 0,
        };
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": o.width, "height": o.height, "deviceScaleFactor": 1, "mobile": o.mobile}),
        )
        .await;
        if o.mobile {
            b.call(
                "Emulation.setTouchEmulationEnabled",
                json!({"enabled": true, "maxTouchPoints": 5}),
            )
            .await;
        }
        b.call("Page.enable", json!({})).await;
        b
    }

    /// Presses and releases one key (`Tab`, `Enter`, `Escape`, `Space`) with `shift` held or
    /// not, as the keyboard would.
    pub async fn press(&mut self, key: &str, shift: bool) {
        let (code, vk, text) = match key {
            "Tab" => ("Tab", 9, ""),
            "Enter" => ("Enter", 13, "\r"),
            "Escape" => ("Escape", 27, ""),
            "Space" => ("Space", 32, " "),
            other => panic!("no key {other}"),
        };
        let modifiers = if shift { 8 } else { 0 };
        let key_name = if key == "Space" { " " } else { key };
        let mut down = json!({"type": "keyDown", "key": key_name, "code": code,
            "windowsVirtualKeyCode": vk, "modifiers": modifiers});
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key_name, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}),
        )
        .await;
    }

    /// Types `text` into the focused element, as an input method would.
    pub async fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// The page's whole accessibility tree (`Accessibility.getFullAXTree`): its nodes.
    pub async fn ax_nodes(&mut self) -> Vec<Value> {
        self.call("Accessibility.enable", json!({})).await;
        let r = self.call("Accessibility.getFullAXTree", json!({})).await;
        r["nodes"].as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the whole page (beyond the viewport) at `path`; returns its bytes.
    pub async fn screenshot_full(&mut self, path: &Path) -> Vec<u8> {
        let m = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &m["cssContentSize"];
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true, "clip": {"x": 0, "y": 0,
                    "width": size["width"], "height": size["height"], "scale": 1}}),
            )
            .await;
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, &png).expect("write screenshot");
        png
    }

    /// One CDP command: its `result`. Events arriving meanwhile are dropped.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.expect("cdp send");
        let answer = tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).expect("cdp json");
                        if v["id"] == id {
                            return v;
                        }
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("cdp connection ended: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer in {WAIT:?}"));
        if let Some(e) = answer.get("error") {
            panic!("{method}: {e}");
        }
        answer["result"].clone()
    }

    /// Loads `url` and waits until its document has loaded.
    pub async fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(e) = r.get("errorText") {
            panic!("navigate {url}: {e}");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.eval("document.readyState").await != "complete" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} did not load in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Evaluates a JavaScript expression in the page; its value as JSON. Panics on an exception.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 50 ms until it is truthy; its value. Panics after `within`.
    pub async fn wait_for(&mut self, what: &str, expr: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self.eval(expr).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out after {within:?} waiting for {what} ({expr} = {v})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the viewport at `path`; returns its bytes.
    pub async fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, &png).expect("write screenshot");
        png
    }
}

/// `GET /json/list` of the DevTools HTTP endpoint, which keeps the connection open: the body
/// is read up to its `Content-Length`.
async fn targets(addr: SocketAddr) -> Value {
    let read = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect devtools");
        let req = format!("GET /json/list HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.expect("read devtools");
            assert!(n > 0, "devtools closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if body.len() >= len {
                return serde_json::from_str(&body[..len]).expect("targets json");
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("devtools answers")
}

/// The Chromium process; killed when dropped (its helper processes exit with it).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Standard base64 (with padding), as CDP sends binary data.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode(""), b"");
}
