//! RTSPS: our client over `rtsps://` against our TLS server, on every
//! runtime (tokio, smol, blocking) and both servers, trusting a CA file, a
//! pinned fingerprint, or nothing (`insecure`); each way a handshake fails
//! says why (unknown issuer, name mismatch, expired, fingerprint mismatch);
//! a plain client at a TLS port and a TLS client at a plain port fail fast;
//! and against GStreamer's RTSPS server (`scripts/peers/gst-rtsp-server.py --tls-cert`).
//! The certificates are made here (rcgen).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rtsp_toolkit_conformance::peers::GstServer;
use rtsp_toolkit_conformance::runtimes::{self, Control, Runtime, StopWhen};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_core::Error;
use rtsp_toolkit_driver::tls::ServerTlsConfig;
use rtsp_toolkit_media::serving::ServerOptions;

/// A test PKI in a directory of its own: a CA and leaves it signed.
struct Pki {
    dir: PathBuf,
}

/// A leaf certificate's files and fingerprint.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("rtsp-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    fn ca(&self) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rtsp-toolkit test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(self.dir.join("ca.pem"), cert.pem()).unwrap();
        (cert, key)
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf for `names`, signed by `ca` (self-signed when `None`),
    /// valid from 2020 to `until_year`.
    fn leaf(&self, file: &str, names: &[&str], ca: Option<&(rcgen::Certificate, KeyPair)>, until_year: i32) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        let cert = match ca {
            Some((ca_cert, ca_key)) => params.signed_by(&key, ca_cert, ca_key).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_server(runtime: ServerRuntime, leaf: &Leaf) -> (TestServer, ServerTlsConfig) {
    let tls = ServerTlsConfig::from_pem_files(&leaf.cert, &leaf.key).unwrap();
    let options = ServerOptions {
        tls: Some(tls.clone()),
        ..ServerOptions::default()
    };
    (
        TestServer::with_options(runtime, rtsp_toolkit_conformance::media_dir(), options),
        tls,
    )
}

fn rtsps(server: &TestServer, host: &str, path: &str) -> String {
    format!("rtsps://{host}:{}/{path}", server.local_addr().port())
}

/// Frames seen, whether the session closed cleanly, and the Connect event's TLS.
fn tally(events: &[Event]) -> (usize, bool, Option<rtsp_toolkit_core::tls::TlsInfo>) {
    let frames = events
        .iter()
        .filter(|e| matches!(e, Event::Video(_) | Event::Audio(_)))
        .count();
    let clean = matches!(events.last(), Some(Event::Closed(c)) if c.error.is_none());
    let tls = events.iter().find_map(|e| match e {
        Event::Connect(c) => c.tls.clone(),
        _ => None,
    });
    (frames, clean, tls)
}

/// The session's error (the Closed event's), which must be a connection error.
fn connection_error(events: &[Event]) -> String {
    let Some(Event::Closed(c)) = events.last() else {
        panic!("no Closed event: {events:?}")
    };
    match &c.error {
        Some(Error::Connection(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
            e.to_string()
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

/// Plays until 20 frames arrived, then stops.
fn a_bit() -> Control {
    Control::within(Duration::from_secs(20)).stop_when(StopWhen::Rtp(20))
}

fn every_runtime_plays_over_tls(server_runtime: ServerRuntime) {
    let pki = Pki::new(server_runtime.name());
    let ca = pki.ca();
    let leaf = pki.leaf("server", &["localhost", "127.0.0.1"], Some(&ca), 4000);
    let (server, tls) = tls_server(server_runtime, &leaf);
    assert!(
        server.urls().iter().all(|u| u.starts_with("rtsps://")),
        "{:?}",
        server.urls()
    );
    for host in ["127.0.0.1", "localhost"] {
        let url = rtsps(&server, host, "h264_aac.mp4");
        let runs = runtimes::at_once(|runtime| {
            let opts = ClientOptions::default().with_ca_file(pki.ca_file());
            runtimes::run(runtime, &url, opts, a_bit())
        });
        for run in runs {
            let (frames, clean, info) = tally(&run.events);
            let who = format!("{} client, {} server, {url}", run.runtime.name(), server_runtime.name());
            assert!(frames > 0 && clean, "{who}: {:?}", run.events.last());
            let info = info.unwrap_or_else(|| panic!("{who}: no TLS in the Connect event"));
            assert_eq!(info.version, "TLSv1.3", "{who}");
            assert!(info.cipher_suite.starts_with("TLS13_"), "{who}: {}", info.cipher_suite);
            assert_eq!(info.peer_fingerprint.as_deref(), Some(tls.fingerprint()), "{who}");
        }
    }
    server.shutdown();
}

#[test]
fn every_runtime_plays_rtsps_from_our_tokio_server() {
    every_runtime_plays_over_tls(ServerRuntime::Tokio);
}

#[test]
fn every_runtime_plays_rtsps_from_our_smol_server() {
    every_runtime_plays_over_tls(ServerRuntime::Smol);
}

#[test]
fn the_whole_file_arrives_over_tls() {
    let pki = Pki::new("whole");
    let ca = pki.ca();
    let leaf = pki.leaf("server", &["127.0.0.1"], Some(&ca), 4000);
    let (server, _) = tls_server(ServerRuntime::Tokio, &leaf);
    let url = rtsps(&server, "127.0.0.1", "h264_aac.mp4");
    let opts = ClientOptions::default().with_ca_file(pki.ca_file());
    let run = runtimes::run(Runtime::Tokio, &url, opts, Control::within(Duration::from_secs(40)));
    let (frames, clean, _) = tally(&run.events);
    assert_eq!((frames, clean), (125 + 216, true));
    server.shutdown();
}

#[test]
fn a_self_signed_camera_is_reached_by_fingerprint_or_insecure() {
    let pki = Pki::new("self-signed");
    let leaf = pki.leaf("camera", &["camera.local"], None, 4000);
    let (server, tls) = tls_server(ServerRuntime::Tokio, &leaf);
    let url = rtsps(&server, "127.0.0.1", "h264_aac.mp4");
    let lower_no_colons = tls.fingerprint().replace(':', "").to_lowercase();
    let ways = [
        ClientOptions::default().with_tls_fingerprint(tls.fingerprint()),
        ClientOptions::default().with_tls_fingerprint(lower_no_colons),
        ClientOptions::default().with_insecure(true),
    ];
    for opts in ways {
        let runs = runtimes::at_once(|runtime| runtimes::run(runtime, &url, opts.clone(), a_bit()));
        for run in runs {
            let (frames, clean, info) = tally(&run.events);
            assert!(frames > 0 && clean, "{}: {:?}", run.runtime.name(), run.events.last());
            assert_eq!(info.unwrap().peer_fingerprint.as_deref(), Some(tls.fingerprint()));
        }
    }
    server.shutdown();
}

/// Every runtime's session of `url` with `opts` fails to connect, quickly,
/// with a connection error that says `why`.
fn fails_with(url: &str, opts: &ClientOptions, why: &str) {
    let runs = runtimes::at_once(|runtime| {
        let started = Instant::now();
        let run = runtimes::run(runtime, url, opts.clone(), Control::within(Duration::from_secs(10)));
        (run, started.elapsed())
    });
    for (run, took) in runs {
        let message = connection_error(&run.events);
        assert!(
            message.contains(why),
            "{}: {message:?} does not say {why:?}",
            run.runtime.name()
        );
        assert!(took < Duration::from_secs(3), "{}: {took:?}", run.runtime.name());
        assert!(
            run.events
                .iter()
                .any(|e| matches!(e, Event::Connect(c) if c.result.is_err() && c.tls.is_none())),
            "{}: no failed Connect event",
            run.runtime.name()
        );
        assert!(
            !run.events.iter().any(|e| matches!(e, Event::Method(_))),
            "nothing was asked"
        );
    }
}

#[test]
fn each_failed_handshake_says_why() {
    let pki = Pki::new("failures");
    let ca = pki.ca();
    let good = pki.leaf("good", &["127.0.0.1"], Some(&ca), 4000);
    let expired = pki.leaf("expired", &["127.0.0.1"], Some(&ca), 2021);
    let other_name = pki.leaf("other", &["other.example"], Some(&ca), 4000);
    let trusted = ClientOptions::default().with_ca_file(pki.ca_file());

    let (server, _) = tls_server(ServerRuntime::Tokio, &good);
    let url = rtsps(&server, "127.0.0.1", "h264_aac.mp4");
    // The system's roots do not know our CA.
    fails_with(&url, &ClientOptions::default(), "unknown issuer");
    let wrong_pin = ClientOptions::default().with_tls_fingerprint("AB".repeat(32));
    fails_with(&url, &wrong_pin, "fingerprint mismatch");
    server.shutdown();

    let (server, _) = tls_server(ServerRuntime::Tokio, &expired);
    fails_with(&rtsps(&server, "127.0.0.1", "x.mp4"), &trusted, "expired");
    server.shutdown();

    let (server, _) = tls_server(ServerRuntime::Smol, &other_name);
    fails_with(&rtsps(&server, "127.0.0.1", "x.mp4"), &trusted, "name mismatch");
    server.shutdown();
}

#[test]
fn a_plain_client_at_a_tls_port_and_a_tls_client_at_a_plain_port_fail_fast() {
    let pki = Pki::new("mixed");
    let leaf = pki.leaf("server", &["127.0.0.1"], None, 4000);
    let (tls_server, _) = tls_server(ServerRuntime::Tokio, &leaf);
    let plain_url = format!("rtsp://127.0.0.1:{}/h264_aac.mp4", tls_server.local_addr().port());
    let runs = runtimes::at_once(|runtime| {
        let started = Instant::now();
        let run = runtimes::run(
            runtime,
            &plain_url,
            ClientOptions::default(),
            Control::within(Duration::from_secs(10)),
        );
        (run, started.elapsed())
    });
    for (run, took) in runs {
        let Some(Event::Closed(c)) = run.events.last() else {
            panic!()
        };
        let e = c.error.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(e.contains("speaks TLS"), "{}: {e}", run.runtime.name());
        assert!(took < Duration::from_secs(3), "{}: {took:?}", run.runtime.name());
    }
    tls_server.shutdown();

    let plain = TestServer::start(ServerRuntime::Tokio, rtsp_toolkit_conformance::media_dir());
    let url = rtsps(&plain, "127.0.0.1", "h264_aac.mp4");
    fails_with(&url, &ClientOptions::default().with_insecure(true), "TLS");
    plain.shutdown();
}

#[test]
fn bad_tls_settings_are_config_errors() {
    let err = rtsp_toolkit_blocking::Session::open(
        "rtsps://127.0.0.1:1/x",
        ClientOptions::default().with_tls_fingerprint("12:34"),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("tls_fingerprint")),
        "{err}"
    );
    let err = rtsp_toolkit_blocking::Session::open(
        "rtsps://127.0.0.1:1/x",
        ClientOptions::default().with_ca_file(Path::new("/nonexistent/ca.pem")),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("/nonexistent/ca.pem")),
        "{err}"
    );
}

#[test]
fn every_runtime_plays_rtsps_from_gstreamer() {
    let pki = Pki::new("gst");
    let ca = pki.ca();
    let leaf = pki.leaf("server", &["127.0.0.1"], Some(&ca), 4000);
    let (cert, key) = (leaf.cert.to_str().unwrap(), leaf.key.to_str().unwrap());
    let gst = GstServer::start_with(None, &["--tls-cert", cert, "--tls-key", key]);
    let url = format!("rtsps://127.0.0.1:{}/h264_aac.mp4", gst.port);
    let expected = ServerTlsConfig::from_pem_files(&leaf.cert, &leaf.key).unwrap();
    let runs = runtimes::at_once(|runtime| {
        let opts = ClientOptions::default().with_ca_file(pki.ca_file());
        runtimes::run(runtime, &url, opts, a_bit())
    });
    for run in runs {
        let (frames, clean, info) = tally(&run.events);
        assert!(frames > 0 && clean, "{}: {:?}", run.runtime.name(), run.events.last());
        let info = info.unwrap_or_else(|| panic!("{}: no TLS in the Connect event", run.runtime.name()));
        assert_eq!(info.peer_fingerprint.as_deref(), Some(expected.fingerprint()));
    }
}
