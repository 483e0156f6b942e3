//! A loopback proxy in front of moto that plays EC2 running out of capacity: moto's CreateFleet
//! never reports errors (it always launches the first override), so the proxy answers a
//! CreateFleet whose first override is a refused (instance type, subnet) itself, the way EC2
//! answers an `instant` fleet it cannot fill — no instance and an `InsufficientInstanceCapacity`
//! entry in `errorSet`. It can also throttle CreateFleet, hang, or launch and lose the answer.
//! Every other request is forwarded byte for byte, so SigV4 signatures
//! (which cover the Host header the client used) still verify at moto.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy refuses and what it saw.
#[derive(Debug, Default)]
pub struct Refusals {
    /// `(instance type, subnet)` pairs with no capacity; empty = refuse the first override of
    /// the first CreateFleet and remember it.
    pub refuse: BTreeSet<(String, String)>,
    /// Refuse the first CreateFleet's first override, whatever it is.
    pub refuse_first: bool,
    /// Every CreateFleet's first override, in order.
    pub first_overrides: Vec<(String, String)>,
    /// Answer this many CreateFleet requests with EC2's throttling error first.
    pub throttle: usize,
    /// Forward this many CreateFleet requests (moto launches) and then close the connection
    /// without an answer, as a reset connection or a timeout loses it.
    pub lose_answers: usize,
    /// Never answer this many CreateFleet requests (nor send them on): EC2 hanging.
    pub hang: usize,
}

/// The running proxy.
pub struct IceProxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Shared state.
    pub state: Arc<Mutex<Refusals>>,
}

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

fn throttled_response() -> Vec<u8> {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>ice-proxy</RequestID></Response>"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ice_response(instance_type: &str, subnet: &str) -> Vec<u8> {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>ice-proxy</requestId>
  <fleetId>fleet-ice-proxy</fleetId>
  <errorSet>
    <item>
      <launchTemplateAndOverrides>
        <overrides><instanceType>{instance_type}</instanceType><subnetId>{subnet}</subnetId></overrides>
      </launchTemplateAndOverrides>
      <lifecycle>spot</lifecycle>
      <errorCode>InsufficientInstanceCapacity</errorCode>
      <errorMessage>We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested.</errorMessage>
    </item>
  </errorSet>
  <fleetInstanceSet/>
</CreateFleetResponse>"#
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn forward(upstream: &str, request: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await.ok()?;
    // Ask moto to close after the answer so its end marks the end of the response.
    let text = request.to_vec();
    let head_end = text.windows(4).position(|w| w == b"\r\n\r\n")? + 2;
    let mut out = text[..head_end].to_vec();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(&text[head_end..]);
    up.write_all(&out).await.ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).await.ok()?;
    Some(resp)
}

impl IceProxy {
    /// Starts the proxy in front of `moto_endpoint` (`http://127.0.0.1:<port>`).
    pub async fn start(moto_endpoint: &str) -> IceProxy {
        let upstream = moto_endpoint.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Refusals::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let state = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    while let Some(req) = read_request(&mut sock).await {
                        let text = String::from_utf8_lossy(&req).into_owned();
                        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
                        let mut answer = None;
                        let (mut lose, mut hang) = (false, false);
                        if form_value(body, "Action") == Some("CreateFleet") {
                            let t = form_value(
                                body,
                                "LaunchTemplateConfigs.1.Overrides.1.InstanceType",
                            )
                            .map(decode)
                            .unwrap_or_default();
                            let s =
                                form_value(body, "LaunchTemplateConfigs.1.Overrides.1.SubnetId")
                                    .map(decode)
                                    .unwrap_or_default();
                            let mut st = state.lock().expect("proxy state");
                            st.first_overrides.push((t.clone(), s.clone()));
                            if st.throttle > 0 {
                                st.throttle -= 1;
                                answer = Some(throttled_response());
                            }
                            if st.hang > 0 {
                                st.hang -= 1;
                                hang = true;
                            }
                            if answer.is_none() && st.lose_answers > 0 {
                                st.lose_answers -= 1;
                                lose = true;
                            }
                            if std::mem::take(&mut st.refuse_first) {
                                st.refuse.insert((t.clone(), s.clone()));
                            }
                            if answer.is_none() && st.refuse.contains(&(t.clone(), s.clone())) {
                                answer = Some(ice_response(&t, &s));
                            }
                        }
                        if hang {
                            // Hold the connection open until the client gives up on it.
                            let _ = sock.read_to_end(&mut Vec::new()).await;
                            return;
                        }
                        let resp = match answer {
                            Some(a) => a,
                            None => match forward(&upstream, &req).await {
                                Some(r) => r,
                                None => return,
                            },
                        };
                        if lose || sock.write_all(&resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        IceProxy { endpoint, state }
    }
}
