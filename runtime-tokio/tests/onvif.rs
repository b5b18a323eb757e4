//! ONVIF end to end on loopback, on every server runtime: the metadata
//! track served from a sidecar file (`NAME.meta`, see
//! `rtsp_toolkit_media::sidecar`) to our client and to ffprobe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_tokio::{ClientOptions, Event, Session, TrackSelection};

rtsp_toolkit_conformance::on_every_server!(
    #[tokio::test]
    sidecar_documents_arrive_whole_with_their_times,
    ffprobe_plays_a_file_with_a_metadata_track,
);

/// The documents of the test sidecar: (seconds, document).
const DOCS: &[(f64, &str)] = &[
    (
        0.0,
        r#"<?xml version="1.0" encoding="UTF-8"?><tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:VideoAnalytics><tt:Frame UtcTime="2026-12-07T04:00:00Z"/></tt:VideoAnalytics></tt:MetadataStream>"#,
    ),
    (
        0.5,
        r#"<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:Event><wsnt:NotificationMessage xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"#,
    ),
    (1.25, "<tt:MetadataStream/>"),
    (3.0, ""),
];

/// A root with `h264_aac.mp4` and its sidecar `h264_aac.meta`; the fourth
/// document is 3000 bytes, several RTP packets.
fn root_with_sidecar(runtime: ServerRuntime, test: &str) -> (PathBuf, Vec<(f64, String)>) {
    let dir = std::env::temp_dir().join(format!(
        "rtsp-toolkit-onvif-{test}-{}-{}",
        runtime.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media");
    std::fs::copy(fixtures.join("h264_aac.mp4"), dir.join("h264_aac.mp4")).unwrap();
    let docs: Vec<(f64, String)> = DOCS
        .iter()
        .map(|&(t, d)| {
            let d = if d.is_empty() {
                format!("<tt:MetadataStream>{}</tt:MetadataStream>", "x".repeat(3000))
            } else {
                d.to_owned()
            };
            (t, d)
        })
        .collect();
    let mut text = String::from("# time document\n");
    // Out of order on purpose: the server sorts by time.
    for (t, d) in docs.iter().rev() {
        text.push_str(&format!("{t} {d}\n"));
    }
    std::fs::write(dir.join("h264_aac.meta"), text).unwrap();
    (dir, docs)
}

async fn sidecar_documents_arrive_whole_with_their_times(runtime: ServerRuntime) {
    let (dir, docs) = root_with_sidecar(runtime, "client");
    let server = TestServer::start(runtime, &dir);
    let url = server.url("h264_aac.mp4");
    for opts in [
        ClientOptions::default().with_metadata(true),
        ClientOptions::default().with_tracks(TrackSelection::All),
    ] {
        let mut session = Session::open(&url, opts).unwrap();
        let mut got = Vec::new();
        let mut events = Vec::new();
        let run = async {
            while let Some(e) = session.next().await {
                if let Event::Metadata(m) = &e {
                    got.push((m.track, m.extended_timestamp, m.frame.data.clone(), m.frame.loss));
                }
                events.push(e);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("session ended in time");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Warning(_) | Event::Loss(_))),
            "{events:?}"
        );
        assert!(matches!(events.last(), Some(Event::Closed(c)) if c.error.is_none()));
        assert_eq!(got.len(), docs.len(), "one event per document");
        let first = got[0].1;
        for ((track, ts, data, loss), (t, doc)) in got.iter().zip(&docs) {
            assert_eq!(*track, 2, "the third track");
            assert_eq!(ts - first, (t * 90_000.0) as i64, "{t}");
            assert_eq!(&data[..], doc.as_bytes());
            assert_eq!(*loss, 0);
        }
        // The SDP offers the track as ONVIF cameras do.
        let sdp = events
            .iter()
            .find_map(|e| match e {
                Event::Method(m) => m.sdp.clone(),
                _ => None,
            })
            .unwrap();
        let m = &sdp.media[2];
        assert_eq!((m.codec.as_str(), m.clock_rate), ("vnd.onvif.metadata", 90_000));
        assert_eq!(m.kind, rtsp_toolkit_tokio::core::sdp::MediaKind::Application);
    }
    // Without asking, the default selection stays video and audio.
    let mut session = Session::open(&url, ClientOptions::default()).unwrap();
    let mut setups = 0;
    let run = async {
        while let Some(e) = session.next().await {
            match &e {
                Event::Method(m) if m.track.is_some() => setups += 1,
                Event::Metadata(_) => panic!("metadata was not asked for"),
                Event::Video(_) => session.stop(),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.unwrap();
    assert_eq!(setups, 2);
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// ffprobe sees the metadata track as a data stream and still counts every
/// video and audio frame.
async fn ffprobe_plays_a_file_with_a_metadata_track(runtime: ServerRuntime) {
    let (dir, _) = root_with_sidecar(runtime, "ffprobe");
    let server = TestServer::start(runtime, &dir);
    let url = server.url("h264_aac.mp4");
    let out = tokio::task::spawn_blocking(move || {
        rtsp_toolkit_conformance::peers::ffprobe_count_frames(&url, "tcp", &[])
            .output()
            .expect("run ffprobe")
    });
    let out = tokio::time::timeout(Duration::from_secs(40), out)
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let counts = rtsp_toolkit_conformance::peers::parse_ffprobe_counts(&text);
    assert_eq!(
        counts[..2],
        [("h264".to_owned(), 125), ("aac".to_owned(), 216)],
        "{text}"
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
