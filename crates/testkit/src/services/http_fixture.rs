//! A tiny HTTP server in the test process: a Prometheus exporter to scrape, or a metrics API
//! to read. Bodies are set by the test at any time; an optional bearer token is required on
//! every request (401 otherwise), to test credentials.

use super::{Result, setup};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Default)]
struct State {
    routes: BTreeMap<String, (String, String)>,
    bearer: Option<String>,
    requests: u64,
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
                    let (status, ctype, body) = {
                        let Ok(mut s) = state.lock() else { return };
                        s.requests += 1;
                        match (&s.bearer, s.routes.get(&path)) {
                            (Some(t), _) if auth != format!("Bearer {t}") => (
                                "401 Unauthorized",
                                "text/plain".to_owned(),
                                "unauthorized\n".to_owned(),
                            ),
                            (_, Some((ctype, body))) => ("200 OK", ctype.clone(), body.clone()),
                            (_, None) => (
                                "404 Not Found",
                                "text/plain".to_owned(),
                                "not found\n".to_owned(),
                            ),
                        }
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
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}
