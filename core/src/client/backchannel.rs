//! The ONVIF audio backchannel (ONVIF Streaming Specification §5.3): audio
//! the client sends to the camera on the server's `a=sendonly` audio track.
//!
//! When [`ClientOptions::backchannel`](super::ClientOptions::backchannel) is
//! set, the session asks for the backchannel with
//! `Require: www.onvif.org/ver20/backchannel` on DESCRIBE, SETUP and PLAY,
//! sets up the first audio section the server marks `a=sendonly` (the
//! server sends nothing there: it receives), and after PLAY sends the audio
//! of the [`BackchannelAudio`] queue on it, one RTP packet per 20 ms, paced
//! by the session's own deadlines (the runtime hands in the instants; the
//! core reads no clock).
//!
//! The user fills the queue from any thread or task, before or during the
//! session: PCM ([`BackchannelAudio::push_pcm`]) or G.711 codes
//! ([`BackchannelAudio::push_g711`]), then [`BackchannelAudio::close`] when
//! there is no more. The session encodes for the track's codec
//! ([`BackchannelCodec`]: PCMU and PCMA at 8 kHz, G.722 at 16 kHz on its
//! 8000 Hz RTP clock, AAC at its AudioSpecificConfig's rate; a new codec
//! adds a variant, its [`BackchannelCodec::from_media`] match arm and its
//! encoding in the module's `Encoder`). While the queue is
//! open and empty, time goes on: the next packet's timestamp leaves the gap.
//!
//! # AAC
//!
//! The core has no AAC encoder (it is pure and small; an AAC encoder is
//! neither), so an AAC backchannel (`MPEG4-GENERIC`, `mode=AAC-hbr`, RFC
//! 3640, or `MP4A-LATM`, RFC 6416) needs one from the user: an [`AacEncoderFactory`] given to the
//! queue with [`BackchannelAudio::set_aac_encoder`]. The session asks it for
//! an [`AacEncoder`] matching the server's AudioSpecificConfig
//! ([`AacEncoderConfig`]), hands it the audio taken each 20 ms, and sends
//! each access unit it returns in its own RTP packet (LATM: after its
//! PayloadLengthInfo; fragmented when over 1400 bytes), timestamped 1024 samples after the one before; at the end
//! the encoder's last buffered access units go out at once. Without a
//! factory, or when the encoder fails, the session reports
//! [`Warning::Backchannel`] and sends nothing more. `rtsp-toolkit-media`'s
//! `decode` feature has one, through FFmpeg (`audio::FfmpegAacEncoder`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{Client, Event, Output, TransportKind, Warning};
use crate::codec::{aac, g711, g722};
use crate::message::encode_interleaved;
use crate::rtp::RtpHeader;
use crate::sdp::{Media, MediaKind};
use crate::udp::UdpSocketId;

/// The `Require` option tag that asks an ONVIF server for the backchannel.
pub const REQUIRE_TAG: &str = "www.onvif.org/ver20/backchannel";

/// Audio per RTP packet.
pub const PACKET_DURATION: Duration = Duration::from_millis(20);

/// Most samples the queue holds (about 35 minutes at 8 kHz): a push that
/// would go over is refused whole.
pub const MAX_QUEUED_SAMPLES: usize = 1 << 24;

/// Most packets sent at one wake-up when the runtime woke late; the rest
/// follow at the next (immediate) deadline.
const MAX_BURST: usize = 50;

/// Whether `media` is a backchannel section: audio the server receives
/// (`a=sendonly` from the server's point of view).
pub fn is_backchannel(media: &Media) -> bool {
    media.kind == MediaKind::Audio && media.attributes.iter().any(|a| a.name == "sendonly")
}

/// The codecs the backchannel can send (the client) and offer (the
/// server, [`ServerConfig::backchannel_codec`](crate::server::ServerConfig::backchannel_codec)).
/// With the `serde` feature: `"pcmu"`, `"pcma"`, `"g722"`, `"aac"`, `"aac-latm"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum BackchannelCodec {
    /// G.711 mu-law (`PCMU`).
    #[default]
    Pcmu,
    /// G.711 A-law (`PCMA`).
    Pcma,
    /// G.722 (`G722`, RFC 3551): 16 kHz audio, RTP clock 8000.
    G722,
    /// AAC (`MPEG4-GENERIC`, `mode=AAC-hbr`, RFC 3640): AAC-LC, mono or
    /// stereo, at the rate of the SDP's AudioSpecificConfig. Needs an
    /// encoder from the user (see [the module](self#aac)).
    Aac,
    /// AAC in LATM (`MP4A-LATM`, RFC 6416) with its StreamMuxConfig in the
    /// SDP (`cpresent=0`): one access unit per AudioMuxElement. AAC-LC as
    /// for [`BackchannelCodec::Aac`], and the same encoder.
    AacLatm,
}

impl BackchannelCodec {
    /// The codec of a backchannel section, if it is one this crate encodes.
    pub fn from_media(media: &Media) -> Option<BackchannelCodec> {
        if media.codec_is("PCMU") {
            Some(BackchannelCodec::Pcmu)
        } else if media.codec_is("PCMA") {
            Some(BackchannelCodec::Pcma)
        } else if media.codec_is("G722") {
            Some(BackchannelCodec::G722)
        } else if media.codec_is("MPEG4-GENERIC") {
            Some(BackchannelCodec::Aac)
        } else if media.codec_is("MP4A-LATM") {
            Some(BackchannelCodec::AacLatm)
        } else {
            None
        }
    }

    /// The section a server offers for a backchannel of this codec, with
    /// `control` (RFC 2326 `a=control`) and `a=sendonly`: PCMU, PCMA and
    /// G.722 with their static payload types at 8000 Hz (G.722: 16 kHz
    /// audio), AAC-LC at 16 kHz mono as AAC-hbr (payload type 96,
    /// `config=1408`) or in LATM (payload type 96, `cpresent=0`,
    /// `config=400028103FC0`), what [`BackchannelCodec::from_media`] and
    /// [`aac_config`] take.
    ///
    /// ```
    /// use rtsp_toolkit_core::client::BackchannelCodec;
    /// let m = BackchannelCodec::Aac.offered_media("trackID=2");
    /// assert_eq!((m.codec.as_str(), m.clock_rate, m.payload_type), ("MPEG4-GENERIC", 16000, 96));
    /// assert_eq!(BackchannelCodec::from_media(&m), Some(BackchannelCodec::Aac));
    /// ```
    pub fn offered_media(self, control: &str) -> Media {
        let attribute = |name: &str, value: Option<String>| crate::sdp::Attribute {
            name: name.to_owned(),
            value,
        };
        let (payload_type, clock_rate, fmtp): (u8, u32, &[(&str, &str)]) = match self {
            BackchannelCodec::Pcmu => (0, 8000, &[]),
            BackchannelCodec::Pcma => (8, 8000, &[]),
            BackchannelCodec::G722 => (9, 8000, &[]),
            BackchannelCodec::Aac => (
                AAC_OFFER_PAYLOAD_TYPE,
                16000,
                &[
                    ("streamtype", "5"),
                    ("profile-level-id", "15"),
                    ("mode", "AAC-hbr"),
                    ("config", "1408"),
                    ("sizelength", "13"),
                    ("indexlength", "3"),
                    ("indexdeltalength", "3"),
                ],
            ),
            BackchannelCodec::AacLatm => (
                AAC_OFFER_PAYLOAD_TYPE,
                16000,
                &[
                    ("profile-level-id", "15"),
                    ("object", "2"),
                    ("cpresent", "0"),
                    ("config", "400028103FC0"),
                ],
            ),
        };
        let rtpmap = format!("{payload_type} {}/{clock_rate}/1", self.encoding_name());
        let mut attributes = vec![attribute("rtpmap", Some(rtpmap))];
        if !fmtp.is_empty() {
            let params: Vec<String> = fmtp.iter().map(|(k, v)| format!("{k}={v}")).collect();
            attributes.push(attribute("fmtp", Some(format!("{payload_type} {}", params.join(";")))));
        }
        attributes.push(attribute("control", Some(control.to_owned())));
        attributes.push(attribute("sendonly", None));
        Media {
            kind: MediaKind::Audio,
            port: 0,
            protocol: "RTP/AVP".to_owned(),
            payload_type,
            codec: self.encoding_name().to_owned(),
            clock_rate,
            channels: Some(1),
            control: Some(control.to_owned()),
            fmtp: fmtp.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect(),
            attributes,
            framerate: None,
        }
    }

    /// [`BackchannelCodec::offered_media`] as SDP text (CRLF lines).
    pub fn offer(self, control: &str) -> String {
        let m = self.offered_media(control);
        let mut s = format!("m=audio 0 RTP/AVP {}\r\n", m.payload_type);
        for a in &m.attributes {
            match &a.value {
                Some(v) => s.push_str(&format!("a={}:{v}\r\n", a.name)),
                None => s.push_str(&format!("a={}\r\n", a.name)),
            }
        }
        s
    }

    /// The encoding name of the codec's `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            BackchannelCodec::Pcmu => "PCMU",
            BackchannelCodec::Pcma => "PCMA",
            BackchannelCodec::G722 => "G722",
            BackchannelCodec::Aac => "MPEG4-GENERIC",
            BackchannelCodec::AacLatm => "MP4A-LATM",
        }
    }

    /// Samples per second the codec takes (G.711: its RTP clock rate, 8000
    /// when the SDP gives none; G.722: 16000, whatever its clock says; AAC:
    /// its RTP clock rate, which [`aac_config`] checks is the
    /// AudioSpecificConfig's).
    fn sample_rate(self, media: &Media) -> u32 {
        match self {
            BackchannelCodec::Pcmu | BackchannelCodec::Pcma | BackchannelCodec::Aac | BackchannelCodec::AacLatm => {
                if media.clock_rate == 0 {
                    8000
                } else {
                    media.clock_rate
                }
            }
            BackchannelCodec::G722 => 16000,
        }
    }

    /// RTP clock ticks of `samples` samples (G.722: half, RFC 3551 §4.5.2).
    fn ticks(self, samples: usize) -> u32 {
        match self {
            BackchannelCodec::G722 => (samples / 2) as u32,
            BackchannelCodec::Pcmu | BackchannelCodec::Pcma | BackchannelCodec::Aac | BackchannelCodec::AacLatm => {
                samples as u32
            }
        }
    }
}

/// The format an [`AacEncoder`] must produce: what the server's SDP
/// section describes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AacEncoderConfig {
    /// Samples per second (per channel).
    pub sample_rate: u32,
    /// 1 or 2: the PCM given to [`AacEncoder::encode`] has this many
    /// channels, interleaved (the queue's mono audio, copied to each).
    pub channels: u16,
    /// Samples per channel in one access unit: 1024.
    pub frame_length: u32,
    /// The server's AudioSpecificConfig (the fmtp `config`): AAC-LC
    /// (object type 2) at `sample_rate` with `channels`. The access units
    /// must decode with it.
    pub audio_specific_config: Bytes,
}

/// Why an AAC encoder could not be made or could not encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AAC encoder: {0}")]
pub struct AacEncodeError(pub String);

/// An AAC encoder for one backchannel session (see [the module](self#aac)).
pub trait AacEncoder: Send {
    /// Encodes `pcm` (interleaved 16-bit samples, [`AacEncoderConfig::channels`]
    /// channels at its rate): appends every access unit now complete to
    /// `out`, raw (no ADTS header), in order. Samples of an incomplete
    /// frame wait for the next call.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), AacEncodeError>;

    /// No more audio: appends the access units still held (the last,
    /// padded frame and the encoder's delay).
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), AacEncodeError>;
}

/// Makes an [`AacEncoder`] for each session that sends on an AAC
/// backchannel track. A closure
/// `Fn(&AacEncoderConfig) -> Result<Box<dyn AacEncoder>, AacEncodeError>` is one.
pub trait AacEncoderFactory: Send + Sync {
    /// An encoder producing `config`'s format, or why there is none.
    fn new_encoder(&self, config: &AacEncoderConfig) -> Result<Box<dyn AacEncoder>, AacEncodeError>;
}

impl<F> AacEncoderFactory for F
where
    F: Fn(&AacEncoderConfig) -> Result<Box<dyn AacEncoder>, AacEncodeError> + Send + Sync,
{
    fn new_encoder(&self, config: &AacEncoderConfig) -> Result<Box<dyn AacEncoder>, AacEncodeError> {
        self(config)
    }
}

/// The [`AacEncoderConfig`] of an AAC backchannel section, or why this
/// crate cannot send on it: `MPEG4-GENERIC` AAC-hbr payloads as
/// [`aac::Packetizer`] makes them (`sizeLength=13; indexLength=3;
/// indexDeltaLength=3`), or `MP4A-LATM` with `cpresent=0` and a
/// StreamMuxConfig of one program, one layer, one access unit per
/// AudioMuxElement and no other data; of mono or stereo AAC-LC with
/// 1024-sample frames, its RTP clock at the audio's rate.
pub fn aac_config(media: &Media) -> Result<AacEncoderConfig, String> {
    let asc = if media.codec_is("MP4A-LATM") {
        let p = media.mp4a_latm().map_err(|e| e.to_string())?.ok_or("not MP4A-LATM")?;
        if p.cpresent {
            return Err("MP4A-LATM with cpresent=1 (the config in band): only cpresent=0 is sent".into());
        }
        let config = p.config.unwrap_or_default();
        let mux = crate::mpeg4_audio::parse_mux_config(&config).map_err(|e| format!("MP4A-LATM config: {e}"))?;
        if mux.sub_frames != 1 || mux.other_data_bits.is_some() {
            return Err(format!(
                "MP4A-LATM with {} access units per AudioMuxElement{}: only one, and no other data, is sent",
                mux.sub_frames,
                if mux.other_data_bits.is_some() {
                    " and other data"
                } else {
                    ""
                }
            ));
        }
        p.audio_specific_config.unwrap_or_default()
    } else {
        let p = media
            .mpeg4_generic()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} is not MPEG4-GENERIC", media.codec))?;
        if !p.mode.eq_ignore_ascii_case("AAC-hbr")
            || (p.size_length, p.index_length, p.index_delta_length) != (13, 3, 3)
        {
            return Err(format!(
                "MPEG4-GENERIC mode={} sizeLength={} indexLength={} indexDeltaLength={}: only AAC-hbr (13, 3, 3) is sent",
                p.mode, p.size_length, p.index_length, p.index_delta_length
            ));
        }
        p.config
    };
    if asc.is_empty() {
        return Err(format!("{} without config (AudioSpecificConfig)", media.codec));
    }
    let c = crate::sdp::parse_audio_specific_config(&asc).map_err(|e| e.to_string())?;
    if c.object_type != 2
        || c.extension_sample_rate.is_some()
        || c.frame_length != 1024
        || !(1..=2).contains(&c.channels)
    {
        return Err(format!(
            "AAC object type {}{}, {} channels, {}-sample frames: only mono or stereo AAC-LC with 1024-sample frames is sent",
            c.object_type,
            if c.extension_sample_rate.is_some() { " with SBR" } else { "" },
            c.channels,
            c.frame_length
        ));
    }
    if media.clock_rate != c.sample_rate {
        return Err(format!(
            "RTP clock {} Hz for AAC at {} Hz: only a clock at the audio's rate is sent",
            media.clock_rate, c.sample_rate
        ));
    }
    Ok(AacEncoderConfig {
        sample_rate: c.sample_rate,
        channels: u16::from(c.channels),
        frame_length: c.frame_length,
        audio_specific_config: asc,
    })
}

/// The payload type of the AAC backchannel a server offers.
const AAC_OFFER_PAYLOAD_TYPE: u8 = 96;

/// Largest RTP payload of an AAC backchannel packet: an access unit over
/// this goes in fragments.
const AAC_MAX_PAYLOAD: usize = 1400;

/// The AAC half of an [`Encoder`].
struct AacState {
    encoder: Box<dyn AacEncoder>,
    channels: u16,
    frame_length: u32,
    /// RTP timestamp of the next access unit.
    timestamp: u32,
    /// MP4A-LATM: each AU after its PayloadLengthInfo; else AAC-hbr.
    latm: bool,
    packetizer: aac::Packetizer,
    /// Access units of this tick (kept: no allocation per packet).
    aus: Vec<Bytes>,
    interleaved: Vec<i16>,
}

impl std::fmt::Debug for AacState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacState")
            .field("channels", &self.channels)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl AacState {
    /// Encodes `pcm` (mono; `last`: then flushes) into RTP payloads, each
    /// with its timestamp and marker bit, appended to `out`.
    fn encode(&mut self, pcm: &[i16], last: bool, out: &mut Vec<(Bytes, u32, bool)>) -> Result<(), AacEncodeError> {
        self.aus.clear();
        let input: &[i16] = if self.channels == 1 {
            pcm
        } else {
            self.interleaved.clear();
            let n = usize::from(self.channels);
            self.interleaved
                .extend(pcm.iter().flat_map(|&s| std::iter::repeat_n(s, n)));
            &self.interleaved
        };
        if !input.is_empty() {
            self.encoder.encode(input, &mut self.aus)?;
        }
        if last {
            self.encoder.finish(&mut self.aus)?;
        }
        for au in &self.aus {
            let payloads = if self.latm {
                latm_payloads(au)
            } else {
                self.packetizer.packetize(au)
            };
            let n = payloads.len();
            // RFC 3640 §3.2.3.1 and RFC 6416 §6.1: the marker is set on the
            // last fragment of an AU (of an AudioMuxElement).
            out.extend(
                payloads
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (p, self.timestamp, i + 1 == n)),
            );
            self.timestamp = self.timestamp.wrapping_add(self.frame_length);
        }
        Ok(())
    }
}

/// `au` as an AudioMuxElement with `muxConfigPresent` 0 (RFC 6416 §6.1,
/// ISO/IEC 14496-3 1.7.3: one PayloadLengthInfo, bytes of 255 then the
/// rest, then the PayloadMux), in payloads of at most [`AAC_MAX_PAYLOAD`]
/// bytes.
fn latm_payloads(au: &[u8]) -> Vec<Bytes> {
    let mut element = BytesMut::with_capacity(au.len() / 255 + 1 + au.len());
    let mut n = au.len();
    while n >= 255 {
        element.extend_from_slice(&[255]);
        n -= 255;
    }
    element.extend_from_slice(&[n as u8]);
    element.extend_from_slice(au);
    let element = element.freeze();
    (0..element.len())
        .step_by(AAC_MAX_PAYLOAD)
        .map(|i| element.slice(i..(i + AAC_MAX_PAYLOAD).min(element.len())))
        .collect()
}

/// A backchannel track's encoder (G.722 and AAC keep state from packet to packet).
#[derive(Debug)]
struct Encoder {
    codec: BackchannelCodec,
    g722: g722::Encoder,
    codes: Vec<u8>,
    /// Set for [`BackchannelCodec::Aac`].
    aac: Option<AacState>,
}

impl Encoder {
    fn new(codec: BackchannelCodec) -> Encoder {
        Encoder {
            codec,
            g722: g722::Encoder::new(),
            codes: Vec::new(),
            aac: None,
        }
    }

    /// Appends the encoded `pcm` (mono) to `out`; the RTP timestamp
    /// advances by the return value. (AAC goes through [`AacState::encode`].)
    fn encode(&mut self, pcm: &[i16], out: &mut BytesMut) -> u32 {
        match self.codec {
            BackchannelCodec::Pcmu => out.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            BackchannelCodec::Pcma => out.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
            BackchannelCodec::G722 => {
                self.codes.clear();
                self.g722.encode(pcm, &mut self.codes);
                out.extend_from_slice(&self.codes);
            }
            BackchannelCodec::Aac | BackchannelCodec::AacLatm => {}
        }
        self.codec.ticks(pcm.len())
    }
}

/// Why audio was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackchannelError {
    /// The queue would hold more than [`MAX_QUEUED_SAMPLES`].
    #[error("the backchannel queue is full ({queued} samples queued)")]
    Full {
        /// Samples queued now.
        queued: usize,
    },
    /// PCM at another rate than the audio queued before.
    #[error("audio at {got} Hz after audio at {expected} Hz")]
    RateChanged {
        /// The rate of the audio queued first.
        expected: u32,
        /// The rate of this push.
        got: u32,
    },
    /// A sample rate or channel count of zero, or G.711 codes said to be
    /// of another codec.
    #[error("a sample rate and a channel count must be above zero, and G.711 codes PCMU or PCMA")]
    BadFormat,
    /// [`BackchannelAudio::close`] was called.
    #[error("the backchannel audio was closed")]
    Closed,
}

/// The audio a session sends on the backchannel: a queue shared between
/// the user (who pushes) and the session (which takes 20 ms per packet).
/// Clones share the queue.
///
/// ```
/// use rtsp_toolkit_core::client::{BackchannelAudio, ClientOptions};
/// let audio = BackchannelAudio::new();
/// audio.push_pcm(&[0i16; 8000], 8000, 1).unwrap(); // one second of silence
/// audio.close(); // nothing more: the session stops sending when it is out
/// let opts = ClientOptions::default().with_backchannel(audio.clone());
/// assert_eq!(audio.queued(), 8000);
/// # drop(opts);
/// ```
#[derive(Clone, Default)]
pub struct BackchannelAudio {
    inner: Arc<Mutex<Queue>>,
}

#[derive(Default)]
struct Queue {
    /// Mono samples at `rate`.
    pcm: VecDeque<i16>,
    rate: Option<u32>,
    closed: bool,
    sent: u64,
    aac: Option<Arc<dyn AacEncoderFactory>>,
}

impl std::fmt::Debug for BackchannelAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.lock();
        f.debug_struct("BackchannelAudio")
            .field("queued", &q.pcm.len())
            .field("rate", &q.rate)
            .field("closed", &q.closed)
            .field("sent", &q.sent)
            .field("aac_encoder", &q.aac.is_some())
            .finish()
    }
}

impl BackchannelAudio {
    /// An empty, open queue.
    pub fn new() -> BackchannelAudio {
        BackchannelAudio::default()
    }

    /// Gives the sessions an AAC encoder for AAC backchannel tracks (see
    /// [the module](self#aac)); replaces the one given before.
    pub fn set_aac_encoder(&self, factory: Arc<dyn AacEncoderFactory>) {
        self.lock().aac = Some(factory);
    }

    /// [`BackchannelAudio::set_aac_encoder`], builder style.
    pub fn with_aac_encoder(self, factory: Arc<dyn AacEncoderFactory>) -> Self {
        self.set_aac_encoder(factory);
        self
    }

    /// Whether an AAC encoder was given.
    pub fn has_aac_encoder(&self) -> bool {
        self.lock().aac.is_some()
    }

    fn aac_encoder(&self) -> Option<Arc<dyn AacEncoderFactory>> {
        self.lock().aac.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every change is a few field updates: the queue stays consistent
        // even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues 16-bit PCM, `channels` interleaved (mixed down to mono), at
    /// `sample_rate`, which must be the rate of the audio queued before. The
    /// session converts it to the backchannel codec's rate (8000 for G.711,
    /// 16000 for G.722, the AudioSpecificConfig's for AAC) by linear
    /// interpolation when they differ.
    pub fn push_pcm(&self, samples: &[i16], sample_rate: u32, channels: u16) -> Result<(), BackchannelError> {
        if sample_rate == 0 || channels == 0 {
            return Err(BackchannelError::BadFormat);
        }
        let mut q = self.lock();
        if q.closed {
            return Err(BackchannelError::Closed);
        }
        if let Some(expected) = q.rate.filter(|&r| r != sample_rate) {
            return Err(BackchannelError::RateChanged {
                expected,
                got: sample_rate,
            });
        }
        let frames = samples.len() / usize::from(channels);
        if q.pcm.len() + frames > MAX_QUEUED_SAMPLES {
            return Err(BackchannelError::Full { queued: q.pcm.len() });
        }
        q.rate = Some(sample_rate);
        if channels == 1 {
            q.pcm.extend(samples.iter().copied());
        } else {
            let n = i32::from(channels);
            q.pcm.extend(
                samples
                    .chunks_exact(usize::from(channels))
                    .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / n) as i16),
            );
        }
        Ok(())
    }

    /// Queues G.711 codes (8000 Hz mono): decoded here and encoded again for
    /// the track, which gives back the same codes when the track's codec is
    /// the same (except mu-law `0x7F`, negative zero, which comes back as `0xFF`).
    /// `codec` must be [`BackchannelCodec::Pcmu`] or [`BackchannelCodec::Pcma`].
    pub fn push_g711(&self, codec: BackchannelCodec, codes: &[u8]) -> Result<(), BackchannelError> {
        let pcm: Vec<i16> = match codec {
            BackchannelCodec::Pcmu => codes.iter().map(|&c| g711::ulaw_to_linear(c)).collect(),
            BackchannelCodec::Pcma => codes.iter().map(|&c| g711::alaw_to_linear(c)).collect(),
            BackchannelCodec::G722 | BackchannelCodec::Aac | BackchannelCodec::AacLatm => {
                return Err(BackchannelError::BadFormat)
            }
        };
        self.push_pcm(&pcm, 8000, 1)
    }

    /// No more audio: the session stops sending once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// Samples waiting to be sent.
    pub fn queued(&self) -> usize {
        self.lock().pcm.len()
    }

    /// Samples sent so far (by every session using this queue).
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// Closed and everything sent.
    pub fn is_done(&self) -> bool {
        let q = self.lock();
        q.closed && q.pcm.is_empty()
    }

    /// Up to `max` samples, if any; `None` with `true` when closed and empty.
    fn take(&self, max: usize, out: &mut Vec<i16>) -> bool {
        let mut q = self.lock();
        let n = max.min(q.pcm.len());
        out.extend(q.pcm.drain(..n));
        q.sent += n as u64;
        q.closed && q.pcm.is_empty()
    }

    fn rate(&self) -> Option<u32> {
        self.lock().rate
    }
}

/// The sending side of a set-up backchannel track.
#[derive(Debug)]
pub(super) struct Pacer {
    /// Index among the set-up tracks.
    track: usize,
    encoder: Encoder,
    rate: u32,
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// When the next packet is due; `None`: done (closed and sent).
    next_at: Option<Instant>,
    /// The last tick sent nothing: the next packet starts a talkspurt (marker).
    idle: bool,
    audio: BackchannelAudio,
    scratch: Vec<i16>,
    /// Audio queued at another rate than the codec's is converted (see
    /// [`Resampler`]).
    resampler: Resampler,
    /// AAC: the RTP payloads of this tick, with timestamp and marker.
    payloads: Vec<(Bytes, u32, bool)>,
}

/// Linear-interpolation rate conversion of the queued audio to the codec's
/// rate (8 kHz telephony audio for G.722's 16 kHz, a 44.1 kHz WAV for
/// G.711): enough for talk-back audio, and no drift, since the input taken
/// per packet is counted exactly.
#[derive(Debug, Default)]
struct Resampler {
    /// Input rate × output samples not yet matched by input (remainder).
    carry: u64,
    /// The last input sample of the previous chunk (interpolation across chunks).
    last: i16,
    out: Vec<i16>,
}

impl Resampler {
    /// How many input samples at `from` Hz make `n` output samples at `to` Hz.
    fn input_for(&mut self, n: usize, from: u32, to: u32) -> usize {
        self.carry += n as u64 * u64::from(from);
        let take = self.carry / u64::from(to.max(1));
        self.carry %= u64::from(to.max(1));
        take as usize
    }

    /// `input` (at `from` Hz) as `n` samples at the output rate: each output
    /// sample interpolated between its two nearest inputs.
    fn convert(&mut self, input: &[i16], n: usize) -> &[i16] {
        self.out.clear();
        if input.is_empty() || n == 0 {
            return &self.out;
        }
        let step = input.len() as f64 / n as f64;
        for j in 0..n {
            // Position in the input, the previous chunk's last sample at -1.
            let x = (j as f64 + 1.0) * step - 1.0;
            let i = x.floor();
            let frac = x - i;
            let at = |k: f64| -> f64 {
                if k < 0.0 {
                    f64::from(self.last)
                } else {
                    f64::from(input[(k as usize).min(input.len() - 1)])
                }
            };
            let v = at(i) * (1.0 - frac) + at(i + 1.0) * frac;
            self.out.push(v.round().clamp(-32768.0, 32767.0) as i16);
        }
        self.last = input[input.len() - 1];
        &self.out
    }
}

impl Pacer {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.next_at
    }

    /// The session plays again after a pause (the pacer is not run while
    /// paused): the next packet goes now, without catching up on the pause.
    pub(super) fn resume(&mut self, now: Instant) {
        if let Some(at) = self.next_at.as_mut() {
            *at = (*at).max(now);
        }
    }
}

impl Client {
    /// The media index of the backchannel section to set up, when asked for.
    pub(super) fn backchannel_media(&self, media: &[Media]) -> Option<usize> {
        self.opts.backchannel.as_ref()?;
        media.iter().position(is_backchannel)
    }

    /// PLAY was answered: start sending on the backchannel track, if one is set up.
    pub(super) fn start_backchannel(&mut self, now: Instant) {
        let Some(audio) = self.opts.backchannel.clone() else {
            return;
        };
        let Some(sdp) = self.sdp.as_ref() else { return };
        let Some((i, media)) = self.tracks.iter().enumerate().find_map(|(i, t)| {
            sdp.media
                .get(t.track.media_index)
                .filter(|m| is_backchannel(m))
                .map(|m| (i, m))
        }) else {
            self.events.push_back(Event::Warning(Warning::Backchannel {
                track: None,
                reason: "the server offers no backchannel track (no a=sendonly audio section)".into(),
            }));
            return;
        };
        let Some(codec) = BackchannelCodec::from_media(media) else {
            self.events.push_back(Event::Warning(Warning::Backchannel {
                track: Some(i),
                reason: format!("no encoder for the backchannel codec {}: nothing is sent", media.codec),
            }));
            return;
        };
        let rate = codec.sample_rate(media);
        let r = self.udp.next_random();
        let timestamp = (r >> 32) as u32;
        let mut encoder = Encoder::new(codec);
        if matches!(codec, BackchannelCodec::Aac | BackchannelCodec::AacLatm) {
            let made = aac_config(media).and_then(|config| {
                let factory = audio.aac_encoder().ok_or_else(|| {
                    "the backchannel codec is AAC and no AAC encoder was given \
                     (BackchannelAudio::set_aac_encoder; the CLI has one when built with the `decode` feature)"
                        .to_owned()
                })?;
                let encoder = factory.new_encoder(&config).map_err(|e| e.to_string())?;
                Ok(AacState {
                    encoder,
                    channels: config.channels,
                    frame_length: config.frame_length,
                    timestamp,
                    latm: codec == BackchannelCodec::AacLatm,
                    packetizer: aac::Packetizer::new(AAC_MAX_PAYLOAD),
                    aus: Vec::new(),
                    interleaved: Vec::new(),
                })
            });
            match made {
                Ok(state) => encoder.aac = Some(state),
                Err(reason) => {
                    self.events.push_back(Event::Warning(Warning::Backchannel {
                        track: Some(i),
                        reason: format!("{reason}: nothing is sent"),
                    }));
                    return;
                }
            }
        }
        self.pacer = Some(Pacer {
            track: i,
            encoder,
            rate,
            payload_type: media.payload_type,
            ssrc: self.udp.ssrc(),
            seq: r as u16,
            timestamp,
            next_at: Some(now),
            idle: true,
            audio,
            scratch: Vec::new(),
            resampler: Resampler::default(),
            payloads: Vec::new(),
        });
    }

    /// Sends every backchannel packet due at `now` (at most [`MAX_BURST`]).
    pub(super) fn pace_backchannel(&mut self, now: Instant) {
        let Some(p) = self.pacer.as_mut() else { return };
        let per_packet = (p.rate / 50).max(1) as usize;
        let ticks_per_packet = p.encoder.codec.ticks(per_packet).max(1);
        for _ in 0..MAX_BURST {
            let Some(at) = p.next_at.filter(|&at| at <= now) else {
                break;
            };
            let from = p.audio.rate().unwrap_or(p.rate);
            let want = if from == p.rate {
                per_packet
            } else {
                p.resampler.input_for(per_packet, from, p.rate)
            };
            p.scratch.clear();
            let done = p.audio.take(want, &mut p.scratch);
            if from != p.rate && !p.scratch.is_empty() {
                // The last packet may be short: as many outputs as its inputs make.
                let n = if p.scratch.len() == want {
                    per_packet
                } else {
                    (p.scratch.len() as u64 * u64::from(p.rate) / u64::from(from)).max(1) as usize
                };
                p.resampler.convert(&p.scratch, n);
                // The converted samples take the scratch's place (both buffers kept, no allocation).
                std::mem::swap(&mut p.scratch, &mut p.resampler.out);
            }
            if let Some(aac) = p.encoder.aac.as_mut() {
                // AAC: the encoder decides when access units come out; the
                // last tick (closed and empty) flushes it.
                p.next_at = if done { None } else { Some(at + PACKET_DURATION) };
                if p.scratch.is_empty() && !done {
                    // Time goes on while the queue is empty.
                    aac.timestamp = aac.timestamp.wrapping_add(ticks_per_packet);
                    continue;
                }
                p.payloads.clear();
                if let Err(e) = aac.encode(&p.scratch, done, &mut p.payloads) {
                    self.events.push_back(Event::Warning(Warning::Backchannel {
                        track: Some(p.track),
                        reason: format!("{e}: nothing more is sent"),
                    }));
                    p.next_at = None;
                    break;
                }
                for (payload, timestamp, marker) in p.payloads.drain(..) {
                    let mut packet = BytesMut::with_capacity(12 + payload.len());
                    RtpHeader {
                        sequence_number: p.seq,
                        timestamp,
                        ssrc: p.ssrc,
                        marker,
                        payload_type: p.payload_type,
                    }
                    .write_packet(&payload, &mut packet);
                    p.seq = p.seq.wrapping_add(1);
                    send(
                        &mut self.io,
                        &self.tracks[p.track].track.transport,
                        p.track,
                        self.udp.peer_ip(),
                        packet,
                    );
                }
                continue;
            }
            p.next_at = if done && p.scratch.is_empty() {
                None
            } else {
                Some(at + PACKET_DURATION)
            };
            if p.scratch.is_empty() {
                // Time goes on while the queue is empty: the gap shows in the timestamps.
                p.timestamp = p.timestamp.wrapping_add(ticks_per_packet);
                p.idle = true;
                continue;
            }
            let mut payload = BytesMut::with_capacity(per_packet);
            let advance = p.encoder.encode(&p.scratch, &mut payload);
            let mut packet = BytesMut::with_capacity(12 + payload.len());
            RtpHeader {
                sequence_number: p.seq,
                timestamp: p.timestamp,
                ssrc: p.ssrc,
                marker: p.idle,
                payload_type: p.payload_type,
            }
            .write_packet(&payload, &mut packet);
            p.seq = p.seq.wrapping_add(1);
            p.timestamp = p.timestamp.wrapping_add(advance.max(ticks_per_packet));
            p.idle = false;
            send(
                &mut self.io,
                &self.tracks[p.track].track.transport,
                p.track,
                self.udp.peer_ip(),
                packet,
            );
        }
    }
}

/// Queues `packet` for the backchannel track `track` on its transport.
fn send(
    io: &mut VecDeque<Output>,
    transport: &TransportKind,
    track: usize,
    peer_ip: std::net::IpAddr,
    packet: BytesMut,
) {
    match *transport {
        TransportKind::TcpInterleaved { rtp_channel, .. } => {
            let mut framed = BytesMut::new();
            if encode_interleaved(rtp_channel, &packet, &mut framed).is_ok() {
                io.push_back(Output::Transmit(framed.freeze()));
            }
        }
        TransportKind::Udp {
            server_ports: Some((rtp, _)),
            ..
        } => io.push_back(Output::SendDatagram {
            socket: UdpSocketId::rtp(track as u16),
            to: std::net::SocketAddr::new(peer_ip, rtp),
            data: packet.freeze(),
        }),
        // No server port to send to (multicast has no backchannel).
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_mixes_down_checks_rates_and_refuses_after_close() {
        let a = BackchannelAudio::new();
        a.push_pcm(&[100, 300, -4, -6], 8000, 2).unwrap();
        assert_eq!(a.queued(), 2);
        assert_eq!(
            a.push_pcm(&[1], 16000, 1),
            Err(BackchannelError::RateChanged {
                expected: 8000,
                got: 16000
            })
        );
        assert_eq!(a.push_pcm(&[1], 0, 1), Err(BackchannelError::BadFormat));
        a.push_g711(BackchannelCodec::Pcmu, &[0xff, 0x80]).unwrap();
        let mut out = Vec::new();
        assert!(!a.take(10, &mut out));
        assert_eq!(out, [200, -5, 0, 32124]);
        a.close();
        assert_eq!(a.push_pcm(&[1], 8000, 1), Err(BackchannelError::Closed));
        assert!(a.is_done());
        assert_eq!(a.sent(), 4);
        assert!(format!("{a:?}").contains("sent: 4"));
    }

    #[test]
    fn g711_codes_come_back_unchanged() {
        for codec in [BackchannelCodec::Pcmu, BackchannelCodec::Pcma] {
            let codes: Vec<u8> = (0..=255u8)
                .filter(|&c| !(codec == BackchannelCodec::Pcmu && c == 0x7f))
                .collect();
            let a = BackchannelAudio::new();
            a.push_g711(codec, &codes).unwrap();
            let mut pcm = Vec::new();
            a.take(usize::MAX, &mut pcm);
            let mut out = BytesMut::new();
            Encoder::new(codec).encode(&pcm, &mut out);
            assert_eq!(&out[..], &codes[..], "{codec:?}");
        }
    }

    #[test]
    fn the_resampler_converts_without_drift() {
        let mut r = Resampler::default();
        // 44.1 kHz in, 8 kHz out, 160 samples a packet, for 100 packets.
        let mut taken = 0;
        for _ in 0..100 {
            taken += r.input_for(160, 44_100, 8_000);
        }
        assert_eq!(taken, 88_200, "exactly 2 s of input for 2 s of output");
        // 8 kHz to 16 kHz: a ramp stays a ramp, halfway points in between.
        let mut r = Resampler::default();
        let out = r.convert(&[100, 200, 300, 400], 8).to_vec();
        assert_eq!(out, [50, 100, 150, 200, 250, 300, 350, 400]);
        let next = r.convert(&[500, 600], 4).to_vec();
        assert_eq!(next, [450, 500, 550, 600], "continues from the last sample");
        // 16 kHz to 8 kHz: every other sample (interpolated exactly on them).
        let mut r = Resampler::default();
        assert_eq!(r.convert(&[1, 2, 3, 4, 5, 6], 3), [2, 4, 6]);
    }

    #[test]
    fn the_offered_sections_parse_back_to_what_the_client_sends() {
        for codec in [
            BackchannelCodec::Pcmu,
            BackchannelCodec::Pcma,
            BackchannelCodec::G722,
            BackchannelCodec::Aac,
            BackchannelCodec::AacLatm,
        ] {
            let text = format!("v=0\r\n{}", codec.offer("trackID=3"));
            let sdp = crate::sdp::Sdp::parse(text.as_bytes()).unwrap();
            assert_eq!(sdp.media[0], codec.offered_media("trackID=3"), "{text}");
            assert!(is_backchannel(&sdp.media[0]));
            assert_eq!(BackchannelCodec::from_media(&sdp.media[0]), Some(codec));
        }
        let aac = aac_config(&BackchannelCodec::Aac.offered_media("x")).unwrap();
        assert_eq!((aac.sample_rate, aac.channels, aac.frame_length), (16000, 1, 1024));
        let latm = aac_config(&BackchannelCodec::AacLatm.offered_media("x")).unwrap();
        assert_eq!(latm, aac, "the same audio either way");
        assert_eq!(
            BackchannelCodec::Aac.offer("trackID=2"),
            "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/16000/1\r\n\
             a=fmtp:96 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizelength=13;indexlength=3;indexdeltalength=3\r\n\
             a=control:trackID=2\r\na=sendonly\r\n"
        );
    }

    #[test]
    fn latm_payloads_length_prefix_the_access_unit_and_fragment() {
        assert_eq!(&latm_payloads(&[7; 3])[..], [Bytes::from_static(&[3, 7, 7, 7])]);
        let au = vec![1u8; 600];
        let p = latm_payloads(&au);
        assert_eq!(p.len(), 1);
        assert_eq!(&p[0][..4], [255, 255, 90, 1]);
        assert_eq!(p[0].len(), 603);
        let big = vec![2u8; 3000];
        let p = latm_payloads(&big);
        assert_eq!(p.iter().map(Bytes::len).collect::<Vec<_>>(), [1400, 1400, 212]);
        let all = p.concat();
        assert!(
            all[..11].iter().all(|&b| b == 255) && all[11] == 195,
            "11 × 255 + 195 = 3000"
        );
        assert!(all[12..] == big[..], "then the AU");
    }

    #[test]
    fn g722_sends_16_khz_audio_on_an_8000_hz_clock() {
        let sdp = crate::sdp::Sdp::parse(b"v=0\r\nm=audio 0 RTP/AVP 9\r\na=sendonly\r\n").unwrap();
        let media = &sdp.media[0];
        let codec = BackchannelCodec::from_media(media).unwrap();
        assert_eq!((codec, codec.sample_rate(media)), (BackchannelCodec::G722, 16000));
        // 20 ms of a 1 kHz tone: 320 samples, 160 codes, 160 clock ticks.
        let tone: Vec<i16> = (0..3200)
            .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI / 16.0).sin() * 8000.0) as i16)
            .collect();
        let mut e = Encoder::new(codec);
        let mut codes = BytesMut::new();
        for chunk in tone.chunks(320) {
            let before = codes.len();
            assert_eq!(e.encode(chunk, &mut codes), 160);
            assert_eq!(codes.len() - before, 160);
        }
        // The packets decode back to the tone (the codec delays it a little).
        let mut back = Vec::new();
        g722::Decoder::new().decode(&codes, &mut back);
        assert_eq!(back.len(), tone.len());
        let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        let (sent, got) = (energy(&tone[800..]), energy(&back[800..]));
        assert!((got / sent - 1.0).abs() < 0.2, "{got} vs {sent}");
        assert_eq!(
            BackchannelAudio::new().push_g711(codec, &[0]),
            Err(BackchannelError::BadFormat)
        );
    }
}
