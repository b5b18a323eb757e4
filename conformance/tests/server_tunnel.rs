//! RTSP over HTTP tunnels into our file server, on tokio and on smol:
//! FFmpeg (`ffprobe -rtsp_transport http`) and GStreamer (`rtsph://`)
//! count every frame through a tunnel on the RTSP port, and a raw client
//! checks the pairing rules (base64 split anywhere, a POST per request, the
//! POST before the GET), and over TLS FFmpeg (`-rtsp_transport https`) and
//! GStreamer (`rtspsh://`) tunnel through HTTPS. The hostile cases are in
//! `hostile_client.rs`; our own client through tunnels is `client_tunnel.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::hostile::base64;
use rtsp_toolkit_conformance::peers::{ffprobe_count_frames, gst_fakesink_frames, parse_ffprobe_counts};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::server::auth::{AuthConfig, Users};
use rtsp_toolkit_media::serving::ServerOptions;

rtsp_toolkit_conformance::on_every_server!(
    #[test]
    ffprobe_through_a_tunnel_counts_every_frame,
    gstreamer_rtsph_receives_every_frame,
    ffprobe_and_gstreamer_through_a_tunnel_over_tls,
    base64_split_anywhere_and_a_post_per_request,
    the_post_half_may_come_first,
    credentials_work_inside_a_tunnel,
);

fn start(runtime: ServerRuntime) -> TestServer {
    TestServer::start(runtime, rtsp_toolkit_conformance::media_dir())
}

/// Runs `cmd` for at most `limit` (killed past it); its stdout.
fn run_bounded(mut cmd: Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("command runs");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// Waits (bounded) until the server holds no tunnel.
fn assert_tunnels_drain(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.tunnels() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.tunnels(), 0, "tunnels left in the server's table");
}

fn ffprobe_through_a_tunnel_counts_every_frame(runtime: ServerRuntime) {
    let server = start(runtime);
    let out = run_bounded(
        ffprobe_count_frames(&server.url("h264_aac.mp4"), "http", &[]),
        Duration::from_secs(40),
    );
    assert_eq!(
        parse_ffprobe_counts(&out),
        vec![("h264".to_owned(), 125), ("aac".to_owned(), 216)]
    );
    assert_tunnels_drain(&server);
}

fn gstreamer_rtsph_receives_every_frame(runtime: ServerRuntime) {
    let server = start(runtime);
    let mut c = Command::new("gst-launch-1.0");
    let pipeline = format!(
        "rtspsrc location=rtsph://{}/h264_aac.mp4 name=s s. ! rtph264depay ! h264parse ! fakesink silent=false",
        server.local_addr()
    );
    c.arg("-v").args(pipeline.split(' '));
    let out = run_bounded(c, Duration::from_secs(40));
    assert_eq!(gst_fakesink_frames(&out), 125);
    assert!(out.contains("Got EOS"), "no EOS through the tunnel");
    assert_tunnels_drain(&server);
}

/// Over TLS (an `rtsps://` server): FFmpeg's `-rtsp_transport https` and
/// GStreamer's `rtspsh://` tunnel through HTTPS to the TLS port, every frame.
fn ffprobe_and_gstreamer_through_a_tunnel_over_tls(runtime: ServerRuntime) {
    let dir = std::env::temp_dir().join(format!("rtsp-tunnel-tls-{}-{}", runtime.name(), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let tls = rtsp_toolkit_driver::tls::ServerTlsConfig::from_pem_files(&pem, &key_pem).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let options = ServerOptions {
        tls: Some(tls),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options);
    let url = format!("rtsps://{}/h264_aac.mp4", server.local_addr());
    let out = run_bounded(
        ffprobe_count_frames(&url, "https", &["-tls_verify", "0"]),
        Duration::from_secs(40),
    );
    assert_eq!(
        parse_ffprobe_counts(&out),
        vec![("h264".to_owned(), 125), ("aac".to_owned(), 216)]
    );
    let mut c = Command::new("gst-launch-1.0");
    let pipeline = format!(
        "rtspsrc location=rtspsh://{}/h264_aac.mp4 tls-validation-flags=0 name=s s. ! rtph264depay ! h264parse ! fakesink silent=false",
        server.local_addr()
    );
    c.arg("-v").args(pipeline.split(' '));
    let out = run_bounded(c, Duration::from_secs(40));
    assert_eq!(gst_fakesink_frames(&out), 125);
    assert_tunnels_drain(&server);
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A tunnel's GET half, as a raw client reads it.
struct GetHalf {
    s: TcpStream,
    buf: Vec<u8>,
    frames: usize,
}

impl GetHalf {
    /// Opens the GET half with `cookie` and reads the server's HTTP answer.
    fn open(addr: SocketAddr, cookie: &str) -> GetHalf {
        let mut s = connect(addr);
        let head = format!(
            "GET /h264_aac.mp4 HTTP/1.0\r\nx-sessioncookie: {cookie}\r\nAccept: application/x-rtsp-tunnelled\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut g = GetHalf {
            s,
            buf: Vec::new(),
            frames: 0,
        };
        let end = loop {
            if let Some(end) = g.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(g.fill(), "no HTTP answer to the GET half");
        };
        let answer = String::from_utf8_lossy(&g.buf[..end]).into_owned();
        assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("Content-Type: application/x-rtsp-tunnelled"),
            "{answer}"
        );
        assert!(answer.contains("Cache-Control: no-store"), "{answer}");
        g.buf.drain(..end + 4);
        g
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => false,
        }
    }

    /// The next RTSP response (status, head, body), interleaved frames skipped.
    fn response(&mut self) -> (u16, String, String) {
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
                let len: usize = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                    .map_or(0, |(_, v)| v.trim().parse().unwrap());
                if self.buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                    self.buf.drain(..end + 4 + len);
                    assert!(head.starts_with("RTSP/1.0 "), "{head}");
                    return (head[9..12].parse().unwrap(), head, body);
                }
            }
            assert!(self.fill(), "the GET half ended before a response");
        }
    }

    /// Whether interleaved frames arrive within `within`.
    fn frames_arrive(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.frames < 10 && Instant::now() < deadline {
            if self.buf.first() == Some(&b'$') && self.buf.len() >= 4 {
                let n = 4 + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                if self.buf.len() >= n {
                    self.buf.drain(..n);
                    self.frames += 1;
                    continue;
                }
            }
            self.fill();
        }
        self.frames >= 10
    }
}

/// Opens a POST half with `cookie` (a dummy Content-Length, as clients send).
fn post_half(addr: SocketAddr, cookie: &str) -> TcpStream {
    let mut s = connect(addr);
    let head = format!(
        "POST /h264_aac.mp4 HTTP/1.0\r\nx-sessioncookie: {cookie}\r\nContent-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\nExpires: Sun, 9 Jan 1972 00:00:00 GMT\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Writes `data` in pieces of 1, 2, 3, 5, 7, 11, 13 bytes (then again),
/// each its own segment.
fn write_oddly(s: &mut TcpStream, data: &[u8]) {
    let sizes = [1usize, 2, 3, 5, 7, 11, 13];
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        s.write_all(&data[at..end]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
        at = end;
    }
}

fn request(method: &str, url: &str, cseq: u32, extra: &str) -> String {
    format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n")
}

/// The control URL of the first track in `sdp`, under `base`.
fn first_track(base: &str, sdp: &str) -> String {
    let control = sdp
        .lines()
        .skip_while(|l| !l.starts_with("m="))
        .find_map(|l| l.strip_prefix("a=control:"))
        .expect("a track control")
        .trim();
    if control.starts_with("rtsp://") {
        control.to_owned()
    } else {
        format!("{}/{control}", base.trim_end_matches('/'))
    }
}

/// OPTIONS and DESCRIBE in one POST, base64 with CRLFs between the
/// requests' encodings, written in odd pieces (quads and requests split);
/// then SETUP and PLAY each in a POST of its own (the first one closed):
/// every answer on the GET half, then media.
fn base64_split_anywhere_and_a_post_per_request(runtime: ServerRuntime) {
    let server = start(runtime);
    let addr = server.local_addr();
    let url = server.url("h264_aac.mp4");
    let mut get = GetHalf::open(addr, "Odd+Split/Cookie=1");
    let mut post = post_half(addr, "Odd+Split/Cookie=1");
    let body = format!(
        "{}\r\n{}",
        base64(request("OPTIONS", &url, 1, "").as_bytes()),
        base64(request("DESCRIBE", &url, 2, "Accept: application/sdp\r\n").as_bytes())
    );
    write_oddly(&mut post, body.as_bytes());
    let (status, head, _) = get.response();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("CSeq: 1"), "{head}");
    let (status, head, sdp) = get.response();
    assert_eq!(status, 200, "{head}");
    assert!(sdp.contains("m=video"), "{sdp}");
    drop(post);

    let track = first_track(&url, &sdp);
    let mut post = post_half(addr, "Odd+Split/Cookie=1");
    let setup = request("SETUP", &track, 3, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n");
    write_oddly(&mut post, base64(setup.as_bytes()).as_bytes());
    let (status, head, _) = get.response();
    assert_eq!(status, 200, "{head}");
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .expect("a session")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    drop(post);
    let mut post = post_half(addr, "Odd+Split/Cookie=1");
    let play = request("PLAY", &url, 4, &format!("Session: {session}\r\n"));
    post.write_all(base64(play.as_bytes()).as_bytes()).unwrap();
    let (status, head, _) = get.response();
    assert_eq!(status, 200, "{head}");
    assert!(get.frames_arrive(Duration::from_secs(5)), "media down the GET half");
    assert_eq!(server.tunnels(), 1);
    drop((get, post));
    assert_tunnels_drain(&server);
}

/// The POST half first (its requests wait for the GET half), then the GET
/// half gets the answers.
fn the_post_half_may_come_first(runtime: ServerRuntime) {
    let server = start(runtime);
    let addr = server.local_addr();
    let url = server.url("h264_aac.mp4");
    let mut post = post_half(addr, "post-first");
    post.write_all(base64(request("OPTIONS", &url, 7, "").as_bytes()).as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.tunnels() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.tunnels(), 1, "the POST half waits in the table");
    let mut get = GetHalf::open(addr, "post-first");
    let (status, head, _) = get.response();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("CSeq: 7"), "{head}");
    drop((get, post));
    assert_tunnels_drain(&server);
}

/// A server with `--users`: ffprobe's Digest answers go through the tunnel
/// like any request (every frame with the right password, none with a
/// wrong one).
fn credentials_work_inside_a_tunnel(runtime: ServerRuntime) {
    let users = Users::parse("bob:builder\n").expect("a user file");
    let options = ServerOptions {
        auth: Some(AuthConfig::new(users)),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options);
    let url = |userinfo: &str| format!("rtsp://{userinfo}@{}/h264_aac.mp4", server.local_addr());
    let out = run_bounded(
        ffprobe_count_frames(&url("bob:builder"), "http", &[]),
        Duration::from_secs(40),
    );
    assert_eq!(
        parse_ffprobe_counts(&out),
        vec![("h264".to_owned(), 125), ("aac".to_owned(), 216)]
    );
    let out = run_bounded(
        ffprobe_count_frames(&url("bob:wrong"), "http", &[]),
        Duration::from_secs(40),
    );
    assert!(parse_ffprobe_counts(&out).iter().all(|(_, n)| *n == 0), "{out}");
    assert_tunnels_drain(&server);
}
