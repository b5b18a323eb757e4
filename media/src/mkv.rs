//! Matroska / WebM demuxer for whole files held in memory.
//!
//! Reads the EBML header, `Info` (TimestampScale), `Tracks` (TrackEntry:
//! number, codec id, CodecPrivate, DefaultDuration, audio channels) and the
//! `Cluster`s' `SimpleBlock`s and `BlockGroup`s, with all three lacing
//! modes. Unknown-size `Segment`s and `Cluster`s (live recordings) are
//! accepted. It is not a general Matroska library: `Cues`, `SeekHead`,
//! chapters, tags and attachments are skipped; tracks using
//! `ContentEncoding` (header stripping, compression, encryption) are skipped
//! and logged, as are codecs other than `V_MPEG4/ISO/AVC`,
//! `V_MPEGH/ISO/HEVC`, `V_MJPEG`, `A_AAC*` and `A_OPUS` (mono or stereo; the
//! `.webm` extension is read the same way). A `V_MJPEG` track is
//! served only if every image can go over RTP as RFC 2435 says
//! ([`rtsp_toolkit_core::codec::jpeg::Packetizer`]: baseline YUV 4:2:0 or
//! 4:2:2 with the standard Huffman tables, at most 2040x2040); otherwise it
//! is skipped with the reason.
//!
//! # Times
//! Block timestamps are presentation times in TimestampScale units
//! (usually 1 ms); they are converted to the track clock (90000 for video,
//! the sample rate for AAC, 48000 for Opus) with integer math. Because of the
//! 1 ms rounding, an AAC or Opus frame whose time is within half a frame of the previous frame's
//! end is placed exactly there, so audio times are contiguous. Frames after
//! the first in a laced block follow at DefaultDuration (AAC: one frame)
//! steps. Decode times are not stored in Matroska: for video they are the
//! presentation times sorted ascending and moved earlier by the stream's
//! largest reorder delay (so decode time ≤ presentation time and decode
//! times never decrease); for audio they equal presentation times.
//! `CodecDelay` and `SeekPreRoll` are ignored.

use std::collections::BTreeMap;

use bytes::Bytes;
use rtsp_toolkit_core::codec::opus;
use rtsp_toolkit_core::source::{SourceCodec, SourceTrack};

use crate::adts::{aac_codec, audio_specific_config, frequency_index};
use crate::nal::VideoConfig;
use crate::reader::Reader;
use crate::timeline::{decode_times_from_presentation, rescale, Timed, TrackOut};
use crate::{malformed, MediaError, VIDEO_CLOCK};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const DEFAULT_DURATION: u32 = 0x23_E383;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CONTENT_ENCODINGS: u32 = 0x6D80;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const BLOCK_DURATION: u32 = 0x9B;
const REFERENCE_BLOCK: u32 = 0xFB;
const CUES: u32 = 0x1C53_BB6B;
const ATTACHMENTS: u32 = 0x1941_A469;
const CHAPTERS: u32 = 0x1043_A770;
const TAGS: u32 = 0x1254_C367;

/// Elements that end an unknown-size cluster.
fn is_top_level(id: u32) -> bool {
    matches!(
        id,
        EBML | SEGMENT | SEEK_HEAD | INFO | TRACKS | CLUSTER | CUES | ATTACHMENTS | CHAPTERS | TAGS
    )
}

/// An element header: id, header length, body size (`None`: unknown).
fn header(data: &[u8]) -> Result<(u32, usize, Option<u64>), MediaError> {
    let bad = || malformed("truncated or invalid EBML element header");
    let first = *data.first().ok_or_else(bad)?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Err(bad());
    }
    let id = data
        .get(..id_len)
        .ok_or_else(bad)?
        .iter()
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let (size, size_len) = vint(data.get(id_len..).ok_or_else(bad)?).ok_or_else(bad)?;
    let all_ones = (1u64 << (7 * size_len)) - 1;
    Ok((id, id_len + size_len, (size != all_ones).then_some(size)))
}

/// A variable-length integer with its marker bit removed, and its length.
fn vint(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = data.get(..len)?;
    let mut v = u64::from(first) & (0xff >> len);
    for &b in &bytes[1..] {
        v = (v << 8) | u64::from(b);
    }
    Some((v, len))
}

/// Iterates the children of a known-size element body.
fn children(body: &Bytes) -> impl Iterator<Item = Result<(u32, Bytes), MediaError>> + '_ {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= body.len() {
            return None;
        }
        let item = (|| {
            let (id, h, size) = header(&body[pos..])?;
            let size = size.ok_or_else(|| malformed(format!("unknown size for element {id:#x}")))?;
            let end = usize::try_from(size)
                .ok()
                .and_then(|s| (pos + h).checked_add(s))
                .filter(|&e| e <= body.len())
                .ok_or_else(|| malformed(format!("element {id:#x} does not fit its parent")))?;
            let child = body.slice(pos + h..end);
            pos = end;
            Ok((id, child))
        })();
        failed = item.is_err();
        Some(item)
    })
}

fn uint(body: &[u8]) -> Result<u64, MediaError> {
    if body.len() > 8 {
        return Err(malformed("integer element longer than 8 bytes"));
    }
    Ok(body.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn float(body: &[u8]) -> Result<f64, MediaError> {
    match body.len() {
        0 => Ok(0.0),
        4 => Ok(f64::from(f32::from_be_bytes(body.try_into().unwrap_or_default()))),
        8 => Ok(f64::from_be_bytes(body.try_into().unwrap_or_default())),
        _ => Err(malformed("float element not 4 or 8 bytes")),
    }
}

#[derive(Debug, Default)]
struct TrackEntry {
    number: u64,
    codec_id: String,
    private: Option<Bytes>,
    /// Nanoseconds.
    default_duration: Option<u64>,
    sampling_frequency: f64,
    channels: u64,
    encoded: bool,
}

fn track_entry(body: &Bytes) -> Result<TrackEntry, MediaError> {
    let mut t = TrackEntry {
        channels: 1,
        sampling_frequency: 8000.0,
        ..TrackEntry::default()
    };
    for c in children(body) {
        let (id, b) = c?;
        match id {
            TRACK_NUMBER => t.number = uint(&b)?,
            CODEC_ID => t.codec_id = String::from_utf8_lossy(&b).trim_end_matches('\0').to_owned(),
            CODEC_PRIVATE => t.private = Some(b),
            DEFAULT_DURATION => t.default_duration = Some(uint(&b)?),
            CONTENT_ENCODINGS => t.encoded = true,
            AUDIO => {
                for a in children(&b) {
                    let (id, ab) = a?;
                    match id {
                        SAMPLING_FREQUENCY => t.sampling_frequency = float(&ab)?,
                        CHANNELS => t.channels = uint(&ab)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

/// One frame of a block, before it is assigned to its track.
#[derive(Debug)]
struct RawFrame {
    /// Block timestamp in TimestampScale units.
    time: i64,
    /// Position in its lace (0 for unlaced blocks).
    lace: u32,
    keyframe: bool,
    data: Bytes,
}

#[derive(Debug, Default)]
struct Segment {
    timestamp_scale: Option<u64>,
    tracks: Vec<TrackEntry>,
    frames: BTreeMap<u64, Vec<RawFrame>>,
}

/// Demuxes a whole Matroska file held in `data`.
pub(crate) fn demux(data: &Bytes) -> Result<(Vec<TrackOut>, Vec<String>), MediaError> {
    let (id, h, size) = header(data)?;
    if id != EBML {
        return Err(malformed("not a Matroska file (no EBML header)"));
    }
    let ebml_end = size
        .and_then(|s| usize::try_from(s).ok())
        .and_then(|s| h.checked_add(s))
        .filter(|&e| e <= data.len())
        .ok_or_else(|| malformed("bad EBML header size"))?;
    for c in children(&data.slice(h..ebml_end)) {
        let (id, b) = c?;
        if id == DOC_TYPE && !matches!(&b[..], b"matroska" | b"webm") {
            return Err(malformed(format!("EBML doc type {:?}", String::from_utf8_lossy(&b))));
        }
    }

    let mut pos = ebml_end;
    let mut segment = Segment::default();
    let mut found = false;
    while pos < data.len() {
        let (id, h, size) = header(&data[pos..])?;
        // Unknown size (live recording) or larger than the file (truncated
        // or still growing): the element runs to the end of the file.
        let end = size
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| (pos + h).checked_add(s))
            .filter(|&e| e <= data.len())
            .unwrap_or(data.len());
        if id == SEGMENT {
            read_segment(&data.slice(pos + h..end), &mut segment)?;
            found = true;
            break; // one segment per file is played
        }
        pos = end;
    }
    if !found {
        return Err(malformed("no Segment"));
    }
    build_tracks(segment)
}

fn read_segment(body: &Bytes, seg: &mut Segment) -> Result<(), MediaError> {
    let mut pos = 0usize;
    while pos < body.len() {
        let (id, h, size) = header(&body[pos..])?;
        let start = pos + h;
        let mut truncated = false;
        let end = match size {
            Some(s) => match usize::try_from(s).ok().and_then(|s| start.checked_add(s)) {
                Some(e) if e <= body.len() => e,
                // The last cluster of a truncated file: read what is there.
                _ if id == CLUSTER => {
                    truncated = true;
                    body.len()
                }
                _ => return Err(malformed(format!("element {id:#x} does not fit the segment"))),
            },
            None if id == CLUSTER => start + unknown_size_cluster_len(&body[start..])?,
            None => return Err(malformed(format!("unknown size for element {id:#x}"))),
        };
        let child = body.slice(start..end);
        if truncated {
            tracing::info!("Matroska: the last cluster is truncated; reading its complete blocks");
            read_cluster(&child, seg, true)?;
            break;
        }
        match id {
            INFO => {
                for c in children(&child) {
                    let (id, b) = c?;
                    if id == TIMESTAMP_SCALE {
                        seg.timestamp_scale = Some(uint(&b)?);
                    }
                }
            }
            TRACKS => {
                for c in children(&child) {
                    let (id, b) = c?;
                    if id == TRACK_ENTRY {
                        seg.tracks.push(track_entry(&b)?);
                    }
                }
            }
            CLUSTER => read_cluster(&child, seg, false)?,
            _ => {}
        }
        pos = end;
    }
    Ok(())
}

/// Where an unknown-size cluster ends: at the next top-level element.
fn unknown_size_cluster_len(data: &[u8]) -> Result<usize, MediaError> {
    let mut pos = 0usize;
    while pos < data.len() {
        let (id, h, size) = header(&data[pos..])?;
        if is_top_level(id) {
            return Ok(pos);
        }
        let size = size.ok_or_else(|| malformed("unknown size inside a cluster"))?;
        pos = usize::try_from(size)
            .ok()
            .and_then(|s| (pos + h).checked_add(s))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| malformed("cluster element does not fit"))?;
    }
    Ok(pos)
}

/// Reads a cluster's blocks. With `truncated`, stops quietly at the first
/// element that does not fit.
fn read_cluster(body: &Bytes, seg: &mut Segment, truncated: bool) -> Result<(), MediaError> {
    let mut cluster_time = 0i64;
    for c in children(body) {
        let (id, b) = match c {
            Ok(c) => c,
            Err(_) if truncated => break,
            Err(e) => return Err(e),
        };
        match id {
            CLUSTER_TIMESTAMP => cluster_time = i64::try_from(uint(&b)?).unwrap_or(i64::MAX),
            SIMPLE_BLOCK => read_block(&b, cluster_time, None, seg)?,
            BLOCK_GROUP => {
                let mut block = None;
                let mut referenced = false;
                for g in children(&b) {
                    let (id, gb) = g?;
                    match id {
                        BLOCK => block = Some(gb),
                        REFERENCE_BLOCK => referenced = true,
                        BLOCK_DURATION => {}
                        _ => {}
                    }
                }
                if let Some(block) = block {
                    read_block(&block, cluster_time, Some(!referenced), seg)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Splits a (Simple)Block into frames. `group_keyframe` is `Some` for a
/// Block inside a BlockGroup (keyframe = no ReferenceBlock).
fn read_block(
    body: &Bytes,
    cluster_time: i64,
    group_keyframe: Option<bool>,
    seg: &mut Segment,
) -> Result<(), MediaError> {
    let bad = || malformed("truncated block");
    let (track, n) = vint(body).ok_or_else(bad)?;
    let mut r = Reader::new(&body[n..]);
    let relative = r.u16().ok_or_else(bad)? as i16;
    let flags = r.u8().ok_or_else(bad)?;
    let keyframe = group_keyframe.unwrap_or(flags & 0x80 != 0);
    let time = cluster_time.saturating_add(i64::from(relative));
    let frames = seg.frames.entry(track).or_default();
    let lacing = (flags >> 1) & 0x03;
    let mut push = |lace: u32, data: &[u8]| {
        if !data.is_empty() {
            frames.push(RawFrame {
                time,
                lace,
                keyframe,
                data: body.slice_ref(data),
            });
        }
    };
    if lacing == 0 {
        push(0, r.rest());
        return Ok(());
    }
    let count = usize::from(r.u8().ok_or_else(bad)?) + 1;
    let mut sizes = Vec::with_capacity(count);
    match lacing {
        1 => {
            // Xiph: each size is a run of 255s plus a final byte.
            for _ in 0..count - 1 {
                let mut size = 0usize;
                loop {
                    let b = r.u8().ok_or_else(bad)?;
                    size += usize::from(b);
                    if b != 255 {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
        3 => {
            // EBML: first size, then signed differences.
            let (first, len) = vint(r.rest()).ok_or_else(bad)?;
            r.skip(len).ok_or_else(bad)?;
            let mut size = i128::from(first);
            sizes.push(usize::try_from(size).map_err(|_| bad())?);
            for _ in 1..count - 1 {
                let (raw, len) = vint(r.rest()).ok_or_else(bad)?;
                r.skip(len).ok_or_else(bad)?;
                let bias = (1i128 << (7 * len - 1)) - 1;
                size += i128::from(raw) - bias;
                sizes.push(usize::try_from(size).map_err(|_| malformed("negative EBML lace size"))?);
            }
        }
        _ => {
            // Fixed-size lacing.
            if r.remaining() % count != 0 {
                return Err(malformed("fixed-size lace does not divide evenly"));
            }
            sizes.resize(count - 1, r.remaining() / count);
        }
    }
    let mut lace = 0u32;
    for size in sizes {
        push(
            lace,
            r.take(size).ok_or_else(|| malformed("lace larger than its block"))?,
        );
        lace += 1;
    }
    push(lace, r.rest());
    Ok(())
}

fn build_tracks(mut seg: Segment) -> Result<(Vec<TrackOut>, Vec<String>), MediaError> {
    let scale = match seg.timestamp_scale {
        None => 1_000_000,
        Some(0) => return Err(malformed("TimestampScale 0")),
        Some(s) => s,
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for entry in std::mem::take(&mut seg.tracks) {
        let name = format!("track {} ({})", entry.number, entry.codec_id);
        let frames = seg.frames.remove(&entry.number).unwrap_or_default();
        match build_track(&entry, frames, scale) {
            Ok(Ok(samples)) => out.push(TrackOut {
                track: samples.0,
                name,
                samples: samples.1,
            }),
            Ok(Err(why)) => {
                tracing::info!("skipping {name}: {why}");
                skipped.push(format!("{name}: {why}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((out, skipped))
}

type Built = Result<(SourceTrack, Vec<Timed>), String>;

fn build_track(entry: &TrackEntry, frames: Vec<RawFrame>, scale: u64) -> Result<Built, MediaError> {
    if entry.encoded {
        return Ok(Err(
            "ContentEncoding (compressed or encrypted blocks) is not supported".into()
        ));
    }
    let to_clock = |time: i64, clock: u32| -> Result<i64, MediaError> {
        let nanos = i128::from(time)
            .checked_mul(i128::from(scale))
            .ok_or_else(|| malformed("timestamp out of range"))?;
        rescale(nanos, 1_000_000_000, clock)
    };
    let default_duration = |clock: u32| -> Result<Option<i64>, MediaError> {
        entry
            .default_duration
            .map(|d| rescale(i128::from(d), 1_000_000_000, clock))
            .transpose()
    };
    match entry.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" | "V_MPEGH/ISO/HEVC" => {
            let Some(private) = &entry.private else {
                return Ok(Err("no CodecPrivate".into()));
            };
            let config = if entry.codec_id == "V_MPEG4/ISO/AVC" {
                VideoConfig::from_avcc(private)
            } else {
                VideoConfig::from_hvcc(private)
            };
            let mut config = match config {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let step = default_duration(VIDEO_CLOCK)?;
            let mut samples = Vec::with_capacity(frames.len());
            for f in frames {
                let data = f.data;
                let pts =
                    to_clock(f.time, VIDEO_CLOCK)?.saturating_add(step.unwrap_or(0).saturating_mul(i64::from(f.lace)));
                samples.push(Timed {
                    dts: 0,
                    pts,
                    duration: step.unwrap_or(0),
                    keyframe: f.keyframe,
                    data,
                });
            }
            let mut samples = config.convert_samples(samples, &format!("track {}", entry.number));
            let pts: Vec<i64> = samples.iter().map(|s| s.pts).collect();
            for (s, dts) in samples.iter_mut().zip(decode_times_from_presentation(&pts)) {
                s.dts = dts;
            }
            if step.is_none() {
                fill_durations_from_gaps(&mut samples);
            }
            config.fill_in_band(&samples);
            Ok(config.into_codec().map(|codec| {
                (
                    SourceTrack {
                        codec,
                        clock_rate: VIDEO_CLOCK,
                    },
                    samples,
                )
            }))
        }
        "V_MJPEG" => {
            let step = default_duration(VIDEO_CLOCK)?;
            let mut samples = Vec::with_capacity(frames.len());
            for (i, f) in frames.into_iter().enumerate() {
                if let Err(e) = rtsp_toolkit_core::codec::jpeg::Packetizer::check(&f.data) {
                    return Ok(Err(format!("image {i}: {e}")));
                }
                let pts =
                    to_clock(f.time, VIDEO_CLOCK)?.saturating_add(step.unwrap_or(0).saturating_mul(i64::from(f.lace)));
                samples.push(Timed {
                    dts: pts,
                    pts,
                    duration: step.unwrap_or(0),
                    // Every image stands alone.
                    keyframe: true,
                    data: f.data,
                });
            }
            samples.sort_by_key(|s| s.pts);
            if step.is_none() {
                fill_durations_from_gaps(&mut samples);
            }
            Ok(Ok((
                SourceTrack {
                    codec: SourceCodec::Mjpeg,
                    clock_rate: VIDEO_CLOCK,
                },
                samples,
            )))
        }
        id if id.starts_with("A_AAC") => {
            let channels = u16::try_from(entry.channels).unwrap_or(0);
            let config = match &entry.private {
                Some(p) => p.clone(),
                None => match legacy_aac_config(id, entry.sampling_frequency, channels) {
                    Some(c) => c,
                    None => return Ok(Err("A_AAC without CodecPrivate".into())),
                },
            };
            let (codec, clock, frame) = match aac_codec(config, channels) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let frame = i64::from(frame);
            let step = default_duration(clock)?.unwrap_or(frame);
            let mut samples: Vec<Timed> = Vec::with_capacity(frames.len());
            for f in frames {
                let mut pts = to_clock(f.time, clock)?.saturating_add(step.saturating_mul(i64::from(f.lace)));
                if let Some(prev) = samples.last() {
                    let expected = prev.pts.saturating_add(frame);
                    if pts.abs_diff(expected) <= frame.unsigned_abs() / 2 {
                        pts = expected;
                    }
                }
                samples.push(Timed {
                    dts: pts,
                    pts,
                    duration: frame,
                    keyframe: true,
                    data: f.data,
                });
            }
            Ok(Ok((
                SourceTrack {
                    codec,
                    clock_rate: clock,
                },
                samples,
            )))
        }
        "A_OPUS" => {
            // OpusHead (RFC 7845 §5.1): the channel count is its byte 9.
            let channels = match &entry.private {
                Some(p) if p.len() >= 19 && p.starts_with(b"OpusHead") => u64::from(p[9]),
                _ => entry.channels,
            };
            let channels = match channels {
                1 | 2 => channels as u16,
                n => {
                    return Ok(Err(format!(
                        "Opus with {n} channels (RTP carries mono and stereo only)"
                    )))
                }
            };
            let clock = opus::CLOCK_RATE;
            let mut samples: Vec<Timed> = Vec::with_capacity(frames.len());
            let mut bad = 0usize;
            for f in frames {
                let Ok(frame) = opus::packet_samples(&f.data) else {
                    bad += 1;
                    continue;
                };
                let frame = i64::from(frame);
                let mut pts = to_clock(f.time, clock)?;
                if let Some(prev) = samples.last() {
                    let expected = prev.pts.saturating_add(prev.duration);
                    if pts.abs_diff(expected) <= frame.unsigned_abs() / 2 {
                        pts = expected;
                    }
                }
                samples.push(Timed {
                    dts: pts,
                    pts,
                    duration: frame,
                    keyframe: true,
                    data: f.data,
                });
            }
            if bad > 0 {
                tracing::info!(
                    track = entry.number,
                    bad,
                    "skipped Opus packets with a broken TOC framing"
                );
            }
            Ok(Ok((
                SourceTrack {
                    codec: SourceCodec::Opus { channels },
                    clock_rate: clock,
                },
                samples,
            )))
        }
        other => Ok(Err(format!("unsupported codec {other:?}"))),
    }
}

/// Durations from the gaps between sorted presentation times; the last
/// frame gets the smallest gap.
fn fill_durations_from_gaps(samples: &mut [Timed]) {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.sort_by_key(|&i| samples[i].pts);
    let mut smallest = i64::MAX;
    for w in order.windows(2) {
        let gap = samples[w[1]].pts.saturating_sub(samples[w[0]].pts);
        samples[w[0]].duration = gap;
        if gap > 0 {
            smallest = smallest.min(gap);
        }
    }
    if let Some(&last) = order.last() {
        samples[last].duration = if smallest == i64::MAX { 0 } else { smallest };
    }
}

/// An AudioSpecificConfig for the old `A_AAC/MPEG{2,4}/{MAIN,LC,SSR,LTP}`
/// codec ids, which carry no CodecPrivate.
fn legacy_aac_config(codec_id: &str, sampling_frequency: f64, channels: u16) -> Option<Bytes> {
    let object_type = match codec_id.rsplit('/').next()? {
        "MAIN" => 1,
        "LC" => 2,
        "SSR" => 3,
        "LTP" => 4,
        _ => return None,
    };
    let index = frequency_index(sampling_frequency as u32)?;
    let channel_config = u8::try_from(channels).ok().filter(|&c| (1..=6).contains(&c))?;
    Some(Bytes::copy_from_slice(&audio_specific_config(
        object_type,
        index,
        channel_config,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints() {
        assert_eq!(vint(&[0x81]), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02]), Some((2, 2)));
        assert_eq!(vint(&[0x00]), None);
        assert_eq!(header(&[0x1A, 0x45, 0xDF, 0xA3, 0xFF]).unwrap(), (EBML, 5, None));
    }

    #[test]
    fn xiph_lacing() {
        let mut seg = Segment::default();
        // track 1, time 5, flags: Xiph lacing, 3 frames: sizes 2, 1, rest.
        let block = Bytes::from_static(&[0x81, 0, 5, 0x82, 2, 2, 1, 0xa, 0xb, 0xc, 0xd, 0xe]);
        read_block(&block, 10, None, &mut seg).unwrap();
        let frames = &seg.frames[&1];
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[0].data[..], &[0xa, 0xb]);
        assert_eq!(&frames[1].data[..], &[0xc]);
        assert_eq!(&frames[2].data[..], &[0xd, 0xe]);
        assert_eq!(frames[2].time, 15);
        assert_eq!(frames[2].lace, 2);
        assert!(frames[0].keyframe);
    }

    #[test]
    fn ebml_lacing() {
        let mut seg = Segment::default();
        // 3 frames: sizes 2, 2 + (0x5f - 0x5f) = 2, rest 1.
        let block = Bytes::from_static(&[0x81, 0, 0, 0x06, 2, 0x82, 0xbf, 1, 2, 3, 4, 5]);
        read_block(&block, 0, None, &mut seg).unwrap();
        let sizes: Vec<usize> = seg.frames[&1].iter().map(|f| f.data.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
    }
}
