//! Audio decode helpers: depacketized audio frames in, 16-bit PCM out.
//!
//! What it is: an [`AudioDecoder`] for one audio track that turns the core's
//! [`AudioFrame`]s into [`PcmFrame`]s of interleaved signed 16-bit samples, optionally
//! resampled to a chosen rate; a [`WavWriter`] to save them; behind the `playback` cargo
//! feature, a `Player` for the default output device; and behind the `decode` feature, an AAC
//! *encoder* for the ONVIF backchannel (`FfmpegAacEncoder`, FFmpeg's, through the core's
//! `AacEncoder` hook).
//!
//! - AAC (`mpeg4-generic`) and AAC-LATM (`MP4A-LATM`) frames are raw access units; they are
//!   decoded with Symphonia's pure-Rust AAC-LC decoder using the track's AudioSpecificConfig.
//!   HE-AAC (SBR, and PS on top of it) is decoded as its AAC-LC core: at the core rate (half the
//!   nominal rate), without the spectral band replication high band, and mono for HE-AAC v2.
//!   Main, LTP, 960-sample and more-than-two-channel AAC are refused at creation.
//! - G.711 A-law and mu-law are expanded with the core's tables.
//! - L16 is big-endian PCM already: its samples are only byte-swapped.
//! - Opus is decoded with the pure-Rust `opus-decoder` crate (RFC 8251's test vectors pass; no
//!   system library, so no cargo feature), to 48 kHz, mono or stereo as the SDP says.
//! - G.722 is decoded with the core's decoder (`codec::g722`, bit-exact with FFmpeg's), one per
//!   channel, to 16 kHz.
//!
//! What it is not: a jitter buffer or a concealment stage. A frame that cannot be decoded gives
//! an error and no PCM; lost frames leave gaps that the caller sees in the timestamps.
//!
//! With resampling, every [`PcmFrame`] still covers exactly one source frame and carries its RTP
//! timestamp, but it comes out one [`AudioDecoder::feed`] later (the filter needs a little of the
//! next frame); [`AudioDecoder::flush`] hands out the last one. Without resampling each feed
//! returns its own frame.
//!
//! ```
//! use bytes::Bytes;
//! use rtsp_toolkit_core::codec::{AudioCodec, AudioFrame};
//! use rtsp_toolkit_media::audio::AudioDecoder;
//!
//! let mut decoder = AudioDecoder::new(AudioCodec::Pcmu, None, 8000, 1, Some(16_000))?;
//! let frame = AudioFrame {
//!     codec: AudioCodec::Pcmu,
//!     timestamp: 0,
//!     data: Bytes::from(vec![0xFF; 160]), // 20 ms of mu-law silence
//!     sample_count: 160,
//!     sample_rate: 8000,
//!     channels: 1,
//!     loss: 0,
//! };
//! let mut pcm = decoder.feed(&frame)?; // empty: the resampler waits for more input
//! pcm.extend(decoder.flush());
//! assert_eq!(pcm[0].sample_count(), 320);
//! assert_eq!(pcm[0].pcm_bytes().len(), 640);
//! # Ok::<(), rtsp_toolkit_media::audio::AudioDecodeError>(())
//! ```

#[cfg(feature = "decode")]
mod aac_encoder;
#[cfg(feature = "playback")]
mod playback;
mod resample;
mod wav;

use std::collections::VecDeque;
use std::fmt;

use rtsp_toolkit_core::codec::{g711, g722, l16, opus, AudioCodec, AudioFrame};
use rtsp_toolkit_core::sdp::{parse_audio_specific_config, Media, SdpError};
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder as _, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::default::codecs::AacDecoder;

#[cfg(feature = "decode")]
pub use aac_encoder::{FfmpegAacEncoder, FfmpegAacEncoderFactory};
#[cfg(feature = "playback")]
pub use playback::{PlaybackError, Player};
pub use resample::{ResampleError, Resampler, MAX_RATIO};
pub use wav::{write_wav_header, WavWriter, WAV_HEADER_LEN};

/// Decoded audio: interleaved signed 16-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmFrame {
    /// RTP timestamp of the source frame (in the track's RTP clock, even when resampled).
    pub timestamp: u32,
    /// Sample rate of `samples` in Hz.
    pub sample_rate: u32,
    /// Interleaved channels in `samples`.
    pub channels: u16,
    /// Interleaved samples: `sample_count() * channels` of them.
    pub samples: Vec<i16>,
}

impl PcmFrame {
    /// The samples as little-endian bytes (s16le), as WAV files and most sound APIs want them.
    pub fn pcm_bytes(&self) -> Vec<u8> {
        self.samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Samples per channel.
    pub fn sample_count(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.sample_count() as f64 / f64::from(self.sample_rate)
        }
    }
}

/// Why a decoder could not be made, or a frame not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioDecodeError {
    /// The track's codec has no decoder here.
    #[error("no audio decoder for codec {0:?}")]
    UnsupportedCodec(String),
    /// The AAC stream uses a feature the decoder lacks.
    #[error("unsupported AAC stream: {0}")]
    UnsupportedAac(String),
    /// The SDP parameters of the track are malformed (including its AudioSpecificConfig).
    #[error("bad audio parameters: {0}")]
    Config(#[from] SdpError),
    /// A zero sample rate or channel count.
    #[error("invalid audio format: {sample_rate} Hz, {channels} channels")]
    InvalidFormat {
        /// The sample rate given, in Hz.
        sample_rate: u32,
        /// The channel count given.
        channels: u16,
    },
    /// The requested output rate is out of reach of the resampler.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// A frame of another codec was fed.
    #[error("a {decoder:?} decoder was fed a {frame:?} frame")]
    CodecMismatch {
        /// The decoder's codec.
        decoder: AudioCodec,
        /// The frame's codec.
        frame: AudioCodec,
    },
    /// An AAC access unit could not be decoded; the decoder stays usable.
    #[error("AAC frame at RTP timestamp {timestamp} could not be decoded: {reason}")]
    Aac {
        /// The frame's RTP timestamp.
        timestamp: u32,
        /// What the AAC decoder said.
        reason: String,
    },
    /// An Opus packet could not be decoded; the decoder stays usable.
    #[error("Opus frame at RTP timestamp {timestamp} could not be decoded: {reason}")]
    Opus {
        /// The frame's RTP timestamp.
        timestamp: u32,
        /// What the Opus decoder said.
        reason: String,
    },
    /// An L16 or G.722 frame that is not a whole number of sample frames.
    #[error("{codec:?} frame at RTP timestamp {timestamp}: {len} bytes are not whole {channels}-channel samples")]
    PcmLength {
        /// The frame's codec.
        codec: AudioCodec,
        /// The frame's RTP timestamp.
        timestamp: u32,
        /// Its length in bytes.
        len: usize,
        /// The channel count.
        channels: u16,
    },
    /// A G.711 frame whose length is not a multiple of the channel count.
    #[error("G.711 frame at RTP timestamp {timestamp}: {len} bytes are not whole {channels}-channel samples")]
    G711Length {
        /// The frame's RTP timestamp.
        timestamp: u32,
        /// Its length in bytes.
        len: usize,
        /// The channel count.
        channels: u16,
    },
}

/// The codec-specific half of the decoder.
enum Codec {
    Aac(Box<AacDecoder>),
    Alaw,
    Ulaw,
    L16,
    /// One decoder per channel.
    G722(Vec<g722::Decoder>),
    Opus(Box<opus_decoder::OpusDecoder>),
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Aac(_) => "Aac",
            Codec::Alaw => "Alaw",
            Codec::Ulaw => "Ulaw",
            Codec::L16 => "L16",
            Codec::G722(_) => "G722",
            Codec::Opus(_) => "Opus",
        })
    }
}

/// Decodes one audio track's frames to 16-bit PCM.
///
/// Made from the track's SDP media section ([`AudioDecoder::from_media`]) or from explicit
/// parameters ([`AudioDecoder::new`]); then [`feed`](AudioDecoder::feed) it every frame the
/// depacketizer emits, in order, and [`flush`](AudioDecoder::flush) at the end of the stream.
#[derive(Debug)]
pub struct AudioDecoder {
    codec: AudioCodec,
    inner: Codec,
    sample_rate: u32,
    channels: u16,
    resampler: Option<Aligned>,
    /// Decoded samples of the current frame, reused between calls.
    scratch: Vec<f32>,
}

impl AudioDecoder {
    /// A decoder for `codec`.
    ///
    /// For AAC, `audio_specific_config` (the SDP's `config`, or the one inside the MP4A-LATM
    /// StreamMuxConfig) gives the sample rate and channels and the other two arguments are not
    /// used; without it the stream is taken to be AAC-LC at `sample_rate` with `channels`. For
    /// G.711 `sample_rate` and `channels` describe the frames (8000 and 1 in the usual case).
    ///
    /// `output_sample_rate` resamples to that rate; `None` (or the source rate) keeps the
    /// source rate.
    ///
    /// # Errors
    ///
    /// A malformed or unsupported AudioSpecificConfig, a zero rate or channel count, or an
    /// output rate more than [`MAX_RATIO`] away from the source rate.
    pub fn new(
        codec: AudioCodec,
        audio_specific_config: Option<&[u8]>,
        sample_rate: u32,
        channels: u16,
        output_sample_rate: Option<u32>,
    ) -> Result<Self, AudioDecodeError> {
        let (inner, sample_rate, channels) = match codec {
            AudioCodec::Aac | AudioCodec::AacLatm => {
                let (asc, rate, channels) = lc_config(audio_specific_config, sample_rate, channels)?;
                let mut params = AudioCodecParameters::new();
                params.codec = CODEC_ID_AAC;
                params.with_extra_data(asc.into_boxed_slice());
                let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
                    .map_err(|e| AudioDecodeError::UnsupportedAac(e.to_string()))?;
                (Codec::Aac(Box::new(decoder)), rate, channels)
            }
            AudioCodec::Pcma | AudioCodec::Pcmu => {
                if sample_rate == 0 || channels == 0 {
                    return Err(AudioDecodeError::InvalidFormat { sample_rate, channels });
                }
                let inner = if codec == AudioCodec::Pcma {
                    Codec::Alaw
                } else {
                    Codec::Ulaw
                };
                (inner, sample_rate, channels)
            }
            AudioCodec::L16 => {
                if sample_rate == 0 || channels == 0 {
                    return Err(AudioDecodeError::InvalidFormat { sample_rate, channels });
                }
                (Codec::L16, sample_rate, channels)
            }
            AudioCodec::G722 => {
                if channels == 0 {
                    return Err(AudioDecodeError::InvalidFormat { sample_rate, channels });
                }
                let decoders = (0..channels).map(|_| g722::Decoder::new()).collect();
                (Codec::G722(decoders), g722::SAMPLE_RATE, channels)
            }
            AudioCodec::G726 => {
                return Err(AudioDecodeError::UnsupportedCodec(
                    "G726 (depacketized, not decoded)".to_owned(),
                ));
            }
            AudioCodec::Opus => {
                if !matches!(channels, 1 | 2) {
                    return Err(AudioDecodeError::InvalidFormat { sample_rate, channels });
                }
                let decoder = opus_decoder::OpusDecoder::new(opus::CLOCK_RATE, usize::from(channels))
                    .map_err(|e| AudioDecodeError::UnsupportedCodec(format!("Opus: {e}")))?;
                (Codec::Opus(Box::new(decoder)), opus::CLOCK_RATE, channels)
            }
        };
        let resampler = match output_sample_rate {
            Some(out) if out != sample_rate => Some(Aligned::new(Resampler::new(sample_rate, out, channels)?)),
            _ => None,
        };
        Ok(AudioDecoder {
            codec,
            inner,
            sample_rate,
            channels,
            resampler,
            scratch: Vec::new(),
        })
    }

    /// A decoder for the track described by `media` (an `m=audio` section from DESCRIBE):
    /// `MPEG4-GENERIC`, `MP4A-LATM`, `PCMA`, `PCMU`, `L16`, `G722` (decoded to 16 kHz) or `opus`
    /// (48 kHz; stereo when the fmtp says `stereo=1` or `sprop-stereo=1`).
    ///
    /// ```
    /// use rtsp_toolkit_core::sdp::Sdp;
    /// use rtsp_toolkit_media::audio::AudioDecoder;
    ///
    /// let sdp = Sdp::parse(b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
    ///     m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
    ///     a=fmtp:97 streamtype=5;mode=AAC-hbr;config=1210;sizeLength=13;indexLength=3;indexDeltaLength=3\r\n")?;
    /// let decoder = AudioDecoder::from_media(&sdp.media[0], None)?;
    /// assert_eq!((decoder.output_sample_rate(), decoder.output_channels()), (44100, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Another codec, malformed fmtp parameters, and as [`AudioDecoder::new`].
    pub fn from_media(media: &Media, output_sample_rate: Option<u32>) -> Result<Self, AudioDecodeError> {
        let channels = media.channels.unwrap_or(1);
        if media.codec_is("MPEG4-GENERIC") || media.codec_is("MP4A-LATM") {
            let codec = if media.codec_is("MPEG4-GENERIC") {
                media.mpeg4_generic()?;
                AudioCodec::Aac
            } else {
                media.mp4a_latm()?;
                AudioCodec::AacLatm
            };
            let asc = media.audio_specific_config();
            Self::new(codec, asc.as_deref(), media.clock_rate, channels, output_sample_rate)
        } else if media.codec_is("PCMA") || media.codec_is("PCMU") {
            let codec = if media.codec_is("PCMA") {
                AudioCodec::Pcma
            } else {
                AudioCodec::Pcmu
            };
            let rate = if media.clock_rate == 0 { 8000 } else { media.clock_rate };
            Self::new(codec, None, rate, channels.max(1), output_sample_rate)
        } else if media.codec_is("L16") {
            Self::new(
                AudioCodec::L16,
                None,
                media.clock_rate,
                channels.max(1),
                output_sample_rate,
            )
        } else if media.codec_is("opus") {
            let channels = rtsp_toolkit_core::codec::opus::Depacketizer::new(media)
                .map_err(|e| AudioDecodeError::UnsupportedCodec(e.to_string()))?
                .channels();
            Self::new(AudioCodec::Opus, None, opus::CLOCK_RATE, channels, output_sample_rate)
        } else if media.codec_is("G722") {
            Self::new(
                AudioCodec::G722,
                None,
                g722::SAMPLE_RATE,
                channels.max(1),
                output_sample_rate,
            )
        } else {
            Err(AudioDecodeError::UnsupportedCodec(media.codec.clone()))
        }
    }

    /// The codec this decoder was made for.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Sample rate of the decoded source in Hz (for HE-AAC, the AAC-LC core rate).
    pub fn source_sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Sample rate of the [`PcmFrame`]s this decoder returns.
    pub fn output_sample_rate(&self) -> u32 {
        self.resampler
            .as_ref()
            .map_or(self.sample_rate, |r| r.resampler.output_rate())
    }

    /// Channels of the [`PcmFrame`]s this decoder returns.
    pub fn output_channels(&self) -> u16 {
        self.channels
    }

    /// Decodes one frame. Returns the PCM that is complete: without resampling, this frame's;
    /// with resampling, usually the previous frame's (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// A frame of another codec, an AAC access unit that does not decode, or a G.711 frame that
    /// is not whole samples. Nothing is returned for that frame and the decoder stays usable.
    pub fn feed(&mut self, frame: &AudioFrame) -> Result<Vec<PcmFrame>, AudioDecodeError> {
        let same_family = match self.codec {
            AudioCodec::Aac | AudioCodec::AacLatm => matches!(frame.codec, AudioCodec::Aac | AudioCodec::AacLatm),
            c => frame.codec == c,
        };
        if !same_family {
            return Err(AudioDecodeError::CodecMismatch {
                decoder: self.codec,
                frame: frame.codec,
            });
        }
        let mut out = Vec::new();
        match &mut self.inner {
            Codec::Aac(decoder) => {
                let packet = PacketRef::new(0, i64::from(frame.timestamp).into(), 1024u64.into(), &frame.data);
                let decoded = decoder.decode_ref(&packet).map_err(|e| AudioDecodeError::Aac {
                    timestamp: frame.timestamp,
                    reason: e.to_string(),
                })?;
                self.scratch.clear();
                decoded.copy_to_vec_interleaved(&mut self.scratch);
                // The decoder's layout is fixed by the AudioSpecificConfig; guard anyway so a
                // surprise can never make frames of the wrong shape.
                if decoded.spec().channels().count() != usize::from(self.channels) {
                    return Err(AudioDecodeError::Aac {
                        timestamp: frame.timestamp,
                        reason: format!(
                            "decoded {} channels, expected {}",
                            decoded.spec().channels().count(),
                            self.channels
                        ),
                    });
                }
                match &mut self.resampler {
                    Some(r) => r.push(frame.timestamp, &self.scratch, &mut out),
                    None => out.push(PcmFrame {
                        timestamp: frame.timestamp,
                        sample_rate: self.sample_rate,
                        channels: self.channels,
                        samples: self.scratch.iter().map(|&s| f32_to_i16(s)).collect(),
                    }),
                }
            }
            Codec::Alaw | Codec::Ulaw => {
                if frame.data.len() % usize::from(self.channels) != 0 {
                    return Err(AudioDecodeError::G711Length {
                        timestamp: frame.timestamp,
                        len: frame.data.len(),
                        channels: self.channels,
                    });
                }
                let mut samples = Vec::with_capacity(frame.data.len());
                if matches!(self.inner, Codec::Alaw) {
                    g711::decode_alaw(&frame.data, &mut samples);
                } else {
                    g711::decode_ulaw(&frame.data, &mut samples);
                }
                match &mut self.resampler {
                    Some(r) => {
                        self.scratch.clear();
                        self.scratch.extend(samples.iter().map(|&s| f32::from(s) / 32768.0));
                        r.push(frame.timestamp, &self.scratch, &mut out);
                    }
                    None => out.push(PcmFrame {
                        timestamp: frame.timestamp,
                        sample_rate: self.sample_rate,
                        channels: self.channels,
                        samples,
                    }),
                }
            }
            Codec::L16 => {
                if frame.data.len() % (2 * usize::from(self.channels)) != 0 {
                    return Err(AudioDecodeError::PcmLength {
                        codec: frame.codec,
                        timestamp: frame.timestamp,
                        len: frame.data.len(),
                        channels: self.channels,
                    });
                }
                let mut samples = Vec::with_capacity(frame.data.len() / 2);
                l16::to_native(&frame.data, &mut samples);
                self.push_pcm(frame.timestamp, samples, &mut out);
            }
            Codec::Opus(decoder) => {
                let channels = usize::from(self.channels);
                let mut samples = vec![0i16; opus::MAX_PACKET_SAMPLES as usize * channels];
                let n = decoder
                    .decode(&frame.data, &mut samples, false)
                    .map_err(|e| AudioDecodeError::Opus {
                        timestamp: frame.timestamp,
                        reason: e.to_string(),
                    })?;
                samples.truncate(n.min(opus::MAX_PACKET_SAMPLES as usize) * channels);
                self.push_pcm(frame.timestamp, samples, &mut out);
            }
            Codec::G722(decoders) => {
                let channels = decoders.len();
                if frame.data.len() % channels != 0 {
                    return Err(AudioDecodeError::PcmLength {
                        codec: frame.codec,
                        timestamp: frame.timestamp,
                        len: frame.data.len(),
                        channels: self.channels,
                    });
                }
                let mut samples = Vec::with_capacity(frame.data.len() * 2);
                if channels == 1 {
                    decoders[0].decode(&frame.data, &mut samples);
                } else {
                    // Bytes interleaved by channel; each decodes to two samples.
                    samples.resize(frame.data.len() * 2, 0);
                    let mut one = Vec::with_capacity(frame.data.len() / channels * 2);
                    for (c, decoder) in decoders.iter_mut().enumerate() {
                        let codes: Vec<u8> = frame.data.iter().skip(c).step_by(channels).copied().collect();
                        one.clear();
                        decoder.decode(&codes, &mut one);
                        for (i, s) in one.iter().enumerate() {
                            samples[i * channels + c] = *s;
                        }
                    }
                }
                self.push_pcm(frame.timestamp, samples, &mut out);
            }
        }
        out.retain(|f| !f.samples.is_empty());
        Ok(out)
    }

    /// Hands decoded 16-bit samples of one frame on, through the resampler when there is one.
    fn push_pcm(&mut self, timestamp: u32, samples: Vec<i16>, out: &mut Vec<PcmFrame>) {
        match &mut self.resampler {
            Some(r) => {
                self.scratch.clear();
                self.scratch.extend(samples.iter().map(|&s| f32::from(s) / 32768.0));
                r.push(timestamp, &self.scratch, out);
            }
            None => out.push(PcmFrame {
                timestamp,
                sample_rate: self.sample_rate,
                channels: self.channels,
                samples,
            }),
        }
    }

    /// Hands out what the resampler still holds (the end of the last frame, as if followed by
    /// silence) and starts afresh, e.g. after a pause or a seek. Without resampling there is
    /// never anything held and this returns nothing.
    pub fn flush(&mut self) -> Vec<PcmFrame> {
        let mut out = Vec::new();
        if let Some(r) = &mut self.resampler {
            r.flush(&mut out);
        }
        out.retain(|f| !f.samples.is_empty());
        out
    }
}

/// Checks an AAC configuration and rewrites it as a plain AAC-LC AudioSpecificConfig, the only
/// kind Symphonia accepts; for HE-AAC this selects the AAC-LC core. Returns the config, the
/// core sample rate and the channel count.
fn lc_config(asc: Option<&[u8]>, sample_rate: u32, channels: u16) -> Result<(Vec<u8>, u32, u16), AudioDecodeError> {
    let unsupported = |what: String| Err(AudioDecodeError::UnsupportedAac(what));
    let (rate, channel_configuration) = match asc {
        Some(asc) => {
            let c = parse_audio_specific_config(asc)?;
            if c.object_type != 2 {
                return unsupported(format!(
                    "audio object type {} (only AAC-LC and the AAC-LC core of HE-AAC are decoded)",
                    c.object_type
                ));
            }
            if c.frame_length != 1024 {
                return unsupported(format!("{}-sample frames", c.frame_length));
            }
            if !matches!(c.channel_configuration, 1 | 2) {
                return unsupported(format!(
                    "channel configuration {} (mono and stereo are decoded)",
                    c.channel_configuration
                ));
            }
            if let Some(ext) = c.extension_sample_rate {
                tracing::info!(
                    core_rate = c.sample_rate,
                    sbr_rate = ext,
                    "HE-AAC: decoding the AAC-LC core only (no SBR/PS)"
                );
            }
            (c.sample_rate, c.channel_configuration)
        }
        None => {
            if sample_rate == 0 || channels == 0 {
                return Err(AudioDecodeError::InvalidFormat { sample_rate, channels });
            }
            if channels > 2 {
                return unsupported(format!("{channels} channels without an AudioSpecificConfig"));
            }
            (sample_rate, channels as u8)
        }
    };
    Ok((
        lc_audio_specific_config(rate, channel_configuration),
        rate,
        u16::from(channel_configuration),
    ))
}

/// An AudioSpecificConfig for AAC-LC, 1024-sample frames (ISO/IEC 14496-3 1.6.2.1).
fn lc_audio_specific_config(sample_rate: u32, channel_configuration: u8) -> Vec<u8> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits: u64 = 2; // audioObjectType: AAC LC
    let mut len: u32 = 5;
    match RATES.iter().position(|&r| r == sample_rate) {
        Some(index) => {
            bits = (bits << 4) | index as u64;
            len += 4;
        }
        None => {
            bits = (bits << 28) | (0xF << 24) | u64::from(sample_rate & 0xFF_FFFF);
            len += 28;
        }
    }
    // channelConfiguration, then GASpecificConfig: frameLengthFlag, dependsOnCoreCoder and
    // extensionFlag all 0.
    bits = (bits << 7) | (u64::from(channel_configuration) << 3);
    len += 7;
    let bytes = len.div_ceil(8);
    bits <<= bytes * 8 - len;
    (0..bytes).rev().map(|i| (bits >> (i * 8)) as u8).collect()
}

fn f32_to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A resampler whose output is cut back into one piece per source frame.
#[derive(Debug)]
struct Aligned {
    resampler: Resampler,
    /// Source frames whose output is not complete yet: RTP timestamp, and the total output count
    /// (per channel, since the last flush) at which the frame's output ends.
    pending: VecDeque<(u32, u64)>,
    /// Resampled, interleaved output not handed out yet.
    ready: Vec<f32>,
    /// Output samples per channel handed out since the last flush.
    emitted: u64,
    /// Input samples per channel since the last flush.
    inputs: u64,
}

impl Aligned {
    fn new(resampler: Resampler) -> Self {
        Aligned {
            resampler,
            pending: VecDeque::new(),
            ready: Vec::new(),
            emitted: 0,
            inputs: 0,
        }
    }

    fn push(&mut self, timestamp: u32, samples: &[f32], out: &mut Vec<PcmFrame>) {
        let channels = usize::from(self.resampler.channels());
        self.inputs += (samples.len() / channels) as u64;
        self.pending
            .push_back((timestamp, self.resampler.outputs_for(self.inputs)));
        self.resampler.process(samples, &mut self.ready);
        self.drain(out);
    }

    fn flush(&mut self, out: &mut Vec<PcmFrame>) {
        self.resampler.flush(&mut self.ready);
        self.drain(out);
        debug_assert!(self.pending.is_empty() && self.ready.is_empty());
        self.pending.clear();
        self.ready.clear();
        self.emitted = 0;
        self.inputs = 0;
    }

    fn drain(&mut self, out: &mut Vec<PcmFrame>) {
        let channels = usize::from(self.resampler.channels());
        while let Some(&(timestamp, end)) = self.pending.front() {
            let available = self.emitted + (self.ready.len() / channels) as u64;
            if available < end {
                break;
            }
            let count = (end - self.emitted) as usize * channels;
            out.push(PcmFrame {
                timestamp,
                sample_rate: self.resampler.output_rate(),
                channels: self.resampler.channels(),
                samples: self.ready.drain(..count).map(f32_to_i16).collect(),
            });
            self.emitted = end;
            self.pending.pop_front();
        }
    }
}

#[cfg(test)]
mod tests;
