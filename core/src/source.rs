//! What the server plays: a demuxed file as plain data.
//!
//! [`MediaSource`] is the contract between the file readers (the
//! `rtsp-toolkit-media` crate, which does the I/O) and the sans-IO server
//! machine (which packetizes and paces). It is immutable once built and meant
//! to be shared (`Arc<MediaSource>`) by every session playing the same file:
//! sample data are [`Bytes`] views of one buffer, never copied per session.

use std::time::Duration;

use bytes::Bytes;

/// A track's codec and the parameters its SDP needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCodec {
    /// H.264; samples are NAL units each prefixed by a 4-byte big-endian length.
    H264 {
        /// Sequence parameter sets, each one NAL unit without start code or
        /// length prefix (the SDP's `sprop-parameter-sets`; the first gives
        /// its `profile-level-id`).
        sps: Vec<Bytes>,
        /// Picture parameter sets, as `sps`.
        pps: Vec<Bytes>,
    },
    /// H.265; samples are NAL units each prefixed by a 4-byte big-endian length.
    H265 {
        /// Video parameter sets, each one NAL unit without start code or
        /// length prefix (the SDP's `sprop-vps`).
        vps: Vec<Bytes>,
        /// Sequence parameter sets, as `vps` (`sprop-sps`).
        sps: Vec<Bytes>,
        /// Picture parameter sets, as `vps` (`sprop-pps`).
        pps: Vec<Bytes>,
    },
    /// AAC; samples are raw access units (no ADTS header).
    Aac {
        /// The AudioSpecificConfig (ISO/IEC 14496-3), the SDP's `config=`.
        config: Bytes,
        /// Samples per second.
        sample_rate: u32,
        /// Channel count.
        channels: u16,
    },
    /// G.711 A-law, 8 kHz mono; samples are encoded bytes (one byte per sample).
    Pcma,
    /// Motion JPEG; each sample is one whole JPEG image (SOI to EOI) that
    /// [`crate::codec::jpeg::Packetizer`] accepts (file readers check that).
    Mjpeg,
    /// ONVIF metadata (`m=application`, `vnd.onvif.metadata`); each sample
    /// is one whole XML document, sent at its decode time.
    OnvifMetadata,
    /// Opus (RFC 7587); each sample is one Opus packet, sent as one RTP
    /// packet. The clock rate is 48000.
    Opus {
        /// 2 for stereo (the SDP's `sprop-stereo=1`), else 1.
        channels: u16,
    },
    /// L16 (RFC 3551): signed 16-bit big-endian linear PCM, channels
    /// interleaved, at the track's clock rate.
    L16 {
        /// Channel count.
        channels: u16,
    },
    /// G.722 (RFC 3551), 16 kHz mono; samples are encoded bytes (one byte
    /// per two 16 kHz samples). The clock rate is 8000 (RFC 3551).
    G722,
}

/// One track of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTrack {
    /// The codec and its SDP parameters.
    pub codec: SourceCodec,
    /// Units per second of the samples' times, which is also the RTP clock
    /// rate: 90000 for video, the sample rate for AAC and L16, 8000 for PCMA
    /// and G.722, 48000 for Opus.
    pub clock_rate: u32,
}

/// One access unit / audio frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSample {
    /// Index into [`MediaSource::tracks`].
    pub track: usize,
    /// Decode time in the track's clock units from the start of the file:
    /// when the sample is sent.
    pub decode_time: i64,
    /// Presentation time in the track's clock units: the RTP timestamp.
    pub presentation_time: i64,
    /// Video: an IDR / IRAP picture. Audio: always true.
    pub keyframe: bool,
    /// The sample's bytes, in the form its [`SourceCodec`] variant says.
    pub data: Bytes,
}

/// A whole file, demuxed: tracks, and every sample of every track in send
/// order (by decode time in seconds, across tracks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    /// The tracks, in the order of the SDP's media sections (the index is
    /// the `trackID=` of `a=control`).
    pub tracks: Vec<SourceTrack>,
    /// Every sample of every track, in send order.
    pub samples: Vec<SourceSample>,
    /// Length of one play-through: the end of the last sample of any track.
    pub duration: Duration,
}

impl MediaSource {
    /// When `sample` is due, from the start of one play-through.
    pub fn send_time(&self, sample: &SourceSample) -> Duration {
        let rate = self.tracks.get(sample.track).map_or(1, |t| t.clock_rate.max(1));
        let ticks = sample.decode_time.max(0) as u128;
        Duration::from_nanos((ticks * 1_000_000_000 / u128::from(rate)).min(u128::from(u64::MAX)) as u64)
    }
}
