//! Opus audio (RFC 7587): RTP depacketizer and packetizer, and a bounded
//! reader of the Opus packet's table-of-contents (TOC) byte (RFC 6716 §3.1).
//!
//! An RTP payload is exactly one Opus packet, and one Opus packet is one
//! [`AudioFrame`] here (it may hold up to 48 Opus frames, 120 ms at most:
//! this crate does not split them). The RTP clock is always 48 kHz whatever
//! the encoder's internal bandwidth (RFC 7587 §4.1), so `sample_rate` is
//! 48000 and `sample_count` the packet's duration in 48 kHz samples, read
//! from the TOC byte by [`packet_samples`].
//!
//! The channel count is not in the packet's framing: `a=rtpmap` always says
//! `opus/48000/2` (RFC 7587 §7), and the `stereo` / `sprop-stereo` format
//! parameters say whether the stream is stereo. A track is taken as stereo
//! when either is `1`, else mono.
//!
//! The crate does not decode Opus: `rtsp-toolkit-media` does.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

/// The RTP clock rate of every Opus stream, and the rate of `sample_count`.
pub const CLOCK_RATE: u32 = 48_000;

/// Longest packet duration RFC 6716 §3.2.5 allows: 120 ms at 48 kHz.
pub const MAX_PACKET_SAMPLES: u32 = 5760;

/// Why an Opus packet's framing could not be read (RFC 6716 §3.4's
/// requirements R1 to R7, those that the TOC and frame counts decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TocError {
    /// A zero-length packet (R1).
    #[error("empty packet")]
    Empty,
    /// The packet ends inside its framing (a frame count or length byte is
    /// missing, or the frame lengths run past the end).
    #[error("packet truncated in its framing")]
    Truncated,
    /// A code 1 packet whose two frames cannot be of equal size (R3).
    #[error("code 1 packet with an odd payload length")]
    OddCode1,
    /// A code 3 packet with a frame count of 0 (R5).
    #[error("code 3 packet with no frame")]
    NoFrames,
    /// More than 120 ms of audio in one packet (R5).
    #[error("packet of {0} samples is longer than 120 ms")]
    TooLong(u32),
}

/// Duration of one frame, in 48 kHz samples, of TOC configuration `config`
/// (0 to 31; RFC 6716 §3.1 Table 2).
///
/// ```
/// use rtsp_toolkit_core::codec::opus::frame_samples;
/// assert_eq!(frame_samples(0), 480); // SILK NB 10 ms
/// assert_eq!(frame_samples(3), 2880); // SILK NB 60 ms
/// assert_eq!(frame_samples(13), 960); // Hybrid SWB 20 ms
/// assert_eq!(frame_samples(16), 120); // CELT NB 2.5 ms
/// ```
pub fn frame_samples(config: u8) -> u32 {
    match config & 0x1f {
        // SILK-only: 10, 20, 40, 60 ms.
        c @ 0..=11 => [480, 960, 1920, 2880][usize::from(c % 4)],
        // Hybrid: 10, 20 ms.
        c @ 12..=15 => [480, 960][usize::from(c % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        c => [120, 240, 480, 960][usize::from(c % 4)],
    }
}

/// Whether the TOC byte says the packet is coded in stereo (its `s` bit).
pub fn toc_stereo(toc: u8) -> bool {
    toc & 0x04 != 0
}

/// The duration of the Opus packet `packet`, in 48 kHz samples, from its
/// TOC byte and frame count (RFC 6716 §3.1 and §3.2). The framing is
/// checked as far as it decides the count: the frame count byte and the
/// frame lengths of codes 2 and 3 must fit in the packet; the frames
/// themselves are not decoded.
///
/// ```
/// use rtsp_toolkit_core::codec::opus::{packet_samples, TocError};
/// // Config 1 (SILK NB 20 ms), code 0: one frame.
/// assert_eq!(packet_samples(&[0x08, 0xaa]), Ok(960));
/// // Config 31 (CELT FB 20 ms), code 3 with 3 CBR frames.
/// assert_eq!(packet_samples(&[0xfb, 0x03, 1, 2, 3]), Ok(2880));
/// assert_eq!(packet_samples(&[]), Err(TocError::Empty));
/// ```
pub fn packet_samples(packet: &[u8]) -> Result<u32, TocError> {
    let (&toc, rest) = packet.split_first().ok_or(TocError::Empty)?;
    let per_frame = frame_samples(toc >> 3);
    let frames: u32 = match toc & 0x03 {
        0 => 1,
        1 => {
            // Two frames of equal size: what follows the TOC splits in two.
            if rest.len() % 2 != 0 {
                return Err(TocError::OddCode1);
            }
            2
        }
        2 => {
            // Two frames, the first one's length coded in one or two bytes.
            let (len, used) = frame_length(rest).ok_or(TocError::Truncated)?;
            if used + len > rest.len() {
                return Err(TocError::Truncated);
            }
            2
        }
        _ => {
            let (&count, rest) = rest.split_first().ok_or(TocError::Truncated)?;
            let vbr = count & 0x80 != 0;
            let has_padding = count & 0x40 != 0;
            let m = u32::from(count & 0x3f);
            if m == 0 {
                return Err(TocError::NoFrames);
            }
            let total = m.saturating_mul(per_frame);
            if total > MAX_PACKET_SAMPLES {
                return Err(TocError::TooLong(total));
            }
            check_code3(rest, m as usize, vbr, has_padding)?;
            m
        }
    };
    let total = frames * per_frame;
    if total > MAX_PACKET_SAMPLES {
        return Err(TocError::TooLong(total));
    }
    Ok(total)
}

/// A frame length of RFC 6716 §3.2.1 at the start of `b`: (length, bytes used).
fn frame_length(b: &[u8]) -> Option<(usize, usize)> {
    match *b.first()? {
        n @ 0..=251 => Some((usize::from(n), 1)),
        n => {
            let second = *b.get(1)?;
            Some((usize::from(second) * 4 + usize::from(n), 2))
        }
    }
}

/// Checks the padding and (VBR) frame lengths of a code 3 packet, `rest`
/// being what follows its frame count byte: they must fit (RFC 6716 §3.2.5,
/// R6 and R7).
fn check_code3(mut rest: &[u8], m: usize, vbr: bool, has_padding: bool) -> Result<(), TocError> {
    let mut padding = 0usize;
    if has_padding {
        // Each 255 adds 254 bytes of padding and continues; at most one
        // byte per byte of packet, so the loop is bounded by the length.
        loop {
            let (&p, tail) = rest.split_first().ok_or(TocError::Truncated)?;
            rest = tail;
            if p == 255 {
                padding += 254;
            } else {
                padding += usize::from(p);
                break;
            }
        }
    }
    let mut data = rest.len().checked_sub(padding).ok_or(TocError::Truncated)?;
    if vbr {
        // M-1 lengths; the last frame takes what remains.
        let mut lengths = 0usize;
        for _ in 1..m {
            let (len, used) = frame_length(rest).ok_or(TocError::Truncated)?;
            rest = &rest[used..];
            data = data.checked_sub(used).ok_or(TocError::Truncated)?;
            lengths += len;
        }
        if lengths > data {
            return Err(TocError::Truncated);
        }
    } else if data % m != 0 {
        // CBR: the frames share what remains equally.
        return Err(TocError::Truncated);
    }
    Ok(())
}

/// RTP depacketizer for Opus (RFC 7587): one [`AudioFrame`] per packet,
/// its `data` being the packet's payload (one Opus packet, no copy).
///
/// A payload whose TOC framing is broken is refused with
/// [`DepacketizeError::Malformed`]; its loss count is kept for the next
/// frame.
#[derive(Debug)]
pub struct Depacketizer {
    channels: u16,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

impl Depacketizer {
    /// A depacketizer for an `opus` track.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for any other codec.
    pub fn new(media: &Media) -> Result<Self, SetupError> {
        if !media.codec_is("opus") {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        }
        Ok(Depacketizer {
            channels: channels(media),
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
    /// [`DepacketizeError::Malformed`] for a broken TOC framing.
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.loss = self.loss.saturating_add(lost);
        let sample_count = packet_samples(&packet.payload).map_err(|e| match e {
            TocError::Empty => DepacketizeError::Empty { codec: "OPUS" },
            e => DepacketizeError::Malformed {
                codec: "OPUS",
                what: e.to_string(),
            },
        })?;
        self.frames.push_back(AudioFrame {
            codec: AudioCodec::Opus,
            timestamp: packet.timestamp,
            data: packet.payload.clone(),
            sample_count,
            sample_rate: CLOCK_RATE,
            channels: self.channels,
            loss: std::mem::take(&mut self.loss),
        });
        Ok(())
    }

    /// The next frame, if any. Call until `None` after each push.
    pub fn pull(&mut self) -> Option<AudioFrame> {
        self.frames.pop_front()
    }

    /// The channel count of the track's frames (1 or 2).
    pub fn channels(&self) -> u16 {
        self.channels
    }
}

/// The channel count of an Opus track: 2 when `stereo=1` or
/// `sprop-stereo=1` (RFC 7587 §7.1), else 1 (both default to 0; the
/// rtpmap's `/2` is always there and says nothing).
fn channels(media: &Media) -> u16 {
    let on = |k: &str| media.fmtp_param(k).is_some_and(|v| v.trim() == "1");
    if on("sprop-stereo") || on("stereo") {
        2
    } else {
        1
    }
}

/// Why an Opus packet cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// Its framing is broken (see [`packet_samples`]).
    #[error("Opus packet: {0}")]
    Toc(#[from] TocError),
    /// It does not fit one RTP payload (Opus packets are never fragmented).
    #[error("Opus packet of {len} bytes over the {max}-byte payload limit")]
    TooLarge {
        /// The packet's length.
        len: usize,
        /// The payload limit.
        max: usize,
    },
}

/// Makes RTP payloads of Opus packets for a server: one packet per payload
/// (RFC 7587 §4.2), checked and never split. The RTP timestamp of each is
/// the first sample's, at 48 kHz; the marker bit is not used (RFC 7587
/// sets it only at the start of a talkspurt after DTX).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// A packetizer refusing packets over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Packetizer { max_payload }
    }

    /// The payload for `packet` (the same bytes), and its duration in
    /// 48 kHz samples (how far the next payload's timestamp moves).
    ///
    /// # Errors
    ///
    /// A packet with a broken framing or over the payload limit.
    pub fn packetize(&self, packet: &Bytes) -> Result<(Bytes, u32), PacketizeError> {
        let samples = packet_samples(packet)?;
        if packet.len() > self.max_payload {
            return Err(PacketizeError::TooLarge {
                len: packet.len(),
                max: self.max_payload,
            });
        }
        Ok((packet.clone(), samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{arbitrary_audio_packets, audio_media, audio_packet};
    use proptest::prelude::*;

    #[test]
    fn frame_durations_table() {
        let want = [
            480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, // SILK
            480, 960, 480, 960, // Hybrid
            120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, // CELT
        ];
        for (config, &w) in want.iter().enumerate() {
            assert_eq!(frame_samples(config as u8), w, "config {config}");
        }
    }

    #[test]
    fn frame_counts() {
        // Code 0.
        assert_eq!(packet_samples(&[0xf8]), Ok(960));
        // Code 1: two equal frames.
        assert_eq!(packet_samples(&[0xf9, 1, 2]), Ok(1920));
        assert_eq!(packet_samples(&[0xf9, 1, 2, 3]), Err(TocError::OddCode1));
        // Code 2: first length 1, then 1 byte frame + rest.
        assert_eq!(packet_samples(&[0xfa, 1, 9, 8, 7]), Ok(1920));
        assert_eq!(packet_samples(&[0xfa, 5, 9]), Err(TocError::Truncated));
        assert_eq!(packet_samples(&[0xfa]), Err(TocError::Truncated));
        // Two-byte length: 252 + 4*1 = 256 > what is there.
        assert_eq!(packet_samples(&[0xfa, 252, 1, 0]), Err(TocError::Truncated));
        assert_eq!(packet_samples(&[0xfa, 252]), Err(TocError::Truncated));
        // Code 3.
        assert_eq!(packet_samples(&[0xfb]), Err(TocError::Truncated));
        assert_eq!(packet_samples(&[0xfb, 0x00]), Err(TocError::NoFrames));
        assert_eq!(packet_samples(&[0xfb, 0x06, 1, 2, 3, 4, 5, 6]), Ok(5760));
        assert_eq!(packet_samples(&[0xfb, 0x07]), Err(TocError::TooLong(6720)));
        // 60 ms SILK × 2 = 120 ms is the limit; × 3 is over.
        assert_eq!(packet_samples(&[0x1b, 0x02]), Ok(5760));
        assert_eq!(packet_samples(&[0x1b, 0x03]), Err(TocError::TooLong(8640)));
        // CBR frames must share the data equally.
        assert_eq!(packet_samples(&[0xfb, 0x02, 1, 2, 3]), Err(TocError::Truncated));
        // Padding: 0x40 flag, one padding length byte of 2, two frames of 1.
        assert_eq!(packet_samples(&[0xfb, 0x42, 2, 7, 7, 0, 0]), Ok(1920));
        assert_eq!(packet_samples(&[0xfb, 0x42, 9, 7, 7]), Err(TocError::Truncated));
        assert_eq!(packet_samples(&[0xfb, 0x42]), Err(TocError::Truncated));
        // 255 continues the padding length.
        let mut p = vec![0xfb, 0x41, 255, 0];
        p.extend([0u8; 254]);
        assert_eq!(packet_samples(&p), Ok(960));
        // VBR: lengths of the first M-1 frames.
        assert_eq!(packet_samples(&[0xfb, 0x83, 1, 2, 9, 8, 8, 7]), Ok(2880));
        assert_eq!(packet_samples(&[0xfb, 0x83, 1, 5, 9]), Err(TocError::Truncated));
        assert_eq!(packet_samples(&[0xfb, 0x83, 1]), Err(TocError::Truncated));
    }

    #[test]
    fn depacketize_stereo_and_mono() {
        let mut d = Depacketizer::new(&audio_media(
            "a=rtpmap:97 opus/48000/2\r\na=fmtp:97 sprop-stereo=1;useinbandfec=1\r\n",
        ))
        .unwrap();
        let payload = Bytes::from_static(&[0xfc, 1, 2, 3]);
        d.push(&audio_packet(1, 960, false, payload.clone()), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.codec, AudioCodec::Opus);
        assert_eq!(
            (f.timestamp, f.sample_count, f.sample_rate, f.channels),
            (960, 960, 48000, 2)
        );
        assert_eq!(f.data.as_ptr(), payload.as_ptr(), "zero-copy");
        assert_eq!(d.pull(), None);

        let mono = audio_media("a=rtpmap:97 OPUS/48000/2\r\n");
        assert_eq!(Depacketizer::new(&mono).unwrap().channels, 1);
        let stereo = audio_media("a=rtpmap:97 opus/48000/2\r\na=fmtp:97 stereo=1\r\n");
        assert_eq!(Depacketizer::new(&stereo).unwrap().channels, 2);
        let off = audio_media("a=rtpmap:97 opus/48000/2\r\na=fmtp:97 stereo=0; sprop-stereo=0\r\n");
        assert_eq!(Depacketizer::new(&off).unwrap().channels, 1);
        assert!(matches!(
            Depacketizer::new(&audio_media("a=rtpmap:97 L16/8000\r\n")),
            Err(SetupError::UnsupportedCodec(_))
        ));
    }

    #[test]
    fn errors_keep_the_loss_count() {
        let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 opus/48000/2\r\n")).unwrap();
        assert_eq!(
            d.push(&audio_packet(1, 0, false, Bytes::new()), 2),
            Err(DepacketizeError::Empty { codec: "OPUS" })
        );
        assert!(matches!(
            d.push(&audio_packet(2, 960, false, Bytes::from_static(&[0xfb, 0])), 1),
            Err(DepacketizeError::Malformed { codec: "OPUS", .. })
        ));
        assert_eq!(d.pull(), None);
        d.push(&audio_packet(3, 1920, false, Bytes::from_static(&[0x08, 0])), 0)
            .unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.loss, f.sample_count), (3, 960));
    }

    #[test]
    fn packetize_then_depacketize() {
        let media = audio_media("a=rtpmap:97 opus/48000/2\r\na=fmtp:97 sprop-stereo=0\r\n");
        let mut d = Depacketizer::new(&media).unwrap();
        let p = Packetizer::new(1200);
        // 20 ms CELT, 10 ms SILK, 60 ms SILK ×2, 2.5 ms CELT ×3 (code 3 CBR).
        let packets: Vec<Bytes> = vec![
            Bytes::from_static(&[0xf8, 1, 2, 3]),
            Bytes::from_static(&[0x00, 9]),
            Bytes::from_static(&[0x19, 5, 5]),
            Bytes::from_static(&[0x83, 0x03, 1, 2, 3]),
        ];
        let mut ts = 1000u32;
        let mut want = Vec::new();
        for (seq, packet) in packets.iter().enumerate() {
            let (payload, samples) = p.packetize(packet).unwrap();
            d.push(&audio_packet(seq as u16, ts, false, payload), 0).unwrap();
            want.push((ts, samples, packet.clone()));
            ts = ts.wrapping_add(samples);
        }
        let got: Vec<_> = std::iter::from_fn(|| d.pull())
            .map(|f| (f.timestamp, f.sample_count, f.data))
            .collect();
        assert_eq!(got, want);
        assert_eq!(want.iter().map(|w| w.1).collect::<Vec<_>>(), [960, 480, 5760, 360]);
        assert_eq!(
            Packetizer::new(2).packetize(&packets[0]),
            Err(PacketizeError::TooLarge { len: 4, max: 2 })
        );
        assert_eq!(p.packetize(&Bytes::new()), Err(PacketizeError::Toc(TocError::Empty)));
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(packets in arbitrary_audio_packets()) {
            let mut d = Depacketizer::new(&audio_media("a=rtpmap:97 opus/48000/2\r\n")).unwrap();
            for (ts, marker, payload, lost) in packets {
                let ok = packet_samples(&payload);
                let r = d.push(&audio_packet(0, ts, marker, payload.clone()), lost);
                prop_assert_eq!(r.is_ok(), ok.is_ok());
                while let Some(f) = d.pull() {
                    prop_assert!(f.sample_count >= 120 && f.sample_count <= MAX_PACKET_SAMPLES);
                    prop_assert_eq!(&f.data[..], &payload[..]);
                }
            }
        }
    }
}
