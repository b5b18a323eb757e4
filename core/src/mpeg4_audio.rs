//! MPEG-4 audio configuration (ISO/IEC 14496-3): the AudioSpecificConfig
//! (1.6.2.1) and the LATM StreamMuxConfig (1.7.3), read with one MSB-first
//! [`BitReader`].
//!
//! This is the crate's only parser of these structures and its only bit
//! reader: the SDP accessors ([`crate::sdp::parse_audio_specific_config`],
//! [`crate::sdp::audio_specific_config_from_stream_mux_config`] and through
//! it `Media::mp4a_latm`) and the AAC depacketizers (the AudioSpecificConfig
//! for sample rate, channels and frame length; the StreamMuxConfig for the
//! LATM framing; the bit reader for RFC 3640 AU headers) all use it.
//!
//! It is **not** a payload parser (AU headers and AudioMuxElements are read
//! by `codec::aac`), and it reads only what depacketizers need: AAC object
//! types 1, 2, 3, 4, 6 and 7, optionally behind explicit SBR/PS signalling;
//! no program_config_element contents, no audioMuxVersion 1, one program
//! and one layer. It does not know about SDP: errors are short static
//! reasons that callers wrap (`SdpError::BadAudioSpecificConfig`,
//! `SdpError::BadStreamMuxConfig`).

use bytes::{BufMut, Bytes, BytesMut};

/// MSB-first bit reader over a byte slice, bounded by a limit in bits.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// At most `8 * data.len()`.
    limit: usize,
}

impl<'a> BitReader<'a> {
    /// A reader of all of `data`.
    #[inline]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            limit: data.len() * 8,
        }
    }

    /// A reader of the first `limit` bits of `data`; the caller makes sure
    /// that `limit` is at most `8 * data.len()` (the RFC 3640 reader checks
    /// the AU-headers-length against the payload first; clamping here would
    /// cost every packet). The bytes after the limit are still loaded with
    /// the bits before it, which lets reads near the limit take whole words.
    #[inline]
    pub(crate) fn with_limit(data: &'a [u8], limit: usize) -> Self {
        debug_assert!(limit <= data.len() * 8, "bit limit past the data");
        BitReader { data, pos: 0, limit }
    }

    /// Bits read so far.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Reads `n` (at most 32) bits, or `None` past the limit (then nothing
    /// is consumed).
    ///
    /// Loads the (up to) 8 bytes from the current byte big-endian into one
    /// word and shifts the field out of it: no loop over bits.
    #[inline]
    pub(crate) fn read(&mut self, n: u8) -> Option<u32> {
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

/// The fields of an MPEG-4 AudioSpecificConfig that depacketizers need
/// (ISO/IEC 14496-3 1.6.2.1), see [`crate::sdp::parse_audio_specific_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// Audio object type of the core codec (2 for AAC-LC). With explicit
    /// SBR/PS signalling (types 5 and 29) this is the underlying type.
    pub object_type: u8,
    /// Core sampling frequency in Hz.
    pub sample_rate: u32,
    /// Channel count derived from the channel configuration; 0 when the
    /// channels are defined by a program_config_element (not parsed).
    pub channels: u8,
    /// Raw channelConfiguration field (0..=15).
    pub channel_configuration: u8,
    /// Samples per frame: 1024, or 960 when frameLengthFlag is set.
    pub frame_length: u32,
    /// SBR output sampling frequency with explicit SBR/PS signalling.
    pub extension_sample_rate: Option<u32>,
}

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];
const TRUNCATED: &str = "truncated";

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, &'static str> {
    let t = r.read(5).ok_or(TRUNCATED)?;
    let t = if t == 31 { 32 + r.read(6).ok_or(TRUNCATED)? } else { t };
    Ok(t as u8) // at most 32 + 63
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, &'static str> {
    let index = r.read(4).ok_or(TRUNCATED)? as usize;
    if let Some(rate) = SAMPLE_RATES.get(index) {
        return Ok(*rate);
    }
    if index != 0xf {
        return Err("reserved sampling frequency index");
    }
    match r.read(24).ok_or(TRUNCATED)? {
        0 => Err("sampling frequency 0"),
        rate => Ok(rate),
    }
}

impl AudioConfig {
    /// Parses an AudioSpecificConfig for the AAC object types 1, 2, 3, 4, 6
    /// and 7 (optionally with explicit SBR/PS signalling). Trailing bits are
    /// ignored.
    pub(crate) fn parse(asc: &[u8]) -> Result<AudioConfig, &'static str> {
        Self::read(&mut BitReader::new(asc), false)
    }

    /// Reads an AudioSpecificConfig. With `need_end`, every bit of it must
    /// be understood so that the reader ends just after it (a channel
    /// configuration of 0, whose program_config_element is not parsed, is
    /// an error then); otherwise reading may stop at a
    /// program_config_element.
    pub(crate) fn read(r: &mut BitReader<'_>, need_end: bool) -> Result<AudioConfig, &'static str> {
        let mut object_type = read_object_type(r)?;
        let sample_rate = read_sample_rate(r)?;
        let channel_configuration = r.read(4).ok_or(TRUNCATED)? as u8;
        let mut extension_sample_rate = None;
        if object_type == 5 || object_type == 29 {
            extension_sample_rate = Some(read_sample_rate(r)?);
            object_type = read_object_type(r)?;
        }
        if !matches!(object_type, 1 | 2 | 3 | 4 | 6 | 7) {
            return Err("unsupported audio object type");
        }
        let channels = match channel_configuration {
            0..=6 => channel_configuration,
            7 => 8,
            11 => 7,
            12 => 8,
            13 => 24,
            14 => 8,
            _ => return Err("reserved channel configuration"),
        };
        // GASpecificConfig
        let frame_length_flag = r.read(1).ok_or(TRUNCATED)?;
        if r.read(1).ok_or(TRUNCATED)? == 1 {
            r.read(14).ok_or(TRUNCATED)?; // coreCoderDelay
        }
        let extension_flag = r.read(1).ok_or(TRUNCATED)?;
        let config = AudioConfig {
            object_type,
            sample_rate,
            channels,
            channel_configuration,
            frame_length: if frame_length_flag == 1 { 960 } else { 1024 },
            extension_sample_rate,
        };
        if channel_configuration == 0 {
            if need_end {
                return Err("program_config_element unsupported");
            }
            return Ok(config);
        }
        if object_type == 6 {
            r.read(3).ok_or(TRUNCATED)?; // layerNr
        }
        if extension_flag == 1 {
            r.read(1).ok_or(TRUNCATED)?; // extensionFlag3
        }
        Ok(config)
    }
}

/// A StreamMuxConfig read up to the end of its AudioSpecificConfig:
/// `audioMuxVersion` 0 with one program and one layer, and an
/// AudioSpecificConfig that [`AudioConfig::read`] reads to its end.
#[derive(Debug, Clone)]
pub(crate) struct StreamMuxConfig<'a> {
    config: &'a [u8],
    /// allStreamsSameTimeFraming.
    same_time_framing: bool,
    /// numSubFrames + 1.
    sub_frames: usize,
    /// Bit range of the AudioSpecificConfig in `config`.
    asc: (usize, usize),
}

/// The parts of an MP4A-LATM StreamMuxConfig that shape an AudioMuxElement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MuxConfig {
    /// numSubFrames + 1: access units per AudioMuxElement.
    pub(crate) sub_frames: usize,
    /// otherDataLenBits, when otherDataPresent.
    pub(crate) other_data_bits: Option<u64>,
}

impl<'a> StreamMuxConfig<'a> {
    /// Reads `config` up to the end of its AudioSpecificConfig.
    pub(crate) fn parse(config: &'a [u8]) -> Result<Self, &'static str> {
        let mut r = BitReader::new(config);
        if r.read(1).ok_or(TRUNCATED)? != 0 {
            return Err("audioMuxVersion 1 unsupported");
        }
        let same_time_framing = r.read(1).ok_or(TRUNCATED)? == 1;
        let sub_frames = r.read(6).ok_or(TRUNCATED)? as usize + 1;
        let num_program = r.read(4).ok_or(TRUNCATED)?;
        let num_layer = r.read(3).ok_or(TRUNCATED)?;
        if num_program != 0 || num_layer != 0 {
            return Err("more than one program or layer unsupported");
        }
        let start = r.pos();
        AudioConfig::read(&mut r, true)?;
        Ok(StreamMuxConfig {
            config,
            same_time_framing,
            sub_frames,
            asc: (start, r.pos()),
        })
    }

    /// The AudioSpecificConfig, realigned to a byte boundary and
    /// zero-padded.
    pub(crate) fn audio_specific_config(&self) -> Bytes {
        let (start, end) = self.asc;
        let mut r = BitReader {
            data: self.config,
            pos: start,
            limit: end,
        };
        let mut out = BytesMut::with_capacity((end - start).div_ceil(8));
        let mut remaining = end - start;
        while remaining > 0 {
            let n = remaining.min(8);
            // The bits were read once already: this cannot fail.
            let Some(bits) = r.read(n as u8) else { break };
            out.put_u8((bits << (8 - n)) as u8);
            remaining -= n;
        }
        out.freeze()
    }

    /// The AudioMuxElement framing that follows the AudioSpecificConfig.
    /// Only `allStreamsSameTimeFraming` and `frameLengthType` 0 are
    /// supported. Fields missing at the end of a short config take their
    /// usual values (frameLengthType 0, no other data).
    pub(crate) fn mux_config(&self) -> Result<MuxConfig, &'static str> {
        if !self.same_time_framing {
            return Err("allStreamsSameTimeFraming 0 unsupported");
        }
        let mut r = BitReader::new(self.config);
        r.pos = self.asc.1;
        let mut mux = MuxConfig {
            sub_frames: self.sub_frames,
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
                let escape = r.read(1).ok_or(TRUNCATED)?;
                let tmp = r.read(8).ok_or(TRUNCATED)?;
                bits = bits.saturating_mul(256).saturating_add(u64::from(tmp));
                if escape == 0 {
                    break;
                }
            }
            mux.other_data_bits = Some(bits);
        }
        Ok(mux)
    }
}

/// Reads the AudioMuxElement framing from a StreamMuxConfig (see
/// [`StreamMuxConfig::parse`] and [`StreamMuxConfig::mux_config`]).
pub(crate) fn parse_mux_config(config: &[u8]) -> Result<MuxConfig, &'static str> {
    StreamMuxConfig::parse(config)?.mux_config()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// AAC-LC, 44.1 kHz, stereo, in a StreamMuxConfig with frameLengthType
    /// 0 and latmBufferFullness 0xff.
    const SMC: [u8; 6] = [0x40, 0x00, 0x24, 0x20, 0x3f, 0xc0];

    #[test]
    fn stream_mux_config_parts() {
        let c = StreamMuxConfig::parse(&SMC).unwrap();
        assert_eq!(c.audio_specific_config(), &[0x12, 0x10][..]);
        assert_eq!(
            c.mux_config(),
            Ok(MuxConfig {
                sub_frames: 1,
                other_data_bits: None
            })
        );
        // allStreamsSameTimeFraming 0: the ASC is still there, the framing is not.
        let c = StreamMuxConfig::parse(&[0x00, 0x00, 0x24, 0x20, 0x3f, 0xc0]).unwrap();
        assert_eq!(c.audio_specific_config(), &[0x12, 0x10][..]);
        assert_eq!(c.mux_config(), Err("allStreamsSameTimeFraming 0 unsupported"));
        assert_eq!(
            StreamMuxConfig::parse(&[0x40, 0x80]).unwrap_err(),
            "more than one program or layer unsupported"
        );
        assert_eq!(StreamMuxConfig::parse(&[0x40, 0x00]).unwrap_err(), TRUNCATED);
        // Channel configuration 0 (a program_config_element) cannot be skipped.
        assert_eq!(
            StreamMuxConfig::parse(&[0x40, 0x00, 0x24, 0x00, 0x3f, 0xc0]).unwrap_err(),
            "program_config_element unsupported"
        );
        assert_eq!(AudioConfig::parse(&[0x12, 0x00]).unwrap().channels, 0);
    }

    #[test]
    fn mux_config_tail() {
        // Two subframes per element and other data of 8 bits.
        assert_eq!(
            parse_mux_config(&[0x41, 0x00, 0x24, 0x20, 0x3f, 0xe0, 0x80]),
            Ok(MuxConfig {
                sub_frames: 2,
                other_data_bits: Some(8)
            })
        );
        // Short: no frameLengthType, or no latmBufferFullness.
        assert_eq!(parse_mux_config(&SMC[..4]).unwrap().other_data_bits, None);
        assert_eq!(parse_mux_config(&SMC[..5]).unwrap().other_data_bits, None);
        // frameLengthType 1.
        assert_eq!(
            parse_mux_config(&[0x40, 0x00, 0x24, 0x20, 0x7f, 0xc0]),
            Err("frameLengthType other than 0 unsupported")
        );
        // otherDataPresent with the length cut short.
        assert_eq!(parse_mux_config(&[0x40, 0x00, 0x24, 0x20, 0x3f, 0xe0]), Err(TRUNCATED));
    }

    proptest! {
        #[test]
        fn bits_match_a_bit_at_a_time_reader(
            data in proptest::collection::vec(any::<u8>(), 0..12),
            widths in proptest::collection::vec(0u8..40, 0..20),
            limit_cut in 0usize..9,
        ) {
            let limit = (data.len() * 8).saturating_sub(limit_cut);
            let mut r = BitReader::with_limit(&data, limit);
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
                prop_assert_eq!(r.pos(), pos);
            }
        }

        #[test]
        fn mux_config_never_panics(data in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = parse_mux_config(&data);
        }

        #[test]
        fn realigned_asc_reads_the_same(data in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok(c) = StreamMuxConfig::parse(&data) {
                let mut r = BitReader::new(&data);
                r.pos = c.asc.0;
                let inside = AudioConfig::read(&mut r, true).unwrap();
                prop_assert_eq!(AudioConfig::parse(&c.audio_specific_config()), Ok(inside));
            }
        }
    }
}
