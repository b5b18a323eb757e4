//! Relays (`ServerOptions::relays`, `serve --relay NAME=URL`), on the tokio and the smol server, with
//! GStreamer's RTSP server as the upstream camera:
//! - ffprobe, GStreamer's rtspsrc and our client read the relayed path at once, each in real time from a
//!   keyframe, while the upstream is pulled once (over TCP by the tokio server's relay, over UDP by the
//!   smol server's);
//! - the upstream killed and started again mid-stream: the reader stays connected, the relay reports the
//!   upstream down then up, and the reader's frames go on after a gap, with timestamps that only move
//!   forward (a clean discontinuity, no hang, no error);
//! - a reader that stops reading is dropped while another keeps real time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rtsp_toolkit_conformance::peers::{
    ffprobe_count_frames, free_port, gst_fakesink_frames, gst_rtspsrc_h264, parse_ffprobe_counts, run_bounded,
    GstServer,
};
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_core::client::{ClientOptions, Event, Transport};
use rtsp_toolkit_core::server::{CloseReason, ServerEvent};
use rtsp_toolkit_media::serving::relay::RelaySpec;
use rtsp_toolkit_tokio::server::{EventHook, ServerOptions};

/// The server's events, as its hook gets them.
type Events = Arc<Mutex<Vec<ServerEvent>>>;

/// Our server relaying `upstream` as `cam`, recording its events.
fn relay(runtime: ServerRuntime, upstream: &str, tune: impl FnOnce(&mut ServerOptions)) -> (TestServer, Events) {
    let events: Events = Arc::default();
    let sink = events.clone();
    let mut options = ServerOptions {
        relays: vec![RelaySpec::parse(&format!("cam={upstream}")).unwrap()],
        events: Some(EventHook::new(move |_, e| sink.lock().unwrap().push(e.clone()))),
        ..ServerOptions::default()
    };
    tune(&mut options);
    let dir = std::env::temp_dir().join(format!("relay-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    (TestServer::with_options(runtime, dir, options), events)
}

/// One video frame as our client got it: when, its RTP timestamp (extended), keyframe, loss.
#[derive(Debug, Clone, Copy)]
struct Got {
    at: Instant,
    ts: i64,
    key: bool,
    loss: u32,
}

/// Our blocking client on `url` for `for_`: its video frames and its close error.
fn our_reader(url: &str, for_: Duration) -> (Vec<Got>, Option<String>) {
    let stop = rtsp_toolkit_core::stop::StopSignal::new();
    let session =
        rtsp_toolkit_blocking::Session::open_with_stop(url, ClientOptions::default(), stop.clone()).expect("open");
    let end = Instant::now() + for_;
    let s = stop.clone();
    thread::spawn(move || {
        thread::sleep(for_);
        s.stop();
    });
    let (mut frames, mut error) = (Vec::new(), None);
    let hard = end + Duration::from_secs(10);
    for event in session {
        match event {
            Event::Video(v) => frames.push(Got {
                at: Instant::now(),
                ts: v.extended_timestamp,
                key: v.frame.keyframe,
                loss: v.frame.loss,
            }),
            Event::Closed(c) => error = c.error.map(|e| e.to_string()),
            _ => {}
        }
        assert!(Instant::now() < hard, "our client did not stop");
    }
    (frames, error)
}

#[test]
fn ffprobe_gstreamer_and_our_client_read_a_relayed_camera_at_once() {
    let upstream = GstServer::start(None);
    // The tokio server's relay takes the upstream over TCP, the smol server's over UDP.
    for (runtime, transport) in [
        (ServerRuntime::Tokio, Transport::Tcp),
        (ServerRuntime::Smol, Transport::Udp),
    ] {
        let rt = runtime.name();
        let (server, events) = relay(runtime, &upstream.url("h264_aac.mp4"), |o| {
            o.relays[0].transport = transport
        });
        let url = server.url("cam");
        server.wait_for_describe(&url, 200, Duration::from_secs(15));
        let u = url.clone();
        let ffprobe = thread::spawn(move || {
            run_bounded(
                ffprobe_count_frames(&u, "tcp", &["-read_intervals", "%+3"]),
                Duration::from_secs(20),
            )
        });
        let u = url.clone();
        let gst = thread::spawn(move || run_bounded(gst_rtspsrc_h264(&u), Duration::from_secs(4)));
        let (frames, error) = our_reader(&url, Duration::from_secs(3));
        assert!(error.is_none(), "{rt}: {error:?}");
        assert!(frames[0].key, "{rt}: the first frame is a keyframe");
        assert!(frames.iter().all(|f| f.loss == 0), "{rt}: no loss");
        // 25 fps; up to a second (one GOP) before the first keyframe.
        assert!(
            (40..=80).contains(&frames.len()),
            "{rt}: {} frames in 3 s",
            frames.len()
        );
        let (out, err) = ffprobe.join().unwrap();
        let counts = parse_ffprobe_counts(&out);
        let video = counts.iter().find(|(c, _)| c == "h264").map_or(0, |c| c.1);
        assert!((40..=80).contains(&video), "{rt}: ffprobe {counts:?} {err}");
        let (out, err) = gst.join().unwrap();
        let buffers = gst_fakesink_frames(&out);
        assert!(
            (25..=100).contains(&buffers),
            "{rt}: GStreamer {buffers} buffers in 4 s: {err}"
        );
        let up = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ServerEvent::Upstream { up: true, .. }))
            .count();
        // The file is 5 s: GStreamer's server ends it and the relay opens it again.
        assert!(
            (1..=3).contains(&up),
            "{rt}: the upstream was opened {up} times, once per play of the file"
        );
    }
}

#[test]
fn the_upstream_killed_and_started_again_is_a_clean_discontinuity() {
    for runtime in [ServerRuntime::Tokio, ServerRuntime::Smol] {
        let rt = runtime.name();
        let port = free_port();
        let upstream = GstServer::start_on(Some(port), None, &[]);
        let (server, events) = relay(runtime, &upstream.url("h264_aac.mp4"), |_| {});
        let url = server.url("cam");
        server.wait_for_describe(&url, 200, Duration::from_secs(15));
        let u = url.clone();
        let reader = thread::spawn(move || our_reader(&u, Duration::from_secs(7)));
        thread::sleep(Duration::from_millis(2000));
        let killed = Instant::now();
        drop(upstream);
        thread::sleep(Duration::from_millis(1000));
        let upstream = GstServer::start_on(Some(port), None, &[]);
        let restarted = Instant::now();
        let (frames, error) = reader.join().unwrap();
        drop(upstream);
        assert!(error.is_none(), "{rt}: the reader saw no error: {error:?}");
        let before = frames.iter().filter(|f| f.at < killed).count();
        let after: Vec<&Got> = frames.iter().filter(|f| f.at > restarted).collect();
        assert!(before >= 25, "{rt}: {before} frames before the kill");
        assert!(after.len() >= 25, "{rt}: {} frames after the restart", after.len());
        assert!(after[0].key, "{rt}: the new upstream's frames start at a keyframe");
        assert!(
            frames.windows(2).all(|w| w[1].ts > w[0].ts),
            "{rt}: timestamps only move forward"
        );
        let gap = frames
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at))
            .max()
            .unwrap();
        assert!(gap >= Duration::from_millis(800), "{rt}: the gap was {gap:?}");
        assert!(
            after[0].at.duration_since(restarted) < Duration::from_secs(4),
            "{rt}: frames resumed {:?} after the restart",
            after[0].at.duration_since(restarted)
        );
        let ups: Vec<bool> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Upstream { up, .. } => Some(*up),
                _ => None,
            })
            .collect();
        assert!(ups.first() == Some(&true) && ups.contains(&false), "{rt}: {ups:?}");
        assert!(ups.iter().filter(|u| **u).count() >= 2, "{rt}: up again: {ups:?}");
    }
}

#[test]
fn a_reader_that_stops_reading_is_dropped_while_another_keeps_real_time() {
    let upstream = GstServer::start(None);
    for runtime in [ServerRuntime::Tokio, ServerRuntime::Smol] {
        let rt = runtime.name();
        let (server, events) = relay(runtime, &upstream.url("h264_aac.mp4"), |o| {
            o.write_stall = Duration::from_secs(1);
            o.send_buffer = Some(4096);
        });
        let url = server.url("cam");
        server.wait_for_describe(&url, 200, Duration::from_secs(15));
        // A reader that plays and then reads nothing, with a small receive buffer.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.local_addr().into()).unwrap();
        let mut stalled: TcpStream = socket.into();
        stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut session = String::new();
        for (cseq, (method, uri, extra)) in [
            ("DESCRIBE", url.clone(), String::new()),
            (
                "SETUP",
                format!("{url}/trackID=0"),
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n".to_owned(),
            ),
            ("PLAY", url.clone(), String::new()),
        ]
        .into_iter()
        .enumerate()
        {
            let s = if session.is_empty() {
                String::new()
            } else {
                format!("Session: {session}\r\n")
            };
            write!(
                stalled,
                "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n{s}{extra}\r\n",
                cseq + 1
            )
            .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stalled.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            assert!(head.starts_with("RTSP/1.0 200"), "{rt}: {head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0u8; len];
            stalled.read_exact(&mut body).unwrap();
            if let Some(id) = head.lines().find_map(|l| l.strip_prefix("Session: ")) {
                session = id.split(';').next().unwrap().trim().to_owned();
            }
        }
        // Another reader meanwhile, in real time.
        let (frames, error) = our_reader(&url, Duration::from_secs(4));
        assert!(error.is_none(), "{rt}: {error:?}");
        let gap = frames
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at))
            .max()
            .unwrap();
        assert!(
            gap < Duration::from_millis(500),
            "{rt}: the reading client waited {gap:?} between frames"
        );
        assert!(frames.len() >= 60, "{rt}: {} frames in 4 s", frames.len());
        let dropped = events.lock().unwrap().iter().any(|e| {
            matches!(
                e,
                ServerEvent::Closed {
                    reason: CloseReason::NotReading(_) | CloseReason::SlowReader,
                    ..
                }
            )
        });
        assert!(dropped, "{rt}: the reader that stopped reading was dropped");
        drop(stalled);
    }
}

#[test]
fn a_relay_logs_in_to_its_upstream_with_the_urls_credentials() {
    let upstream = GstServer::start(Some(("cam", "s3cret", "digest")));
    let (server, events) = relay(
        ServerRuntime::Tokio,
        &upstream.url_with("cam:s3cret", "h264_aac.mp4"),
        |_| {},
    );
    let url = server.url("cam");
    server.wait_for_describe(&url, 200, Duration::from_secs(15));
    let (frames, error) = our_reader(&url, Duration::from_secs(2));
    assert!(
        error.is_none() && frames.len() >= 20,
        "{} frames, {error:?}",
        frames.len()
    );
    // Wrong credentials: the upstream is reported down with the refusal, and the path is not live.
    let (server, events_bad) = relay(
        ServerRuntime::Tokio,
        &upstream.url_with("cam:n0tright", "h264_aac.mp4"),
        |_| {},
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        let found = events_bad.lock().unwrap().iter().find_map(|e| match e {
            ServerEvent::Upstream { up: false, reason, .. } => reason.clone(),
            _ => None,
        });
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "no upstream event");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(reason.contains("401") || reason.contains("credentials"), "{reason}");
    assert!(!reason.contains("n0tright"), "no password in {reason}");
    assert_eq!(server.describe_status(&server.url("cam")), 404);
    drop(events);
}
