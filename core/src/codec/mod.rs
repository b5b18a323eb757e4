//! Depacketizers: RTP payloads in, whole frames out.
//!
//! One word each, everywhere: a *frame* is one access unit of video (an
//! Annex B byte string) or one audio frame; a *track* is one set-up media
//! section. [`Depacketizer`] is made from the SDP [`Media`] of a track; the
//! client feeds it every RTP packet of that track together with how many
//! packets were lost just before it (from [`SequenceTracker`]), then pulls
//! frames. A frame damaged by loss is dropped, never emitted as whole, and
//! the loss is reported on the next frame.
//!
//! This module does not know about sockets, sessions or time: receive
//! instants are the client's business.
//!
//! Each codec has its module (`aac`, `g711`, `g722`, `g726`, `h264`, `h265`,
//! `jpeg`, `l16`, `onvif_metadata`, `opus`); what several
//! share is in crate-internal modules: `access_unit` (access unit assembly
//! for H.264 and H.265), `nal` (aggregation packet framing and Annex B
//! splitting for both). The AudioSpecificConfig and StreamMuxConfig parser
//! that the AAC depacketizers and [`crate::sdp`] share is the crate's
//! `mpeg4_audio` module. [`sps`] reads the picture size from an H.264 or
//! H.265 sequence parameter set, for reports (it is not used to
//! depacketize).

pub mod aac;
pub mod g711;
pub mod g722;
pub mod g726;
pub mod h264;
pub mod h265;
pub mod jpeg;
pub mod l16;
pub mod onvif_metadata;
pub mod opus;
pub mod sps;

mod access_unit;
mod nal;
#[cfg(test)]
mod test_support;

use bytes::Bytes;

use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// Largest frame a depacketizer assembles by default (a 4K intra frame fits).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Video codecs with a depacketizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum VideoCodec {
    /// H.264 (RFC 6184, encoding name `H264`).
    H264,
    /// H.265 (RFC 7798, encoding name `H265`).
    H265,
    /// Motion JPEG (RFC 2435, encoding name `JPEG`, static payload type 26).
    #[cfg_attr(feature = "serde", serde(rename = "MJPEG"))]
    Mjpeg,
}

/// Audio codecs with a depacketizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AudioCodec {
    /// AAC in RFC 3640 `mpeg4-generic` (raw access units, no ADTS header).
    #[cfg_attr(feature = "serde", serde(rename = "AAC"))]
    Aac,
    /// AAC in RFC 3016 `MP4A-LATM` (raw access units, LATM framing removed).
    #[cfg_attr(feature = "serde", serde(rename = "AAC-LATM"))]
    AacLatm,
    /// G.711 A-law.
    #[cfg_attr(feature = "serde", serde(rename = "PCMA"))]
    Pcma,
    /// G.711 mu-law.
    #[cfg_attr(feature = "serde", serde(rename = "PCMU"))]
    Pcmu,
    /// Opus (RFC 7587): one Opus packet per frame.
    #[cfg_attr(feature = "serde", serde(rename = "OPUS"))]
    Opus,
    /// L16 (RFC 3551): 16-bit big-endian linear PCM, any rate and channels.
    #[cfg_attr(feature = "serde", serde(rename = "L16"))]
    L16,
    /// G.722 (RFC 3551): 16 kHz audio on an 8000 Hz RTP clock.
    #[cfg_attr(feature = "serde", serde(rename = "G722"))]
    G722,
    /// G.726 (RFC 3551) at 16 to 40 kbit/s: the codes as sent (the code
    /// size is in the encoding name, `G726-32`).
    #[cfg_attr(feature = "serde", serde(rename = "G726"))]
    G726,
}

/// One video access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// The codec of the track.
    pub codec: VideoCodec,
    /// RTP timestamp of the access unit, in RTP clock units (90 kHz for
    /// H.264, H.265 and MJPEG by their payload formats).
    pub timestamp: u32,
    /// H.264 and H.265: Annex B, every NAL unit prefixed with `00 00 00 01`.
    /// MJPEG: one whole JFIF image, SOI to EOI.
    pub data: Bytes,
    /// An IDR picture (H.264) or IRAP picture (H.265); always true for MJPEG.
    pub keyframe: bool,
    /// Parameter sets (SPS/PPS/VPS) arrived in-band with this frame, or
    /// were inserted from the SDP in front of it. MJPEG: the first image, or
    /// one whose size, sampling or restart interval differs from the previous.
    pub new_parameters: bool,
    /// RTP packets lost since the previous emitted frame of this track.
    pub loss: u32,
}

/// One audio frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// The codec of the track.
    pub codec: AudioCodec,
    /// RTP timestamp of the frame's first sample, in RTP clock units (for
    /// G.722 the 8000 Hz clock, not its 16 kHz `sample_rate`).
    pub timestamp: u32,
    /// AAC: one raw access unit. G.711 and G.722: the encoded samples.
    /// Opus: one Opus packet. L16: the big-endian samples. G.726: the
    /// packed codes.
    pub data: Bytes,
    /// Samples per channel in this frame.
    pub sample_count: u32,
    /// Samples per second. AAC: from the AudioSpecificConfig (the RTP clock
    /// rate when the SDP gives none); G.711: the RTP clock rate (8000 when
    /// the SDP gives none); L16: the RTP clock rate; Opus: 48000; G.722:
    /// 16000 (twice its RTP clock rate).
    pub sample_rate: u32,
    /// Channel count, at least 1. AAC: from the AudioSpecificConfig, else
    /// from `a=rtpmap`; G.711, G.722 and L16: from `a=rtpmap`; Opus: 2 when
    /// `a=fmtp` says `stereo=1` or `sprop-stereo=1`, else 1.
    pub channels: u16,
    /// RTP packets lost since the previous emitted frame of this track.
    pub loss: u32,
}

/// One ONVIF metadata document (`vnd.onvif.metadata`, see [`onvif_metadata`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataFrame {
    /// RTP timestamp of the document, in RTP clock units (the SDP's, 90 kHz in practice).
    pub timestamp: u32,
    /// The whole XML document, as sent (usually a `tt:MetadataStream`).
    pub data: Bytes,
    /// RTP packets lost since the previous emitted document of this track.
    pub loss: u32,
}

/// A depacketizer's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// From a video depacketizer.
    Video(VideoFrame),
    /// From an audio depacketizer.
    Audio(AudioFrame),
    /// From the ONVIF metadata depacketizer.
    Metadata(MetadataFrame),
}

/// Why a packet could not be used. The depacketizer stays usable: it drops
/// what it had for the current frame and resynchronizes at the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
///
/// `codec` is the codec's name in every variant: `H.264`, `H.265`, `JPEG`,
/// `MPEG4-GENERIC`, `MP4A-LATM`, `PCMA`, `PCMU`, `OPUS`, `L16`, `G722`, `G726` or
/// `vnd.onvif.metadata`.
pub enum DepacketizeError {
    /// A packet with an empty payload.
    #[error("{codec}: empty payload")]
    Empty {
        /// The codec's name.
        codec: &'static str,
    },
    /// A valid payload of a kind this crate does not handle.
    #[error("{codec}: unsupported packetization: {what}")]
    Unsupported {
        /// The codec's name.
        codec: &'static str,
        /// What it is, in words.
        what: String,
    },
    /// A payload that breaks its RTP payload format.
    #[error("{codec}: malformed payload: {what}")]
    Malformed {
        /// The codec's name.
        codec: &'static str,
        /// What is wrong, in words.
        what: String,
    },
    /// The frame grew over the limit (the depacketizer's `max_frame_bytes`) and was dropped.
    #[error("{codec}: frame of over {limit} bytes dropped")]
    FrameTooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Why no depacketizer could be made for a track.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// No depacketizer for this codec (its encoding name, or what of its
    /// parameters is not supported).
    #[error("no depacketizer for {0:?}")]
    UnsupportedCodec(String),
    /// The codec's SDP parameters (`a=fmtp`) could not be used.
    #[error("bad SDP parameters: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
}

/// A depacketizer for one track.
#[derive(Debug)]
pub enum Depacketizer {
    /// H.264 (RFC 6184).
    H264(h264::Depacketizer),
    /// H.265 (RFC 7798).
    H265(h265::Depacketizer),
    /// Motion JPEG (RFC 2435).
    Jpeg(jpeg::Depacketizer),
    /// AAC in RFC 3640 `mpeg4-generic`.
    Aac(aac::Depacketizer),
    /// AAC in `MP4A-LATM` (RFC 6416).
    Latm(aac::LatmDepacketizer),
    /// G.711 `PCMA` and `PCMU` (RFC 3551).
    G711(g711::Depacketizer),
    /// ONVIF metadata (`vnd.onvif.metadata`).
    OnvifMetadata(onvif_metadata::Depacketizer),
    /// Opus (RFC 7587).
    Opus(opus::Depacketizer),
    /// L16 (RFC 3551).
    L16(l16::Depacketizer),
    /// G.722 (RFC 3551).
    G722(g722::Depacketizer),
    /// G.726 (RFC 3551).
    G726(g726::Depacketizer),
}

impl Depacketizer {
    /// The depacketizer for `media`'s codec, with frames capped at `max_frame_bytes`.
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Depacketizer, SetupError> {
        let c = |n: &str| media.codec_is(n);
        Ok(if c("H264") {
            Depacketizer::H264(h264::Depacketizer::new(media, max_frame_bytes)?)
        } else if c("H265") {
            Depacketizer::H265(h265::Depacketizer::new(media, max_frame_bytes)?)
        } else if c("JPEG") {
            Depacketizer::Jpeg(jpeg::Depacketizer::new(media, max_frame_bytes)?)
        } else if c("MPEG4-GENERIC") {
            Depacketizer::Aac(aac::Depacketizer::new(media, max_frame_bytes)?)
        } else if c("MP4A-LATM") {
            Depacketizer::Latm(aac::LatmDepacketizer::new(media, max_frame_bytes)?)
        } else if c("PCMA") || c("PCMU") {
            Depacketizer::G711(g711::Depacketizer::new(media)?)
        } else if c("vnd.onvif.metadata") {
            Depacketizer::OnvifMetadata(onvif_metadata::Depacketizer::new(media, max_frame_bytes)?)
        } else if c("opus") {
            Depacketizer::Opus(opus::Depacketizer::new(media)?)
        } else if c("L16") {
            Depacketizer::L16(l16::Depacketizer::new(media)?)
        } else if c("G722") {
            Depacketizer::G722(g722::Depacketizer::new(media)?)
        } else if g726::code_bits(&media.codec).is_some() {
            Depacketizer::G726(g726::Depacketizer::new(media)?)
        } else {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        })
    }

    /// Feeds one packet; `lost` is how many packets are missing right before it.
    #[inline]
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        match self {
            Depacketizer::H264(d) => d.push(packet, lost),
            Depacketizer::H265(d) => d.push(packet, lost),
            Depacketizer::Jpeg(d) => d.push(packet, lost),
            Depacketizer::Aac(d) => d.push(packet, lost),
            Depacketizer::Latm(d) => d.push(packet, lost),
            Depacketizer::G711(d) => d.push(packet, lost),
            Depacketizer::OnvifMetadata(d) => d.push(packet, lost),
            Depacketizer::Opus(d) => d.push(packet, lost),
            Depacketizer::L16(d) => d.push(packet, lost),
            Depacketizer::G722(d) => d.push(packet, lost),
            Depacketizer::G726(d) => d.push(packet, lost),
        }
    }

    /// The sender ended the stream (RTCP BYE): a video access unit under
    /// way is complete even without its marker bit (then [`pull`](Self::pull)
    /// gives it). Nothing for the other codecs, whose frames end with their
    /// packets.
    pub fn end_of_stream(&mut self) {
        match self {
            Depacketizer::H264(d) => d.end_of_stream(),
            Depacketizer::H265(d) => d.end_of_stream(),
            _ => {}
        }
    }

    /// The next complete frame, if any. Call until `None` after each push.
    #[inline]
    pub fn pull(&mut self) -> Option<Frame> {
        match self {
            Depacketizer::H264(d) => d.pull().map(Frame::Video),
            Depacketizer::H265(d) => d.pull().map(Frame::Video),
            Depacketizer::Jpeg(d) => d.pull().map(Frame::Video),
            Depacketizer::Aac(d) => d.pull().map(Frame::Audio),
            Depacketizer::Latm(d) => d.pull().map(Frame::Audio),
            Depacketizer::G711(d) => d.pull().map(Frame::Audio),
            Depacketizer::OnvifMetadata(d) => d.pull().map(Frame::Metadata),
            Depacketizer::Opus(d) => d.pull().map(Frame::Audio),
            Depacketizer::L16(d) => d.pull().map(Frame::Audio),
            Depacketizer::G722(d) => d.pull().map(Frame::Audio),
            Depacketizer::G726(d) => d.pull().map(Frame::Audio),
        }
    }
}

/// Counts packets missing from a track's RTP sequence numbers, across the
/// 16-bit wrap, with RFC 3550 A.1's rules: a step ahead of up to
/// [`SequenceTracker::MAX_DROPOUT`] counts the packets skipped as lost; a
/// packet up to [`SequenceTracker::MAX_MISORDER`] behind is reordered or a
/// copy (no loss); anything further, either way, is taken as a new sequence
/// (the sender restarted) once the next packet follows it, and counts no loss.
#[derive(Debug, Clone, Default)]
pub struct SequenceTracker {
    next: Option<u16>,
    total_lost: u64,
    /// After a far jump: the sequence number that confirms a restart.
    probation: Option<u16>,
    restarts: u64,
}

impl SequenceTracker {
    /// Largest step ahead taken as loss rather than a restart.
    pub const MAX_DROPOUT: u16 = 3000;
    /// Largest step back taken as reordering rather than a restart.
    pub const MAX_MISORDER: u16 = 100;

    /// A tracker that has seen no packet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets missing right before `seq`.
    ///
    /// ```
    /// use rtsp_toolkit_core::codec::SequenceTracker;
    /// let mut t = SequenceTracker::new();
    /// assert_eq!(t.observe(65534), 0);
    /// assert_eq!(t.observe(65535), 0);
    /// assert_eq!(t.observe(2), 2); // 0 and 1 lost, across the wrap
    /// assert_eq!(t.total_lost(), 2);
    /// // The sender restarts far away: no loss, once a second packet confirms it.
    /// assert_eq!(t.observe(40000), 0);
    /// assert_eq!(t.observe(40001), 0);
    /// assert_eq!((t.restarts(), t.total_lost()), (1, 2));
    /// assert_eq!(t.observe(40003), 1);
    /// ```
    pub fn observe(&mut self, seq: u16) -> u32 {
        let Some(next) = self.next else {
            self.next = Some(seq.wrapping_add(1));
            return 0;
        };
        let gap = seq.wrapping_sub(next);
        if gap <= Self::MAX_DROPOUT {
            self.probation = None;
            self.next = Some(seq.wrapping_add(1));
            self.total_lost += u64::from(gap);
            return u32::from(gap);
        }
        if gap >= 0u16.wrapping_sub(Self::MAX_MISORDER) {
            // Behind what was expected: reordered or repeated. Keep `next`.
            return 0;
        }
        if self.probation == Some(seq) {
            self.probation = None;
            self.next = Some(seq.wrapping_add(1));
            self.restarts += 1;
        } else {
            self.probation = Some(seq.wrapping_add(1));
        }
        0
    }

    /// The sender says its next packet is `seq` (a later PLAY's
    /// `RTP-Info`): a jump to it is not loss. `None`: the next packet starts
    /// the count again. A tracker already at or a little past `seq` (those
    /// packets came before the answer) keeps its place. Whether it moved.
    ///
    /// ```
    /// use rtsp_toolkit_core::codec::SequenceTracker;
    /// let mut t = SequenceTracker::new();
    /// assert_eq!(t.observe(10), 0);
    /// t.expect(Some(500)); // a seek: the server skips ahead
    /// assert_eq!(t.observe(500), 0);
    /// assert_eq!(t.observe(502), 1);
    /// ```
    pub fn expect(&mut self, seq: Option<u16>) -> bool {
        let Some(seq) = seq else {
            self.next = None;
            self.probation = None;
            return true;
        };
        if self.next.is_some_and(|n| n.wrapping_sub(seq) <= Self::MAX_MISORDER) {
            return false;
        }
        self.next = Some(seq);
        self.probation = None;
        true
    }

    /// How far `seq` is behind the packets already seen: `Some(1)` for a
    /// copy of the last one, `Some(n)` for one up to
    /// [`SequenceTracker::MAX_MISORDER`] back (late or repeated); `None`
    /// when it is new (ahead, or so far away that it may start a new
    /// sequence). It does not change the tracker.
    ///
    /// ```
    /// use rtsp_toolkit_core::codec::SequenceTracker;
    /// let mut t = SequenceTracker::new();
    /// assert_eq!(t.behind(7), None);
    /// t.observe(7);
    /// t.observe(8);
    /// assert_eq!(t.behind(8), Some(1));
    /// assert_eq!(t.behind(5), Some(4));
    /// assert_eq!(t.behind(9), None);
    /// assert_eq!(t.behind(40000), None);
    /// ```
    pub fn behind(&self, seq: u16) -> Option<u16> {
        let back = self.next?.wrapping_sub(seq);
        (1..=Self::MAX_MISORDER).contains(&back).then_some(back)
    }

    /// All packets counted as lost so far.
    pub fn total_lost(&self) -> u64 {
        self.total_lost
    }

    /// How many times the sequence started again far away.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
}

/// Unrolls 32-bit RTP timestamps into a 64-bit timeline across wraps. Each
/// step is taken as the signed 32-bit difference from the previous value,
/// so B-frame reordering (small steps back) works.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnroller {
    last: Option<(u32, i64)>,
}

impl TimestampUnroller {
    /// An unroller that has seen no timestamp.
    pub fn new() -> Self {
        Self::default()
    }

    /// The extended value of `ts`; the first timestamp maps to itself.
    ///
    /// ```
    /// use rtsp_toolkit_core::codec::TimestampUnroller;
    /// let mut u = TimestampUnroller::new();
    /// assert_eq!(u.extend(u32::MAX - 10), (u32::MAX - 10) as i64);
    /// assert_eq!(u.extend(5), u32::MAX as i64 + 6);
    /// ```
    pub fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((prev, prev_ext)) => prev_ext + i64::from(ts.wrapping_sub(prev) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// Writes `00 00 00 01` + `nal` into `out` (Annex B).
pub(crate) fn put_annex_b(out: &mut bytes::BytesMut, nal: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(nal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tracker_reorder_and_restart() {
        let mut t = SequenceTracker::new();
        assert_eq!(t.observe(10), 0);
        assert_eq!(t.observe(12), 1);
        assert_eq!(t.observe(11), 0, "late packet");
        assert_eq!(t.observe(13), 0);
        assert_eq!(t.total_lost(), 1);
    }

    #[test]
    fn unroller_handles_backwards_steps() {
        let mut u = TimestampUnroller::new();
        assert_eq!(u.extend(1000), 1000);
        assert_eq!(u.extend(4000), 4000);
        assert_eq!(u.extend(2000), 2000);
    }
}
