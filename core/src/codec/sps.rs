//! The picture size in an H.264 or H.265 sequence parameter set (SPS).
//!
//! A client that wants to say what a camera sends (a resolution column, a
//! report) needs the width and height of the pictures without decoding
//! them. They are in the SPS, which reaches the client in front of
//! keyframes (in-band, or from the SDP's `sprop-*` parameters, see
//! [`VideoFrame::new_parameters`](super::VideoFrame::new_parameters)).
//! [`resolution`] finds the SPS in an Annex B access unit; [`h264`] and
//! [`h265`] read one SPS NAL unit.
//!
//! Only the syntax up to the picture size and cropping window is read
//! (ITU-T H.264 §7.3.2.1.1 up to `frame_crop_bottom_offset`, ITU-T H.265
//! §7.3.2.2 up to `conf_win_bottom_offset`); the VUI and everything after
//! it are not. The reported size is the cropped one, the size a decoder
//! outputs. Malformed input is an [`SpsError`], never a panic.
//!
//! [`with_size`] writes an SPS whose cropping window gives another picture
//! size (the camera simulator's `resolution_change=`): everything else in
//! it, bit for bit, is the original's, so the slices that refer to it still
//! decode, to pictures of the new size.

use bytes::Bytes;

use super::nal::split_annex_b;
use super::VideoCodec;

/// What an SPS says about the pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Width in luma samples, after cropping.
    pub width: u32,
    /// Height in luma samples, after cropping (both fields of an
    /// interlaced frame).
    pub height: u32,
    /// `profile_idc` (H.264) or `general_profile_idc` (H.265).
    pub profile: u8,
    /// `level_idc` (H.264: 10 × level) or `general_level_idc` (H.265:
    /// 30 × level).
    pub level: u8,
}

/// Why bytes are not a readable SPS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpsError {
    /// The NAL unit is of another type (the type is given).
    #[error("NAL unit type {0} is not an SPS")]
    NotSps(u8),
    /// The NAL unit ends before the picture size.
    #[error("SPS cut short")]
    Truncated,
    /// A field has a value the standard does not allow, or the size is
    /// out of range.
    #[error("bad SPS: {0}")]
    Invalid(&'static str),
}

/// The size of the pictures of `access_unit` (Annex B, as in a
/// [`VideoFrame`](super::VideoFrame)) from the first SPS in it; `None`
/// when it has no SPS or the SPS cannot be read. For MJPEG, the size in the
/// JPEG image's frame header (see [`super::jpeg::dimensions`]).
///
/// ```
/// use bytes::Bytes;
/// use rtsp_toolkit_core::codec::{sps, VideoCodec};
/// // The SPS of fixtures/media/h264_aac.mp4 (320x240), then the start of an IDR slice.
/// let au = Bytes::from_static(&[
///     0, 0, 0, 1, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00,
///     0x20, 0x00, 0x00, 0x06, 0x41, 0xe2, 0x85, 0x49, 0, 0, 0, 1, 0x65, 0x88,
/// ]);
/// assert_eq!(sps::resolution(VideoCodec::H264, &au), Some((320, 240)));
/// ```
pub fn resolution(codec: VideoCodec, access_unit: &Bytes) -> Option<(u32, u32)> {
    if codec == VideoCodec::Mjpeg {
        return super::jpeg::dimensions(access_unit).map(|(w, h)| (u32::from(w), u32::from(h)));
    }
    split_annex_b(access_unit)
        .iter()
        .find_map(|nal| read(codec, nal).ok().map(|i| (i.width, i.height)))
}

/// Reads an SPS NAL unit of `codec` ([`h264`] or [`h265`]); MJPEG has none
/// (an [`SpsError::Invalid`]).
pub fn read(codec: VideoCodec, nal: &[u8]) -> Result<SpsInfo, SpsError> {
    match codec {
        VideoCodec::H264 => h264(nal),
        VideoCodec::H265 => h265(nal),
        VideoCodec::Mjpeg => Err(SpsError::Invalid("MJPEG has no SPS")),
    }
}

/// Reads an H.264 SPS NAL unit (header byte included, emulation
/// prevention bytes still in).
pub fn h264(nal: &[u8]) -> Result<SpsInfo, SpsError> {
    parse_h264(nal).map(|p| p.info)
}

/// What [`with_size`] needs of an SPS besides its [`SpsInfo`].
struct Parsed {
    info: SpsInfo,
    /// The decoded picture's size in luma samples, before cropping.
    coded: (u64, u64),
    /// The units of the cropping offsets, horizontal and vertical.
    unit: (u64, u64),
    /// The cropping offsets (left, right, top, bottom), in those units.
    crop: [u64; 4],
    /// The RBSP bits from the cropping flag (`frame_cropping_flag`,
    /// `conformance_window_flag`) to the end of the offsets.
    crop_bits: (usize, usize),
}

fn parse_h264(nal: &[u8]) -> Result<Parsed, SpsError> {
    let (&header, rest) = nal.split_first().ok_or(SpsError::Truncated)?;
    let nal_type = header & 0x1f;
    if nal_type != 7 {
        return Err(SpsError::NotSps(nal_type));
    }
    let mut r = BitReader::new(rest);
    let profile = r.bits(8)? as u8;
    r.skip(8)?; // constraint_set flags and reserved bits
    let level = r.bits(8)? as u8;
    r.ue_max(31, "seq_parameter_set_id")?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue_max(3, "chroma_format_idc")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        r.ue_max(6, "bit_depth_luma_minus8")?;
        r.ue_max(6, "bit_depth_chroma_minus8")?;
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag: the lists are skipped.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue_max(12, "log2_max_frame_num_minus4")?;
    match r.ue_max(2, "pic_order_cnt_type")? {
        0 => {
            r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let crop_from = r.read;
    let crop = if r.flag()? {
        [r.ue()?, r.ue()?, r.ue()?, r.ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    let crop_bits = (crop_from, r.read);
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    // ChromaArrayType 0 (monochrome or separate planes) crops in luma
    // samples; otherwise in chroma samples (SubWidthC, SubHeightC).
    let (crop_x, crop_y) = match (separate_colour_plane, chroma_format_idc) {
        (true, _) | (_, 0) => (1, field_factor),
        (_, 1) => (2, 2 * field_factor),
        (_, 2) => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = width_mbs * 16;
    let height = height_map_units * 16 * field_factor;
    Ok(Parsed {
        info: SpsInfo {
            width: cropped(width, crop_x, crop[0], crop[1])?,
            height: cropped(height, crop_y, crop[2], crop[3])?,
            profile,
            level,
        },
        coded: (width, height),
        unit: (crop_x, crop_y),
        crop,
        crop_bits,
    })
}

/// Reads an H.265 SPS NAL unit (the 2-byte header included, emulation
/// prevention bytes still in).
pub fn h265(nal: &[u8]) -> Result<SpsInfo, SpsError> {
    parse_h265(nal).map(|p| p.info)
}

fn parse_h265(nal: &[u8]) -> Result<Parsed, SpsError> {
    if nal.len() < 2 {
        return Err(SpsError::Truncated);
    }
    let nal_type = (nal[0] >> 1) & 0x3f;
    if nal_type != 33 {
        return Err(SpsError::NotSps(nal_type));
    }
    let mut r = BitReader::new(&nal[2..]);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(SpsError::Invalid("sps_max_sub_layers_minus1 over 6"));
    }
    r.skip(1)?; // sps_temporal_id_nesting_flag
                // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3.
    r.skip(3)?; // general_profile_space, general_tier_flag
    let profile = r.bits(5)? as u8;
    r.skip(32 + 4 + 43 + 1)?; // compatibility flags, source flags, constraint and reserved bits
    let level = r.bits(8)? as u8;
    let mut sub_layers = [(false, false); 7];
    for s in sub_layers.iter_mut().take(max_sub_layers_minus1 as usize) {
        *s = (r.flag()?, r.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1))?; // reserved_zero_2bits
    }
    for &(profile_present, level_present) in sub_layers.iter().take(max_sub_layers_minus1 as usize) {
        if profile_present {
            r.skip(88)?;
        }
        if level_present {
            r.skip(8)?;
        }
    }
    r.ue_max(15, "sps_seq_parameter_set_id")?;
    let chroma_format_idc = r.ue_max(3, "chroma_format_idc")?;
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let crop_from = r.read;
    let window = if r.flag()? {
        [r.ue()?, r.ue()?, r.ue()?, r.ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    let crop_bits = (crop_from, r.read);
    let (sub_width, sub_height) = match (separate_colour_plane, chroma_format_idc) {
        (false, 1) => (2, 2),
        (false, 2) => (2, 1),
        _ => (1, 1),
    };
    Ok(Parsed {
        info: SpsInfo {
            width: cropped(width, sub_width, window[0], window[1])?,
            height: cropped(height, sub_height, window[2], window[3])?,
            profile,
            level,
        },
        coded: (width, height),
        unit: (sub_width, sub_height),
        crop: window,
        crop_bits,
    })
}

/// An SPS like `nal` (an H.264 or H.265 SPS NAL unit, header included,
/// emulation prevention bytes in) whose pictures are `width` x `height`,
/// or the nearest larger size its cropping units allow (whole chroma
/// samples: even sizes for 4:2:0). Only the cropping window changes: the
/// left and top offsets are kept, the right and bottom ones give the size,
/// and every other bit is the original's (the NAL header too), so the
/// pictures coded for `nal` decode with it, cropped to the new size.
///
/// An error when `nal` cannot be read or the size is 0 or does not fit in
/// the coded picture less its left and top offsets.
///
/// ```
/// use rtsp_toolkit_core::codec::{sps, VideoCodec};
/// // The SPS of fixtures/media/h264_aac.mp4 (320x240).
/// let nal = [
///     0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00,
///     0x00, 0x06, 0x41, 0xe2, 0x85, 0x49,
/// ];
/// let half = sps::with_size(VideoCodec::H264, &nal, 160, 120).unwrap();
/// let info = sps::h264(&half).unwrap();
/// assert_eq!((info.width, info.height), (160, 120));
/// assert!(sps::with_size(VideoCodec::H264, &nal, 400, 120).is_err());
/// ```
pub fn with_size(codec: VideoCodec, nal: &[u8], width: u32, height: u32) -> Result<Vec<u8>, SpsError> {
    let (parsed, header) = match codec {
        VideoCodec::H264 => (parse_h264(nal)?, 1),
        VideoCodec::H265 => (parse_h265(nal)?, 2),
        VideoCodec::Mjpeg => return Err(SpsError::Invalid("MJPEG has no SPS")),
    };
    let (ux, uy) = parsed.unit;
    let [left, _, top, _] = parsed.crop;
    // The offset (in units) that leaves at least `want` of `coded` after
    // `start` units: the largest whole number of units that fits.
    let offset = |coded: u64, unit: u64, start: u64, want: u32| -> Result<u64, SpsError> {
        let room = coded.saturating_sub(start.saturating_mul(unit));
        match room.checked_sub(u64::from(want)) {
            Some(spare) if want > 0 => Ok(spare / unit),
            _ => Err(SpsError::Invalid("the new size does not fit in the coded picture")),
        }
    };
    let right = offset(parsed.coded.0, ux, left, width)?;
    let bottom = offset(parsed.coded.1, uy, top, height)?;
    let rbsp = rbsp(&nal[header..]);
    let bit = |i: usize| rbsp.get(i / 8).is_some_and(|b| b >> (7 - i % 8) & 1 == 1);
    // The rbsp_stop_one_bit: the last 1 in the payload.
    let stop = (0..rbsp.len() * 8)
        .rev()
        .find(|&i| bit(i))
        .ok_or(SpsError::Invalid("no rbsp_stop_one_bit"))?;
    let (from, to) = parsed.crop_bits;
    if stop < to {
        return Err(SpsError::Truncated);
    }
    let mut w = BitWriter::default();
    (0..from).for_each(|i| w.bit(bit(i)));
    w.bit(true);
    for v in [left, right, top, bottom] {
        w.ue(v);
    }
    (to..stop).for_each(|i| w.bit(bit(i)));
    w.bit(true);
    let mut out = nal[..header].to_vec();
    escape(&w.finish(), &mut out);
    Ok(out)
}

/// The RBSP of a NAL unit payload (the bytes after its header): the
/// emulation prevention bytes (`03` after two zero bytes) taken out, as
/// this module's readers read it.
///
/// ```
/// use rtsp_toolkit_core::codec::sps;
/// assert_eq!(sps::rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]), [0, 0, 1, 0, 0, 0, 3]);
/// ```
pub fn rbsp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Appends `rbsp` to `out` with emulation prevention bytes where two zero
/// bytes are followed by a byte of 3 or less.
fn escape(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
}

/// Writes RBSP bits, MSB first.
#[derive(Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    used: u8,
}

impl BitWriter {
    fn bit(&mut self, one: bool) {
        if self.used % 8 == 0 {
            self.bytes.push(0);
            self.used = 0;
        }
        if one {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 0x80 >> self.used;
            }
        }
        self.used += 1;
    }

    /// `ue(v)`, Exp-Golomb.
    fn ue(&mut self, v: u64) {
        let v = v + 1;
        let n = 64 - v.leading_zeros();
        (1..n).for_each(|_| self.bit(false));
        (0..n).rev().for_each(|i| self.bit(v >> i & 1 == 1));
    }

    /// The bytes, the last one padded with zero bits.
    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// `size - unit * (a + b)`, checked: a positive size that fits in a `u32`.
fn cropped(size: u64, unit: u64, a: u64, b: u64) -> Result<u32, SpsError> {
    let crop = a.checked_add(b).and_then(|c| c.checked_mul(unit));
    match crop.and_then(|c| size.checked_sub(c)) {
        Some(v) if v > 0 => u32::try_from(v).map_err(|_| SpsError::Invalid("picture size out of range")),
        _ => Err(SpsError::Invalid("cropping window larger than the picture")),
    }
}

/// H.264 §7.3.2.1.1.1 `scaling_list`: only read past.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::Invalid("delta_scale out of range"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Reads bits of an RBSP from a NAL unit payload, dropping the emulation
/// prevention bytes (`00 00 03`) on the way.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: usize,
    byte: u8,
    left: u8,
    /// Bits read so far.
    read: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            zeros: 0,
            byte: 0,
            left: 0,
            read: 0,
        }
    }

    fn bit(&mut self) -> Result<u32, SpsError> {
        if self.left == 0 {
            let mut b = *self.data.get(self.pos).ok_or(SpsError::Truncated)?;
            self.pos += 1;
            if self.zeros >= 2 && b == 3 {
                b = *self.data.get(self.pos).ok_or(SpsError::Truncated)?;
                self.pos += 1;
                self.zeros = 0;
            }
            self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
            self.byte = b;
            self.left = 8;
        }
        self.left -= 1;
        self.read += 1;
        Ok(u32::from(self.byte >> self.left) & 1)
    }

    fn flag(&mut self) -> Result<bool, SpsError> {
        Ok(self.bit()? == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    fn bits(&mut self, n: u32) -> Result<u32, SpsError> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn skip(&mut self, n: u32) -> Result<(), SpsError> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    /// `ue(v)`, Exp-Golomb: values up to 2^32 - 2.
    fn ue(&mut self) -> Result<u32, SpsError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SpsError::Invalid("Exp-Golomb code longer than 32 bits"));
            }
        }
        let v = (1u64 << zeros) - 1 + u64::from(self.bits(zeros)?);
        u32::try_from(v).map_err(|_| SpsError::Invalid("Exp-Golomb value out of range"))
    }

    /// `ue(v)` that must not exceed `max`.
    fn ue_max(&mut self, max: u32, field: &'static str) -> Result<u32, SpsError> {
        let v = self.ue()?;
        if v > max {
            return Err(SpsError::Invalid(field));
        }
        Ok(v)
    }

    /// `se(v)`.
    fn se(&mut self) -> Result<i64, SpsError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn size(info: Result<SpsInfo, SpsError>) -> (u32, u32) {
        let i = info.unwrap();
        (i.width, i.height)
    }

    // SPS NAL units written by FFmpeg 5.1's libx264 and libx265 for
    // `testsrc2` at the given size (`-f h264` / `-f hevc`, first SPS).
    const X264_1080P: &str = "67640028acd940780227e5c044000003000400000300c83c60c658";
    const X264_720P_422: &str = "677a001fbcd9405005bb011000000300100000030320f1831960";
    const X264_CIF_444_CQM: &str = "67f4000d919b282c12d808800000030080000019078a14cb";
    const X264_576I: &str = "6764001eacd940b424d8088000000300800000190f8a14cb";
    const X264_QCIF_GRAY: &str = "6764000bf3650b13b016c80000030008000003019078a14cb0";
    const X265_1080P: &str = "420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000c84";
    const X265_642X362_422: &str =
        "4201010408000003009d0800000300003fb005120171c93e5959a4932bc05a020000030002000003003210";

    #[test]
    fn h264_sizes_with_cropping_chroma_formats_scaling_lists_and_fields() {
        assert_eq!(size(h264(&hex(X264_1080P))), (1920, 1080), "cropped from 1088");
        assert_eq!(size(h264(&hex(X264_720P_422))), (1280, 720));
        assert_eq!(size(h264(&hex(X264_CIF_444_CQM))), (352, 288));
        assert_eq!(size(h264(&hex(X264_576I))), (720, 576), "interlaced: two fields");
        assert_eq!(size(h264(&hex(X264_QCIF_GRAY))), (176, 144));
        let i = h264(&hex(X264_1080P)).unwrap();
        assert_eq!((i.profile, i.level), (100, 40));
    }

    #[test]
    fn h265_sizes_with_conformance_window() {
        assert_eq!(size(h265(&hex(X265_1080P))), (1920, 1080));
        assert_eq!(size(h265(&hex(X265_642X362_422))), (642, 362));
        let i = h265(&hex(X265_1080P)).unwrap();
        assert_eq!((i.profile, i.level), (1, 120));
    }

    #[test]
    fn finds_the_sps_in_an_access_unit() {
        let mut au = vec![0, 0, 0, 1, 0x09, 0x10]; // access unit delimiter
        au.extend([0, 0, 0, 1]);
        au.extend(hex(X264_1080P));
        au.extend([0, 0, 1, 0x68, 0xee, 0x3c, 0x80, 0, 0, 1, 0x65, 0x88, 0x84]);
        let au = Bytes::from(au);
        assert_eq!(resolution(VideoCodec::H264, &au), Some((1920, 1080)));
        assert_eq!(resolution(VideoCodec::H265, &au), None, "no H.265 SPS in it");
        assert_eq!(
            resolution(VideoCodec::H264, &Bytes::from_static(&[0, 0, 1, 0x65])),
            None
        );
    }

    /// Writes RBSP bits (with emulation prevention) for synthetic SPSs.
    #[derive(Default)]
    struct Writer {
        bits: Vec<bool>,
    }

    impl Writer {
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push(i < 64 && (v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let n = 64 - (v + 1).leading_zeros();
            self.u(n - 1, 0).u(n, v + 1)
        }
        fn se(&mut self, v: i64) -> &mut Self {
            self.ue(if v > 0 { (2 * v - 1) as u64 } else { (-2 * v) as u64 })
        }
        fn nal(&mut self, header: &[u8]) -> Vec<u8> {
            self.bits.push(true); // rbsp_stop_one_bit
            while self.bits.len() % 8 != 0 {
                self.bits.push(false);
            }
            let mut out = header.to_vec();
            let mut zeros = 0;
            for byte in self.bits.chunks(8) {
                let b = byte.iter().fold(0u8, |a, &bit| (a << 1) | u8::from(bit));
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    #[test]
    fn h264_pic_order_cnt_type_1_and_emulation_prevention() {
        let mut w = Writer::default();
        w.u(8, 77).u(8, 0).u(8, 30).ue(0); // Main, level 3
        w.ue(0).ue(1); // log2_max_frame_num_minus4, pic_order_cnt_type 1
        w.u(1, 0).se(-2).se(3).ue(3).se(1).se(-1).se(0);
        w.ue(1).u(1, 0).ue(0).ue(0); // 16x16
        w.u(1, 1).u(1, 1).u(1, 0);
        assert_eq!(size(h264(&w.nal(&[0x67]))), (16, 16));

        // 00 00 03 xx reads as 00 00 xx; a 03 not after two zeros is data.
        let mut r = BitReader::new(&[0, 0, 3, 1, 3, 0, 0, 3]);
        assert_eq!(r.bits(32), Ok(0x0000_0103));
        assert_eq!(r.bits(16), Ok(0));
        assert_eq!(
            r.bit(),
            Err(SpsError::Truncated),
            "a final 03 is dropped, and nothing follows"
        );
    }

    #[test]
    fn h265_sub_layers() {
        let mut w = Writer::default();
        w.u(4, 0).u(3, 2).u(1, 1); // two sub-layers above the base
        w.u(2, 0)
            .u(1, 0)
            .u(5, 1)
            .u(32, 0x6000_0000)
            .u(4, 0b1001)
            .u(43, 0)
            .u(1, 0)
            .u(8, 93);
        w.u(1, 1).u(1, 1).u(1, 0).u(1, 1); // sub-layer profile/level present flags
        w.u(2 * 6, 0);
        w.u(88, 0).u(8, 90).u(8, 93);
        w.ue(0).ue(1).ue(1280).ue(720).u(1, 0);
        let nal = w.nal(&[0x42, 0x01]);
        let i = h265(&nal).unwrap();
        assert_eq!((i.width, i.height, i.profile, i.level), (1280, 720, 1, 93));
    }

    #[test]
    fn with_size_changes_only_the_cropping_window() {
        // An SPS that has a window already, asked for its own size: the
        // same bytes, bit for bit (the rest is copied, not rewritten).
        let nal = hex(X264_1080P);
        assert_eq!(with_size(VideoCodec::H264, &nal, 1920, 1080).unwrap(), nal);
        let nal = hex(X265_642X362_422);
        assert_eq!(with_size(VideoCodec::H265, &nal, 642, 362).unwrap(), nal);
        for (codec, sps, unit) in [
            (VideoCodec::H264, X264_1080P, (2, 2)),
            (VideoCodec::H264, X264_720P_422, (2, 1)),
            (VideoCodec::H264, X264_CIF_444_CQM, (1, 1)),
            (VideoCodec::H264, X264_576I, (2, 4)),
            (VideoCodec::H264, X264_QCIF_GRAY, (1, 1)),
            (VideoCodec::H265, X265_1080P, (2, 2)),
            (VideoCodec::H265, X265_642X362_422, (2, 1)),
        ] {
            let nal = hex(sps);
            let read = |n: &[u8]| match codec {
                VideoCodec::H264 => h264(n),
                _ => h265(n),
            };
            let before = read(&nal).unwrap();
            for (w, h) in [
                (before.width / 2, before.height / 2),
                (97, 31),
                (1, 1),
                (before.width, before.height),
            ] {
                let out = with_size(codec, &nal, w, h).unwrap();
                let after = read(&out).unwrap();
                // The nearest size at or above the one asked for that the units allow.
                assert!(
                    after.width >= w && after.width < w + unit.0,
                    "{sps}: {w} -> {}",
                    after.width
                );
                assert!(
                    after.height >= h && after.height < h + unit.1,
                    "{sps}: {h} -> {}",
                    after.height
                );
                assert_eq!((after.profile, after.level), (before.profile, before.level));
                assert_eq!(out[..2], nal[..2], "the header and the profile");
                // Idempotent: the same size again gives the same bytes.
                assert_eq!(with_size(codec, &out, after.width, after.height).unwrap(), out, "{sps}");
                // No start code inside: emulation prevention is in place.
                assert!(!out.windows(3).any(|x| x[0] == 0 && x[1] == 0 && x[2] <= 2), "{sps}");
            }
            // Back to the original size: the original's window again.
            let half = with_size(codec, &nal, before.width / 2, before.height / 2).unwrap();
            let back = with_size(codec, &half, before.width, before.height).unwrap();
            assert_eq!(read(&back).unwrap(), before);
            assert!(
                with_size(codec, &nal, before.width + 17, 16).is_err(),
                "{sps}: wider than coded"
            );
            assert!(with_size(codec, &nal, 16, 0).is_err(), "{sps}: zero height");
        }
        assert!(with_size(VideoCodec::H264, &[0x67, 0x64], 16, 16).is_err(), "cut short");
        assert!(with_size(VideoCodec::Mjpeg, &hex(X264_1080P), 16, 16).is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(h264(&[]), Err(SpsError::Truncated));
        assert_eq!(h264(&[0x65, 1, 2]), Err(SpsError::NotSps(5)));
        assert_eq!(h265(&[0x40, 0x01]), Err(SpsError::NotSps(32)));
        assert_eq!(h265(&[0x42]), Err(SpsError::Truncated));
        let full = hex(X264_1080P);
        let mut truncated = 0;
        for n in 1..full.len() {
            match h264(&full[..n]) {
                Ok(i) => assert_eq!((i.width, i.height), (1920, 1080), "{n} bytes"),
                Err(e) => {
                    assert_eq!(e, SpsError::Truncated, "{n} bytes");
                    truncated += 1;
                }
            }
        }
        assert!(truncated >= 8, "{truncated}");
        // All zeros after the level is an over-long Exp-Golomb code.
        assert!(h264(&[0x67, 0x42, 0, 0x1e, 0, 0, 0, 0, 0, 0]).is_err());
        // A cropping window larger than the picture.
        let mut w = Writer::default();
        w.u(8, 66).u(8, 0).u(8, 30).ue(0).ue(0).ue(2).ue(1).u(1, 0).ue(0).ue(0);
        w.u(1, 1).u(1, 1).u(1, 1).ue(5).ue(5).ue(0).ue(0);
        assert_eq!(
            h264(&w.nal(&[0x67])),
            Err(SpsError::Invalid("cropping window larger than the picture"))
        );
        // Sizes that overflow u32.
        let mut w = Writer::default();
        w.u(4, 0).u(3, 0).u(1, 1).u(96 - 8, 0).u(8, 0);
        w.ue(0).ue(0).ue(u64::from(u32::MAX) - 1).ue(8).u(1, 0);
        assert!(h265(&w.nal(&[0x42, 0x01])).is_ok(), "ue values up to 2^32 - 2 read");
    }
}
