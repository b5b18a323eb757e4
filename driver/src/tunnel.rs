//! RTSP over HTTP tunnels, the client's plumbing. The rules (the two
//! requests, the GET's answer, the POST body's base64) are the core's
//! [`rtsp_toolkit_core::client::tunnel`]; this module moves the bytes
//! (`docs/ARCHITECTURE.md`, "RTSP over HTTP tunnels (client)").
//!
//! The **GET** half is the runtime's connection: the driver writes the GET
//! on it, reads the answer's head, and from then on hands what comes down
//! it to the client as if it were a plain RTSP connection (through the TLS
//! layer first for `rtsps://`).
//!
//! The **POST** half only ever carries bytes from the client to the server
//! (requests and interleaved RTCP: a few small writes a second at most), so
//! it is not a second connection for every runtime to wait on: a
//! [`PostWriter`] thread of the session connects it (TLS included),
//! writes the head, then each batch of the client's output in base64,
//! blocking with the session's timeout as its write timeout. A failure is
//! kept for the driver, which hands it to the client at its next turn (at
//! the latest when the request it was writing times out). The thread ends
//! when the session drops its writer, after writing what was queued (the
//! TEARDOWN), or when a write fails.

use std::io::{self, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rtsp_toolkit_core::client::tunnel::{self, TunnelInfo, TunnelResponseError};

use crate::connect_blocking;

/// What the POST half needs besides the bytes: where, over TLS or not, and
/// the head to send first.
#[derive(Debug, Clone)]
pub(crate) struct PostTarget {
    pub host: String,
    pub port: u16,
    /// `rtsps://`: the TLS settings and the name to check.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    pub head: Vec<u8>,
    pub timeout: Duration,
}

/// The tunnel of a session, across its connections.
#[derive(Debug)]
pub(crate) struct ClientTunnel {
    cookie: String,
    get_head: Vec<u8>,
    post: PostTarget,
    state: State,
}

#[derive(Debug)]
enum State {
    /// No connection (before the first, between connections).
    Idle,
    /// The GET went out: its answer's head is collected in `head`.
    Answering {
        local: SocketAddr,
        peer: SocketAddr,
        head: Vec<u8>,
    },
    /// The tunnel is open: the client's output goes to the POST writer.
    Open(PostWriter),
}

/// What the GET half's bytes gave.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The head is not complete yet.
    Pending,
    /// The tunnel is open: hand in the connection, then `rest` (RTSP that
    /// followed the head in the same read).
    Open {
        local: SocketAddr,
        peer: SocketAddr,
        info: TunnelInfo,
        rest: Vec<u8>,
    },
    /// The server refused, or did not answer HTTP.
    Failed(TunnelResponseError),
}

impl ClientTunnel {
    /// A tunnel with a fresh cookie, for `target`/`host` (the requests'
    /// target and `Host`) at `connect` (where the runtime connects).
    pub fn new(
        (target, host): (String, String),
        (connect_host, port): (String, u16),
        user_agent: &str,
        tls: Option<(Arc<rustls::ClientConfig>, String)>,
        timeout: Duration,
    ) -> ClientTunnel {
        let cookie = tunnel::cookie(crate::random_seed());
        ClientTunnel {
            get_head: tunnel::get_request(&target, &host, &cookie, user_agent),
            post: PostTarget {
                host: connect_host,
                port,
                tls,
                head: tunnel::post_request(&target, &host, &cookie, user_agent),
                timeout,
            },
            cookie,
            state: State::Idle,
        }
    }

    /// The runtime's connection (the GET half) is up (and through its TLS
    /// handshake): the GET request to write on it.
    pub fn start(&mut self, local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
        self.state = State::Answering {
            local,
            peer,
            head: Vec::new(),
        };
        self.get_head.clone()
    }

    /// Whether the GET's answer is awaited (bytes go to [`ClientTunnel::answer`]).
    pub fn is_answering(&self) -> bool {
        matches!(self.state, State::Answering { .. })
    }

    /// Bytes read on the GET half while its answer is awaited. On a 200,
    /// the POST half is started.
    pub fn answer(&mut self, data: &[u8]) -> Answer {
        let State::Answering { local, peer, head } = &mut self.state else {
            return Answer::Pending;
        };
        // Only what the head can still need is kept (bounded by the core's limit).
        let room = tunnel::MAX_RESPONSE_HEAD.saturating_sub(head.len());
        let take = data.len().min(room.max(1));
        head.extend_from_slice(data.get(..take).unwrap_or_default());
        match tunnel::parse_response(head) {
            Ok(None) => Answer::Pending,
            Err(e) => {
                self.state = State::Idle;
                Answer::Failed(e)
            }
            Ok(Some((response, len))) => {
                let (local, peer) = (*local, *peer);
                let mut rest = head.get(len..).unwrap_or_default().to_vec();
                rest.extend_from_slice(data.get(take..).unwrap_or_default());
                let deadline = Instant::now() + self.post.timeout;
                self.state = State::Open(PostWriter::spawn(self.post.clone(), deadline));
                Answer::Open {
                    local,
                    peer,
                    info: TunnelInfo {
                        cookie: self.cookie.clone(),
                        server: response.server,
                    },
                    rest,
                }
            }
        }
    }

    /// The open tunnel's POST writer, if the tunnel is open.
    pub fn writer(&mut self) -> Option<&mut PostWriter> {
        match &mut self.state {
            State::Open(w) => Some(w),
            _ => None,
        }
    }

    /// The connection is gone (a new one will start the tunnel again): the
    /// POST writer, if any, finishes what it has and ends.
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }
}

/// The POST half: a thread that connects, writes the head, then the
/// client's output in base64 (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct PostWriter {
    tx: mpsc::Sender<Vec<u8>>,
    failed: Arc<Failure>,
    reported: bool,
}

#[derive(Debug, Default)]
struct Failure {
    set: AtomicBool,
    error: Mutex<Option<(io::ErrorKind, String)>>,
}

impl Failure {
    fn record(&self, kind: io::ErrorKind, reason: String) {
        let mut e = self.error.lock().unwrap_or_else(|e| e.into_inner());
        e.get_or_insert((kind, reason));
        self.set.store(true, Ordering::Release);
    }
}

impl PostWriter {
    fn spawn(target: PostTarget, deadline: Instant) -> PostWriter {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let failed = Arc::new(Failure::default());
        let theirs = failed.clone();
        let spawned = std::thread::Builder::new()
            .name("rtsp-tunnel-post".into())
            .spawn(move || {
                if let Err(e) = run_post(&target, deadline, &rx) {
                    let reason = match tls_error(&e) {
                        Some(tls) => crate::tls::describe_error(tls, target.tls.as_ref().map_or("", |t| t.1.as_str())),
                        None => e.to_string(),
                    };
                    tracing::debug!(error = %reason, "HTTP tunnel: the POST half failed");
                    theirs.record(e.kind(), format!("HTTP tunnel: the POST connection failed: {reason}"));
                }
            });
        if let Err(e) = spawned {
            failed.record(
                io::ErrorKind::Other,
                format!("HTTP tunnel: cannot start the POST thread: {e}"),
            );
        }
        PostWriter {
            tx,
            failed,
            reported: false,
        }
    }

    /// Queues `plain` (the client's output) for the POST half.
    pub fn send(&mut self, plain: Vec<u8>) {
        if self.tx.send(plain).is_err() && !self.failed.set.load(Ordering::Acquire) {
            self.failed.record(
                io::ErrorKind::BrokenPipe,
                "HTTP tunnel: the POST connection ended".into(),
            );
        }
    }

    /// The POST half's failure, once: the error kind and the reason.
    pub fn take_failure(&mut self) -> Option<(io::ErrorKind, String)> {
        if self.reported || !self.failed.set.load(Ordering::Acquire) {
            return None;
        }
        self.reported = true;
        self.failed.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The POST thread's work; returns when the session dropped its writer (Ok)
/// or a step failed.
fn run_post(target: &PostTarget, deadline: Instant, rx: &mpsc::Receiver<Vec<u8>>) -> io::Result<()> {
    let (stream, _, _) = connect_blocking(&target.host, target.port, deadline)?;
    let _ = stream.set_nodelay(true);
    // Bounds every write (and the TLS handshake's reads) by the session's
    // timeout without progress.
    stream.set_write_timeout(Some(target.timeout))?;
    stream.set_read_timeout(Some(target.timeout))?;
    let mut tls_conn = match &target.tls {
        None => None,
        Some((config, name)) => {
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad TLS server name: {e}")))?;
            let conn = rustls::ClientConnection::new(config.clone(), server_name).map_err(io::Error::other)?;
            Some(conn)
        }
    };
    let mut raw = &stream;
    let mut write = |bytes: &[u8]| -> io::Result<()> {
        match tls_conn.as_mut() {
            None => raw.write_all(bytes),
            Some(conn) => {
                let mut tls = rustls::Stream::new(conn, &mut raw);
                tls.write_all(bytes)?;
                tls.flush()
            }
        }
    };
    write(&target.head)?;
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.clear();
        batch.extend_from_slice(&first);
        // What else is queued goes in the same write (one base64 run).
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
        }
        write(&tunnel::encode(&batch))?;
    }
    if let Some(conn) = tls_conn.as_mut() {
        conn.send_close_notify();
        let _ = conn.write_tls(&mut raw);
    }
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// The rustls error inside an I/O error of a TLS stream, if that is what it is.
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn tunnel(port: u16) -> ClientTunnel {
        ClientTunnel::new(
            ("/x".into(), format!("127.0.0.1:{port}")),
            ("127.0.0.1".into(), port),
            "test",
            None,
            Duration::from_secs(5),
        )
    }

    #[test]
    fn the_post_half_carries_the_output_in_base64_and_ends_with_the_session() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut t = tunnel(port);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let get = String::from_utf8(t.start(addr, addr)).unwrap();
        assert!(get.starts_with("GET /x HTTP/1.0\r\n"), "{get}");
        assert!(t.is_answering());
        assert!(matches!(t.answer(b"HTTP/1.0 200 OK\r\n"), Answer::Pending));
        let Answer::Open { info, rest, .. } = t.answer(b"Server: s\r\n\r\nRTSP/1.0 200 OK\r\n") else {
            panic!()
        };
        assert_eq!(
            (info.server.as_deref(), &rest[..]),
            (Some("s"), &b"RTSP/1.0 200 OK\r\n"[..])
        );
        assert!(get.contains(&format!("x-sessioncookie: {}\r\n", info.cookie)));
        t.writer().unwrap().send(b"OPTIONS * RTSP/1.0\r\n".to_vec());
        t.writer().unwrap().send(b"CSeq: 1\r\n\r\n".to_vec());
        let (mut post, _) = listener.accept().unwrap();
        post.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        t.reset(); // the writer is dropped: the thread writes what it has, then closes
        let mut all = Vec::new();
        post.read_to_end(&mut all).unwrap();
        let text = String::from_utf8(all).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /x HTTP/1.0\r\n"), "{head}");
        assert!(head.contains(&format!("x-sessioncookie: {}", info.cookie)));
        let mut decoded = Vec::new();
        let mut d = rtsp_toolkit_core::server::tunnel::Base64Decoder::new();
        d.decode(body.as_bytes(), &mut decoded).unwrap();
        assert_eq!(decoded, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    }

    #[test]
    fn a_refused_get_and_a_failed_post_are_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut t = tunnel(port);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        t.start(addr, addr);
        let Answer::Failed(e) = t.answer(b"HTTP/1.0 404 Not Found\r\n\r\n") else {
            panic!()
        };
        assert!(e.to_string().contains("404"), "{e}");
        assert!(!t.is_answering());
        // A POST to a port where nothing listens fails, and says so once.
        drop(listener);
        t.start(addr, addr);
        assert!(matches!(t.answer(b"HTTP/1.0 200 OK\r\n\r\n"), Answer::Open { .. }));
        let mut failure = None;
        for _ in 0..500 {
            failure = t.writer().unwrap().take_failure();
            if failure.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (kind, reason) = failure.expect("reported within 5 s");
        assert_eq!(kind, io::ErrorKind::ConnectionRefused, "{reason}");
        assert!(
            reason.starts_with("HTTP tunnel: the POST connection failed"),
            "{reason}"
        );
        assert!(t.writer().unwrap().take_failure().is_none(), "once");
    }
}
