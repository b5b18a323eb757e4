//! The camera simulator (docs/SIMULATOR.md) against our client on every
//! runtime (tokio, smol, blocking) at once, served by the smol server (the
//! CLI's tests use the tokio one): what each client reported is compared
//! with the faults the server says it did (`ServerEvent::Fault`, through the
//! server's event hook).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rtsp_toolkit_conformance::runtimes::{self, Control, Run, Runtime};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, ClosedEvent, Event, Transport, Warning};
use rtsp_toolkit_core::message::Method;
use rtsp_toolkit_core::server::faults::Faults;
use rtsp_toolkit_core::server::{CloseReason, FaultEvent, Quirk, ServerEvent};
use rtsp_toolkit_media::serving::{EventHook, ServerOptions};

/// Bound on one session (the fixture plays for 5 s).
const LIMIT: Duration = Duration::from_secs(30);

/// What the server reported, with the client's address.
type Seen = Arc<Mutex<Vec<(Option<SocketAddr>, ServerEvent)>>>;

fn server() -> (TestServer, Seen) {
    server_with(ServerOptions::default())
}

/// A smol server of the fixtures with `options`, its events kept.
fn server_with(options: ServerOptions) -> (TestServer, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let theirs = seen.clone();
    let options = ServerOptions {
        events: Some(EventHook::new(move |peer, e: &ServerEvent| {
            theirs.lock().unwrap().push((peer, e.clone()))
        })),
        ..options
    };
    (
        TestServer::with_options(ServerRuntime::Smol, rtsp_toolkit_conformance::media_dir(), options),
        seen,
    )
}

fn run_all(url: &str, transport: Transport) -> Vec<Run> {
    run_all_with(url, ClientOptions::default().with_transport(transport))
}

/// [`run_all`] with these client options.
fn run_all_with(url: &str, opts: ClientOptions) -> Vec<Run> {
    runtimes::at_once(|runtime| runtimes::run(runtime, url, opts.clone(), Control::within(LIMIT)))
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

/// Every runtime's session on `url` over `transport`, and the faults the
/// server did in each (by session id), from a cleared log.
fn run_all_seen(url: &str, transport: Transport, seen: &Seen) -> (Vec<Run>, HashMap<String, Vec<FaultEvent>>) {
    seen.lock().unwrap().clear();
    let runs = run_all(url, transport);
    let faults = faults_by_session(seen);
    (runs, faults)
}

/// The faults done to each session: session id → its fault events.
fn faults_by_session(seen: &Seen) -> HashMap<String, Vec<FaultEvent>> {
    let mut by = HashMap::<String, Vec<FaultEvent>>::new();
    for (_, e) in seen.lock().unwrap().iter() {
        if let ServerEvent::Fault { session_id, fault, .. } = e {
            by.entry(session_id.clone()).or_default().push(fault.clone());
        }
    }
    by
}

/// The frames of the whole fixture, the same on every runtime: played once
/// per run of this file, on a server of its own, and shared by the tests
/// (each of which used to play it first on its own server).
fn whole_stream() -> (usize, usize) {
    static WHOLE: OnceLock<(usize, usize)> = OnceLock::new();
    *WHOLE.get_or_init(|| {
        let (server, _) = server();
        let clean = run_all(&server.url("h264_aac.mp4"), Transport::Tcp);
        clean.iter().for_each(clean_end);
        let expected = frames(&clean[0].events);
        for run in &clean {
            assert_eq!(frames(&run.events), expected, "{}", run.runtime.name());
        }
        expected
    })
}

/// Each run lost exactly the frames the server's drops destroyed (the
/// distinct RTP timestamps of the dropped packets, per track), and its
/// `loss` events add up to the dropped packets; only drops were done.
fn assert_drops_destroyed_exactly(runs: &[Run], seen: &Seen, (video, audio): (usize, usize), what: &str) {
    let faults = faults_by_session(seen);
    assert_eq!(faults.len(), Runtime::ALL.len(), "{faults:?}");
    for run in runs {
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
            "{name} {what}: frames lost = frames the drops destroyed"
        );
        for track in [0, 1] {
            let dropped = drops.iter().filter(|(t, _)| *t == track).count() as u64;
            assert_eq!(lost(&run.events, track), dropped, "{name} {what}, track {track}");
        }
    }
}

#[test]
fn every_runtime_loses_exactly_the_frames_the_drops_destroyed() {
    let (server, seen) = server();
    let whole = whole_stream();
    for transport in [Transport::Tcp, Transport::Udp] {
        seen.lock().unwrap().clear();
        let runs = run_all(&server.url("h264_aac.mp4?drop=0.03&seed=11"), transport);
        assert_drops_destroyed_exactly(&runs, &seen, whole, &format!("over {transport:?}"));
    }
}

/// A camera that answers with the wrong CSeq and refuses the GET_PARAMETER it
/// advertises (retina#133): every runtime warns once per answer, falls back
/// to OPTIONS keepalives and plays the whole stream.
#[test]
fn every_runtime_survives_wrong_cseq_and_a_refused_get_parameter() {
    let (server, seen) = server();
    let (video, audio) = whole_stream();
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
        let warnings = warnings(&run.events);
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

/// A smol server whose `h264_aac.mp4` has the faults of `profile` (a
/// query's text) for every session, as `serve --profile` gives them: the
/// URL has no query, as a real camera's.
fn camera(profile: &str) -> (TestServer, Seen) {
    let mut options = ServerOptions::default();
    let faults = Faults::parse_query(profile).unwrap().expect("a fault");
    options.config.profiles = vec![("h264_aac.mp4".to_owned(), faults)];
    server_with(options)
}

/// What GStreamer's rtspsrc did against one camera profile.
#[derive(Debug)]
struct GstRun {
    /// Frames its decoder (avdec_h264) gave.
    frames: usize,
    /// It reached the end (our BYE).
    eos: bool,
    /// The widths its decoder announced, in order.
    widths: Vec<u32>,
    /// Its output, for messages.
    out: String,
}

/// GStreamer's rtspsrc (TCP) against the simulator with each profile (a
/// query's text, and how long to let it run), one server each, six at a
/// time, decoding the video.
fn gstreamer_against(profiles: &[(&str, Duration)]) -> Vec<(GstRun, Vec<ServerEvent>)> {
    let mut all = Vec::new();
    for batch in profiles.chunks(6) {
        let cameras: Vec<(TestServer, Seen)> = batch.iter().map(|(p, _)| camera(p)).collect();
        std::thread::scope(|s| {
            let runs: Vec<_> = cameras
                .iter()
                .zip(batch)
                .map(|((server, _), (_, limit))| {
                    let url = server.url("h264_aac.mp4");
                    let limit = *limit;
                    s.spawn(move || {
                        let mut c = std::process::Command::new("gst-launch-1.0");
                        let pipeline = format!(
                            "rtspsrc location={url} protocols=tcp user-id=u user-pw=p name=s \
                             s. ! rtph264depay ! h264parse ! avdec_h264 ! fakesink silent=false"
                        );
                        c.arg("-v").args(pipeline.split_whitespace());
                        // Killed at the limit: a camera may make it hang.
                        let (out, err) = rtsp_toolkit_conformance::peers::run_bounded(c, limit);
                        let out = out + &err;
                        let widths = out
                            .lines()
                            .filter(|l| l.contains("avdec_h264-0.GstPad:src: caps = "))
                            .filter_map(|l| l.split("width=(int)").nth(1))
                            .filter_map(|w| w.split(',').next()?.trim().parse().ok())
                            .collect();
                        GstRun {
                            frames: rtsp_toolkit_conformance::peers::gst_fakesink_frames(&out),
                            eos: out.contains("Got EOS"),
                            widths,
                            out,
                        }
                    })
                })
                .collect();
            for (r, (_, seen)) in runs.into_iter().zip(&cameras) {
                let run = r.join().expect("a GStreamer run");
                let log = seen.lock().unwrap().iter().map(|(_, e)| e.clone()).collect();
                all.push((run, log));
            }
        });
    }
    all
}

/// (method, Request-URI, status) of each request the server answered.
fn requests(log: &[ServerEvent]) -> Vec<(Method, String, u16)> {
    log.iter()
        .filter_map(|e| match e {
            ServerEvent::Request {
                method, uri, status, ..
            } => Some((method.clone(), uri.clone(), *status)),
            _ => None,
        })
        .collect()
}

/// Whether a SETUP whose Request-URI `uri` takes was answered `status`.
fn setup_answered(log: &[ServerEvent], status: u16, uri: impl Fn(&str) -> bool) -> bool {
    requests(log)
        .into_iter()
        .any(|(m, u, s)| m == Method::Setup && uri(&u) && s == status)
}

/// GStreamer's rtspsrc (1.22, over TCP) against camera profiles, which the
/// server applies to every session as `serve --profile` does (no query in
/// the URL, as a real camera's): what a third-party client makes of the
/// simulator's faults and quirks, as docs/SIMULATOR.md tells for each. The
/// fixture has 125 frames, 50 in its first 2 s.
#[test]
fn gstreamer_against_camera_profiles() {
    let whole = [
        "params=inband",
        "seq_jump=2",
        "quirk=no_marker",
        "quirk=no_sr",
        "quirk=wrong_cseq",
        "quirk=control_absolute",
        "quirk=no_session_control",
        "quirk=wrong_content_base",
        "quirk=other_channels",
        "quirk=no_content_base",
    ];
    let others = [
        "resolution_change=2",
        "bye_at=2",
        "ssrc_change=2",
        "quirk=content_base_no_scheme",
        "quirk=no_interleaved",
        "quirk=reauth_after_play&session_timeout=20",
    ];
    let limit = |p: &str| Duration::from_secs(if p == "quirk=no_interleaved" { 8 } else { 20 });
    let profiles: Vec<(&str, Duration)> = others.iter().chain(&whole).map(|p| (*p, limit(p))).collect();
    let runs = gstreamer_against(&profiles);
    let by_profile: HashMap<&str, &(GstRun, Vec<ServerEvent>)> = profiles.iter().map(|(p, _)| *p).zip(&runs).collect();
    for p in whole {
        let (r, _) = by_profile[p];
        assert!(
            r.eos && r.frames == 125 && r.widths == [320],
            "{p}: {} frames, EOS {}, widths {:?}\n{}",
            r.frames,
            r.eos,
            r.widths,
            r.out
        );
    }
    let show = |p: &str| {
        let (r, log) = by_profile[p];
        format!(
            "{p}: {} frames, EOS {}\n{:?}\n{}",
            r.frames,
            r.eos,
            requests(log),
            r.out
        )
    };
    // The decoder renegotiates to the new size at the keyframe 2 s in.
    let (r, _) = by_profile["resolution_change=2"];
    assert!(
        r.eos && r.frames == 125 && r.widths == [320, 160],
        "{}",
        show("resolution_change=2")
    );
    // A BYE is the end for it too: the frames up to it.
    let (r, _) = by_profile["bye_at=2"];
    assert!(r.eos && (45..=55).contains(&r.frames), "{}", show("bye_at=2"));
    // A new SSRC is a new source whose pad nothing is linked to: the stream
    // stops with an error at the change.
    let (r, _) = by_profile["ssrc_change=2"];
    assert!(
        !r.eos && (40..=50).contains(&r.frames) && r.out.contains("not-linked"),
        "{}",
        show("ssrc_change=2")
    );
    // A Content-Base without a scheme is taken as it is: the SETUP goes to
    // `127.0.0.1:PORT/h264_aac.mp4/trackID=0`, which is no URL (400).
    let (r, log) = by_profile["quirk=content_base_no_scheme"];
    let bad = setup_answered(log, 400, |uri| uri.starts_with("127.0.0.1:"));
    assert!(
        r.frames == 0 && !r.eos && bad,
        "{}",
        show("quirk=content_base_no_scheme")
    );
    // Without `interleaved=` in the answer, it asks for channels 1-2 for
    // the audio (seen in its debug log: its counter moves on by one when
    // the answer names none), which overlap the video's 0-1: refused (461),
    // and no frame comes.
    let (r, log) = by_profile["quirk=no_interleaved"];
    let refused = setup_answered(log, 461, |uri| uri.ends_with("trackID=1"));
    assert!(r.frames == 0 && refused, "{}", show("quirk=no_interleaved"));
    // The nonce changes after PLAY: its first request after PLAY is refused
    // (401), a request after it with the new nonce passes; every frame.
    let (r, log) = by_profile["quirk=reauth_after_play&session_timeout=20"];
    let after_play: Vec<(Method, u16)> = requests(log)
        .into_iter()
        .skip_while(|(m, _, _)| *m != Method::Play)
        .skip(1)
        .map(|(m, _, s)| (m, s))
        .collect();
    // Which request meets the 401 depends on GStreamer's shutdown race
    // (its PAUSE may be cancelled by its TEARDOWN: `peers::gst_ended_well`);
    // a 200 after it shows a request with the new nonce passed.
    let refused = after_play.iter().position(|(_, s)| *s == 401);
    let retried = refused.is_some_and(|i| after_play[i + 1..].iter().any(|(_, s)| *s == 200));
    assert!(
        r.eos && r.frames == 125 && retried,
        "{}",
        show("quirk=reauth_after_play&session_timeout=20")
    );
}

fn max_video_gap(events: &[Event]) -> Duration {
    let ticks: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some(v.recv_tick),
            _ => None,
        })
        .collect();
    ticks
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default()
}

/// The other faults and quirks on every runtime (one after the other: the
/// timing ones must not share the machine with the rest).
#[test]
fn every_runtime_takes_the_other_faults_and_quirks() {
    let (server, seen) = server();
    let (video, audio) = whole_stream();

    // A stall: a gap in arrival as long as the stall, nothing lost.
    for run in run_all(&server.url("h264_aac.mp4?stall=1:2"), Transport::Tcp) {
        let name = run.runtime.name();
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        let gap = max_video_gap(&run.events);
        assert!(
            gap >= Duration::from_millis(1900) && gap < Duration::from_secs(3),
            "{name}: {gap:?}"
        );
    }

    // A close: a connection error after exactly the packets the server sent.
    let (runs, faults) = run_all_seen(&server.url("h264_aac.mp4?close_after=1.5"), Transport::Tcp, &seen);
    for run in &runs {
        let name = run.runtime.name();
        match run.events.last() {
            Some(Event::Closed(c)) => assert!(
                matches!(c.error, Some(rtsp_toolkit_core::Error::Connection(_))),
                "{name}: {c:?}"
            ),
            other => panic!("{name}: {other:?}"),
        }
        let rtp = run.events.iter().filter(|e| matches!(e, Event::Rtp(_))).count() as u64;
        assert!(
            matches!(faults[&session_id(run)].as_slice(), [FaultEvent::Close { packets }] if *packets == rtp),
            "{name}: {rtp} packets received, {:?}",
            faults[&session_id(run)]
        );
    }

    // A new SSRC and a sequence restart: taken without loss.
    for run in run_all(&server.url("h264_aac.mp4?ssrc_change=2&seq_jump=3"), Transport::Tcp) {
        let name = run.runtime.name();
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        assert_eq!((lost(&run.events, 0), lost(&run.events, 1)), (0, 0), "{name}");
    }

    // No Content-Base and no Public: OPTIONS keepalives, no warning; no
    // timeout announced: the default 60 s, so no keepalive at all in 5 s.
    for (query, keepalive) in [
        (
            "h264_aac.mp4?quirk=no_content_base,no_public&session_timeout=2",
            Method::Options,
        ),
        ("h264_aac.mp4?quirk=no_session_timeout", Method::Teardown),
    ] {
        for run in run_all(&server.url(query), Transport::Tcp) {
            let name = run.runtime.name();
            clean_end(&run);
            assert_eq!(frames(&run.events), (video, audio), "{name} {query}");
            assert!(!run.events.iter().any(|e| matches!(e, Event::Warning(_))), "{name}");
            let methods: Vec<&Method> = run
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Method(m) => Some(&m.method),
                    _ => None,
                })
                .collect();
            let play = methods.iter().position(|m| **m == Method::Play).unwrap();
            let after: Vec<&&Method> = methods[play + 1..]
                .iter()
                .filter(|m| ***m != Method::Teardown)
                .collect();
            if keepalive == Method::Teardown {
                assert!(after.is_empty(), "{name} {query}: {methods:?}");
            } else {
                assert!(
                    after.len() >= 3 && after.iter().all(|m| ***m == keepalive),
                    "{name} {query}: {methods:?}"
                );
            }
        }
    }

    // No marker: every frame, the last one ended by the server's BYE.
    for run in run_all(&server.url("h264_aac.mp4?quirk=no_marker"), Transport::Tcp) {
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{}", run.runtime.name());
    }

    // Reordered and delayed within the reorder window: nothing lost. (A window of 1 s rather than the
    // default 100 ms: three clients at once on a loaded 2-core machine can be descheduled for longer than
    // the 30 ms of jitter plus 100 ms, which loses a packet the window gave up on.)
    let wide = ClientOptions::default()
        .with_transport(Transport::Udp)
        .with_reorder_window(Duration::from_secs(1));
    for run in run_all_with(&server.url("h264_aac.mp4?reorder=1&jitter_ms=30&seed=2"), wide) {
        let name = run.runtime.name();
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        assert_eq!((lost(&run.events, 0), lost(&run.events, 1)), (0, 0), "{name}");
    }
}

fn warnings(events: &[Event]) -> Vec<&Warning> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn methods(events: &[Event]) -> Vec<&rtsp_toolkit_core::client::MethodEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Method(m) => Some(&**m),
            _ => None,
        })
        .collect()
}

/// The faults and quirks added with `ts_jump` on every runtime (one after
/// the other): each plays whole without a warning, or is reported as
/// docs/SIMULATOR.md says. In two tests, so that they run side by side:
/// the ones played whole without a warning here, the reported ones in
/// `every_runtime_takes_the_stream_and_answer_quirks_reported`.
#[test]
fn every_runtime_takes_the_stream_and_answer_quirks_whole() {
    let (server, seen) = server();
    let (video, audio) = whole_stream();

    // Played whole, no loss, no warning, whatever the server did.
    for query in [
        "quirk=control_absolute",
        "quirk=no_session_control",
        "quirk=wrong_content_base",
        "quirk=other_channels",
        "quirk=no_interleaved",
        "slow=300",
        "params=inband",
    ] {
        let (runs, faults) = run_all_seen(&server.url(&format!("h264_aac.mp4?{query}")), Transport::Tcp, &seen);
        for run in &runs {
            let name = run.runtime.name();
            clean_end(run);
            assert_eq!(frames(&run.events), (video, audio), "{name} {query}");
            assert_eq!((lost(&run.events, 0), lost(&run.events, 1)), (0, 0), "{name} {query}");
            assert!(
                warnings(&run.events).is_empty(),
                "{name} {query}: {:?}",
                warnings(&run.events)
            );
            assert!(!faults[&session_id(run)].is_empty(), "{name} {query}");
            let ms = methods(&run.events);
            let setups: Vec<&&rtsp_toolkit_core::client::MethodEvent> =
                ms.iter().filter(|m| m.method == Method::Setup).collect();
            match query {
                "quirk=control_absolute" => assert!(
                    setups.iter().all(|m| m.url.ends_with("?transportmode=unicast")),
                    "{name}"
                ),
                "quirk=wrong_content_base" => {
                    assert!(setups.iter().all(|m| m.url.contains("/elsewhere/stream0/")), "{name}")
                }
                "quirk=other_channels" => {
                    let channels: Vec<_> = setups
                        .iter()
                        .map(|m| match m.track.as_ref().map(|t| &t.transport) {
                            Some(rtsp_toolkit_core::client::TransportKind::TcpInterleaved { rtp_channel, .. }) => {
                                *rtp_channel
                            }
                            other => panic!("{name}: {other:?}"),
                        })
                        .collect();
                    assert_eq!(channels, [10, 12], "{name}");
                }
                "slow=300" => assert!(ms.iter().all(|m| m.elapsed >= Duration::from_millis(300)), "{name}"),
                _ => {}
            }
        }
    }
}

/// The second half of the `ts_jump` era's faults and quirks on every runtime
/// (see `every_runtime_takes_the_stream_and_answer_quirks_whole`): the ones
/// lost, refused or warned about as docs/SIMULATOR.md says.
#[test]
fn every_runtime_takes_the_stream_and_answer_quirks_reported() {
    let (server, seen) = server();
    let (video, audio) = whole_stream();

    // No keyframe for 2 s: exactly the two keyframes lost, their packets
    // counted lost.
    let (runs, faults) = run_all_seen(&server.url("h264_aac.mp4?keyframe_gap=1:2"), Transport::Tcp, &seen);
    for run in &runs {
        let name = run.runtime.name();
        clean_end(run);
        let drops = faults[&session_id(run)].len() as u64;
        assert!(drops >= 2, "{name}");
        assert_eq!(frames(&run.events), (video - 2, audio), "{name}");
        assert_eq!(lost(&run.events, 0), drops, "{name}");
    }

    // 401 after PLAY: the first keepalive fails the session clearly.
    for run in run_all(
        &server.url("h264_aac.mp4?quirk=unauthorized_after_play&session_timeout=2"),
        Transport::Tcp,
    ) {
        let name = run.runtime.name();
        match run.events.last() {
            Some(Event::Closed(c)) => assert!(
                matches!(
                    &c.error,
                    Some(rtsp_toolkit_core::Error::Response {
                        method: Method::GetParameter,
                        status: 401,
                        ..
                    })
                ),
                "{name}: {c:?}"
            ),
            other => panic!("{name}: {other:?}"),
        }
        assert!(frames(&run.events).0 > 10, "{name}");
    }

    // Timestamps 10 s ahead, or 3 s back, 2 s in: every frame, no loss,
    // one `timestamp_jump` warning per track, to the timestamp the server's
    // event says.
    for (query, jump_ms) in [("ts_jump=2", 10_000i64), ("ts_jump=2:-3000", -3_000)] {
        let (runs, faults) = run_all_seen(&server.url(&format!("h264_aac.mp4?{query}")), Transport::Tcp, &seen);
        for run in &runs {
            let name = run.runtime.name();
            clean_end(run);
            assert_eq!(frames(&run.events), (video, audio), "{name} {query}");
            assert_eq!((lost(&run.events, 0), lost(&run.events, 1)), (0, 0), "{name} {query}");
            let mut done: Vec<(usize, u32)> = faults[&session_id(run)]
                .iter()
                .filter_map(|f| match f {
                    FaultEvent::TsJump { track, to, .. } => Some((*track, *to)),
                    _ => None,
                })
                .collect();
            let mut warned: Vec<(usize, u32)> = warnings(&run.events)
                .into_iter()
                .map(|w| match w {
                    Warning::TimestampJump {
                        track, to, jump_ms: j, ..
                    } => {
                        assert!((0..=50).contains(&(j - jump_ms)), "{name} {query}: {w:?}");
                        (*track, *to)
                    }
                    other => panic!("{name} {query}: {other:?}"),
                })
                .collect();
            done.sort_unstable();
            warned.sort_unstable();
            assert_eq!(warned, done, "{name} {query}");
            assert_eq!(done.len(), 2, "{name} {query}");
        }
    }

    // A new SPS with half the size 2 s in: every frame, one warning each
    // with the sizes the server's event gives.
    let (runs, faults) = run_all_seen(&server.url("h264_aac.mp4?resolution_change=2"), Transport::Tcp, &seen);
    for run in &runs {
        let name = run.runtime.name();
        clean_end(run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        let changes: Vec<_> = faults[&session_id(run)]
            .iter()
            .filter_map(|f| match f {
                FaultEvent::ResolutionChange { track, from, to } => Some((*track, *from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(changes, [(0, (320, 240), (160, 120))], "{name}");
        let seen_by_client: Vec<_> = warnings(&run.events)
            .into_iter()
            .map(|w| match w {
                Warning::ResolutionChange { track, from, to } => (*track, *from, *to),
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(seen_by_client, changes, "{name}");
    }

    // A Content-Base without a scheme: ignored with one warning, the
    // controls resolved against the request URL.
    let url = server.url("h264_aac.mp4?quirk=content_base_no_scheme");
    for run in run_all(&url, Transport::Tcp) {
        let name = run.runtime.name();
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        let w = warnings(&run.events);
        assert!(
            matches!(&w[..], [Warning::BadContentBase { used, .. }] if *used == url),
            "{name}: {w:?}"
        );
        let setups: Vec<String> = methods(&run.events)
            .iter()
            .filter(|m| m.method == Method::Setup)
            .map(|m| m.url.clone())
            .collect();
        assert_eq!(
            setups,
            [0, 1].map(|i| server.url(&format!("h264_aac.mp4/trackID={i}"))),
            "{name}"
        );
    }

    // The nonce changes after PLAY: the keepalive refused once is sent
    // again for the new nonce, and the session plays on to its end.
    let url = server.url("h264_aac.mp4?quirk=reauth_after_play&session_timeout=2");
    let url = url.replacen("rtsp://", "rtsp://u:p@", 1);
    for run in run_all(&url, Transport::Tcp) {
        let name = run.runtime.name();
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        assert!(warnings(&run.events).is_empty(), "{name}");
        let keepalives: Vec<u16> = methods(&run.events)
            .iter()
            .filter(|m| m.method == Method::GetParameter)
            .map(|m| m.status)
            .collect();
        assert_eq!(keepalives.first(), Some(&401), "{name}: {keepalives:?}");
        assert!(
            keepalives.len() >= 4 && keepalives[1..].iter().all(|s| *s == 200),
            "{name}: {keepalives:?}"
        );
    }
}

// The hostile-server cases that the simulator covers (they were scripted in
// `conformance/src/hostile.rs`): the same client assertions, against our
// server with the fault that does it.

/// The client's local address in `run` (the server's peer).
fn local_addr(run: &Run) -> SocketAddr {
    run.events
        .iter()
        .find_map(|e| match e {
            Event::Connect(c) => c.result.as_ref().ok().map(|(local, _)| *local),
            _ => None,
        })
        .expect("a connection")
}

/// What the server reported about `run`'s connection.
fn server_log(seen: &Seen, run: &Run) -> Vec<ServerEvent> {
    let me = Some(local_addr(run));
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(peer, _)| *peer == me)
        .map(|(_, e)| e.clone())
        .collect()
}

/// How the server closed `run`'s connection (waiting up to 2 s for it: the
/// client may be done first).
fn server_closed(seen: &Seen, run: &Run) -> Option<CloseReason> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let reason = server_log(seen, run).into_iter().find_map(|e| match e {
            ServerEvent::Closed { reason, .. } => Some(reason),
            _ => None,
        });
        if reason.is_some() || std::time::Instant::now() > deadline {
            return reason;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn closed(run: &Run) -> &ClosedEvent {
    match run.events.last() {
        Some(Event::Closed(c)) => c,
        other => panic!("{}: the last event is {other:?}", run.runtime.name()),
    }
}

/// The RTP packets of track 0: (timestamp, marker), in arrival order.
fn video_packets(run: &Run) -> Vec<(u32, bool)> {
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::Rtp(r) if r.track == 0 => Some((r.packet.timestamp, r.packet.marker)),
            _ => None,
        })
        .collect()
}

/// The video frames: (timestamp from the first RTP packet's, data, keyframe, loss).
fn video_frames(run: &Run) -> Vec<(u32, bytes::Bytes, bool, u32)> {
    let first = video_packets(run)[0].0;
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some((
                v.frame.timestamp.wrapping_sub(first),
                v.frame.data.clone(),
                v.frame.keyframe,
                v.frame.loss,
            )),
            _ => None,
        })
        .collect()
}

/// Packets lost on purpose (`drop_packets=`): the middle packet of one
/// keyframe, the last (marker) of another, the first of a third (the
/// fixture's P frames are one packet each). Exactly those three frames are
/// missing and every other one is byte for byte the clean run's; `loss` is 1
/// on the frame after each and 0 elsewhere; `Loss` events (1, 1), (1, 2),
/// (1, 3); no warning; BYE, TEARDOWN, a clean close; the server's drops are
/// those packets.
#[test]
fn a_lost_packet_drops_exactly_the_damaged_frame() {
    let (server, seen) = server();
    let opts = ClientOptions::default().with_audio(false);
    let run = |query: &str| {
        runtimes::at_once(|runtime| runtimes::run(runtime, &server.url(query), opts.clone(), Control::within(LIMIT)))
    };
    let clean = run("h264_aac.mp4");
    let rel = |r: &Run| -> Vec<(u32, bool)> {
        let p = video_packets(r);
        p.iter().map(|(ts, m)| (ts.wrapping_sub(p[0].0), *m)).collect()
    };
    let packets = rel(&clean[0]);
    for r in &clean {
        clean_end(r);
        assert_eq!(rel(r), packets, "{}", r.runtime.name());
        assert_eq!(video_frames(r), video_frames(&clean[0]), "{}", r.runtime.name());
    }
    // The frames of three packets or more: (first packet, packets).
    let mut multi = Vec::new();
    let mut k = 0;
    while k < packets.len() {
        let n = packets[k..].iter().take_while(|(ts, _)| *ts == packets[k].0).count();
        if n >= 3 {
            multi.push((k, n));
        }
        k += n;
    }
    assert!(multi.len() >= 4, "{multi:?}");
    let picked = [multi[1].0 + multi[1].1 / 2, multi[2].0 + multi[2].1 - 1, multi[3].0];
    assert!(packets[picked[1]].1, "the last packet has the marker");
    let damaged: Vec<u32> = picked.iter().map(|k| packets[*k].0).collect();
    let clean_frames = video_frames(&clean[0]);
    let expected: Vec<(u32, bytes::Bytes, bool)> = clean_frames
        .iter()
        .filter(|f| !damaged.contains(&f.0))
        .map(|f| (f.0, f.1.clone(), f.2))
        .collect();
    let after_loss: Vec<u32> = damaged
        .iter()
        .map(|ts| clean_frames[clean_frames.iter().position(|f| f.0 == *ts).unwrap() + 1].0)
        .collect();

    seen.lock().unwrap().clear();
    let query = format!("h264_aac.mp4?drop_packets={}", picked.map(|k| k.to_string()).join(","));
    for r in &run(&query) {
        let rt = r.runtime.name();
        let frames = video_frames(r);
        let got: Vec<(u32, bytes::Bytes, bool)> = frames.iter().map(|f| (f.0, f.1.clone(), f.2)).collect();
        assert!(got == expected, "{rt}: not the clean frames less {damaged:?}");
        for f in &frames {
            assert_eq!(f.3, u32::from(after_loss.contains(&f.0)), "{rt}: frame at {} loss", f.0);
        }
        let losses: Vec<(u32, u64)> = r
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Loss(l) => Some((l.lost, l.total_lost)),
                _ => None,
            })
            .collect();
        assert_eq!(losses, [(1, 1), (1, 2), (1, 3)], "{rt}");
        assert_eq!(video_packets(r).len(), packets.len() - 3, "{rt}");
        assert!(warnings(&r.events).is_empty(), "{rt}: {:?}", warnings(&r.events));
        clean_end(r);
        assert_eq!(server_closed(&seen, r), Some(CloseReason::Teardown), "{rt}");
        let first = video_packets(r)[0].0;
        let drops: Vec<u32> = faults_by_session(&seen)[&session_id(r)]
            .iter()
            .map(|f| match f {
                FaultEvent::Drop { track: 0, rtp_ts, .. } => rtp_ts.wrapping_sub(first),
                other => panic!("{rt}: {other:?}"),
            })
            .collect();
        assert_eq!(drops, damaged, "{rt}");
    }
}

/// The keepalives the client sent after PLAY (TEARDOWN not counted): (method,
/// CSeq, status), and the longest time without one, from PLAY's answer to
/// the last, on the client's clock (sent = answered less the round trip).
fn keepalives(run: &Run) -> (Vec<(Method, u32, u16)>, Duration) {
    let ms = methods(&run.events);
    let play = ms.iter().position(|m| m.method == Method::Play).expect("PLAY");
    let mut last = ms[play].session_elapsed;
    let mut longest = Duration::ZERO;
    let mut sent = Vec::new();
    for m in &ms[play + 1..] {
        if m.method == Method::Teardown {
            break;
        }
        let at = m.session_elapsed.saturating_sub(m.elapsed);
        longest = longest.max(at.saturating_sub(last));
        last = at;
        sent.push((m.method.clone(), m.cseq, m.status));
    }
    (sent, longest)
}

/// Keepalive answers with a wrong CSeq, without one, or refused (501
/// although `Public` lists GET_PARAMETER): the session survives each. The
/// media stalls 0.3 s after PLAY (`stall=`: the answers still come), so
/// that, as with the hostile server's 10 frames sent at once, the answers to
/// the keepalives (each second: `session_timeout=2`) are the only data
/// within the client's 3 s timeout; the test stops the session at 4.5 s.
#[test]
fn keepalive_answers_with_a_bad_cseq_or_a_refusal_are_survived() {
    let (server, seen) = server();
    let up = Duration::from_millis(4500);
    let cases = ["wrong_cseq", "no_cseq", "no_get_parameter"];
    let runs: Vec<Vec<Run>> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|quirk| {
                let url = server.url(&format!("h264_aac.mp4?session_timeout=2&stall=0.3:10&quirk={quirk}"));
                s.spawn(move || {
                    let opts = ClientOptions::default()
                        .with_audio(false)
                        .with_timeout(Duration::from_secs(3));
                    runtimes::at_once(|runtime| {
                        runtimes::run(runtime, &url, opts.clone(), Control::within(LIMIT).stop_after(up))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (quirk, runs) in cases.iter().zip(runs) {
        for r in &runs {
            let rt = r.runtime.name();
            // Up for the whole time, then stopped by the test: TEARDOWN answered.
            let c = closed(r);
            assert!(c.error.is_none(), "{rt} {quirk}: {c:?}");
            assert!(
                c.session_elapsed >= up - Duration::from_millis(200),
                "{rt} {quirk}: {c:?}"
            );
            assert_eq!(server_closed(&seen, r), Some(CloseReason::Teardown), "{rt} {quirk}");
            let frames = frames(&r.events).0;
            assert!(frames >= 1, "{rt} {quirk}");
            assert_eq!(lost(&r.events, 0), 0, "{rt} {quirk}");
            let (sent, longest) = keepalives(r);
            assert!(sent.len() >= 3, "{rt} {quirk}: keepalives {sent:?}");
            assert!(
                longest < Duration::from_secs(2),
                "{rt} {quirk}: {longest:?} without a keepalive"
            );
            // The server answered each keepalive the client saw answered.
            let answered: Vec<(Method, u16)> = server_log(&seen, r)
                .into_iter()
                .filter_map(|e| match e {
                    ServerEvent::Request { method, status, .. } => Some((method, status)),
                    _ => None,
                })
                .skip_while(|(m, _)| *m != Method::Play)
                .skip(1)
                .filter(|(m, _)| *m != Method::Teardown)
                .collect();
            let seen_answered: Vec<(Method, u16)> = sent.iter().map(|(m, _, s)| (m.clone(), *s)).collect();
            assert_eq!(answered, seen_answered, "{rt} {quirk}");
            let warnings: Vec<Warning> = warnings(&r.events).into_iter().cloned().collect();
            match *quirk {
                "no_get_parameter" => {
                    // One refused GET_PARAMETER, then OPTIONS at once and from then on.
                    assert_eq!(sent[0].0, Method::GetParameter, "{rt}");
                    assert_eq!(sent[0].2, 501, "{rt}");
                    assert!(
                        sent[1..].iter().all(|k| k.0 == Method::Options && k.2 == 200),
                        "{rt}: {sent:?}"
                    );
                    let ms = methods(&r.events);
                    let refused = ms.iter().position(|m| m.method == Method::GetParameter).unwrap();
                    let fallback = ms[refused + 1];
                    assert_eq!(fallback.method, Method::Options, "{rt}");
                    let fallback_delay = (fallback.session_elapsed - fallback.elapsed) - ms[refused].session_elapsed;
                    assert!(fallback_delay < Duration::from_millis(500), "{rt}: {fallback_delay:?}");
                    assert_eq!(
                        warnings,
                        [Warning::KeepaliveFailed {
                            method: Method::GetParameter,
                            status: 501,
                            fallback: Some(Method::Options),
                        }],
                        "{rt}"
                    );
                }
                _ => {
                    assert!(
                        sent.iter().all(|k| k.0 == Method::GetParameter && k.2 == 200),
                        "{rt} {quirk}: {sent:?}"
                    );
                    // One CseqMismatch per answer the client took (every one:
                    // the quirk is on every answer, not only the keepalives').
                    let expected: Vec<Warning> = methods(&r.events)
                        .iter()
                        .map(|m| Warning::CseqMismatch {
                            method: m.method.clone(),
                            expected: m.cseq,
                            got: (*quirk == "wrong_cseq").then_some(m.cseq + 1),
                        })
                        .collect();
                    assert_eq!(warnings, expected, "{rt} {quirk}");
                }
            }
        }
    }
}

/// The connection freezes mid-stream (`freeze=`: no data and no answers;
/// it stays open): the client times out waiting for data, a timeout after
/// the last packet, with the frames before it whole. Without `timeout=` no
/// keepalive goes out; with `session_timeout=2` one GET_PARAMETER does and
/// is not answered (the server holds it: a `slow` event).
#[test]
fn silence_while_playing_times_out() {
    let (server, seen) = server();
    let timeout = Duration::from_millis(1500);
    let queries = [
        "h264_aac.mp4?freeze=0.4:60",
        "h264_aac.mp4?freeze=0.4:60&session_timeout=2",
    ];
    let runs: Vec<Vec<Run>> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .iter()
            .map(|q| {
                let url = server.url(q);
                s.spawn(move || {
                    let opts = ClientOptions::default().with_audio(false).with_timeout(timeout);
                    runtimes::at_once(|runtime| runtimes::run(runtime, &url, opts.clone(), Control::within(LIMIT)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let faults = faults_by_session(&seen);
    for (query, runs) in queries.iter().zip(runs) {
        let keepalive = query.contains("session_timeout");
        for r in &runs {
            let rt = r.runtime.name();
            let c = closed(r);
            assert_eq!(
                c.error,
                Some(rtsp_toolkit_core::Error::Timeout {
                    waiting_for: "data from the server while playing".into(),
                    timeout,
                }),
                "{rt} {query}"
            );
            let last_data = r
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Rtp(p) => Some(p.recv_tick),
                    _ => None,
                })
                .last()
                .unwrap();
            let silence = c.session_elapsed - last_data;
            assert!(
                silence >= timeout && silence < timeout + Duration::from_millis(750),
                "{rt} {query}: closed {silence:?} after the last data"
            );
            // The frames before the freeze, whole.
            assert!(frames(&r.events).0 >= 1, "{rt} {query}");
            assert_eq!(lost(&r.events, 0), 0, "{rt} {query}");
            let ms: Vec<(Method, u16)> = methods(&r.events)
                .iter()
                .map(|m| (m.method.clone(), m.status))
                .collect();
            assert_eq!(
                ms,
                [
                    (Method::Options, 200),
                    (Method::Describe, 200),
                    (Method::Setup, 200),
                    (Method::Play, 200)
                ],
                "{rt} {query}"
            );
            // The keepalive the server held, not answered.
            let done = &faults[&session_id(r)];
            let held: Vec<&Method> = done
                .iter()
                .filter_map(|f| match f {
                    FaultEvent::Slow { method, .. } => Some(method),
                    _ => None,
                })
                .collect();
            let expected: &[&Method] = if keepalive { &[&Method::GetParameter] } else { &[] };
            assert_eq!(held, expected, "{rt} {query}");
            assert!(
                matches!(done.first(), Some(FaultEvent::Freeze { length }) if *length == Duration::from_secs(60)),
                "{rt} {query}: {done:?}"
            );
            assert_eq!(server_closed(&seen, r), Some(CloseReason::PeerClosed), "{rt} {query}");
        }
    }
}

/// The sender reports of `track` received: (NTP time as Unix seconds, the
/// arrival on the session's clock in seconds).
fn sender_reports(run: &Run, track: usize) -> Vec<(f64, f64)> {
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::Rtcp(r) if r.track == track => Some(r),
            _ => None,
        })
        .flat_map(|r| {
            r.packets.iter().filter_map(move |p| match p {
                rtsp_toolkit_core::rtcp::RtcpPacket::SenderReport(sr) => {
                    Some((sr.ntp_unix_seconds(), r.recv_tick.as_secs_f64()))
                }
                _ => None,
            })
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `burst`, `dup`, `bye_at`, `no_sr` and `sr_offset` on every runtime (one
/// after the other), as `cli/tests/simulator.rs` checks them with the tokio
/// one (`no_cseq` is in `keepalive_answers_with_a_bad_cseq_or_a_refusal_are_survived`).
#[test]
fn every_runtime_takes_bursts_duplicates_an_early_bye_and_the_sender_report_faults() {
    let (server, seen) = server();
    let whole = whole_stream();
    let (video, audio) = whole;

    // Bursts of drops: still exactly the frames they destroyed.
    seen.lock().unwrap().clear();
    let runs = run_all(&server.url("h264_aac.mp4?drop=0.02&burst=3&seed=4"), Transport::Tcp);
    assert_drops_destroyed_exactly(&runs, &seen, whole, "burst=3");
    // Whole bursts of 3, the same ones on every runtime (the seed's).
    let counts: Vec<usize> = runs
        .iter()
        .map(|run| faults_by_session(&seen)[&session_id(run)].len())
        .collect();
    assert!(counts.iter().all(|n| n % 3 == 0 && *n == counts[0]), "{counts:?}");

    // Duplicates, over TCP and UDP: every frame once, no warning.
    for transport in [Transport::Tcp, Transport::Udp] {
        let (runs, faults) = run_all_seen(&server.url("h264_aac.mp4?dup=0.1&seed=4"), transport, &seen);
        for run in &runs {
            let name = run.runtime.name();
            clean_end(run);
            let dups = faults[&session_id(run)]
                .iter()
                .filter(|f| matches!(f, FaultEvent::Duplicate { .. }))
                .count();
            assert!(dups >= 10, "{name} {transport:?}: {dups}");
            assert_eq!(frames(&run.events), (video, audio), "{name} {transport:?}");
            assert_eq!(
                (lost(&run.events, 0), lost(&run.events, 1)),
                (0, 0),
                "{name} {transport:?}"
            );
            assert!(
                warnings(&run.events).is_empty(),
                "{name} {transport:?}: {:?}",
                warnings(&run.events)
            );
        }
    }

    // An early BYE: the end, cleanly, with the first second of frames; TEARDOWN last.
    let (runs, faults) = run_all_seen(&server.url("h264_aac.mp4?bye_at=1"), Transport::Tcp, &seen);
    for run in &runs {
        let name = run.runtime.name();
        clean_end(run);
        assert!(
            matches!(faults[&session_id(run)].as_slice(), [FaultEvent::Bye { tracks: 2 }]),
            "{name}: {:?}",
            faults[&session_id(run)]
        );
        let (v, _) = frames(&run.events);
        assert!((20..=35).contains(&v), "{name}: {v} video frames");
        assert_eq!(
            methods(&run.events).last().map(|m| &m.method),
            Some(&Method::Teardown),
            "{name}"
        );
    }

    // No sender report: every frame, no SR received, the BYE on both tracks.
    for run in run_all(&server.url("h264_aac.mp4?quirk=no_sr"), Transport::Tcp) {
        let name = run.runtime.name();
        clean_end(&run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        assert!(
            sender_reports(&run, 0).is_empty() && sender_reports(&run, 1).is_empty(),
            "{name}"
        );
        let byes = run
            .events
            .iter()
            .filter(|e| {
                matches!(e, Event::Rtcp(r) if r.packets.iter().any(|p| matches!(p, rtsp_toolkit_core::rtcp::RtcpPacket::Bye(_))))
            })
            .count();
        assert_eq!(byes, 2, "{name}");
    }

    // Audio sender reports 500 ms late: every frame; one event per audio
    // report received; the audio's NTP-to-arrival mapping 0.5 s after the video's.
    let (runs, faults) = run_all_seen(&server.url("h264_aac.mp4?sr_offset=500"), Transport::Tcp, &seen);
    for run in &runs {
        let name = run.runtime.name();
        clean_end(run);
        assert_eq!(frames(&run.events), (video, audio), "{name}");
        let done = &faults[&session_id(run)];
        assert!(
            done.iter().all(|f| matches!(
                f,
                FaultEvent::SrOffset {
                    track: 1,
                    offset_ms: 500
                }
            )),
            "{name}: {done:?}"
        );
        let (v, a) = (sender_reports(run, 0), sender_reports(run, 1));
        assert!(v.len() >= 2 && a.len() >= 2, "{name}: {v:?} {a:?}");
        assert_eq!(done.len(), a.len(), "{name}");
        let base = |r: &[(f64, f64)]| median(r.iter().map(|(ntp, at)| ntp - at).collect());
        let offset = base(&a) - base(&v);
        assert!(
            (offset - 0.5).abs() < 0.1,
            "{name}: the audio's reports are {offset} s off"
        );
    }
}
