//! The Matroska writer (RFC 9559): an EBML header, a Segment of unknown
//! size with `Info` and `Tracks`, then one or more `Cluster`s per fragment,
//! each of known size, holding `SimpleBlock`s with presentation times in
//! milliseconds.
//!
//! Room for a `SeekHead` and for the `Duration` is kept as `Void` elements
//! at the start; [`Writer::finish`] writes `Cues` (one per cluster that
//! holds a keyframe of the first video track), then fills in the segment
//! size, the duration and the seek head. A recording cut short keeps the
//! unknown segment size and no duration, which Matroska readers accept for
//! live streams.

use std::io::{self, Seek, SeekFrom, Write};

use super::params::VideoKind;
use super::{Codec, Output, Run, TrackHeader};

const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const FLAG_LACING: u32 = 0x9C;
const LANGUAGE: u32 = 0x22_B59C;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const BIT_DEPTH: u32 = 0x6264;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;
const VOID: u32 = 0xEC;

/// Nanoseconds per timestamp tick (`TimestampScale`): milliseconds.
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// Bytes kept for the seek head (a `Void` until the end).
const SEEK_HEAD_ROOM: usize = 128;
/// Bytes of the `Duration` element (2-byte ID, 1-byte size, 8-byte float).
const DURATION_ROOM: usize = 11;
/// The unknown size, as an 8-byte vint.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// The Matroska writer's state between clusters.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// File offsets: the segment's size field, its data, the two reserved `Void`s.
    segment_size_at: u64,
    segment_data: u64,
    seek_head_at: u64,
    duration_at: u64,
    /// Offsets of `Info` and `Tracks`, relative to the segment data.
    info_rel: u64,
    tracks_rel: u64,
    /// (time in ms, track number, cluster offset relative to the segment data).
    cues: Vec<(u64, u32, u64)>,
    /// The track whose keyframes are cue points.
    cue_track: Option<u32>,
    header_written: bool,
}

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().position(|&b| b != 0).unwrap_or(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// A data size as the shortest vint (all ones is reserved for "unknown").
fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    element(out, id, &inner);
}

fn uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    element(out, id, &bytes[skip..]);
}

fn float(out: &mut Vec<u8>, id: u32, v: f64) {
    element(out, id, &v.to_be_bytes());
}

/// A `Void` element of exactly `len` bytes (2 ≤ len ≤ 128).
fn void(out: &mut Vec<u8>, len: usize) {
    let body = len.saturating_sub(2).min(126);
    put_id(out, VOID);
    put_size(out, body as u64);
    out.resize(out.len() + body, 0);
}

/// Milliseconds of `ticks` at `scale` ticks per second, rounded to nearest.
fn millis(ticks: i64, scale: u32) -> i64 {
    let scale = i128::from(scale.max(1));
    (i128::from(ticks) * 2000 + scale).div_euclid(2 * scale) as i64
}

impl Writer {
    /// The EBML header, the start of the segment, `Info` and `Tracks`, to be
    /// written at file offset `base`.
    pub(crate) fn header(&mut self, tracks: &[TrackHeader], base: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        master(&mut out, EBML, |o| {
            uint(o, EBML_VERSION, 1);
            uint(o, EBML_READ_VERSION, 1);
            uint(o, EBML_MAX_ID_LENGTH, 4);
            uint(o, EBML_MAX_SIZE_LENGTH, 8);
            element(o, DOC_TYPE, b"matroska");
            uint(o, DOC_TYPE_VERSION, 4);
            uint(o, DOC_TYPE_READ_VERSION, 2);
        });
        put_id(&mut out, SEGMENT);
        self.segment_size_at = base + out.len() as u64;
        out.extend_from_slice(&UNKNOWN_SIZE);
        self.segment_data = base + out.len() as u64;
        self.seek_head_at = base + out.len() as u64;
        void(&mut out, SEEK_HEAD_ROOM);
        self.info_rel = base + out.len() as u64 - self.segment_data;
        let mut info = Vec::with_capacity(64);
        uint(&mut info, TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS);
        element(&mut info, MUXING_APP, b"rtsp-toolkit");
        element(&mut info, WRITING_APP, b"rtsp-toolkit");
        let duration_in_info = info.len();
        void(&mut info, DURATION_ROOM);
        let before = out.len();
        put_id(&mut out, INFO);
        put_size(&mut out, info.len() as u64);
        let info_head = out.len() - before;
        out.extend_from_slice(&info);
        self.duration_at = self.segment_data + self.info_rel + (info_head + duration_in_info) as u64;
        self.tracks_rel = base + out.len() as u64 - self.segment_data;
        master(&mut out, TRACKS, |o| {
            for t in tracks {
                track_entry(o, t);
            }
        });
        self.cue_track = tracks
            .iter()
            .find(|t| t.is_video())
            .or_else(|| tracks.first())
            .map(|t| t.number);
        self.header_written = true;
        out
    }

    /// The runs' samples as clusters, blocks in decode order across tracks;
    /// a new cluster starts wherever a block's time would not fit the 16-bit
    /// offset from the cluster's. `position` is where the output goes in the
    /// file. Returns the output and the number of clusters.
    pub(crate) fn clusters(&mut self, runs: &[Run<'_>], position: u64) -> (Output, u64) {
        // (decode ms, presentation ms, track number, keyframe, data)
        let mut blocks = Vec::new();
        for run in runs {
            let scale = run.track.timescale;
            for s in run.samples {
                let dts = s.dts as i64;
                let dms = millis(dts, scale);
                let pms = millis(dts + i64::from(s.cts), scale).max(0);
                blocks.push((dms, pms, run.track.number, s.keyframe, s.data.clone()));
            }
        }
        // Stable: each track keeps its decode order.
        blocks.sort_by_key(|b| b.0);
        let mut output = Output::default();
        let mut count = 0;
        let mut at = position;
        let mut start = 0;
        while start < blocks.len() {
            let (mut lo, mut hi) = (blocks[start].1, blocks[start].1);
            let mut end = start + 1;
            while end < blocks.len() {
                let p = blocks[end].1;
                if p.max(hi) - p.min(lo) > i64::from(i16::MAX) {
                    break;
                }
                lo = lo.min(p);
                hi = hi.max(p);
                end += 1;
            }
            let group = &blocks[start..end];
            let cluster_time = lo;
            let mut body = Vec::with_capacity(16 + 8 * group.len());
            uint(&mut body, CLUSTER_TIMESTAMP, cluster_time as u64);
            let mut heads = Vec::with_capacity(group.len());
            let mut body_len = body.len() as u64;
            for (_, pms, track, keyframe, data) in group {
                let mut h = Vec::with_capacity(16);
                put_id(&mut h, SIMPLE_BLOCK);
                let mut block_head = Vec::with_capacity(8);
                put_size(&mut block_head, u64::from(*track));
                block_head.extend_from_slice(&((pms - cluster_time) as i16).to_be_bytes());
                block_head.push(if *keyframe { 0x80 } else { 0 });
                put_size(&mut h, (block_head.len() + data.len()) as u64);
                h.extend_from_slice(&block_head);
                body_len += (h.len() + data.len()) as u64;
                heads.push(h);
            }
            let mut cluster_head = Vec::with_capacity(16);
            put_id(&mut cluster_head, CLUSTER);
            put_size(&mut cluster_head, body_len);
            let cluster_rel = at.saturating_sub(self.segment_data);
            if let Some(cue) = self.cue_track {
                if let Some(b) = group.iter().find(|b| b.2 == cue && b.3) {
                    self.cues.push((b.1 as u64, cue, cluster_rel));
                }
            }
            at += cluster_head.len() as u64 + body_len;
            cluster_head.extend_from_slice(&body);
            output.push(cluster_head);
            for (h, b) in heads.into_iter().zip(group) {
                output.push(h);
                output.push(b.4.clone());
            }
            count += 1;
            start = end;
        }
        (output, count)
    }

    /// Writes `Cues` at `position` (the end), then fills in the segment
    /// size, the duration and the seek head. `ends`: each track's (number,
    /// end in its timescale, timescale).
    pub(crate) fn finish<W: Write + Seek>(
        &mut self,
        out: &mut W,
        ends: &[(u32, u64, u32)],
        position: u64,
    ) -> io::Result<()> {
        if !self.header_written {
            return Ok(());
        }
        let mut end = position;
        let mut cues_rel = None;
        if !self.cues.is_empty() {
            let mut cues = Vec::with_capacity(24 * self.cues.len());
            master(&mut cues, CUES, |o| {
                for &(time, track, cluster) in &self.cues {
                    master(o, CUE_POINT, |o| {
                        uint(o, CUE_TIME, time);
                        master(o, CUE_TRACK_POSITIONS, |o| {
                            uint(o, CUE_TRACK, u64::from(track));
                            uint(o, CUE_CLUSTER_POSITION, cluster);
                        });
                    });
                }
            });
            out.write_all(&cues)?;
            cues_rel = Some(end.saturating_sub(self.segment_data));
            end += cues.len() as u64;
        }
        out.flush()?;
        // Segment size: an 8-byte vint.
        let size = end.saturating_sub(self.segment_data);
        out.seek(SeekFrom::Start(self.segment_size_at))?;
        out.write_all(&(size | (1u64 << 56)).to_be_bytes())?;
        // Duration, in milliseconds as a float.
        let ms = ends
            .iter()
            .map(|&(_, e, scale)| u128::from(e) * 1000 / u128::from(scale.max(1)))
            .max()
            .unwrap_or(0);
        if ms > 0 {
            let mut d = Vec::with_capacity(DURATION_ROOM);
            float(&mut d, DURATION, ms as f64);
            out.seek(SeekFrom::Start(self.duration_at))?;
            out.write_all(&d)?;
        }
        // Seek head: Info, Tracks, Cues, each position as 8 bytes; then a Void for the rest.
        let mut seek = Vec::with_capacity(SEEK_HEAD_ROOM);
        let entries = [
            (INFO, Some(self.info_rel)),
            (TRACKS, Some(self.tracks_rel)),
            (CUES, cues_rel),
        ];
        master(&mut seek, SEEK_HEAD, |o| {
            for (id, rel) in entries {
                let Some(rel) = rel else { continue };
                master(o, SEEK, |o| {
                    element(o, SEEK_ID, &id.to_be_bytes());
                    element(o, SEEK_POSITION, &rel.to_be_bytes());
                });
            }
        });
        let rest = SEEK_HEAD_ROOM - seek.len();
        void(&mut seek, rest);
        out.seek(SeekFrom::Start(self.seek_head_at))?;
        out.write_all(&seek)?;
        out.seek(SeekFrom::End(0))?;
        Ok(())
    }
}

/// One `TrackEntry`.
fn track_entry(o: &mut Vec<u8>, t: &TrackHeader) {
    master(o, TRACK_ENTRY, |o| {
        uint(o, TRACK_NUMBER, u64::from(t.number));
        uint(o, TRACK_UID, u64::from(t.number));
        uint(o, TRACK_TYPE, if t.is_video() { 1 } else { 2 });
        uint(o, FLAG_LACING, 0);
        element(o, LANGUAGE, b"und");
        match &t.codec {
            Codec::Video {
                kind,
                record,
                width,
                height,
            } => {
                let id: &[u8] = match kind {
                    VideoKind::H264 => b"V_MPEG4/ISO/AVC",
                    VideoKind::H265 => b"V_MPEGH/ISO/HEVC",
                };
                element(o, CODEC_ID, id);
                element(o, CODEC_PRIVATE, record);
                master(o, VIDEO, |o| {
                    uint(o, PIXEL_WIDTH, u64::from(*width));
                    uint(o, PIXEL_HEIGHT, u64::from(*height));
                });
            }
            Codec::Mjpeg { width, height } => {
                element(o, CODEC_ID, b"V_MJPEG");
                master(o, VIDEO, |o| {
                    uint(o, PIXEL_WIDTH, u64::from(*width));
                    uint(o, PIXEL_HEIGHT, u64::from(*height));
                });
            }
            Codec::Aac {
                config,
                sample_rate,
                channels,
            } => {
                element(o, CODEC_ID, b"A_AAC");
                element(o, CODEC_PRIVATE, config);
                master(o, AUDIO, |o| {
                    float(o, SAMPLING_FREQUENCY, f64::from(*sample_rate));
                    uint(o, CHANNELS, u64::from(*channels));
                });
            }
            Codec::G711 {
                alaw,
                sample_rate,
                channels,
            } => {
                element(o, CODEC_ID, b"A_MS/ACM");
                // WAVEFORMATEX, little-endian: tag 6 A-law / 7 mu-law, 8 bits a sample.
                let mut wfx = Vec::with_capacity(18);
                wfx.extend_from_slice(&(if *alaw { 6u16 } else { 7u16 }).to_le_bytes());
                wfx.extend_from_slice(&channels.to_le_bytes());
                wfx.extend_from_slice(&sample_rate.to_le_bytes());
                wfx.extend_from_slice(&(sample_rate * u32::from(*channels)).to_le_bytes());
                wfx.extend_from_slice(&channels.to_le_bytes()); // block align
                wfx.extend_from_slice(&8u16.to_le_bytes());
                wfx.extend_from_slice(&0u16.to_le_bytes()); // cbSize
                element(o, CODEC_PRIVATE, &wfx);
                master(o, AUDIO, |o| {
                    float(o, SAMPLING_FREQUENCY, f64::from(*sample_rate));
                    uint(o, CHANNELS, u64::from(*channels));
                });
            }
            Codec::Opus { channels } => {
                element(o, CODEC_ID, b"A_OPUS");
                // OpusHead (RFC 7845 §5.1): version 1, channels, pre-skip 0
                // (RTP does not carry it), 48 kHz input, gain 0, mapping family 0.
                let mut head = Vec::with_capacity(19);
                head.extend_from_slice(b"OpusHead");
                head.push(1);
                head.push(*channels as u8);
                head.extend_from_slice(&0u16.to_le_bytes());
                head.extend_from_slice(&48_000u32.to_le_bytes());
                head.extend_from_slice(&0i16.to_le_bytes());
                head.push(0);
                element(o, CODEC_PRIVATE, &head);
                master(o, AUDIO, |o| {
                    float(o, SAMPLING_FREQUENCY, 48_000.0);
                    uint(o, CHANNELS, u64::from(*channels));
                });
            }
            Codec::Pcm { sample_rate, channels } => {
                element(o, CODEC_ID, b"A_PCM/INT/LIT");
                master(o, AUDIO, |o| {
                    float(o, SAMPLING_FREQUENCY, f64::from(*sample_rate));
                    uint(o, CHANNELS, u64::from(*channels));
                    uint(o, BIT_DEPTH, 16);
                });
            }
        }
    });
}

/// The private helpers, for the module tests.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) fn size(out: &mut Vec<u8>, size: u64) {
        super::put_size(out, size);
    }

    pub(crate) fn void(out: &mut Vec<u8>, len: usize) {
        super::void(out, len);
    }
}
