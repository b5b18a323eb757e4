//! The recorder on synthetic sessions: box and element layout, decode and
//! composition times, keyframe waiting, parameter-set changes, alignment,
//! and the Matroska output read back by this crate's demuxer.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use rtsp_toolkit_core::client::{AudioFrameEvent, Track, TransportKind, VideoFrameEvent};
use rtsp_toolkit_core::codec::{AudioCodec, AudioFrame, VideoCodec, VideoFrame};
use rtsp_toolkit_core::sdp::{Media, Sdp};

use super::*;

// Parameter sets of fixtures/media/h264_aac.mp4 (320x240 High).
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06,
    0x41, 0xe2, 0x85, 0x49,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xc1, 0x12, 0xc8, 0xb0];

const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
    a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvBEsiw\r\na=control:v\r\n\
    m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
    a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\na=control:a\r\n\
    m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:g\r\n\
    m=audio 0 RTP/AVP 98\r\na=rtpmap:98 G722/8000/1\r\na=control:l\r\n";

fn media() -> Vec<Media> {
    Sdp::parse(SDP.as_bytes()).expect("test SDP").media
}

fn track(index: usize, m: &Media) -> Track {
    Track {
        index,
        media_index: index,
        kind: m.kind.clone(),
        codec: m.codec.clone(),
        payload_type: m.payload_type,
        clock_rate: m.clock_rate,
        channels: m.channels,
        control_url: String::new(),
        transport: TransportKind::TcpInterleaved {
            rtp_channel: 2 * index as u8,
            rtcp_channel: 2 * index as u8 + 1,
        },
    }
}

/// An access unit: parameter sets (on keyframes) and one slice NAL unit.
fn au(keyframe: bool, tag: u8, sps: &[u8]) -> Bytes {
    let mut d = Vec::new();
    if keyframe {
        for nal in [sps, PPS] {
            d.extend_from_slice(&[0, 0, 0, 1]);
            d.extend_from_slice(nal);
        }
    }
    d.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x80, tag, 0x80]);
    Bytes::from(d)
}

fn video(ts: i64, keyframe: bool, tag: u8, at_ms: u64) -> VideoFrameEvent {
    VideoFrameEvent {
        track: 0,
        frame: VideoFrame {
            codec: VideoCodec::H264,
            timestamp: ts as u32,
            data: au(keyframe, tag, SPS),
            keyframe,
            new_parameters: keyframe,
            loss: 0,
        },
        extended_timestamp: ts,
        recv_tick: Duration::from_millis(at_ms),
    }
}

/// An AAC frame at `ts`, arriving `late_ms` after its media time (from the session's start).
fn aac(ts: i64, late_ms: u64) -> AudioFrameEvent {
    AudioFrameEvent {
        track: 1,
        frame: AudioFrame {
            codec: AudioCodec::Aac,
            timestamp: ts as u32,
            data: Bytes::from(vec![0x21, (ts / 1024) as u8, 0x55]),
            sample_count: 1024,
            sample_rate: 44100,
            channels: 2,
            loss: 0,
        },
        extended_timestamp: ts,
        recv_tick: Duration::from_millis(late_ms)
            + Duration::from_nanos((ts.max(0) as u128 * 1_000_000_000).div_ceil(44100) as u64),
    }
}

/// Decode order I P B B P B B ... with presentation times in frames
/// (0, 3, 1, 2, 6, 4, 5, ...), a keyframe every `gop` frames, 25 fps.
fn bframe_pattern(count: usize, gop: usize) -> Vec<(i64, bool)> {
    let mut out = Vec::new();
    let mut n = 0;
    while out.len() < count {
        if n % gop == 0 {
            out.push((n as i64, true));
            n += 1;
            continue;
        }
        // P then two B before it in presentation order.
        out.push((n as i64 + 2, false));
        out.push((n as i64, false));
        out.push((n as i64 + 1, false));
        n += 3;
    }
    out.truncate(count);
    out
}

fn recorder(format: RecordFormat, tracks: &[usize]) -> Recorder<Cursor<Vec<u8>>> {
    let m = media();
    let mut r = Recorder::new(Cursor::new(Vec::new()), format);
    for &i in tracks {
        let _ = r.add_track(&track(i, &m[i]), &m[i]);
    }
    r
}

/// Feeds `frames` B-frame video frames and the AAC frames of the same span.
fn feed(r: &mut Recorder<Cursor<Vec<u8>>>, frames: usize, gop: usize, with_audio: bool) {
    let pattern = bframe_pattern(frames, gop);
    let mut audio_ts = 0i64;
    for (i, (pts, key)) in pattern.iter().enumerate() {
        let at = i as u64 * 40;
        r.video(&video(90_000 + pts * 3600, *key, i as u8, at)).unwrap();
        while with_audio && audio_ts * 1000 / 44100 <= at as i64 {
            r.audio(&aac(audio_ts, 0)).unwrap();
            audio_ts += 1024;
        }
    }
}

// ---- A small box reader for the MP4 tests.

#[derive(Debug)]
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    offset: usize,
}

fn boxes(data: &[u8], base: usize) -> Vec<Mp4Box<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && at + size <= data.len(),
            "box at {} of size {size}",
            base + at
        );
        out.push(Mp4Box {
            kind: data[at + 4..at + 8].try_into().unwrap(),
            body: &data[at + 8..at + size],
            offset: base + at,
        });
        at += size;
    }
    assert_eq!(at, data.len(), "boxes fill their parent");
    out
}

fn child<'a>(b: &Mp4Box<'a>, kind: &[u8; 4]) -> Mp4Box<'a> {
    boxes(b.body, b.offset + 8)
        .into_iter()
        .find(|c| &c.kind == kind)
        .unwrap_or_else(|| {
            panic!(
                "no {} in {}",
                String::from_utf8_lossy(kind),
                String::from_utf8_lossy(&b.kind)
            )
        })
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// One parsed `traf`: track, base decode time, and (duration, size, flags, cts) per sample
/// with each sample's absolute file offset.
#[derive(Debug)]
struct Traf {
    track: u32,
    base: u64,
    samples: Vec<(u32, u32, u32, i32, usize)>,
}

fn trafs(file: &[u8]) -> Vec<Traf> {
    let mut out = Vec::new();
    for moof in boxes(file, 0).iter().filter(|b| &b.kind == b"moof") {
        for traf in boxes(moof.body, moof.offset + 8).iter().filter(|b| &b.kind == b"traf") {
            let tfhd = child(traf, b"tfhd");
            assert_eq!(be32(tfhd.body, 0), 0x0002_0000, "default-base-is-moof only");
            let tfdt = child(traf, b"tfdt");
            assert_eq!(tfdt.body[0], 1, "tfdt version 1");
            let trun = child(traf, b"trun");
            let flags = be32(trun.body, 0);
            assert_eq!(flags >> 24, 1, "trun version 1");
            let video = flags & 0x800 != 0;
            let count = be32(trun.body, 4) as usize;
            let mut at_data = moof.offset + be32(trun.body, 8) as usize;
            let mut samples = Vec::new();
            let mut at = 12;
            for _ in 0..count {
                let (d, s, f) = (be32(trun.body, at), be32(trun.body, at + 4), be32(trun.body, at + 8));
                at += 12;
                let cts = if video {
                    at += 4;
                    be32(trun.body, at - 4) as i32
                } else {
                    0
                };
                samples.push((d, s, f, cts, at_data));
                at_data += s as usize;
            }
            assert_eq!(at, trun.body.len());
            out.push(Traf {
                track: be32(tfhd.body, 4),
                base: be64(tfdt.body, 4),
                samples,
            });
        }
    }
    out
}

#[test]
fn mp4_layout_and_composition_offsets() {
    let mut r = recorder(RecordFormat::Mp4, &[0, 1]);
    feed(&mut r, 100, 25, true);
    let summary = r.finish().unwrap();
    let file = r.into_inner().into_inner();
    let top: Vec<[u8; 4]> = boxes(&file, 0).iter().map(|b| b.kind).collect();
    assert_eq!(&top[..2], &[*b"ftyp", *b"moov"]);
    assert!(top[2..].chunks(2).all(|c| c == [*b"moof", *b"mdat"]), "{top:?}");
    assert_eq!(summary.fragments as usize, (top.len() - 2) / 2);
    assert!(
        summary.fragments >= 3,
        "a fragment about every second: {}",
        summary.fragments
    );

    let all = boxes(&file, 0);
    let moov = &all[1];
    let mvex = child(moov, b"mvex");
    let mehd = child(&mvex, b"mehd");
    assert_eq!(mehd.body[0], 1);
    let ms = be64(mehd.body, 4);
    assert!(
        (3990..=4100).contains(&ms),
        "mehd duration {ms} ms for 100 frames at 25 fps"
    );
    let traks: Vec<_> = boxes(moov.body, moov.offset + 8)
        .into_iter()
        .filter(|b| &b.kind == b"trak")
        .collect();
    assert_eq!(traks.len(), 2);
    let stsd = child(&child(&child(&child(&traks[0], b"mdia"), b"minf"), b"stbl"), b"stsd");
    let avc1 = &boxes(&stsd.body[8..], 0)[0];
    assert_eq!(&avc1.kind, b"avc1");
    assert_eq!(
        (
            u16::from_be_bytes([avc1.body[24], avc1.body[25]]),
            u16::from_be_bytes([avc1.body[26], avc1.body[27]])
        ),
        (320, 240)
    );
    let avcc = &boxes(&avc1.body[78..], 0)[0];
    assert_eq!(&avcc.kind, b"avcC");
    assert_eq!(&avcc.body[..5], &[1, 0x64, 0x00, 0x0d, 0xff]);
    let mdhd = child(&child(&traks[1], b"mdia"), b"mdhd");
    assert_eq!(be32(mdhd.body, 12), 44100, "audio timescale is the clock rate");
    let stsd = child(&child(&child(&child(&traks[1], b"mdia"), b"minf"), b"stbl"), b"stsd");
    let mp4a = &boxes(&stsd.body[8..], 0)[0];
    assert_eq!(&mp4a.kind, b"mp4a");
    let esds = &boxes(&mp4a.body[28..], 0)[0];
    assert_eq!(&esds.kind, b"esds");
    assert!(
        esds.body.windows(4).any(|w| w == [0x05, 2, 0x12, 0x10]),
        "DecSpecificInfo with the config"
    );

    let trafs = trafs(&file);
    let video: Vec<_> = trafs.iter().filter(|t| t.track == 1).collect();
    // Decode times: contiguous across fragments; presentation times: the input's.
    let mut dts = video[0].base;
    assert_eq!(dts, 0, "the first frame written is at 0");
    let mut pts = Vec::new();
    let mut n = 0;
    for t in &video {
        assert_eq!(t.base, dts, "tfdt continues the previous fragment");
        assert_eq!(
            t.samples[0].2, SYNC_FLAGS,
            "every video fragment starts with a keyframe"
        );
        for &(d, size, flags, cts, at) in &t.samples {
            pts.push(dts as i64 + i64::from(cts));
            assert_eq!(flags == SYNC_FLAGS, n % 25 == 0, "frame {n}");
            // The slice NAL unit (the sample's last 4 bytes) carries the frame number.
            let end = at + size as usize;
            assert_eq!(file[end - 2], n as u8, "sample {n} data");
            dts += u64::from(d);
            n += 1;
        }
    }
    assert_eq!(n, 100);
    let offsets: Vec<i32> = video.iter().flat_map(|t| &t.samples).map(|s| s.3).collect();
    assert!(offsets.iter().all(|&c| c >= 0), "no negative offsets: {offsets:?}");
    assert_eq!(&offsets[..4], &[3600, 10800, 0, 0], "I P B B");
    // Decode times start one frame (the reorder delay) before the first presentation time.
    let expected: Vec<i64> = bframe_pattern(100, 25).iter().map(|(p, _)| (p + 1) * 3600).collect();
    assert_eq!(
        pts, expected,
        "presentation times are the RTP times from the first frame"
    );
    // Audio: contiguous, 1024 ticks each.
    let audio: Vec<_> = trafs.iter().filter(|t| t.track == 2).collect();
    let mut next = audio[0].base;
    for t in &audio {
        assert_eq!(t.base, next);
        next += t.samples.iter().map(|s| u64::from(s.0)).sum::<u64>();
        assert!(t.samples.iter().all(|s| s.0 == 1024 && s.1 == 3 && s.2 == SYNC_FLAGS));
    }
    assert_eq!(summary.tracks[0].frames, 100);
    assert_eq!(summary.tracks[0].codec, "avc1.64000d");
    assert_eq!(summary.tracks[1].codec, "mp4a.40.2");
    assert_eq!(summary.alignment, Alignment::Arrival);
}

const SYNC_FLAGS: u32 = 0x0200_0000;

#[test]
fn video_samples_are_length_prefixed_copies() {
    let mut r = recorder(RecordFormat::Mp4, &[0]);
    feed(&mut r, 30, 25, false);
    r.finish().unwrap();
    let file = r.into_inner().into_inner();
    let first = &trafs(&file)[0].samples[0];
    let sample = &file[first.4..first.4 + first.1 as usize];
    let mut expected = Vec::new();
    for nal in [SPS, PPS, &[0x65, 0x80, 0, 0x80][..]] {
        expected.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        expected.extend_from_slice(nal);
    }
    assert_eq!(sample, &expected[..]);
}

#[test]
fn decode_times_sort_the_presentation_times() {
    let mut r = recorder(RecordFormat::Mp4, &[0]);
    // I P B B: presentation 0, 3, 1, 2 (frames of 3000 ticks).
    for (i, p) in [0i64, 3, 1, 2, 4].iter().enumerate() {
        r.video(&video(p * 3000, i == 0, i as u8, i as u64 * 33)).unwrap();
    }
    r.finish().unwrap();
    let file = r.into_inner().into_inner();
    let t = &trafs(&file)[0];
    let durations: Vec<u32> = t.samples.iter().map(|s| s.0).collect();
    let cts: Vec<i32> = t.samples.iter().map(|s| s.3).collect();
    assert_eq!(durations, [3000; 5]);
    // Decode times 0, 3000, ...: the presentation times sorted, one frame earlier (the reorder delay).
    assert_eq!(cts, [3000, 9000, 0, 0, 3000]);
}

#[test]
fn frames_before_the_first_keyframe_are_skipped() {
    let mut r = recorder(RecordFormat::Mkv, &[0]);
    for i in 0..3 {
        r.video(&video(i * 3600, false, 0, 0)).unwrap();
    }
    for i in 3..10 {
        r.video(&video(i * 3600, i == 3, 0, 0)).unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!((s.tracks[0].skipped, s.tracks[0].frames), (3, 7));
}

#[test]
fn unsupported_codecs_are_not_recorded_and_the_rest_is() {
    let m = media();
    let mut r = Recorder::new(Cursor::new(Vec::new()), RecordFormat::Mkv);
    let e = r.add_track(&track(3, &m[3]), &m[3]).unwrap_err();
    assert_eq!(e.track, 3);
    assert!(e.to_string().contains("G722"), "{e}");
    r.add_track(&track(2, &m[2]), &m[2]).unwrap();
    for i in 0..100 {
        r.audio(&AudioFrameEvent {
            track: 2,
            frame: AudioFrame {
                codec: AudioCodec::Pcma,
                timestamp: i * 160,
                data: Bytes::from(vec![0xd5; 160]),
                sample_count: 160,
                sample_rate: 8000,
                channels: 1,
                loss: 0,
            },
            extended_timestamp: i64::from(i) * 160,
            recv_tick: Duration::from_millis(u64::from(i) * 20),
        })
        .unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!(s.tracks.len(), 1);
    assert_eq!((s.tracks[0].codec.as_str(), s.tracks[0].frames), ("alaw", 100));
    assert_eq!(s.tracks[0].duration, Duration::from_secs(2));
    let file = r.into_inner().into_inner();
    let source = crate::from_bytes(Bytes::from(file), crate::FileKind::Mkv);
    // This crate's Matroska reader plays no A_MS/ACM: the file has no track it can serve.
    assert!(source.is_err());
}

#[test]
fn g711_in_mp4_is_an_alaw_sample_entry() {
    let m = media();
    let mut r = Recorder::new(Cursor::new(Vec::new()), RecordFormat::Mp4);
    r.add_track(&track(2, &m[2]), &m[2]).unwrap();
    for i in 0..60u32 {
        r.audio(&AudioFrameEvent {
            track: 2,
            frame: AudioFrame {
                codec: AudioCodec::Pcma,
                timestamp: i * 160,
                data: Bytes::from(vec![0xd5; 160]),
                sample_count: 160,
                sample_rate: 8000,
                channels: 1,
                loss: 0,
            },
            extended_timestamp: i64::from(i) * 160,
            recv_tick: Duration::from_millis(u64::from(i) * 20),
        })
        .unwrap();
    }
    r.finish().unwrap();
    let file = r.into_inner().into_inner();
    assert!(file.windows(4).any(|w| w == b"alaw"));
    let t = trafs(&file);
    assert_eq!(t.iter().map(|t| t.samples.len()).sum::<usize>(), 60);
    assert!(t.iter().flat_map(|t| &t.samples).all(|s| s.0 == 160 && s.1 == 160));
}

#[test]
fn mkv_reads_back_with_presentation_times() {
    let mut r = recorder(RecordFormat::Mkv, &[0, 1]);
    feed(&mut r, 100, 25, true);
    let summary = r.finish().unwrap();
    assert!(summary.fragments >= 3);
    let file = r.into_inner().into_inner();
    assert_eq!(&file[..4], &[0x1a, 0x45, 0xdf, 0xa3]);
    let source = crate::from_bytes(Bytes::from(file.clone()), crate::FileKind::Mkv).expect("our own reader reads it");
    assert_eq!(source.tracks.len(), 2);
    let video: Vec<_> = source.samples.iter().filter(|s| s.track == 0).collect();
    assert_eq!(video.len(), 100);
    // The reader's times are in the 90 kHz clock from milliseconds: 40 ms frames.
    let pts: Vec<i64> = video
        .iter()
        .map(|s| s.presentation_time - video[0].presentation_time)
        .collect();
    let expected: Vec<i64> = bframe_pattern(100, 25).iter().map(|(p, _)| p * 3600).collect();
    assert_eq!(pts, expected);
    assert!(video[0].keyframe && video[25].keyframe && !video[1].keyframe);
    let audio = source.samples.iter().filter(|s| s.track == 1).count();
    assert_eq!(audio as u64, summary.tracks[1].frames);
    // The segment size was filled in and covers the file; Duration and SeekHead are there.
    let seg = file.windows(4).position(|w| w == [0x18, 0x53, 0x80, 0x67]).unwrap();
    let size = u64::from_be_bytes(file[seg + 4..seg + 12].try_into().unwrap()) & ((1 << 56) - 1);
    assert_eq!(seg as u64 + 12 + size, file.len() as u64);
    assert!(file.windows(2).any(|w| w == [0x44, 0x89]), "Duration");
    assert_eq!(&file[seg + 12..seg + 16], &[0x11, 0x4d, 0x9b, 0x74], "SeekHead first");
    assert!(file.windows(4).any(|w| w == [0x1c, 0x53, 0xbb, 0x6b]), "Cues");
}

#[test]
fn a_recording_cut_short_has_its_fragments_on_disk() {
    for format in [RecordFormat::Mp4, RecordFormat::Mkv] {
        let mut r = recorder(format, &[0, 1]);
        feed(&mut r, 120, 25, true);
        // No finish: what is on "disk" now is the header and the whole fragments.
        let written = r.summary();
        assert!(written.fragments >= 3, "{format:?}");
        let file = r.into_inner().into_inner();
        assert_eq!(written.bytes, file.len() as u64);
        match format {
            RecordFormat::Mp4 => {
                let t = trafs(&file);
                assert!(
                    t.iter()
                        .filter(|t| t.track == 1)
                        .map(|t| t.samples.len())
                        .sum::<usize>()
                        >= 75
                );
            }
            RecordFormat::Mkv => {
                let source = crate::from_bytes(Bytes::from(file), crate::FileKind::Mkv).unwrap();
                assert!(source.samples.iter().filter(|s| s.track == 0).count() >= 75);
            }
        }
    }
}

#[test]
fn parameter_set_changes_are_counted() {
    let mut r = recorder(RecordFormat::Mp4, &[0]);
    for i in 0..50i64 {
        let mut v = video(i * 3600, i % 10 == 0, 0, 0);
        if i >= 30 && i % 10 == 0 {
            // A different SPS (level changed) on the later keyframes.
            let mut sps = SPS.to_vec();
            sps[3] = 0x1e;
            v.frame.data = au(true, 0, &sps);
        }
        r.video(&v).unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!(s.tracks[0].parameter_changes, 1);
    assert_eq!(s.tracks[0].frames, 50);
}

#[test]
fn tracks_are_aligned_by_sender_reports() {
    // Audio starts 0.5 s (NTP) before the first video keyframe, though both arrive at once.
    let mut r = recorder(RecordFormat::Mp4, &[0, 1]);
    let ntp0: u64 = 3_900_000_000 << 32;
    let half = 1u64 << 31;
    r.sender_report(0, ntp0 + half, 90_000);
    r.sender_report(1, ntp0, 0);
    for i in 0..60i64 {
        r.video(&video(90_000 + i * 3600, i % 25 == 0, 0, 0)).unwrap();
        r.audio(&aac(i * 1024, 0)).unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!(s.alignment, Alignment::SenderReports);
    let file = r.into_inner().into_inner();
    let t = trafs(&file);
    let first_video = t.iter().find(|t| t.track == 1).unwrap().base;
    let first_audio = t.iter().find(|t| t.track == 2).unwrap().base;
    assert_eq!((first_video, first_audio), (45_000, 0));
}

#[test]
fn without_sender_reports_arrival_times_align() {
    let mut r = recorder(RecordFormat::Mkv, &[0, 1]);
    for i in 0..60i64 {
        // Audio arrives 200 ms after the video.
        r.video(&video(i * 3600, i % 25 == 0, 0, i as u64 * 40)).unwrap();
        r.audio(&aac(i * 1024, 200)).unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!(s.alignment, Alignment::Arrival);
    let file = r.into_inner().into_inner();
    let source = crate::from_bytes(Bytes::from(file), crate::FileKind::Mkv).unwrap();
    let first = |track| {
        source
            .samples
            .iter()
            .find(|s| s.track == track)
            .unwrap()
            .presentation_time
    };
    // 200 ms: 18000 ticks at 90 kHz (video), 8820 at 44.1 kHz (audio), as the reader gives them.
    let video_ms = first(0) * 1000 / 90_000;
    let audio_ms = first(1) * 1000 / 44_100;
    assert_eq!(audio_ms - video_ms, 200);
}

#[test]
fn late_tracks_and_finish_twice() {
    let m = media();
    let mut r = recorder(RecordFormat::Mp4, &[0]);
    feed(&mut r, 60, 25, false);
    assert!(r.add_track(&track(1, &m[1]), &m[1]).is_err(), "after the header");
    let a = r.finish().unwrap();
    let b = r.finish().unwrap();
    assert_eq!(a, b);
    r.video(&video(1_000_000, true, 0, 0)).unwrap();
    assert_eq!(r.summary().tracks[0].frames, 60);
}

#[test]
fn a_video_track_without_keyframe_or_sdp_sets_is_left_out() {
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
        a=fmtp:97 streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\n";
    let m = Sdp::parse(sdp.as_bytes()).unwrap().media;
    let mut r = Recorder::new(Cursor::new(Vec::new()), RecordFormat::Mp4);
    r.add_track(&track(0, &m[0]), &m[0]).unwrap();
    r.add_track(&track(1, &m[1]), &m[1]).unwrap();
    for i in 0..400i64 {
        if i % 2 == 0 {
            r.video(&video(i * 1800, false, 0, 0)).unwrap();
        }
        r.audio(&aac(i * 1024, 0)).unwrap();
    }
    let notes = r.take_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("no keyframe"), "{notes:?}");
    let s = r.finish().unwrap();
    assert_eq!(s.tracks.len(), 1);
    assert_eq!(s.tracks[0].frames, 400);
    assert_eq!(s.not_recorded.len(), 1);
}

#[test]
fn ebml_sizes_and_voids() {
    let mut v = Vec::new();
    mkv::tests_support::size(&mut v, 126);
    assert_eq!(v, [0xfe]);
    v.clear();
    mkv::tests_support::size(&mut v, 127);
    assert_eq!(v, [0x40, 0x7f], "all ones is reserved");
    v.clear();
    mkv::tests_support::size(&mut v, 1 << 20);
    assert_eq!(v, [0x30, 0x00, 0x00]);
    for len in [2, 11, 60, 128] {
        let mut v = Vec::new();
        mkv::tests_support::void(&mut v, len);
        assert_eq!(v.len(), len);
        assert_eq!(v[0], 0xec);
    }
}

#[test]
fn a_session_without_tracks_leaves_the_file_empty() {
    for format in [RecordFormat::Mp4, RecordFormat::Mkv] {
        let mut r = Recorder::new(Cursor::new(Vec::new()), format);
        let s = r.finish().unwrap();
        assert_eq!((s.bytes, s.fragments), (0, 0));
        assert!(r.into_inner().into_inner().is_empty());
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// (video?, timestamp step (may go back), keyframe, data, arrival step in ms)
    fn event() -> impl Strategy<Value = (bool, i64, bool, Vec<u8>, u64)> {
        (
            any::<bool>(),
            prop_oneof![Just(3600i64), Just(1024), -20_000i64..20_000, Just(i64::from(i32::MAX))],
            any::<bool>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                // Start codes with SPS-like and slice-like NAL units.
                proptest::collection::vec(
                    prop_oneof![Just(0u8), Just(1), Just(0x67), Just(0x68), Just(0x65), any::<u8>()],
                    0..64
                ),
            ],
            0u64..100,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Whatever the frames (garbage parameter sets, timestamps that jump or go back), the
        /// recorder neither panics nor fails, and writes a frame at most once.
        #[test]
        fn any_frames_are_written_or_counted(events in proptest::collection::vec(event(), 0..200), mkv in any::<bool>()) {
            let format = if mkv { RecordFormat::Mkv } else { RecordFormat::Mp4 };
            let mut r = recorder(format, &[0, 1]);
            let (mut vts, mut ats, mut at) = (0i64, 0i64, 0u64);
            let (mut videos, mut audios) = (0u64, 0u64);
            for (is_video, step, key, data, dt) in events {
                at += dt;
                if is_video {
                    vts += step;
                    let mut v = video(vts, key, 0, at);
                    if !data.is_empty() {
                        v.frame.data = Bytes::from(data);
                    }
                    r.video(&v).unwrap();
                    videos += 1;
                } else {
                    ats += step;
                    let mut a = aac(ats, 0);
                    a.recv_tick = Duration::from_millis(at);
                    if !data.is_empty() {
                        a.frame.data = Bytes::from(data);
                    }
                    r.audio(&a).unwrap();
                    audios += 1;
                }
            }
            let s = r.finish().unwrap();
            for t in &s.tracks {
                let fed = if t.kind == "video" { videos } else { audios };
                prop_assert!(t.frames + t.skipped + t.dropped <= fed, "{t:?}");
            }
        }
    }
}

/// A 16x8 gray JPEG image as the core's RFC 2435 depacketizer rebuilds it (one 4:2:2 MCU of
/// empty blocks, Q 50).
fn gray_jpeg() -> Bytes {
    let sdp = Sdp::parse(b"v=0\r\nm=video 0 RTP/AVP 26\r\n").unwrap();
    let mut d = rtsp_toolkit_core::codec::jpeg::Depacketizer::new(&sdp.media[0], 1 << 20).unwrap();
    let payload = [0, 0, 0, 0, 0, 50, 2, 1, 0b0010_1000, 0b1010_0000, 0b0000_1111];
    let packet = rtsp_toolkit_core::rtp::RtpPacket {
        sequence_number: 1,
        timestamp: 0,
        ssrc: 1,
        marker: true,
        payload_type: 26,
        csrc_count: 0,
        extension: None,
        padding: 0,
        payload: Bytes::copy_from_slice(&payload),
    };
    d.push(&packet, 0).unwrap();
    d.pull().unwrap().data
}

#[test]
fn mjpeg_records_as_v_mjpeg_and_jpeg_entries() {
    let sdp = Sdp::parse(b"v=0\r\nm=video 0 RTP/AVP 26\r\na=control:v\r\n").unwrap();
    let m = &sdp.media[0];
    let image = gray_jpeg();
    for format in [RecordFormat::Mkv, RecordFormat::Mp4] {
        let mut r = Recorder::new(Cursor::new(Vec::new()), format);
        r.add_track(&track(0, m), m).unwrap();
        for i in 0..50i64 {
            r.video(&VideoFrameEvent {
                track: 0,
                frame: VideoFrame {
                    codec: VideoCodec::Mjpeg,
                    timestamp: (i * 9000) as u32,
                    data: image.clone(),
                    keyframe: true,
                    new_parameters: i == 0,
                    loss: 0,
                },
                extended_timestamp: i * 9000,
                recv_tick: Duration::from_millis(i as u64 * 100),
            })
            .unwrap();
        }
        let s = r.finish().unwrap();
        let t = &s.tracks[0];
        assert_eq!(
            (t.codec.as_str(), t.frames, t.resolution, t.skipped),
            ("mjpeg", 50, Some((16, 8)), 0),
            "{format:?}"
        );
        let file = r.into_inner().into_inner();
        if format == RecordFormat::Mp4 {
            assert!(file.windows(4).any(|w| w == b"jpeg"));
            let t = trafs(&file);
            assert_eq!(t.iter().map(|t| t.samples.len()).sum::<usize>(), 50);
            continue;
        }
        // This crate's Matroska reader serves V_MJPEG: the images come back as they went in.
        let source = crate::from_bytes(Bytes::from(file), crate::FileKind::Mkv).expect("our own reader reads it");
        assert_eq!(source.tracks[0].codec, crate::SourceCodec::Mjpeg);
        assert_eq!(source.samples.len(), 50);
        assert!(source.samples.iter().all(|s| s.data == image && s.keyframe));
        assert_eq!(
            source.samples[10].presentation_time - source.samples[0].presentation_time,
            90_000
        );
    }
}

#[test]
fn opus_and_l16_are_recorded_in_matroska_only() {
    let sdp = "v=0\r\nm=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 sprop-stereo=1\r\n\
        m=audio 0 RTP/AVP 97\r\na=rtpmap:97 L16/16000/1\r\n";
    let m = Sdp::parse(sdp.as_bytes()).unwrap().media;
    let mut mp4 = Recorder::new(Cursor::new(Vec::new()), RecordFormat::Mp4);
    for (i, media) in m.iter().enumerate() {
        let e = mp4.add_track(&track(i, media), media).unwrap_err();
        assert!(e.to_string().contains("Matroska only"), "{e}");
    }

    // Opus: the packets come back from this crate's Matroska reader.
    let mut r = Recorder::new(Cursor::new(Vec::new()), RecordFormat::Mkv);
    r.add_track(&track(0, &m[0]), &m[0]).unwrap();
    let packets: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![0xfc, i, 0x55, i])).collect();
    for (i, p) in packets.iter().enumerate() {
        let ts = i as u32 * 960;
        r.audio(&AudioFrameEvent {
            track: 0,
            frame: AudioFrame {
                codec: AudioCodec::Opus,
                timestamp: ts,
                data: p.clone(),
                sample_count: 960,
                sample_rate: 48000,
                channels: 2,
                loss: 0,
            },
            extended_timestamp: i64::from(ts),
            recv_tick: Duration::from_millis(i as u64 * 20),
        })
        .unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!((s.tracks[0].codec.as_str(), s.tracks[0].frames), ("opus", 100));
    let source = crate::from_bytes(Bytes::from(r.into_inner().into_inner()), crate::FileKind::Mkv).unwrap();
    assert_eq!(
        source.tracks[0],
        rtsp_toolkit_core::source::SourceTrack {
            codec: rtsp_toolkit_core::source::SourceCodec::Opus { channels: 2 },
            clock_rate: 48000
        }
    );
    let back: Vec<Bytes> = source.samples.iter().map(|s| s.data.clone()).collect();
    assert_eq!(back, packets);
    assert_eq!(source.samples[99].presentation_time, 99 * 960);

    // L16: big-endian in, little-endian A_PCM/INT/LIT out.
    let mut r = Recorder::new(Cursor::new(Vec::new()), RecordFormat::Mkv);
    r.add_track(&track(1, &m[1]), &m[1]).unwrap();
    for i in 0..50u32 {
        r.audio(&AudioFrameEvent {
            track: 1,
            frame: AudioFrame {
                codec: AudioCodec::L16,
                timestamp: i * 320,
                data: (0..320i16).flat_map(|k| (0x0100 + k).to_be_bytes()).collect(),
                sample_count: 320,
                sample_rate: 16000,
                channels: 1,
                loss: 0,
            },
            extended_timestamp: i64::from(i) * 320,
            recv_tick: Duration::from_millis(u64::from(i) * 20),
        })
        .unwrap();
    }
    let s = r.finish().unwrap();
    assert_eq!((s.tracks[0].codec.as_str(), s.tracks[0].frames), ("pcm_s16le", 50));
    assert_eq!(s.tracks[0].duration, Duration::from_secs(1));
    let file = r.into_inner().into_inner();
    let find = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"A_PCM/INT/LIT"));
    // Samples 0x0100, 0x0101, 0x0102 as little-endian, not big-endian.
    assert!(find(&[0x00, 0x01, 0x01, 0x01, 0x02, 0x01]));
    assert!(!find(&[0x01, 0x00, 0x01, 0x01, 0x01, 0x02]));
}
