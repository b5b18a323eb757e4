//! The tokio client against real servers on loopback: GStreamer's
//! rtsp-server (plain, Basic and Digest auth), a closed port and a silent
//! server.

use std::time::Duration;

use futures_util::StreamExt;
use rtsp_toolkit_conformance::peers::{free_port, GstServer};
use rtsp_toolkit_tokio::{ClientOptions, Error, Event, Session};

/// Collects events until the stream ends, stopping the session once
/// `stop_after_rtp` RTP packets arrived. Bounded by 30 s.
async fn collect(url: &str, opts: ClientOptions, stop_after_rtp: usize) -> Vec<Event> {
    let mut session = Session::open(url, opts).expect("open");
    let mut events = Vec::new();
    let mut rtp = 0;
    let run = async {
        while let Some(e) = session.next().await {
            if matches!(e, Event::Rtp(_)) {
                rtp += 1;
                if rtp == stop_after_rtp {
                    session.stop();
                }
            }
            events.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("session ended within 30 s");
    events
}

fn methods(events: &[Event]) -> Vec<(String, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Method(m) => Some((m.method.to_string(), m.status)),
            _ => None,
        })
        .collect()
}

fn closed_error(events: &[Event]) -> Option<Error> {
    match events.last() {
        Some(Event::Closed(c)) => c.error.clone(),
        other => panic!("last event is not Closed: {other:?}"),
    }
}

fn rtp_per_track(events: &[Event]) -> [usize; 2] {
    let mut n = [0; 2];
    for e in events {
        if let Event::Rtp(r) = e {
            n[r.track] += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_aac_from_gstreamer_then_teardown() {
    let server = GstServer::start(None);
    let events = collect(&server.url("h264_aac.mp4"), ClientOptions::default(), 200).await;
    assert_eq!(
        methods(&events),
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
    assert_eq!(closed_error(&events), None);
    let [video, audio] = rtp_per_track(&events);
    assert!(video > 0 && audio > 0, "video {video} audio {audio}");
    let describe = events
        .iter()
        .find_map(|e| match e {
            Event::Method(m) if m.method.as_str() == "DESCRIBE" => Some(m),
            _ => None,
        })
        .unwrap();
    let sdp = describe.sdp.as_ref().unwrap();
    assert!(sdp.media[0].codec_is("H264"));
    assert!(sdp.media[1].codec_is("MPEG4-GENERIC"));
    // Timings are monotonic and consistent.
    let mut last = Duration::ZERO;
    for e in &events {
        if let Event::Method(m) = e {
            assert!(m.session_elapsed >= last && m.elapsed <= m.session_elapsed);
            last = m.session_elapsed;
        }
    }
    // The video track carries H.264 payloads with the SDP's payload type.
    let pt = events.iter().find_map(|e| match e {
        Event::Rtp(r) if r.track == 0 => Some(r.packet.payload_type),
        _ => None,
    });
    assert_eq!(pt, Some(96));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_and_video_only() {
    let server = GstServer::start(None);
    let opts = ClientOptions {
        enable_video: false,
        ..Default::default()
    };
    let events = collect(&server.url("h264_aac.mp4"), opts, 20).await;
    assert_eq!(methods(&events).iter().filter(|(m, _)| m == "SETUP").count(), 1);
    assert_eq!(rtp_per_track(&events), [20, 0], "the one track is audio, track 0");
    let opts = ClientOptions {
        enable_audio: false,
        ..Default::default()
    };
    let events = collect(&server.url("h265.mp4"), opts, 20).await;
    assert_eq!(closed_error(&events), None);
    assert_eq!(rtp_per_track(&events)[0], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let server = GstServer::start(Some(("alice", "s3cret", "basic")));
    let events = collect(
        &server.url_with("alice:s3cret", "h264_aac.mp4"),
        ClientOptions::default(),
        50,
    )
    .await;
    let m = methods(&events);
    assert_eq!(m[1], ("DESCRIBE".into(), 401));
    assert_eq!(m[2], ("DESCRIBE".into(), 200));
    assert_eq!(closed_error(&events), None);
    assert!(rtp_per_track(&events)[0] > 0);

    let events = collect(
        &server.url_with("alice:wrong", "h264_aac.mp4"),
        ClientOptions::default(),
        1,
    )
    .await;
    match closed_error(&events) {
        Some(Error::Response { status: 401, .. }) => {}
        other => panic!("expected a 401 Response error, got {other:?}"),
    }
    assert_eq!(
        methods(&events).iter().filter(|(_, s)| *s == 401).count(),
        2,
        "one retry, no loop"
    );
    let msg = closed_error(&events).unwrap().to_string();
    assert!(!msg.contains("wrong"), "password in error message: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_with_reserved_characters() {
    let server = GstServer::start(Some(("bob", "p:a@ss", "digest")));
    let events = collect(
        &server.url_with("bob:p%3Aa%40ss", "h265_aac.mkv"),
        ClientOptions::default(),
        50,
    )
    .await;
    let m = methods(&events);
    assert!(
        m.contains(&("DESCRIBE".into(), 401)) && m.contains(&("PLAY".into(), 200)),
        "{m:?}"
    );
    assert_eq!(closed_error(&events), None);
    let events = collect(
        &server.url_with("bob:nope", "h265_aac.mkv"),
        ClientOptions::default(),
        1,
    )
    .await;
    assert!(matches!(
        closed_error(&events),
        Some(Error::Response { status: 401, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_address_keeps_the_url() {
    let server = GstServer::start(None);
    let opts = ClientOptions {
        forward_address: Some(format!("127.0.0.1:{}", server.port)),
        ..Default::default()
    };
    // GStreamer serves by path, so the URL's host may be anything.
    let events = collect("rtsp://camera.invalid:554/h264_aac.mp4", opts, 10).await;
    assert_eq!(closed_error(&events), None);
    match &events[0] {
        Event::Connect(c) => {
            assert_eq!(c.target, format!("127.0.0.1:{}", server.port));
            assert!(c.result.is_ok());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn closed_port_is_a_connection_error() {
    let port = free_port();
    let events = collect(&format!("rtsp://127.0.0.1:{port}/x"), ClientOptions::default(), 1).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[0], Event::Connect(c) if c.result.is_err()));
    assert!(
        matches!(closed_error(&events), Some(Error::Connection(_))),
        "{events:?}"
    );
}

#[tokio::test]
async fn silent_server_is_a_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(sock);
    });
    let opts = ClientOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let events = collect(&format!("rtsp://127.0.0.1:{port}/x"), opts, 1).await;
    match closed_error(&events) {
        Some(Error::Timeout { waiting_for, timeout }) => {
            assert_eq!(waiting_for, "response to OPTIONS");
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    match events.last() {
        Some(Event::Closed(c)) => assert!(c.session_elapsed >= Duration::from_millis(300)),
        _ => unreachable!(),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait for the server to give up"
    );
    hold.abort();
}

#[tokio::test]
async fn dropping_the_session_stops_it() {
    let stop = rtsp_toolkit_tokio::StopSignal::new();
    let port = free_port();
    let session = Session::open_with_stop(
        &format!("rtsp://127.0.0.1:{port}/x"),
        ClientOptions::default(),
        stop.clone(),
    )
    .unwrap();
    drop(session);
    assert!(stop.is_stopped());
}

#[test]
fn open_outside_a_runtime_is_an_error() {
    let err = Session::open("rtsp://127.0.0.1:1/x", ClientOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    let err = Session::open("http://x/", ClientOptions::default());
    assert!(err.is_err());
}

/// Plays a fixture to its end (the server's BYE on every track ends the
/// session) and counts frames per track.
async fn play_to_end(server: &GstServer, name: &str) -> (Vec<Event>, [usize; 2]) {
    let events = collect(&server.url(name), ClientOptions::default(), usize::MAX).await;
    let mut frames = [0; 2];
    for e in &events {
        match e {
            Event::Video(v) => frames[v.track] += 1,
            Event::Audio(a) => frames[a.track] += 1,
            _ => {}
        }
    }
    (events, frames)
}

/// Frame counts equal what `ffprobe -rtsp_transport tcp -count_frames`
/// counts on the same server (fixtures/media/README.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_fixtures_give_ffprobe_frame_counts() {
    let server = GstServer::start(None);
    for (name, expected) in [
        ("h264_aac.mp4", [125, 215]),
        ("h264_bframes.mp4", [125, 215]),
        ("h265_aac.mkv", [125, 217]),
        ("h265.mp4", [125, 0]),
        ("tone.aac", [217, 0]),
        ("pcm_16k_mono.wav", [41, 0]),
    ] {
        let (events, frames) = play_to_end(&server, name).await;
        assert_eq!(frames, expected, "{name}");
        assert_eq!(closed_error(&events), None, "{name}");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Loss(_))),
            "{name}: loss on loopback"
        );
        assert!(
            !events.iter().any(|e| matches!(e, Event::Warning(_))),
            "{name}: {:?}",
            events
                .iter()
                .filter(|e| matches!(e, Event::Warning(_)))
                .collect::<Vec<_>>()
        );
        // The first video frame is a keyframe that carries its parameter sets.
        if let Some(Event::Video(v)) = events.iter().find(|e| matches!(e, Event::Video(_))) {
            assert!(v.frame.keyframe && v.frame.new_parameters, "{name}");
            assert!(v.frame.data.starts_with(&[0, 0, 0, 1]), "{name}: Annex B");
        }
        // Audio frames: AAC has 1024 samples at 44.1 kHz, PCMA one sample per byte at 8 kHz.
        for e in &events {
            if let Event::Audio(a) = e {
                match a.frame.codec {
                    rtsp_toolkit_tokio::AudioCodec::Aac => {
                        assert_eq!(
                            (a.frame.sample_count, a.frame.sample_rate, a.frame.channels),
                            (1024, 44100, 2)
                        )
                    }
                    rtsp_toolkit_tokio::AudioCodec::Pcma => {
                        assert_eq!(a.frame.sample_count as usize, a.frame.data.len());
                        assert_eq!((a.frame.sample_rate, a.frame.channels), (8000, 1));
                    }
                    other => panic!("{name}: unexpected {other:?}"),
                }
            }
        }
    }
}
