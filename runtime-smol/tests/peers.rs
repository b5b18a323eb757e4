//! What only the smol client has, against a scripted server on loopback:
//! what a dropped session sends, a stop from another thread, data that
//! waited while it was not polled, host name resolution off the executor.
//!
//! The cases every runtime shares (GStreamer's rtsp-server with and without
//! auth, a closed port, a silent server) are in
//! `conformance/tests/runtime_peers.rs`.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use rtsp_toolkit_conformance::events::closed_error;
use rtsp_toolkit_conformance::runtimes::{self, Control, Runtime, StopWhen};
use rtsp_toolkit_conformance::script::{Script, ScriptedServer};
use rtsp_toolkit_core::capture::Capture;
use rtsp_toolkit_smol::{ClientOptions, Error, Event, Session, StopSignal};

#[test]
fn dropping_a_playing_session_sends_teardown() {
    let bytes = std::fs::read(rtsp_toolkit_conformance::captures_dir().join("h264_aac.rtspcap")).unwrap();
    let capture = Capture::parse(&bytes).unwrap();
    let server = ScriptedServer::start(Script::from_capture(&capture).unwrap());
    let stop = StopSignal::new();
    let opts = ClientOptions::default().with_forward_address(server.address());
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
    let opts = ClientOptions::default().with_forward_address(server.address());
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
    let opts = ClientOptions::default()
        .with_forward_address(server.address())
        .with_timeout(Duration::from_millis(300));
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
    let opts = ClientOptions::default().with_forward_address(format!("localhost:{port}"));
    let control = Control::within(Duration::from_secs(30)).stop_when(StopWhen::Rtp(1));
    let run = runtimes::run(Runtime::Smol, &capture.header.url, opts, control);
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
