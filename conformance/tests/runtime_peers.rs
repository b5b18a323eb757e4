//! Every runtime's client (tokio, smol, blocking) against real servers on
//! loopback: GStreamer's rtsp-server (plain, Basic and Digest auth), a
//! closed port and a silent server. The three runtimes of a case run at once,
//! against the same server.
//!
//! What only one runtime has (dropping a session, stopping it from another
//! thread, host name resolution, ...) is in that runtime's `tests/peers.rs`.

use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::events::{closed_error, methods, rtp_per_track};
use rtsp_toolkit_conformance::peers::{free_port, GstServer};
use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime, StopWhen};
use rtsp_toolkit_core::client::{ClientOptions, Event};
use rtsp_toolkit_core::Error;

/// Bound on one session in these tests.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `url` on `runtime`, stopping it once `stop_after_rtp` RTP packets arrived.
fn collect(runtime: Runtime, url: &str, opts: ClientOptions, stop_after_rtp: usize) -> Run {
    let control = Control::within(LIMIT).stop_when(StopWhen::Rtp(stop_after_rtp));
    runtimes::run(runtime, url, opts, control)
}

/// On every runtime at once: `name` with the right credentials (stopped
/// after 50 RTP packets), then with a wrong password (stopped after 1).
fn good_then_wrong(server: &GstServer, good: &str, wrong: &str, name: &str) -> Vec<(Run, Run)> {
    runtimes::at_once(|runtime| {
        let run = |userinfo, stop_after_rtp| {
            collect(
                runtime,
                &server.url_with(userinfo, name),
                ClientOptions::default(),
                stop_after_rtp,
            )
        };
        (run(good, 50), run(wrong, 1))
    })
}

#[test]
fn h264_and_aac_from_gstreamer_then_stop_mid_stream() {
    let server = GstServer::start(None);
    let opts = ClientOptions::default();
    let timeout = opts.timeout;
    let runs = runtimes::at_once(|runtime| collect(runtime, &server.url("h264_aac.mp4"), opts.clone(), 200));
    for run in runs {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(
            methods(events),
            [
                ("OPTIONS", 200),
                ("DESCRIBE", 200),
                ("SETUP", 200),
                ("SETUP", 200),
                ("PLAY", 200),
                ("TEARDOWN", 200)
            ]
            .map(|(m, s)| (m.to_string(), s)),
            "{rt}"
        );
        assert_eq!(closed_error(events), None, "{rt}");
        let [video, audio] = rtp_per_track(events);
        assert!(video > 0 && audio > 0, "{rt}: video {video} audio {audio}");
        let took = run.stop_to_closed.expect("stopped and closed");
        assert!(took < timeout, "{rt}: Closed {took:?} after the stop");
        let describe = events
            .iter()
            .find_map(|e| match e {
                Event::Method(m) if m.method.as_str() == "DESCRIBE" => Some(m),
                _ => None,
            })
            .unwrap();
        let sdp = describe.sdp.as_ref().unwrap();
        assert!(sdp.media[0].codec_is("H264"), "{rt}");
        assert!(sdp.media[1].codec_is("MPEG4-GENERIC"), "{rt}");
        // Timings are monotonic and consistent.
        let mut last = Duration::ZERO;
        for e in events {
            if let Event::Method(m) = e {
                assert!(m.session_elapsed >= last && m.elapsed <= m.session_elapsed, "{rt}");
                last = m.session_elapsed;
            }
        }
        // The video track carries H.264 payloads with the SDP's payload type.
        let pt = events.iter().find_map(|e| match e {
            Event::Rtp(r) if r.track == 0 => Some(r.packet.payload_type),
            _ => None,
        });
        assert_eq!(pt, Some(96), "{rt}");
    }
}

#[test]
fn basic_auth_and_a_wrong_password() {
    let server = GstServer::start(Some(("alice", "s3cret", "basic")));
    for (good, wrong) in good_then_wrong(&server, "alice:s3cret", "alice:wrong", "h264_aac.mp4") {
        let rt = good.runtime.name();
        let m = methods(&good.events);
        assert_eq!(m[1], ("DESCRIBE".into(), 401), "{rt}");
        assert_eq!(m[2], ("DESCRIBE".into(), 200), "{rt}");
        assert_eq!(m.last().unwrap(), &("TEARDOWN".into(), 200), "{rt}");
        assert_eq!(closed_error(&good.events), None, "{rt}");
        assert!(rtp_per_track(&good.events)[0] > 0, "{rt}");

        let events = &wrong.events;
        assert!(
            matches!(closed_error(events), Some(Error::Response { status: 401, .. })),
            "{rt}: expected a 401 Response error, got {:?}",
            events.last()
        );
        assert_eq!(
            methods(events).iter().filter(|(_, s)| *s == 401).count(),
            2,
            "{rt}: one retry, no loop"
        );
        let msg = closed_error(events).unwrap().to_string();
        assert!(!msg.contains("wrong"), "{rt}: password in error message: {msg}");
    }
}

#[test]
fn digest_auth_with_reserved_characters_and_a_wrong_password() {
    let server = GstServer::start(Some(("bob", "p:a@ss", "digest")));
    for (good, wrong) in good_then_wrong(&server, "bob:p%3Aa%40ss", "bob:nope", "h265_aac.mkv") {
        let rt = good.runtime.name();
        let m = methods(&good.events);
        assert!(
            m.contains(&("DESCRIBE".into(), 401)) && m.contains(&("PLAY".into(), 200)),
            "{rt}: {m:?}"
        );
        assert_eq!(closed_error(&good.events), None, "{rt}");
        assert!(rtp_per_track(&good.events)[0] > 0, "{rt}");
        assert!(
            matches!(closed_error(&wrong.events), Some(Error::Response { status: 401, .. })),
            "{rt}: {:?}",
            wrong.events.last()
        );
    }
}

#[test]
fn closed_port_is_a_connection_error() {
    let url = format!("rtsp://127.0.0.1:{}/x", free_port());
    for run in runtimes::at_once(|runtime| collect(runtime, &url, ClientOptions::default(), 1)) {
        let (rt, events) = (run.runtime.name(), &run.events);
        assert_eq!(events.len(), 2, "{rt}: {events:?}");
        assert!(matches!(&events[0], Event::Connect(c) if c.result.is_err()), "{rt}");
        assert!(
            matches!(closed_error(events), Some(Error::Connection(_))),
            "{rt}: {events:?}"
        );
        // "Refused" is told apart without reading the message: the error's
        // kind, and the io::Error as its source.
        let Some(Error::Connection(c)) = closed_error(events) else {
            unreachable!()
        };
        assert_eq!(c.kind(), std::io::ErrorKind::ConnectionRefused, "{rt}: {c:?}");
        let error = closed_error(events).unwrap();
        let source = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused),
            "{rt}"
        );
        let Event::Connect(connect) = &events[0] else {
            unreachable!()
        };
        assert_eq!(connect.result.as_ref().err(), Some(&error), "{rt}");
    }
}

#[test]
fn silent_server_is_a_timeout() {
    let timeout = Duration::from_millis(300);
    // Nobody ever answers: the listener's backlog takes the connection...
    let backlog = TcpListener::bind("127.0.0.1:0").unwrap();
    // ... or a server accepts it and holds it (for 10 s at most).
    let holding = TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = [&backlog, &holding].map(|l| format!("rtsp://127.0.0.1:{}/x", l.local_addr().unwrap().port()));
    let (release, released) = mpsc::channel::<()>();
    thread::spawn(move || {
        let held: Vec<_> = holding.incoming().take(Runtime::ALL.len()).collect();
        let _ = released.recv_timeout(Duration::from_secs(10));
        drop(held);
    });
    let opts = ClientOptions::default().with_timeout(timeout);
    let runs = runtimes::at_once(|runtime| {
        urls.each_ref().map(|url| {
            let started = Instant::now();
            let run = collect(runtime, url, opts.clone(), 1);
            (run, started.elapsed())
        })
    });
    for (run, took) in runs.into_iter().flatten() {
        let rt = run.runtime.name();
        match closed_error(&run.events) {
            Some(Error::Timeout {
                waiting_for,
                timeout: t,
            }) => {
                assert_eq!(waiting_for, "response to OPTIONS", "{rt}");
                assert_eq!(t, timeout, "{rt}");
            }
            other => panic!("{rt}: expected Timeout, got {other:?}"),
        }
        match run.events.last() {
            Some(Event::Closed(c)) => assert!(c.session_elapsed >= timeout, "{rt}: {c:?}"),
            _ => unreachable!(),
        }
        assert!(
            took < Duration::from_secs(5),
            "{rt}: {took:?}, did not wait for the server to give up"
        );
    }
    drop(release);
    drop(backlog);
}
