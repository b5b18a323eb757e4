//! G.711 (ITU-T G.711) A-law and mu-law audio: RTP depacketizer and
//! packetizer (RFC 3551 `PCMA` / `PCMU`), and the sample conversions.
//!
//! G.711 needs no framing: an RTP payload is a run of 8-bit codes, one per
//! sample (interleaved when there are several channels). The
//! [`Depacketizer`] therefore emits one [`AudioFrame`] per packet whose
//! `data` is the packet's payload itself (no copy). The [`Packetizer`] cuts a
//! stream of codes into fixed-size payloads for a server.
//!
//! The conversions follow the segment (piecewise-linear) algorithm of
//! ITU-T G.711 on 16-bit linear PCM:
//!
//! - A-law carries 13 significant bits; decoded values are multiples of 8
//!   in `-32256..=32256`, and [`linear_to_alaw`] ignores the low 3 bits.
//! - mu-law carries 14 significant bits; decoded values are multiples of 4
//!   in `-32124..=32124`, and [`linear_to_ulaw`] ignores the low 2 bits and
//!   clips larger magnitudes.
//!
//! Decoding is a table look-up (tables computed at compile time); encoding
//! is a segment search. Every code decodes to the middle of its
//! quantization interval, so `encode(decode(c)) == c` for every code except
//! mu-law `0x7F` (negative zero), which re-encodes as `0xFF`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// Decodes one A-law code (the even bits inverted) into the 13-bit
/// magnitude scaled to 16 bits, with sign.
const fn alaw_decode_formula(a: u8) -> i16 {
    let a = a ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i16;
    // Interval middles in 13-bit units are 2m+1 (segments 0 and 1 share the
    // step 2) and (2m+33) << (e-1) for e >= 1; scaled by 8 to 16 bits.
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Decodes one mu-law code (all bits inverted) into the 14-bit value scaled
/// to 16 bits, with sign.
const fn ulaw_decode_formula(u: u8) -> i16 {
    const BIAS: i16 = 0x84; // 33 in 14-bit units, times 4
    let u = !u;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i16;
    let biased = ((mantissa << 3) + BIAS) << exponent;
    if u & 0x80 != 0 {
        BIAS - biased
    } else {
        biased - BIAS
    }
}

const fn build_table(ulaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if ulaw {
            ulaw_decode_formula(i as u8)
        } else {
            alaw_decode_formula(i as u8)
        };
        i += 1;
    }
    table
}

/// A-law code → 16-bit linear sample.
const ALAW_TABLE: [i16; 256] = build_table(false);
/// mu-law code → 16-bit linear sample.
const ULAW_TABLE: [i16; 256] = build_table(true);

/// Decodes one G.711 A-law code to a 16-bit linear sample.
///
/// ```
/// use rtsp_toolkit_core::codec::g711::alaw_to_linear;
/// assert_eq!(alaw_to_linear(0xD5), 8);
/// assert_eq!(alaw_to_linear(0x55), -8);
/// assert_eq!(alaw_to_linear(0xAA), 32256);
/// ```
#[inline]
pub fn alaw_to_linear(a: u8) -> i16 {
    ALAW_TABLE[usize::from(a)]
}

/// Decodes one G.711 mu-law code to a 16-bit linear sample.
///
/// ```
/// use rtsp_toolkit_core::codec::g711::ulaw_to_linear;
/// assert_eq!(ulaw_to_linear(0xFF), 0);
/// assert_eq!(ulaw_to_linear(0x80), 32124);
/// assert_eq!(ulaw_to_linear(0x00), -32124);
/// ```
#[inline]
pub fn ulaw_to_linear(u: u8) -> i16 {
    ULAW_TABLE[usize::from(u)]
}

/// Encodes a 16-bit linear sample as a G.711 A-law code (the low 3 bits
/// are below A-law's resolution and ignored).
///
/// ```
/// use rtsp_toolkit_core::codec::g711::linear_to_alaw;
/// assert_eq!(linear_to_alaw(0), 0xD5);
/// assert_eq!(linear_to_alaw(-1), 0x55);
/// assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
/// ```
pub fn linear_to_alaw(pcm: i16) -> u8 {
    // 13-bit value; a negative value v is coded with magnitude -v - 1 so the
    // positive and negative halves are symmetric around -1/2.
    let v = pcm >> 3;
    let (magnitude, sign_mask) = if v >= 0 { (v, 0xD5u8) } else { (-v - 1, 0x55u8) };
    // magnitude is in 0..=4095 (12 bits).
    let magnitude = magnitude as u16;
    // Segment 0 covers 0..32 with step 2; segment s >= 1 covers
    // 2^(s+4)..2^(s+5) with step 2^s.
    let segment = match magnitude {
        0..=0x1f => 0u16,
        m => 16 - m.leading_zeros() as u16 - 5, // position of the top bit, minus 4
    };
    let shift = if segment == 0 { 1 } else { segment };
    let code = (segment << 4) | ((magnitude >> shift) & 0x0f);
    (code as u8) ^ sign_mask
}

/// Encodes a 16-bit linear sample as a G.711 mu-law code (the low 2 bits
/// are below mu-law's resolution and ignored; magnitudes beyond the
/// largest code are clipped).
///
/// ```
/// use rtsp_toolkit_core::codec::g711::linear_to_ulaw;
/// assert_eq!(linear_to_ulaw(0), 0xFF);
/// assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
/// assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
/// ```
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    const BIAS: u16 = 33; // in 14-bit units
    const CLIP: u16 = 8158; // largest magnitude before the bias
    let v = i32::from(pcm >> 2);
    let (magnitude, sign_mask) = if v >= 0 { (v, 0xFFu8) } else { (-v, 0x7Fu8) };
    // Biased magnitude is in 33..=8191 (13 bits): segment s covers
    // 2^(s+5)..2^(s+6) with step 2^(s+1).
    let biased = (magnitude as u16).min(CLIP) + BIAS;
    let segment = 16 - biased.leading_zeros() as u16 - 6;
    let code = (segment << 4) | ((biased >> (segment + 1)) & 0x0f);
    (code as u8) ^ sign_mask
}

/// Appends the linear samples of the A-law codes in `input` to `out`.
pub fn decode_alaw(input: &[u8], out: &mut Vec<i16>) {
    out.extend(input.iter().map(|&a| alaw_to_linear(a)));
}

/// Appends the linear samples of the mu-law codes in `input` to `out`.
pub fn decode_ulaw(input: &[u8], out: &mut Vec<i16>) {
    out.extend(input.iter().map(|&u| ulaw_to_linear(u)));
}

/// Appends the A-law codes of the linear samples in `input` to `out`.
pub fn encode_alaw(input: &[i16], out: &mut Vec<u8>) {
    out.extend(input.iter().map(|&s| linear_to_alaw(s)));
}

/// Appends the mu-law codes of the linear samples in `input` to `out`.
pub fn encode_ulaw(input: &[i16], out: &mut Vec<u8>) {
    out.extend(input.iter().map(|&s| linear_to_ulaw(s)));
}

/// RTP depacketizer for `PCMA` and `PCMU` (RFC 3551 §4.5.14): one
/// [`AudioFrame`] per packet, its `data` being the packet's payload.
///
/// `sample_count` is the payload length divided by the channel count
/// (`a=rtpmap` encoding parameters, 1 when absent), `sample_rate` the RTP
/// clock rate (8000 when the SDP gives none). Since every packet is a whole
/// frame, loss only shows up in [`AudioFrame::loss`].
#[derive(Debug)]
pub struct Depacketizer {
    codec: AudioCodec,
    sample_rate: u32,
    channels: u16,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

impl Depacketizer {
    /// A depacketizer for a `PCMA` or `PCMU` track.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for any other codec.
    pub fn new(media: &Media) -> Result<Self, SetupError> {
        let codec = if media.codec_is("PCMA") {
            AudioCodec::Pcma
        } else if media.codec_is("PCMU") {
            AudioCodec::Pcmu
        } else {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        };
        let sample_rate = if media.clock_rate == 0 { 8000 } else { media.clock_rate };
        let channels = media.channels.unwrap_or(1).max(1);
        Ok(Depacketizer {
            codec,
            sample_rate,
            channels,
            loss: 0,
            frames: VecDeque::new(),
        })
    }

    fn name(&self) -> &'static str {
        match self.codec {
            AudioCodec::Pcmu => "PCMU",
            _ => "PCMA",
        }
    }

    /// Feeds one packet; `lost` is how many packets are missing right
    /// before it.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`] for an empty payload (its loss count is
    /// kept for the next frame).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.loss = self.loss.saturating_add(lost);
        if packet.payload.is_empty() {
            return Err(DepacketizeError::Empty { codec: self.name() });
        }
        let samples = packet.payload.len() / usize::from(self.channels);
        self.frames.push_back(AudioFrame {
            codec: self.codec,
            timestamp: packet.timestamp,
            data: packet.payload.clone(),
            sample_count: u32::try_from(samples).unwrap_or(u32::MAX),
            sample_rate: self.sample_rate,
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

/// Cuts a stream of G.711 codes (mono, one byte per sample) into RTP
/// payloads of a fixed number of samples, for a server.
///
/// Codes are buffered across calls, so any split of the input gives the
/// same payloads. Every payload but the one returned by
/// [`Packetizer::flush`] holds exactly `samples_per_packet` samples; the
/// RTP timestamp of a payload is that of the previous one plus the previous
/// payload's length. G.711 does not use the marker bit (RFC 3551 sets it
/// only on the first packet after silence).
#[derive(Debug, Clone)]
pub struct Packetizer {
    samples_per_packet: usize,
    pending: BytesMut,
}

impl Packetizer {
    /// A packetizer making payloads of `samples_per_packet` codes (160 is
    /// 20 ms at 8 kHz). 0 is taken as 1.
    pub fn new(samples_per_packet: usize) -> Self {
        Packetizer {
            samples_per_packet: samples_per_packet.max(1),
            pending: BytesMut::new(),
        }
    }

    /// Samples per payload.
    pub fn samples_per_packet(&self) -> usize {
        self.samples_per_packet
    }

    /// Appends `codes` and returns every complete payload now available,
    /// in order. Fewer than `samples_per_packet` codes stay buffered.
    pub fn packetize(&mut self, codes: &[u8]) -> Vec<Bytes> {
        self.pending.extend_from_slice(codes);
        let mut out = Vec::with_capacity(self.pending.len() / self.samples_per_packet);
        while self.pending.len() >= self.samples_per_packet {
            out.push(self.pending.split_to(self.samples_per_packet).freeze());
        }
        out
    }

    /// Number of codes buffered, waiting for a full payload.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The buffered codes as a last, short payload; `None` when nothing is
    /// buffered.
    pub fn flush(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Sdp;
    use proptest::prelude::*;

    fn media(rtpmap: &str) -> Media {
        let text = format!("v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 {rtpmap}\r\n");
        Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
    }

    fn static_media(pt: u8) -> Media {
        let text = format!("v=0\r\nm=audio 0 RTP/AVP {pt}\r\n");
        Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
    }

    fn packet(seq: u16, ts: u32, payload: &[u8]) -> RtpPacket {
        RtpPacket {
            sequence_number: seq,
            timestamp: ts,
            ssrc: 1,
            marker: false,
            payload_type: 8,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        // Segment boundaries in 13-bit (A-law) / 14-bit (mu-law) units.
        assert_eq!(linear_to_alaw(32 * 8), 0xD5 ^ 0x10);
        assert_eq!(linear_to_alaw(31 * 8), 0xD5 ^ 0x0F);
        assert_eq!(linear_to_ulaw(31 * 4), 0xFF ^ 0x10);
        assert_eq!(linear_to_ulaw(30 * 4), 0xFF ^ 0x0F);
    }

    #[test]
    fn full_code_identity() {
        for code in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A-law {code:#04x}");
            if code != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(code)), code, "mu-law {code:#04x}");
            }
        }
        assert_eq!(linear_to_ulaw(ulaw_to_linear(0x7F)), 0xFF);
    }

    /// Width, in 16-bit units, of the quantization interval of `code`.
    fn alaw_step(code: u8) -> i32 {
        let e = ((code ^ 0x55) >> 4) & 7;
        if e == 0 {
            16
        } else {
            16 << (e - 1)
        }
    }

    fn ulaw_step(code: u8) -> i32 {
        let e = ((!code) >> 4) & 7;
        8 << e
    }

    #[test]
    fn round_trip_all_samples() {
        let (mut prev_a, mut prev_u) = (i16::MIN, i16::MIN);
        for x in i16::MIN..=i16::MAX {
            let a = linear_to_alaw(x);
            let da = alaw_to_linear(a);
            let err = (i32::from(da) - i32::from(x)).abs();
            // Half a step.
            let bound = alaw_step(a) / 2;
            assert!(err <= bound, "A-law {x}: {da} err {err} > {bound}");
            assert!(da >= prev_a, "A-law not monotonic at {x}");
            prev_a = da;

            let u = linear_to_ulaw(x);
            let du = ulaw_to_linear(u);
            let err = (i32::from(du) - i32::from(x)).abs();
            // Half a step (plus the 2-bit truncation), and what is clipped.
            let bound = ulaw_step(u) / 2 + 4 + (i32::from(x).abs() - 32124 - 512).max(0);
            assert!(err <= bound, "mu-law {x}: {du} err {err} > {bound}");
            assert!(du >= prev_u, "mu-law not monotonic at {x}");
            prev_u = du;
        }
    }

    #[test]
    fn slices() {
        let pcm = [0i16, 1000, -1000, i16::MAX, i16::MIN];
        let mut a = Vec::new();
        encode_alaw(&pcm, &mut a);
        let mut u = Vec::new();
        encode_ulaw(&pcm, &mut u);
        assert_eq!(a.len(), 5);
        let mut back = vec![7];
        decode_alaw(&a, &mut back);
        assert_eq!(back.len(), 6);
        assert_eq!(back[0], 7);
        assert_eq!(back[1..], a.iter().map(|&c| alaw_to_linear(c)).collect::<Vec<_>>()[..]);
        let mut back = Vec::new();
        decode_ulaw(&u, &mut back);
        assert_eq!(back, u.iter().map(|&c| ulaw_to_linear(c)).collect::<Vec<_>>());
    }

    #[test]
    fn depacketize() {
        let mut d = Depacketizer::new(&static_media(8)).unwrap();
        let p = packet(1, 160, &[0xD5; 160]);
        d.push(&p, 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.codec, AudioCodec::Pcma);
        assert_eq!(f.timestamp, 160);
        assert_eq!(f.sample_count, 160);
        assert_eq!(f.sample_rate, 8000);
        assert_eq!(f.channels, 1);
        assert_eq!(f.loss, 0);
        assert_eq!(f.data.as_ptr(), p.payload.as_ptr(), "zero-copy");
        assert_eq!(d.pull(), None);

        assert_eq!(
            d.push(&packet(3, 480, &[]), 1),
            Err(DepacketizeError::Empty { codec: "PCMA" })
        );
        assert_eq!(d.pull(), None);
        d.push(&packet(5, 800, &[0xD5; 80]), 1).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.loss, f.sample_count), (2, 80));
        d.push(&packet(6, 880, &[0xD5; 80]), 0).unwrap();
        assert_eq!(d.pull().unwrap().loss, 0);

        let mut d = Depacketizer::new(&static_media(0)).unwrap();
        d.push(&packet(1, 0, &[0xFF; 20]), 0).unwrap();
        assert_eq!(d.pull().unwrap().codec, AudioCodec::Pcmu);

        let mut d = Depacketizer::new(&media("pcmu/16000/2")).unwrap();
        d.push(&packet(1, 0, &[0xFF; 20]), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.sample_count, f.sample_rate, f.channels), (10, 16000, 2));

        assert!(matches!(
            Depacketizer::new(&media("L16/8000")),
            Err(SetupError::UnsupportedCodec(_))
        ));
    }

    #[test]
    fn packetizer() {
        let mut p = Packetizer::new(160);
        assert!(p.packetize(&[1; 100]).is_empty());
        assert_eq!(p.pending_len(), 100);
        let out = p.packetize(&[2; 400]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|b| b.len() == 160));
        assert_eq!(out[0][..100], [1; 100]);
        assert_eq!(out[0][100..], [2; 60]);
        assert_eq!(p.flush().unwrap().len(), 20);
        assert_eq!(p.flush(), None);
        assert_eq!(Packetizer::new(0).samples_per_packet(), 1);
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(
            packets in proptest::collection::vec(
                (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300), 0u32..4),
                0..20,
            ),
        ) {
            let mut d = Depacketizer::new(&media("PCMU/8000/3")).unwrap();
            for (seq, ts, marker, payload, lost) in packets {
                let mut p = packet(seq, ts, &payload);
                p.marker = marker;
                let r = d.push(&p, lost);
                prop_assert_eq!(r.is_err(), payload.is_empty());
                while let Some(f) = d.pull() {
                    prop_assert_eq!(f.data.len(), payload.len());
                    prop_assert_eq!(f.sample_count as usize, payload.len() / 3);
                }
            }
        }

        #[test]
        fn packetizer_split_independent(data in proptest::collection::vec(any::<u8>(), 0..2000), split in 0usize..2000, n in 1usize..400) {
            let split = split.min(data.len());
            let mut p = Packetizer::new(n);
            let mut out = p.packetize(&data[..split]);
            out.extend(p.packetize(&data[split..]));
            out.extend(p.flush());
            let joined: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
            prop_assert_eq!(joined, data.clone());
            prop_assert!(out.iter().rev().skip(1).all(|b| b.len() == n));
        }
    }
}
