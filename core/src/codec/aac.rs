//! AAC audio over RTP: RFC 3640 `mpeg4-generic` and RFC 3016 `MP4A-LATM`
//! depacketizers, and an RFC 3640 AAC-hbr packetizer for the server.
//!
//! Both depacketizers emit raw AAC access units (no ADTS header, no LATM
//! framing), one [`AudioFrame`] per access unit, with `sample_count`,
//! `sample_rate` and `channels` taken from the AudioSpecificConfig in the
//! SDP. A frame's timestamp is in the RTP clock: when a packet carries
//! several access units, each one after the first is placed
//! `frame_length * clock_rate / sample_rate` ticks later (1024 ticks for
//! AAC-LC when the RTP clock runs at the sampling rate).
//!
//! # `mpeg4-generic` (RFC 3640)
//!
//! The AU header layout comes from the SDP (`sizeLength`, `indexLength`,
//! `indexDeltaLength`, `CTSDeltaLength`, `DTSDeltaLength`, `constantSize`),
//! so AAC-hbr (13/3/3), AAC-lbr (6/2/2) and other layouts all work. Not
//! supported: the auxiliary section (`auxiliaryDataSizeLength` is not
//! parsed, so it is taken as absent), `randomAccessIndication` and
//! `streamStateIndication` header fields.
//!
//! Interleaving is honoured for timestamps but not for order: the AU with
//! index delta `d` is placed `d + 1` frame durations after the previous AU
//! of the packet (or at the RTP timestamp plus its CTS-delta when one is
//! sent), but frames are emitted in packet order, not re-sorted across
//! packets.
//!
//! An access unit larger than one packet is carried in fragments: packets
//! with one AU header giving the whole AU size, the same RTP timestamp, and
//! the marker bit on the last one. Fragments are joined and the AU emitted
//! once all its bytes are there. Loss while joining drops the AU.
//!
//! # `MP4A-LATM` (RFC 3016)
//!
//! Only out-of-band configuration (`cpresent=0` with `config`) is
//! supported, with `audioMuxVersion` 0, one program and layer,
//! `allStreamsSameTimeFraming` and `frameLengthType` 0 — what cameras send.
//! A packet holds one or more AudioMuxElements, or a fragment of one (the
//! marker bit is set on the packet completing an element). Each element
//! holds `numSubFrames + 1` access units, each preceded by its length
//! coded as a run of `255` bytes plus a last byte below 255.
//!
//! # Errors and loss
//!
//! A malformed packet makes [`DepacketizeError::Malformed`] and drops what
//! was being assembled; nothing is emitted from a packet (or a joined
//! element) that does not parse completely. Packets lost before a frame
//! are counted in its [`AudioFrame::loss`]. Nothing here panics on any
//! input.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::{AudioCodec, AudioFrame, DepacketizeError, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::{parse_audio_specific_config, Media, SdpError};

const GENERIC: &str = "MPEG4-GENERIC";
const LATM: &str = "MP4A-LATM";

/// Largest AU the AAC-hbr [`Packetizer`] can describe (13-bit AU-size).
pub const MAX_HBR_ACCESS_UNIT: usize = (1 << 13) - 1;

/// MSB-first bit reader over a byte slice, bounded by `limit` bits.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    limit: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            limit: data.len() * 8,
        }
    }

    /// Reads `n` (at most 32) bits, or `None` past the limit.
    ///
    /// Loads the (up to) 8 bytes from the current byte big-endian into one
    /// word and shifts the field out of it: no loop over bits.
    fn read(&mut self, n: u8) -> Option<u32> {
        let n = u32::from(n.min(32));
        if self.limit - self.pos < n as usize {
            return None;
        }
        if n == 0 {
            return Some(0);
        }
        let at = self.pos / 8;
        // `limit <= 8 * data.len()`, so at least one byte is there.
        let rest = &self.data[at..];
        let word = match rest.first_chunk::<8>() {
            Some(w) => u64::from_be_bytes(*w),
            // Byte by byte near the end: a copy into an array read back as
            // a word would stall on store forwarding.
            None => rest
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, &b)| w | u64::from(b) << (56 - 8 * i)),
        };
        // At most 7 + 32 bits of the word are used.
        let v = (word << (self.pos % 8)) >> (64 - n);
        self.pos += n as usize;
        Some(v as u32)
    }
}

/// What every emitted frame of a track shares.
#[derive(Debug, Clone, Copy)]
struct AudioParams {
    sample_rate: u32,
    channels: u16,
    frame_length: u32,
    /// RTP ticks per frame.
    step: u32,
}

impl AudioParams {
    fn new(sample_rate: u32, channels: u16, frame_length: u32, clock_rate: u32) -> Self {
        let step = if clock_rate == 0 || sample_rate == 0 || clock_rate == sample_rate {
            frame_length
        } else {
            let ticks = u64::from(frame_length) * u64::from(clock_rate) / u64::from(sample_rate);
            u32::try_from(ticks).unwrap_or(u32::MAX)
        };
        AudioParams {
            sample_rate,
            channels: channels.max(1),
            frame_length,
            step,
        }
    }

    /// From the AudioSpecificConfig `asc`, falling back to the rtpmap
    /// channel count when the ASC leaves it to a program_config_element.
    fn from_asc(asc: &[u8], media: &Media) -> Result<Self, SetupError> {
        let c = parse_audio_specific_config(asc)?;
        let channels = match c.channels {
            0 => media.channels.unwrap_or(1),
            n => u16::from(n),
        };
        Ok(Self::new(c.sample_rate, channels, c.frame_length, media.clock_rate))
    }
}

/// Queue of emitted frames and the loss count for the next one.
#[derive(Debug)]
struct Output {
    codec: AudioCodec,
    params: AudioParams,
    loss: u32,
    frames: VecDeque<AudioFrame>,
}

impl Output {
    fn new(codec: AudioCodec, params: AudioParams) -> Self {
        Output {
            codec,
            params,
            loss: 0,
            frames: VecDeque::new(),
        }
    }

    fn emit(&mut self, timestamp: u32, data: Bytes) {
        self.frames.push_back(AudioFrame {
            codec: self.codec,
            timestamp,
            data,
            sample_count: self.params.frame_length,
            sample_rate: self.params.sample_rate,
            channels: self.params.channels,
            loss: std::mem::take(&mut self.loss),
        });
    }
}

fn malformed(codec: &'static str, what: impl Into<String>) -> DepacketizeError {
    DepacketizeError::Malformed {
        codec,
        what: what.into(),
    }
}

fn too_large(codec: &'static str, limit: usize) -> DepacketizeError {
    DepacketizeError::FrameTooLarge { codec, limit }
}

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
/// documentation](self).
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
        let mut r = Bits::new(&payload[2..]);
        r.limit = header_bits;
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
        while r.pos < header_bits {
            let start = r.pos;
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
            if r.pos == start {
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

/// The parts of an MP4A-LATM StreamMuxConfig that shape the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MuxConfig {
    /// numSubFrames + 1.
    sub_frames: usize,
    /// otherDataLenBits, when otherDataPresent.
    other_data_bits: Option<u64>,
}

/// Skips an AudioSpecificConfig of the kinds `parse_audio_specific_config`
/// accepts (ISO/IEC 14496-3 1.6.2.1 and 4.4.1), to find what follows it.
fn skip_audio_specific_config(r: &mut Bits<'_>) -> Option<()> {
    fn object_type(r: &mut Bits<'_>) -> Option<u32> {
        match r.read(5)? {
            31 => Some(32 + r.read(6)?),
            t => Some(t),
        }
    }
    fn sampling_frequency(r: &mut Bits<'_>) -> Option<()> {
        if r.read(4)? == 0xf {
            r.read(24)?;
        }
        Some(())
    }
    let mut aot = object_type(r)?;
    sampling_frequency(r)?;
    let channel_configuration = r.read(4)?;
    if aot == 5 || aot == 29 {
        sampling_frequency(r)?;
        aot = object_type(r)?;
    }
    if !matches!(aot, 1 | 2 | 3 | 4 | 6 | 7) || channel_configuration == 0 {
        return None;
    }
    r.read(1)?; // frameLengthFlag
    if r.read(1)? == 1 {
        r.read(14)?; // coreCoderDelay
    }
    let extension_flag = r.read(1)?;
    if aot == 6 {
        r.read(3)?; // layerNr
    }
    if extension_flag == 1 {
        r.read(1)?; // extensionFlag3
    }
    Some(())
}

/// Reads what the payload format depends on from a StreamMuxConfig
/// (ISO/IEC 14496-3 1.7.3). Fields missing at the end of a short config
/// take their usual values (frameLengthType 0, no other data).
fn parse_mux_config(config: &[u8]) -> Result<MuxConfig, &'static str> {
    let mut r = Bits::new(config);
    let truncated = "truncated";
    if r.read(1).ok_or(truncated)? != 0 {
        return Err("audioMuxVersion 1 unsupported");
    }
    let same_time_framing = r.read(1).ok_or(truncated)?;
    let sub_frames = r.read(6).ok_or(truncated)? as usize + 1;
    if r.read(4).ok_or(truncated)? != 0 || r.read(3).ok_or(truncated)? != 0 {
        return Err("more than one program or layer unsupported");
    }
    if same_time_framing != 1 {
        return Err("allStreamsSameTimeFraming 0 unsupported");
    }
    skip_audio_specific_config(&mut r).ok_or("unsupported AudioSpecificConfig")?;
    let mut mux = MuxConfig {
        sub_frames,
        other_data_bits: None,
    };
    match r.read(3) {
        None => return Ok(mux),
        Some(0) => {}
        Some(_) => return Err("frameLengthType other than 0 unsupported"),
    }
    if r.read(8).is_none() {
        return Ok(mux); // latmBufferFullness
    }
    if r.read(1) == Some(1) {
        let mut bits = 0u64;
        loop {
            let escape = r.read(1).ok_or(truncated)?;
            let tmp = r.read(8).ok_or(truncated)?;
            bits = bits.saturating_mul(256).saturating_add(u64::from(tmp));
            if escape == 0 {
                break;
            }
        }
        mux.other_data_bits = Some(bits);
    }
    Ok(mux)
}

/// An AudioMuxElement being joined from fragments.
#[derive(Debug)]
struct LatmPending {
    timestamp: u32,
    buf: BytesMut,
    /// Started right after a loss, so it may lack its beginning.
    after_loss: bool,
}

/// RTP depacketizer for RFC 3016 `MP4A-LATM` with out-of-band
/// configuration (`cpresent=0`). See the [module documentation](self).
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
    use crate::sdp::Sdp;
    use proptest::prelude::*;

    const HBR: &str = "a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n";
    const LBR: &str = "a=rtpmap:97 mpeg4-generic/48000/1\r\n\
a=fmtp:97 streamtype=5;mode=AAC-lbr;config=1188;sizeLength=6;indexLength=2;indexDeltaLength=2\r\n";
    const LATM_SDP: &[u8] = b"v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\na=fmtp:96 profile-level-id=15;object=2;cpresent=0;config=400024203fc0\r\n";

    fn media(lines: &str) -> Media {
        let text = format!("v=0\r\nm=audio 0 RTP/AVP 97\r\n{lines}");
        Sdp::parse(text.as_bytes()).unwrap().media.remove(0)
    }

    fn packet(seq: u16, ts: u32, marker: bool, payload: impl Into<Bytes>) -> RtpPacket {
        RtpPacket {
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0x1234,
            marker,
            payload_type: 97,
            csrc_count: 0,
            extension: None,
            padding: 0,
            payload: payload.into(),
        }
    }

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

    fn au(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn pull_all(d: &mut Depacketizer) -> Vec<AudioFrame> {
        std::iter::from_fn(|| d.pull()).collect()
    }

    fn pull_all_latm(d: &mut LatmDepacketizer) -> Vec<AudioFrame> {
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

    fn arbitrary_packets() -> impl Strategy<Value = Vec<(u32, bool, Vec<u8>, u32)>> {
        proptest::collection::vec(
            (
                0u32..4,
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..200),
                0u32..3,
            ),
            0..30,
        )
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

        #[test]
        fn bits_match_a_bit_at_a_time_reader(
            data in proptest::collection::vec(any::<u8>(), 0..12),
            widths in proptest::collection::vec(0u8..40, 0..20),
            limit_cut in 0usize..9,
        ) {
            let limit = (data.len() * 8).saturating_sub(limit_cut);
            let mut r = Bits::new(&data);
            r.limit = limit;
            let mut pos = 0usize;
            for n in widths {
                let n32 = usize::from(n.min(32));
                let want = (limit - pos >= n32).then(|| {
                    let mut v = 0u32;
                    for i in pos..pos + n32 {
                        v = (v << 1) | u32::from((data[i / 8] >> (7 - i % 8)) & 1);
                    }
                    v
                });
                prop_assert_eq!(r.read(n), want);
                if want.is_some() {
                    pos += n32;
                }
                prop_assert_eq!(r.pos, pos);
            }
        }

        #[test]
        fn mux_config_never_panics(data in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = parse_mux_config(&data);
        }
    }
}
