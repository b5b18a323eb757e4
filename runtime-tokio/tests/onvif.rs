//! ONVIF end to end on loopback, on every server runtime: the metadata
//! track served from a sidecar file (`NAME.meta`, see
//! `rtsp_toolkit_media::sidecar`) to our client and to ffprobe, and our
//! client's audio backchannel into our server's WAV files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use rtsp_toolkit_conformance::servers::{ServerRuntime, TestServer};
use rtsp_toolkit_tokio::core::client::BackchannelCodec;
use rtsp_toolkit_tokio::core::codec::{g711, g722};
use rtsp_toolkit_tokio::{BackchannelAudio, ClientOptions, Event, ServerOptions, Session, TrackSelection, Transport};

rtsp_toolkit_conformance::on_every_server!(
    #[tokio::test]
    sidecar_documents_arrive_whole_with_their_times,
    ffprobe_plays_a_file_with_a_metadata_track,
    backchannel_audio_arrives_whole_in_the_servers_wav,
    g722_backchannel_audio_arrives_whole_in_the_servers_wav,
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

/// Our client sends 1.02 s of audio on the backchannel while playing a
/// file; the server's WAV for the session holds exactly those samples
/// (G.711 values, so the mu-law round trip changes nothing).
async fn backchannel_audio_arrives_whole_in_the_servers_wav(runtime: ServerRuntime) {
    // A sweep over every mu-law code but 0x7F (negative zero), 8160 samples.
    let pcm: Vec<i16> = (0..8160u32)
        .map(|i| (i * 7 % 256) as u8)
        .map(|c| if c == 0x7f { 0xff } else { c })
        .map(g711::ulaw_to_linear)
        .collect();
    let (codec, rate, got) = backchannel_into_our_server(runtime, BackchannelCodec::Pcmu, &pcm, 8000).await;
    assert_eq!((codec.as_str(), rate), ("PCMU", 8000));
    assert_eq!(got.len(), pcm.len());
    assert!(got == pcm, "the samples differ");
}

/// The same with the server offering G.722 (`ServerConfig::backchannel_codec`):
/// the WAV, at 16 kHz, is exactly the core's decoding of the core's encoding
/// of what was sent (one encoder state across the packets, in order).
async fn g722_backchannel_audio_arrives_whole_in_the_servers_wav(runtime: ServerRuntime) {
    let pcm: Vec<i16> = (0..16_000)
        .map(|i| ((f64::from(i) * 2.0 * std::f64::consts::PI / 37.0).sin() * 7000.0) as i16)
        .collect();
    let (codec, rate, got) = backchannel_into_our_server(runtime, BackchannelCodec::G722, &pcm, 16_000).await;
    assert_eq!((codec.as_str(), rate), ("G722", 16_000));
    let mut codes = Vec::new();
    g722::Encoder::new().encode(&pcm, &mut codes);
    let mut expected = Vec::new();
    g722::Decoder::new().decode(&codes, &mut expected);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the samples differ");
}

/// Sends `pcm` (mono at `rate`) on the backchannel of our server offering
/// `offer`, while playing a file: the codec of the backchannel track set up,
/// and the rate and samples of the server's WAV for the session.
async fn backchannel_into_our_server(
    runtime: ServerRuntime,
    offer: BackchannelCodec,
    pcm: &[i16],
    rate: u32,
) -> (String, u32, Vec<i16>) {
    let dir = std::env::temp_dir().join(format!(
        "rtsp-toolkit-onvif-bc-{}-{offer:?}-{}",
        runtime.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media");
    let mut options = ServerOptions {
        backchannel_dir: Some(dir.clone()),
        ..ServerOptions::default()
    };
    options.config.backchannel_codec = offer;
    let server = TestServer::with_options(runtime, &fixtures, options);
    let audio = BackchannelAudio::new();
    audio.push_pcm(pcm, rate, 1).unwrap();
    audio.close();
    let mut session = Session::open(
        &server.url("h264_aac.mp4"),
        ClientOptions::default().with_backchannel(audio.clone()),
    )
    .unwrap();
    let mut setups = Vec::new();
    let run = async {
        while let Some(e) = session.next().await {
            match &e {
                Event::Method(m) if m.track.is_some() => setups.push(m.track.clone().unwrap()),
                Event::Warning(w) => panic!("{w}"),
                Event::Closed(c) => assert!(c.error.is_none(), "{c:?}"),
                _ => {}
            }
            if audio.is_done() {
                session.stop();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("session ended in time");
    assert_eq!(setups.len(), 3);
    assert_eq!(audio.sent(), pcm.len() as u64);
    // The server completes the file when the connection ends.
    let mut wav = Vec::new();
    for _ in 0..100 {
        let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        if let [file] = &files[..] {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("h264_aac.mp4-") && name.ends_with(".wav"), "{name}");
            wav = std::fs::read(file).unwrap();
            if wav.len() >= 44
                && u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize == wav.len() - 44
                && wav.len() > 44
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(&wav[..4], b"RIFF");
    let wav_rate = u32::from_le_bytes(wav[24..28].try_into().unwrap());
    let got: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    (setups[2].codec.clone(), wav_rate, got)
}

/// Our client's backchannel into GStreamer's ONVIF server
/// (`RTSPOnvifServer`, `RTSPOnvifMediaFactory`, through
/// `scripts/peers/gst-rtsp-server.py --onvif-backchannel`): GStreamer
/// decodes exactly the samples sent (over TCP; over UDP, at least 90 % of
/// them: a datagram sent before GStreamer's backchannel pipeline listens,
/// or after its TEARDOWN, may be lost).
#[tokio::test]
async fn backchannel_into_gstreamers_onvif_server() {
    backchannel_into_gstreamer(Transport::Tcp).await;
}

#[tokio::test]
async fn backchannel_into_gstreamers_onvif_server_over_udp() {
    backchannel_into_gstreamer(Transport::Udp).await;
}

/// Sends `audio` on the backchannel of GStreamer's ONVIF server (the peer
/// script with `--onvif-backchannel OUT` and `extra` arguments) over
/// `transport`: the codec of the backchannel track set up (it must be track
/// 2, after the file's video and audio), and what GStreamer decoded to OUT
/// once at least `expect` samples are there (or after 10 s).
async fn backchannel_to_gstreamer(
    audio: &BackchannelAudio,
    transport: Transport,
    extra: &[&str],
    expect: usize,
) -> (Option<String>, Vec<i16>) {
    let tag = extra.join("-");
    let out = std::env::temp_dir().join(format!(
        "rtsp-toolkit-onvif-gst-{transport}{tag}-{}.raw",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&out);
    let args: Vec<String> = ["--onvif-backchannel", out.to_str().unwrap()]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
    let gst = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rtsp_toolkit_conformance::peers::GstServer::start_with(None, &args)
    })
    .await
    .unwrap();
    let mut session = Session::open(
        &gst.url("h264_aac.mp4"),
        ClientOptions::default()
            .with_backchannel(audio.clone())
            .with_transport(transport),
    )
    .unwrap();
    let mut codec = None;
    // GStreamer's backchannel pipeline drops what it has not decoded yet at
    // TEARDOWN: stop 500 ms after the last packet (the file's video keeps
    // the loop awake).
    let mut done_at = None;
    let run = async {
        while let Some(e) = session.next().await {
            match &e {
                Event::Method(m) => {
                    if let Some(t) = m.track.as_ref().filter(|t| t.index == 2) {
                        codec = Some(t.codec.clone());
                    }
                }
                Event::Closed(c) => assert!(c.error.is_none(), "{c:?}"),
                Event::Warning(w) => panic!("{w:?}"),
                _ => {}
            }
            if audio.is_done()
                && done_at.get_or_insert_with(std::time::Instant::now).elapsed() >= Duration::from_millis(500)
            {
                session.stop();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("session ended in time");
    // GStreamer writes as it receives; wait for the last packets (up to 10 s on a busy machine).
    let mut raw = Vec::new();
    for _ in 0..200 {
        raw = std::fs::read(&out).unwrap_or_default();
        if raw.len() >= 2 * expect {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gst);
    let _ = std::fs::remove_file(&out);
    (
        codec,
        raw.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect(),
    )
}

async fn backchannel_into_gstreamer(transport: Transport) {
    let pcm: Vec<i16> = (0..12_000u32)
        .map(|i| (i * 11 % 256) as u8)
        .map(|c| if c == 0x7f { 0xff } else { c })
        .map(g711::ulaw_to_linear)
        .collect();
    let audio = BackchannelAudio::new();
    audio.push_pcm(&pcm, 8000, 1).unwrap();
    audio.close();
    let (codec, got) = backchannel_to_gstreamer(&audio, transport, &[], pcm.len()).await;
    assert_eq!(
        codec.as_deref(),
        Some("PCMU"),
        "GStreamer offers the backchannel after video and audio"
    );
    if transport == Transport::Tcp {
        assert_eq!(got.len(), pcm.len(), "every sample, once");
        assert!(got == pcm, "the samples differ");
    } else {
        // Whole packets of 160 samples, each a run of what was sent.
        assert!(
            got.len() * 10 >= pcm.len() * 9,
            "{} of {} samples",
            got.len(),
            pcm.len()
        );
        assert_eq!(got.len() % 160, 0);
        for packet in got.chunks(160) {
            assert!(pcm.windows(160).any(|w| w == packet), "a packet that was not sent");
        }
    }
}

/// A G.722 backchannel (`--onvif-backchannel-codec g722`): our client sends
/// 16 kHz audio as G.722, and GStreamer's decoder (`avdec_g722`) gives back
/// every sample, the tone's energy kept. The audio is queued at 8 kHz: the
/// session converts it to the codec's 16 kHz.
#[tokio::test]
async fn g722_backchannel_into_gstreamers_onvif_server() {
    // 1 s of a 400 Hz tone at 8 kHz.
    let pcm8: Vec<i16> = (0..8000)
        .map(|i| ((f64::from(i) * 2.0 * std::f64::consts::PI / 20.0).sin() * 6000.0) as i16)
        .collect();
    let audio = BackchannelAudio::new();
    audio.push_pcm(&pcm8, 8000, 1).unwrap();
    audio.close();
    let extra = ["--onvif-backchannel-codec", "g722"];
    let (codec, got) = backchannel_to_gstreamer(&audio, Transport::Tcp, &extra, 16000).await;
    assert_eq!(codec.as_deref(), Some("G722"));
    // 16000 samples at 16 kHz went out as 8000 codes.
    assert_eq!(got.len(), 16000, "every sample, once");
    // The tone survived: its energy within 20 % of what was queued (the
    // codec and the 2x rate conversion are lossy, not exact).
    let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64;
    let ratio = energy(&got[2000..]) / energy(&pcm8[1000..]);
    assert!((ratio - 1.0).abs() < 0.2, "energy ratio {ratio}");
}
