//! NAL unit framing shared by the H.264 (RFC 6184) and H.265 (RFC 7798)
//! payload formats: the 16-bit size-prefixed NAL units of aggregation
//! packets (STAP-A, AP), read by the depacketizers ([`take_sized`]) and
//! written by the packetizers ([`aggregate_run`]), and the splitting of
//! Annex B access units into NAL units ([`split_annex_b`], public through
//! [`super::h264`] and [`super::h265`]).
//!
//! It is **not** about what NAL units mean: header layouts, NAL unit types
//! and access units are the codec modules' and [`super::access_unit`]'s
//! business.

use bytes::Bytes;

use super::access_unit::{malformed, Abort};

/// Splits a 2-byte-size-prefixed NAL unit (after `skip` bytes of DON
/// fields) off the front of an aggregation packet's `rest`; returns the NAL
/// unit (at least 1 byte) and what follows it.
pub(crate) fn take_sized<'a>(
    rest: &'a [u8],
    skip: usize,
    codec: &'static str,
    what: &str,
) -> Result<(&'a [u8], &'a [u8]), Abort> {
    if rest.len() < skip + 2 {
        return Err(malformed(codec, format!("{what}: truncated NAL unit size")));
    }
    let size = usize::from(u16::from_be_bytes([rest[skip], rest[skip + 1]]));
    let rest = &rest[skip + 2..];
    if size == 0 || size > rest.len() {
        return Err(malformed(
            codec,
            format!("{what}: NAL unit size {size} with {} bytes left", rest.len()),
        ));
    }
    Ok(rest.split_at(size))
}

/// The run of NAL units from `nals[start]` that fits in one aggregation
/// packet of at most `max` bytes with a `header`-byte payload header (the
/// NAL unit header size; shorter NAL units are skipped): returns (end index,
/// NAL units in the run, packet size).
pub(crate) fn aggregate_run(nals: &[Bytes], start: usize, max: usize, header: usize) -> (usize, usize, usize) {
    let mut size = header;
    let mut count = 0;
    let mut end = start;
    while end < nals.len() {
        let len = nals[end].len();
        if len >= header {
            if len > 0xffff || size + 2 + len > max {
                break;
            }
            size += 2 + len;
            count += 1;
        }
        end += 1;
    }
    (end, count, size)
}

/// Splits Annex B data (NAL units each preceded by a `00 00 01` or
/// `00 00 00 01` start code) into NAL units without start codes, as slices
/// of `data` (no copy). Trailing zero bytes of each NAL unit (the extra zero
/// of a 4-byte start code, trailing_zero_8bits) are removed; empty NAL units
/// are skipped. Data without any start code is returned as one NAL unit.
///
/// ```
/// use bytes::Bytes;
/// use rtsp_toolkit_core::codec::h264::split_annex_b;
/// let au = Bytes::from_static(&[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4]);
/// let nals = split_annex_b(&au);
/// assert_eq!(nals, [&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]);
/// ```
pub fn split_annex_b(data: &Bytes) -> Vec<Bytes> {
    let b = &data[..];
    let mut nals = Vec::new();
    let mut push = |from: usize, to: usize| {
        let mut to = to;
        while to > from && b[to - 1] == 0 {
            to -= 1;
        }
        if to > from {
            nals.push(data.slice(from..to));
        }
    };
    let mut nal_start = 0;
    let mut i = 0;
    // Looks at b[i + 2] first: a byte above 1 there rules out a start code
    // beginning at i, i + 1 or i + 2.
    while i + 2 < b.len() {
        let c = b[i + 2];
        if c > 1 {
            i += 3;
        } else if c == 0 {
            i += 1;
        } else if b[i] == 0 && b[i + 1] == 0 {
            push(nal_start, i);
            i += 3;
            nal_start = i;
        } else {
            i += 3;
        }
    }
    push(nal_start, b.len());
    nals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DepacketizeError;

    #[test]
    fn split_annex_b_cases() {
        let d = Bytes::from_static(&[0, 0, 1, 0x67, 0, 0, 0, 0, 1, 0x68, 0, 0, 3, 1, 0, 0, 1]);
        assert_eq!(split_annex_b(&d), [&[0x67][..], &[0x68, 0, 0, 3, 1][..]]);
        assert!(split_annex_b(&Bytes::new()).is_empty());
        assert!(split_annex_b(&Bytes::from_static(&[0, 0, 0, 1])).is_empty());
        assert_eq!(split_annex_b(&Bytes::from_static(&[0x41, 1])), [&[0x41, 1][..]]);
        let d = Bytes::from_static(&[0, 0, 1, 0x41, 0, 1, 0x00, 0x02]);
        assert_eq!(split_annex_b(&d), [&[0x41, 0, 1, 0, 2][..]]);
    }

    fn is_malformed(r: Result<(&[u8], &[u8]), Abort>) -> bool {
        matches!(r, Err(Abort::Error(DepacketizeError::Malformed { codec: "X", .. })))
    }

    #[test]
    fn take_sized_cases() {
        let p = [0, 2, 0x41, 7, 0, 1, 0x42];
        let (nal, rest) = take_sized(&p, 0, "X", "AP").unwrap();
        assert_eq!((nal, rest), (&[0x41, 7][..], &[0, 1, 0x42][..]));
        let (nal, rest) = take_sized(rest, 0, "X", "AP").unwrap();
        assert_eq!((nal, rest), (&[0x42][..], &[][..]));
        // DON bytes in front of the size are skipped.
        assert_eq!(take_sized(&[9, 9, 0, 1, 5], 2, "X", "AP").unwrap().0, &[5]);
        assert!(is_malformed(take_sized(&[0], 0, "X", "AP")));
        assert!(is_malformed(take_sized(&[9, 0, 1], 2, "X", "AP")));
        assert!(is_malformed(take_sized(&[0, 0, 1], 0, "X", "AP")), "size 0");
        assert!(is_malformed(take_sized(&[0, 3, 1, 2], 0, "X", "AP")), "overrun");
    }

    #[test]
    fn aggregate_run_cases() {
        let n = |len: usize| Bytes::from(vec![1u8; len]);
        // Header 1 + (2 + 3) + (2 + 4) = 12 fits in 12; the third does not.
        let nals = [n(3), n(4), n(1)];
        assert_eq!(aggregate_run(&nals, 0, 12, 1), (2, 2, 12));
        assert_eq!(aggregate_run(&nals, 1, 12, 1), (3, 2, 10));
        // NAL units shorter than the header are skipped but passed over.
        let nals = [n(2), n(1), n(2)];
        assert_eq!(aggregate_run(&nals, 0, 100, 2), (3, 2, 10));
        // A NAL unit too large for a 16-bit size ends the run.
        let nals = [n(1), n(0x10000)];
        assert_eq!(aggregate_run(&nals, 0, 1 << 20, 1), (1, 1, 4));
        assert_eq!(aggregate_run(&nals, 2, 100, 1), (2, 0, 1));
    }
}
