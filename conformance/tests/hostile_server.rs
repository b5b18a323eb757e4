//! The client against a misbehaving server, on every runtime.
//!
//! Each case starts a [`HostileServer`] per runtime (tokio, smol, blocking),
//! runs a session against it with a deadline, and checks what the client
//! made of it: the frames, the warnings, how and when the session closed,
//! and what the server received. The three runtimes of a case run at once.
//!
//! What the camera simulator can do (loss, wrong or missing CSeq, refused
//! keepalives, a stream or a connection that freezes) is tested against our
//! own server with that fault, in `conformance/tests/simulator.rs`; what
//! stays here is what a well-formed server cannot send: decorated RTP
//! headers, junk channels, oversized or endless responses, a close inside an
//! interleaved frame, an oversized frame, 401 loops.

use std::thread;
use std::time::Duration;

use bytes::Bytes;
use rtsp_toolkit_conformance::events::methods;
use rtsp_toolkit_conformance::hostile::{
    base64, synthetic_au, synthetic_aus, video_timestamp, Challenge, End, HostileServer, Junk, Log, Misbehaviour, Plan,
    ENDLESS_CAP, HUGE_CONTENT_LENGTH, VIDEO_TICKS, VIDEO_TS0,
};
use rtsp_toolkit_conformance::runtimes::{self, Control, Runtime};
use rtsp_toolkit_core::client::{ClientOptions, ClosedEvent, Event, VideoFrameEvent, Warning};
use rtsp_toolkit_core::codec::{DepacketizeError, VideoCodec};
use rtsp_toolkit_core::message::FramingError;
use rtsp_toolkit_core::message::{Limits, Method};
use rtsp_toolkit_core::Error;

/// Longest a session runs in these tests before it is stopped.
const LIMIT: Duration = Duration::from_secs(20);
const USER: &str = "user";
const PASSWORD: &str = "secret";

/// When the test stops a session: `None`, it must end by itself (it is
/// stopped at [`LIMIT`] in any case); `Some(d)`, TEARDOWN `d` after it started.
type StopAfter = Option<Duration>;

/// The session ends by itself.
const TO_THE_END: StopAfter = None;

/// One runtime's session against its own server.
#[derive(Debug)]
struct Outcome {
    runtime: Runtime,
    events: Vec<Event>,
    log: Log,
}

impl Outcome {
    fn closed(&self) -> &ClosedEvent {
        match self.events.last() {
            Some(Event::Closed(c)) => c,
            other => panic!("{:?}: last event is not Closed: {other:?}", self.runtime),
        }
    }

    fn videos(&self) -> Vec<&VideoFrameEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Video(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn warnings(&self) -> Vec<&Warning> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    fn methods(&self) -> Vec<(String, u16)> {
        methods(&self.events)
    }

    /// The access unit index of each video frame (from its timestamp).
    fn frame_indices(&self) -> Vec<usize> {
        self.videos()
            .iter()
            .map(|v| (v.frame.timestamp.wrapping_sub(VIDEO_TS0) / VIDEO_TICKS) as usize)
            .collect()
    }

    /// Every video frame is the source access unit it stands for, byte for byte.
    fn assert_frames_are(&self, aus: &[Bytes], expected: &[usize]) {
        let rt = self.runtime;
        assert_eq!(self.frame_indices(), expected, "{rt:?}: which frames");
        for v in self.videos() {
            let i = (v.frame.timestamp.wrapping_sub(VIDEO_TS0) / VIDEO_TICKS) as usize;
            assert_eq!(v.frame.timestamp, video_timestamp(i), "{rt:?}: frame {i}");
            assert_eq!(v.frame.codec, VideoCodec::H264);
            assert_eq!(v.frame.data, aus[i], "{rt:?}: frame {i} data");
            assert_eq!(v.frame.keyframe, i % 10 == 0, "{rt:?}: frame {i} keyframe");
        }
    }
}

/// Runs `plan` on every runtime at once, each against its own server.
fn run_all(plan: &Plan, credentials: bool, opts: &ClientOptions, stop_after: StopAfter) -> Vec<Outcome> {
    // After a stop the session ends within its timeout (TEARDOWN unanswered).
    let control = Control::within(LIMIT + opts.timeout + Duration::from_secs(5))
        .stop_after(stop_after.map_or(LIMIT, |d| d.min(LIMIT)));
    runtimes::at_once(|runtime| {
        let server = HostileServer::start(plan.clone());
        let url = server.url(credentials.then_some((USER, PASSWORD)));
        let events = runtimes::run(runtime, &url, opts.clone(), control).events;
        let log = server.finish();
        Outcome { runtime, events, log }
    })
}

fn opts(timeout: Duration) -> ClientOptions {
    ClientOptions::default().with_timeout(timeout)
}

fn aus() -> Vec<Bytes> {
    synthetic_aus(50, 10, 4000)
}

fn ok(methods: &[&str]) -> Vec<(String, u16)> {
    methods.iter().map(|m| (m.to_string(), 200)).collect()
}

fn clean_end(o: &Outcome) {
    let rt = o.runtime;
    assert_eq!(o.closed().error, None, "{rt:?}: {:?}", o.closed());
    assert_eq!(o.log.end, End::TornDown, "{rt:?}");
}

#[test]
fn csrc_extension_and_padding_give_the_clean_frames() {
    let aus = aus();
    let clean = Plan {
        audio: true,
        ..Plan::video(aus.clone())
    };
    let decorated = Plan {
        decorate: true,
        ..clean.clone()
    };
    let opts = opts(Duration::from_secs(10));
    let clean_runs = run_all(&clean, false, &opts, TO_THE_END);
    let decorated_runs = run_all(&decorated, false, &opts, TO_THE_END);
    let all: Vec<usize> = (0..aus.len()).collect();
    for (c, d) in clean_runs.iter().zip(&decorated_runs) {
        let rt = d.runtime;
        for o in [c, d] {
            o.assert_frames_are(&aus, &all);
            assert_eq!(
                o.methods(),
                ok(&["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "PLAY", "TEARDOWN"]),
                "{rt:?}"
            );
            assert_eq!(o.warnings(), Vec::<&Warning>::new(), "{rt:?}");
            assert!(o.videos().iter().all(|v| v.frame.loss == 0), "{rt:?}");
            let audio: Vec<&Bytes> = o
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Audio(a) => Some(&a.frame.data),
                    _ => None,
                })
                .collect();
            let sent: Vec<Bytes> = (0..aus.len()).map(Plan::audio_payload).collect();
            assert_eq!(audio, sent.iter().collect::<Vec<_>>(), "{rt:?}: audio frames");
            // Ended by the server's BYE on both tracks: TEARDOWN, clean close.
            clean_end(o);
        }
        // The same frames, field for field, with or without the header decorations.
        let frames = |o: &Outcome| -> Vec<_> {
            o.videos()
                .iter()
                .map(|v| (v.frame.clone(), v.extended_timestamp))
                .collect()
        };
        assert_eq!(frames(c), frames(d), "{rt:?}");
        // The same SPS and PPS with every IDR: new only the first time.
        let new_parameters: Vec<bool> = frames(d).iter().map(|(f, _)| f.new_parameters).collect();
        assert_eq!(
            new_parameters,
            (0..aus.len()).map(|i| i == 0).collect::<Vec<_>>(),
            "{rt:?}"
        );
        // The decorations did arrive.
        let rtp: Vec<_> = d
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Rtp(r) => Some(&r.packet),
                _ => None,
            })
            .collect();
        assert_eq!(rtp.len(), d.log.video_packets + d.log.audio_packets, "{rt:?}");
        for p in rtp {
            assert_eq!(p.csrc_count, 2, "{rt:?}");
            assert_eq!(p.extension.as_ref().map(|x| x.profile), Some(0xbede), "{rt:?}");
            assert!(p.padding > 0, "{rt:?}");
        }
    }
}

#[test]
fn data_on_a_channel_without_a_track_is_ignored_and_counted() {
    let aus = aus();
    // The SDP offers audio, the client sets up video only: channel 2 (where
    // audio would go) and 9 carry junk.
    let plan = Plan {
        audio: true,
        junk: Some(Junk {
            channels: [2, 9],
            every: 7,
        }),
        ..Plan::video(aus.clone())
    };
    let opts = opts(Duration::from_secs(10)).with_audio(false);
    for o in run_all(&plan, false, &opts, TO_THE_END) {
        let rt = o.runtime;
        o.assert_frames_are(&aus, &(0..aus.len()).collect::<Vec<_>>());
        assert!(o.log.junk_frames > 20, "{rt:?}: {}", o.log.junk_frames);
        let warnings = o.warnings();
        assert_eq!(warnings.len(), o.log.junk_frames, "{rt:?}: one warning per junk frame");
        for (n, w) in warnings.iter().enumerate() {
            let channel = [2, 9][n % 2];
            assert_eq!(
                **w,
                Warning::UnknownChannel {
                    channel,
                    len: 37 + n % 5
                },
                "{rt:?}"
            );
        }
        assert_eq!(
            o.methods(),
            ok(&["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN"]),
            "{rt:?}"
        );
        assert!(o
            .events
            .iter()
            .all(|e| !matches!(e, Event::Rtp(r) if (r.track, r.channel) != (0, 0))));
        clean_end(&o);
    }
}

#[test]
fn oversized_or_endless_responses_fail_at_once() {
    let small = Limits {
        max_header_bytes: 8192,
        ..Limits::default()
    };
    let cases = [
        (
            Misbehaviour::HugeContentLength(Method::Describe),
            Limits::default(),
            FramingError::BodyTooLarge {
                len: HUGE_CONTENT_LENGTH,
                limit: 1024 * 1024,
            },
            ok(&["OPTIONS"]),
        ),
        (
            Misbehaviour::EndlessHeaders(Method::Options),
            Limits::default(),
            FramingError::HeaderTooLarge { limit: 64 * 1024 },
            vec![],
        ),
        (
            Misbehaviour::LongHeaderLine(Method::Setup),
            small,
            FramingError::HeaderTooLarge { limit: 8192 },
            ok(&["OPTIONS", "DESCRIBE"]),
        ),
    ];
    let timeout = Duration::from_secs(10);
    let runs: Vec<_> = cases
        .iter()
        .map(|(m, limits, _, _)| {
            let plan = Plan::video(aus()).with(m.clone());
            let opts = opts(timeout).with_limits(*limits);
            thread::spawn(move || run_all(&plan, false, &opts, TO_THE_END))
        })
        .collect();
    for (run, (m, _, error, before)) in runs.into_iter().zip(cases) {
        for o in run.join().unwrap_or_else(|e| std::panic::resume_unwind(e)) {
            let rt = o.runtime;
            let closed = o.closed();
            assert_eq!(
                closed.error,
                Some(Error::Protocol(error.clone().into())),
                "{rt:?} {m:?}"
            );
            assert!(
                closed.session_elapsed < Duration::from_secs(2),
                "{rt:?} {m:?}: closed after {:?} (timeout {timeout:?})",
                closed.session_elapsed
            );
            assert_eq!(o.methods(), before, "{rt:?} {m:?}");
            // The client closed the connection; an endless response was cut short.
            assert!(
                matches!(o.log.end, End::ClientClosed | End::WriteFailed),
                "{rt:?} {m:?}: {:?}",
                o.log.end
            );
            assert!(o.log.hostile_bytes < ENDLESS_CAP, "{rt:?} {m:?}");
            assert_eq!(
                o.log.requests.len(),
                before.len() + 1,
                "{rt:?} {m:?}: no request after the error"
            );
        }
    }
}

#[test]
fn a_close_inside_a_frame_drops_the_partial_frame() {
    let aus = aus();
    let plan = Plan::video(aus.clone()).with(Misbehaviour::CloseInside(23));
    for o in run_all(&plan, false, &opts(Duration::from_secs(10)), TO_THE_END) {
        let rt = o.runtime;
        assert_eq!(o.log.end, End::ClosedInsideFrame, "{rt:?}");
        o.assert_frames_are(&aus, &(0..23).collect::<Vec<_>>());
        let closed = o.closed();
        assert!(
            matches!(&closed.error, Some(Error::Connection(m)) if m.message().contains("closed by the server while playing")),
            "{rt:?}: {closed:?}"
        );
        assert!(closed.session_elapsed < Duration::from_secs(2), "{rt:?}: {closed:?}");
        assert_eq!(o.warnings(), Vec::<&Warning>::new(), "{rt:?}");
        // The packets of frame 23 that arrived whole were seen as RTP.
        let rtp = o.events.iter().filter(|e| matches!(e, Event::Rtp(_))).count();
        assert_eq!(rtp, o.log.video_packets, "{rt:?}");
    }
}

#[test]
fn a_frame_over_the_limit_is_dropped_and_the_stream_goes_on() {
    let mut aus = aus();
    aus[17] = synthetic_au(17, false, 300_000);
    let limit = 100_000;
    let opts = opts(Duration::from_secs(10)).with_max_frame_bytes(limit);
    let plan = Plan::video(aus.clone());
    let expected: Vec<usize> = (0..aus.len()).filter(|i| *i != 17).collect();
    for o in run_all(&plan, false, &opts, TO_THE_END) {
        let rt = o.runtime;
        o.assert_frames_are(&aus, &expected);
        assert!(o.videos().iter().all(|v| v.frame.loss == 0), "{rt:?}");
        assert_eq!(
            o.warnings(),
            [&Warning::Depacketize {
                track: 0,
                error: DepacketizeError::FrameTooLarge { codec: "H.264", limit },
            }],
            "{rt:?}"
        );
        // The warning comes after frame 16 and before frame 18.
        let at = |pred: &dyn Fn(&Event) -> bool| o.events.iter().position(pred).unwrap();
        let warning = at(&|e| matches!(e, Event::Warning(_)));
        let before = at(&|e| matches!(e, Event::Video(v) if v.frame.timestamp == video_timestamp(16)));
        let after = at(&|e| matches!(e, Event::Video(v) if v.frame.timestamp == video_timestamp(18)));
        assert!(before < warning && warning < after, "{rt:?}");
        clean_end(&o);
    }
}

#[test]
fn a_401_after_valid_credentials_is_retried_once_then_fails() {
    // A: DESCRIBE always refused (Digest). B: credentials required and
    // accepted (Basic), until SETUP, which is always refused.
    let a = Plan {
        challenge: Challenge::Digest,
        ..Plan::video(aus())
    }
    .with(Misbehaviour::Unauthorized(Method::Describe));
    let b = Plan {
        credentials: Some((USER.into(), PASSWORD.into())),
        ..Plan::video(aus())
    }
    .with(Misbehaviour::Unauthorized(Method::Setup));
    let opts = opts(Duration::from_secs(10));
    let (a, b) = {
        let o = opts.clone();
        let ta = thread::spawn(move || run_all(&a, true, &o, TO_THE_END));
        let tb = thread::spawn(move || run_all(&b, true, &opts, TO_THE_END));
        let join = |t: thread::JoinHandle<Vec<Outcome>>| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (join(ta), join(tb))
    };
    let refused = |method: Method| {
        Some(Error::Response {
            method,
            status: 401,
            reason: "Unauthorized (credentials rejected)".into(),
        })
    };
    let basic = format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()));
    for o in a {
        let rt = o.runtime;
        let m = |s: &str, st: u16| (s.to_string(), st);
        assert_eq!(
            o.methods(),
            [m("OPTIONS", 200), m("DESCRIBE", 401), m("DESCRIBE", 401)],
            "{rt:?}"
        );
        assert_eq!(o.closed().error, refused(Method::Describe), "{rt:?}");
        assert_eq!(o.log.methods(), ["OPTIONS", "DESCRIBE", "DESCRIBE"], "{rt:?}");
        assert_eq!(o.log.requests[1].header("Authorization"), None, "{rt:?}");
        let retry = o.log.requests[2].header("Authorization").unwrap_or("");
        assert!(
            retry.starts_with("Digest ") && retry.contains(&format!("username=\"{USER}\"")),
            "{rt:?}: {retry}"
        );
        assert_eq!(o.log.end, End::ClientClosed, "{rt:?}");
    }
    for o in b {
        let rt = o.runtime;
        let m = |s: &str, st: u16| (s.to_string(), st);
        assert_eq!(
            o.methods(),
            [
                m("OPTIONS", 401),
                m("OPTIONS", 200),
                m("DESCRIBE", 200),
                m("SETUP", 401),
                m("SETUP", 401)
            ],
            "{rt:?}"
        );
        assert_eq!(o.closed().error, refused(Method::Setup), "{rt:?}");
        assert_eq!(
            o.log.methods(),
            ["OPTIONS", "OPTIONS", "DESCRIBE", "SETUP", "SETUP"],
            "{rt:?}"
        );
        let auth: Vec<Option<&str>> = o.log.requests.iter().map(|r| r.header("Authorization")).collect();
        let valid = Some(basic.as_str());
        assert_eq!(auth, [None, valid, valid, valid, valid], "{rt:?}");
        assert_eq!(o.log.end, End::ClientClosed, "{rt:?}");
    }
}
