//! Turning per-track sample lists into one [`MediaSource`]: time checks, the
//! shift that makes decode times non-negative, the merge into send order and
//! the duration.
//!
//! The demuxers hand over each track's samples in decode order with times
//! already in the track clock; this module does not know about containers.

use std::cmp::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rtsp_toolkit_core::source::{MediaSource, SourceSample, SourceTrack};

use crate::MediaError;

/// One sample of one track, times in the track clock.
#[derive(Debug, Clone)]
pub(crate) struct Timed {
    pub(crate) dts: i64,
    pub(crate) pts: i64,
    /// Presentation length (ticks, at least 0).
    pub(crate) duration: i64,
    pub(crate) keyframe: bool,
    pub(crate) data: Bytes,
}

/// A demuxed track before merging.
#[derive(Debug)]
pub(crate) struct TrackOut {
    pub(crate) track: SourceTrack,
    /// For log and error messages, e.g. `"track 1 (avc1)"`.
    pub(crate) name: String,
    pub(crate) samples: Vec<Timed>,
}

/// Converts `t` ticks of `from` per second to ticks of `to` per second,
/// rounding toward minus infinity. Absolute times are converted one by one,
/// so there is no accumulated drift.
pub(crate) fn rescale(t: i128, from: u32, to: u32) -> Result<i64, MediaError> {
    if from == 0 {
        return Err(MediaError::Malformed("time scale 0".into()));
    }
    let v = t
        .checked_mul(i128::from(to))
        .ok_or_else(overflow)?
        .div_euclid(i128::from(from));
    i64::try_from(v).map_err(|_| overflow())
}

/// `a / ra` compared with `b / rb` (rates are positive).
fn cmp_time(a: i64, ra: u32, b: i64, rb: u32) -> Ordering {
    (i128::from(a) * i128::from(rb)).cmp(&(i128::from(b) * i128::from(ra)))
}

/// Builds the source: drops empty tracks, shifts every track by the same
/// amount of time if any decode time is negative, merges the samples into
/// send order (decode time in seconds; ties keep track order, then decode
/// order) and computes the duration.
pub(crate) fn finish(tracks: Vec<TrackOut>, mut skipped: Vec<String>) -> Result<MediaSource, MediaError> {
    let mut kept = Vec::with_capacity(tracks.len());
    for t in tracks {
        if t.samples.is_empty() {
            tracing::info!("skipping {}: no samples", t.name);
            skipped.push(format!("{}: no samples", t.name));
        } else if t.track.clock_rate == 0 {
            return Err(MediaError::Malformed(format!("{}: clock rate 0", t.name)));
        } else {
            kept.push(t);
        }
    }
    if kept.is_empty() {
        return Err(MediaError::NoSupportedTrack { skipped });
    }

    // The earliest decode time over all tracks, as a fraction of a second.
    let mut earliest: Option<(i64, u32)> = None;
    for t in &kept {
        let rate = t.track.clock_rate;
        let min = t.samples.iter().map(|s| s.dts).min().unwrap_or(0);
        if earliest.is_none_or(|(e, er)| cmp_time(min, rate, e, er) == Ordering::Less) {
            earliest = Some((min, rate));
        }
    }
    if let Some((min, min_rate)) = earliest.filter(|&(m, _)| m < 0) {
        // Round up in each clock so nothing stays below zero.
        for t in &mut kept {
            let rate = i128::from(t.track.clock_rate);
            let shift = (-i128::from(min) * rate + i128::from(min_rate) - 1) / i128::from(min_rate);
            let shift = i64::try_from(shift).map_err(|_| MediaError::Malformed("timestamp out of range".into()))?;
            for s in &mut t.samples {
                s.dts = s.dts.checked_add(shift).ok_or_else(overflow)?;
                s.pts = s.pts.checked_add(shift).ok_or_else(overflow)?;
            }
        }
    }

    let mut end_nanos: u128 = 0;
    let mut total = 0usize;
    for t in &kept {
        let rate = u128::from(t.track.clock_rate);
        for s in &t.samples {
            let end = i128::from(s.pts) + i128::from(s.duration.max(0));
            let nanos = u128::try_from(end.max(0)).unwrap_or(0) * 1_000_000_000 / rate;
            end_nanos = end_nanos.max(nanos);
        }
        total += t.samples.len();
    }

    let mut rates = Vec::with_capacity(kept.len());
    let mut out_tracks = Vec::with_capacity(kept.len());
    let mut samples = Vec::with_capacity(total);
    for (index, t) in kept.into_iter().enumerate() {
        rates.push(t.track.clock_rate);
        out_tracks.push(t.track);
        samples.extend(t.samples.into_iter().map(|s| SourceSample {
            track: index,
            decode_time: s.dts,
            presentation_time: s.pts,
            keyframe: s.keyframe,
            data: s.data,
        }));
    }
    // Stable: equal send times keep track order, and decode order within a track.
    samples.sort_by(|a, b| cmp_time(a.decode_time, rates[a.track], b.decode_time, rates[b.track]));

    Ok(MediaSource {
        tracks: out_tracks,
        samples,
        duration: Duration::from_nanos(u64::try_from(end_nanos).unwrap_or(u64::MAX)),
    })
}

fn overflow() -> MediaError {
    MediaError::Malformed("timestamp out of range".into())
}

/// Decode times for a stream whose container stores only presentation times
/// (Matroska): the presentation times sorted ascending, moved earlier by the
/// smallest delay that keeps every decode time at or before its presentation
/// time. Input and output are in decode order; the result never decreases.
pub(crate) fn decode_times_from_presentation(pts: &[i64]) -> Vec<i64> {
    let mut sorted = pts.to_vec();
    sorted.sort_unstable();
    let delay = sorted
        .iter()
        .zip(pts)
        .map(|(&d, &p)| i128::from(d) - i128::from(p))
        .max()
        .unwrap_or(0)
        .max(0);
    sorted
        .into_iter()
        .map(|d| i64::try_from(i128::from(d) - delay).unwrap_or(i64::MIN))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_floors_without_drift() {
        assert_eq!(rescale(512, 12800, 90000).unwrap(), 3600);
        assert_eq!(rescale(-1, 3, 2).unwrap(), -1);
        assert_eq!(rescale(1024 * 1000, 44100, 90000).unwrap(), 2_089_795);
    }

    #[test]
    fn decode_times_for_reordered_frames() {
        // I0 P3 B1 B2 (frame units): one frame of delay.
        assert_eq!(decode_times_from_presentation(&[0, 3, 1, 2]), vec![-1, 0, 1, 2]);
        assert_eq!(decode_times_from_presentation(&[0, 1, 2]), vec![0, 1, 2]);
        assert!(decode_times_from_presentation(&[]).is_empty());
    }
}
