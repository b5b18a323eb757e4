//! Our client through RTSP-over-HTTP tunnels ([`Tunnel::Http`]), on every
//! runtime (tokio, smol, blocking): into our server (tokio and smol), over
//! TLS too, and into GStreamer's RTSP server (which accepts tunnels on its
//! RTSP port, plain and TLS). Every frame of the file arrives; the
//! `Connect` event names the tunnel; the server is left with no tunnel; a
//! server that refuses or does not speak HTTP gives a connection error that
//! says so.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use rtsp_toolkit_conformance::peers::GstServer;
use rtsp_toolkit_conformance::runtimes::{self, Control, Runtime, StopWhen};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport, Tunnel};
use rtsp_toolkit_core::Error;
use rtsp_toolkit_driver::tls::ServerTlsConfig;
use rtsp_toolkit_media::serving::ServerOptions;

fn tunnelled() -> ClientOptions {
    ClientOptions::default().with_tunnel(Tunnel::Http)
}

/// Plays until 20 RTP packets arrived, then stops.
fn a_bit() -> Control {
    Control::within(Duration::from_secs(20)).stop_when(StopWhen::Rtp(20))
}

/// Frames seen, whether the session closed cleanly, and the Connect event's
/// tunnel (its `Server`) and whether it was over TLS.
fn tally(events: &[Event]) -> (usize, bool, Option<Option<String>>, bool) {
    let frames = events
        .iter()
        .filter(|e| matches!(e, Event::Video(_) | Event::Audio(_)))
        .count();
    let clean = matches!(events.last(), Some(Event::Closed(c)) if c.error.is_none());
    let (tunnel, tls) = events
        .iter()
        .find_map(|e| match e {
            Event::Connect(c) => Some((c.tunnel.as_ref().map(|t| t.server.clone()), c.tls.is_some())),
            _ => None,
        })
        .unwrap_or((None, false));
    (frames, clean, tunnel, tls)
}

fn every_runtime_plays_through_a_tunnel(server_runtime: ServerRuntime) {
    let server = TestServer::start(server_runtime, rtsp_toolkit_conformance::media_dir());
    let url = server.url("h264_aac.mp4");
    let runs = runtimes::at_once(|runtime| runtimes::run(runtime, &url, tunnelled(), a_bit()));
    for run in runs {
        let who = format!("{} client, {} server", run.runtime.name(), server_runtime.name());
        let (frames, clean, tunnel, _) = tally(&run.events);
        assert!(frames > 0 && clean, "{who}: {:?}", run.events.last());
        assert_eq!(tunnel, Some(Some("rtsp-toolkit".to_owned())), "{who}");
    }
    assert_tunnels_drain(&server);
    server.shutdown();
}

#[test]
fn every_runtime_plays_through_a_tunnel_to_our_tokio_server() {
    every_runtime_plays_through_a_tunnel(ServerRuntime::Tokio);
}

#[test]
fn every_runtime_plays_through_a_tunnel_to_our_smol_server() {
    every_runtime_plays_through_a_tunnel(ServerRuntime::Smol);
}

/// Waits (bounded) until the server holds no tunnel.
fn assert_tunnels_drain(server: &TestServer) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.tunnels() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.tunnels(), 0, "tunnels left in the server's table");
}

#[test]
fn the_whole_file_arrives_through_a_tunnel_on_every_runtime() {
    let server = TestServer::start(ServerRuntime::Tokio, rtsp_toolkit_conformance::media_dir());
    let url = server.url("h264_aac.mp4");
    let runs = runtimes::at_once(|runtime| {
        runtimes::run(runtime, &url, tunnelled(), Control::within(Duration::from_secs(40)))
    });
    for run in runs {
        let (frames, clean, _, _) = tally(&run.events);
        assert_eq!((frames, clean), (125 + 216, true), "{}", run.runtime.name());
    }
    server.shutdown();
}

/// A self-signed certificate for 127.0.0.1 in a directory of its own.
struct Cert {
    dir: std::path::PathBuf,
}

impl Cert {
    fn new(name: &str) -> Cert {
        let dir = std::env::temp_dir().join(format!("rtsp-tunnel-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Cert { dir }
    }

    fn files(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        (self.dir.join("cert.pem"), self.dir.join("key.pem"))
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_runtime_plays_through_a_tunnel_over_tls() {
    let cert = Cert::new("ours");
    let (pem, key) = cert.files();
    let tls = ServerTlsConfig::from_pem_files(&pem, &key).unwrap();
    let options = ServerOptions {
        tls: Some(tls.clone()),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(ServerRuntime::Tokio, rtsp_toolkit_conformance::media_dir(), options);
    let url = format!("rtsps://127.0.0.1:{}/h264_aac.mp4", server.local_addr().port());
    let runs = runtimes::at_once(|runtime| {
        // Both halves check the pinned certificate.
        let opts = tunnelled().with_tls_fingerprint(tls.fingerprint());
        runtimes::run(runtime, &url, opts, a_bit())
    });
    for run in runs {
        let (frames, clean, tunnel, over_tls) = tally(&run.events);
        let who = run.runtime.name();
        assert!(frames > 0 && clean, "{who}: {:?}", run.events.last());
        assert!(tunnel.is_some() && over_tls, "{who}: tunnel {tunnel:?}, TLS {over_tls}");
    }
    assert_tunnels_drain(&server);
    server.shutdown();
}

#[test]
fn every_runtime_plays_through_gstreamers_tunnel() {
    let gst = GstServer::start(None);
    let url = gst.url("h264_aac.mp4");
    let runs = runtimes::at_once(|runtime| runtimes::run(runtime, &url, tunnelled(), a_bit()));
    for run in runs {
        let (frames, clean, tunnel, _) = tally(&run.events);
        let who = run.runtime.name();
        assert!(frames > 0 && clean, "{who}: {:?}", run.events.last());
        assert!(tunnel.is_some(), "{who}: no tunnel in the Connect event");
    }
}

#[test]
fn every_runtime_plays_through_gstreamers_tunnel_over_tls() {
    let cert = Cert::new("gst");
    let (pem, key) = cert.files();
    let gst = GstServer::start_with(
        None,
        &["--tls-cert", pem.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let url = format!("rtsps://127.0.0.1:{}/h264_aac.mp4", gst.port);
    let runs = runtimes::at_once(|runtime| runtimes::run(runtime, &url, tunnelled().with_insecure(true), a_bit()));
    for run in runs {
        let (frames, clean, tunnel, over_tls) = tally(&run.events);
        let who = run.runtime.name();
        assert!(frames > 0 && clean, "{who}: {:?}", run.events.last());
        assert!(tunnel.is_some() && over_tls, "{who}");
    }
}

/// The Closed event's connection error.
fn connection_error(events: &[Event]) -> String {
    match events.last() {
        Some(Event::Closed(c)) => match &c.error {
            Some(e @ Error::Connection(_)) => e.to_string(),
            other => panic!("expected a connection error, got {other:?}"),
        },
        other => panic!("no Closed event: {other:?}"),
    }
}

/// A one-connection-at-a-time server that reads a request head and answers
/// `answer` (then closes), for `count` connections.
fn fake_server(answer: &'static [u8], count: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = listener.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
                match s.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            assert!(head.starts_with(b"GET "), "{}", String::from_utf8_lossy(&head));
            let _ = s.write_all(answer);
        }
    });
    (port, handle)
}

#[test]
fn a_refused_or_foreign_answer_to_the_get_says_what_it_was() {
    let cases: [(&'static [u8], &str); 3] = [
        (b"HTTP/1.0 404 Not Found\r\n\r\n", "HTTP tunnel refused: 404 Not Found"),
        (
            b"RTSP/1.0 400 Bad Request\r\nCSeq: 0\r\n\r\n",
            "the answer to the GET is not HTTP",
        ),
        (b"", "closed the connection instead of answering the GET"),
    ];
    for (answer, why) in cases {
        let (port, server) = fake_server(answer, Runtime::ALL.len());
        let url = format!("rtsp://127.0.0.1:{port}/x");
        let runs = runtimes::at_once(|runtime| {
            runtimes::run(runtime, &url, tunnelled(), Control::within(Duration::from_secs(20)))
        });
        for run in runs {
            let e = connection_error(&run.events);
            assert!(e.contains(why), "{}: {e}", run.runtime.name());
            assert!(
                matches!(run.events.first(), Some(Event::Connect(c)) if c.result.is_err()),
                "{}: the Connect event reports it",
                run.runtime.name()
            );
        }
        server.join().unwrap();
    }
}

#[test]
fn a_tunnel_needs_interleaved_rtp() {
    let opts = tunnelled().with_transport(Transport::Udp);
    let err = rtsp_toolkit_core::Client::new("rtsp://127.0.0.1/x", opts, std::time::Instant::now()).unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("transport must be tcp")),
        "{err}"
    );
}
