//! A hostile client against our file server, on tokio and on smol (each case
//! runs once per server, in the modules `tokio_server` and `smol_server`).
//!
//! Every case talks raw bytes over `std::net::TcpStream` to a server on
//! 127.0.0.1:0, checks the exact answer (a status, or the connection closed
//! for input that cannot be framed), and then checks that the server still
//! answers a fresh `OPTIONS` on a new connection with 200. The cases are the
//! list of issue 7; the results are summarized in `docs/RELIABILITY.md`.
//!
//! Also here: the short soak for CI (`a_short_soak_crosses_the_wraps`): 20
//! looping sessions of our client for 60 s against a server whose sequence
//! numbers and timestamps start just below the wrap (the tokio server). The
//! hour-long version is `scripts/soak.sh`.
//!
//! The soak runs in a child process of its own (this test binary again, with
//! only the soak: [`SOAK_CHILD`]), so that its RSS figure is its server's and
//! clients' alone while the other cases of this file run beside it here.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::servers::{self, ServerRuntime};
use rtsp_toolkit_core::message::Method;
use rtsp_toolkit_core::server::auth::{AuthConfig, Users};
use rtsp_toolkit_tokio::{ClientOptions, Event, ServerOptions, Session, StopSignal};

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    path_traversal_in_every_spelling_is_refused,
    garbage_bytes_close_the_connection,
    a_request_without_cseq,
    oversized_requests_close_the_connection,
    wrong_state_and_bogus_transports,
    interleaved_junk_from_the_client,
    huge_and_odd_play_counts,
    a_request_sent_one_byte_at_a_time,
    a_client_that_never_reads_is_dropped_and_others_are_unaffected,
    two_thousand_idle_connections,
    garbage_and_huge_authorization_headers,
    repeated_failures_are_rate_limited_per_address,
    tunnel_requests_that_are_refused,
    half_open_tunnels_are_closed,
    garbage_base64_ends_the_tunnel,
    ten_thousand_unpaired_gets_stay_bounded,
);

/// Taken by [`two_thousand_idle_connections`], which runs once per server.
static IDLE: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media")
}

/// A server on threads of its own, so that the test thread can do blocking
/// I/O against it, and a tokio runtime (two worker threads) for the case's
/// own clients. Shut down on drop.
struct TestServer {
    rt: tokio::runtime::Runtime,
    server: servers::TestServer,
    addr: SocketAddr,
}

impl TestServer {
    fn start(runtime: ServerRuntime, root: &Path) -> TestServer {
        TestServer::with(runtime, root, ServerOptions::default())
    }

    fn with(runtime: ServerRuntime, root: &Path, options: ServerOptions) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = servers::TestServer::with_options(runtime, root, options);
        let addr = server.local_addr();
        TestServer { rt, server, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", self.addr)
    }

    /// A fresh connection's OPTIONS gets 200 (the server survived).
    fn assert_alive(&self, after: &str) {
        let mut c = Raw::connect(self.addr);
        let r = c
            .request("OPTIONS", &self.url("/"), 77, &[])
            .unwrap_or_else(|| panic!("after {after}: no answer to a fresh OPTIONS"));
        assert_eq!(r.status, 200, "after {after}: fresh OPTIONS");
        assert_eq!(r.header("CSeq"), Some("77"));
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw RTSP connection: writes bytes, reads responses (skipping `$`-framed
/// media), notices when the server closes.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
    eof: bool,
    /// Interleaved frames skipped so far.
    frames: usize,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        Raw::from(TcpStream::connect(addr).unwrap())
    }

    fn from(s: TcpStream) -> Raw {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw {
            s,
            buf: Vec::new(),
            eof: false,
            frames: 0,
        }
    }

    /// Writes everything; false if the server closed (or reset) meanwhile.
    fn send(&mut self, data: &[u8]) -> bool {
        self.s.write_all(data).is_ok()
    }

    fn request(&mut self, method: &str, uri: &str, cseq: u32, headers: &[(&str, &str)]) -> Option<Response> {
        let mut req = format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        assert!(self.send(req.as_bytes()), "{method}: write failed");
        let r = self.response()?;
        assert_eq!(
            r.header("CSeq"),
            Some(cseq.to_string().as_str()),
            "{method}: CSeq echoed"
        );
        Some(r)
    }

    /// The next response; `None` when the connection ends (or 5 s pass) first.
    fn response(&mut self) -> Option<Response> {
        loop {
            if self.buf.first() == Some(&b'$') {
                if self.buf.len() >= 4 {
                    let n = 4 + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() >= n {
                        self.buf.drain(..n);
                        self.frames += 1;
                        continue;
                    }
                }
            } else if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or("");
                assert!(status_line.starts_with("RTSP/1.0 "), "status line {status_line:?}");
                let status = status_line[9..12].parse().unwrap();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return Some(Response { status, headers, body });
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads more; false at EOF, reset or timeout.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.eof = true;
                false
            }
        }
    }

    /// Whether the server closes the connection within `within` (what it
    /// sends before is discarded).
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.eof && Instant::now() < deadline {
            self.buf.clear();
            self.fill();
        }
        self.eof
    }
}

/// Seeded bytes (no `rand` in this crate): xorshift64*.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// `tmp/root/{inside.mp4, sub/ok.mp4 -> ../inside.mp4, escape.mp4 -> outside/secret.mp4,
/// dir -> outside/, parent -> ..}`, `tmp/outside/secret.mp4`.
fn traversal_tree(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let tmp = std::env::temp_dir().join(format!("rtsp-toolkit-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (root, outside) = (tmp.join("root"), tmp.join("outside"));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(fixtures().join("h265.mp4"), root.join("inside.mp4")).unwrap();
    std::fs::copy(fixtures().join("h265.mp4"), outside.join("secret.mp4")).unwrap();
    std::os::unix::fs::symlink("../inside.mp4", root.join("sub/ok.mp4")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.mp4"), root.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink("../outside/secret.mp4", root.join("relative-escape.mp4")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("dir")).unwrap();
    std::os::unix::fs::symlink("..", root.join("parent")).unwrap();
    (tmp, root, outside)
}

fn path_traversal_in_every_spelling_is_refused(runtime: ServerRuntime) {
    let (tmp, root, outside) = traversal_tree(&format!("paths-{}", runtime.name()));
    let srv = TestServer::start(runtime, &root);
    let secret_abs = outside.join("secret.mp4");
    let secret_abs = secret_abs.to_str().unwrap();
    let refused_404 = [
        // Plain and percent-encoded dot-dot, once and twice encoded, mixed case.
        "/../outside/secret.mp4".to_owned(),
        "/%2e%2e/outside/secret.mp4".to_owned(),
        "/%2E%2e/outside/secret.mp4".to_owned(),
        "/.%2e/outside/secret.mp4".to_owned(),
        "/%2e%2e%2foutside%2fsecret.mp4".to_owned(),
        "/%252e%252e/outside/secret.mp4".to_owned(),
        "/%252e%252e%252foutside%252fsecret.mp4".to_owned(),
        "/sub/../../outside/secret.mp4".to_owned(),
        "/./inside.mp4".to_owned(),
        // Backslashes, raw and encoded.
        "/..\\outside\\secret.mp4".to_owned(),
        "/..%5coutside%5csecret.mp4".to_owned(),
        "/..%5Coutside/secret.mp4".to_owned(),
        // Absolute paths and empty segments.
        "//etc/passwd".to_owned(),
        "/%2fetc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        format!("/{secret_abs}"),
        format!("/{}", secret_abs.trim_start_matches('/')),
        // A file path followed by /../.. (and a track).
        "/inside.mp4/../../outside/secret.mp4".to_owned(),
        "/inside.mp4/trackID=0/../../..".to_owned(),
        "/inside.mp4/..%2f..%2foutside%2fsecret.mp4".to_owned(),
        // NUL and control characters.
        "/inside.mp4%00.txt".to_owned(),
        "/%0a/inside.mp4".to_owned(),
        // Symlinks out of the root: to a file, relative, to a directory, to "..".
        "/escape.mp4".to_owned(),
        "/relative-escape.mp4".to_owned(),
        "/dir/secret.mp4".to_owned(),
        "/parent/outside/secret.mp4".to_owned(),
        // Not files.
        "/sub".to_owned(),
        "/nope.mp4".to_owned(),
    ];
    let mut c = Raw::connect(srv.addr);
    let mut cseq = 0;
    for path in ["/inside.mp4", "/sub/ok.mp4"] {
        cseq += 1;
        let r = c.request("DESCRIBE", &srv.url(path), cseq, &[]).unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
    for path in &refused_404 {
        cseq += 1;
        let r = c
            .request("DESCRIBE", &srv.url(path), cseq, &[])
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert_eq!(r.status, 404, "DESCRIBE {path}");
        assert!(r.body.is_empty(), "{path}");
        cseq += 1;
        let r = c
            .request(
                "SETUP",
                &format!("{}/trackID=0", srv.url(path)),
                cseq,
                &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
            )
            .unwrap_or_else(|| panic!("{path}: no answer to SETUP"));
        assert_eq!(r.status, 404, "SETUP {path}");
    }
    // Request-URIs that are not rtsp:// URIs at all: 400 (the connection stays).
    for uri in [
        "/etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
        format!("file://{secret_abs}"),
        "http://127.0.0.1/inside.mp4".to_owned(),
        "*".to_owned(),
    ] {
        cseq += 1;
        let r = c
            .request("DESCRIBE", &uri, cseq, &[])
            .unwrap_or_else(|| panic!("{uri}: no answer"));
        assert_eq!(r.status, 400, "DESCRIBE {uri}");
    }
    // The same connection still works.
    cseq += 1;
    assert_eq!(c.request("OPTIONS", &srv.url("/"), cseq, &[]).unwrap().status, 200);
    srv.assert_alive("path traversal");
    drop(srv);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Input that cannot be framed as RTSP: answered 400 (no CSeq) at most, and
/// the connection is closed. An HTTP `GET` is answered in HTTP (400: not a
/// tunnel half) and closed.
fn garbage_bytes_close_the_connection(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let mut tls_hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    tls_hello.extend(noise(3, 500));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary noise", noise(1, 4096)),
        (
            "noise ending in CRLFCRLF",
            [noise(2, 300), b"\r\n\r\n".to_vec()].concat(),
        ),
        ("TLS ClientHello", tls_hello),
        ("NUL bytes", vec![0u8; 2048]),
        (
            "request line without version",
            b"OPTIONS rtsp://x/\r\nCSeq: 1\r\n\r\n".to_vec(),
        ),
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "an HTTP tunnel request",
            b"GET /a.mp4 HTTP/1.0\r\nx-sessioncookie: 1\r\n\r\n".to_vec(),
        ),
        (
            "header without colon",
            b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq 1\r\n\r\n".to_vec(),
        ),
        (
            "bare LF and NUL in header",
            b"OPTIONS rtsp://x/ RTSP/1.0\nCSeq: 1\0\n\n".to_vec(),
        ),
    ];
    for (name, bytes) in &cases {
        let mut c = Raw::connect(srv.addr);
        c.send(bytes);
        if bytes.starts_with(b"GET ") {
            // HTTP on the RTSP port is read as HTTP (a tunnel's first line):
            // these are not tunnel halves, so an HTTP 400, then closed.
            while c.fill() {}
            let text = String::from_utf8_lossy(&c.buf);
            assert!(text.starts_with("HTTP/1.0 400 "), "{name}: {text:?}");
            assert!(c.eof, "{name}: connection not closed");
            eprintln!("{name}: HTTP 400, closed");
            srv.assert_alive(name);
            continue;
        }
        let answer = c.response();
        if let Some(r) = &answer {
            assert_eq!(r.status, 400, "{name}");
            assert_eq!(r.header("CSeq"), None, "{name}");
        }
        assert!(c.closed_within(Duration::from_secs(5)), "{name}: connection not closed");
        eprintln!(
            "{name}: {}, closed",
            answer.map_or("no answer".to_owned(), |r| r.status.to_string())
        );
        srv.assert_alive(name);
    }
    // Tolerated, not garbage: any `RTSP/x` version is answered as 1.0.
    let mut c = Raw::connect(srv.addr);
    c.send(b"OPTIONS rtsp://x/ RTSP/9.9x\r\nCSeq: 1\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 200);
}

fn a_request_without_cseq(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let mut c = Raw::connect(srv.addr);
    c.send(format!("OPTIONS {} RTSP/1.0\r\nUser-Agent: hostile\r\n\r\n", srv.url("/")).as_bytes());
    let r = c.response().expect("an answer");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("CSeq"), None);
    // Not a framing error: the connection goes on.
    assert_eq!(c.request("OPTIONS", &srv.url("/"), 2, &[]).unwrap().status, 200);
    srv.assert_alive("no CSeq");
}

/// Requests over the limits (64 KiB header block, 128 headers, 1 MiB body):
/// 400 at most, and the connection closed.
fn oversized_requests_close_the_connection(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let uri = srv.url("/h264_aac.mp4");
    let long_line = format!(
        "OPTIONS {uri} RTSP/1.0\r\nCSeq: 1\r\nX-Long: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let mut many = format!("OPTIONS {uri} RTSP/1.0\r\nCSeq: 1\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let cases = [
        ("200 KB header line", long_line),
        ("10,000 headers", many),
        (
            "200 KB request line",
            format!("OPTIONS {uri}{} RTSP/1.0\r\nCSeq: 1\r\n\r\n", "/a".repeat(100 * 1024)),
        ),
        (
            "Content-Length 2^40",
            format!("SET_PARAMETER {uri} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1099511627776\r\n\r\nabc"),
        ),
        (
            "Content-Length 2^64",
            format!("SET_PARAMETER {uri} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 18446744073709551616\r\n\r\n"),
        ),
        (
            "Content-Length -1",
            format!("SET_PARAMETER {uri} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\nabc"),
        ),
        (
            "Content-Length not a number",
            format!("SET_PARAMETER {uri} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 0x10\r\n\r\n"),
        ),
    ];
    for (name, req) in &cases {
        let mut c = Raw::connect(srv.addr);
        // The server may close before all is written: a write error is fine.
        c.send(req.as_bytes());
        let answer = c.response();
        if let Some(r) = &answer {
            assert_eq!(r.status, 400, "{name}");
            assert_eq!(r.header("CSeq"), None, "{name}");
        }
        assert!(c.closed_within(Duration::from_secs(5)), "{name}: connection not closed");
        eprintln!(
            "{name}: {}, closed",
            answer.map_or("no answer".to_owned(), |r| r.status.to_string())
        );
        srv.assert_alive(name);
    }
    // Two different Content-Lengths: which one frames the request is
    // ambiguous (the request-smuggling shape), so it is refused and closed.
    let mut c = Raw::connect(srv.addr);
    c.send(
        format!("SET_PARAMETER {uri} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc")
            .as_bytes(),
    );
    assert_eq!(c.response().unwrap().status, 400, "conflicting Content-Length");
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "conflicting Content-Length: connection not closed"
    );
    srv.assert_alive("conflicting Content-Length");
    // A body of 2 MiB that is really sent, too.
    let mut c = Raw::connect(srv.addr);
    let head = format!("SET_PARAMETER {uri} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 2097152\r\n\r\n");
    c.send(&[head.into_bytes(), vec![b'x'; 2 << 20]].concat());
    if let Some(r) = c.response() {
        assert_eq!(r.status, 400);
    }
    assert!(c.closed_within(Duration::from_secs(5)));
    srv.assert_alive("a 2 MiB body");
}

/// Methods out of order and transports we do not do: exact statuses, and
/// the connection goes on.
fn wrong_state_and_bogus_transports(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let url = srv.url("/h264_aac.mp4");
    let track = format!("{url}/trackID=0");
    let mut c = Raw::connect(srv.addr);
    let mut cseq = 0;
    let mut ask = |c: &mut Raw, method: &str, uri: &str, headers: &[(&str, &str)]| {
        cseq += 1;
        c.request(method, uri, cseq, headers)
            .unwrap_or_else(|| panic!("{method} {headers:?}: no answer"))
            .status
    };
    assert_eq!(ask(&mut c, "PLAY", &url, &[]), 455, "PLAY without SETUP");
    assert_eq!(
        ask(&mut c, "PLAY", &url, &[("Session", "12345678")]),
        454,
        "PLAY, unknown session"
    );
    assert_eq!(ask(&mut c, "TEARDOWN", &url, &[("Session", "12345678")]), 454);
    assert_eq!(ask(&mut c, "PAUSE", &url, &[]), 455, "PAUSE without a session");
    assert_eq!(ask(&mut c, "RECORD", &url, &[]), 405);
    assert_eq!(ask(&mut c, "FROBNICATE", &url, &[]), 501);
    for transport in [
        "RTP/AVP;unicast",
        "RTP/AVP;unicast;client_port=0-1",
        "RTP/AVP;unicast;client_port=5000-5001;destination=192.0.2.1",
        "RTP/AVP;multicast;destination=224.0.0.1",
        "RTP/AVP/TCP;multicast;interleaved=0-1",
        "RTP/AVP/TCP;unicast;interleaved=x",
        "RTP/AVP/TCP;unicast;interleaved=300-301",
        "RTP/AVP/TCP;unicast;interleaved=4-4",
        "RTP/AVP/TCP;unicast;interleaved=255",
        "garbage",
        "",
        ";;;,,,",
        "RAW/RAW/UDP;unicast",
    ] {
        assert_eq!(
            ask(&mut c, "SETUP", &track, &[("Transport", transport)]),
            461,
            "Transport: {transport:?}"
        );
    }
    assert_eq!(ask(&mut c, "SETUP", &track, &[]), 461, "no Transport");
    assert_eq!(
        ask(&mut c, "SETUP", &url, &[("Transport", "RTP/AVP/TCP;unicast")]),
        459,
        "aggregate SETUP"
    );
    assert_eq!(
        ask(
            &mut c,
            "SETUP",
            &format!("{url}/trackID=9"),
            &[("Transport", "RTP/AVP/TCP;unicast")]
        ),
        404,
        "no such track"
    );
    assert_eq!(
        ask(
            &mut c,
            "SETUP",
            &format!("{url}/trackID=99999999999"),
            &[("Transport", "RTP/AVP/TCP;unicast")]
        ),
        404,
        "absurd track"
    );
    // A UDP spec first and TCP second is fine: the first (UDP) one is taken.
    assert_eq!(
        ask(
            &mut c,
            "SETUP",
            &track,
            &[(
                "Transport",
                "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1"
            )]
        ),
        200
    );
    assert_eq!(ask(&mut c, "OPTIONS", &url, &[]), 200);
    assert_eq!(ask(&mut c, "TEARDOWN", &url, &[]), 200);
    // The session is over; the connection is the client's to close (as with GStreamer's and live555's servers:
    // a PAUSE can follow a TEARDOWN), or the server's after its idle timeout.
    assert_eq!(ask(&mut c, "PLAY", &url, &[]), 454, "no session after TEARDOWN");
    srv.assert_alive("wrong state and bogus transports");
}

/// `$`-framed junk from the client, before a session and while playing, is
/// ignored; the session goes on and answers requests.
fn interleaved_junk_from_the_client(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let url = srv.url("/h264_aac.mp4");
    let frame = |channel: u8, payload: &[u8]| {
        let mut f = vec![b'$', channel];
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let junk = |seed: u64| -> Vec<u8> {
        let mut out = Vec::new();
        for (i, ch) in [0u8, 1, 2, 3, 7, 200, 255].iter().enumerate() {
            out.extend(frame(*ch, &noise(seed + i as u64, 1 + i * 300)));
        }
        out.extend(frame(1, &[])); // empty
        out.extend(frame(1, &[0x81, 201, 0, 1])); // a truncated RTCP RR
        out.extend(frame(3, &noise(seed, 65535))); // the largest frame
        out
    };
    let mut c = Raw::connect(srv.addr);
    assert!(c.send(&junk(10)));
    assert_eq!(
        c.request("OPTIONS", &url, 1, &[]).expect("answer after junk").status,
        200
    );
    assert_eq!(
        c.request("DESCRIBE", &format!("{url}?play_count=0"), 2, &[])
            .unwrap()
            .status,
        200
    );
    for (i, channels) in [(0, "0-1"), (1, "2-3")] {
        let r = c
            .request(
                "SETUP",
                &format!("{url}/trackID={i}"),
                3 + i,
                &[("Transport", &format!("RTP/AVP/TCP;unicast;interleaved={channels}"))],
            )
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(c.request("PLAY", &url, 5, &[]).unwrap().status, 200);
    assert!(c.send(&junk(20)));
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.send(&junk(30)));
    let r = c.request("GET_PARAMETER", &url, 6, &[]).expect("answer while playing");
    assert_eq!(r.status, 200);
    let before = c.frames;
    std::thread::sleep(Duration::from_millis(500));
    // Media keeps coming after the junk.
    assert_eq!(c.request("OPTIONS", &url, 7, &[]).unwrap().status, 200);
    assert!(c.frames > before + 10, "media goes on: {} frames", c.frames - before);
    assert_eq!(c.request("TEARDOWN", &url, 8, &[]).unwrap().status, 200);
    srv.assert_alive("interleaved junk");
}

/// `?play_count=` with absurd values: never an error, never a crash; the
/// `Range` end says what the server made of it.
fn huge_and_odd_play_counts(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let huge = "9".repeat(10_000);
    let cases: Vec<(String, Option<&str>)> = vec![
        // (value, expected range end: None = open-ended loop, Some("1x") once, Some("max") = u32::MAX times)
        ("0".into(), None),
        ("000".into(), None),
        ("1".into(), Some("1x")),
        ("-1".into(), Some("1x")),
        ("abc".into(), Some("1x")),
        ("".into(), Some("1x")),
        ("1e3".into(), Some("1x")),
        ("0x10".into(), Some("1x")),
        ("%00".into(), Some("1x")),
        ("%2d5".into(), Some("1x")),
        ("4294967295".into(), Some("max")),
        ("4294967296".into(), Some("max")),
        ("18446744073709551616".into(), Some("max")),
        (huge, Some("max")),
    ];
    let one = 5.0_f64; // h264_aac.mp4 is about 5 s
    for (value, expected) in &cases {
        let mut c = Raw::connect(srv.addr);
        let url = srv.url(&format!("/h264_aac.mp4?play_count={value}"));
        let shown = &value[..value.len().min(24)];
        let r = c.request("DESCRIBE", &url, 1, &[]).unwrap();
        assert_eq!(r.status, 200, "play_count={shown}");
        let r = c
            .request(
                "SETUP",
                &srv.url("/h264_aac.mp4/trackID=1"),
                2,
                &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
            )
            .unwrap();
        assert_eq!(r.status, 200, "play_count={shown}");
        let r = c.request("PLAY", &srv.url("/h264_aac.mp4"), 3, &[]).unwrap();
        assert_eq!(r.status, 200, "play_count={shown}");
        let range = r.header("Range").unwrap().to_owned();
        let end = range.strip_prefix("npt=0.000-").unwrap();
        match expected {
            None => assert_eq!(end, "", "play_count={shown}"),
            Some("1x") => assert!((end.parse::<f64>().unwrap() - one).abs() < 0.2, "{shown}: {range}"),
            Some(_) => assert!(end.parse::<f64>().unwrap() > one * 4e9, "{shown}: {range}"),
        }
        assert_eq!(
            c.request("TEARDOWN", &srv.url("/h264_aac.mp4"), 4, &[]).unwrap().status,
            200
        );
    }
    srv.assert_alive("odd play_count values");
}

/// Requests dribbled one byte at a time get the same answers.
fn a_request_sent_one_byte_at_a_time(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let mut c = Raw::connect(srv.addr);
    c.s.set_nodelay(true).unwrap();
    let url = srv.url("/h264_aac.mp4");
    for (cseq, req) in [
        (1, format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")),
        (
            2,
            format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n"),
        ),
        (
            3,
            format!("SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 0\r\n\r\n"),
        ),
    ] {
        for b in req.as_bytes() {
            assert!(c.send(&[*b]));
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = c.response().expect("an answer");
        assert_eq!(r.status, 200, "{req:?}");
        assert_eq!(r.header("CSeq"), Some(cseq.to_string().as_str()));
        if cseq == 2 {
            assert!(String::from_utf8_lossy(&r.body).contains("m=video"));
        }
    }
    srv.assert_alive("one byte at a time");
}

/// A client that plays and never reads is dropped by the documented policy
/// (`write_stall` without the socket taking a byte); its queue is the kernel
/// send buffer (`send_buffer`), nothing grows in the server; a normal session
/// beside it gets every frame.
fn a_client_that_never_reads_is_dropped_and_others_are_unaffected(runtime: ServerRuntime) {
    let srv = TestServer::with(
        runtime,
        &fixtures(),
        ServerOptions {
            write_stall: Duration::from_millis(500),
            send_buffer: Some(8 * 1024),
            ..Default::default()
        },
    );
    let addr = srv.addr;
    // Tiny receive buffer, so that the backlog is small and stalls fast.
    let stalled = srv.rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    });
    stalled.set_nonblocking(false).unwrap();
    let mut stalled = Raw::from(stalled);
    let url = srv.url("/h264_aac.mp4");
    assert_eq!(
        stalled
            .request("DESCRIBE", &format!("{url}?play_count=0"), 1, &[])
            .unwrap()
            .status,
        200
    );
    for (i, ch) in [(0, "0-1"), (1, "2-3")] {
        let t = format!("RTP/AVP/TCP;unicast;interleaved={ch}");
        let r = stalled
            .request("SETUP", &format!("{url}/trackID={i}"), 2 + i, &[("Transport", &t)])
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(stalled.send(format!("PLAY {url} RTSP/1.0\r\nCSeq: 4\r\n\r\n").as_bytes()));
    // From here on, the stalled client reads nothing. A normal session plays a whole file.
    let normal_url = srv.url("/h265.mp4");
    let (frames, losses, max_gap, error) = srv.rt.block_on(async move {
        let mut s = Session::open(&normal_url, ClientOptions::default()).unwrap();
        let (mut frames, mut losses, mut max_gap, mut error) = (0, 0, Duration::ZERO, None);
        let mut last: Option<Instant> = None;
        while let Some(e) = s.next_event().await {
            match e {
                Event::Video(_) => {
                    frames += 1;
                    let now = Instant::now();
                    if let Some(l) = last {
                        max_gap = max_gap.max(now - l);
                    }
                    last = Some(now);
                }
                Event::Loss(_) => losses += 1,
                Event::Closed(c) => error = c.error,
                _ => {}
            }
        }
        (frames, losses, max_gap, error)
    });
    assert_eq!((frames, losses, error), (125, 0, None));
    assert!(max_gap < Duration::from_secs(1), "a frame waited {max_gap:?}");
    // The stalled connection is gone by now (the server counts none).
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.server.connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(srv.server.connections(), 0, "the stalled connection is still open");
    // What it finds when it reads at last: some media, then the end.
    assert!(stalled.closed_within(Duration::from_secs(5)));
    srv.assert_alive("a client that never reads");
}

/// The soft limit on open files, from /proc (no libc here).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// 2,000 connections that never send a request (half of them send a partial
/// one, slowloris style). The connection limit refuses the ones beyond it at
/// once, the idle timeout closes the rest, and a new client gets its 200 as
/// soon as a slot is free: within the idle timeout plus a margin.
///
/// Both ends are in this process, so each connection costs two descriptors:
/// with a soft `ulimit -n` under ~3,200 the test scales down (printing what it
/// used); `scripts/test-all.sh` and CI run with the image's limit (20,000).
fn two_thousand_idle_connections(runtime: ServerRuntime) {
    // One server's run at a time: the descriptor budget below is for one.
    let _one = IDLE.lock().unwrap_or_else(|p| p.into_inner());
    let limit = open_files_limit();
    let max_connections = 1000.min(limit / 4);
    let idle = 2000.min(limit.saturating_sub(max_connections + 200));
    eprintln!("ulimit -n {limit}: {idle} idle connections against max_connections {max_connections}");
    assert!(idle > max_connections, "ulimit -n {limit} is too low for this test");
    let idle_timeout = Duration::from_secs(1);
    let mut options = ServerOptions {
        max_connections,
        ..Default::default()
    };
    options.config.idle_timeout = idle_timeout;
    let srv = TestServer::with(runtime, &fixtures(), options);
    let partial = format!("OPTIONS {} RTSP/1.0\r\nCSe", srv.url("/"));
    let opened = Instant::now();
    let mut conns: Vec<TcpStream> = (0..idle)
        .map(|i| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            if i % 2 == 1 {
                let _ = s.write_all(partial.as_bytes());
            }
            s
        })
        .collect();
    let open_took = opened.elapsed();
    // A new client: refused while the slots are full, answered once the idle
    // timeout frees them.
    let asked = Instant::now();
    let bound = idle_timeout + open_took + Duration::from_secs(3);
    let answered = loop {
        let mut c = Raw::connect(srv.addr);
        c.s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        c.send(format!("OPTIONS {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", srv.url("/")).as_bytes());
        if let Some(r) = c.response() {
            assert_eq!(r.status, 200);
            break asked.elapsed();
        }
        assert!(
            asked.elapsed() < bound,
            "no 200 within {bound:?} with {idle} idle connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("opened {idle} in {open_took:?}; a new client got 200 after {answered:?}");
    // Every idle connection is closed by the server: at once past the limit,
    // after the idle timeout within it.
    let deadline = Instant::now() + idle_timeout + Duration::from_secs(5);
    let mut open: Vec<usize> = (0..conns.len()).collect();
    for s in &conns {
        s.set_nonblocking(true).unwrap();
    }
    let mut buf = [0u8; 512];
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|&i| loop {
            match conns[i].read(&mut buf) {
                Ok(0) => break false,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(open.is_empty(), "{} of {idle} idle connections still open", open.len());
    assert_eq!(srv.server.connections(), 0);
    conns.clear();
    srv.assert_alive("idle connections");
}

/// The short soak (CI): 20 looping sessions of our client for 60 s against a
/// server that starts every track's sequence number at 65500 and timestamp at
/// 2^32 − 180000 (2 s of video before the wrap, 4 s of 44.1 kHz audio). No
/// errors, no loss, sequence numbers continuous and audio extended timestamps
/// strictly increasing across both wraps and the loop seams, and the
/// process's RSS (server and clients: one process) flat after warm-up.
///
/// It runs in a child process (see the module docs), which this test waits
/// for: the soak's own assertions are the child's, and its output is shown
/// when it fails. Its name sorts it first, so that its minute starts at once
/// and the other cases run beside it.
#[test]
fn a_short_soak_crosses_the_wraps() {
    if std::env::var_os(SOAK_CHILD).is_some() {
        soak();
        return;
    }
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "a_short_soak_crosses_the_wraps",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(SOAK_CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the soak's process starts");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    // The soak's minute, its start and its end, with a wide margin.
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    eprintln!("{output}");
    let status = status.expect("the soak's process did not end within 150 s");
    assert!(status.success(), "the soak failed: {status}");
    // It ran the soak (a filter that matched nothing would pass too).
    assert!(output.contains("1 passed"), "the soak did not run");
}

/// Set in the soak's child process (see the module docs).
const SOAK_CHILD: &str = "RTSP_TOOLKIT_SOAK_CHILD";

/// The soak itself, in its child process.
fn soak() {
    const SESSIONS: usize = 20;
    // A minute: each client's first keepalive (GET_PARAMETER at half the
    // 60 s session timeout) falls in the middle.
    let run_for = Duration::from_secs(60);
    let initial = (65_500u16, u32::MAX - 180_000 + 1);
    let mut options = ServerOptions::default();
    options.config.initial_rtp = Some(initial);
    let srv = TestServer::with(ServerRuntime::Tokio, &fixtures(), options);
    let url = srv.url("/h264_aac.mp4?play_count=0");
    let stop = StopSignal::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|_| srv.rt.spawn(soak_session(url.clone(), stop.clone())))
        .collect();
    // RSS once a second; warm-up is the first 8 s.
    let mut rss = Vec::new();
    while started.elapsed() < run_for {
        std::thread::sleep(Duration::from_secs(1));
        rss.push((started.elapsed().as_secs(), vm_rss_kib()));
    }
    stop.stop();
    let results: Vec<SoakStats> = srv.rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    eprintln!("RSS (s, KiB): {rss:?}");
    for (i, s) in results.iter().enumerate() {
        assert_eq!(s.error, None, "session {i}");
        assert_eq!(s.losses, 0, "session {i}");
        // One keepalive at 30 s (half the 60 s session timeout), answered.
        assert!(s.keepalives_ok >= 1, "session {i}: no keepalive answered");
        assert!(s.warnings.is_empty(), "session {i}: {:?}", s.warnings);
        assert_eq!(s.seq_gaps, [0, 0], "session {i}: sequence gaps");
        assert_eq!(s.audio_not_increasing, 0, "session {i}: audio timestamps");
        assert_eq!(s.video_backwards, 0, "session {i}: video timestamps");
        assert!(
            s.seq_wraps.iter().all(|w| *w >= 1),
            "session {i}: sequence wraps {:?}",
            s.seq_wraps
        );
        for (k, first, last) in [(0, s.first_ts[0], s.last_ts[0]), (1, s.first_ts[1], s.last_ts[1])] {
            assert_eq!(first, i64::from(initial.1), "session {i} track {k}: first timestamp");
            assert!(
                last >= 1 << 32,
                "session {i} track {k}: the timestamp wrap was not crossed"
            );
        }
        // About 60 s of media on each track (25 fps video, 43 audio frames/s).
        assert!(
            s.frames[0] > 57 * 25 && s.frames[1] > 57 * 43,
            "session {i}: {:?}",
            s.frames
        );
    }
    let warm: Vec<u64> = rss.iter().filter(|(t, _)| (8..12).contains(t)).map(|r| r.1).collect();
    let late: Vec<u64> = rss.iter().filter(|(t, _)| *t >= 20).map(|r| r.1).collect();
    let (warm, late) = (warm.iter().max().copied(), late.iter().max().copied());
    if let (Some(warm), Some(late)) = (warm, late) {
        eprintln!("RSS after warm-up {warm} KiB, at the end {late} KiB");
        assert!(late <= warm + 16 * 1024, "RSS grew from {warm} KiB to {late} KiB");
    }
    srv.assert_alive("the short soak");
}

#[derive(Debug, Default)]
struct SoakStats {
    error: Option<rtsp_toolkit_tokio::Error>,
    losses: usize,
    warnings: Vec<String>,
    frames: [usize; 2],
    seq_gaps: [usize; 2],
    seq_wraps: [usize; 2],
    audio_not_increasing: usize,
    video_backwards: usize,
    first_ts: [i64; 2],
    last_ts: [i64; 2],
    keepalives_ok: usize,
}

async fn soak_session(url: String, stop: StopSignal) -> SoakStats {
    let mut s = Session::open_with_stop(&url, ClientOptions::default(), stop).unwrap();
    let mut st = SoakStats::default();
    let mut last_seq: [Option<u16>; 2] = [None; 2];
    let mut max_video: Option<i64> = None;
    while let Some(e) = s.next_event().await {
        match e {
            Event::Rtp(r) => {
                let k = r.track.min(1);
                let seq = r.packet.sequence_number;
                if let Some(prev) = last_seq[k] {
                    if seq != prev.wrapping_add(1) {
                        st.seq_gaps[k] += 1;
                    } else if seq == 0 {
                        st.seq_wraps[k] += 1;
                    }
                }
                last_seq[k] = Some(seq);
            }
            Event::Video(v) => {
                if st.frames[0] == 0 {
                    st.first_ts[0] = v.extended_timestamp;
                }
                st.frames[0] += 1;
                // B-frames may step back a little; a broken wrap steps back 2^32.
                let max = max_video.map_or(v.extended_timestamp, |m| m.max(v.extended_timestamp));
                if v.extended_timestamp < max - 45_000 {
                    st.video_backwards += 1;
                }
                max_video = Some(max);
                st.last_ts[0] = max;
            }
            Event::Audio(a) => {
                if st.frames[1] == 0 {
                    st.first_ts[1] = a.extended_timestamp;
                } else if a.extended_timestamp <= st.last_ts[1] {
                    st.audio_not_increasing += 1;
                }
                st.frames[1] += 1;
                st.last_ts[1] = a.extended_timestamp;
            }
            Event::Method(m) if m.method == Method::GetParameter => {
                st.keepalives_ok += usize::from(m.status == 200);
            }
            Event::Loss(_) => st.losses += 1,
            Event::Warning(w) => st.warnings.push(format!("{w:?}")),
            Event::Closed(c) => st.error = c.error,
            _ => {}
        }
    }
    st
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A server asking for credentials (user `alice`, password `wonder land`),
/// with `f` applied to its settings.
fn auth_server(runtime: ServerRuntime, f: impl FnOnce(&mut AuthConfig)) -> TestServer {
    let mut auth = AuthConfig::new(Users::from_passwords([("alice", "wonder land")]));
    f(&mut auth);
    let options = ServerOptions {
        auth: Some(auth),
        ..ServerOptions::default()
    };
    TestServer::with(runtime, &fixtures(), options)
}

/// Our client's `Authorization` answering the challenges of `r` (a 401).
fn answer(r: &Response, password: &str, method: &str, uri: &str) -> String {
    let values: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    let challenges = rtsp_toolkit_core::auth::parse_challenges(&values).expect("challenges");
    let creds = rtsp_toolkit_core::auth::Credentials {
        username: "alice".into(),
        password: password.into(),
    };
    rtsp_toolkit_core::auth::Authenticator::from_challenges(creds, &challenges)
        .expect("a challenge we answer")
        .authorization(method, uri)
}

/// Garbage, odd and huge `Authorization` values (up to the 64 KiB header
/// limit): each is a 401 with fresh challenges on a connection that goes on;
/// nothing is looked up, and right credentials still work afterwards.
fn garbage_and_huge_authorization_headers(runtime: ServerRuntime) {
    let srv = auth_server(runtime, |a| a.max_failures = 100_000);
    let uri = srv.url("/h264_aac.mp4");
    let mut c = Raw::connect(srv.addr);
    let huge_digest = format!("Digest username=\"{}\", realm=\"x\"", "a".repeat(60_000));
    let huge_basic = format!("Basic {}", "QUFB".repeat(15_000));
    let many_params: String = (0..2000).map(|i| format!("p{i}=v, ")).collect();
    let many_params = format!("Digest {many_params}");
    // Printable noise (control bytes would make the request unframeable: another case).
    let garbage: String = noise(14, 3000).iter().map(|b| char::from(b' ' + b % 95)).collect();
    let values: Vec<&str> = vec![
        "",
        "Digest",
        "Basic",
        "Basic ====",
        "Basic YWxpY2U6d29uZGVyIGxhbmQ=", // alice:wonder land, but Basic is not allowed
        "Digest username=\"alice\", realm=\"rtsp-toolkit\", nonce=\"0\", uri=\"x\", response=\"0\"",
        "Digest username=\"alice\", username=\"alice\"",
        "Digest username=\"unterminated",
        "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYBBAGCNwICCg==",
        huge_digest.as_str(),
        huge_basic.as_str(),
        many_params.as_str(),
        garbage.as_str(),
    ];
    let mut cseq = 1;
    for v in &values {
        cseq += 1;
        let r = c
            .request("DESCRIBE", &uri, cseq, &[("Authorization", v)])
            .unwrap_or_else(|| panic!("no answer to Authorization {:.40}", v));
        assert_eq!(r.status, 401, "Authorization {:.40}", v);
        assert!(r.header("WWW-Authenticate").is_some());
        assert!(r.body.is_empty());
    }
    // The same connection, right credentials: in.
    cseq += 1;
    let r = c.request("DESCRIBE", &uri, cseq, &[]).unwrap();
    let a = answer(&r, "wonder land", "DESCRIBE", &uri);
    cseq += 1;
    let r = c.request("DESCRIBE", &uri, cseq, &[("Authorization", &a)]).unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
    srv.assert_alive("garbage Authorization headers");
}

/// A connection from `ip` (one of 127.0.0.0/8).
fn connect_from(ip: [u8; 4], to: SocketAddr) -> Raw {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((ip, 0)).into())
        .expect("bind a loopback address");
    socket.connect(&to.into()).unwrap();
    Raw::from(socket.into())
}

/// Wrong passwords from one address, on one connection and on new ones:
/// after `max_failures` every request needing credentials gets 503 with
/// `Retry-After`, right password or not, OPTIONS still works, and other
/// addresses are not affected. Thousands of failures from many addresses
/// leave the server answering (its table is bounded: see the core's tests).
fn repeated_failures_are_rate_limited_per_address(runtime: ServerRuntime) {
    let srv = auth_server(runtime, |a| {
        a.max_failures = 5;
        a.max_tracked = 64;
    });
    let uri = srv.url("/h264_aac.mp4");
    let mut c = connect_from([127, 0, 0, 1], srv.addr);
    let challenge = c.request("DESCRIBE", &uri, 1, &[]).unwrap();
    assert_eq!(challenge.status, 401);
    let wrong = answer(&challenge, "guess", "DESCRIBE", &uri);
    for cseq in 2..6 {
        assert_eq!(
            c.request("DESCRIBE", &uri, cseq, &[("Authorization", &wrong)])
                .unwrap()
                .status,
            401
        );
    }
    // The fifth on a new connection: same address, same count.
    let mut c2 = connect_from([127, 0, 0, 1], srv.addr);
    assert_eq!(
        c2.request("DESCRIBE", &uri, 1, &[("Authorization", &wrong)])
            .unwrap()
            .status,
        401
    );
    let right = answer(&challenge, "wonder land", "DESCRIBE", &uri);
    let r = c.request("DESCRIBE", &uri, 7, &[("Authorization", &right)]).unwrap();
    assert_eq!(r.status, 503, "blocked, right password or not");
    let retry: u64 = r.header("Retry-After").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(c.request("OPTIONS", &uri, 8, &[]).unwrap().status, 200);
    // Another address gets in.
    let mut other = connect_from([127, 0, 0, 2], srv.addr);
    let r = other.request("DESCRIBE", &uri, 1, &[]).unwrap();
    let right = answer(&r, "wonder land", "DESCRIBE", &uri);
    assert_eq!(
        other
            .request("DESCRIBE", &uri, 2, &[("Authorization", &right)])
            .unwrap()
            .status,
        200
    );
    // 2000 failures from 200 addresses (more than the table holds), ten each
    // on one connection: answered, 401 then 503; the server stays up.
    for host in 0..200u8 {
        let mut c = connect_from([127, 0, 1, host], srv.addr);
        for cseq in 1..=10 {
            let status = c
                .request("DESCRIBE", &uri, cseq, &[("Authorization", "Digest x")])
                .unwrap()
                .status;
            assert_eq!(status, if cseq <= 5 { 401 } else { 503 }, "127.0.1.{host} #{cseq}");
        }
    }
    srv.assert_alive("rate-limited failures");
}

/// An HTTP request's raw head (tunnel GET or POST) with `headers`.
fn http_head(method: &str, headers: &[(&str, &str)]) -> String {
    let mut h = format!("{method} /h264_aac.mp4 HTTP/1.0\r\n");
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h
}

const ACCEPT_TUNNEL: (&str, &str) = ("Accept", "application/x-rtsp-tunnelled");
const TUNNEL_TYPE: (&str, &str) = ("Content-Type", "application/x-rtsp-tunnelled");

/// Sends `data` on a fresh connection: what the server answers before it
/// closes (within 5 s), and whether it closed.
fn http_exchange(addr: SocketAddr, data: &[u8]) -> (String, bool) {
    let mut c = Raw::connect(addr);
    c.send(data);
    while c.fill() {}
    (String::from_utf8_lossy(&c.buf).into_owned(), c.eof)
}

/// HTTP requests on the RTSP port that are not tunnel halves get a clear
/// status and the connection closed: a plain GET (400), a cookie over 128
/// bytes or with a space (400), a POST of another type (415), a head over
/// 8 KiB (431), a second GET half with a cookie in use (409).
fn tunnel_requests_that_are_refused(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let long = "c".repeat(129);
    let huge = "h".repeat(9 * 1024);
    let cases: [(&str, String, &str); 6] = [
        ("plain GET", http_head("GET", &[("Host", "x")]), "HTTP/1.0 400 "),
        (
            "oversized cookie",
            http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", &long)]),
            "HTTP/1.0 400 ",
        ),
        (
            "cookie with a space",
            http_head("POST", &[TUNNEL_TYPE, ("x-sessioncookie", "a b")]),
            "HTTP/1.0 400 ",
        ),
        (
            "GET without a cookie",
            http_head("GET", &[ACCEPT_TUNNEL]),
            "HTTP/1.0 400 ",
        ),
        (
            "POST of another type",
            http_head("POST", &[("Content-Type", "text/plain"), ("x-sessioncookie", "abc")]),
            "HTTP/1.0 415 ",
        ),
        ("huge head", http_head("GET", &[("X-Big", &huge)]), "HTTP/1.0 431 "),
    ];
    for (what, data, want) in &cases {
        let (answer, closed) = http_exchange(srv.addr, data.as_bytes());
        assert!(answer.starts_with(want), "{what}: {answer:?}");
        assert!(closed, "{what}: connection left open");
    }
    // A second GET half with the cookie of an open one.
    let mut first = Raw::connect(srv.addr);
    first.send(http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", "dup")]).as_bytes());
    assert!(first.fill() && first.buf.starts_with(b"HTTP/1.0 200 OK"));
    let (answer, _) = http_exchange(
        srv.addr,
        http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", "dup")]).as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.0 409 "), "duplicate GET: {answer:?}");
    drop(first);
    srv.assert_alive("refused tunnel requests");
}

/// A GET half whose POST never comes, and a POST for a cookie no GET has,
/// are closed after the pairing timeout (10 s); the POST gets no answer.
fn half_open_tunnels_are_closed(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let mut get = Raw::connect(srv.addr);
    get.send(http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", "lonely-get")]).as_bytes());
    let mut post = Raw::connect(srv.addr);
    post.send(http_head("POST", &[TUNNEL_TYPE, ("x-sessioncookie", "unknown-cookie")]).as_bytes());
    post.send(b"T1BUSU9OUyAqIFJUU1AvMS4wDQpDU2VxOiAxDQoNCg==");
    assert!(
        get.fill() && get.buf.starts_with(b"HTTP/1.0 200 OK"),
        "GET half answered"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.server.tunnels() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(srv.server.tunnels(), 2, "both halves wait");
    let opened = Instant::now();
    let mut post_answer = Vec::new();
    let (mut get_closed, mut post_closed) = (false, false);
    while !(get_closed && post_closed) && opened.elapsed() < Duration::from_secs(15) {
        get_closed = get_closed || get.closed_within(Duration::from_millis(100));
        if !post_closed {
            post_closed = post.closed_within(Duration::from_millis(1));
            post_answer.append(&mut post.buf);
        }
        post_closed = post_closed || post.eof;
    }
    assert!(get_closed && post_closed, "half-open tunnels left open");
    assert!(
        opened.elapsed() >= Duration::from_secs(8),
        "closed before the pairing timeout"
    );
    assert!(post_answer.is_empty(), "the POST half got {post_answer:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while srv.server.tunnels() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(srv.server.tunnels(), 0);
    srv.assert_alive("half-open tunnels");
}

/// A POST body that is not base64 is answered 400, and its tunnel's GET
/// half is closed.
fn garbage_base64_ends_the_tunnel(runtime: ServerRuntime) {
    let srv = TestServer::start(runtime, &fixtures());
    let mut get = Raw::connect(srv.addr);
    get.send(http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", "garbage")]).as_bytes());
    assert!(get.fill() && get.buf.starts_with(b"HTTP/1.0 200 OK"));
    let mut body = http_head("POST", &[TUNNEL_TYPE, ("x-sessioncookie", "garbage")]).into_bytes();
    body.extend_from_slice(b"T1BUSU9O\x00\xff<html>");
    let (answer, closed) = http_exchange(srv.addr, &body);
    assert!(answer.starts_with("HTTP/1.0 400 "), "{answer:?}");
    assert!(answer.contains("not base64"), "{answer:?}");
    assert!(closed);
    assert!(get.closed_within(Duration::from_secs(5)), "the GET half left open");
    srv.assert_alive("garbage base64");
}

/// 1,100 GET halves held open without a POST: the first 1,024 wait, the
/// rest get 503; then 10,000 more GET halves opened and abandoned at once.
/// The server's table never holds more than 1,024 unpaired halves, ends
/// empty, and the process's RSS is back within bounds.
fn ten_thousand_unpaired_gets_stay_bounded(runtime: ServerRuntime) {
    let _one = IDLE.lock().unwrap_or_else(|p| p.into_inner());
    let limit = open_files_limit();
    assert!(limit >= 2400, "ulimit -n {limit} is too low for this test");
    let srv = TestServer::start(runtime, &fixtures());
    let rss_before = vm_rss_kib();
    let mut held = Vec::new();
    let (mut waiting, mut refused) = (0, 0);
    for i in 0..1100 {
        let mut c = Raw::connect(srv.addr);
        c.send(http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", &format!("held-{i}"))]).as_bytes());
        assert!(c.fill(), "GET half {i} answered");
        if c.buf.starts_with(b"HTTP/1.0 200 ") {
            waiting += 1;
        } else {
            assert!(
                c.buf.starts_with(b"HTTP/1.0 503 "),
                "{:?}",
                String::from_utf8_lossy(&c.buf)
            );
            refused += 1;
        }
        held.push(c);
    }
    assert_eq!((waiting, refused), (1024, 76));
    assert_eq!(srv.server.tunnels(), 1024);
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.server.tunnels() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.server.tunnels(), 0, "closed GET halves left in the table");
    for i in 0..10_000 {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        let _ = s.write_all(http_head("GET", &[ACCEPT_TUNNEL, ("x-sessioncookie", &format!("gone-{i}"))]).as_bytes());
        drop(s);
        if i % 500 == 0 {
            assert!(srv.server.tunnels() <= 1024);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while (srv.server.tunnels() > 0 || srv.server.connections() > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.server.tunnels(), 0, "abandoned GET halves left in the table");
    let grown = vm_rss_kib().saturating_sub(rss_before);
    eprintln!("RSS grew {grown} KiB over 11,100 tunnel GET halves");
    assert!(grown < 128 * 1024, "RSS grew {grown} KiB");
    srv.assert_alive("10,000 unpaired GET halves");
}
