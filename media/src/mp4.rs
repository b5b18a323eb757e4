//! MP4 / ISO BMFF demuxer for progressive (non-fragmented) files.
//!
//! Reads only the boxes needed to locate and time samples: `moov`, `mvhd`,
//! `trak`, `edts`/`elst`, `mdia`, `mdhd`, `hdlr`, `minf`, `stbl`, `stsd`
//! (`avc1`/`avc3` + `avcC`, `hvc1`/`hev1` + `hvcC`, `mp4a` + `esds`), `stts`,
//! `ctts`, `stss`, `stsz`/`stz2`, `stsc`, `stco`/`co64`. Everything else is
//! skipped by size. It is not a general MP4 library: fragmented files
//! (`moof`), multiple sample descriptions per track, encrypted entries and
//! every other codec are out of scope (such tracks are skipped and logged).
//!
//! # Times
//! Decode times come from `stts`, presentation times add the `ctts` offset
//! (read as signed in both box versions, as FFmpeg does). Both are computed
//! as absolute values in the `mdhd` timescale and converted one by one to the
//! track clock (90000 for video, the sample rate for AAC), so nothing drifts.
//!
//! The edit list is applied only as far as needed for presentation to start
//! near 0: leading empty edits delay the track by their duration, and the
//! first non-empty edit's `media_time` is subtracted from every time. Audio
//! samples that end at or before that `media_time` (encoder priming) are
//! dropped; video samples never are, since later frames reference them.
//! Later edits (cuts, repeats, rate changes) are ignored.

use bytes::Bytes;
use rtsp_toolkit_core::sdp::parse_audio_specific_config;
use rtsp_toolkit_core::source::{SourceCodec, SourceTrack};

use crate::nal::VideoConfig;
use crate::reader::Reader;
use crate::timeline::{rescale, Timed, TrackOut};
use crate::{malformed, MediaError, VIDEO_CLOCK};

type FourCc = [u8; 4];

/// Iterates the boxes of `data` (the body of a container box or the file).
fn boxes(data: &Bytes) -> impl Iterator<Item = Result<(FourCc, Bytes), MediaError>> + '_ {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= data.len() {
            return None;
        }
        let result = read_box(data, pos);
        match &result {
            Ok((_, _, end)) => pos = *end,
            Err(_) => failed = true,
        }
        Some(result.map(|(kind, body, _)| (kind, body)))
    })
}

/// Reads the box at `pos`: its type, its body and where it ends.
fn read_box(data: &Bytes, pos: usize) -> Result<(FourCc, Bytes, usize), MediaError> {
    let mut r = Reader::new(&data[pos..]);
    let (Some(size), Some(kind)) = (r.u32(), r.take(4)) else {
        return Err(malformed("truncated box header"));
    };
    let kind: FourCc = kind.try_into().map_err(|_| malformed("truncated box header"))?;
    let size = match size {
        0 => (data.len() - pos) as u64,
        1 => r.u64().ok_or_else(|| malformed("truncated box header"))?,
        n => u64::from(n),
    };
    let header = r.pos();
    let size = usize::try_from(size).map_err(|_| malformed("box too large"))?;
    if size < header || size > data.len() - pos {
        return Err(malformed(format!(
            "box '{}' of {size} bytes does not fit its parent",
            String::from_utf8_lossy(&kind)
        )));
    }
    Ok((kind, data.slice(pos + header..pos + size), pos + size))
}

/// The first child box of type `kind`.
fn child(data: &Bytes, kind: &FourCc) -> Result<Option<Bytes>, MediaError> {
    for b in boxes(data) {
        let (k, body) = b?;
        if &k == kind {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

fn require(data: &Bytes, kind: &FourCc) -> Result<Bytes, MediaError> {
    child(data, kind)?.ok_or_else(|| malformed(format!("missing '{}' box", String::from_utf8_lossy(kind))))
}

fn truncated(what: &str) -> MediaError {
    malformed(format!("truncated '{what}' box"))
}

/// Demuxes a whole MP4 file held in `data`.
pub(crate) fn demux(data: &Bytes) -> Result<(Vec<TrackOut>, Vec<String>), MediaError> {
    let moov = require(data, b"moov")?;
    let mvhd = require(&moov, b"mvhd")?;
    let mut r = Reader::new(&mvhd);
    let version = r.u8().ok_or_else(|| truncated("mvhd"))?;
    r.skip(if version == 1 { 3 + 16 } else { 3 + 8 })
        .ok_or_else(|| truncated("mvhd"))?;
    let movie_timescale = r.u32().ok_or_else(|| truncated("mvhd"))?;

    let mut tracks = Vec::new();
    let mut skipped = Vec::new();
    for b in boxes(&moov) {
        let (kind, trak) = b?;
        if &kind != b"trak" {
            continue;
        }
        let number = tracks.len() + skipped.len() + 1;
        match demux_track(data, &trak, movie_timescale, number)? {
            Ok(track) => tracks.push(track),
            Err(reason) => {
                tracing::info!("skipping {reason}");
                skipped.push(reason);
            }
        }
    }
    Ok((tracks, skipped))
}

enum Codec {
    Video(VideoConfig),
    Aac {
        config: Bytes,
        sample_rate: u32,
        channels: u16,
    },
}

/// One track: `Ok(Err(reason))` when it is skipped, `Err` when the file is
/// malformed.
fn demux_track(
    file: &Bytes,
    trak: &Bytes,
    movie_timescale: u32,
    number: usize,
) -> Result<Result<TrackOut, String>, MediaError> {
    let mdia = require(trak, b"mdia")?;
    let mdhd = require(&mdia, b"mdhd")?;
    let mut r = Reader::new(&mdhd);
    let version = r.u8().ok_or_else(|| truncated("mdhd"))?;
    r.skip(if version == 1 { 3 + 16 } else { 3 + 8 })
        .ok_or_else(|| truncated("mdhd"))?;
    let timescale = r.u32().ok_or_else(|| truncated("mdhd"))?;
    if timescale == 0 {
        return Err(malformed("mdhd timescale 0"));
    }
    let hdlr = require(&mdia, b"hdlr")?;
    let handler: FourCc = hdlr
        .get(8..12)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| truncated("hdlr"))?;
    let stbl = require(&require(&mdia, b"minf")?, b"stbl")?;
    let stsd = require(&stbl, b"stsd")?;
    let entry = boxes(&stsd.slice(8.min(stsd.len())..)).next().transpose()?;
    let Some((format, entry)) = entry else {
        return Ok(Err(format!(
            "track {number} ({}): no sample description",
            String::from_utf8_lossy(&handler)
        )));
    };
    let name = format!("track {number} ({})", String::from_utf8_lossy(&format));
    let skip = |why: String| Ok(Err(format!("{name}: {why}")));

    let codec = match &format {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" => {
            // VisualSampleEntry fields before the child boxes: 78 bytes.
            let children = entry.slice(78.min(entry.len())..);
            let is_avc = matches!(&format, b"avc1" | b"avc3");
            let record = child(&children, if is_avc { b"avcC" } else { b"hvcC" })?;
            let Some(record) = record else {
                return skip("no avcC/hvcC configuration record".into());
            };
            let parsed = if is_avc {
                VideoConfig::from_avcc(&record)
            } else {
                VideoConfig::from_hvcc(&record)
            };
            match parsed {
                Ok(c) => Codec::Video(c),
                Err(e) => return skip(e),
            }
        }
        b"mp4a" => match parse_mp4a(&entry)? {
            Ok((config, container_channels)) => match parse_audio_specific_config(&config) {
                Ok(asc) => Codec::Aac {
                    config,
                    sample_rate: asc.extension_sample_rate.unwrap_or(asc.sample_rate),
                    channels: if asc.channels == 0 {
                        container_channels
                    } else {
                        u16::from(asc.channels)
                    },
                },
                Err(e) => return skip(format!("AudioSpecificConfig: {e}")),
            },
            Err(why) => return skip(why),
        },
        _ => return skip(format!("unsupported codec '{}'", String::from_utf8_lossy(&format))),
    };
    let clock_rate = match &codec {
        Codec::Video(_) => VIDEO_CLOCK,
        Codec::Aac { sample_rate, .. } => *sample_rate,
    };
    if clock_rate == 0 {
        return skip("sample rate 0".into());
    }

    let edit = read_edit(trak, movie_timescale, clock_rate)?;
    let is_video = matches!(codec, Codec::Video(_));
    let table = SampleTable::read(&stbl, file.len())?;
    let mut samples = Vec::with_capacity(table.sizes.len().min(file.len()));
    let mut chunks = table.offsets();
    let mut stts = Runs::new(&table.stts);
    let mut ctts = Runs::new(&table.ctts);
    let mut sync = table.sync.as_ref().map(|s| s.iter().copied().peekable());
    let mut dts: i128 = 0;
    for (index, &size) in table.sizes.iter().enumerate() {
        let offset = chunks
            .next()
            .ok_or_else(|| malformed(format!("{name}: sample {index} has no chunk")))??;
        let Some(end) = offset.checked_add(u64::from(size)).filter(|&e| e <= file.len() as u64) else {
            // A truncated (or still growing) file: play what is there.
            tracing::info!(
                "{name}: sample {index} lies outside the file; dropping it and the {} after it",
                table.sizes.len() - index - 1
            );
            break;
        };
        let data = file.slice(offset as usize..end as usize);
        let delta = stts.next().unwrap_or(stts.last);
        let offset_ct = i128::from(ctts.next().unwrap_or(0) as i32);
        let sample_number = index as u64 + 1;
        let keyframe = match &mut sync {
            None => true,
            Some(it) => {
                while it.next_if(|&n| u64::from(n) < sample_number).is_some() {}
                it.next_if(|&n| u64::from(n) == sample_number).is_some()
            }
        };
        let pts_m = dts + offset_ct - edit.media_time;
        let end_m = pts_m + i128::from(delta);
        let this_dts = dts - edit.media_time;
        dts += i128::from(delta);
        if !is_video && edit.media_time > 0 && end_m <= 0 {
            continue; // priming before the edit
        }
        let pts = rescale(pts_m, timescale, clock_rate)? + edit.delay;
        let end_t = rescale(end_m, timescale, clock_rate)? + edit.delay;
        samples.push(Timed {
            dts: rescale(this_dts, timescale, clock_rate)? + edit.delay,
            pts,
            duration: (end_t - pts).max(0),
            keyframe: keyframe || !is_video,
            data,
        });
    }

    let (codec, samples) = match codec {
        Codec::Aac {
            config,
            sample_rate,
            channels,
        } => (
            SourceCodec::Aac {
                config,
                sample_rate,
                channels,
            },
            samples,
        ),
        Codec::Video(mut config) => {
            let samples = config.convert_samples(samples, &name);
            config.fill_in_band(&samples);
            match config.into_codec() {
                Ok(c) => (c, samples),
                Err(e) => return skip(e),
            }
        }
    };
    Ok(Ok(TrackOut {
        track: SourceTrack { codec, clock_rate },
        name,
        samples,
    }))
}

/// The `esds` of an `mp4a` entry: the AudioSpecificConfig and the entry's
/// channel count, or why the track is unsupported.
fn parse_mp4a(entry: &Bytes) -> Result<Result<(Bytes, u16), String>, MediaError> {
    let mut r = Reader::new(entry);
    r.skip(8).ok_or_else(|| truncated("mp4a"))?; // reserved, data_reference_index
    let version = r.u16().ok_or_else(|| truncated("mp4a"))?;
    r.skip(6).ok_or_else(|| truncated("mp4a"))?; // revision, vendor
    let channels = r.u16().ok_or_else(|| truncated("mp4a"))?;
    // QuickTime sound description versions 1 and 2 add fields.
    let fields = match version {
        0 => 28,
        1 => 28 + 16,
        2 => 28 + 36,
        v => return Ok(Err(format!("mp4a sample entry version {v}"))),
    };
    let children = entry.slice(fields.min(entry.len())..);
    let esds = match child(&children, b"esds")? {
        Some(e) => e,
        None => match child(&children, b"wave")? {
            Some(wave) => match child(&wave, b"esds")? {
                Some(e) => e,
                None => return Ok(Err("no esds box".into())),
            },
            None => return Ok(Err("no esds box".into())),
        },
    };
    Ok(parse_esds(&esds).map(|asc| (asc, channels)))
}

/// Reads an MPEG-4 descriptor header: tag and body length.
fn descriptor(r: &mut Reader<'_>) -> Option<(u8, usize)> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some((tag, len))
}

/// ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo (ISO/IEC
/// 14496-1 7.2.6).
fn parse_esds(esds: &Bytes) -> Result<Bytes, String> {
    const BAD: &str = "malformed esds";
    let mut r = Reader::new(esds);
    r.skip(4).ok_or(BAD)?; // version, flags
    let (tag, _) = descriptor(&mut r).ok_or(BAD)?;
    if tag != 0x03 {
        return Err(BAD.into());
    }
    r.skip(2).ok_or(BAD)?; // ES_ID
    let flags = r.u8().ok_or(BAD)?;
    if flags & 0x80 != 0 {
        r.skip(2).ok_or(BAD)?;
    }
    if flags & 0x40 != 0 {
        let len = r.u8().ok_or(BAD)?;
        r.skip(usize::from(len)).ok_or(BAD)?;
    }
    if flags & 0x20 != 0 {
        r.skip(2).ok_or(BAD)?;
    }
    let (tag, _) = descriptor(&mut r).ok_or(BAD)?;
    if tag != 0x04 {
        return Err(BAD.into());
    }
    let object_type = r.u8().ok_or(BAD)?;
    if !matches!(object_type, 0x40 | 0x66 | 0x67 | 0x68) {
        return Err(format!("not AAC (object type indication {object_type:#04x})"));
    }
    r.skip(12).ok_or(BAD)?; // stream type, buffer size, bitrates
    let (tag, len) = descriptor(&mut r).ok_or(BAD)?;
    if tag != 0x05 {
        return Err("no DecoderSpecificInfo".into());
    }
    let asc = r.take(len).ok_or(BAD)?;
    Ok(esds.slice_ref(asc))
}

struct Edit {
    /// Subtracted from media times (media timescale).
    media_time: i128,
    /// Added to track times (track clock).
    delay: i64,
}

fn read_edit(trak: &Bytes, movie_timescale: u32, clock_rate: u32) -> Result<Edit, MediaError> {
    let mut edit = Edit {
        media_time: 0,
        delay: 0,
    };
    let Some(elst) = child(trak, b"edts")?.map(|e| child(&e, b"elst")).transpose()?.flatten() else {
        return Ok(edit);
    };
    let mut r = Reader::new(&elst);
    let version = r.u8().ok_or_else(|| truncated("elst"))?;
    r.skip(3).ok_or_else(|| truncated("elst"))?;
    let count = r.u32().ok_or_else(|| truncated("elst"))?;
    let mut delay: i128 = 0;
    for _ in 0..count {
        let (duration, media_time) = if version == 1 {
            (r.u64().map(i128::from), r.i64().map(i128::from))
        } else {
            (r.u32().map(i128::from), r.i32().map(i128::from))
        };
        let (Some(duration), Some(media_time)) = (duration, media_time) else {
            return Err(truncated("elst"));
        };
        r.skip(4).ok_or_else(|| truncated("elst"))?; // rate
        if media_time == -1 {
            delay += duration;
            continue;
        }
        edit.media_time = media_time.max(0);
        break;
    }
    if delay > 0 && movie_timescale > 0 {
        edit.delay = rescale(delay, movie_timescale, clock_rate)?;
    }
    Ok(edit)
}

/// The sample tables of one track, read fully (each bounded by its box size).
struct SampleTable {
    sizes: Vec<u32>,
    /// (sample count, delta) runs.
    stts: Vec<(u32, u32)>,
    /// (sample count, offset) runs.
    ctts: Vec<(u32, u32)>,
    /// 1-based sync sample numbers; `None`: every sample is a sync sample.
    sync: Option<Vec<u32>>,
    /// (first chunk, samples per chunk) runs.
    stsc: Vec<(u32, u32)>,
    chunk_offsets: Vec<u64>,
}

fn full_box<'a>(body: &'a Bytes, what: &str) -> Result<(u8, Reader<'a>), MediaError> {
    let mut r = Reader::new(body);
    let version = r.u8().ok_or_else(|| truncated(what))?;
    r.skip(3).ok_or_else(|| truncated(what))?;
    Ok((version, r))
}

/// Reads `count` entries with `read`, checking first that they fit.
fn entries<T>(
    r: &mut Reader<'_>,
    what: &str,
    entry_size: usize,
    mut read: impl FnMut(&mut Reader<'_>) -> Option<T>,
) -> Result<Vec<T>, MediaError> {
    let count = r.u32().ok_or_else(|| truncated(what))? as usize;
    if count.checked_mul(entry_size).is_none_or(|n| n > r.remaining()) {
        return Err(truncated(what));
    }
    (0..count).map(|_| read(r).ok_or_else(|| truncated(what))).collect()
}

impl SampleTable {
    fn read(stbl: &Bytes, file_len: usize) -> Result<Self, MediaError> {
        let pair = |r: &mut Reader<'_>| Some((r.u32()?, r.u32()?));
        let stts = {
            let body = require(stbl, b"stts")?;
            let (_, mut r) = full_box(&body, "stts")?;
            entries(&mut r, "stts", 8, pair)?
        };
        let ctts = match child(stbl, b"ctts")? {
            Some(b) => {
                let (_, mut r) = full_box(&b, "ctts")?;
                entries(&mut r, "ctts", 8, pair)?
            }
            None => Vec::new(),
        };
        let sync = match child(stbl, b"stss")? {
            Some(b) => {
                let (_, mut r) = full_box(&b, "stss")?;
                let mut list = entries(&mut r, "stss", 4, |r| r.u32())?;
                list.sort_unstable();
                Some(list)
            }
            None => None,
        };
        let stsc = {
            let body = require(stbl, b"stsc")?;
            let (_, mut r) = full_box(&body, "stsc")?;
            entries(&mut r, "stsc", 12, |r| {
                let first = r.u32()?;
                let per_chunk = r.u32()?;
                r.u32()?; // sample description index: only the first entry is read
                Some((first, per_chunk))
            })?
        };
        let chunk_offsets = if let Some(b) = child(stbl, b"stco")? {
            let (_, mut r) = full_box(&b, "stco")?;
            entries(&mut r, "stco", 4, |r| r.u32().map(u64::from))?
        } else if let Some(b) = child(stbl, b"co64")? {
            let (_, mut r) = full_box(&b, "co64")?;
            entries(&mut r, "co64", 8, |r| r.u64())?
        } else {
            return Err(malformed("missing 'stco'/'co64' box"));
        };
        let sizes = if let Some(b) = child(stbl, b"stsz")? {
            let (_, mut r) = full_box(&b, "stsz")?;
            let constant = r.u32().ok_or_else(|| truncated("stsz"))?;
            if constant == 0 {
                entries(&mut r, "stsz", 4, |r| r.u32())?
            } else {
                let count = r.u32().ok_or_else(|| truncated("stsz"))?;
                // Every sample must lie in the file: this bounds the table.
                if u64::from(count) * u64::from(constant) > file_len as u64 {
                    return Err(malformed("stsz sample count too large"));
                }
                vec![constant; count as usize]
            }
        } else if let Some(b) = child(stbl, b"stz2")? {
            let (_, mut r) = full_box(&b, "stz2")?;
            r.skip(3).ok_or_else(|| truncated("stz2"))?;
            let field = r.u8().ok_or_else(|| truncated("stz2"))?;
            let count = r.u32().ok_or_else(|| truncated("stz2"))? as usize;
            let bits = match field {
                4 | 8 | 16 => usize::from(field),
                f => return Err(malformed(format!("stz2 field size {f}"))),
            };
            let data = r
                .take(count.div_ceil(8).saturating_mul(bits))
                .ok_or_else(|| truncated("stz2"))?;
            (0..count)
                .map(|i| match bits {
                    4 => u32::from((data[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f),
                    8 => u32::from(data[i]),
                    _ => u32::from(u16::from_be_bytes([data[2 * i], data[2 * i + 1]])),
                })
                .collect()
        } else {
            return Err(malformed("missing 'stsz'/'stz2' box"));
        };
        Ok(SampleTable {
            sizes,
            stts,
            ctts,
            sync,
            stsc,
            chunk_offsets,
        })
    }

    /// The file offset of each sample, in order.
    fn offsets(&self) -> impl Iterator<Item = Result<u64, MediaError>> + '_ {
        let mut sample = 0usize;
        let mut chunk = 0usize; // 0-based
        let mut in_chunk = 0u32; // samples already taken from this chunk
        let mut offset = 0u64;
        let mut run = 0usize; // current stsc entry
        std::iter::from_fn(move || loop {
            if sample >= self.sizes.len() {
                return None;
            }
            let &chunk_offset = self.chunk_offsets.get(chunk)?;
            while self
                .stsc
                .get(run + 1)
                .is_some_and(|&(first, _)| first as usize <= chunk + 1)
            {
                run += 1;
            }
            let per_chunk = self.stsc.get(run).map_or(0, |&(_, n)| n);
            if in_chunk == 0 {
                offset = chunk_offset;
            }
            if in_chunk >= per_chunk {
                chunk += 1;
                in_chunk = 0;
                continue;
            }
            let this = offset;
            let size = self.sizes[sample];
            offset = match offset.checked_add(u64::from(size)) {
                Some(o) => o,
                None => return Some(Err(malformed("sample offset overflow"))),
            };
            in_chunk += 1;
            sample += 1;
            return Some(Ok(this));
        })
    }
}

/// Walks run-length (count, value) entries one sample at a time.
struct Runs<'a> {
    runs: &'a [(u32, u32)],
    index: usize,
    used: u32,
    /// The last value handed out (reused if a table is short).
    last: u32,
}

impl<'a> Runs<'a> {
    fn new(runs: &'a [(u32, u32)]) -> Self {
        Runs {
            runs,
            index: 0,
            used: 0,
            last: 0,
        }
    }
}

impl Iterator for Runs<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            let &(count, value) = self.runs.get(self.index)?;
            if self.used < count {
                self.used += 1;
                self.last = value;
                return Some(value);
            }
            self.index += 1;
            self.used = 0;
        }
    }
}
