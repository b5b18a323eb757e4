//! The camera simulator (docs/SIMULATOR.md) against our client on every
//! runtime (tokio, smol, blocking) at once, served by the smol server (the
//! CLI's tests use the tokio one): what each client reported is compared
//! with the faults the server says it did (`ServerEvent::Fault`, through the
//! server's event hook).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport, Warning};
use rtsp_toolkit_core::message::Method;
use rtsp_toolkit_core::server::{FaultEvent, Quirk, ServerEvent};
use rtsp_toolkit_media::serving::{EventHook, ServerOptions};

/// Bound on one session (the fixture plays for 5 s).
const LIMIT: Duration = Duration::from_secs(30);

type Seen = Arc<Mutex<Vec<ServerEvent>>>;

fn server() -> (TestServer, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let theirs = seen.clone();
    let options = ServerOptions {
        events: Some(EventHook::new(move |_, e: &ServerEvent| {
            theirs.lock().unwrap().push(e.clone())
        })),
        ..ServerOptions::default()
    };
    (
        TestServer::with_options(ServerRuntime::Smol, rtsp_toolkit_conformance::media_dir(), options),
        seen,
    )
}

fn run_all(url: &str, transport: Transport) -> Vec<Run> {
    runtimes::at_once(|runtime| {
        let mut opts = ClientOptions::default();
        opts.transport = transport;
        runtimes::run(runtime, url, opts, Control::within(LIMIT))
    })
}

/// (video frames, audio frames) of a session of the fixture.
fn frames(events: &[Event]) -> (usize, usize) {
    let video = events.iter().filter(|e| matches!(e, Event::Video(_))).count();
    let audio = events.iter().filter(|e| matches!(e, Event::Audio(_))).count();
    (video, audio)
}

fn lost(events: &[Event], track: usize) -> u64 {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Loss(l) if l.track == track => Some(u64::from(l.lost)),
            _ => None,
        })
        .sum()
}

fn clean_end(run: &Run) {
    match run.events.last() {
        Some(Event::Closed(c)) => assert!(c.error.is_none(), "{}: {:?}", run.runtime.name(), c.error),
        other => panic!("{}: the last event is {other:?}", run.runtime.name()),
    }
}

/// The session id the SETUP answers gave.
fn session_id(run: &Run) -> String {
    run.events
        .iter()
        .find_map(|e| match e {
            Event::Method(m) if m.method == Method::Setup => m.headers.get("Session"),
            _ => None,
        })
        .and_then(|s| s.split(';').next())
        .expect("a SETUP answer with a Session")
        .trim()
        .to_owned()
}

/// The faults done to each session: session id → its fault events.
fn faults_by_session(seen: &Seen) -> HashMap<String, Vec<FaultEvent>> {
    let mut by = HashMap::<String, Vec<FaultEvent>>::new();
    for e in seen.lock().unwrap().iter() {
        if let ServerEvent::Fault { session_id, fault, .. } = e {
            by.entry(session_id.clone()).or_default().push(fault.clone());
        }
    }
    by
}

fn whole_stream(server: &TestServer) -> (usize, usize) {
    let clean = run_all(&server.url("h264_aac.mp4"), Transport::Tcp);
    clean.iter().for_each(clean_end);
    let expected = frames(&clean[0].events);
    for run in &clean {
        assert_eq!(frames(&run.events), expected, "{}", run.runtime.name());
    }
    expected
}

#[test]
fn every_runtime_loses_exactly_the_frames_the_drops_destroyed() {
    let (server, seen) = server();
    let (video, audio) = whole_stream(&server);
    for transport in [Transport::Tcp, Transport::Udp] {
        seen.lock().unwrap().clear();
        let runs = run_all(&server.url("h264_aac.mp4?drop=0.03&seed=11"), transport);
        let faults = faults_by_session(&seen);
        assert_eq!(faults.len(), Runtime::ALL.len(), "{faults:?}");
        for run in &runs {
            clean_end(run);
            let name = run.runtime.name();
            let done = &faults[&session_id(run)];
            let drops: Vec<(usize, u32)> = done
                .iter()
                .map(|f| match f {
                    FaultEvent::Drop { track, rtp_ts, .. } => (*track, *rtp_ts),
                    other => panic!("{name}: only drops were asked for: {other:?}"),
                })
                .collect();
            assert!(drops.len() >= 5, "{name}: {drops:?}");
            let destroyed = |track: usize| {
                drops
                    .iter()
                    .filter(|(t, _)| *t == track)
                    .map(|(_, ts)| *ts)
                    .collect::<HashSet<u32>>()
                    .len()
            };
            assert_eq!(
                frames(&run.events),
                (video - destroyed(0), audio - destroyed(1)),
                "{name} over {transport:?}: frames lost = frames the drops destroyed"
            );
            for track in [0, 1] {
                let dropped = drops.iter().filter(|(t, _)| *t == track).count() as u64;
                assert_eq!(
                    lost(&run.events, track),
                    dropped,
                    "{name} over {transport:?}, track {track}"
                );
            }
        }
    }
}

/// A camera that answers with the wrong CSeq and refuses the GET_PARAMETER it
/// advertises (retina#133): every runtime warns once per answer, falls back
/// to OPTIONS keepalives and plays the whole stream.
#[test]
fn every_runtime_survives_wrong_cseq_and_a_refused_get_parameter() {
    let (server, seen) = server();
    let (video, audio) = whole_stream(&server);
    seen.lock().unwrap().clear();
    let runs = run_all(
        &server.url("h264_aac.mp4?quirk=wrong_cseq,no_get_parameter&session_timeout=2"),
        Transport::Tcp,
    );
    let faults = faults_by_session(&seen);
    for run in &runs {
        clean_end(run);
        let name = run.runtime.name();
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        let done = &faults[&session_id(run)];
        let quirks = |q: Quirk| {
            done.iter()
                .filter(|f| matches!(f, FaultEvent::Quirk { quirk, .. } if *quirk == q))
                .count()
        };
        assert_eq!(quirks(Quirk::NoGetParameter), 1, "{name}: {done:?}");
        let warnings: Vec<&Warning> = run
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w),
                _ => None,
            })
            .collect();
        let mismatches = warnings
            .iter()
            .filter(|w| matches!(w, Warning::CseqMismatch { expected, got: Some(got), .. } if *got == expected + 1))
            .count();
        // Every answer but the TEARDOWN's, which may come after the session
        // stopped reading.
        let answered = quirks(Quirk::WrongCseq);
        assert!(
            mismatches == answered || mismatches + 1 == answered,
            "{name}: {mismatches} warnings, {answered} wrong answers"
        );
        let refused: Vec<&&Warning> = warnings
            .iter()
            .filter(|w| matches!(w, Warning::KeepaliveFailed { .. }))
            .collect();
        assert!(
            matches!(
                refused.as_slice(),
                [Warning::KeepaliveFailed {
                    method: Method::GetParameter,
                    status: 501,
                    fallback: Some(Method::Options)
                }]
            ),
            "{name}: {refused:?}"
        );
        assert_eq!(warnings.len(), mismatches + 1, "{name}: {warnings:?}");
    }
}

/// Runs `cmd` for at most `limit` (killed after it); its stdout and stderr.
fn run_bounded(mut cmd: std::process::Command, limit: Duration) -> String {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool runs");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = r.read_to_string(&mut out);
            out
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the tool did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out.join().unwrap() + &err.join().unwrap()
}

/// GStreamer's rtspsrc sees the drops too: it loses exactly the frames the
/// drops destroyed, as ours does (and plays to our BYE).
#[test]
fn gstreamer_loses_exactly_the_frames_the_drops_destroyed() {
    let (server, seen) = server();
    let mut c = std::process::Command::new("gst-launch-1.0");
    let pipeline = format!(
        "rtspsrc location={} protocols=tcp name=s s. ! rtph264depay ! h264parse ! fakesink silent=false",
        server.url("h264_aac.mp4?drop=0.03&seed=11")
    );
    c.arg("-v").args(pipeline.split(' '));
    let out = run_bounded(c, LIMIT);
    let faults = faults_by_session(&seen);
    assert_eq!(faults.len(), 1, "{faults:?}");
    let destroyed = faults
        .values()
        .flatten()
        .filter_map(|f| match f {
            FaultEvent::Drop { track: 0, rtp_ts, .. } => Some(*rtp_ts),
            _ => None,
        })
        .collect::<HashSet<u32>>()
        .len();
    assert!(destroyed > 0);
    // The fixture's 125 frames (conformance's FFPROBE_COUNTS).
    assert_eq!(
        rtsp_toolkit_conformance::peers::gst_fakesink_frames(&out),
        125 - destroyed
    );
    assert!(out.contains("Got EOS"), "no EOS:\n{out}");
}
