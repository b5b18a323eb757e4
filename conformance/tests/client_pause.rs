//! Our client's `pause()` and `play_from()` on every runtime (tokio, smol,
//! blocking), against our server and GStreamer's: PAUSE stops the media
//! (checked with a bounded wait), PLAY resumes it where it paused, a seek to
//! a later time starts at the keyframe at or before it, no `Loss` is counted
//! for the jump, and the session then ends cleanly by itself.

use std::time::Duration;

use rtsp_toolkit_conformance::peers::GstServer;
use rtsp_toolkit_conformance::runtimes::{self, Live, Runtime};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event, MethodEvent, PlayRange, Transport};

const FILE: &str = "h264_aac.mp4";
/// One frame of the fixture's 25 fps video, in 90 kHz units.
const FRAME: u32 = 3600;
const LIMIT: Duration = Duration::from_secs(15);

fn answered(method: &'static str) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Method(m) if m.method.as_str() == method)
}

fn method(e: Event) -> Box<MethodEvent> {
    match e {
        Event::Method(m) => m,
        other => panic!("not a method event: {other:?}"),
    }
}

fn rtptime(m: &MethodEvent) -> Option<u32> {
    let info = m.headers.get("RTP-Info")?;
    info.split([';', ','])
        .find_map(|p| p.trim().strip_prefix("rtptime="))
        .and_then(|t| t.trim().parse().ok())
}

fn video_timestamps(events: &[Event]) -> Vec<(u32, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some((v.frame.timestamp, v.frame.keyframe)),
            _ => None,
        })
        .collect()
}

/// What one session showed.
struct Seen {
    who: String,
    /// Video (timestamp, keyframe) before the PAUSE, after the resume, after the seek.
    before: Vec<(u32, bool)>,
    resumed: Vec<(u32, bool)>,
    seeked: Vec<(u32, bool)>,
    /// Video from the seek request on (frames of the old position may still
    /// come, and a server may send the new one before its answer).
    since_seek_request: Vec<(u32, bool)>,
    /// RTP packets that came in the quiet wait after the PAUSE answer.
    while_paused: usize,
    first_play: Box<MethodEvent>,
    seek: Box<MethodEvent>,
    events: Vec<Event>,
}

/// Plays `url` on `runtime`, pauses after 10 frames, waits `quiet`, resumes,
/// seeks to 3.5 s after 10 more frames, and lets it end.
fn pause_resume_seek(runtime: Runtime, url: &str, opts: ClientOptions, settle: Duration, quiet: Duration) -> Seen {
    let who = format!("{} client ({}), {url}", runtime.name(), opts.transport);
    let mut live = Live::open(runtime, url, opts);
    let first_play = method(live.until(LIMIT, "the PLAY answer", answered("PLAY")));
    assert_eq!(first_play.status, 200, "{who}");
    let video = |e: &Event| matches!(e, Event::Video(_));
    for _ in 0..10 {
        live.until(LIMIT, "video", video);
    }
    live.control.pause().unwrap();
    let pause = method(live.until(LIMIT, "the PAUSE answer", answered("PAUSE")));
    assert_eq!(pause.status, 200, "{who}");
    let at_pause = live.seen.len();
    // What was under way when the server paused may still come in `settle`.
    live.during(settle);
    let while_paused = live.during(quiet).iter().filter(|e| matches!(e, Event::Rtp(_))).count();
    live.control.play_from(PlayRange::resume(), None).unwrap();
    let resume = method(live.until(LIMIT, "the resuming PLAY answer", answered("PLAY")));
    assert_eq!(resume.status, 200, "{who}");
    assert_eq!(resume.request_headers.get("Range"), None, "{who}");
    let at_resume = live.seen.len();
    for _ in 0..10 {
        live.until(LIMIT, "video after the resume", video);
    }
    let at_seek_request = live.seen.len();
    live.control
        .play_from(PlayRange::from(Duration::from_millis(3500)), None)
        .unwrap();
    let seek = method(live.until(LIMIT, "the seeking PLAY answer", answered("PLAY")));
    assert_eq!(seek.status, 200, "{who}");
    assert_eq!(seek.request_headers.get("Range"), Some("npt=3.500-"), "{who}");
    let at_seek = live.seen.len();
    let events = live.finish(LIMIT);
    let Some(Event::Closed(closed)) = events.last() else {
        panic!("{who}: {:?}", events.last())
    };
    assert_eq!(closed.error, None, "{who}: the session ends cleanly");
    // CLIENT_PAUSE_DEBUG=1: what the session saw, to read a failure.
    if std::env::var("CLIENT_PAUSE_DEBUG").is_ok() {
        for e in &events {
            match e {
                Event::Rtp(r) => eprintln!(
                    "rtp {} seq {} ts {}",
                    r.track, r.packet.sequence_number, r.packet.timestamp
                ),
                Event::Method(m) => eprintln!("{} {} {:?}", m.method, m.status, m.headers),
                Event::Loss(l) => eprintln!("{l:?}"),
                _ => {}
            }
        }
    }
    assert!(
        !events.iter().any(|e| matches!(e, Event::Loss(_))),
        "{who}: no loss for the pause or the seek"
    );
    Seen {
        who,
        before: video_timestamps(&events[..at_pause]),
        resumed: video_timestamps(&events[at_resume..at_seek]),
        seeked: video_timestamps(&events[at_seek..]),
        since_seek_request: video_timestamps(&events[at_seek_request..]),
        while_paused,
        first_play,
        seek,
        events,
    }
}

#[test]
fn pause_resume_and_seek_on_our_server_on_every_runtime() {
    on_our_server(ClientOptions::default(), Duration::ZERO);
}

#[test]
fn pause_resume_and_seek_over_udp_on_our_server_on_every_runtime() {
    // Datagrams sent before the PAUSE may come after its answer (another socket).
    on_our_server(
        ClientOptions::default().with_transport(Transport::Udp),
        Duration::from_millis(300),
    );
}

fn on_our_server(opts: ClientOptions, settle: Duration) {
    let server = TestServer::start(ServerRuntime::Tokio, rtsp_toolkit_conformance::media_dir());
    let url = server.url(FILE);
    let opts = opts.with_audio(false);
    // Every runtime at once: each session has its own schedule on our server.
    let runs = runtimes::at_once(|runtime| {
        pause_resume_seek(runtime, &url, opts.clone(), settle, Duration::from_millis(1500))
    });
    for s in runs {
        let who = &s.who;
        // Our server stops before it answers PAUSE: nothing after the answer.
        assert_eq!(s.while_paused, 0, "{who}: RTP while paused");
        // The resume goes on with the next frame: timestamps are media time.
        let last = s.before.last().unwrap().0;
        let next = s.resumed.first().unwrap().0;
        assert!(
            (1..=2 * FRAME).contains(&next.wrapping_sub(last)),
            "{who}: {last} then {next} after the resume"
        );
        // The seek to 3.5 s starts at the keyframe at 3 s; RTP-Info names it.
        assert!(
            s.seek.headers.get("Range").is_some_and(|r| r.starts_with("npt=3.000-")),
            "{who}: {:?}",
            s.seek.headers
        );
        let base = rtptime(&s.first_play).expect("RTP-Info of the first PLAY");
        let (first, keyframe) = s.seeked[0];
        assert!(keyframe, "{who}: the first frame after the seek is a keyframe");
        assert_eq!(Some(first), rtptime(&s.seek), "{who}: RTP-Info is the first frame");
        assert_eq!(first.wrapping_sub(base), 3 * 90_000, "{who}: the keyframe at 3 s");
        assert_eq!(s.seeked.len(), 50, "{who}: 3 s to the end of the 5 s file");
        let methods: Vec<(String, u16)> = s
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Method(m) => Some((m.method.to_string(), m.status)),
                _ => None,
            })
            .filter(|(m, _)| m == "PAUSE" || m == "PLAY")
            .collect();
        assert_eq!(methods.len(), 4, "{who}: {methods:?}");
    }
    server.shutdown();
}

#[test]
fn pause_resume_and_seek_on_gstreamers_server_on_every_runtime() {
    let gst = GstServer::start(None);
    let url = gst.url(FILE);
    // One after another: GStreamer 1.22's server starves one of several
    // seeking sessions at once (see `server_seek.rs`).
    for runtime in Runtime::ALL {
        let opts = ClientOptions::default().with_audio(false);
        let s = pause_resume_seek(
            runtime,
            &url,
            opts,
            Duration::from_millis(500),
            Duration::from_millis(1500),
        );
        let who = &s.who;
        assert_eq!(s.while_paused, 0, "{who}: RTP while paused");
        assert!(!s.resumed.is_empty(), "{who}: video after the resume");
        // GStreamer answers the Range without milliseconds, from the keyframe.
        let range = s.seek.headers.get("Range").unwrap_or_default().to_owned();
        assert!(range.starts_with("npt=3"), "{who}: {range}");
        // GStreamer may send the new position before it answers, after a frame or two of the old one
        // still in flight: the new position starts at the first keyframe since the request.
        let since = &s.since_seek_request;
        let k = since.iter().position(|(_, key)| *key);
        assert!(
            k.is_some_and(|k| k <= 3),
            "{who}: a keyframe within the first frames after the seek request: {since:?}"
        );
        // From 3 s (or 3.5 s) to the end of the 5 s file.
        let after = since.len() - k.unwrap_or(0);
        assert!((37..=51).contains(&after), "{who}: {after} frames");
    }
}
