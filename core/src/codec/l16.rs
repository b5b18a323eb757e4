//! L16 audio (RFC 3551 §4.5.11): uncompressed 16-bit linear PCM, RTP
//! depacketizer and packetizer.
//!
//! A payload is a whole number of sample frames, each one signed 16-bit
//! big-endian sample per channel (interleaved). Any rate and channel count
//! is allowed: they come from `a=rtpmap` (`L16/44100/2`), or from the static
//! payload types 10 (44.1 kHz stereo) and 11 (44.1 kHz mono). The
//! [`Depacketizer`] emits one [`AudioFrame`] per packet whose `data` is the
//! payload itself (big-endian, no copy); [`to_native`] converts it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// RTP depacketizer for `L16`: one [`AudioFrame`] per packet.
///
/// `sample_rate` is the RTP clock rate, `channels` the rtpmap's channel
/// count (1 when absent), `sample_count` the payload length divided by
/// 2 × channels. A payload that is not a whole number of sample frames is
/// refused with [`DepacketizeError::Malformed`].
#[derive(Debug)]
pub struct Depacketizer {
    sample_rate: u32,
    channels: u16,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

impl Depacketizer {
    /// A depacketizer for an `L16` track.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for any other codec, or an L16
    /// track without a clock rate.
    pub fn new(media: &Media) -> Result<Self, SetupError> {
        if !media.codec_is("L16") || media.clock_rate == 0 {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        }
        Ok(Depacketizer {
            sample_rate: media.clock_rate,
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
    /// [`DepacketizeError::Malformed`] for one that is not a whole number
    /// of sample frames (its loss count is kept for the next frame).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.loss = self.loss.saturating_add(lost);
        let len = packet.payload.len();
        if len == 0 {
            return Err(DepacketizeError::Empty { codec: "L16" });
        }
        let frame_bytes = 2 * usize::from(self.channels);
        if len % frame_bytes != 0 {
            return Err(DepacketizeError::Malformed {
                codec: "L16",
                what: format!(
                    "{len} bytes is not a whole number of {}-channel 16-bit sample frames",
                    self.channels
                ),
            });
        }
        self.frames.push_back(AudioFrame {
            codec: AudioCodec::L16,
            timestamp: packet.timestamp,
            data: packet.payload.clone(),
            sample_count: u32::try_from(len / frame_bytes).unwrap_or(u32::MAX),
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

/// Appends the samples of the big-endian L16 bytes `data` to `out` (a
/// trailing odd byte is ignored).
///
/// ```
/// let mut out = Vec::new();
/// rtsp_toolkit_core::codec::l16::to_native(&[0x01, 0x02, 0xff, 0xfe], &mut out);
/// assert_eq!(out, [0x0102, -2]);
/// ```
pub fn to_native(data: &[u8], out: &mut Vec<i16>) {
    out.extend(data.chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])));
}

/// Appends `samples` to `out` as big-endian L16 bytes.
pub fn from_native(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().flat_map(|s| s.to_be_bytes()));
}

/// Cuts big-endian L16 audio into RTP payloads for a server: each payload
/// holds at most `max_payload` bytes, rounded down to whole sample frames
/// (at least one frame), and never splits a sample frame.
#[derive(Debug, Clone)]
pub struct Packetizer {
    frame_bytes: usize,
    frames_per_packet: usize,
}

impl Packetizer {
    /// A packetizer for `channels`-channel audio (0 is taken as 1), making
    /// payloads of up to `max_payload` bytes.
    pub fn new(channels: u16, max_payload: usize) -> Self {
        let frame_bytes = 2 * usize::from(channels.max(1));
        Packetizer {
            frame_bytes,
            frames_per_packet: (max_payload / frame_bytes).max(1),
        }
    }

    /// Sample frames per full payload.
    pub fn frames_per_packet(&self) -> usize {
        self.frames_per_packet
    }

    /// The payloads of `data` (views of it, no copy) with how far each
    /// one's RTP timestamp is after `data`'s first sample, in samples.
    /// Trailing bytes short of a whole sample frame are dropped.
    pub fn packetize(&self, data: &Bytes) -> Vec<(u32, Bytes)> {
        let whole = data.len() - data.len() % self.frame_bytes;
        let step = self.frames_per_packet * self.frame_bytes;
        (0..whole)
            .step_by(step)
            .map(|off| {
                let ticks = u32::try_from(off / self.frame_bytes).unwrap_or(u32::MAX);
                (ticks, data.slice(off..(off + step).min(whole)))
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
    fn static_payload_types() {
        let m10 = media(b"v=0\r\nm=audio 0 RTP/AVP 10\r\n");
        let mut d = Depacketizer::new(&m10).unwrap();
        d.push(&audio_packet(1, 441, false, vec![0u8; 1764]), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.codec, AudioCodec::L16);
        assert_eq!((f.sample_count, f.sample_rate, f.channels), (441, 44100, 2));
        let m11 = media(b"v=0\r\nm=audio 0 RTP/AVP 11\r\n");
        let mut d = Depacketizer::new(&m11).unwrap();
        d.push(&audio_packet(1, 441, false, vec![0u8; 882]), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.sample_count, f.sample_rate, f.channels), (441, 44100, 1));
    }

    #[test]
    fn any_rate_and_channels() {
        let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 L16/22050/6\r\n")).unwrap();
        d.push(&audio_packet(1, 0, false, vec![0u8; 12 * 10]), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.sample_count, f.sample_rate, f.channels), (10, 22050, 6));
        assert!(matches!(
            d.push(&audio_packet(2, 10, false, vec![0u8; 13]), 2),
            Err(DepacketizeError::Malformed { codec: "L16", .. })
        ));
        assert!(matches!(
            d.push(&audio_packet(3, 10, false, vec![0u8; 14]), 0),
            Err(DepacketizeError::Malformed { codec: "L16", .. })
        ));
        assert_eq!(
            d.push(&audio_packet(4, 10, false, Bytes::new()), 0),
            Err(DepacketizeError::Empty { codec: "L16" })
        );
        d.push(&audio_packet(5, 20, false, vec![0u8; 12]), 0).unwrap();
        assert_eq!(d.pull().unwrap().loss, 2);
        assert!(Depacketizer::new(&audio_media("a=rtpmap:97 L16/0\r\n")).is_err());
        assert!(Depacketizer::new(&audio_media("a=rtpmap:97 L8/8000\r\n")).is_err());
    }

    #[test]
    fn packetize_then_depacketize() {
        let pcm: Vec<i16> = (0..1000).map(|i| (i * 37 - 10000) as i16).collect();
        let mut be = Vec::new();
        from_native(&pcm, &mut be);
        be.push(0x55); // a trailing byte short of a sample frame
        let data = Bytes::from(be);
        let p = Packetizer::new(2, 1401);
        assert_eq!(p.frames_per_packet(), 350);
        let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 L16/48000/2\r\n")).unwrap();
        let base = u32::MAX - 100;
        let payloads = p.packetize(&data);
        assert_eq!(
            payloads.iter().map(|(t, b)| (*t, b.len())).collect::<Vec<_>>(),
            [(0, 1400), (350, 600)]
        );
        for (i, (ticks, payload)) in payloads.into_iter().enumerate() {
            d.push(&audio_packet(i as u16, base.wrapping_add(ticks), false, payload), 0)
                .unwrap();
        }
        let frames: Vec<_> = std::iter::from_fn(|| d.pull()).collect();
        assert_eq!(
            frames.iter().map(|f| (f.timestamp, f.sample_count)).collect::<Vec<_>>(),
            [(base, 350), (base.wrapping_add(350), 150)]
        );
        let mut back = Vec::new();
        for f in &frames {
            to_native(&f.data, &mut back);
        }
        assert_eq!(back, pcm);
        assert_eq!(Packetizer::new(0, 1).frames_per_packet(), 1);
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(packets in arbitrary_audio_packets(), channels in 1u16..4) {
            let m = audio_media(&format!("a=rtpmap:97 L16/16000/{channels}\r\n"));
            let mut d = Depacketizer::new(&m).unwrap();
            for (ts, marker, payload, lost) in packets {
                let frame = 2 * usize::from(channels);
                let ok = !payload.is_empty() && payload.len() % frame == 0;
                prop_assert_eq!(d.push(&audio_packet(0, ts, marker, payload.clone()), lost).is_ok(), ok);
                while let Some(f) = d.pull() {
                    prop_assert_eq!(f.sample_count as usize, payload.len() / frame);
                }
            }
        }

        #[test]
        fn packetizer_covers_whole_frames(len in 0usize..3000, channels in 0u16..5, max in 0usize..1500) {
            let data = Bytes::from(vec![7u8; len]);
            let p = Packetizer::new(channels, max);
            let frame = 2 * usize::from(channels.max(1));
            let out = p.packetize(&data);
            let total: usize = out.iter().map(|(_, b)| b.len()).sum();
            prop_assert_eq!(total, len - len % frame);
            let mut next = 0u32;
            for (ticks, b) in &out {
                prop_assert_eq!(*ticks, next);
                prop_assert!(b.len() % frame == 0 && !b.is_empty());
                next += (b.len() / frame) as u32;
            }
        }
    }
}
