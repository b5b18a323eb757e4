//! G.722 audio (ITU-T G.722, RTP payload format of RFC 3551 §4.5.2): RTP
//! depacketizer and packetizer.
//!
//! G.722 codes 16 kHz audio at 64 kbit/s, one byte per pair of samples,
//! with no framing. For historical reasons its RTP clock rate is 8000 Hz
//! (`a=rtpmap:9 G722/8000`, static payload type 9), so the timestamp moves
//! by one per byte while the audio has two samples per byte. The
//! [`Depacketizer`] therefore emits frames whose `sample_rate` is 16000 and
//! whose `sample_count` is twice the byte count (per channel), while their
//! `timestamp` stays in the 8000 Hz RTP clock. `data` is the payload itself
//! (no copy); this crate does not decode G.722.

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

    proptest! {
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
