//! H.264 / H.265 configuration records and length-prefixed NAL framing.
//!
//! Parses `avcC` (ISO/IEC 14496-15 5.3.3) and `hvcC` (8.3.3) records for the
//! length size and the parameter sets, and rewrites samples to the 4-byte
//! length prefixes [`SourceCodec`] promises. It does not parse SPS/PPS
//! contents; that is the SDP writer's job.

use bytes::Bytes;
use rtsp_toolkit_core::source::SourceCodec;

use crate::reader::Reader;
use crate::timeline::Timed;

/// Which video codec a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoKind {
    H264,
    H265,
}

impl VideoKind {
    fn nal_type(self, nal: &[u8]) -> u8 {
        let first = nal.first().copied().unwrap_or(0);
        match self {
            VideoKind::H264 => first & 0x1f,
            VideoKind::H265 => (first >> 1) & 0x3f,
        }
    }
}

/// Decoder configuration of a video track.
#[derive(Debug, Clone)]
pub(crate) struct VideoConfig {
    pub(crate) kind: VideoKind,
    /// Bytes in each NAL length prefix of the container's samples (1..=4).
    pub(crate) length_size: u8,
    pub(crate) vps: Vec<Bytes>,
    pub(crate) sps: Vec<Bytes>,
    pub(crate) pps: Vec<Bytes>,
}

const TRUNCATED: &str = "truncated configuration record";

/// At most this many parameter sets of one kind are kept; more is nonsense.
const MAX_PARAMETER_SETS: usize = 32;

impl VideoConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    pub(crate) fn from_avcc(record: &Bytes) -> Result<Self, String> {
        let mut r = Reader::new(record);
        let version = r.u8().ok_or(TRUNCATED)?;
        if version != 1 {
            return Err(format!("avcC version {version}"));
        }
        r.skip(3).ok_or(TRUNCATED)?; // profile, compatibility, level
        let length_size = (r.u8().ok_or(TRUNCATED)? & 0x03) + 1;
        let mut sps = Vec::new();
        let n_sps = r.u8().ok_or(TRUNCATED)? & 0x1f;
        for _ in 0..n_sps {
            push_set(&mut sps, record, &mut r)?;
        }
        let mut pps = Vec::new();
        let n_pps = r.u8().ok_or(TRUNCATED)?;
        for _ in 0..n_pps {
            push_set(&mut pps, record, &mut r)?;
        }
        // Any high-profile extension (chroma format, SPS extensions) is not needed.
        Ok(VideoConfig {
            kind: VideoKind::H264,
            length_size,
            vps: Vec::new(),
            sps,
            pps,
        })
    }

    /// Parses an HEVCDecoderConfigurationRecord.
    pub(crate) fn from_hvcc(record: &Bytes) -> Result<Self, String> {
        let mut r = Reader::new(record);
        let version = r.u8().ok_or(TRUNCATED)?;
        if version != 1 {
            return Err(format!("hvcC version {version}"));
        }
        r.skip(20).ok_or(TRUNCATED)?; // profile/tier/level, constraint flags, chroma, bit depths, frame rate
        let length_size = (r.u8().ok_or(TRUNCATED)? & 0x03) + 1;
        let mut config = VideoConfig {
            kind: VideoKind::H265,
            length_size,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
        };
        let arrays = r.u8().ok_or(TRUNCATED)?;
        for _ in 0..arrays {
            let nal_type = r.u8().ok_or(TRUNCATED)? & 0x3f;
            let count = r.u16().ok_or(TRUNCATED)?;
            for _ in 0..count {
                let list = match nal_type {
                    32 => &mut config.vps,
                    33 => &mut config.sps,
                    34 => &mut config.pps,
                    _ => {
                        // SEI and others: skip.
                        let len = r.u16().ok_or(TRUNCATED)?;
                        r.skip(usize::from(len)).ok_or(TRUNCATED)?;
                        continue;
                    }
                };
                push_set(list, record, &mut r)?;
            }
        }
        Ok(config)
    }

    /// Checks a sample's NAL framing and returns it with 4-byte length
    /// prefixes: the same bytes (zero-copy) when the container already uses
    /// 4 bytes, a rewritten copy otherwise.
    pub(crate) fn convert_sample(&self, data: Bytes) -> Result<Bytes, String> {
        let size = usize::from(self.length_size);
        let mut r = Reader::new(&data);
        let mut count = 0usize;
        while !r.is_empty() {
            let prefix = r.take(size).ok_or("truncated NAL length prefix")?;
            let len = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len == 0 {
                return Err("empty NAL unit".into());
            }
            r.skip(len).ok_or("NAL unit runs past the end of its sample")?;
            count += 1;
        }
        if count == 0 {
            return Err("sample without NAL units".into());
        }
        if size == 4 {
            return Ok(data);
        }
        let mut out = Vec::with_capacity(data.len() + count * (4 - size));
        let mut r = Reader::new(&data);
        while let Some(prefix) = r.take(size) {
            let len = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let nal = r.take(len).ok_or("NAL unit runs past the end of its sample")?;
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        Ok(Bytes::from(out))
    }

    /// [`convert_sample`](Self::convert_sample) for a whole track. Samples
    /// with broken framing (a damaged file) are dropped and counted in one
    /// log line rather than failing the file: decoders recover at the next
    /// keyframe.
    pub(crate) fn convert_samples(&self, samples: Vec<Timed>, name: &str) -> Vec<Timed> {
        let total = samples.len();
        let mut first_error = None;
        let out: Vec<Timed> = samples
            .into_iter()
            .filter_map(|mut s| match self.convert_sample(std::mem::take(&mut s.data)) {
                Ok(data) => Some(Timed { data, ..s }),
                Err(e) => {
                    first_error.get_or_insert(e);
                    None
                }
            })
            .collect();
        if let Some(e) = first_error {
            tracing::warn!(
                "{name}: dropped {} of {total} samples with bad NAL framing ({e})",
                total - out.len()
            );
        }
        out
    }

    /// For `avc3`/`hev1`-style tracks whose record carries no parameter sets:
    /// takes them from the first sample (from the first keyframe on) that has
    /// an SPS in-band. `samples` must already be in 4-byte framing.
    pub(crate) fn fill_in_band(&mut self, samples: &[Timed]) {
        if !self.sps.is_empty() && !self.pps.is_empty() {
            return;
        }
        let start = samples.iter().position(|s| s.keyframe).unwrap_or(0);
        for s in samples.iter().skip(start) {
            let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
            for nal in nal_units(&s.data) {
                let t = self.kind.nal_type(nal);
                let list = match (self.kind, t) {
                    (VideoKind::H264, 7) | (VideoKind::H265, 33) => &mut sps,
                    (VideoKind::H264, 8) | (VideoKind::H265, 34) => &mut pps,
                    (VideoKind::H265, 32) => &mut vps,
                    _ => continue,
                };
                if list.len() < MAX_PARAMETER_SETS {
                    list.push(s.data.slice_ref(nal));
                }
            }
            if !sps.is_empty() {
                if self.vps.is_empty() {
                    self.vps = vps;
                }
                self.sps = sps;
                if self.pps.is_empty() {
                    self.pps = pps;
                }
                return;
            }
        }
    }

    /// The codec description, or why the track can't be played.
    pub(crate) fn into_codec(self) -> Result<SourceCodec, String> {
        if self.sps.is_empty() || self.pps.is_empty() || (self.kind == VideoKind::H265 && self.vps.is_empty()) {
            return Err("no parameter sets in the configuration record or in-band".into());
        }
        Ok(match self.kind {
            VideoKind::H264 => SourceCodec::H264 {
                sps: self.sps,
                pps: self.pps,
            },
            VideoKind::H265 => SourceCodec::H265 {
                vps: self.vps,
                sps: self.sps,
                pps: self.pps,
            },
        })
    }
}

fn push_set(list: &mut Vec<Bytes>, record: &Bytes, r: &mut Reader<'_>) -> Result<(), String> {
    let len = r.u16().ok_or(TRUNCATED)?;
    let nal = r.take(usize::from(len)).ok_or(TRUNCATED)?;
    if !nal.is_empty() && list.len() < MAX_PARAMETER_SETS {
        list.push(record.slice_ref(nal));
    }
    Ok(())
}

/// The NAL units of a sample in 4-byte framing (stops at a bad prefix).
pub(crate) fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut r = Reader::new(data);
    std::iter::from_fn(move || {
        let len = r.u32()?;
        r.take(usize::try_from(len).ok()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(length_size: u8) -> VideoConfig {
        VideoConfig {
            kind: VideoKind::H264,
            length_size,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
        }
    }

    #[test]
    fn converts_short_length_prefixes() {
        let out = config(2)
            .convert_sample(Bytes::from_static(&[0, 2, 0x65, 1, 0, 1, 0x41]))
            .unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41]);
        let out = config(1).convert_sample(Bytes::from_static(&[1, 0x65])).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 1, 0x65]);
    }

    #[test]
    fn four_byte_prefixes_are_not_copied() {
        let data = Bytes::from_static(&[0, 0, 0, 1, 0x65]);
        let out = config(4).convert_sample(data.clone()).unwrap();
        assert_eq!(out.as_ptr(), data.as_ptr());
    }

    #[test]
    fn rejects_bad_framing() {
        assert!(config(4)
            .convert_sample(Bytes::from_static(&[0, 0, 0, 5, 0x65]))
            .is_err());
        assert!(config(4).convert_sample(Bytes::from_static(&[0, 0, 0, 0])).is_err());
        assert!(config(4).convert_sample(Bytes::new()).is_err());
    }

    #[test]
    fn parses_avcc() {
        let rec = Bytes::from_static(&[1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x64, 1, 0, 2, 0x68, 0xee]);
        let c = VideoConfig::from_avcc(&rec).unwrap();
        assert_eq!(c.length_size, 4);
        assert_eq!(c.sps, vec![Bytes::from_static(&[0x67, 0x64])]);
        assert_eq!(c.pps, vec![Bytes::from_static(&[0x68, 0xee])]);
    }

    #[test]
    fn takes_in_band_parameter_sets() {
        let mut c = config(4);
        let data = Bytes::from_static(&[0, 0, 0, 2, 0x67, 1, 0, 0, 0, 2, 0x68, 2, 0, 0, 0, 1, 0x65]);
        let s = Timed {
            dts: 0,
            pts: 0,
            duration: 0,
            keyframe: true,
            data,
        };
        c.fill_in_band(&[s]);
        assert_eq!(c.sps, vec![Bytes::from_static(&[0x67, 1])]);
        assert_eq!(c.pps, vec![Bytes::from_static(&[0x68, 2])]);
        assert!(c.into_codec().is_ok());
    }
}
