//! Side-by-side depacketizer benchmark: rtsp-toolkit against retina 0.4.21
//! on the same RTP packet sequences.
//!
//! ```text
//! cargo bench -p rtsp-toolkit-conformance --bench depacketize
//! ```
//!
//! Inputs are generated deterministically at start (no files): a 1080p-like
//! H.264 stream (10 GOPs of 50 frames at 25 fps, IDR 150-250 KB, P frames
//! 5-15 KB, SPS + PPS in-band before every IDR, packetized with
//! rtsp-toolkit's packetizer at 1400 bytes: STAP-A + FU-A) and an AAC stream
//! (mpeg4-generic AAC-hbr, 44.1 kHz stereo, 2000 access units of 200-400
//! bytes, one per packet). Every packet is a whole serialized RTP packet, and
//! both sides start from those raw bytes and do per packet what their client
//! does: parse the RTP header, track sequence numbers (loss), extend the
//! timestamp, depacketize, pull frames.
//!
//! * Ours: `RtpPacket::parse` (of a `Bytes` clone of the packet), then
//!   `SequenceTracker`, `TimestampUnroller`, `Depacketizer::push` and `pull`.
//! * Retina's: `PacketHeader::validate` (of the `&[u8]`), then
//!   `InorderParser::rtp` (with its `Timeline`), `DepacketizeBuf::push`
//!   (which copies the payload into retina's ring buffer) and
//!   `Depacketizer::pull`.
//!
//! Each frame is consumed the same way on both sides (its length summed, the
//! frame passed through `black_box`, then dropped). A fresh depacketizer is
//! made for every pass.
//!
//! Before measuring, both outputs are checked frame by frame against what
//! was sent (count, timestamp, keyframe flag, data). Retina runs with Annex B
//! framing, no parameter set insertion and raw AAC; it always strips in-band
//! SPS/PPS, so ours is compared with its SPS/PPS NAL units removed. Any
//! difference panics (also under `cargo test --benches`, which runs only the
//! check and one iteration of each function).
//!
//! Criterion measures the groups `h264_1080p` and `aac` (functions
//! `rtsp_toolkit` and `retina`, throughput in RTP payload bytes). Then a
//! summary table is printed from its own interleaved timing: MB/s of RTP
//! payload, frames/s, the ratio ours/retina, allocations per frame, and the
//! cost of the payload copy that `DepacketizeBuf` adds to retina's side.
//!
//! Allocations: the workspace forbids `unsafe_code`, so a counting
//! `#[global_allocator]` cannot be written here. Instead the summary re-runs
//! this binary under `valgrind --tool=dhat` (when valgrind is on `PATH`) in
//! pass mode (`DEPACKETIZE_PASSES=<ours|retina>,<h264_1080p|aac>,<passes>`:
//! only the depacketize loop, no criterion) with 1 and 3 passes; the
//! difference of the allocation totals divided by the frames of two passes
//! is the steady-state count per frame (per-pass depacketizer setup
//! included; input generation and one-time initialization excluded).
//! `DEPACKETIZE_NO_VALGRIND=1` skips that. Pass mode also serves profiling
//! (`perf record`).

use std::hint::black_box;
use std::num::NonZeroU16;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use retina::client::rtp::InorderParser;
use retina::client::{SessionOptions, Timeline, UnknownRtcpSsrcPolicy};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion};
use rtsp_toolkit_conformance::rng::Rng;
use rtsp_toolkit_core::codec::{self, h264, Frame, SequenceTracker, TimestampUnroller};
use rtsp_toolkit_core::rtp::{RtpHeader, RtpPacket};
use rtsp_toolkit_core::sdp::{Media, Sdp};

/// A real 1920x1080 Main-profile SPS/PPS (from a camera's DESCRIBE).
const H264_FMTP: &str = "packetization-mode=1;profile-level-id=4d002a;\
    sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAoAAADAAgAAAMAfCA=,aO48gA==";
/// AAC-LC, 44.1 kHz, 2 channels (AudioSpecificConfig 0x1210).
const AAC_FMTP: &str = "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
    indexdeltalength=3;config=1210";

const MAX_RTP_PAYLOAD: usize = 1400;
const H264_GOPS: usize = 10;
const H264_GOP_FRAMES: usize = 50;
const AAC_FRAMES: usize = 2000;
/// Retina's ring buffer starts at the size its own tests use; it grows as needed.
const RETINA_RING: usize = 65536;

/// Retina's output format matching ours: Annex B, raw AAC, no SPS/PPS insertion.
const RETINA_FORMAT: FrameFormat = FrameFormat {
    h26x_framing: retina::codec::h26x::Framing::AnnexB,
    parameter_set_insertion: ParameterSetInsertion::Never,
    aac_framing: retina::codec::aac::Framing::Raw,
};

const PASSES_ENV: &str = "DEPACKETIZE_PASSES";
const NO_VALGRIND_ENV: &str = "DEPACKETIZE_NO_VALGRIND";

/// One recorded packet sequence and how both sides set up for it.
struct Stream {
    /// Criterion group name.
    name: &'static str,
    /// Whole RTP packets (12-byte header + payload), sharing one buffer.
    packets: Vec<Bytes>,
    /// Sum of the RTP payload sizes (the throughput unit).
    payload_bytes: u64,
    /// The access units that went in, as NAL units (H.264) or one AU (AAC).
    sent: Vec<SentFrame>,
    /// Our track description, from `Sdp::parse`.
    media: Media,
    retina_media: &'static str,
    retina_encoding: &'static str,
    clock_rate: u32,
    channels: Option<NonZeroU16>,
    fmtp: &'static str,
}

struct SentFrame {
    timestamp: u32,
    keyframe: bool,
    /// NAL units without start codes (H.264) or the raw AU (AAC, one element).
    units: Vec<Bytes>,
}

/// What a pass produced, in the same terms for both sides.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    frames: u64,
    data_bytes: u64,
}

/// A frame as the check compares it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    timestamp: u32,
    keyframe: bool,
    data: Vec<u8>,
}

fn sdp_media() -> (Media, Media) {
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 {H264_FMTP}\r\n\
         m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 {AAC_FMTP}\r\n"
    );
    let mut media = Sdp::parse(text.as_bytes()).expect("SDP").media;
    assert_eq!(media.len(), 2);
    let audio = media.pop().unwrap();
    (media.pop().unwrap(), audio)
}

/// Serializes the payloads of consecutive frames into RTP packets.
struct PacketWriter {
    buf: BytesMut,
    ends: Vec<usize>,
    seq: u16,
    ssrc: u32,
    payload_type: u8,
    payload_bytes: u64,
}

impl PacketWriter {
    fn new(seq: u16, ssrc: u32, payload_type: u8) -> Self {
        PacketWriter {
            buf: BytesMut::new(),
            ends: Vec::new(),
            seq,
            ssrc,
            payload_type,
            payload_bytes: 0,
        }
    }

    fn write(&mut self, timestamp: u32, marker: bool, payload: &[u8]) {
        let header = RtpHeader {
            sequence_number: self.seq,
            timestamp,
            ssrc: self.ssrc,
            marker,
            payload_type: self.payload_type,
        };
        header.write_packet(payload, &mut self.buf);
        self.ends.push(self.buf.len());
        self.seq = self.seq.wrapping_add(1);
        self.payload_bytes += payload.len() as u64;
    }

    /// The packets, each its own `Bytes` over one shared allocation.
    fn finish(self) -> (Vec<Bytes>, u64) {
        let all = self.buf.freeze();
        let mut start = 0;
        let packets = self
            .ends
            .iter()
            .map(|&end| {
                let p = all.slice(start..end);
                start = end;
                p
            })
            .collect();
        (packets, self.payload_bytes)
    }
}

fn h264_stream(media: Media) -> Stream {
    let params = media.h264().expect("fmtp").expect("H.264");
    let (sps, pps) = (params.sps[0].clone(), params.pps[0].clone());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut packetizer = h264::Packetizer::new(MAX_RTP_PAYLOAD);
    // Start near the wraps of both the sequence number and the timestamp.
    let mut w = PacketWriter::new(0xfe00, 0x1234_5678, 96);
    let mut timestamp: u32 = 0xfff0_0000;
    let mut sent = Vec::new();
    for _ in 0..H264_GOPS {
        for i in 0..H264_GOP_FRAMES {
            let keyframe = i == 0;
            let (size, header, first) = if keyframe {
                (rng.range(150_000, 250_000), 0x65, 0x88)
            } else {
                (rng.range(5_000, 15_000), 0x41, 0x9a)
            };
            // NAL header, then a body whose first bit is set (first_mb_in_slice = 0).
            let mut slice = vec![header, first];
            rng.append(size - 2, true, &mut slice);
            let mut units = Vec::new();
            if keyframe {
                units.push(sps.clone());
                units.push(pps.clone());
            }
            units.push(Bytes::from(slice));
            for (payload, marker) in packetizer.packetize(&units) {
                w.write(timestamp, marker, &payload);
            }
            sent.push(SentFrame {
                timestamp,
                keyframe,
                units,
            });
            timestamp = timestamp.wrapping_add(90_000 / 25);
        }
    }
    let (packets, payload_bytes) = w.finish();
    Stream {
        name: "h264_1080p",
        packets,
        payload_bytes,
        sent,
        media,
        retina_media: "video",
        retina_encoding: "h264",
        clock_rate: 90_000,
        channels: None,
        fmtp: H264_FMTP,
    }
}

fn aac_stream(media: Media) -> Stream {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut packetizer = codec::aac::Packetizer::new(MAX_RTP_PAYLOAD);
    let mut w = PacketWriter::new(0x8000, 0x8765_4321, 97);
    let mut timestamp: u32 = 0x7fff_0000;
    let mut sent = Vec::new();
    for _ in 0..AAC_FRAMES {
        let mut au = Vec::new();
        let size = rng.range(200, 400);
        rng.append(size, false, &mut au);
        let payloads = packetizer.packetize(&au);
        assert_eq!(payloads.len(), 1, "one AU per packet");
        w.write(timestamp, true, &payloads[0]);
        sent.push(SentFrame {
            timestamp,
            keyframe: false,
            units: vec![Bytes::from(au)],
        });
        timestamp = timestamp.wrapping_add(1024);
    }
    let (packets, payload_bytes) = w.finish();
    Stream {
        name: "aac",
        packets,
        payload_bytes,
        sent,
        media,
        retina_media: "audio",
        retina_encoding: "mpeg4-generic",
        clock_rate: 44_100,
        channels: NonZeroU16::new(2),
        fmtp: AAC_FMTP,
    }
}

/// One pass of our client path over `s`; `each` sees every frame.
fn run_ours(s: &Stream, mut each: impl FnMut(&Frame)) -> Totals {
    let mut d = codec::Depacketizer::new(&s.media, codec::DEFAULT_MAX_FRAME_BYTES).expect("our depacketizer");
    let mut seq = SequenceTracker::new();
    let mut unroll = TimestampUnroller::new();
    let mut t = Totals::default();
    for raw in &s.packets {
        let pkt = RtpPacket::parse(raw.clone()).expect("RTP packet");
        let lost = seq.observe(pkt.sequence_number);
        black_box(unroll.extend(pkt.timestamp));
        d.push(&pkt, lost).expect("our push");
        while let Some(frame) = d.pull() {
            t.frames += 1;
            t.data_bytes += match &frame {
                Frame::Video(v) => v.data.len(),
                Frame::Audio(a) => a.data.len(),
                Frame::Metadata(m) => m.data.len(),
            } as u64;
            each(&frame);
            black_box(frame);
        }
    }
    t
}

/// What retina's session path needs besides the depacketizer.
struct RetinaCtx {
    options: SessionOptions,
    conn: retina::ConnectionContext,
    stream: retina::StreamContext,
    pkt: retina::PacketContext,
}

impl RetinaCtx {
    fn new() -> Self {
        RetinaCtx {
            options: SessionOptions::default(),
            conn: retina::ConnectionContext::dummy(),
            stream: retina::StreamContext::dummy(),
            pkt: retina::PacketContext::dummy(),
        }
    }
}

/// One pass of retina's client path over `s`; `each` sees every frame.
fn run_retina(s: &Stream, ctx: &RetinaCtx, mut each: impl FnMut(&CodecItem)) -> Totals {
    let mut d = retina::codec::Depacketizer::new(
        s.retina_media,
        s.retina_encoding,
        s.clock_rate,
        s.channels,
        Some(s.fmtp),
    )
    .expect("retina depacketizer");
    d.set_frame_format(RETINA_FORMAT);
    let mut ring = retina::testutil::DepacketizeBuf::new(RETINA_RING);
    let mut parser = InorderParser::new(None, None, UnknownRtcpSsrcPolicy::Default);
    let mut timeline = Timeline::new(None, s.clock_rate, None).expect("timeline");
    let mut t = Totals::default();
    for raw in &s.packets {
        let (header, range) = retina::rtp::PacketHeader::validate(&raw[..]).expect("RTP packet");
        let meta = parser
            .rtp(
                &ctx.options,
                &ctx.stream,
                None,
                &ctx.conn,
                &ctx.pkt,
                &mut timeline,
                0,
                &header,
            )
            .expect("retina rtp")
            .expect("packet kept");
        let payload = &raw[usize::from(range.start)..usize::from(range.end)];
        ring.push(&mut d, meta, payload).expect("retina push");
        while let Some(item) = d.pull() {
            let item = item.expect("retina frame");
            t.frames += 1;
            t.data_bytes += match &item {
                CodecItem::VideoFrame(v) => v.data().len(),
                CodecItem::AudioFrame(a) => a.data().len(),
                _ => panic!("unexpected item"),
            } as u64;
            each(&item);
            black_box(item);
        }
    }
    t
}

/// Panics unless both sides give exactly the frames that were sent.
fn check(s: &Stream, ctx: &RetinaCtx) {
    let mut ours = Vec::new();
    run_ours(s, |f| {
        ours.push(match f {
            Frame::Video(v) => {
                // Retina strips in-band SPS/PPS; compare without them.
                let mut data = Vec::new();
                for nal in h264::split_annex_b(&v.data) {
                    if !matches!(nal[0] & 0x1f, 7 | 8) {
                        data.extend_from_slice(&[0, 0, 0, 1]);
                        data.extend_from_slice(&nal);
                    }
                }
                Seen {
                    timestamp: v.timestamp,
                    keyframe: v.keyframe,
                    data,
                }
            }
            Frame::Audio(a) => Seen {
                timestamp: a.timestamp,
                keyframe: false,
                data: a.data.to_vec(),
            },
            Frame::Metadata(m) => Seen {
                timestamp: m.timestamp,
                keyframe: false,
                data: m.data.to_vec(),
            },
        })
    });
    let mut theirs = Vec::new();
    run_retina(s, ctx, |item| {
        theirs.push(match item {
            CodecItem::VideoFrame(v) => Seen {
                timestamp: v.timestamp().timestamp() as u32,
                keyframe: v.is_random_access_point(),
                data: v.data().to_vec(),
            },
            CodecItem::AudioFrame(a) => Seen {
                timestamp: a.timestamp().timestamp() as u32,
                keyframe: false,
                data: a.data().to_vec(),
            },
            _ => unreachable!(),
        })
    });
    let expected: Vec<Seen> = s
        .sent
        .iter()
        .map(|f| Seen {
            timestamp: f.timestamp,
            keyframe: f.keyframe,
            data: if s.retina_media == "video" {
                let mut d = Vec::new();
                for nal in f.units.iter().filter(|n| !matches!(n[0] & 0x1f, 7 | 8)) {
                    d.extend_from_slice(&[0, 0, 0, 1]);
                    d.extend_from_slice(nal);
                }
                d
            } else {
                f.units[0].to_vec()
            },
        })
        .collect();
    assert_eq!(ours.len(), expected.len(), "{}: rtsp-toolkit frame count", s.name);
    assert_eq!(theirs.len(), expected.len(), "{}: retina frame count", s.name);
    for (i, e) in expected.iter().enumerate() {
        assert!(
            ours[i] == *e,
            "{}: rtsp-toolkit frame {i} differs from what was sent",
            s.name
        );
        assert!(
            theirs[i] == *e,
            "{}: retina frame {i} differs from what was sent",
            s.name
        );
    }
}

fn criterion_groups(c: &mut Criterion, s: &Stream, ctx: &RetinaCtx) {
    let mut g = c.benchmark_group(s.name);
    g.throughput(Throughput::Bytes(s.payload_bytes));
    g.bench_function("rtsp_toolkit", |b| b.iter(|| run_ours(s, |_| ())));
    g.bench_function("retina", |b| b.iter(|| run_retina(s, ctx, |_| ())));
    g.finish();
}

/// Copies every RTP payload into a reused 64 KiB ring, as
/// `retina::testutil::DepacketizeBuf::push` does before retina's depacketizer
/// sees it (retina's real client reads packets straight into its ring, so
/// this copy is an artifact of driving it without a socket).
fn copy_payloads(s: &Stream, ring: &mut [u8]) -> usize {
    let mut pos = 0;
    for raw in &s.packets {
        let payload = &raw[12..];
        if pos + payload.len() > ring.len() {
            pos = 0;
        }
        ring[pos..pos + payload.len()].copy_from_slice(payload);
        pos += payload.len();
        black_box(&ring[pos - 1]);
    }
    pos
}

/// Median seconds per pass of (ours, retina, payload copy), the three
/// interleaved so that noise from neighbours hits them alike; at least 15
/// rounds and about 2 s.
fn timed(s: &Stream, ctx: &RetinaCtx) -> (f64, f64, f64) {
    let (mut ours, mut theirs, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    let mut ring = vec![0u8; RETINA_RING];
    let start = Instant::now();
    while ours.len() < 15 || start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        black_box(run_ours(s, |_| ()));
        ours.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(run_retina(s, ctx, |_| ()));
        theirs.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(copy_payloads(s, &mut ring));
        copy.push(t.elapsed().as_secs_f64());
    }
    (median(&mut ours), median(&mut theirs), median(&mut copy))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Pass mode: `side,stream,passes` runs only that loop (for dhat and profilers).
fn passes(spec: &str) {
    let parts: Vec<&str> = spec.split(',').collect();
    assert!(parts.len() == 3, "{PASSES_ENV}=<ours|retina>,<h264_1080p|aac>,<passes>");
    let n: usize = parts[2].parse().expect("passes");
    let (video, audio) = sdp_media();
    let s = match parts[1] {
        "h264_1080p" => h264_stream(video),
        "aac" => aac_stream(audio),
        other => panic!("unknown stream {other}"),
    };
    let ctx = RetinaCtx::new();
    let mut t = Totals::default();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        t = match parts[0] {
            "ours" => run_ours(&s, |_| ()),
            "retina" => run_retina(&s, &ctx, |_| ()),
            other => panic!("unknown side {other}"),
        };
        times.push(start.elapsed().as_secs_f64());
    }
    println!("frames_per_pass={} data_bytes_per_pass={}", t.frames, t.data_bytes);
    if n > 0 {
        // For quick comparisons between builds; the summary's interleaved timing is the reference.
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "pass_us_min={:.1} pass_us_median={:.1}",
            min * 1e6,
            median(&mut times) * 1e6
        );
    }
}

/// Allocations and bytes allocated by `passes` passes, from dhat's totals.
fn dhat_totals(exe: &std::path::Path, side: &str, stream: &str, passes: usize) -> Option<(u64, u64)> {
    let out = Command::new("valgrind")
        .args(["--tool=dhat", "--dhat-out-file=/dev/null"])
        .arg(exe)
        .env(PASSES_ENV, format!("{side},{stream},{passes}"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // "==123== Total:     1,234 bytes in 56 blocks"
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("Total:"))?;
    let nums: Vec<u64> = line
        .split("Total:")
        .nth(1)?
        .split_whitespace()
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect();
    match nums[..] {
        [bytes, blocks] => Some((blocks, bytes)),
        _ => None,
    }
}

/// Steady-state (allocations, bytes allocated) per frame.
fn allocs_per_frame(side: &str, s: &Stream) -> Option<(f64, f64)> {
    let exe = std::env::current_exe().ok()?;
    let one = dhat_totals(&exe, side, s.name, 1)?;
    let three = dhat_totals(&exe, side, s.name, 3)?;
    let frames = 2.0 * s.sent.len() as f64;
    Some((
        three.0.saturating_sub(one.0) as f64 / frames,
        three.1.saturating_sub(one.1) as f64 / frames,
    ))
}

fn summary(streams: &[Stream], ctx: &RetinaCtx) {
    let valgrind = std::env::var_os(NO_VALGRIND_ENV).is_none()
        && Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    println!();
    println!("depacketize summary (medians of interleaved passes, >= 2 s per stream; MB = 10^6 bytes of RTP payload)");
    println!(
        "{:<11} {:<13} {:>8} {:>11} {:>10} {:>12} {:>11} {:>12}",
        "stream", "side", "packets", "payload MB", "MB/s", "frames/s", "allocs/frm", "alloc B/frm"
    );
    for s in streams {
        let (ours, theirs, copy) = timed(s, ctx);
        let mb = s.payload_bytes as f64 / 1e6;
        let frames = s.sent.len() as f64;
        for (side, key, secs) in [("rtsp_toolkit", "ours", ours), ("retina", "retina", theirs)] {
            let allocs = if valgrind { allocs_per_frame(key, s) } else { None };
            let (a, b) = match allocs {
                Some((a, b)) => (format!("{a:.2}"), format!("{b:.0}")),
                None => ("n/a".to_owned(), "n/a".to_owned()),
            };
            println!(
                "{:<11} {:<13} {:>8} {:>11.3} {:>10.1} {:>12.0} {:>11} {:>12}",
                s.name,
                side,
                s.packets.len(),
                mb,
                mb / secs,
                frames / secs,
                a,
                b
            );
        }
        println!("{:<11} ratio rtsp_toolkit/retina: {:.2}x", s.name, theirs / ours);
        println!(
            "{:<11} payload copy into a ring (DepacketizeBuf's extra memcpy): {:.1} us/pass = {:.0}% of retina's \
             time; ratio against retina without it: {:.2}x",
            s.name,
            copy * 1e6,
            100.0 * copy / theirs,
            (theirs - copy) / ours
        );
    }
    if !valgrind {
        println!("(allocations need valgrind on PATH; unset {NO_VALGRIND_ENV})");
    }
}

fn main() {
    if let Ok(spec) = std::env::var(PASSES_ENV) {
        passes(&spec);
        return;
    }
    // Like criterion: `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    let listing = has("--list");
    let benchmarking = has("--bench") && !has("--test") && !listing && !has("--profile-time");
    let (video, audio) = sdp_media();
    let streams = [h264_stream(video), aac_stream(audio)];
    let ctx = RetinaCtx::new();
    for s in &streams {
        check(s, &ctx);
        if !listing {
            println!(
                "{}: {} packets, {} bytes of RTP payload, {} frames; both sides checked identical",
                s.name,
                s.packets.len(),
                s.payload_bytes,
                s.sent.len()
            );
        }
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    for s in &streams {
        criterion_groups(&mut c, s, &ctx);
    }
    c.final_summary();
    if benchmarking {
        summary(&streams, &ctx);
    }
}
