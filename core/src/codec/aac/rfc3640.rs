//! RFC 3640 `mpeg4-generic` AAC: the depacketizer (any AU header layout
//! the SDP describes, fragmented AUs joined) and the AAC-hbr packetizer.
//! See the [`super`] module documentation for the rules.
//!
//! It is **not** the AudioSpecificConfig parser (`crate::mpeg4_audio`
//! is; its bit reader also reads the AU headers here), and it does not do
//! MP4A-LATM (`super::latm`).

use bytes::{BufMut, Bytes, BytesMut};

use super::{malformed, too_large, AudioParams, Output};
use crate::codec::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::mpeg4_audio::BitReader;
use crate::rtp::RtpPacket;
use crate::sdp::{Media, SdpError};

const GENERIC: &str = "MPEG4-GENERIC";

/// Largest AU the AAC-hbr [`Packetizer`] can describe (13-bit AU-size).
pub const MAX_HBR_ACCESS_UNIT: usize = (1 << 13) - 1;

/// One AU header: the AU's size and its RTP timestamp.
#[derive(Debug, Clone, Copy)]
struct AuHeader {
    size: u64,
    timestamp: u32,
}

/// A fragmented AU being joined, or one being skipped.
#[derive(Debug)]
enum Fragment {
    None,
    Joining {
        /// RTP timestamp of the fragments.
        rtp_timestamp: u32,
        /// Timestamp of the AU (differs with a CTS-delta).
        timestamp: u32,
        size: usize,
        buf: BytesMut,
        /// Started right after a loss, so it may lack its beginning.
        after_loss: bool,
    },
    /// Fragments of an AU over the size limit, with this timestamp.
    Skipping {
        timestamp: u32,
    },
}

/// RTP depacketizer for RFC 3640 `mpeg4-generic` AAC (AAC-hbr, AAC-lbr or
/// any AU header layout given in the SDP). See the [module
/// documentation](super).
#[derive(Debug)]
pub struct Depacketizer {
    size_length: u8,
    index_length: u8,
    index_delta_length: u8,
    cts_delta_length: u8,
    dts_delta_length: u8,
    constant_size: u32,
    /// Every AU header is this many bits (at most 32): an AU-size and an
    /// AU-index / AU-index-delta of the same length, nothing else (AAC-hbr: 16).
    fixed_header_bits: Option<u8>,
    max_frame_bytes: usize,
    out: Output,
    fragment: Fragment,
    headers: Vec<AuHeader>,
}

impl Depacketizer {
    /// A depacketizer for an `mpeg4-generic` track, assembling access units
    /// of at most `max_frame_bytes`.
    ///
    /// The AudioSpecificConfig (`config`) gives the sampling rate, channels
    /// and frame length; without one, a mode starting with `AAC` is assumed
    /// to be 1024-sample AAC at the RTP clock rate with the rtpmap channels.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnsupportedCodec`] for another codec or a non-AAC mode
    /// without `config`; [`SetupError::Sdp`] for bad fmtp parameters, an
    /// AudioSpecificConfig that is not AAC, or no AU size (neither
    /// `sizeLength` nor `constantSize`).
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Self, SetupError> {
        let p = media
            .mpeg4_generic()?
            .ok_or_else(|| SetupError::UnsupportedCodec(media.codec.clone()))?;
        let params = if !p.config.is_empty() {
            AudioParams::from_asc(&p.config, media)?
        } else if p.mode.get(..3).is_some_and(|m| m.eq_ignore_ascii_case("AAC")) && media.clock_rate != 0 {
            AudioParams::new(media.clock_rate, media.channels.unwrap_or(1), 1024, media.clock_rate)
        } else {
            return Err(SetupError::UnsupportedCodec(format!(
                "{} mode={} without config",
                media.codec, p.mode
            )));
        };
        let constant_size = match (p.size_length, p.constant_size) {
            (0, None) => {
                return Err(SdpError::MissingParam {
                    codec: GENERIC.to_owned(),
                    param: "sizeLength".to_owned(),
                }
                .into())
            }
            (0, Some(0)) => {
                return Err(SdpError::BadParam {
                    param: "constantSize".to_owned(),
                    reason: "must be positive",
                }
                .into())
            }
            (_, c) => c.unwrap_or(0),
        };
        let fixed = p.size_length > 0
            && p.index_length == p.index_delta_length
            && p.cts_delta_length == 0
            && p.dts_delta_length == 0
            && u32::from(p.size_length) + u32::from(p.index_length) <= 32;
        Ok(Depacketizer {
            fixed_header_bits: fixed.then(|| p.size_length + p.index_length),
            size_length: p.size_length,
            index_length: p.index_length,
            index_delta_length: p.index_delta_length,
            cts_delta_length: p.cts_delta_length,
            dts_delta_length: p.dts_delta_length,
            constant_size,
            max_frame_bytes,
            out: Output::new(AudioCodec::Aac, params),
            fragment: Fragment::None,
            headers: Vec::new(),
        })
    }

    fn header_is_empty(&self) -> bool {
        self.size_length == 0
            && self.index_length == 0
            && self.index_delta_length == 0
            && self.cts_delta_length == 0
            && self.dts_delta_length == 0
    }

    /// Reads the AU header section into `self.headers`; returns where the
    /// AU data starts.
    fn read_headers(&mut self, payload: &[u8], timestamp: u32) -> Result<usize, String> {
        self.headers.clear();
        let step = self.out.params.step;
        if self.header_is_empty() {
            // No AU header section at all (RFC 3640 3.2.1): constant-size AUs.
            let size = self.constant_size as usize;
            if payload.len() < size {
                self.headers.push(AuHeader {
                    size: size as u64,
                    timestamp,
                });
            } else if payload.len() % size == 0 {
                let mut ts = timestamp;
                for _ in 0..payload.len() / size {
                    self.headers.push(AuHeader {
                        size: size as u64,
                        timestamp: ts,
                    });
                    ts = ts.wrapping_add(step);
                }
            } else {
                return Err(format!(
                    "{} bytes is not a multiple of constantSize {size}",
                    payload.len()
                ));
            }
            return Ok(0);
        }
        if payload.len() < 2 {
            return Err("no AU-headers-length".into());
        }
        let header_bits = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
        let data_start = 2 + header_bits.div_ceil(8);
        if data_start > payload.len() {
            return Err(format!(
                "AU-headers-length of {header_bits} bits overruns a {}-byte payload",
                payload.len()
            ));
        }
        // The reader spans the AU data too, so that it can load whole words.
        let mut r = BitReader::with_limit(&payload[2..], header_bits);
        let truncated = || format!("AU header truncated by AU-headers-length {header_bits}");
        let mut offset = 0u32; // in frames, from the RTP timestamp
        if let Some(width) = self.fixed_header_bits {
            // One read per AU header, split into AU-size and AU-index(-delta).
            // (A loop rather than a division: `div` costs more than the loop.)
            let index_bits = u32::from(self.index_length);
            let mut left = header_bits;
            while left >= usize::from(width) {
                left -= usize::from(width);
                let v = r.read(width).ok_or_else(truncated)?;
                let (size, index) = match index_bits {
                    0 => (v, 0),
                    n => (v >> n, v & ((1 << n) - 1)),
                };
                if !self.headers.is_empty() {
                    offset = offset.wrapping_add(index).wrapping_add(1);
                }
                self.headers.push(AuHeader {
                    size: u64::from(size),
                    timestamp: timestamp.wrapping_add(offset.wrapping_mul(step)),
                });
            }
            if left != 0 {
                return Err(truncated());
            }
            if self.headers.is_empty() {
                return Err("no AU header".into());
            }
            return Ok(data_start);
        }
        while r.pos() < header_bits {
            let start = r.pos();
            let size = if self.size_length > 0 {
                r.read(self.size_length).ok_or_else(truncated)?
            } else {
                self.constant_size
            };
            if self.headers.is_empty() {
                r.read(self.index_length).ok_or_else(truncated)?;
            } else {
                let delta = r.read(self.index_delta_length).ok_or_else(truncated)?;
                offset = offset.wrapping_add(delta).wrapping_add(1);
            }
            let mut cts = None;
            if self.cts_delta_length > 0 && r.read(1).ok_or_else(truncated)? == 1 {
                let v = r.read(self.cts_delta_length).ok_or_else(truncated)?;
                cts = Some(sign_extend(v, self.cts_delta_length));
            }
            if self.dts_delta_length > 0 && r.read(1).ok_or_else(truncated)? == 1 {
                r.read(self.dts_delta_length).ok_or_else(truncated)?;
            }
            if r.pos() == start {
                return Err("AU header of zero bits".into());
            }
            let ts = match cts {
                Some(delta) => timestamp.wrapping_add(delta as u32),
                None => timestamp.wrapping_add(offset.wrapping_mul(step)),
            };
            self.headers.push(AuHeader {
                size: u64::from(size),
                timestamp: ts,
            });
        }
        if self.headers.is_empty() {
            return Err("no AU header".into());
        }
        Ok(data_start)
    }

    /// Feeds one packet; `lost` is how many packets are missing right
    /// before it.
    ///
    /// # Errors
    ///
    /// [`DepacketizeError::Empty`], [`DepacketizeError::Malformed`] (what
    /// was pending is dropped; frames are emitted from the packet only if
    /// it parses completely), [`DepacketizeError::FrameTooLarge`] for an
    /// AU over the limit (it is skipped; others in the packet are kept).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        self.out.loss = self.out.loss.saturating_add(lost);
        if lost > 0 {
            if let Fragment::Joining { rtp_timestamp, .. } = self.fragment {
                tracing::debug!(lost, "mpeg4-generic: dropping a fragmented AU after packet loss");
                // Later fragments of the same AU are recognized by their timestamp.
                self.fragment = if rtp_timestamp == packet.timestamp && !packet.marker {
                    Fragment::Skipping {
                        timestamp: rtp_timestamp,
                    }
                } else {
                    Fragment::None
                };
                if rtp_timestamp == packet.timestamp {
                    return Ok(());
                }
            }
        }
        let payload = &packet.payload;
        if payload.is_empty() {
            return Err(DepacketizeError::Empty { codec: GENERIC });
        }
        let data_start = match self.read_headers(payload, packet.timestamp) {
            Ok(s) => s,
            Err(what) => {
                self.fragment = Fragment::None;
                return Err(malformed(GENERIC, what));
            }
        };
        let data_len = payload.len() - data_start;
        if self.headers.len() == 1 && self.headers[0].size > data_len as u64 {
            let header = self.headers[0];
            return self.push_fragment(packet, header, data_start, lost > 0);
        }
        let total: u64 = self.headers.iter().map(|h| h.size).sum();
        if total != data_len as u64 {
            self.fragment = Fragment::None;
            return Err(malformed(
                GENERIC,
                format!("AU sizes add up to {total} bytes, {data_len} bytes of data"),
            ));
        }
        let mut result = match std::mem::replace(&mut self.fragment, Fragment::None) {
            Fragment::Joining { after_loss: false, .. } => {
                Err(malformed(GENERIC, "fragmented AU not finished before the next AU"))
            }
            _ => Ok(()),
        };
        let mut pos = data_start;
        for i in 0..self.headers.len() {
            let AuHeader { size, timestamp } = self.headers[i];
            let size = size as usize; // at most data_len
            if size > self.max_frame_bytes {
                result = Err(too_large(GENERIC, self.max_frame_bytes));
            } else if size > 0 {
                self.out.emit(timestamp, payload.slice(pos..pos + size));
            }
            pos += size;
        }
        result
    }

    fn push_fragment(
        &mut self,
        packet: &RtpPacket,
        header: AuHeader,
        data_start: usize,
        after_loss: bool,
    ) -> Result<(), DepacketizeError> {
        let data = &packet.payload[data_start..];
        let mut result = Ok(());
        match &mut self.fragment {
            Fragment::Skipping { timestamp } if *timestamp == packet.timestamp => {
                if packet.marker {
                    self.fragment = Fragment::None;
                }
                return Ok(());
            }
            Fragment::Joining {
                rtp_timestamp,
                size,
                buf,
                ..
            } if *rtp_timestamp == packet.timestamp && *size as u64 == header.size => {
                buf.extend_from_slice(data);
            }
            fragment => {
                if let Fragment::Joining { after_loss: false, .. } = fragment {
                    result = Err(malformed(GENERIC, "fragmented AU not finished before the next AU"));
                }
                if header.size > self.max_frame_bytes as u64 {
                    self.fragment = if packet.marker {
                        Fragment::None
                    } else {
                        Fragment::Skipping {
                            timestamp: packet.timestamp,
                        }
                    };
                    return Err(too_large(GENERIC, self.max_frame_bytes));
                }
                let size = header.size as usize;
                let mut buf = BytesMut::with_capacity(size);
                buf.extend_from_slice(data);
                *fragment = Fragment::Joining {
                    rtp_timestamp: packet.timestamp,
                    timestamp: header.timestamp,
                    size,
                    buf,
                    after_loss,
                };
            }
        }
        let Fragment::Joining {
            timestamp,
            size,
            buf,
            after_loss,
            ..
        } = &mut self.fragment
        else {
            return result;
        };
        if buf.len() == *size {
            let (timestamp, data) = (*timestamp, buf.split().freeze());
            self.fragment = Fragment::None;
            self.out.emit(timestamp, data);
        } else if buf.len() > *size || packet.marker {
            let (have, want, after_loss) = (buf.len(), *size, *after_loss);
            self.fragment = Fragment::None;
            if after_loss {
                tracing::debug!("mpeg4-generic: dropping a fragmented AU missing its start");
            } else {
                result = Err(malformed(
                    GENERIC,
                    format!("fragments of a {want}-byte AU carry {have} bytes"),
                ));
            }
        }
        result
    }

    /// The next complete frame, if any. Call until `None` after each push.
    pub fn pull(&mut self) -> Option<AudioFrame> {
        self.out.frames.pop_front()
    }
}

/// Two's complement value of the low `bits` bits of `v`.
fn sign_extend(v: u32, bits: u8) -> i32 {
    if bits == 0 || bits >= 32 {
        return v as i32;
    }
    let shift = 32 - u32::from(bits);
    ((v << shift) as i32) >> shift
}

/// RFC 3640 `mpeg4-generic` packetizer for a server, in AAC-hbr mode:
/// `sizeLength=13; indexLength=3; indexDeltaLength=3` (see
/// [`Packetizer::FMTP`]).
///
/// [`Packetizer::packetize`] puts one access unit in one payload, or in
/// fragments when it does not fit in `max_payload` bytes;
/// [`Packetizer::aggregate`] packs several small ones per payload.
///
/// The RTP timestamp of a payload is that of its (first) access unit; all
/// fragments of an AU carry the AU's timestamp. The marker bit is set on
/// every payload holding whole AUs and on the last fragment of an AU, and
/// clear on the other fragments.
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

/// One payload from [`Packetizer::aggregate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatedPayload {
    /// The RTP payload.
    pub data: Bytes,
    /// Index, in the input, of the first access unit in (or fragment of)
    /// this payload: the RTP timestamp is that AU's.
    pub first_access_unit: usize,
    /// Number of access units in this payload (1 for a fragment).
    pub access_units: usize,
    /// Value of the RTP marker bit.
    pub marker: bool,
}

impl Packetizer {
    /// The `a=fmtp` parameters (after the payload type) that describe this
    /// packetizer's payloads, to which the server adds `config=`.
    pub const FMTP: &'static str = "streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3";

    /// AU-headers-length (2 bytes) plus one AAC-hbr AU header (2 bytes).
    const OVERHEAD: usize = 4;

    /// A packetizer making payloads of at most `max_payload` bytes (values
    /// below 5 are raised to 5).
    pub fn new(max_payload: usize) -> Self {
        Packetizer {
            max_payload: max_payload.max(Self::OVERHEAD + 1),
        }
    }

    /// The payloads carrying `access_unit` (a raw AAC frame, no ADTS
    /// header): one payload if it fits, otherwise fragments, in order. The
    /// marker bit is set on the last payload only.
    ///
    /// Returns nothing for an empty AU or one over
    /// [`MAX_HBR_ACCESS_UNIT`] bytes, which AAC-hbr cannot describe.
    pub fn packetize(&mut self, access_unit: &[u8]) -> Vec<Bytes> {
        if access_unit.is_empty() || access_unit.len() > MAX_HBR_ACCESS_UNIT {
            tracing::warn!(len = access_unit.len(), "AAC-hbr: cannot packetize this access unit");
            return Vec::new();
        }
        let room = self.max_payload - Self::OVERHEAD;
        access_unit
            .chunks(room)
            .map(|chunk| {
                let mut p = BytesMut::with_capacity(Self::OVERHEAD + chunk.len());
                p.put_u16(16);
                p.put_u16((access_unit.len() as u16) << 3);
                p.put_slice(chunk);
                p.freeze()
            })
            .collect()
    }

    /// Payloads for consecutive access units: as many whole AUs per payload
    /// as fit, and an AU too large for a payload of its own in fragments.
    ///
    /// Empty AUs and AUs over [`MAX_HBR_ACCESS_UNIT`] bytes are left out;
    /// the AUs after one start a new payload so that
    /// [`AggregatedPayload::first_access_unit`] keeps giving the timestamp.
    pub fn aggregate<T: AsRef<[u8]>>(&mut self, access_units: &[T]) -> Vec<AggregatedPayload> {
        // 16 bits per AU header must fit the 16-bit AU-headers-length.
        const MAX_HEADERS: usize = 0xffff / 16;
        let mut out = Vec::new();
        let mut i = 0;
        while i < access_units.len() {
            let au = access_units[i].as_ref();
            if au.is_empty() || au.len() > MAX_HBR_ACCESS_UNIT {
                tracing::warn!(len = au.len(), "AAC-hbr: cannot packetize this access unit");
                i += 1;
                continue;
            }
            if au.len() + Self::OVERHEAD > self.max_payload {
                for data in self.packetize(au) {
                    out.push(AggregatedPayload {
                        data,
                        first_access_unit: i,
                        access_units: 1,
                        marker: false,
                    });
                }
                if let Some(last) = out.last_mut() {
                    last.marker = true;
                }
                i += 1;
                continue;
            }
            // Take AUs while they fit: 2 bytes + 2 per header + data.
            let mut end = i;
            let mut len = 2;
            while end < access_units.len() && end - i < MAX_HEADERS {
                let n = access_units[end].as_ref().len();
                if n == 0 || n > MAX_HBR_ACCESS_UNIT || len + 2 + n > self.max_payload {
                    break;
                }
                len += 2 + n;
                end += 1;
            }
            let mut p = BytesMut::with_capacity(len);
            p.put_u16(((end - i) * 16) as u16);
            for au in &access_units[i..end] {
                p.put_u16((au.as_ref().len() as u16) << 3);
            }
            for au in &access_units[i..end] {
                p.put_slice(au.as_ref());
            }
            out.push(AggregatedPayload {
                data: p.freeze(),
                first_access_unit: i,
                access_units: end - i,
                marker: true,
            });
            i = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{
        access_unit as au, arbitrary_audio_packets as arbitrary_packets, audio_media as media, audio_packet as packet,
    };
    use proptest::prelude::*;

    const HBR: &str = "a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n";
    const LBR: &str = "a=rtpmap:97 mpeg4-generic/48000/1\r\n\
a=fmtp:97 streamtype=5;mode=AAC-lbr;config=1188;sizeLength=6;indexLength=2;indexDeltaLength=2\r\n";

    /// MSB-first bit writer for building AU header sections.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, n: usize) {
            for i in (0..n).rev() {
                if self.bits % 8 == 0 {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (7 - self.bits % 8);
                self.bits += 1;
            }
        }
    }

    /// An mpeg4-generic payload from header fields `(value, bits)` per AU
    /// and the AU data.
    fn generic_payload(headers: &[&[(u32, usize)]], data: &[&[u8]]) -> Vec<u8> {
        let mut w = BitWriter::default();
        for h in headers {
            for &(v, n) in *h {
                w.put(v, n);
            }
        }
        let mut out = (w.bits as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&w.bytes);
        for d in data {
            out.extend_from_slice(d);
        }
        out
    }

    fn hbr_payload(aus: &[&[u8]]) -> Vec<u8> {
        let headers: Vec<Vec<(u32, usize)>> = aus.iter().map(|a| vec![(a.len() as u32, 13), (0, 3)]).collect();
        let refs: Vec<&[(u32, usize)]> = headers.iter().map(|h| &h[..]).collect();
        generic_payload(&refs, aus)
    }

    fn pull_all(d: &mut Depacketizer) -> Vec<AudioFrame> {
        std::iter::from_fn(|| d.pull()).collect()
    }

    #[test]
    fn hbr_one_au() {
        let mut d = Depacketizer::new(&media(HBR), 1 << 20).unwrap();
        let a = au(300, 1);
        let p = packet(1, 5000, true, hbr_payload(&[&a]));
        d.push(&p, 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!(f.codec, AudioCodec::Aac);
        assert_eq!(f.timestamp, 5000);
        assert_eq!(f.data, a);
        assert_eq!((f.sample_count, f.sample_rate, f.channels, f.loss), (1024, 44100, 2, 0));
        assert_eq!(f.data.as_ptr(), p.payload[4..].as_ptr(), "zero-copy");
        assert_eq!(d.pull(), None);
    }

    #[test]
    fn hbr_three_aus() {
        let mut d = Depacketizer::new(&media(HBR), 1 << 20).unwrap();
        let (a, b, c) = (au(10, 1), au(200, 2), au(7, 3));
        d.push(&packet(1, u32::MAX - 100, true, hbr_payload(&[&a, &b, &c])), 3)
            .unwrap();
        let f = pull_all(&mut d);
        assert_eq!(f.len(), 3);
        assert_eq!(
            f.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            [u32::MAX - 100, 923, 1947]
        );
        assert_eq!(f.iter().map(|f| f.loss).collect::<Vec<_>>(), [3, 0, 0]);
        assert_eq!(
            (&f[0].data[..], &f[1].data[..], &f[2].data[..]),
            (&a[..], &b[..], &c[..])
        );
    }

    #[test]
    fn index_delta_and_cts() {
        // Interleaved: index deltas 0 and 2 → frame offsets 0, 1, 4.
        let mut d = Depacketizer::new(&media(HBR), 1 << 20).unwrap();
        let p = generic_payload(
            &[&[(2, 13), (5, 3)], &[(1, 13), (0, 3)], &[(3, 13), (2, 3)]],
            &[b"ab", b"c", b"def"],
        );
        d.push(&packet(1, 0, true, p), 0).unwrap();
        let ts: Vec<u32> = pull_all(&mut d).iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, [0, 1024, 4096]);

        // CTS-delta (8 bits, signed) overrides the index.
        let m = media(
            "a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3;ctsdeltalength=8;dtsdeltalength=4\r\n",
        );
        let mut d = Depacketizer::new(&m, 1 << 20).unwrap();
        let p = generic_payload(
            &[
                &[(2, 13), (0, 3), (0, 1), (1, 1), (3, 4)],
                &[(1, 13), (0, 3), (1, 1), (0xF0, 8), (0, 1)],
                &[(1, 13), (0, 3), (0, 1), (0, 1)],
            ],
            &[b"ab", b"c", b"d"],
        );
        d.push(&packet(1, 1000, true, p), 0).unwrap();
        let f = pull_all(&mut d);
        let ts: Vec<u32> = f.iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, [1000, 1000 - 16, 1000 + 2048]);
        assert_eq!(f[2].data, &b"d"[..]);
    }

    #[test]
    fn fragmented_au() {
        let mut d = Depacketizer::new(&media(HBR), 1 << 20).unwrap();
        let a = au(3000, 9);
        let frag = |part: &[u8]| generic_payload(&[&[(3000, 13), (0, 3)]], &[part]);
        d.push(&packet(10, 7000, false, frag(&a[..1200])), 2).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(11, 7000, false, frag(&a[1200..2400])), 0).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(12, 7000, true, frag(&a[2400..])), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.timestamp, f.loss), (7000, 2));
        assert_eq!(f.data, a);
        assert_eq!(d.pull(), None);

        // Then a whole AU.
        d.push(&packet(13, 8024, true, hbr_payload(&[b"xyz"])), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, &b"xyz"[..]);
    }

    #[test]
    fn fragmented_au_with_loss() {
        let mut d = Depacketizer::new(&media(HBR), 1 << 20).unwrap();
        let a = au(3000, 9);
        let frag = |part: &[u8]| generic_payload(&[&[(3000, 13), (0, 3)]], &[part]);
        d.push(&packet(10, 7000, false, frag(&a[..1200])), 0).unwrap();
        // Packet 11 lost.
        d.push(&packet(12, 7000, true, frag(&a[2400..])), 1).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(13, 8024, true, hbr_payload(&[b"next"])), 0).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.timestamp, f.loss, &f.data[..]), (8024, 1, &b"next"[..]));

        // First fragment lost: the rest is dropped quietly.
        d.push(&packet(15, 9048, false, frag(&a[1200..2400])), 1).unwrap();
        d.push(&packet(16, 9048, true, frag(&a[2400..])), 0).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(17, 10072, true, hbr_payload(&[b"n"])), 0).unwrap();
        assert_eq!(d.pull().unwrap().loss, 1);

        // A fragment left unfinished without loss is reported.
        d.push(&packet(18, 11096, false, frag(&a[..1200])), 0).unwrap();
        assert!(matches!(
            d.push(&packet(19, 12120, true, hbr_payload(&[b"m"])), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert_eq!(d.pull().unwrap().data, &b"m"[..]);
        // And a last fragment that leaves the AU short.
        d.push(&packet(20, 13144, false, frag(&a[..1200])), 0).unwrap();
        assert!(matches!(
            d.push(&packet(21, 13144, true, frag(&a[..100])), 0),
            Err(DepacketizeError::Malformed { .. })
        ));
        assert_eq!(d.pull(), None);
    }

    #[test]
    fn lbr() {
        let m = media(LBR);
        let mut d = Depacketizer::new(&m, 1 << 20).unwrap();
        let (a, b) = (au(40, 1), au(63, 2));
        let p = generic_payload(&[&[(40, 6), (0, 2)], &[(63, 6), (0, 2)]], &[&a, &b]);
        assert_eq!(p[..3], [0, 16, (40 << 2)]);
        d.push(&packet(1, 0, true, p), 0).unwrap();
        let f = pull_all(&mut d);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].sample_rate, f[0].channels), (48000, 1));
        assert_eq!((f[1].timestamp, &f[1].data[..]), (1024, &b[..]));
    }

    #[test]
    fn constant_size_without_headers() {
        let m = media("a=rtpmap:97 mpeg4-generic/8000\r\na=fmtp:97 mode=AAC-x;config=1588;constantSize=4\r\n");
        let mut d = Depacketizer::new(&m, 1 << 20).unwrap();
        d.push(&packet(1, 0, true, &b"aaaabbbbcccc"[..]), 0).unwrap();
        let f = pull_all(&mut d);
        assert_eq!(f.len(), 3);
        assert_eq!((f[2].timestamp, &f[2].data[..]), (2048, &b"cccc"[..]));
        assert!(d.push(&packet(2, 0, true, &b"aaaab"[..]), 0).is_err());
    }

    #[test]
    fn garbage() {
        let mut d = Depacketizer::new(&media(HBR), 1 << 20).unwrap();
        let malformed = |r: Result<(), DepacketizeError>| matches!(r, Err(DepacketizeError::Malformed { .. }));
        assert_eq!(
            d.push(&packet(1, 0, true, Bytes::new()), 0),
            Err(DepacketizeError::Empty { codec: GENERIC })
        );
        assert!(malformed(d.push(&packet(2, 0, true, &[0u8][..]), 0)));
        // AU-headers-length overruns the payload.
        assert!(malformed(d.push(&packet(3, 0, true, &[0xff, 0xff, 1, 2][..]), 0)));
        // Zero-length header section.
        assert!(malformed(d.push(&packet(4, 0, true, &[0, 0, 1, 2][..]), 0)));
        // Header section not a whole number of headers.
        assert!(malformed(d.push(&packet(5, 0, true, &[0, 20, 0, 0x08, 0, 1][..]), 0)));
        // Two AUs whose sizes exceed the data.
        let mut p = hbr_payload(&[b"abc", b"def"]);
        p.pop();
        assert!(malformed(d.push(&packet(6, 0, true, p), 0)));
        // Sizes smaller than the data.
        let mut p = hbr_payload(&[b"abc"]);
        p.push(0);
        assert!(malformed(d.push(&packet(7, 0, true, p), 0)));
        assert_eq!(d.pull(), None);
        // Still usable.
        d.push(&packet(8, 0, true, hbr_payload(&[b"ok"])), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, &b"ok"[..]);
    }

    #[test]
    fn too_large() {
        let mut d = Depacketizer::new(&media(HBR), 100).unwrap();
        let big = au(101, 0);
        let small = au(100, 0);
        assert_eq!(
            d.push(&packet(1, 0, true, hbr_payload(&[&big, &small])), 0),
            Err(DepacketizeError::FrameTooLarge {
                codec: GENERIC,
                limit: 100
            })
        );
        let f = pull_all(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].timestamp, f[0].data.len()), (1024, 100));

        // A fragmented one: the error once, its other fragments skipped.
        let a = au(3000, 0);
        let frag = |part: &[u8]| generic_payload(&[&[(3000, 13), (0, 3)]], &[part]);
        assert!(matches!(
            d.push(&packet(2, 2048, false, frag(&a[..50])), 0),
            Err(DepacketizeError::FrameTooLarge { .. })
        ));
        d.push(&packet(3, 2048, false, frag(&a[50..100])), 0).unwrap();
        d.push(&packet(4, 2048, true, frag(&a[100..150])), 0).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&packet(5, 3072, true, hbr_payload(&[b"ok"])), 0).unwrap();
        assert_eq!(d.pull().unwrap().data, &b"ok"[..]);
    }

    #[test]
    fn setup() {
        assert!(matches!(
            Depacketizer::new(&media("a=rtpmap:97 PCMU/8000\r\n"), 1000),
            Err(SetupError::UnsupportedCodec(_))
        ));
        assert!(matches!(
            Depacketizer::new(
                &media("a=rtpmap:97 mpeg4-generic/44100\r\na=fmtp:97 mode=AAC-hbr\r\n"),
                1000
            ),
            Err(SetupError::Sdp(SdpError::MissingParam { .. }))
        ));
        assert!(matches!(
            Depacketizer::new(
                &media("a=rtpmap:97 mpeg4-generic/44100\r\na=fmtp:97 mode=CELP-cbr;constantSize=20\r\n"),
                1000
            ),
            Err(SetupError::UnsupportedCodec(_))
        ));
        // A mode whose third byte is inside a multi-byte character (found by
        // the `sdp` fuzz target: slicing it by bytes panicked).
        assert!(matches!(
            Depacketizer::new(
                &media("a=rtpmap:97 mpeg4-generic/44100\r\na=fmtp:97 mode=A\u{cb18f};sizelength=13\r\n"),
                1000
            ),
            Err(SetupError::UnsupportedCodec(_))
        ));
        // No config: 1024 samples at the clock rate.
        let mut d = Depacketizer::new(
            &media("a=rtpmap:97 mpeg4-generic/16000/1\r\na=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3\r\n"),
            1000,
        )
        .unwrap();
        d.push(&packet(1, 0, true, hbr_payload(&[b"a", b"b"])), 0).unwrap();
        let f = pull_all(&mut d);
        assert_eq!((f[1].timestamp, f[1].sample_rate, f[1].channels), (1024, 16000, 1));
        // HE-AAC with implicit SBR: 24 kHz core, 48 kHz RTP clock → 2048 ticks.
        let mut d = Depacketizer::new(
            &media("a=rtpmap:97 mpeg4-generic/48000/2\r\na=fmtp:97 mode=AAC-hbr;config=1310;sizelength=13;indexlength=3;indexdeltalength=3\r\n"),
            1000,
        )
        .unwrap();
        d.push(&packet(1, 0, true, hbr_payload(&[b"a", b"b"])), 0).unwrap();
        let f = pull_all(&mut d);
        assert_eq!((f[1].timestamp, f[1].sample_rate), (2048, 24000));
    }

    fn round_trip(aus: &[Vec<u8>], max_payload: usize) -> Vec<Bytes> {
        let mut p = Packetizer::new(max_payload);
        let mut d = Depacketizer::new(&media(HBR), DEFAULT_MAX).unwrap();
        let mut seq = 0u16;
        let mut out = Vec::new();
        for (i, a) in aus.iter().enumerate() {
            let payloads = p.packetize(a);
            let n = payloads.len();
            for (k, payload) in payloads.into_iter().enumerate() {
                assert!(payload.len() <= max_payload.max(5));
                let pkt = packet(seq, 1000 + 1024 * i as u32, k + 1 == n, payload);
                seq = seq.wrapping_add(1);
                d.push(&pkt, 0).unwrap();
                while let Some(f) = d.pull() {
                    assert_eq!(f.timestamp, 1000 + 1024 * i as u32);
                    out.push(f.data);
                }
            }
        }
        out
    }

    const DEFAULT_MAX: usize = crate::codec::DEFAULT_MAX_FRAME_BYTES;

    #[test]
    fn packetizer_layout() {
        let mut p = Packetizer::new(10);
        let out = p.packetize(b"abcdefghij");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0][..], [0, 16, 0, 80, b'a', b'b', b'c', b'd', b'e', b'f']);
        assert_eq!(out[1][..], [0, 16, 0, 80, b'g', b'h', b'i', b'j']);
        assert!(p.packetize(b"").is_empty());
        assert!(p.packetize(&[0; MAX_HBR_ACCESS_UNIT + 1]).is_empty());
        assert_eq!(
            p.packetize(&[0; MAX_HBR_ACCESS_UNIT]).len(),
            MAX_HBR_ACCESS_UNIT.div_ceil(6)
        );
        assert_eq!(Packetizer::new(0).packetize(b"ab").len(), 2);
        let aus = vec![b"ab".to_vec(), vec![7; 300], b"c".to_vec()];
        assert_eq!(round_trip(&aus, 100), aus);
    }

    #[test]
    fn aggregate_layout() {
        let mut p = Packetizer::new(20);
        let aus: Vec<&[u8]> = vec![b"abc", b"de", b"", b"fghijklmnopqrstuvwxyz", b"12345678", b"9"];
        let out = p.aggregate(&aus);
        let summary: Vec<(usize, usize, bool, usize)> = out
            .iter()
            .map(|a| (a.first_access_unit, a.access_units, a.marker, a.data.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (0, 2, true, 2 + 4 + 5),
                (3, 1, false, 20),
                (3, 1, true, 4 + 5),
                (4, 2, true, 2 + 4 + 9)
            ]
        );
        assert_eq!(out[0].data[..6], [0, 32, 0, 24, 0, 16]);
    }

    proptest! {
        #[test]
        fn packetizer_round_trip(
            aus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..4000), 1..12),
            max_payload in 100usize..1400,
        ) {
            prop_assert_eq!(round_trip(&aus, max_payload), aus);
        }

        #[test]
        fn aggregate_round_trip(
            aus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..600), 1..30),
            max_payload in 100usize..1400,
        ) {
            let mut p = Packetizer::new(max_payload);
            let mut d = Depacketizer::new(&media(HBR), DEFAULT_MAX).unwrap();
            let mut got = Vec::new();
            for (seq, a) in p.aggregate(&aus).into_iter().enumerate() {
                prop_assert!(a.data.len() <= max_payload);
                let ts = 1024 * a.first_access_unit as u32;
                d.push(&packet(seq as u16, ts, a.marker, a.data), 0).unwrap();
                while let Some(f) = d.pull() {
                    got.push((f.timestamp, f.data.to_vec()));
                }
            }
            let want: Vec<(u32, Vec<u8>)> = aus.iter().enumerate().map(|(i, a)| (1024 * i as u32, a.clone())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn generic_never_panics(
            fmtp in proptest::sample::select(&[
                "sizelength=13;indexlength=3;indexdeltalength=3",
                "sizelength=6;indexlength=2;indexdeltalength=2;ctsdeltalength=5;dtsdeltalength=3",
                "sizelength=32;indexlength=1",
                "indexlength=1;constantSize=3",
                "constantSize=5",
            ][..]),
            packets in arbitrary_packets(),
        ) {
            let m = media(&format!("a=rtpmap:97 mpeg4-generic/44100/2\r\na=fmtp:97 mode=AAC-hbr;config=1210;{fmtp}\r\n"));
            let mut d = Depacketizer::new(&m, 1000).unwrap();
            for (seq, (ts, marker, payload, lost)) in packets.into_iter().enumerate() {
                let _ = d.push(&packet(seq as u16, ts, marker, payload), lost);
                while let Some(f) = d.pull() {
                    prop_assert!(f.data.len() <= 1000);
                }
            }
        }

        #[test]
        fn fixed_width_headers_match_the_general_reader(
            fmtp in proptest::sample::select(&[
                "sizelength=13;indexlength=3;indexdeltalength=3",
                "sizelength=6;indexlength=2;indexdeltalength=2",
                "sizelength=16",
                "sizelength=32",
                "sizelength=21;indexlength=11;indexdeltalength=11",
            ][..]),
            packets in proptest::collection::vec(
                (any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40), 0u32..2),
                0..30,
            ),
            au_headers_length in proptest::collection::vec(0u16..80, 30),
        ) {
            let m = media(&format!("a=rtpmap:97 mpeg4-generic/44100/2\r\na=fmtp:97 mode=AAC-hbr;config=1210;{fmtp}\r\n"));
            let mut fast = Depacketizer::new(&m, 1000).unwrap();
            prop_assert!(fast.fixed_header_bits.is_some());
            let mut general = Depacketizer::new(&m, 1000).unwrap();
            general.fixed_header_bits = None;
            for (seq, (ts, marker, mut payload, lost)) in packets.into_iter().enumerate() {
                // Plausible AU-headers-length values, so that headers get parsed.
                if payload.len() >= 2 {
                    payload[..2].copy_from_slice(&au_headers_length[seq].to_be_bytes());
                }
                let a = fast.push(&packet(seq as u16, ts, marker, payload.clone()), lost);
                let b = general.push(&packet(seq as u16, ts, marker, payload), lost);
                prop_assert_eq!(a, b);
                prop_assert_eq!(pull_all(&mut fast), pull_all(&mut general));
            }
        }
    }
}
