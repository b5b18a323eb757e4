//! What only the blocking client has, against a scripted server on
//! loopback: what a dropped session sends, a stop while it waits for data,
//! data that waited while it was not iterated, host name resolution.
//!
//! The cases every runtime shares (GStreamer's rtsp-server with and without
//! auth, a closed port, a silent server) are in
//! `conformance/tests/runtime_peers.rs`.

use std::time::{Duration, Instant};

use rtsp_toolkit_blocking::{ClientOptions, Error, Event, Session, StopSignal};
use rtsp_toolkit_conformance::events::{closed_error, methods};
use rtsp_toolkit_conformance::runtimes::{self, Control, Runtime, StopWhen};
use rtsp_toolkit_conformance::script::{Script, ScriptedServer};
use rtsp_toolkit_core::capture::Capture;

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
    let opts = ClientOptions::default().with_forward_address(server.address());
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
    let opts = ClientOptions::default().with_forward_address(server.address());
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
    let opts = ClientOptions::default()
        .with_forward_address(server.address())
        .with_timeout(Duration::from_millis(300));
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
    let opts = ClientOptions::default().with_forward_address(format!("localhost:{port}"));
    let control = Control::within(Duration::from_secs(30)).stop_when(StopWhen::Rtp(1));
    let run = runtimes::run(Runtime::Blocking, &capture.header.url, opts, control);
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
