//! G.722 audio (ITU-T G.722, RTP payload format of RFC 3551 §4.5.2): RTP
//! depacketizer and packetizer, encoder and decoder.
//!
//! G.722 codes 16 kHz audio at 64 kbit/s, one byte per pair of samples,
//! with no framing. For historical reasons its RTP clock rate is 8000 Hz
//! (`a=rtpmap:9 G722/8000`, static payload type 9), so the timestamp moves
//! by one per byte while the audio has two samples per byte. The
//! [`Depacketizer`] therefore emits frames whose `sample_rate` is 16000 and
//! whose `sample_count` is twice the byte count (per channel), while their
//! `timestamp` stays in the 8000 Hz RTP clock. `data` is the payload itself
//! (no copy).
//!
//! The codec itself is here too, like G.711's conversions: [`Encoder`] and
//! [`Decoder`] implement 64 kbit/s G.722 (mode 1) in the Recommendation's
//! fixed-point arithmetic, bit for bit as FFmpeg's codec (which passes the
//! ITU-T test sequences; the conformance tests compare both ways). No
//! maintained crate was small enough to depend on: the one found on
//! crates.io (`ezk-g722`) brings an async media framework with it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// The RTP clock rate of G.722 (RFC 3551 §4.5.2), half its sample rate.
pub const CLOCK_RATE: u32 = 8000;
/// The audio sample rate of G.722.
pub const SAMPLE_RATE: u32 = 16_000;

/// RTP depacketizer for `G722`: one [`AudioFrame`] per packet.
///
/// `channels` is the rtpmap's channel count (1 when absent); the bytes of
/// several channels are interleaved, so a payload must be a whole number of
/// bytes per channel, else [`DepacketizeError::Malformed`].
#[derive(Debug)]
pub struct Depacketizer {
    channels: u16,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

impl Depacketizer {
    /// A depacketizer for a `G722` track.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for any other codec.
    pub fn new(media: &Media) -> Result<Self, SetupError> {
        if !media.codec_is("G722") {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        }
        Ok(Depacketizer {
            channels: media.channels.unwrap_or(1).max(1),
            loss: 0,
            frames: VecDeque::new(),
        })
    }

    /// Feeds one packet; `lost` is how many packets are missing right
    /// before it.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`] for an empty payload,
    /// [`DepacketizeError::Malformed`] for a length that is not a multiple
    /// of the channel count (its loss count is kept for the next frame).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.loss = self.loss.saturating_add(lost);
        let len = packet.payload.len();
        if len == 0 {
            return Err(DepacketizeError::Empty { codec: "G722" });
        }
        let channels = usize::from(self.channels);
        if len % channels != 0 {
            return Err(DepacketizeError::Malformed {
                codec: "G722",
                what: format!("{len} bytes is not a whole number of {channels}-channel samples"),
            });
        }
        self.frames.push_back(AudioFrame {
            codec: AudioCodec::G722,
            timestamp: packet.timestamp,
            data: packet.payload.clone(),
            sample_count: u32::try_from(len / channels * 2).unwrap_or(u32::MAX),
            sample_rate: SAMPLE_RATE,
            channels: self.channels,
            loss: std::mem::take(&mut self.loss),
        });
        Ok(())
    }

    /// The next frame, if any. Call until `None` after each push.
    pub fn pull(&mut self) -> Option<AudioFrame> {
        self.frames.pop_front()
    }
}

/// Cuts a mono G.722 byte stream into RTP payloads of at most
/// `max_payload` bytes for a server. The RTP timestamp moves by one per
/// byte (8000 Hz clock).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// A packetizer making payloads of up to `max_payload` bytes (0 is
    /// taken as 1). 160 bytes is 20 ms.
    pub fn new(max_payload: usize) -> Self {
        Packetizer {
            max_payload: max_payload.max(1),
        }
    }

    /// The payloads of `data` (views of it, no copy) with how far each
    /// one's RTP timestamp is after `data`'s first byte, in 8000 Hz ticks.
    pub fn packetize(&self, data: &Bytes) -> Vec<(u32, Bytes)> {
        (0..data.len())
            .step_by(self.max_payload)
            .map(|off| {
                let end = (off + self.max_payload).min(data.len());
                (u32::try_from(off).unwrap_or(u32::MAX), data.slice(off..end))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The codec: ITU-T G.722 sub-band ADPCM at 64 kbit/s (mode 1: 6 bits for the
// lower band, 2 for the higher band). Written from the Recommendation's
// block descriptions (QMF, QUANTL/QUANTH, INVQAL/INVQBL/INVQAH,
// LOGSCL/LOGSCH, SCALEL/SCALEH and the pole-zero predictor blocks), in
// its fixed-point arithmetic; names follow the blocks.

/// QMF coefficients h0..h11 (h23..h12 mirror them), scaled by 2^13.
const QMF: [i32; 12] = [3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876];
/// QUANTL decision levels of the 6-bit lower-band quantizer.
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121, 1219, 1339,
    1458, 1612, 1765, 1980, 2195, 2557, 2919,
];
/// INVQBL: 6-bit lower-band reconstruction levels, by code.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576,
    -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040,
    -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
    4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// INVQAL: 4-bit lower-band levels (the code's top 4 bits) for the predictor.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
];
/// LOGSCL: the 4-bit code's magnitude class, and its log scale factor step.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// INVQAH: 2-bit higher-band levels, by code.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// LOGSCH: the 2-bit code's magnitude class, and its log scale factor step.
const RH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];
/// SCALEL/SCALEH: 2^(i/32) scaled by 2^11.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025,
    3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

fn sat16(v: i32) -> i32 {
    v.clamp(-32768, 32767)
}

/// The reconstructed-signal limit of RECONS.
fn sat15(v: i32) -> i32 {
    v.clamp(-16384, 16383)
}

/// The magnitude the quantizers compare (one's complement for negatives).
fn magnitude(v: i32) -> i32 {
    if v >= 0 {
        v
    } else {
        -(v + 1)
    }
}

/// One sub-band's adaptive state: scale factor and pole-zero predictor.
#[derive(Debug, Clone)]
struct Band {
    /// Log scale factor (NBL / NBH).
    nb: i32,
    /// Linear scale factor (DETL / DETH).
    det: i32,
    /// Pole coefficients a1, a2.
    a: [i32; 2],
    /// Zero coefficients b1..b6.
    b: [i32; 6],
    /// Quantized differences d1..d6 (most recent first).
    d: [i32; 6],
    /// Partially reconstructed signals p1, p2 (only their signs matter).
    p: [i32; 2],
    /// Reconstructed signals r1, r2.
    r: [i32; 2],
    /// Zero-section output (SZ) and whole prediction (S) for the next sample.
    sz: i32,
    s: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            nb: 0,
            det,
            a: [0; 2],
            b: [0; 6],
            d: [0; 6],
            p: [0; 2],
            r: [0; 2],
            sz: 0,
            s: 0,
        }
    }

    /// SCALEL (`shift` 8) / SCALEH (`shift` 10): the linear scale factor of `nb`.
    fn scale(&mut self, shift: i32) {
        let wd1 = ILB[((self.nb >> 6) & 31) as usize];
        let n = shift - (self.nb >> 11);
        let wd3 = if n >= 0 { wd1 >> n } else { wd1 << -n };
        self.det = wd3 << 2;
    }

    /// The predictor's update with the quantized difference `dq`: PARREC,
    /// RECONS, UPPOL2, UPPOL1, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC.
    fn update(&mut self, dq: i32) {
        let p = dq + self.sz;
        let r = sat16(self.s + dq);
        let neg = |v: i32| v < 0;
        // UPPOL2
        // a1 limited symmetrically to 14 bits, so that negating it cannot overflow.
        let wd1 = self.a[0].clamp(-8191, 8191) << 2;
        let wd2 = if neg(p) == neg(self.p[0]) { -wd1 } else { wd1 } >> 7;
        let wd3 = if neg(p) == neg(self.p[1]) { 128 } else { -128 };
        let a2 = (wd2 + wd3 + ((self.a[1] * 32512) >> 15)).clamp(-12288, 12288);
        // UPPOL1
        let wd1 = if neg(p) == neg(self.p[0]) { 192 } else { -192 };
        let lim = 15360 - a2;
        let a1 = sat16(wd1 + ((self.a[0] * 32640) >> 15)).clamp(-lim, lim);
        // UPZERO
        let step = if dq == 0 { 0 } else { 128 };
        for (b, &d) in self.b.iter_mut().zip(&self.d) {
            let wd2 = if neg(dq) == neg(d) { step } else { -step };
            *b = sat16(wd2 + ((*b * 32640) >> 15));
        }
        // DELAYA
        self.d.copy_within(0..5, 1);
        self.d[0] = dq;
        self.a = [a1, a2];
        self.p = [p, self.p[0]];
        self.r = [r, self.r[0]];
        // FILTEP, FILTEZ, PREDIC
        let sp = ((self.a[0] * sat16(self.r[0] << 1)) >> 15) + ((self.a[1] * sat16(self.r[1] << 1)) >> 15);
        self.sz = self
            .b
            .iter()
            .zip(&self.d)
            .map(|(&b, &d)| (b * sat16(d << 1)) >> 15)
            .sum::<i32>();
        self.s = sat16(sp + self.sz);
    }

    /// Lower band, after the 6-bit code `il`: the predictor's quantized
    /// difference from its top 4 bits (INVQAL), then LOGSCL and SCALEL.
    fn low_update(&mut self, il: usize) {
        let ril = il >> 2;
        let dq = (self.det * QM4[ril]) >> 15;
        self.nb = (((self.nb * 32512) >> 15) + WL[RL42[ril]]).clamp(0, 18432);
        self.update(dq);
        self.scale(8);
    }

    /// Higher band, after the 2-bit code `ih`: INVQAH, LOGSCH, SCALEH.
    fn high_update(&mut self, ih: usize) {
        let dq = (self.det * QM2[ih]) >> 15;
        self.nb = (((self.nb * 32512) >> 15) + WH[RH2[ih]]).clamp(0, 22528);
        self.update(dq);
        self.scale(10);
    }
}

/// G.722 encoder (64 kbit/s): 16 kHz 16-bit samples in, one byte per pair
/// of samples out (the higher band's 2-bit code in the top bits).
///
/// ```
/// use rtsp_toolkit_core::codec::g722::{Decoder, Encoder};
/// let tone: Vec<i16> = (0..1600).map(|i| ((i as f64 * 0.2).sin() * 8000.0) as i16).collect();
/// let mut codes = Vec::new();
/// Encoder::new().encode(&tone, &mut codes);
/// assert_eq!(codes.len(), 800);
/// let mut back = Vec::new();
/// Decoder::new().decode(&codes, &mut back);
/// assert_eq!(back.len(), 1600);
/// ```
#[derive(Debug, Clone)]
pub struct Encoder {
    low: Band,
    high: Band,
    /// The last 24 input samples, the most recent last.
    x: [i32; 24],
    /// A sample waiting for its pair.
    odd: Option<i16>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder in its reset state.
    pub fn new() -> Self {
        Encoder {
            low: Band::new(32),
            high: Band::new(8),
            x: [0; 24],
            odd: None,
        }
    }

    /// Appends the codes of `samples` to `out`. An odd sample count leaves
    /// the last sample waiting for the next call.
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        let mut rest = samples;
        if let Some(first) = self.odd.take() {
            let Some((&second, tail)) = rest.split_first() else {
                self.odd = Some(first);
                return;
            };
            out.push(self.pair(first, second));
            rest = tail;
        }
        let mut pairs = rest.chunks_exact(2);
        for pair in &mut pairs {
            out.push(self.pair(pair[0], pair[1]));
        }
        self.odd = pairs.remainder().first().copied();
    }

    /// Encodes two samples (the earlier first).
    fn pair(&mut self, x0: i16, x1: i16) -> u8 {
        // Transmit QMF: even taps on x(j), x(j-2), ..., odd taps on x(j-1), ...
        self.x.copy_within(2.., 0);
        self.x[22] = i32::from(x0);
        self.x[23] = i32::from(x1);
        let (mut xa, mut xb) = (0i64, 0i64);
        for i in 0..12 {
            let h_even = i64::from(QMF[if 2 * i < 12 { 2 * i } else { 23 - 2 * i }]);
            let h_odd = i64::from(QMF[if 2 * i + 1 < 12 { 2 * i + 1 } else { 22 - 2 * i }]);
            xa += h_even * i64::from(self.x[23 - 2 * i]);
            xb += h_odd * i64::from(self.x[22 - 2 * i]);
        }
        let xl = sat16(((xa + xb) >> 14) as i32);
        let xh = sat16(((xa - xb) >> 14) as i32);

        // Lower band: SUBTRA, QUANTL.
        let el = sat16(xl - self.low.s);
        let wd = magnitude(el);
        let k = (1..30)
            .take_while(|&m| wd >= (self.low.det * (Q6[m] << 3)) >> 15)
            .count();
        let il = if el >= 0 {
            61 - k
        } else if k < 2 {
            63 - k
        } else {
            33 - k
        };
        self.low.low_update(il);

        // Higher band: SUBTRA, QUANTH.
        let eh = sat16(xh - self.high.s);
        let large = magnitude(eh) >= (self.high.det * (564 << 3)) >> 15;
        let ih = match (eh >= 0, large) {
            (true, false) => 3,
            (true, true) => 2,
            (false, false) => 1,
            (false, true) => 0,
        };
        self.high.high_update(ih);
        ((ih << 6) | il) as u8
    }
}

/// G.722 decoder (64 kbit/s): one byte in, two 16 kHz 16-bit samples out.
#[derive(Debug, Clone)]
pub struct Decoder {
    low: Band,
    high: Band,
    /// The last 12 differences (RL − RH) and sums (RL + RH), most recent first.
    xd: [i32; 12],
    xs: [i32; 12],
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder in its reset state.
    pub fn new() -> Self {
        Decoder {
            low: Band::new(32),
            high: Band::new(8),
            xd: [0; 12],
            xs: [0; 12],
        }
    }

    /// Appends the two samples of each code of `codes` to `out`.
    pub fn decode(&mut self, codes: &[u8], out: &mut Vec<i16>) {
        out.reserve(codes.len() * 2);
        for &code in codes {
            let (il, ih) = (usize::from(code & 0x3f), usize::from(code >> 6));
            // Lower band: INVQBL with all 6 bits for the output, RECONS.
            let rl = sat15(self.low.s + ((self.low.det * QM6[il]) >> 15));
            self.low.low_update(il);
            // Higher band: INVQAH, RECONS.
            let rh = sat15(self.high.s + ((self.high.det * QM2[ih]) >> 15));
            self.high.high_update(ih);
            // Receive QMF.
            self.xd.copy_within(0..11, 1);
            self.xs.copy_within(0..11, 1);
            self.xd[0] = rl - rh;
            self.xs[0] = rl + rh;
            let (mut x0, mut x1) = (0i64, 0i64);
            for i in 0..12 {
                let h_even = i64::from(QMF[if 2 * i < 12 { 2 * i } else { 23 - 2 * i }]);
                let h_odd = i64::from(QMF[if 2 * i + 1 < 12 { 2 * i + 1 } else { 22 - 2 * i }]);
                x0 += h_even * i64::from(self.xd[i]);
                x1 += h_odd * i64::from(self.xs[i]);
            }
            out.push(sat16((x0 >> 11) as i32) as i16);
            out.push(sat16((x1 >> 11) as i32) as i16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{arbitrary_audio_packets, audio_media, audio_packet, media};
    use proptest::prelude::*;

    #[test]
    fn static_payload_type_9() {
        let mut d = Depacketizer::new(&media(b"v=0\r\nm=audio 0 RTP/AVP 9\r\n")).unwrap();
        let payload = Bytes::from(vec![0x5a; 160]);
        d.push(&audio_packet(1, 160, false, payload.clone()), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.codec, AudioCodec::G722);
        assert_eq!(
            (f.timestamp, f.sample_count, f.sample_rate, f.channels),
            (160, 320, 16000, 1)
        );
        assert_eq!(f.data.as_ptr(), payload.as_ptr(), "zero-copy");
    }

    #[test]
    fn errors_and_channels() {
        let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 G722/8000/2\r\n")).unwrap();
        assert_eq!(
            d.push(&audio_packet(1, 0, false, Bytes::new()), 1),
            Err(DepacketizeError::Empty { codec: "G722" })
        );
        assert!(matches!(
            d.push(&audio_packet(2, 0, false, vec![0u8; 3]), 0),
            Err(DepacketizeError::Malformed { codec: "G722", .. })
        ));
        d.push(&audio_packet(3, 0, false, vec![0u8; 4]), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.sample_count, f.channels, f.loss), (4, 2, 1));
        assert!(Depacketizer::new(&audio_media("a=rtpmap:97 PCMA/8000\r\n")).is_err());
    }

    #[test]
    fn packetize_then_depacketize() {
        let data = Bytes::from((0..500u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
        let p = Packetizer::new(160);
        let mut d = Depacketizer::new(&media(b"v=0\r\nm=audio 0 RTP/AVP 9\r\n")).unwrap();
        let payloads = p.packetize(&data);
        for (i, (ticks, payload)) in payloads.into_iter().enumerate() {
            d.push(&audio_packet(i as u16, 1000 + ticks, false, payload), 0)
                .unwrap();
        }
        let frames: Vec<_> = std::iter::from_fn(|| d.pull()).collect();
        assert_eq!(
            frames.iter().map(|f| (f.timestamp, f.sample_count)).collect::<Vec<_>>(),
            [(1000, 320), (1160, 320), (1320, 320), (1480, 40)]
        );
        // The timestamp moves by half the samples: 8000 Hz clock, 16 kHz audio.
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
        assert_eq!(joined, data);
        assert!(Packetizer::new(0).packetize(&Bytes::new()).is_empty());
    }

    /// Signal-to-noise ratio in dB of `got` against `want` delayed by `delay`.
    fn snr(want: &[i16], got: &[i16], delay: usize) -> f64 {
        let (mut signal, mut noise) = (0f64, 0f64);
        for (w, g) in want.iter().zip(&got[delay..]) {
            let (w, g) = (f64::from(*w), f64::from(*g));
            signal += w * w;
            noise += (w - g) * (w - g);
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    #[test]
    fn codec_round_trip() {
        // Two tones, one in each sub-band, 0.5 s.
        let pcm: Vec<i16> = (0..8000)
            .map(|i| {
                let t = f64::from(i) / 16_000.0;
                ((std::f64::consts::TAU * 700.0 * t).sin() * 12000.0
                    + (std::f64::consts::TAU * 6000.0 * t).sin() * 2000.0) as i16
            })
            .collect();
        let mut codes = Vec::new();
        Encoder::new().encode(&pcm, &mut codes);
        assert_eq!(codes.len(), 4000);
        let mut back = Vec::new();
        Decoder::new().decode(&codes, &mut back);
        assert_eq!(back.len(), 8000);
        // The QMF pair delays the signal by 22 samples.
        let best = (0..40).max_by(|&a, &b| snr(&pcm[..7900], &back, a).total_cmp(&snr(&pcm[..7900], &back, b)));
        assert_eq!(best, Some(22));
        assert!(snr(&pcm[..7900], &back, 22) > 25.0);

        // Any split of the input gives the same codes (an odd sample waits).
        let mut split = Vec::new();
        let mut e = Encoder::new();
        e.encode(&pcm[..101], &mut split);
        e.encode(&pcm[101..102], &mut split);
        e.encode(&[], &mut split);
        e.encode(&pcm[102..], &mut split);
        assert_eq!(split, codes);

        // Full-scale square waves and every code saturate, never overflow.
        let square: Vec<i16> = (0..4000)
            .map(|i| if i / 3 % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let mut codes = Vec::new();
        Encoder::new().encode(&square, &mut codes);
        let all: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        Decoder::new().decode(&codes, &mut back);
        Decoder::new().decode(&all, &mut back);
    }

    proptest! {
        #[test]
        fn codec_never_panics(samples in proptest::collection::vec(any::<i16>(), 0..400), codes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut out = Vec::new();
            Encoder::new().encode(&samples, &mut out);
            prop_assert_eq!(out.len(), samples.len() / 2);
            let mut pcm = Vec::new();
            Decoder::new().decode(&codes, &mut pcm);
            prop_assert_eq!(pcm.len(), codes.len() * 2);
        }

        #[test]
        fn arbitrary_packets_never_panic(packets in arbitrary_audio_packets()) {
            let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 G722/8000/3\r\n")).unwrap();
            for (ts, marker, payload, lost) in packets {
                let ok = !payload.is_empty() && payload.len() % 3 == 0;
                prop_assert_eq!(d.push(&audio_packet(0, ts, marker, payload.clone()), lost).is_ok(), ok);
                while let Some(f) = d.pull() {
                    prop_assert_eq!(f.sample_count as usize, payload.len() / 3 * 2);
                }
            }
        }
    }
}
