//! ADTS AAC streams (`.aac` files) and the AudioSpecificConfig helpers the
//! other demuxers share.
//!
//! An ADTS file is a run of frames, each a 7-byte header (9 with CRC) and
//! one raw AAC access unit. The demuxer strips the headers (the samples are
//! zero-copy slices of the file), builds the 2-byte AudioSpecificConfig from
//! the first header, and times frames at 1024 ticks of the sample-rate clock
//! each. A leading ID3v2 tag is skipped; bytes between frames that are not a
//! frame are skipped until the next header with the same configuration, and a
//! trailing partial frame (truncated file) is dropped. Frames whose
//! configuration differs from the first frame's are skipped like garbage
//! (and logged). Not supported: frames holding several raw data blocks, and
//! channel configuration 0 (program config element).

use bytes::Bytes;
use rtsp_toolkit_core::sdp::parse_audio_specific_config;
use rtsp_toolkit_core::source::{SourceCodec, SourceTrack};

use crate::timeline::{Timed, TrackOut};
use crate::{malformed, MediaError};

/// Sampling frequencies by index (ISO/IEC 14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The sampling frequency index of `rate`, if it has one.
pub(crate) fn frequency_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES.iter().position(|&r| r == rate).map(|i| i as u8)
}

/// A 2-byte AudioSpecificConfig: object type (5 bits), frequency index
/// (4 bits), channel configuration (4 bits), then a zero GASpecificConfig.
pub(crate) fn audio_specific_config(object_type: u8, frequency_index: u8, channel_config: u8) -> [u8; 2] {
    let v = (u16::from(object_type & 0x1f) << 11)
        | (u16::from(frequency_index & 0x0f) << 7)
        | (u16::from(channel_config & 0x0f) << 3);
    v.to_be_bytes()
}

/// The codec, clock rate and frame length (ticks) of an AAC track with this
/// AudioSpecificConfig, or why it can't be played. The clock is the output
/// sample rate (the SBR rate when it is signalled explicitly).
pub(crate) fn aac_codec(config: Bytes, container_channels: u16) -> Result<(SourceCodec, u32, u32), String> {
    let asc = parse_audio_specific_config(&config).map_err(|e| format!("AudioSpecificConfig: {e}"))?;
    let sample_rate = asc.extension_sample_rate.unwrap_or(asc.sample_rate);
    if sample_rate == 0 {
        return Err("sample rate 0".into());
    }
    let frame = if asc.extension_sample_rate.is_some() {
        asc.frame_length * 2
    } else {
        asc.frame_length
    };
    let channels = if asc.channels == 0 {
        container_channels
    } else {
        u16::from(asc.channels)
    };
    Ok((
        SourceCodec::Aac {
            config,
            sample_rate,
            channels,
        },
        sample_rate,
        frame,
    ))
}

/// The fields of an ADTS header that must stay the same across a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Config {
    profile: u8,
    frequency_index: u8,
    channel_config: u8,
}

#[derive(Debug)]
struct Header {
    config: Config,
    header_len: usize,
    frame_len: usize,
    raw_blocks: u8,
}

/// Parses the ADTS header at the start of `data` (`None`: no valid header).
fn parse_header(data: &[u8]) -> Option<Header> {
    let h = data.get(..7)?;
    if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
        return None; // syncword, layer 0
    }
    let protection_absent = h[1] & 0x01 == 1;
    let profile = h[2] >> 6;
    let frequency_index = (h[2] >> 2) & 0x0f;
    let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
    let frame_len = (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    let raw_blocks = h[6] & 0x03;
    let header_len = if protection_absent { 7 } else { 9 };
    if usize::from(frequency_index) >= SAMPLE_RATES.len() || frame_len <= header_len {
        return None;
    }
    Some(Header {
        config: Config {
            profile,
            frequency_index,
            channel_config,
        },
        header_len,
        frame_len,
        raw_blocks,
    })
}

/// Length of an ID3v2 tag at the start of `data`, or 0.
fn id3_len(data: &[u8]) -> usize {
    match data.get(..10) {
        Some(h) if &h[..3] == b"ID3" && h[6..10].iter().all(|b| b & 0x80 == 0) => {
            let size = h[6..10].iter().fold(0usize, |acc, &b| (acc << 7) | usize::from(b));
            let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
            10 + size + footer
        }
        _ => 0,
    }
}

/// Demuxes an ADTS stream held in `data`.
pub(crate) fn demux(data: &Bytes) -> Result<(Vec<TrackOut>, Vec<String>), MediaError> {
    let start = id3_len(data).min(data.len());
    if parse_header(&data[start..]).is_none() {
        return Err(malformed("not an ADTS stream (no frame header at the start)"));
    }
    let mut pos = start;
    let mut config: Option<Config> = None;
    let mut samples = Vec::new();
    let mut skipped_bytes = 0usize;
    while pos < data.len() {
        let Some(h) = parse_header(&data[pos..]).filter(|h| config.is_none_or(|c| c == h.config)) else {
            pos += 1;
            skipped_bytes += 1;
            continue;
        };
        if pos + h.frame_len > data.len() {
            tracing::info!("ADTS: dropping a truncated last frame");
            break;
        }
        if h.raw_blocks != 0 {
            return Err(malformed("ADTS frames with several raw data blocks are not supported"));
        }
        if h.config.channel_config == 0 {
            return Err(MediaError::NoSupportedTrack {
                skipped: vec!["ADTS AAC with channel configuration 0 (program config element)".into()],
            });
        }
        config = Some(h.config);
        let index = samples.len() as i64;
        samples.push(Timed {
            dts: index * 1024,
            pts: index * 1024,
            duration: 1024,
            keyframe: true,
            data: data.slice(pos + h.header_len..pos + h.frame_len),
        });
        pos += h.frame_len;
    }
    if skipped_bytes > 0 {
        tracing::info!("ADTS: skipped {skipped_bytes} bytes that were not frames");
    }
    let Some(c) = config else {
        return Err(malformed("no complete ADTS frame"));
    };
    let asc = audio_specific_config(c.profile + 1, c.frequency_index, c.channel_config);
    let (codec, clock_rate, _) = aac_codec(Bytes::copy_from_slice(&asc), 0).map_err(malformed)?;
    Ok((
        vec![TrackOut {
            track: SourceTrack { codec, clock_rate },
            name: "ADTS AAC".into(),
            samples,
        }],
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bytes() {
        // AAC-LC, 44.1 kHz, stereo.
        assert_eq!(audio_specific_config(2, 4, 2), [0x12, 0x10]);
        assert_eq!(frequency_index(44100), Some(4));
        assert_eq!(frequency_index(44101), None);
    }

    #[test]
    fn header_fields() {
        // LC, 44.1 kHz, stereo, frame length 0x100, no CRC.
        let h = parse_header(&[0xff, 0xf1, 0x50, 0x80, 0x20, 0x1f, 0xfc]).unwrap();
        assert_eq!(h.config.profile, 1);
        assert_eq!(h.config.frequency_index, 4);
        assert_eq!(h.config.channel_config, 2);
        assert_eq!(h.frame_len, 0x100);
        assert_eq!(h.header_len, 7);
    }
}
