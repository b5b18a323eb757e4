//! G.726 audio (ITU-T G.726 ADPCM, RTP payload format of RFC 3551 §4.5.4):
//! RTP depacketizer.
//!
//! G.726 codes 8 kHz audio in 2, 3, 4 or 5 bits a sample (16, 24, 32 or
//! 40 kbit/s), named by its rate: `G726-16`, `G726-24`, `G726-32`,
//! `G726-40` (RFC 3551 packing: the first code in the least significant
//! bits of the first octet), or `AAL2-G726-16` ... `AAL2-G726-40` (ITU-T
//! I.366.2 packing: the first code in the most significant bits). A payload
//! is a whole number of octets of codes with no framing, so the
//! [`Depacketizer`] emits one [`AudioFrame`] per packet whose `data` is the
//! payload itself, `sample_count` its bit length divided by the code size,
//! and `sample_rate` the RTP clock rate (8000). This crate does not decode
//! G.726: the code size is in [`Depacketizer::bits`] (and in the encoding
//! name) for a decoder.

use std::collections::VecDeque;

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// RTP depacketizer for `G726-*` and `AAL2-G726-*`: one [`AudioFrame`] per
/// packet. Mono only (RFC 3551 defines no interleaving of G.726 channels);
/// a payload that is not a whole number of codes is refused with
/// [`DepacketizeError::Malformed`].
#[derive(Debug)]
pub struct Depacketizer {
    bits: u8,
    sample_rate: u32,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

/// The code size in bits of a G.726 encoding name, if it is one.
///
/// ```
/// use rtsp_toolkit_core::codec::g726::code_bits;
/// assert_eq!(code_bits("G726-32"), Some(4));
/// assert_eq!(code_bits("aal2-g726-40"), Some(5));
/// assert_eq!(code_bits("G726-64"), None);
/// ```
pub fn code_bits(encoding: &str) -> Option<u8> {
    let upper = encoding.to_ascii_uppercase();
    let rate = upper.strip_prefix("AAL2-").unwrap_or(&upper).strip_prefix("G726-")?;
    Some(match rate {
        "16" => 2,
        "24" => 3,
        "32" => 4,
        "40" => 5,
        _ => return None,
    })
}

impl Depacketizer {
    /// A depacketizer for a G.726 track.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for any other codec, or for more
    /// than one channel.
    pub fn new(media: &Media) -> Result<Self, SetupError> {
        let Some(bits) = code_bits(&media.codec) else {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        };
        if media.channels.unwrap_or(1) > 1 {
            return Err(SetupError::UnsupportedCodec(format!(
                "{} with {} channels",
                media.codec,
                media.channels.unwrap_or(1)
            )));
        }
        Ok(Depacketizer {
            bits,
            sample_rate: if media.clock_rate == 0 { 8000 } else { media.clock_rate },
            loss: 0,
            frames: VecDeque::new(),
        })
    }

    /// Bits per code: 2, 3, 4 or 5.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Feeds one packet; `lost` is how many packets are missing right
    /// before it.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`] for an empty payload,
    /// [`DepacketizeError::Malformed`] for one whose bit length is not a
    /// multiple of the code size (its loss count is kept for the next frame).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.loss = self.loss.saturating_add(lost);
        let len = packet.payload.len();
        if len == 0 {
            return Err(DepacketizeError::Empty { codec: "G726" });
        }
        let bits = len.saturating_mul(8);
        if bits % usize::from(self.bits) != 0 {
            return Err(DepacketizeError::Malformed {
                codec: "G726",
                what: format!("{len} bytes is not a whole number of {}-bit codes", self.bits),
            });
        }
        self.frames.push_back(AudioFrame {
            codec: AudioCodec::G726,
            timestamp: packet.timestamp,
            data: packet.payload.clone(),
            sample_count: u32::try_from(bits / usize::from(self.bits)).unwrap_or(u32::MAX),
            sample_rate: self.sample_rate,
            channels: 1,
            loss: std::mem::take(&mut self.loss),
        });
        Ok(())
    }

    /// The next frame, if any. Call until `None` after each push.
    pub fn pull(&mut self) -> Option<AudioFrame> {
        self.frames.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{arbitrary_audio_packets, audio_media, audio_packet};
    use bytes::Bytes;
    use proptest::prelude::*;

    #[test]
    fn every_rate() {
        for (name, bytes, samples) in [
            ("G726-16", 40, 160),
            ("G726-24", 60, 160),
            ("G726-32", 80, 160),
            ("G726-40", 100, 160),
            ("AAL2-G726-32", 80, 160),
        ] {
            let mut d = Depacketizer::new(&audio_media(&format!("a=rtpmap:97 {name}/8000\r\n"))).unwrap();
            let payload = Bytes::from(vec![0x5a; bytes]);
            d.push(&audio_packet(1, 160, false, payload.clone()), 0).unwrap();
            let f = d.pull().unwrap();
            assert_eq!(f.codec, AudioCodec::G726);
            assert_eq!(
                (f.sample_count, f.sample_rate, f.channels),
                (samples, 8000, 1),
                "{name}"
            );
            assert_eq!(f.data.as_ptr(), payload.as_ptr(), "zero-copy");
        }
    }

    #[test]
    fn errors() {
        let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 G726-24/8000\r\n")).unwrap();
        assert_eq!(d.bits(), 3);
        assert_eq!(
            d.push(&audio_packet(1, 0, false, Bytes::new()), 1),
            Err(DepacketizeError::Empty { codec: "G726" })
        );
        assert!(matches!(
            d.push(&audio_packet(2, 0, false, vec![0u8; 4]), 0),
            Err(DepacketizeError::Malformed { codec: "G726", .. })
        ));
        d.push(&audio_packet(3, 0, false, vec![0u8; 6]), 0).unwrap();
        assert_eq!(d.pull().map(|f| (f.sample_count, f.loss)), Some((16, 1)));
        assert!(Depacketizer::new(&audio_media("a=rtpmap:97 G726-32/8000/2\r\n")).is_err());
        assert!(Depacketizer::new(&audio_media("a=rtpmap:97 G726/8000\r\n")).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(packets in arbitrary_audio_packets()) {
            let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 G726-40/8000\r\n")).unwrap();
            for (ts, marker, payload, lost) in packets {
                let ok = !payload.is_empty() && payload.len() * 8 % 5 == 0;
                prop_assert_eq!(d.push(&audio_packet(0, ts, marker, payload.clone()), lost).is_ok(), ok);
                while let Some(f) = d.pull() {
                    prop_assert_eq!(f.sample_count as usize, payload.len() * 8 / 5);
                }
            }
        }
    }
}
