//! ONVIF metadata sidecar files: timed XML documents that the server sends
//! beside a media file as an extra `m=application` track
//! (`vnd.onvif.metadata/90000`), and that `probe --save-metadata` writes.
//!
//! # Format
//!
//! The sidecar of `NAME.EXT` is `NAME.meta` in the same directory (so
//! `clip.mp4` and `clip.mkv` share `clip.meta`). It is UTF-8 text, one
//! document per line:
//!
//! ```text
//! # comment lines and blank lines are ignored
//! 0.0 <tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema">...</tt:MetadataStream>
//! 1.5 <tt:MetadataStream ...>...</tt:MetadataStream>
//! ```
//!
//! Each line is the document's time in seconds from the start of the media
//! file (a non-negative decimal number), one or more spaces or tabs, then
//! the document to the end of the line (a CR before the LF is dropped). A
//! document therefore cannot contain a line break: a writer replaces them
//! with spaces (XML treats line breaks between markup as white space).
//! Lines may come in any time order; documents at or after the end of the
//! media file are not served (the file loops at its end). The RTP timestamp
//! of a document is its time × 90000 plus the track's random base, so a
//! client sees the times of the file as extended-timestamp differences.
//! [`line()`] writes one line in this format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rtsp_toolkit_core::source::{MediaSource, SourceCodec, SourceSample, SourceTrack};

use crate::MediaError;

/// The RTP clock rate of served metadata tracks.
pub const CLOCK_RATE: u32 = 90_000;

/// The sidecar path of the media file `media` (`NAME.meta` beside `NAME.EXT`).
///
/// ```
/// use std::path::Path;
/// use rtsp_toolkit_media::sidecar::path_for;
/// assert_eq!(path_for(Path::new("/v/clip.mp4")), Path::new("/v/clip.meta"));
/// ```
pub fn path_for(media: &Path) -> PathBuf {
    media.with_extension("meta")
}

/// The documents of a sidecar file, with their times, sorted by time (a
/// stable sort: equal times keep the file's order).
///
/// ```
/// use rtsp_toolkit_media::sidecar::parse;
/// let docs = parse(b"# two\n0.5 <a/>\r\n\n0 <b>x y</b>\n").unwrap();
/// assert_eq!(docs.len(), 2);
/// assert_eq!((docs[0].0.as_millis(), &docs[0].1[..]), (0, &b"<b>x y</b>"[..]));
/// assert_eq!((docs[1].0.as_millis(), &docs[1].1[..]), (500, &b"<a/>"[..]));
/// assert!(parse(b"x <a/>\n").is_err());
/// ```
pub fn parse(text: &[u8]) -> Result<Vec<(Duration, Bytes)>, MediaError> {
    let text = std::str::from_utf8(text).map_err(|e| crate::malformed(format!("metadata sidecar: not UTF-8: {e}")))?;
    let mut docs = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| crate::malformed(format!("metadata sidecar line {}: {why}", n + 1));
        let (time, doc) = line
            .split_once([' ', '\t'])
            .ok_or_else(|| bad("expected `<seconds> <xml document>`"))?;
        let secs: f64 = time
            .parse()
            .map_err(|_| bad(&format!("{time:?} is not a number of seconds")))?;
        if !(secs.is_finite() && (0.0..1e9).contains(&secs)) {
            return Err(bad("the time must be between 0 and 1e9 seconds"));
        }
        let doc = doc.trim_start_matches([' ', '\t']);
        if doc.is_empty() {
            return Err(bad("no document after the time"));
        }
        docs.push((Duration::from_secs_f64(secs), Bytes::copy_from_slice(doc.as_bytes())));
    }
    docs.sort_by_key(|(t, _)| *t);
    Ok(docs)
}

/// One sidecar line for `doc` at `at`: the time with microseconds, a
/// space, the document with its CR and LF bytes replaced by spaces, `\n`.
///
/// ```
/// use std::time::Duration;
/// use rtsp_toolkit_media::sidecar::line;
/// assert_eq!(line(Duration::from_millis(1500), b"<a>\r\n</a>"), b"1.500000 <a>  </a>\n");
/// ```
pub fn line(at: Duration, doc: &[u8]) -> Vec<u8> {
    let mut out = format!("{}.{:06} ", at.as_secs(), at.subsec_micros()).into_bytes();
    out.extend(doc.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.push(b'\n');
    out
}

/// `source` with one more track, the metadata documents `docs` (times from
/// the start of the file), its samples merged in send order. Documents at
/// or after the source's duration are left out (the source loops there);
/// with none left, `source` comes back unchanged.
pub fn attach(mut source: MediaSource, docs: Vec<(Duration, Bytes)>) -> MediaSource {
    let index = source.tracks.len();
    let before = docs.len();
    let mut docs: Vec<SourceSample> = docs
        .into_iter()
        .filter(|(t, _)| *t < source.duration)
        .map(|(t, data)| {
            let ticks = (t.as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000) as i64;
            SourceSample {
                track: index,
                decode_time: ticks,
                presentation_time: ticks,
                keyframe: true,
                data,
            }
        })
        .collect();
    if docs.len() < before {
        tracing::info!(
            dropped = before - docs.len(),
            "metadata documents at or after the end of the media are not served"
        );
    }
    if docs.is_empty() {
        return source;
    }
    docs.sort_by_key(|s| s.decode_time);
    source.tracks.push(SourceTrack {
        codec: SourceCodec::OnvifMetadata,
        clock_rate: CLOCK_RATE,
    });
    let media = std::mem::take(&mut source.samples);
    let mut merged = Vec::with_capacity(media.len() + docs.len());
    let mut docs = docs.into_iter().peekable();
    for sample in media {
        let at = source.send_time(&sample);
        while let Some(d) = docs.next_if(|d| source.send_time(d) < at) {
            merged.push(d);
        }
        merged.push(sample);
    }
    merged.extend(docs);
    source.samples = merged;
    source
}

/// Attaches the sidecar of `path` to `source` when there is one. A sidecar
/// that cannot be read or parsed fails the whole file, so that a typo in it
/// is seen rather than silently serving no metadata.
pub(crate) fn attach_file(source: MediaSource, path: &Path) -> Result<MediaSource, MediaError> {
    let sidecar = path_for(path);
    let text = match std::fs::read(&sidecar) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(source),
        Err(source) => return Err(MediaError::Io { path: sidecar, source }),
    };
    let docs = parse(&text).map_err(|e| match e {
        MediaError::Malformed(m) => MediaError::Malformed(format!("{}: {m}", sidecar.display())),
        other => other,
    })?;
    Ok(attach(source, docs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> MediaSource {
        let sample = |t: i64| SourceSample {
            track: 0,
            decode_time: t,
            presentation_time: t,
            keyframe: true,
            data: Bytes::from_static(&[1]),
        };
        MediaSource {
            tracks: vec![SourceTrack {
                codec: SourceCodec::Pcma,
                clock_rate: 8000,
            }],
            samples: (0..4).map(|i| sample(i * 4000)).collect(),
            duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn documents_merge_in_send_order_and_late_ones_are_dropped() {
        let docs = parse(b"0.25 <a/>\n0 <z/>\n1.9 <b/>\n2 <late/>\n").unwrap();
        let s = attach(source(), docs);
        assert_eq!(s.tracks.len(), 2);
        assert_eq!(s.tracks[1].codec, SourceCodec::OnvifMetadata);
        let order: Vec<(usize, Duration)> = s.samples.iter().map(|x| (x.track, s.send_time(x))).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            order,
            [
                (0, ms(0)),
                (1, ms(0)),
                (1, ms(250)),
                (0, ms(500)),
                (0, ms(1000)),
                (0, ms(1500)),
                (1, ms(1900))
            ]
        );
        assert_eq!(s.samples[2].data, "<a/>");
        assert_eq!(attach(source(), vec![]), source());
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        for (text, what) in [
            (&b"0 <a/>\n-1 <b/>\n"[..], "line 2"),
            (b"nan <a/>", "line 1"),
            (b"1", "line 1"),
            (b"1   ", "line 1"),
            (b"\xff", "UTF-8"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        assert!(parse(b"").unwrap().is_empty());
    }

    #[test]
    fn written_lines_read_back() {
        let mut text = Vec::new();
        text.extend(line(Duration::from_micros(2_000_001), b"<a>\n1</a>"));
        text.extend(line(Duration::ZERO, b"<b/>"));
        let docs = parse(&text).unwrap();
        assert_eq!(docs[0], (Duration::ZERO, Bytes::from_static(b"<b/>")));
        assert_eq!(
            docs[1],
            (Duration::from_micros(2_000_001), Bytes::from_static(b"<a> 1</a>"))
        );
    }
}
