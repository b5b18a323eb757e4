//! What only the tokio client has, against GStreamer's rtsp-server on
//! loopback (on a multi-thread runtime): audio or video only, a forward
//! address, whole fixtures to their end; and a session dropped or opened
//! outside a runtime.
//!
//! The cases every runtime shares (GStreamer's rtsp-server with and without
//! auth, a closed port, a silent server) are in
//! `conformance/tests/runtime_peers.rs`.

use std::time::Duration;

use futures_util::StreamExt;
use rtsp_toolkit_conformance::events::{closed_error, methods};
use rtsp_toolkit_conformance::peers::GstServer;
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
async fn audio_only_and_video_only() {
    let server = GstServer::start(None);
    let opts = ClientOptions::default().with_video(false);
    let events = collect(&server.url("h264_aac.mp4"), opts, 20).await;
    assert_eq!(methods(&events).iter().filter(|(m, _)| m == "SETUP").count(), 1);
    assert_eq!(rtp_per_track(&events), [20, 0], "the one track is audio, track 0");
    let opts = ClientOptions::default().with_audio(false);
    let events = collect(&server.url("h265.mp4"), opts, 20).await;
    assert_eq!(closed_error(&events), None);
    assert_eq!(rtp_per_track(&events)[0], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_address_keeps_the_url() {
    let server = GstServer::start(None);
    let opts = ClientOptions::default().with_forward_address(format!("127.0.0.1:{}", server.port));
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
    let fixtures = [
        ("h264_aac.mp4", [125, 215]),
        ("h264_bframes.mp4", [125, 215]),
        ("h265_aac.mkv", [125, 217]),
        ("h265.mp4", [125, 0]),
        ("tone.aac", [217, 0]),
        ("pcm_16k_mono.wav", [41, 0]),
    ];
    // Every file at once: GStreamer gives each session its own pipeline.
    let plays = futures_util::future::join_all(fixtures.iter().map(|(name, _)| play_to_end(&server, name))).await;
    for ((name, expected), (events, frames)) in fixtures.into_iter().zip(plays) {
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
