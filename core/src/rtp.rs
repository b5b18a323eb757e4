//! RTP packet parsing and header writing (RFC 3550 §5.1).
//!
//! [`RtpPacket::parse`] checks the fixed header, skips the CSRC list and the
//! header extension and strips padding, so that [`RtpPacket::payload`] is
//! exactly the payload a depacketizer wants. Parsing is zero-copy: the payload
//! is the input [`Bytes`] itself, advanced past the header (no reference
//! count traffic), and the extension data a [`Bytes::slice`] of it.
//!
//! [`RtpHeader`] writes the 12-byte fixed header (version 2, no CSRCs, no
//! extension, no padding) for packetizers and tests.
//!
//! This module does **not** reorder packets, track sequence numbers, detect
//! loss, compute jitter or depacketize codecs; it only deals with one packet
//! at a time. It does not interpret header extensions (RFC 8285 one-byte /
//! two-byte forms are left to the caller via [`RtpExtension::data`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length in bytes of the fixed RTP header (without CSRCs or extension).
pub const FIXED_HEADER_LEN: usize = 12;

/// Why an RTP packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer bytes than the 12-byte fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte fixed header")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0} is not supported (only version 2)")]
    BadVersion(u8),
    /// The CSRC count says there are more CSRC identifiers than bytes.
    #[error("RTP CSRC list of {csrc_count} entries runs past the end of a {len}-byte packet")]
    CsrcOverrun {
        /// The CSRC count from the header.
        csrc_count: u8,
        /// Length of the input.
        len: usize,
    },
    /// The extension bit is set but the extension header or data runs past
    /// the end of the packet.
    #[error("RTP header extension runs past the end of a {len}-byte packet")]
    ExtensionOverrun {
        /// Length of the input.
        len: usize,
    },
    /// The padding bit is set but the padding count is zero or larger than
    /// the bytes after the header.
    #[error("RTP padding count {count} is invalid with {available} bytes after the header")]
    BadPadding {
        /// The padding count (last byte of the packet), or 0 if there was no byte.
        count: u8,
        /// Bytes available after the header (payload plus padding).
        available: usize,
    },
}

/// An RTP header extension (RFC 3550 §5.3.1), not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// The 16-bit profile-defined identifier (e.g. `0xBEDE` for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension data, without the 4-byte extension header; its length
    /// is a multiple of 4. A slice of the parsed buffer.
    pub data: Bytes,
}

/// A parsed RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// The 16-bit sequence number.
    pub sequence_number: u16,
    /// The 32-bit media timestamp.
    pub timestamp: u32,
    /// The synchronization source identifier.
    pub ssrc: u32,
    /// The marker bit (its meaning is set by the payload format, e.g. end of frame).
    pub marker: bool,
    /// The 7-bit payload type.
    pub payload_type: u8,
    /// Number of CSRC identifiers that were in the header (skipped).
    pub csrc_count: u8,
    /// The header extension, if the X bit was set.
    pub extension: Option<RtpExtension>,
    /// Number of padding bytes removed from the end (0 if the P bit was clear).
    pub padding: u8,
    /// The payload, without header, CSRCs, extension or padding. A slice of
    /// the parsed buffer; may be empty.
    pub payload: Bytes,
}

impl RtpPacket {
    /// Parses one RTP packet.
    ///
    /// The returned payload and extension data share `data`'s memory; no
    /// payload bytes are copied.
    ///
    /// # Errors
    ///
    /// [`RtpError`] if the packet is shorter than its header says, is not
    /// version 2, or has invalid padding.
    #[inline]
    pub fn parse(mut data: Bytes) -> Result<RtpPacket, RtpError> {
        // The usual packet (version 2, no padding, no extension, no CSRCs)
        // is parsed inline in the caller, which then builds the packet in
        // place instead of copying it out of this function's frame.
        if let Some(h) = data.first_chunk::<FIXED_HEADER_LEN>() {
            if h[0] == 0x80 {
                let packet = RtpPacket {
                    sequence_number: u16::from_be_bytes([h[2], h[3]]),
                    timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
                    marker: h[1] & 0x80 != 0,
                    payload_type: h[1] & 0x7f,
                    csrc_count: 0,
                    extension: None,
                    padding: 0,
                    payload: {
                        // The input becomes the payload in place: no
                        // reference count increment and decrement, as
                        // `slice` and dropping `data` would cost (atomic
                        // operations, a large part of a packet's handling).
                        data.advance(FIXED_HEADER_LEN);
                        data
                    },
                };
                return Ok(packet);
            }
        }
        Self::parse_any(data)
    }

    /// [`parse`](Self::parse) for every header form.
    #[inline(never)]
    fn parse_any(mut data: Bytes) -> Result<RtpPacket, RtpError> {
        let len = data.len();
        // One bounds check for the fixed header.
        let Some(h) = data.first_chunk::<FIXED_HEADER_LEN>() else {
            return Err(RtpError::TooShort { len });
        };
        let (b0, b1) = (h[0], h[1]);
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let marker = b1 & 0x80 != 0;
        let payload_type = b1 & 0x7f;
        let sequence_number = u16::from_be_bytes([h[2], h[3]]);
        let timestamp = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let ssrc = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);

        let mut offset = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if offset > len {
            return Err(RtpError::CsrcOverrun { csrc_count, len });
        }

        let extension = if has_extension {
            let Some(&[p0, p1, w0, w1]) = data[offset..].first_chunk::<4>() else {
                return Err(RtpError::ExtensionOverrun { len });
            };
            let profile = u16::from_be_bytes([p0, p1]);
            let words = usize::from(u16::from_be_bytes([w0, w1]));
            let start = offset + 4;
            let end = start + 4 * words;
            if end > len {
                return Err(RtpError::ExtensionOverrun { len });
            }
            offset = end;
            Some(RtpExtension {
                profile,
                data: data.slice(start..end),
            })
        } else {
            None
        };

        let available = len - offset;
        let padding = if has_padding {
            let count = if available == 0 { 0 } else { data[len - 1] };
            if count == 0 || usize::from(count) > available {
                return Err(RtpError::BadPadding { count, available });
            }
            data.truncate(len - usize::from(count));
            count
        } else {
            0
        };

        data.advance(offset);
        Ok(RtpPacket {
            sequence_number,
            timestamp,
            ssrc,
            marker,
            payload_type,
            csrc_count,
            extension,
            padding,
            payload: data,
        })
    }
}

/// The fields of a plain RTP header, for writing packets.
///
/// [`RtpHeader::write`] always writes version 2 with no padding, no
/// extension and no CSRCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RtpHeader {
    /// The 16-bit sequence number.
    pub sequence_number: u16,
    /// The 32-bit media timestamp.
    pub timestamp: u32,
    /// The synchronization source identifier.
    pub ssrc: u32,
    /// The marker bit.
    pub marker: bool,
    /// The payload type; only the low 7 bits are written.
    pub payload_type: u8,
}

impl RtpHeader {
    /// Appends the 12-byte fixed header to `out`.
    pub fn write(&self, out: &mut BytesMut) {
        out.reserve(FIXED_HEADER_LEN);
        out.put_u8(0x80); // V=2, P=0, X=0, CC=0
        out.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.put_u16(self.sequence_number);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
    }

    /// Appends a whole packet (this header followed by `payload`) to `out`.
    pub fn write_packet(&self, payload: &[u8], out: &mut BytesMut) {
        out.reserve(FIXED_HEADER_LEN + payload.len());
        self.write(out);
        out.put_slice(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RtpHeader {
        RtpHeader {
            sequence_number: 0xabcd,
            timestamp: 0x1234_5678,
            ssrc: 0xdead_beef,
            marker: true,
            payload_type: 96,
        }
    }

    #[test]
    fn round_trip() {
        let mut out = BytesMut::new();
        header().write_packet(b"hello", &mut out);
        assert_eq!(out.len(), 17);
        let p = RtpPacket::parse(out.freeze()).unwrap();
        assert_eq!(p.sequence_number, 0xabcd);
        assert_eq!(p.timestamp, 0x1234_5678);
        assert_eq!(p.ssrc, 0xdead_beef);
        assert!(p.marker);
        assert_eq!(p.payload_type, 96);
        assert_eq!(p.csrc_count, 0);
        assert_eq!(p.extension, None);
        assert_eq!(p.padding, 0);
        assert_eq!(&p.payload[..], b"hello");
    }

    #[test]
    fn header_bytes() {
        let mut out = BytesMut::new();
        RtpHeader {
            payload_type: 0xff,
            marker: false,
            ..header()
        }
        .write(&mut out);
        assert_eq!(
            &out[..],
            &[0x80, 0x7f, 0xab, 0xcd, 0x12, 0x34, 0x56, 0x78, 0xde, 0xad, 0xbe, 0xef]
        );
    }

    #[test]
    fn zero_copy() {
        let mut out = BytesMut::new();
        header().write_packet(b"payload", &mut out);
        let data = out.freeze();
        let p = RtpPacket::parse(data.clone()).unwrap();
        assert_eq!(p.payload.as_ptr(), data[12..].as_ptr());
    }

    #[test]
    fn csrc_extension_padding() {
        let mut out = BytesMut::new();
        header().write(&mut out);
        out[0] = 0x80 | 0x20 | 0x10 | 2; // P, X, CC=2
        out.put_u32(1);
        out.put_u32(2);
        out.put_u16(0xbede);
        out.put_u16(1);
        out.put_slice(&[9, 8, 7, 6]);
        out.put_slice(b"data");
        out.put_slice(&[0, 0, 3]);
        let data = out.freeze();
        let p = RtpPacket::parse(data.clone()).unwrap();
        assert_eq!(p.csrc_count, 2);
        let ext = p.extension.unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(&ext.data[..], &[9, 8, 7, 6]);
        assert_eq!(ext.data.as_ptr(), data[24..].as_ptr());
        assert_eq!(p.padding, 3);
        assert_eq!(&p.payload[..], b"data");
    }

    #[test]
    fn all_padding_gives_empty_payload() {
        let mut out = BytesMut::new();
        header().write(&mut out);
        out[0] |= 0x20;
        out.put_slice(&[0, 0, 0, 4]);
        let p = RtpPacket::parse(out.freeze()).unwrap();
        assert_eq!(p.padding, 4);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn empty_payload() {
        let mut out = BytesMut::new();
        header().write(&mut out);
        let p = RtpPacket::parse(out.freeze()).unwrap();
        assert!(p.payload.is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(&[0x80; 11])),
            Err(RtpError::TooShort { len: 11 })
        );
        assert_eq!(RtpPacket::parse(Bytes::new()), Err(RtpError::TooShort { len: 0 }));

        let mut out = BytesMut::new();
        header().write_packet(b"xyzw", &mut out);
        let base = out.freeze();

        let mut v1 = BytesMut::from(&base[..]);
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(v1.freeze()), Err(RtpError::BadVersion(1)));

        let mut cc = BytesMut::from(&base[..]);
        cc[0] = 0x82; // 2 CSRCs = 8 bytes, only 4 present
        assert_eq!(
            RtpPacket::parse(cc.freeze()),
            Err(RtpError::CsrcOverrun { csrc_count: 2, len: 16 })
        );

        let mut ext = BytesMut::from(&base[..]);
        ext[0] = 0x90;
        ext[14] = 0;
        ext[15] = 1; // one word of extension data, none present
        assert_eq!(
            RtpPacket::parse(ext.freeze()),
            Err(RtpError::ExtensionOverrun { len: 16 })
        );

        let mut ext_short = BytesMut::new();
        header().write(&mut ext_short);
        ext_short[0] = 0x90;
        ext_short.put_u16(0xbede);
        assert_eq!(
            RtpPacket::parse(ext_short.freeze()),
            Err(RtpError::ExtensionOverrun { len: 14 })
        );

        let mut pad0 = BytesMut::from(&base[..]);
        pad0[0] = 0xa0;
        pad0[15] = 0;
        assert_eq!(
            RtpPacket::parse(pad0.freeze()),
            Err(RtpError::BadPadding { count: 0, available: 4 })
        );

        let mut pad_big = BytesMut::from(&base[..]);
        pad_big[0] = 0xa0;
        pad_big[15] = 5;
        assert_eq!(
            RtpPacket::parse(pad_big.freeze()),
            Err(RtpError::BadPadding { count: 5, available: 4 })
        );

        let mut pad_empty = BytesMut::new();
        header().write(&mut pad_empty);
        pad_empty[0] = 0xa0;
        assert_eq!(
            RtpPacket::parse(pad_empty.freeze()),
            Err(RtpError::BadPadding { count: 0, available: 0 })
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RtpPacket::parse(Bytes::from(data));
        }

        #[test]
        fn parse_v2_never_panics(mut data in proptest::collection::vec(any::<u8>(), 12..200)) {
            data[0] = (data[0] & 0x3f) | 0x80;
            if let Ok(p) = RtpPacket::parse(Bytes::from(data.clone())) {
                prop_assert!(p.payload.len() + usize::from(p.padding) + 12 <= data.len());
            }
        }

        #[test]
        fn fast_path_agrees(mut data in proptest::collection::vec(any::<u8>(), 0..40), plain in any::<bool>()) {
            if plain && !data.is_empty() {
                data[0] = 0x80;
            }
            let data = Bytes::from(data);
            prop_assert_eq!(RtpPacket::parse(data.clone()), RtpPacket::parse_any(data));
        }

        #[test]
        fn write_parse_round_trip(
            seq in any::<u16>(), ts in any::<u32>(), ssrc in any::<u32>(),
            marker in any::<bool>(), pt in 0u8..128,
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let h = RtpHeader { sequence_number: seq, timestamp: ts, ssrc, marker, payload_type: pt };
            let mut out = BytesMut::new();
            h.write_packet(&payload, &mut out);
            let p = RtpPacket::parse(out.freeze()).unwrap();
            prop_assert_eq!(p.sequence_number, seq);
            prop_assert_eq!(p.timestamp, ts);
            prop_assert_eq!(p.ssrc, ssrc);
            prop_assert_eq!(p.marker, marker);
            prop_assert_eq!(p.payload_type, pt);
            prop_assert_eq!(&p.payload[..], &payload[..]);
        }
    }
}
