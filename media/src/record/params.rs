//! Video parameter sets for the recorder: the few SPS fields a container
//! needs (resolution, profile, chroma format, bit depth), and the decoder
//! configuration records built from them: `avcC` (ISO/IEC 14496-15 5.3.3.1)
//! and `hvcC` (8.3.3.1), which both MP4 sample entries and Matroska's
//! `CodecPrivate` carry.
//!
//! Parsing is total: a parameter set that is truncated or uses a syntax this
//! module does not follow gives `None`, never a panic. Only the fields up to
//! the picture size and bit depths are read (H.264 7.3.2.1.1, H.265
//! 7.3.2.2.1); the VUI is not.

use bytes::Bytes;

/// Which of the two video codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoKind {
    H264,
    H265,
}

/// The parameter sets of a video track, without start codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ParameterSets {
    pub(crate) vps: Vec<Bytes>,
    pub(crate) sps: Vec<Bytes>,
    pub(crate) pps: Vec<Bytes>,
}

impl ParameterSets {
    /// The parameter sets among `nals` (NAL units without start codes).
    pub(crate) fn from_nals(kind: VideoKind, nals: &[Bytes]) -> ParameterSets {
        let mut sets = ParameterSets::default();
        for nal in nals {
            let list = match (kind, nal_type(kind, nal)) {
                (VideoKind::H264, 7) | (VideoKind::H265, 33) => &mut sets.sps,
                (VideoKind::H264, 8) | (VideoKind::H265, 34) => &mut sets.pps,
                (VideoKind::H265, 32) => &mut sets.vps,
                _ => continue,
            };
            if !list.contains(nal) {
                list.push(nal.clone());
            }
        }
        sets
    }

    /// Whether the sets are enough to build a configuration record.
    pub(crate) fn complete(&self, kind: VideoKind) -> bool {
        !self.sps.is_empty() && !self.pps.is_empty() && (kind == VideoKind::H264 || !self.vps.is_empty())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.vps.is_empty() && self.sps.is_empty() && self.pps.is_empty()
    }
}

/// The NAL unit type of `nal` (first header byte(s)).
pub(crate) fn nal_type(kind: VideoKind, nal: &[u8]) -> u8 {
    let first = nal.first().copied().unwrap_or(0);
    match kind {
        VideoKind::H264 => first & 0x1f,
        VideoKind::H265 => (first >> 1) & 0x3f,
    }
}

/// What the container needs from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpsInfo {
    /// Displayed width and height (after cropping), in pixels.
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) chroma_format_idc: u32,
    pub(crate) bit_depth_luma: u32,
    pub(crate) bit_depth_chroma: u32,
    /// H.265 only: `sps_max_sub_layers_minus1 + 1` and the nesting flag.
    pub(crate) temporal_layers: u8,
    pub(crate) temporal_id_nested: bool,
    /// H.265 only: the 12 bytes of the general profile_tier_level
    /// (profile space .. general_level_idc), as in `hvcC`.
    pub(crate) general_ptl: [u8; 12],
}

/// The RBSP of a NAL unit's payload: emulation prevention bytes
/// (`00 00 03`) removed, header bytes skipped.
fn rbsp(nal: &[u8], header: usize) -> Vec<u8> {
    rtsp_toolkit_core::codec::sps::rbsp(nal.get(header..).unwrap_or_default())
}

/// An MSB-first bit reader with Exp-Golomb codes; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    /// `n` ≤ 32 bits.
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn flag(&mut self) -> Option<bool> {
        self.bit().map(|b| b == 1)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.data.len() * 8).then(|| self.pos = end)
    }

    /// ue(v), up to 31 leading zeros (values below 2^31 - 1).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        if zeros == 0 {
            return Some(0);
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Picture size in pixels from coded size and cropping, checked.
fn cropped(coded: u64, crop: u64) -> Option<u32> {
    let v = coded.checked_sub(crop)?;
    (v > 0 && v <= 65_535).then_some(v as u32)
}

/// Parses an H.264 SPS NAL unit (with its header byte).
pub(crate) fn parse_h264_sps(nal: &[u8]) -> Option<SpsInfo> {
    if nal_type(VideoKind::H264, nal) != 7 {
        return None;
    }
    let data = rbsp(nal, 1);
    let mut r = Bits::new(&data);
    let profile_idc = r.bits(8)?;
    r.skip(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut depth_luma, mut depth_chroma) = (1, 8, 8);
    let mut separate_planes = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_planes = r.flag()?;
        }
        depth_luma = r.ue()?.checked_add(8)?;
        depth_chroma = r.ue()?.checked_add(8)?;
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag: skip the lists (7.3.2.1.1.1).
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.flag()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return None,
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // ChromaArrayType 0 (monochrome or separate planes) crops in luma units.
        let (sub_w, sub_h) = match (chroma_format_idc, separate_planes) {
            (0, _) | (3, true) => (1, 1),
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        crop_x = sub_w * (u64::from(left) + u64::from(right));
        crop_y = sub_h * field_factor * (u64::from(top) + u64::from(bottom));
    }
    Some(SpsInfo {
        width: cropped(width_mbs * 16, crop_x)?,
        height: cropped(height_units * 16 * field_factor, crop_y)?,
        chroma_format_idc,
        bit_depth_luma: depth_luma,
        bit_depth_chroma: depth_chroma,
        temporal_layers: 1,
        temporal_id_nested: false,
        general_ptl: [0; 12],
    })
}

/// Parses an H.265 SPS NAL unit (with its two header bytes).
pub(crate) fn parse_h265_sps(nal: &[u8]) -> Option<SpsInfo> {
    if nal_type(VideoKind::H265, nal) != 33 || nal.len() < 2 {
        return None;
    }
    let data = rbsp(nal, 2);
    let mut r = Bits::new(&data);
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    let temporal_id_nested = r.flag()?;
    // profile_tier_level(1, max_sub_layers_minus1): the general part is 12 whole bytes.
    let ptl_start = r.pos / 8;
    let mut general_ptl = [0u8; 12];
    general_ptl.copy_from_slice(data.get(ptl_start..ptl_start + 12)?);
    r.skip(96)?;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        sub_profile[i] = r.flag()?;
        sub_level[i] = r.flag()?;
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if sub_profile[i] {
            r.skip(88)?;
        }
        if sub_level[i] {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return None;
    }
    let mut separate_planes = false;
    if chroma_format_idc == 3 {
        separate_planes = r.flag()?;
    }
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sub_w, sub_h) = match (chroma_format_idc, separate_planes) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        crop_x = sub_w * (u64::from(left) + u64::from(right));
        crop_y = sub_h * (u64::from(top) + u64::from(bottom));
    }
    let depth_luma = r.ue()?.checked_add(8)?;
    let depth_chroma = r.ue()?.checked_add(8)?;
    Some(SpsInfo {
        width: cropped(width, crop_x)?,
        height: cropped(height, crop_y)?,
        chroma_format_idc,
        bit_depth_luma: depth_luma,
        bit_depth_chroma: depth_chroma,
        temporal_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nested,
        general_ptl,
    })
}

/// Parses the first SPS of `sets`.
pub(crate) fn parse_sps(kind: VideoKind, sets: &ParameterSets) -> Option<SpsInfo> {
    let sps = sets.sps.first()?;
    match kind {
        VideoKind::H264 => parse_h264_sps(sps),
        VideoKind::H265 => parse_h265_sps(sps),
    }
}

/// Appends `u16` length + bytes for each NAL unit of `list` (at most
/// `max` of them, each at most 65535 bytes; longer ones are left out).
fn put_sets(out: &mut Vec<u8>, list: &[Bytes], max: usize) -> usize {
    let mut n = 0;
    for nal in list.iter().filter(|n| n.len() <= 0xffff).take(max) {
        out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        out.extend_from_slice(nal);
        n += 1;
    }
    n
}

/// An AVCDecoderConfigurationRecord with 4-byte NAL lengths, from the sets
/// (the first SPS gives profile, compatibility and level).
pub(crate) fn avcc(sets: &ParameterSets, info: &SpsInfo) -> Option<Vec<u8>> {
    let sps = sets.sps.first()?;
    if sps.len() < 4 || sets.pps.is_empty() {
        return None;
    }
    let profile = sps[1];
    let mut out = vec![1, profile, sps[2], sps[3], 0xff];
    let count_at = out.len();
    out.push(0);
    let n = put_sets(&mut out, &sets.sps, 31);
    out[count_at] = 0xe0 | n as u8;
    let count_at = out.len();
    out.push(0);
    out[count_at] = put_sets(&mut out, &sets.pps, 255) as u8;
    if matches!(profile, 100 | 110 | 122 | 144) {
        // The high-profile extension (14496-15 5.3.3.1.2).
        out.push(0xfc | (info.chroma_format_idc & 3) as u8);
        out.push(0xf8 | (info.bit_depth_luma.saturating_sub(8) & 7) as u8);
        out.push(0xf8 | (info.bit_depth_chroma.saturating_sub(8) & 7) as u8);
        out.push(0);
    }
    Some(out)
}

/// An HEVCDecoderConfigurationRecord with 4-byte NAL lengths, the
/// parameter-set arrays marked complete.
pub(crate) fn hvcc(sets: &ParameterSets, info: &SpsInfo) -> Option<Vec<u8>> {
    if !sets.complete(VideoKind::H265) {
        return None;
    }
    let mut out = Vec::with_capacity(64);
    out.push(1);
    out.extend_from_slice(&info.general_ptl);
    out.extend_from_slice(&[0xf0, 0x00]); // min_spatial_segmentation_idc 0
    out.push(0xfc); // parallelismType 0 (unknown)
    out.push(0xfc | (info.chroma_format_idc & 3) as u8);
    out.push(0xf8 | (info.bit_depth_luma.saturating_sub(8) & 7) as u8);
    out.push(0xf8 | (info.bit_depth_chroma.saturating_sub(8) & 7) as u8);
    out.extend_from_slice(&[0, 0]); // avgFrameRate unknown
    out.push(((info.temporal_layers & 7) << 3) | (u8::from(info.temporal_id_nested) << 2) | 3);
    out.push(3);
    for (nal_type, list) in [(32u8, &sets.vps), (33, &sets.sps), (34, &sets.pps)] {
        out.push(0x80 | nal_type); // array_completeness 1
        let count_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let n = put_sets(&mut out, list, 0xffff) as u16;
        out[count_at..count_at + 2].copy_from_slice(&n.to_be_bytes());
    }
    Some(out)
}

/// The configuration record of `kind` (`avcC` or `hvcC` payload).
pub(crate) fn config_record(kind: VideoKind, sets: &ParameterSets, info: &SpsInfo) -> Option<Vec<u8>> {
    match kind {
        VideoKind::H264 => avcc(sets, info),
        VideoKind::H265 => hvcc(sets, info),
    }
}

/// An RFC 6381 `codecs` string for the track (`avc1.64001e`, `hvc1.1.6.L93.B0`),
/// for logs and the report.
pub(crate) fn codec_string(kind: VideoKind, sets: &ParameterSets, info: &SpsInfo) -> String {
    match kind {
        VideoKind::H264 => match sets.sps.first().filter(|s| s.len() >= 4) {
            Some(s) => format!("avc1.{:02x}{:02x}{:02x}", s[1], s[2], s[3]),
            None => "avc1".to_owned(),
        },
        VideoKind::H265 => {
            let p = &info.general_ptl;
            let space = ["", "A", "B", "C"][usize::from(p[0] >> 6)];
            let tier = if p[0] & 0x20 != 0 { 'H' } else { 'L' };
            let compat = u32::from_be_bytes([p[1], p[2], p[3], p[4]]).reverse_bits();
            let mut s = format!("hvc1.{space}{}.{compat:x}.{tier}{}", p[0] & 0x1f, p[11]);
            // Constraint bytes, trailing zero bytes left out.
            let constraints = &p[5..11];
            let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            for b in &constraints[..used.max(1)] {
                s.push_str(&format!(".{b:X}"));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SPS of fixtures/media/h264_aac.mp4: x264, 320x240 High profile, level 1.3.
    const H264_SPS_320X240: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xb2, 0x02, 0x83, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00,
        0x06, 0x41, 0xe2, 0x85, 0x49,
    ];

    #[test]
    fn h264_sps_size_and_high_profile_fields() {
        let info = parse_h264_sps(H264_SPS_320X240).expect("parses");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(
            (info.chroma_format_idc, info.bit_depth_luma, info.bit_depth_chroma),
            (1, 8, 8)
        );
    }

    #[test]
    fn h264_cropping_1080p() {
        // Baseline 1920x1080: 120x68 macroblocks, cropped by 8 lines (frame_crop_bottom_offset 4).
        let mut w = BitWriter::default();
        w.bits(66, 8);
        w.bits(0, 8);
        w.bits(40, 8);
        w.ue(0); // sps id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(2); // poc type 2
        w.ue(1); // max refs
        w.bits(0, 1);
        w.ue(119);
        w.ue(67);
        w.bits(1, 1); // frame_mbs_only
        w.bits(1, 1); // direct_8x8
        w.bits(1, 1); // cropping
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.ue(4);
        w.bits(0, 1); // vui
        w.bits(1, 1); // stop bit
        let mut nal = vec![0x67];
        nal.extend(w.finish());
        let info = parse_h264_sps(&nal).unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
    }

    #[test]
    fn avcc_layout() {
        let sets = ParameterSets {
            vps: vec![],
            sps: vec![Bytes::from_static(H264_SPS_320X240)],
            pps: vec![Bytes::from_static(&[0x68, 0xeb, 0xc1, 0x12, 0xc8, 0xb0])],
        };
        let info = parse_sps(VideoKind::H264, &sets).unwrap();
        let c = avcc(&sets, &info).unwrap();
        assert_eq!(&c[..6], &[1, 0x64, 0x00, 0x0d, 0xff, 0xe1]);
        let sps_len = H264_SPS_320X240.len();
        assert_eq!(u16::from_be_bytes([c[6], c[7]]) as usize, sps_len);
        assert_eq!(&c[8..8 + sps_len], H264_SPS_320X240);
        let at = 8 + sps_len;
        assert_eq!(&c[at..at + 3], &[1, 0, 6]);
        assert_eq!(
            &c[c.len() - 4..],
            &[0xfd, 0xf8, 0xf8, 0],
            "High profile extension: 4:2:0, 8 bit"
        );
        assert_eq!(codec_string(VideoKind::H264, &sets, &info), "avc1.64000d");
    }

    #[test]
    fn h265_sps_and_hvcc() {
        // The SPS of fixtures/media/h265.mp4: x265, 320x240 Main profile, level 2.
        let sps: &[u8] = &[
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c,
            0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02,
            0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
        ];
        let info = parse_h265_sps(sps).expect("parses");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!((info.chroma_format_idc, info.bit_depth_luma), (1, 8));
        assert_eq!(info.general_ptl[0], 0x01, "profile space 0, main tier, Main profile");
        assert_eq!(info.general_ptl[11], 60, "level 2");
        let sets = ParameterSets {
            vps: vec![Bytes::from_static(&[0x40, 0x01, 0x0c, 0x01, 0xff, 0xff])],
            sps: vec![Bytes::copy_from_slice(sps)],
            pps: vec![Bytes::from_static(&[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40])],
        };
        let c = hvcc(&sets, &info).unwrap();
        assert_eq!(c[0], 1);
        assert_eq!(&c[1..13], &info.general_ptl);
        assert_eq!(&c[13..22], &[0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f]);
        assert_eq!(c[22], 3, "three arrays");
        assert_eq!(&c[23..26], &[0xa0, 0, 1], "VPS array, complete, one NAL unit");
        assert_eq!(codec_string(VideoKind::H265, &sets, &info), "hvc1.1.6.L60.90");
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x67) as u8).collect();
            let _ = parse_h264_sps(&junk);
            let mut h = junk.clone();
            if !h.is_empty() {
                h[0] = 0x42;
            }
            let _ = parse_h265_sps(&h);
        }
        assert_eq!(parse_h264_sps(&[0x67]), None);
        assert_eq!(parse_h265_sps(&[0x42, 0x01]), None);
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(rbsp(&[0x67, 0, 0, 3, 1, 0, 0, 3, 0, 3], 1), vec![0, 0, 1, 0, 0, 0, 3]);
    }

    /// Writes bits MSB first (test helper for synthetic SPS).
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        n: usize,
    }

    impl BitWriter {
        fn bits(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                if self.n % 8 == 0 {
                    self.out.push(0);
                }
                let b = ((v >> i) & 1) as u8;
                *self.out.last_mut().unwrap() |= b << (7 - self.n % 8);
                self.n += 1;
            }
        }

        fn ue(&mut self, v: u32) {
            let x = v + 1;
            let len = 32 - x.leading_zeros();
            self.bits(0, len - 1);
            self.bits(x, len);
        }

        fn finish(self) -> Vec<u8> {
            self.out
        }
    }
}
