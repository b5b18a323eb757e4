//! Our client against `retina` (the reference Rust RTSP client), frame by
//! frame, on the same fixtures served by GStreamer's rtsp-server on loopback.
//!
//! Each GStreamer session plays its own pipeline from the start of the file,
//! so both clients receive the same frames; RTP timestamps start at a random
//! offset per session, so timestamps are compared relative to each track's
//! first frame. retina strips in-band SPS/PPS/VPS from frame data (it keeps
//! them as stream parameters); our frames keep every NAL unit of the access
//! unit, so parameter-set NAL units are removed from ours before the bytes
//! are compared, and compared separately with retina's parameters.

use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{PlayOptions, Session as RetinaSession, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef, VideoParametersCodec};
use rtsp_toolkit_conformance::peers::GstServer;
use rtsp_toolkit_core::codec::VideoCodec;
use rtsp_toolkit_tokio::{ClientOptions, Event, Session};

/// One frame as both clients report it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    video: bool,
    /// RTP timestamp relative to the first frame of its track.
    rel_ts: i64,
    keyframe: bool,
    h265: bool,
    data: Vec<u8>,
}

fn has_cra(data: &[u8]) -> bool {
    split_annex_b(data)
        .iter()
        .any(|n| n.first().map(|b| (b >> 1) & 0x3f) == Some(21))
}

#[derive(Debug, Default)]
struct Run {
    frames: Vec<Frame>,
    /// Parameter-set NAL units (SPS/PPS/VPS), in the order seen.
    params: Vec<Vec<u8>>,
}

fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        nals.push(&data[s..]);
    }
    nals
}

fn is_param_set(codec: VideoCodec, nal: &[u8]) -> bool {
    match codec {
        VideoCodec::H264 => matches!(nal.first().map(|b| b & 0x1f), Some(7 | 8)),
        VideoCodec::H265 => matches!(nal.first().map(|b| (b >> 1) & 0x3f), Some(32..=34)),
        // No parameter sets; the retina comparison streams are H.264 and H.265.
        VideoCodec::Mjpeg => false,
    }
}

fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

async fn ours(url: &str) -> Run {
    let mut session = Session::open(url, ClientOptions::default()).unwrap();
    let mut run = Run::default();
    let mut first = [None::<i64>; 2];
    let collect = async {
        while let Some(e) = session.next().await {
            match e {
                Event::Video(v) => {
                    let base = *first[v.track].get_or_insert(v.extended_timestamp);
                    let nals = split_annex_b(&v.frame.data);
                    let (params, rest): (Vec<&[u8]>, Vec<&[u8]>) =
                        nals.into_iter().partition(|n| is_param_set(v.frame.codec, n));
                    for p in params {
                        if run.params.last().map(Vec::as_slice) != Some(p) && !run.params.iter().any(|q| q == p) {
                            run.params.push(p.to_vec());
                        }
                    }
                    run.frames.push(Frame {
                        video: true,
                        rel_ts: v.extended_timestamp - base,
                        keyframe: v.frame.keyframe,
                        h265: v.frame.codec == VideoCodec::H265,
                        data: annex_b(&rest),
                    });
                }
                Event::Audio(a) => {
                    let base = *first[a.track].get_or_insert(a.extended_timestamp);
                    run.frames.push(Frame {
                        video: false,
                        rel_ts: a.extended_timestamp - base,
                        keyframe: false,
                        h265: false,
                        data: a.frame.data.to_vec(),
                    });
                }
                Event::Closed(c) => assert_eq!(c.error, None),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("our session ended");
    run
}

/// retina does not end the session on RTCP BYE: stop after `expected`
/// frames, or when nothing arrived for 2 s.
async fn reference(url: &str, expected: usize) -> Run {
    let opts = SessionOptions::default().user_agent("rtsp-toolkit conformance".to_owned());
    let mut session = RetinaSession::describe(url::Url::parse(url).unwrap(), opts)
        .await
        .expect("retina DESCRIBE");
    let format = FrameFormat {
        h26x_framing: retina::codec::h26x::Framing::AnnexB,
        parameter_set_insertion: ParameterSetInsertion::Never,
        aac_framing: retina::codec::aac::Framing::Raw,
    };
    let mut video_stream = None;
    let picks: Vec<usize> = ["video", "audio"]
        .iter()
        .filter_map(|kind| session.streams().iter().position(|s| s.media() == *kind))
        .collect();
    for &i in &picks {
        if session.streams()[i].media() == "video" {
            video_stream = Some(i);
        }
        let setup = SetupOptions::default()
            .transport(Transport::Tcp(Default::default()))
            .frame_format(format);
        session.setup(i, setup).await.expect("retina SETUP");
    }
    let mut run = Run::default();
    if let Some(v) = video_stream {
        push_params(&mut run, session.streams()[v].parameters());
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("retina PLAY")
        .demuxed()
        .unwrap();
    let mut first = std::collections::HashMap::new();
    loop {
        let item = match tokio::time::timeout(Duration::from_secs(2), demuxed.next()).await {
            Ok(Some(item)) => item.expect("retina item"),
            Ok(None) | Err(_) => break,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                if f.has_new_parameters() {
                    push_params(&mut run, demuxed.streams()[f.stream_id()].parameters());
                }
                let base = *first.entry(f.stream_id()).or_insert(f.timestamp().timestamp());
                run.frames.push(Frame {
                    video: true,
                    rel_ts: f.timestamp().timestamp() - base,
                    keyframe: f.is_random_access_point(),
                    h265: false,
                    data: f.data().to_vec(),
                });
            }
            CodecItem::AudioFrame(f) => {
                let base = *first.entry(f.stream_id()).or_insert(f.timestamp().timestamp());
                run.frames.push(Frame {
                    video: false,
                    rel_ts: f.timestamp().timestamp() - base,
                    keyframe: false,
                    h265: false,
                    data: f.data().to_vec(),
                });
            }
            _ => {}
        }
        if run.frames.len() >= expected {
            break;
        }
    }
    run
}

fn push_params(run: &mut Run, params: Option<ParametersRef<'_>>) {
    let Some(ParametersRef::Video(v)) = params else { return };
    let sets: Vec<&[u8]> = match v.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => vec![sps, pps],
        VideoParametersCodec::H265 { vps, sps, pps } => vec![vps, sps, pps],
        _ => vec![],
    };
    for s in sets {
        // retina's parameter NAL units may carry an Annex B prefix; compare bare NAL units.
        let bare = split_annex_b(s).first().copied().unwrap_or(s).to_vec();
        if !run.params.contains(&bare) {
            run.params.push(bare);
        }
    }
}

async fn compare(server: &GstServer, name: &str, video: usize, audio: usize) {
    let url = server.url(name);
    // Both at once: each GStreamer session has its own pipeline from the start.
    let (ours, reference) = tokio::join!(ours(&url), reference(&url, video + audio));
    let count = |r: &Run, v: bool| r.frames.iter().filter(|f| f.video == v).count();
    assert_eq!(
        (count(&ours, true), count(&ours, false)),
        (video, audio),
        "{name}: our frame counts"
    );
    assert_eq!(
        (count(&reference, true), count(&reference, false)),
        (video, audio),
        "{name}: retina frame counts"
    );
    for v in [true, false] {
        let a: Vec<&Frame> = ours.frames.iter().filter(|f| f.video == v).collect();
        let b: Vec<&Frame> = reference.frames.iter().filter(|f| f.video == v).collect();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                x.rel_ts,
                y.rel_ts,
                "{name}: {} frame {i} timestamp",
                if v { "video" } else { "audio" }
            );
            // Keyframe flags differ by definition for H.265 CRA pictures: ours
            // is IRAP (what a decoder can start from, RASL pictures skipped),
            // retina's "random access point" is IDR/BLA-style closed-GOP only
            // (it marks CRA as not a RAP). Compare like with like.
            let ours_key = if x.h265 {
                x.keyframe && !has_cra(&x.data)
            } else {
                x.keyframe
            };
            if x.h265 && has_cra(&x.data) {
                assert!(x.keyframe, "{name}: frame {i}: a CRA picture is IRAP, a keyframe");
            }
            assert_eq!(
                ours_key,
                y.keyframe,
                "{name}: frame {i} keyframe flag; NAL header bytes ours {:02x?} retina {:02x?}",
                split_annex_b(&x.data)
                    .iter()
                    .map(|n| n.first().copied())
                    .collect::<Vec<_>>(),
                split_annex_b(&y.data)
                    .iter()
                    .map(|n| n.first().copied())
                    .collect::<Vec<_>>()
            );
            assert!(
                x.data == y.data,
                "{name}: {} frame {i} data differs ({} vs {} bytes)",
                if v { "video" } else { "audio" },
                x.data.len(),
                y.data.len()
            );
        }
    }
    if video > 0 {
        for p in &reference.params {
            assert!(
                ours.params.contains(p),
                "{name}: retina's parameter set {p:02x?} not seen in our frames"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_by_frame_against_retina() {
    let server = GstServer::start(None);
    // retina has no MP4A-LATM; PCMA is compared on the WAV fixture. The
    // files at once (each session has its own pipeline from the start of its
    // file, so they do not affect each other's frames).
    tokio::join!(
        compare(&server, "h264_aac.mp4", 125, 215),
        compare(&server, "h264_bframes.mp4", 125, 215),
        compare(&server, "h265_aac.mkv", 125, 217),
        compare(&server, "h265.mp4", 125, 0),
        compare(&server, "tone.aac", 0, 217),
        compare(&server, "pcm_16k_mono.wav", 0, 41),
    );
}

/// Offline: the committed captures replayed through our core, and their RTP
/// packets fed to retina's socket-free depacketizer (doc-hidden, unstable
/// entry points; hence the exact version pin). The RTP packets come from
/// our replay's `Rtp` events (header parsing is ours on both sides).
#[test]
fn captures_against_retina_depacketizer() {
    use retina::codec::Depacketizer as RetinaDepacketizer;
    use rtsp_toolkit_core::capture::{replay, Capture};
    use rtsp_toolkit_core::codec::TimestampUnroller;
    use std::num::{NonZeroU16, NonZeroU32};

    let mut checked = 0;
    for name in ["h264_aac", "h265", "pcm_16k_mono"] {
        let path = rtsp_toolkit_conformance::captures_dir().join(format!("{name}.rtspcap"));
        let cap = Capture::parse(&std::fs::read(&path).unwrap()).unwrap();
        let events = replay(&cap, ClientOptions::default(), std::time::Instant::now()).unwrap();
        let sdp = events
            .iter()
            .find_map(|e| match e {
                Event::Method(m) => m.sdp.clone(),
                _ => None,
            })
            .expect("DESCRIBE with SDP");
        let tracks: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Method(m) => m.track.clone(),
                _ => None,
            })
            .collect();
        let mut depacketizers: Vec<RetinaDepacketizer> = tracks
            .iter()
            .map(|t| {
                let media = &sdp.media[t.media_index];
                let fmtp = media
                    .attribute("fmtp")
                    .map(|v| v.split_once(' ').map(|(_, p)| p).unwrap_or(v).to_owned());
                let kind = if t.kind == rtsp_toolkit_core::sdp::MediaKind::Video {
                    "video"
                } else {
                    "audio"
                };
                RetinaDepacketizer::new(
                    kind,
                    &t.codec.to_ascii_lowercase(),
                    t.clock_rate,
                    t.channels.and_then(NonZeroU16::new),
                    fmtp.as_deref(),
                )
                .unwrap_or_else(|e| panic!("{name}: retina depacketizer for {}: {e}", t.codec))
            })
            .collect();
        for d in &mut depacketizers {
            d.set_frame_format(FrameFormat {
                h26x_framing: retina::codec::h26x::Framing::AnnexB,
                parameter_set_insertion: ParameterSetInsertion::Never,
                aac_framing: retina::codec::aac::Framing::Raw,
            });
        }
        let mut buf = retina::testutil::DepacketizeBuf::new(4 << 20);
        let mut timelines = vec![TimestampUnroller::new(); tracks.len()];
        let mut theirs: Vec<Vec<Frame>> = vec![Vec::new(); tracks.len()];
        let mut ours: Vec<Vec<Frame>> = vec![Vec::new(); tracks.len()];
        for e in &events {
            match e {
                Event::Rtp(r) => {
                    let t = &tracks[r.track];
                    let ext = timelines[r.track].extend(r.packet.timestamp);
                    let ts = retina::Timestamp::new(ext, NonZeroU32::new(t.clock_rate).unwrap(), 0).unwrap();
                    let meta = retina::rtp::PacketMeta {
                        ctx: retina::PacketContext::dummy(),
                        stream_id: r.track,
                        timestamp: ts,
                        sequence_number: r.packet.sequence_number,
                        ssrc: r.packet.ssrc,
                        mark: r.packet.marker,
                        loss: 0,
                    };
                    buf.push(&mut depacketizers[r.track], meta, &r.packet.payload).unwrap();
                    while let Some(item) = depacketizers[r.track].pull() {
                        match item.unwrap() {
                            CodecItem::VideoFrame(f) => theirs[r.track].push(Frame {
                                video: true,
                                rel_ts: f.timestamp().timestamp(),
                                keyframe: f.is_random_access_point(),
                                h265: false,
                                data: f.data().to_vec(),
                            }),
                            CodecItem::AudioFrame(f) => theirs[r.track].push(Frame {
                                video: false,
                                rel_ts: f.timestamp().timestamp(),
                                keyframe: false,
                                h265: false,
                                data: f.data().to_vec(),
                            }),
                            _ => {}
                        }
                    }
                }
                Event::Video(v) => {
                    let rest: Vec<&[u8]> = split_annex_b(&v.frame.data)
                        .into_iter()
                        .filter(|n| !is_param_set(v.frame.codec, n))
                        .collect();
                    let h265 = v.frame.codec == VideoCodec::H265;
                    let cra = h265 && has_cra(&annex_b(&rest));
                    ours[v.track].push(Frame {
                        video: true,
                        rel_ts: v.extended_timestamp,
                        // See frame_by_frame_against_retina: CRA is IRAP for us, not a RAP for retina.
                        keyframe: v.frame.keyframe && !cra,
                        h265: false,
                        data: annex_b(&rest),
                    });
                }
                Event::Audio(a) => ours[a.track].push(Frame {
                    video: false,
                    rel_ts: a.extended_timestamp,
                    keyframe: false,
                    h265: false,
                    data: a.frame.data.to_vec(),
                }),
                _ => {}
            }
        }
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(!a.is_empty(), "{name}: track {i} has no frames");
            // retina completes an access unit only when the next one starts
            // (or on the marker), as we do: the counts must be equal.
            assert_eq!(a.len(), b.len(), "{name}: track {i} frame count");
            for (j, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x, y, "{name}: track {i} frame {j}");
            }
            checked += a.len();
        }
    }
    assert!(checked > 100, "only {checked} frames compared");
}
