//! The blocking client against real servers on loopback: GStreamer's
//! rtsp-server (plain, Basic and Digest auth), a closed port, a silent
//! server, and a scripted server that checks what a dropped session sends.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtsp_toolkit_blocking::{ClientOptions, Error, Event, Session, StopSignal};
use rtsp_toolkit_conformance::events::{closed_error, methods, rtp_per_track};
use rtsp_toolkit_conformance::peers::{free_port, GstServer};
use rtsp_toolkit_conformance::script::{Script, ScriptedServer};
use rtsp_toolkit_core::capture::Capture;

/// What a run saw: the events, and how long Closed took after the stop.
struct Run {
    events: Vec<Event>,
    stop_to_closed: Option<Duration>,
}

/// Runs a session to its end, stopping it from another thread once
/// `stop_after_rtp` RTP packets arrived. A watchdog stops it after 30 s.
fn collect(url: &str, opts: ClientOptions, stop_after_rtp: usize) -> Run {
    let session = Session::open(url, opts).expect("open");
    let (to_stopper, stopper_rx) = mpsc::channel::<()>();
    let stop = session.stop_handle();
    // The stopping thread: on request, or when the 30 s are up.
    let stopper = std::thread::spawn(move || {
        let _ = stopper_rx.recv_timeout(Duration::from_secs(30));
        stop.stop();
    });
    let started = Instant::now();
    let mut events = Vec::new();
    let mut stopped_at = None;
    let mut closed_at = None;
    let mut rtp = 0;
    for e in session {
        if matches!(e, Event::Rtp(_)) {
            rtp += 1;
            if rtp == stop_after_rtp {
                stopped_at = Some(Instant::now());
                let _ = to_stopper.send(());
            }
        }
        if matches!(e, Event::Closed(_)) {
            closed_at = Some(Instant::now());
        }
        events.push(e);
    }
    drop(to_stopper);
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(35), "session ended in time");
    let stop_to_closed = stopped_at.zip(closed_at).map(|(s, c)| c - s);
    Run { events, stop_to_closed }
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

fn load(name: &str) -> Capture {
    let path = rtsp_toolkit_conformance::captures_dir().join(format!("{name}.rtspcap"));
    Capture::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn scripted(name: &str) -> (Capture, ScriptedServer) {
    let capture = load(name);
    let server = ScriptedServer::start(Script::from_capture(&capture).unwrap());
    (capture, server)
}

#[test]
fn dropping_a_playing_session_sends_teardown() {
    let (capture, server) = scripted("h264_aac");
    let stop = StopSignal::new();
    let opts = ClientOptions {
        forward_address: Some(server.address()),
        ..Default::default()
    };
    let started = Instant::now();
    let mut session = Session::open_with_stop(&capture.header.url, opts, stop.clone()).unwrap();
    for e in session.by_ref().take(1000) {
        if matches!(&e, Event::Method(m) if m.method.as_str() == "PLAY") {
            break;
        }
    }
    drop(session);
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
fn a_stop_is_noticed_while_waiting_for_data() {
    let (capture, server) = scripted("pcm_16k_mono");
    let opts = ClientOptions {
        forward_address: Some(server.address()),
        ..Default::default()
    };
    let mut session = Session::open(&capture.header.url, opts).unwrap();
    // Read everything the script has; then the session waits on the socket.
    let frames = Script::from_capture(&capture).unwrap().frames;
    let mut rtp = 0;
    for e in session.by_ref() {
        if matches!(e, Event::Rtp(_)) {
            rtp += 1;
            if rtp == frames {
                break;
            }
        }
    }
    let stop = session.stop_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        stop.stop();
        Instant::now()
    });
    let rest: Vec<Event> = session.collect();
    let closed = Instant::now();
    let stopped = stopper.join().unwrap();
    assert!(
        closed - stopped < Duration::from_millis(500),
        "closed {:?} after the stop",
        closed - stopped
    );
    assert_eq!(
        methods(&rest),
        [("TEARDOWN".to_string(), 200)],
        "{:?}",
        rest.iter()
            .map(rtsp_toolkit_conformance::events::kind)
            .collect::<Vec<_>>()
    );
    assert_eq!(closed_error(&rest), None);
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
fn data_that_waited_while_not_iterated_counts_before_the_timeout() {
    let capture = load("pcm_16k_mono");
    // The media comes 100 ms after the PLAY answer, i.e. while the session is not iterated.
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
    let mut session = Session::open(&capture.header.url, opts).unwrap();
    for e in session.by_ref() {
        if matches!(&e, Event::Method(m) if m.method.as_str() == "PLAY") {
            break;
        }
    }
    // Not iterated for twice the timeout, while the media sits in the socket.
    std::thread::sleep(Duration::from_millis(600));
    let rest: Vec<Event> = session.collect();
    let rtp = rest.iter().filter(|e| matches!(e, Event::Rtp(_))).count();
    assert_eq!(rtp, frames, "all waiting media delivered before the timeout");
    assert!(matches!(closed_error(&rest), Some(Error::Timeout { .. })));
    drop(server);
}

#[test]
fn a_host_name_is_resolved() {
    let (capture, server) = scripted("pcm_16k_mono");
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
