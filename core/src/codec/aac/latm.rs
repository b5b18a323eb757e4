//! RFC 6416 `MP4A-LATM` AAC: the depacketizer for out-of-band
//! configuration (`cpresent=0`), which joins fragmented AudioMuxElements and
//! splits them into access units. See the [`super`] module documentation for
//! the rules.
//!
//! It is **not** the StreamMuxConfig parser (`crate::mpeg4_audio`
//! is), it does not read in-band configuration (`cpresent=1`), and there is
//! no LATM packetizer.

use bytes::{Bytes, BytesMut};

use super::{malformed, too_large, AudioParams, Output};
use crate::codec::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::mpeg4_audio::{parse_mux_config, MuxConfig};
use crate::rtp::RtpPacket;
use crate::sdp::{Media, SdpError};

const LATM: &str = "MP4A-LATM";

/// An AudioMuxElement being joined from fragments.
#[derive(Debug)]
struct LatmPending {
    timestamp: u32,
    buf: BytesMut,
    /// Started right after a loss, so it may lack its beginning.
    after_loss: bool,
}

/// RTP depacketizer for RFC 6416 `MP4A-LATM` with out-of-band
/// configuration (`cpresent=0`). See the [module documentation](super).
#[derive(Debug)]
pub struct LatmDepacketizer {
    mux: MuxConfig,
    max_frame_bytes: usize,
    out: Output,
    pending: Option<LatmPending>,
    /// Timestamp of an over-long element whose fragments are skipped.
    skipping: Option<u32>,
    ranges: Vec<(usize, usize)>,
}

impl LatmDepacketizer {
    /// A depacketizer for an `MP4A-LATM` track, assembling elements and
    /// access units of at most `max_frame_bytes`.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for another codec or `cpresent=1`;
    /// [`SetupError::Sdp`] for a missing or unsupported `config`.
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Self, SetupError> {
        let p = media
            .mp4a_latm()?
            .ok_or_else(|| SetupError::UnsupportedCodec(media.codec.clone()))?;
        if p.cpresent {
            return Err(SetupError::UnsupportedCodec("MP4A-LATM with cpresent=1".into()));
        }
        let (Some(config), Some(asc)) = (&p.config, &p.audio_specific_config) else {
            return Err(SdpError::MissingParam {
                codec: LATM.to_owned(),
                param: "config".to_owned(),
            }
            .into());
        };
        let mux = parse_mux_config(config).map_err(SdpError::BadStreamMuxConfig)?;
        let params = AudioParams::from_asc(asc, media)?;
        Ok(LatmDepacketizer {
            mux,
            max_frame_bytes,
            out: Output::new(AudioCodec::AacLatm, params),
            pending: None,
            skipping: None,
            ranges: Vec::new(),
        })
    }

    /// Feeds one packet; `lost` is how many packets are missing right
    /// before it.
    ///
    /// An element is parsed when the packet with the marker bit completes
    /// it, or, for senders that never set the marker bit, when a packet
    /// with another timestamp arrives.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`]; [`DepacketizeError::Malformed`] when an
    /// element does not parse completely (nothing of it is emitted);
    /// [`DepacketizeError::FrameTooLarge`] for an element or access unit
    /// over the limit (skipped).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.out.loss = self.out.loss.saturating_add(lost);
        if lost > 0 {
            if let Some(p) = self.pending.take() {
                tracing::debug!(lost, "MP4A-LATM: dropping a fragmented element after packet loss");
                // Later fragments of the same element are recognized by their timestamp.
                if p.timestamp == packet.timestamp {
                    if !packet.marker {
                        self.skipping = Some(p.timestamp);
                    }
                    return Ok(());
                }
            }
        }
        if packet.payload.is_empty() {
            return Err(DepacketizeError::Empty { codec: LATM });
        }
        let mut result = Ok(());
        if let Some(ts) = self.skipping {
            if ts == packet.timestamp {
                if packet.marker {
                    self.skipping = None;
                }
                return Ok(());
            }
            self.skipping = None;
        }
        if let Some(p) = self.pending.take_if(|p| p.timestamp != packet.timestamp) {
            // The previous element got no marker bit: try it as it is.
            result = self.parse_element(p.timestamp, p.buf.freeze(), p.after_loss);
        }
        let element = match self.pending.take() {
            None if packet.marker => packet.payload.clone(),
            pending => {
                let mut p = pending.unwrap_or_else(|| LatmPending {
                    timestamp: packet.timestamp,
                    buf: BytesMut::new(),
                    after_loss: lost > 0,
                });
                if p.buf.len() + packet.payload.len() > self.max_frame_bytes {
                    if !packet.marker {
                        self.skipping = Some(packet.timestamp);
                    }
                    return Err(too_large(LATM, self.max_frame_bytes));
                }
                p.buf.extend_from_slice(&packet.payload);
                if !packet.marker {
                    self.pending = Some(p);
                    return result;
                }
                p.buf.freeze()
            }
        };
        let r = self.parse_element(packet.timestamp, element, lost > 0);
        result.and(r)
    }

    /// Parses one or more whole AudioMuxElements and emits their access
    /// units, all or nothing.
    fn parse_element(&mut self, timestamp: u32, data: Bytes, after_loss: bool) -> Result<(), DepacketizeError> {
        self.ranges.clear();
        let mut pos = 0usize;
        let mut too_big = false;
        let outcome: Result<(), String> = (|| {
            while pos < data.len() {
                for _ in 0..self.mux.sub_frames {
                    let mut len = 0usize;
                    loop {
                        let b = *data.get(pos).ok_or("PayloadLengthInfo truncated")?;
                        pos += 1;
                        len += usize::from(b);
                        if b != 255 {
                            break;
                        }
                    }
                    if len > data.len() - pos {
                        return Err(format!(
                            "PayloadMux of {len} bytes overruns the element ({} bytes left)",
                            data.len() - pos
                        ));
                    }
                    self.ranges.push((pos, len));
                    pos += len;
                }
                if let Some(bits) = self.mux.other_data_bits {
                    let bytes = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
                    if bytes > data.len() - pos {
                        return Err("otherData overruns the element".into());
                    }
                    pos += bytes;
                }
            }
            Ok(())
        })();
        if let Err(what) = outcome {
            if after_loss {
                tracing::debug!(what, "MP4A-LATM: dropping an element damaged by loss");
                return Ok(());
            }
            return Err(malformed(LATM, what));
        }
        let mut ts = timestamp;
        for i in 0..self.ranges.len() {
            let (start, len) = self.ranges[i];
            if len > self.max_frame_bytes {
                too_big = true;
            } else if len > 0 {
                self.out.emit(ts, data.slice(start..start + len));
            }
            ts = ts.wrapping_add(self.out.params.step);
        }
        if too_big {
            return Err(too_large(LATM, self.max_frame_bytes));
        }
        Ok(())
    }

    /// The next complete frame, if any. Call until `None` after each push.
    pub fn pull(&mut self) -> Option<AudioFrame> {
        self.out.frames.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{
        access_unit as au, arbitrary_audio_packets as arbitrary_packets, audio_media as media, audio_packet as packet,
    };
    use crate::sdp::Sdp;
    use proptest::prelude::*;

    const LATM_SDP: &[u8] = b"v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\na=fmtp:96 profile-level-id=15;object=2;cpresent=0;config=400024203fc0\r\n";

    fn pull_all_latm(d: &mut LatmDepacketizer) -> Vec<AudioFrame> {
        std::iter::from_fn(|| d.pull()).collect()
    }

    #[test]
    fn latm_lengths() {
        let m = Sdp::parse(LATM_SDP).unwrap().media.remove(0);
        let mut d = LatmDepacketizer::new(&m, 1 << 20).unwrap();
        for (i, len) in [100usize, 255, 300, 600, 254, 510].into_iter().enumerate() {
            let a = au(len, i as u8);
            let mut p = vec![255; len / 255];
            p.push((len % 255) as u8);
            p.extend_from_slice(&a);
            d.push(&packet(i as u16, 1024 * i as u32, true, p), 0).unwrap();
            let f = d.pull().unwrap();
            assert_eq!(f.codec, AudioCodec::AacLatm);
            assert_eq!(f.data, a, "length {len}");
            assert_eq!(f.timestamp, 1024 * i as u32);
            assert_eq!((f.sample_count, f.sample_rate, f.channels), (1024, 44100, 2));
            assert_eq!(d.pull(), None);
        }
    }

    fn latm_element(a: &[u8]) -> Vec<u8> {
        let mut p = vec![255; a.len() / 255];
        p.push((a.len() % 255) as u8);
        p.extend_from_slice(a);
        p
    }

    #[test]
    fn latm_two_elements_and_fragments() {
        let m = Sdp::parse(LATM_SDP).unwrap().media.remove(0);
        let mut d = LatmDepacketizer::new(&m, 1 << 20).unwrap();
        let (a, b) = (au(300, 1), au(20, 2));
        let mut p = latm_element(&a);
        p.extend(latm_element(&b));
        d.push(&packet(1, 500, true, p), 0).unwrap();
        let f = pull_all_latm(&mut d);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].timestamp, &f[0].data[..]), (500, &a[..]));
        assert_eq!((f[1].timestamp, &f[1].data[..]), (1524, &b[..]));

        let c = au(700, 3);
        let e = latm_element(&c);
        d.push(&packet(2, 2548, false, e[..400].to_vec()), 4).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(3, 2548, true, e[400..].to_vec()), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.timestamp, f.loss, &f.data[..]), (2548, 4, &c[..]));

        // Middle packet lost: the element is dropped (its tail recognized by
        // its timestamp).
        let e = latm_element(&au(900, 4));
        d.push(&packet(4, 3572, false, e[..300].to_vec()), 0).unwrap();
        d.push(&packet(6, 3572, true, e[600..].to_vec()), 1).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(7, 4596, true, latm_element(b"x")), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.loss, &f.data[..]), (1, &b"x"[..]));
        // First fragment lost (new timestamp): the tail does not parse and is
        // dropped without an error.
        d.push(&packet(9, 5620, true, vec![10, 1, 2]), 1).unwrap();
        assert_eq!(d.pull(), None);
        // Lost packets between two fragments with more to come.
        d.push(&packet(10, 6644, false, e[..300].to_vec()), 0).unwrap();
        d.push(&packet(12, 6644, false, e[600..700].to_vec()), 1).unwrap();
        d.push(&packet(13, 6644, true, e[700..].to_vec()), 0).unwrap();
        d.push(&packet(14, 7668, true, latm_element(b"w")), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.loss, &f.data[..]), (2, &b"w"[..]));
        assert_eq!(d.pull(), None);

        // A sender that never sets the marker bit.
        d.push(&packet(15, 8692, false, latm_element(b"y")), 0).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(16, 9716, false, latm_element(b"z")), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, &b"y"[..]);
    }

    #[test]
    fn latm_errors() {
        let m = Sdp::parse(LATM_SDP).unwrap().media.remove(0);
        let mut d = LatmDepacketizer::new(&m, 500).unwrap();
        assert_eq!(
            d.push(&packet(1, 0, true, Bytes::new()), 0),
            Err(DepacketizeError::Empty { codec: LATM })
        );
        // Length overruns: nothing emitted, even the good element before it.
        let mut p = latm_element(b"good");
        p.extend_from_slice(&[10, 1, 2]);
        assert!(matches!(
            d.push(&packet(2, 0, true, p), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert!(matches!(
            d.push(&packet(3, 0, true, vec![255, 255]), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert_eq!(d.pull(), None);
        // Too large: an access unit, then an element in fragments.
        let mut p = latm_element(&au(501, 0));
        p.extend(latm_element(b"ok"));
        assert!(matches!(
            d.push(&packet(4, 0, true, p), 0),
            Err(DepacketizeError::FrameTooLarge { limit: 500, .. })
        ));
        let f = d.pull().unwrap();
        assert_eq!((f.timestamp, &f.data[..]), (1024, &b"ok"[..]));
        d.push(&packet(5, 9, false, vec![0; 300]), 0).unwrap();
        assert!(matches!(
            d.push(&packet(6, 9, false, vec![0; 300]), 0),
            Err(DepacketizeError::FrameTooLarge { .. })
        ));
        d.push(&packet(7, 9, true, vec![0; 300]), 0).unwrap();
        d.push(&packet(8, 10, true, latm_element(b"ok")), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, &b"ok"[..]);
    }

    #[test]
    fn latm_setup() {
        let latm = |fmtp: &str| media(&format!("a=rtpmap:97 MP4A-LATM/90000/2\r\na=fmtp:97 {fmtp}\r\n"));
        assert_eq!(
            LatmDepacketizer::new(&latm("cpresent=1"), 1000).unwrap_err(),
            SetupError::UnsupportedCodec("MP4A-LATM with cpresent=1".into())
        );
        assert!(LatmDepacketizer::new(&latm("object=2"), 1000).is_err());
        assert!(matches!(
            LatmDepacketizer::new(&latm("cpresent=0"), 1000),
            Err(SetupError::Sdp(_))
        ));
        // Short config (no frameLengthType): accepted; 90 kHz clock → 2090 ticks.
        let mut d = LatmDepacketizer::new(&latm("cpresent=0;config=40002420"), 1000).unwrap();
        assert_eq!(d.mux.sub_frames, 1);
        let mut p = latm_element(b"a");
        p.extend(latm_element(b"b"));
        d.push(&packet(1, 0, true, p), 0).unwrap();
        let f = pull_all_latm(&mut d);
        assert_eq!(f[1].timestamp, 1024 * 90000 / 44100);
        // frameLengthType 1 (bits 31..34 = 001).
        assert!(matches!(
            LatmDepacketizer::new(&latm("cpresent=0;config=400024207fc0"), 1000),
            Err(SetupError::Sdp(SdpError::BadStreamMuxConfig(_)))
        ));
        // Two subframes per element and other data of 8 bits.
        assert_eq!(
            parse_mux_config(&[0x41, 0x00, 0x24, 0x20, 0x3f, 0xe0, 0x80]),
            Ok(MuxConfig {
                sub_frames: 2,
                other_data_bits: Some(8)
            })
        );
        assert_eq!(
            parse_mux_config(&[0x40, 0x00, 0x24, 0x20, 0x3f, 0xc0]),
            Ok(MuxConfig {
                sub_frames: 1,
                other_data_bits: None
            })
        );
    }

    #[test]
    fn latm_subframes_and_other_data() {
        let m = Sdp::parse(LATM_SDP).unwrap().media.remove(0);
        let mut d = LatmDepacketizer::new(&m, 1000).unwrap();
        d.mux = MuxConfig {
            sub_frames: 2,
            other_data_bits: Some(12),
        };
        let mut p = latm_element(b"ab");
        p.extend(latm_element(b"cd"));
        p.extend([0xee, 0xe0]);
        p.extend(latm_element(b"ef"));
        p.extend(latm_element(b"gh"));
        p.extend([0xee, 0xe0]);
        d.push(&packet(1, 0, true, p.clone()), 0).unwrap();
        let f = pull_all_latm(&mut d);
        assert_eq!(f.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [0, 1024, 2048, 3072]);
        assert_eq!(f[3].data, &b"gh"[..]);
        p.pop();
        assert!(d.push(&packet(2, 0, true, p), 0).is_err());
    }

    proptest! {
        #[test]
        fn latm_never_panics(packets in arbitrary_packets(), sub_frames in 1usize..3, other in proptest::option::of(0u64..40)) {
            let m = Sdp::parse(LATM_SDP).unwrap().media.remove(0);
            let mut d = LatmDepacketizer::new(&m, 1000).unwrap();
            d.mux = MuxConfig { sub_frames, other_data_bits: other };
            for (seq, (ts, marker, payload, lost)) in packets.into_iter().enumerate() {
                let _ = d.push(&packet(seq as u16, ts, marker, payload), lost);
                while let Some(f) = d.pull() {
                    prop_assert!(!f.data.is_empty() && f.data.len() <= 1000);
                }
            }
        }
    }
}
