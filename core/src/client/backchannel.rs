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
//! 8000 Hz RTP clock; a new codec adds a variant, its
//! [`BackchannelCodec::from_media`] match arm and its encoding in the
//! module's `Encoder`). While the queue is
//! open and empty, time goes on: the next packet's timestamp leaves the gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{Client, Event, Output, TransportKind, Warning};
use crate::codec::{g711, g722};
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

/// The codecs the backchannel can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackchannelCodec {
    /// G.711 mu-law (`PCMU`).
    Pcmu,
    /// G.711 A-law (`PCMA`).
    Pcma,
    /// G.722 (`G722`, RFC 3551): 16 kHz audio, RTP clock 8000.
    G722,
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
        } else {
            None
        }
    }

    /// Samples per second the codec takes (G.711: its RTP clock rate, 8000
    /// when the SDP gives none; G.722: 16000, whatever its clock says).
    fn sample_rate(self, media: &Media) -> u32 {
        match self {
            BackchannelCodec::Pcmu | BackchannelCodec::Pcma => {
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
            BackchannelCodec::Pcmu | BackchannelCodec::Pcma => samples as u32,
        }
    }
}

/// A backchannel track's encoder (G.722 keeps state from packet to packet).
#[derive(Debug)]
struct Encoder {
    codec: BackchannelCodec,
    g722: g722::Encoder,
    codes: Vec<u8>,
}

impl Encoder {
    fn new(codec: BackchannelCodec) -> Encoder {
        Encoder {
            codec,
            g722: g722::Encoder::new(),
            codes: Vec::new(),
        }
    }

    /// Appends the encoded `pcm` (mono) to `out`; the RTP timestamp
    /// advances by the return value.
    fn encode(&mut self, pcm: &[i16], out: &mut BytesMut) -> u32 {
        match self.codec {
            BackchannelCodec::Pcmu => out.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            BackchannelCodec::Pcma => out.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
            BackchannelCodec::G722 => {
                self.codes.clear();
                self.g722.encode(pcm, &mut self.codes);
                out.extend_from_slice(&self.codes);
            }
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

#[derive(Debug, Default)]
struct Queue {
    /// Mono samples at `rate`.
    pcm: VecDeque<i16>,
    rate: Option<u32>,
    closed: bool,
    sent: u64,
}

impl std::fmt::Debug for BackchannelAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.lock();
        f.debug_struct("BackchannelAudio")
            .field("queued", &q.pcm.len())
            .field("rate", &q.rate)
            .field("closed", &q.closed)
            .field("sent", &q.sent)
            .finish()
    }
}

impl BackchannelAudio {
    /// An empty, open queue.
    pub fn new() -> BackchannelAudio {
        BackchannelAudio::default()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every change is a few field updates: the queue stays consistent
        // even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues 16-bit PCM, `channels` interleaved (mixed down to mono), at
    /// `sample_rate`, which must be the rate of the audio queued before. The
    /// session converts it to the backchannel codec's rate (8000 for G.711,
    /// 16000 for G.722) by linear interpolation when they differ.
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
            BackchannelCodec::G722 => return Err(BackchannelError::BadFormat),
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
        self.pacer = Some(Pacer {
            track: i,
            encoder: Encoder::new(codec),
            rate,
            payload_type: media.payload_type,
            ssrc: self.udp.ssrc(),
            seq: r as u16,
            timestamp: (r >> 32) as u32,
            next_at: Some(now),
            idle: true,
            audio,
            scratch: Vec::new(),
            resampler: Resampler::default(),
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
            let track = p.track;
            let t = &self.tracks[track].track;
            match t.transport {
                TransportKind::TcpInterleaved { rtp_channel, .. } => {
                    let mut framed = BytesMut::new();
                    if encode_interleaved(rtp_channel, &packet, &mut framed).is_ok() {
                        self.io.push_back(Output::Transmit(framed.freeze()));
                    }
                }
                TransportKind::Udp {
                    server_ports: Some((rtp, _)),
                    ..
                } => self.io.push_back(Output::SendDatagram {
                    socket: UdpSocketId::rtp(track as u16),
                    to: std::net::SocketAddr::new(self.udp.peer_ip(), rtp),
                    data: packet.freeze(),
                }),
                // No server port to send to (multicast has no backchannel).
                _ => {}
            }
        }
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
