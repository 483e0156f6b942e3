//! A tiny HTTP server in the test process: a Prometheus exporter to scrape, or a metrics API
//! to read. Bodies are set by the test at any time; an optional bearer token is required on
//! every request (401 otherwise), to test credentials; a path can be made to fail (an error
//! status, no answer at all, or garbage) and requests are counted per path, to test how a
//! client behaves when its source breaks.

use super::{Result, setup};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Default)]
struct State {
    routes: BTreeMap<String, (String, String)>,
    faults: BTreeMap<String, Fault>,
    bearer: Option<String>,
    requests: u64,
    per_path: BTreeMap<String, u64>,
}

/// How a path misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this status line (`"503 Service Unavailable"`) and a short text body.
    Status(&'static str),
    /// Reads the request and never answers (the connection stays open for ten minutes).
    Hang,
    /// Answers `200 OK` with a body no client can parse.
    Garbage,
}

/// A running fixture on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct HttpFixture {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpFixture {
    /// Binds a free port and serves on the current tokio runtime.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| setup("http-fixture", "bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| setup("http-fixture", "read address", e))?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut n = 0;
                    // Read until the end of the headers (bounded by the buffer).
                    while n < buf.len() {
                        match sock.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => n += k,
                        }
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("/")
                        .split('?')
                        .next()
                        .unwrap_or("/")
                        .to_owned();
                    let auth = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("authorization")
                                .then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default();
                    let answer = {
                        let Ok(mut s) = state.lock() else { return };
                        s.requests += 1;
                        *s.per_path.entry(path.clone()).or_default() += 1;
                        match (&s.bearer, s.routes.get(&path), s.faults.get(&path)) {
                            (_, _, Some(Fault::Hang)) => None,
                            (_, _, Some(Fault::Status(line))) => Some((
                                *line,
                                "text/plain".to_owned(),
                                "injected fault\n".to_owned(),
                            )),
                            (_, _, Some(Fault::Garbage)) => Some((
                                "200 OK",
                                "application/json".to_owned(),
                                "\u{1}{not json, not a number]".to_owned(),
                            )),
                            (Some(t), _, _) if auth != format!("Bearer {t}") => Some((
                                "401 Unauthorized",
                                "text/plain".to_owned(),
                                "unauthorized\n".to_owned(),
                            )),
                            (_, Some((ctype, body)), _) => {
                                Some(("200 OK", ctype.clone(), body.clone()))
                            }
                            (_, None, _) => Some((
                                "404 Not Found",
                                "text/plain".to_owned(),
                                "not found\n".to_owned(),
                            )),
                        }
                    };
                    let Some((status, ctype, body)) = answer else {
                        // Hang: hold the connection open, answer nothing.
                        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                        return;
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Ok(HttpFixture { addr, state, task })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `body` with `content_type` at `path` from now on.
    pub fn set(&self, path: &str, content_type: &str, body: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.routes
                .insert(path.to_owned(), (content_type.to_owned(), body.to_owned()));
        }
    }

    /// Requires `Authorization: Bearer <token>` on every request from now on.
    pub fn require_bearer(&self, token: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.bearer = Some(token.to_owned());
        }
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.state.lock().map(|s| s.requests).unwrap_or(0)
    }

    /// Makes `path` misbehave as `fault` from now on (until [`heal`](Self::heal)).
    pub fn fail(&self, path: &str, fault: Fault) {
        if let Ok(mut s) = self.state.lock() {
            s.faults.insert(path.to_owned(), fault);
        }
    }

    /// Serves `path` normally again.
    pub fn heal(&self, path: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.faults.remove(path);
        }
    }

    /// Requests received for `path` so far (answered or not).
    pub fn requests_to(&self, path: &str) -> u64 {
        self.state
            .lock()
            .map(|s| s.per_path.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}
