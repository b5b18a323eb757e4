//! AAC audio over RTP: RFC 3640 `mpeg4-generic` and RFC 6416 (formerly RFC
//! 3016) `MP4A-LATM` depacketizers, and an RFC 3640 AAC-hbr packetizer for
//! the server.
//!
//! Both depacketizers emit raw AAC access units (no ADTS header, no LATM
//! framing), one [`AudioFrame`] per access unit, with `sample_count`,
//! `sample_rate` and `channels` taken from the AudioSpecificConfig in the
//! SDP. A frame's timestamp is in the RTP clock: when a packet carries
//! several access units, each one after the first is placed
//! `frame_length * clock_rate / sample_rate` ticks later (1024 ticks for
//! AAC-LC when the RTP clock runs at the sampling rate).
//!
//! # `mpeg4-generic` (RFC 3640)
//!
//! The AU header layout comes from the SDP (`sizeLength`, `indexLength`,
//! `indexDeltaLength`, `CTSDeltaLength`, `DTSDeltaLength`, `constantSize`),
//! so AAC-hbr (13/3/3), AAC-lbr (6/2/2) and other layouts all work. Not
//! supported: the auxiliary section (`auxiliaryDataSizeLength` is not
//! parsed, so it is taken as absent), `randomAccessIndication` and
//! `streamStateIndication` header fields.
//!
//! Interleaving is honoured for timestamps but not for order: the AU with
//! index delta `d` is placed `d + 1` frame durations after the previous AU
//! of the packet (or at the RTP timestamp plus its CTS-delta when one is
//! sent), but frames are emitted in packet order, not re-sorted across
//! packets.
//!
//! An access unit larger than one packet is carried in fragments: packets
//! with one AU header giving the whole AU size, the same RTP timestamp, and
//! the marker bit on the last one. Fragments are joined and the AU emitted
//! once all its bytes are there. Loss while joining drops the AU.
//!
//! # `MP4A-LATM` (RFC 6416)
//!
//! Only out-of-band configuration (`cpresent=0` with `config`) is
//! supported, with `audioMuxVersion` 0, one program and layer,
//! `allStreamsSameTimeFraming` and `frameLengthType` 0 — what cameras send.
//! A packet holds one or more AudioMuxElements, or a fragment of one (the
//! marker bit is set on the packet completing an element). Each element
//! holds `numSubFrames + 1` access units, each preceded by its length
//! coded as a run of `255` bytes plus a last byte below 255.
//!
//! # Errors and loss
//!
//! A malformed packet makes [`DepacketizeError::Malformed`] and drops what
//! was being assembled; nothing is emitted from a packet (or a joined
//! element) that does not parse completely. Packets lost before a frame
//! are counted in its [`AudioFrame::loss`]. Nothing here panics on any
//! input.
//!
//! # Layout
//!
//! This module holds what both formats share (audio parameters from the
//! AudioSpecificConfig, the queue of emitted frames) and re-exports the
//! formats' types: `rfc3640` has the `mpeg4-generic` [`Depacketizer`] and
//! the [`Packetizer`], `latm` the [`LatmDepacketizer`]. AudioSpecificConfig
//! and StreamMuxConfig parsing is not here: it is the crate's one MPEG-4
//! audio config module (`crate::mpeg4_audio`), which SDP uses too.
//!
//! It does **not** decode AAC, add ADTS headers, or read LATM configuration
//! sent in-band (`cpresent=1`).

mod latm;
mod rfc3640;

use std::collections::VecDeque;

use bytes::Bytes;

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::mpeg4_audio::AudioConfig;
use crate::sdp::{Media, SdpError};

pub use latm::LatmDepacketizer;
pub use rfc3640::{AggregatedPayload, Depacketizer, Packetizer, MAX_HBR_ACCESS_UNIT};

/// What every emitted frame of a track shares.
#[derive(Debug, Clone, Copy)]
struct AudioParams {
    sample_rate: u32,
    channels: u16,
    frame_length: u32,
    /// RTP ticks per frame.
    step: u32,
}

impl AudioParams {
    fn new(sample_rate: u32, channels: u16, frame_length: u32, clock_rate: u32) -> Self {
        let step = if clock_rate == 0 || sample_rate == 0 || clock_rate == sample_rate {
            frame_length
        } else {
            let ticks = u64::from(frame_length) * u64::from(clock_rate) / u64::from(sample_rate);
            u32::try_from(ticks).unwrap_or(u32::MAX)
        };
        AudioParams {
            sample_rate,
            channels: channels.max(1),
            frame_length,
            step,
        }
    }

    /// From the AudioSpecificConfig `asc`, falling back to the rtpmap
    /// channel count when the ASC leaves it to a program_config_element.
    fn from_asc(asc: &[u8], media: &Media) -> Result<Self, SetupError> {
        let c = AudioConfig::parse(asc).map_err(SdpError::BadAudioSpecificConfig)?;
        let channels = match c.channels {
            0 => media.channels.unwrap_or(1),
            n => u16::from(n),
        };
        Ok(Self::new(c.sample_rate, channels, c.frame_length, media.clock_rate))
    }
}

/// Queue of emitted frames and the loss count for the next one.
#[derive(Debug)]
struct Output {
    codec: AudioCodec,
    params: AudioParams,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

impl Output {
    fn new(codec: AudioCodec, params: AudioParams) -> Self {
        Output {
            codec,
            params,
            loss: 0,
            frames: VecDeque::new(),
        }
    }

    #[inline]
    fn emit(&mut self, timestamp: u32, data: Bytes) {
        self.frames.push_back(AudioFrame {
            codec: self.codec,
            timestamp,
            data,
            sample_count: self.params.frame_length,
            sample_rate: self.params.sample_rate,
            channels: self.params.channels,
            loss: std::mem::take(&mut self.loss),
        });
    }
}

fn malformed(codec: &'static str, what: impl Into<String>) -> DepacketizeError {
    DepacketizeError::Malformed {
        codec,
        what: what.into(),
    }
}

fn too_large(codec: &'static str, limit: usize) -> DepacketizeError {
    DepacketizeError::FrameTooLarge { codec, limit }
}
