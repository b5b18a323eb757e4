//! The smol client against real servers on loopback: GStreamer's
//! rtsp-server (plain, Basic and Digest auth), a closed port, a silent
//! server, and a scripted server that checks what a dropped session sends.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use rtsp_toolkit_conformance::events::{closed_error, methods, rtp_per_track};
use rtsp_toolkit_conformance::peers::{free_port, GstServer};
use rtsp_toolkit_conformance::script::{Script, ScriptedServer};
use rtsp_toolkit_core::capture::Capture;
use rtsp_toolkit_smol::{ClientOptions, Error, Event, Session, StopSignal};

/// What a run saw: the events, and how long Closed took after the stop.
struct Run {
    events: Vec<Event>,
    stop_to_closed: Option<Duration>,
}

/// Runs a session to its end, stopping it once `stop_after_rtp` RTP packets
/// arrived. Bounded by 30 s.
fn collect(url: &str, opts: ClientOptions, stop_after_rtp: usize) -> Run {
    smol::block_on(async {
        let mut session = Session::open(url, opts).expect("open");
        let mut events = Vec::new();
        let mut stopped_at = None;
        let mut closed_at = None;
        let mut rtp = 0;
        let all = async {
            while let Some(e) = session.next().await {
                if matches!(e, Event::Rtp(_)) {
                    rtp += 1;
                    if rtp == stop_after_rtp {
                        stopped_at = Some(Instant::now());
                        session.stop();
                    }
                }
                if matches!(e, Event::Closed(_)) {
                    closed_at = Some(Instant::now());
                }
                events.push(e);
            }
            true
        };
        let limit = async {
            smol::Timer::after(Duration::from_secs(30)).await;
            false
        };
        assert!(futures_lite::future::or(all, limit).await, "session ended within 30 s");
        let stop_to_closed = stopped_at.zip(closed_at).map(|(s, c)| c - s);
        Run { events, stop_to_closed }
    })
}

#[test]
fn h264_and_aac_from_gstreamer_then_stop_mid_stream() {
    let server = GstServer::start(None);
    let opts = ClientOptions::default();
    let timeout = opts.timeout;
    let run = collect(&server.url("h264_aac.mp4"), opts, 100);
    assert_eq!(
        methods(&run.events),
        [
            ("OPTIONS", 200),
            ("DESCRIBE", 200),
            ("SETUP", 200),
            ("SETUP", 200),
            ("PLAY", 200),
            ("TEARDOWN", 200)
        ]
        .map(|(m, s)| (m.to_string(), s))
    );
    assert_eq!(closed_error(&run.events), None);
    let [video, audio] = rtp_per_track(&run.events);
    assert!(video > 0 && audio > 0, "video {video} audio {audio}");
    let took = run.stop_to_closed.expect("stopped and closed");
    assert!(took < timeout, "Closed {took:?} after the stop");
}

#[test]
fn basic_auth_and_a_wrong_password() {
    let server = GstServer::start(Some(("alice", "s3cret", "basic")));
    let run = collect(
        &server.url_with("alice:s3cret", "h264_aac.mp4"),
        ClientOptions::default(),
        20,
    );
    let m = methods(&run.events);
    assert_eq!(m[1], ("DESCRIBE".into(), 401));
    assert_eq!(m[2], ("DESCRIBE".into(), 200));
    assert_eq!(m.last().unwrap(), &("TEARDOWN".into(), 200));
    assert_eq!(closed_error(&run.events), None);
    assert!(rtp_per_track(&run.events)[0] > 0);

    let run = collect(
        &server.url_with("alice:wrong", "h264_aac.mp4"),
        ClientOptions::default(),
        1,
    );
    assert!(
        matches!(closed_error(&run.events), Some(Error::Response { status: 401, .. })),
        "{:?}",
        run.events.last()
    );
}

#[test]
fn digest_auth_and_a_wrong_password() {
    let server = GstServer::start(Some(("bob", "p:a@ss", "digest")));
    let run = collect(
        &server.url_with("bob:p%3Aa%40ss", "h265_aac.mkv"),
        ClientOptions::default(),
        20,
    );
    let m = methods(&run.events);
    assert!(
        m.contains(&("DESCRIBE".into(), 401)) && m.contains(&("PLAY".into(), 200)),
        "{m:?}"
    );
    assert_eq!(closed_error(&run.events), None);
    assert!(rtp_per_track(&run.events)[0] > 0);
    let run = collect(
        &server.url_with("bob:nope", "h265_aac.mkv"),
        ClientOptions::default(),
        1,
    );
    assert!(matches!(
        closed_error(&run.events),
        Some(Error::Response { status: 401, .. })
    ));
}

#[test]
fn closed_port_is_a_connection_error() {
    let port = free_port();
    let run = collect(&format!("rtsp://127.0.0.1:{port}/x"), ClientOptions::default(), 1);
    assert_eq!(run.events.len(), 2, "{:?}", run.events);
    assert!(matches!(&run.events[0], Event::Connect(c) if c.result.is_err()));
    assert!(matches!(closed_error(&run.events), Some(Error::Connection(_))));
}

#[test]
fn silent_server_is_a_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = ClientOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let started = Instant::now();
    // The listener's backlog takes the connection; nobody ever answers.
    let run = collect(&format!("rtsp://127.0.0.1:{port}/x"), opts, 1);
    match closed_error(&run.events) {
        Some(Error::Timeout { waiting_for, .. }) => assert_eq!(waiting_for, "response to OPTIONS"),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[test]
fn dropping_a_playing_session_sends_teardown() {
    let bytes = std::fs::read(rtsp_toolkit_conformance::captures_dir().join("h264_aac.rtspcap")).unwrap();
    let capture = Capture::parse(&bytes).unwrap();
    let server = ScriptedServer::start(Script::from_capture(&capture).unwrap());
    let stop = StopSignal::new();
    let opts = ClientOptions {
        forward_address: Some(server.address()),
        ..Default::default()
    };
    let started = Instant::now();
    smol::block_on(async {
        let mut session = Session::open_with_stop(&capture.header.url, opts, stop.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(e) = session.next().await {
            if matches!(&e, Event::Method(m) if m.method.as_str() == "PLAY") || Instant::now() > deadline {
                break;
            }
        }
        drop(session);
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        !stop.is_stopped(),
        "drop ends this session only, not others sharing its signal"
    );
    let requests = server.finish();
    assert!(
        requests.last().is_some_and(|r| r.starts_with("TEARDOWN ")),
        "{requests:?}"
    );
}

#[test]
fn stop_from_another_thread_and_close() {
    let bytes = std::fs::read(rtsp_toolkit_conformance::captures_dir().join("h265.rtspcap")).unwrap();
    let capture = Capture::parse(&bytes).unwrap();
    let server = ScriptedServer::start(Script::from_capture(&capture).unwrap());
    let opts = ClientOptions {
        forward_address: Some(server.address()),
        ..Default::default()
    };
    let last = smol::block_on(async {
        let mut session = Session::open(&capture.header.url, opts).unwrap();
        while let Some(e) = session.next().await {
            if matches!(&e, Event::Method(m) if m.method.as_str() == "PLAY") {
                break;
            }
        }
        let stop = session.stop_handle();
        std::thread::spawn(move || stop.stop()).join().unwrap();
        session.close().await
    });
    assert!(
        matches!(last.last(), Some(Event::Closed(c)) if c.error.is_none()),
        "{last:?}"
    );
    assert!(last
        .iter()
        .any(|e| matches!(e, Event::Method(m) if m.method.as_str() == "TEARDOWN" && m.status == 200)));
    assert!(server.finish().last().is_some_and(|r| r.starts_with("TEARDOWN ")));
}

#[test]
fn open_rejects_bad_urls() {
    assert!(matches!(
        Session::open("http://x/", ClientOptions::default()),
        Err(Error::Config(_))
    ));
}

#[test]
fn data_that_waited_while_not_polled_counts_before_the_timeout() {
    let bytes = std::fs::read(rtsp_toolkit_conformance::captures_dir().join("pcm_16k_mono.rtspcap")).unwrap();
    let capture = Capture::parse(&bytes).unwrap();
    // The media comes 100 ms after the PLAY answer, i.e. while the session is not polled.
    let script = Script::from_capture(&capture)
        .unwrap()
        .paced(Duration::from_millis(100));
    let frames = script.frames;
    let server = ScriptedServer::start(script);
    let opts = ClientOptions {
        forward_address: Some(server.address()),
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let rest = smol::block_on(async {
        let mut session = Session::open(&capture.header.url, opts).unwrap();
        while let Some(e) = session.next().await {
            if matches!(&e, Event::Method(m) if m.method.as_str() == "PLAY") {
                break;
            }
        }
        // Not polled for twice the timeout, while the media sits in the socket.
        std::thread::sleep(Duration::from_millis(600));
        let mut rest = Vec::new();
        while let Some(e) = session.next().await {
            rest.push(e);
        }
        rest
    });
    let rtp = rest.iter().filter(|e| matches!(e, Event::Rtp(_))).count();
    assert_eq!(rtp, frames, "all waiting media delivered before the timeout");
    assert!(matches!(closed_error(&rest), Some(Error::Timeout { .. })));
    drop(server);
}

#[test]
fn a_host_name_is_resolved_off_the_executor() {
    let bytes = std::fs::read(rtsp_toolkit_conformance::captures_dir().join("pcm_16k_mono.rtspcap")).unwrap();
    let capture = Capture::parse(&bytes).unwrap();
    let server = ScriptedServer::start(Script::from_capture(&capture).unwrap());
    let port = server.address().rsplit_once(':').unwrap().1.to_owned();
    let opts = ClientOptions {
        forward_address: Some(format!("localhost:{port}")),
        ..Default::default()
    };
    let run = collect(&capture.header.url, opts, 1);
    match &run.events[0] {
        Event::Connect(c) => {
            assert_eq!(c.target, format!("localhost:{port}"));
            assert!(c.result.is_ok(), "{c:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(closed_error(&run.events), None);
    drop(server);
}
