//! Request-URI → resource path, with lexical safety checks.
//!
//! [`parse_target`] is a pure function: it splits an RTSP Request-URI into
//! its authority, a relative normalized resource path, the `trackID=N`
//! suffix and the `play_count` and `codec` query parameters. The path is percent-decoded
//! exactly once and then refused if it could name anything outside the
//! served root by its spelling: `.` and `..` segments, empty segments
//! (`//etc/passwd`), backslashes, NUL and other control characters.
//!
//! This is *lexical* safety only. It does not look at the filesystem: the
//! runtime resolves the relative path under its root, canonicalizes it
//! (symlinks included) and checks that the result is still under the root.

use std::num::NonZeroU32;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::faults::{FaultError, Faults};

/// How many times a presentation is played (`?play_count=N` in the URI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlayCount {
    /// Play this many times back to back (`play_count=N`, N ≥ 1).
    Times(NonZeroU32),
    /// Loop until the client tears down (`play_count=0`).
    Forever,
}

impl PlayCount {
    /// Play once: the default.
    pub const ONCE: PlayCount = PlayCount::Times(NonZeroU32::MIN);

    /// Parses the value of a `play_count` query parameter (already
    /// percent-decoded). Total: `0` is [`PlayCount::Forever`], a positive
    /// number is that many times (capped at `u32::MAX`), anything else
    /// (empty, negative, not a number) is once.
    ///
    /// ```
    /// use rtsp_toolkit_core::server::PlayCount;
    /// assert_eq!(PlayCount::parse("0"), PlayCount::Forever);
    /// assert_eq!(PlayCount::parse("3"), PlayCount::Times(3.try_into().unwrap()));
    /// assert_eq!(PlayCount::parse("-2"), PlayCount::ONCE);
    /// assert_eq!(PlayCount::parse("99999999999999999999"), PlayCount::Times(u32::MAX.try_into().unwrap()));
    /// ```
    pub fn parse(value: &str) -> PlayCount {
        let v = value.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return PlayCount::ONCE;
        }
        let digits = v.trim_start_matches('0');
        if digits.is_empty() {
            return PlayCount::Forever;
        }
        // More than 10 significant digits is over u32::MAX: no parse needed.
        let n = if digits.len() > 10 {
            u32::MAX
        } else {
            digits
                .parse::<u64>()
                .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        NonZeroU32::new(n).map_or(PlayCount::Forever, PlayCount::Times)
    }

    /// The number of play-throughs, `None` for forever.
    pub fn times(self) -> Option<u32> {
        match self {
            PlayCount::Times(n) => Some(n.get()),
            PlayCount::Forever => None,
        }
    }
}

impl Default for PlayCount {
    fn default() -> Self {
        PlayCount::ONCE
    }
}

/// A parsed Request-URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `rtsp` or `rtsps`, lower case.
    pub scheme: &'static str,
    /// `host[:port]` as the client wrote it, without any userinfo.
    pub authority: String,
    /// The resource: percent-decoded once, relative (no leading slash),
    /// normalized (no `.`/`..`/empty segments, no trailing slash), without
    /// the `trackID=N` suffix. Empty for `rtsp://host/`.
    pub path: String,
    /// `N` of a last segment `trackID=N`.
    pub track: Option<u32>,
    /// The `play_count` query parameter, when the URI has one.
    pub play_count: Option<PlayCount>,
    /// The `codec` query parameter (the encoding a WAV file is served in,
    /// such as `l16` or `g722`), lower case, when the URI has one made of
    /// 1 to 16 ASCII letters and digits (anything else is ignored). Which
    /// names mean something is the file reader's business.
    pub codec: Option<String>,
    /// The camera simulator's fault parameters of the query (`drop=`,
    /// `quirk=`, ...: see [`super::faults`]): `Ok(None)` without any, an
    /// error (answered 400 with its text) for a bad one.
    pub faults: Result<Option<Faults>, FaultError>,
}

impl Target {
    /// The presentation's base URL, `scheme://authority/path/` (with the
    /// trailing slash that makes `trackID=N` resolve under it), the path
    /// percent-encoded again in a canonical way.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}/{}/",
            self.scheme,
            self.authority,
            utf8_percent_encode(&self.path, PATH_SAFE)
        )
    }

    /// What identifies the presentation: the path, followed by
    /// `?codec=NAME` when [`Target::codec`] is set (the form
    /// [`ServerOutput::Lookup`](super::ServerOutput::Lookup) asks for).
    ///
    /// ```
    /// use rtsp_toolkit_core::server::path::parse_target;
    /// assert_eq!(parse_target("rtsp://h/a.wav?codec=L16").unwrap().resource(), "a.wav?codec=l16");
    /// assert_eq!(parse_target("rtsp://h/a.wav?codec=x/../y").unwrap().resource(), "a.wav");
    /// ```
    pub fn resource(&self) -> String {
        match &self.codec {
            Some(codec) => format!("{}?codec={codec}", self.path),
            None => self.path.clone(),
        }
    }

    /// The last path segment (the file name), or the empty string.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// Characters left as they are when re-encoding a path.
const PATH_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Why a Request-URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute `rtsp://` / `rtsps://` URI with a plausible host:
    /// the server answers 400.
    #[error("bad Request-URI: {0}")]
    BadUri(&'static str),
    /// A path that names nothing servable (or tries to escape the root):
    /// the server answers 404, without saying which.
    #[error("refused path: {0}")]
    Refused(&'static str),
}

/// Largest `trackID` accepted (a connection has at most 128 channel pairs).
const MAX_TRACK_ID: u32 = 1 << 16;

/// Parses and checks a Request-URI. See the [module docs](self).
///
/// ```
/// use rtsp_toolkit_core::server::path::{parse_target, TargetError};
/// let t = parse_target("rtsp://cam.local:8554/dir/a%20b.mp4/trackID=1?play_count=2").unwrap();
/// assert_eq!((t.authority.as_str(), t.path.as_str(), t.track), ("cam.local:8554", "dir/a b.mp4", Some(1)));
/// assert!(matches!(parse_target("rtsp://h/%2e%2e/etc/passwd"), Err(TargetError::Refused(_))));
/// ```
pub fn parse_target(uri: &str) -> Result<Target, TargetError> {
    if uri.is_empty() || !uri.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(TargetError::BadUri("empty, or characters outside visible ASCII"));
    }
    let (scheme, rest) = if let Some(rest) = strip_prefix_ci(uri, "rtsp://") {
        ("rtsp", rest)
    } else if let Some(rest) = strip_prefix_ci(uri, "rtsps://") {
        ("rtsps", rest)
    } else {
        return Err(TargetError::BadUri("not an absolute rtsp:// URI"));
    };
    // Drop a fragment, then split off the query.
    let rest = rest.split('#').next().unwrap_or("");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, raw_path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or("");
    if authority.is_empty()
        || !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]%".contains(&b))
    {
        return Err(TargetError::BadUri("bad host"));
    }
    let param = |name: &str| {
        query.and_then(|q| {
            q.rsplit('&')
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
        })
    };
    let play_count = param("play_count").map(|v| PlayCount::parse(&v));
    let codec = param("codec")
        .filter(|v| (1..=16).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|v| v.to_ascii_lowercase());
    let (path, track) = normalize_path(raw_path)?;
    let faults = query.map_or(Ok(None), Faults::parse_query);
    Ok(Target {
        scheme,
        authority: authority.to_owned(),
        path,
        track,
        play_count,
        codec,
        faults,
    })
}

/// Decodes `raw` once and checks it; returns the relative path and the
/// `trackID` of a last `trackID=N` segment.
fn normalize_path(raw: &str) -> Result<(String, Option<u32>), TargetError> {
    if raw.is_empty() || raw == "/" {
        return Ok((String::new(), None));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| TargetError::Refused("not UTF-8"))?;
    let decoded: &str = &decoded;
    let Some(body) = decoded.strip_prefix('/') else {
        return Err(TargetError::Refused("does not start with /"));
    };
    if decoded.contains('\\') {
        return Err(TargetError::Refused("backslash"));
    }
    if decoded.chars().any(char::is_control) {
        return Err(TargetError::Refused("control character"));
    }
    // One trailing slash is how base URLs end (`rtsp://h/a.mp4/`).
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut segments: Vec<&str> = body.split('/').collect();
    for s in &segments {
        match *s {
            "" => return Err(TargetError::Refused("empty segment")),
            "." | ".." => return Err(TargetError::Refused("dot segment")),
            _ => {}
        }
    }
    let mut track = None;
    if let Some(last) = segments.last() {
        if let Some(n) = strip_prefix_ci(last, "trackID=") {
            if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TargetError::Refused("bad trackID"));
            }
            let n: u32 = n.parse().map_err(|_| TargetError::Refused("bad trackID"))?;
            if n > MAX_TRACK_ID {
                return Err(TargetError::Refused("bad trackID"));
            }
            track = Some(n);
            segments.pop();
        }
    }
    Ok((segments.join("/"), track))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(uri: &str) -> Result<String, TargetError> {
        parse_target(uri).map(|t| t.path)
    }

    fn refused(uri: &str) {
        assert!(
            matches!(parse_target(uri), Err(TargetError::Refused(_))),
            "{uri} gave {:?}",
            parse_target(uri)
        );
    }

    #[test]
    fn plain_paths() {
        assert_eq!(path("rtsp://h/a.mp4").unwrap(), "a.mp4");
        assert_eq!(path("rtsp://h:8554/dir/sub/a.mp4").unwrap(), "dir/sub/a.mp4");
        assert_eq!(path("RTSP://h/a.mp4/").unwrap(), "a.mp4");
        assert_eq!(path("rtsps://h/a.mp4").unwrap(), "a.mp4");
        assert_eq!(path("rtsp://h/a%20b.mp4").unwrap(), "a b.mp4");
        assert_eq!(path("rtsp://h/caf%C3%A9.mp4").unwrap(), "café.mp4");
        assert_eq!(path("rtsp://h/a.mp4#frag").unwrap(), "a.mp4");
        assert_eq!(path("rtsp://h").unwrap(), "");
        assert_eq!(path("rtsp://h/").unwrap(), "");
        assert_eq!(path("rtsp://h/...mp4").unwrap(), "...mp4");
        assert_eq!(path("rtsp://h/..a").unwrap(), "..a");
        // A malformed escape is a literal name, not an error.
        assert_eq!(path("rtsp://h/100%zz").unwrap(), "100%zz");
    }

    #[test]
    fn authority_and_userinfo() {
        let t = parse_target("rtsp://user:pw@10.0.0.1:554/a.mp4").unwrap();
        assert_eq!(t.authority, "10.0.0.1:554");
        let t = parse_target("rtsp://[::1]:8554/a.mp4").unwrap();
        assert_eq!(t.authority, "[::1]:8554");
        assert_eq!(t.base_url(), "rtsp://[::1]:8554/a.mp4/");
        assert!(matches!(parse_target("rtsp:///a.mp4"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target("rtsp://h<x>/a"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target("/a.mp4"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target("*"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target("http://h/a.mp4"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target("rtsp://h/a\r.mp4"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target("rtsp://h/a b"), Err(TargetError::BadUri(_))));
        assert!(matches!(parse_target(""), Err(TargetError::BadUri(_))));
    }

    #[test]
    fn base_url_reencodes() {
        let t = parse_target("rtsp://h:1/d/a%20b%3F.mp4/trackID=0").unwrap();
        assert_eq!(t.base_url(), "rtsp://h:1/d/a%20b%3F.mp4/");
        assert_eq!(t.file_name(), "a b?.mp4");
        let again = parse_target(&format!("{}trackID=1", t.base_url())).unwrap();
        assert_eq!((again.path.as_str(), again.track), ("d/a b?.mp4", Some(1)));
    }

    #[test]
    fn track_suffix() {
        let t = parse_target("rtsp://h/a.mp4/trackID=3").unwrap();
        assert_eq!((t.path.as_str(), t.track), ("a.mp4", Some(3)));
        let t = parse_target("rtsp://h/a.mp4/trackid=0/").unwrap();
        assert_eq!((t.path.as_str(), t.track), ("a.mp4", Some(0)));
        let t = parse_target("rtsp://h/a.mp4/trackID%3D1").unwrap();
        assert_eq!((t.path.as_str(), t.track), ("a.mp4", Some(1)));
        assert_eq!(parse_target("rtsp://h/a.mp4").unwrap().track, None);
        refused("rtsp://h/a.mp4/trackID=");
        refused("rtsp://h/a.mp4/trackID=x");
        refused("rtsp://h/a.mp4/trackID=-1");
        refused("rtsp://h/a.mp4/trackID=99999999999999999999");
        // Only the last segment is a track suffix.
        let t = parse_target("rtsp://h/trackID=1/a.mp4").unwrap();
        assert_eq!((t.path.as_str(), t.track), ("trackID=1/a.mp4", None));
        // A bare track URL names no file.
        let t = parse_target("rtsp://h/trackID=1").unwrap();
        assert_eq!((t.path.as_str(), t.track), ("", Some(1)));
    }

    #[test]
    fn traversal_spellings_are_refused() {
        for uri in [
            "rtsp://h/..",
            "rtsp://h/../etc/passwd",
            "rtsp://h/a/../../etc/passwd",
            "rtsp://h/a.mp4/../../etc/passwd",
            "rtsp://h/%2e%2e/etc/passwd",
            "rtsp://h/%2E%2e/etc/passwd",
            "rtsp://h/%2E%2e/",
            "rtsp://h/.%2e/x",
            "rtsp://h/a%2f..%2fb",
            "rtsp://h/a%2F%2E%2E%2Fb",
            "rtsp://h/..\\..\\etc\\passwd",
            "rtsp://h/..%5c..%5cetc%5cpasswd",
            "rtsp://h/a\\b.mp4",
            "rtsp://h//etc/passwd",
            "rtsp://h/%2fetc/passwd",
            "rtsp://h/a//b.mp4",
            "rtsp://h/./a.mp4",
            "rtsp://h/a/./b.mp4",
            "rtsp://h/.",
            "rtsp://h/%2e",
            "rtsp://h/a.mp4%00.txt",
            "rtsp://h/a.mp4%00",
            "rtsp://h/a%0d%0aX:y",
            "rtsp://h/a%0d%0ab",
            "rtsp://h/a%7f",
            "rtsp://h/%ff%fe",
            "rtsp://h/..//",
            "rtsp://h/a.mp4/..",
            "rtsp://h/a.mp4/../trackID=0",
        ] {
            refused(uri);
        }
    }

    #[test]
    fn decoded_only_once() {
        // %252e decodes to the literal text %2e: an odd file name, which the
        // lookup will not find, and not a dot segment.
        assert_eq!(path("rtsp://h/%252e%252e/etc/passwd").unwrap(), "%2e%2e/etc/passwd");
        assert_eq!(path("rtsp://h/%252e%252e%252fx").unwrap(), "%2e%2e%2fx");
    }

    #[test]
    fn play_count_query() {
        let pc = |uri: &str| parse_target(uri).unwrap().play_count;
        let times = |n: u32| Some(PlayCount::Times(NonZeroU32::new(n).unwrap()));
        assert_eq!(pc("rtsp://h/a.mp4"), None);
        assert_eq!(pc("rtsp://h/a.mp4?play_count=2"), times(2));
        assert_eq!(pc("rtsp://h/a.mp4?x=1&play_count=0"), Some(PlayCount::Forever));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=000"), Some(PlayCount::Forever));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=-1"), times(1));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=abc"), times(1));
        assert_eq!(pc("rtsp://h/a.mp4?play_count="), times(1));
        assert_eq!(pc("rtsp://h/a.mp4?play_count"), times(1));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=1e9"), times(1));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=4294967295"), times(u32::MAX));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=4294967296"), times(u32::MAX));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=18446744073709551616000"), times(u32::MAX));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=%33"), times(3));
        assert_eq!(pc("rtsp://h/a.mp4?play_count=1&play_count=5"), times(5));
        assert_eq!(pc("rtsp://h/a.mp4?PLAY_COUNT=4"), times(4));
        assert_eq!(pc("rtsp://h/a.mp4?play_counter=4"), None);
        // The codec parameter, for WAV files.
        let codec = |uri: &str| parse_target(uri).unwrap().codec;
        assert_eq!(codec("rtsp://h/a.wav?codec=G722"), Some("g722".to_owned()));
        assert_eq!(codec("rtsp://h/a.wav?play_count=2&codec=l16"), Some("l16".to_owned()));
        assert_eq!(codec("rtsp://h/a.wav?codec=%6c16"), Some("l16".to_owned()));
        assert_eq!(codec("rtsp://h/a.wav?codec="), None);
        assert_eq!(codec("rtsp://h/a.wav?codec=a%2fb"), None);
        assert_eq!(codec("rtsp://h/a.wav?codec=abcdefghijklmnopq"), None);
        assert_eq!(codec("rtsp://h/a.wav"), None);
        // The query never becomes part of the path.
        assert_eq!(path("rtsp://h/a.mp4?play_count=2/../../x").unwrap(), "a.mp4");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_output_is_safe(uri in "\\PC{0,80}") {
            if let Ok(t) = parse_target(&uri) {
                proptest::prop_assert!(!t.path.starts_with('/'));
                proptest::prop_assert!(!t.path.contains('\\'));
                proptest::prop_assert!(t.path.split('/').all(|s| s != ".." && s != "."));
                proptest::prop_assert!(t.path.is_empty() || t.path.split('/').all(|s| !s.is_empty()));
                proptest::prop_assert!(!t.path.chars().any(char::is_control));
            }
        }

        #[test]
        fn encoded_spellings_never_escape(segs in proptest::collection::vec(
            proptest::sample::select(vec!["..", ".", "%2e", "%2E", "%2e%2e", "%2f", "%5c", "a", "b.mp4", "", "%00", "%252e"]), 0..8)) {
            let uri = format!("rtsp://h/{}", segs.join("/"));
            if let Ok(t) = parse_target(&uri) {
                proptest::prop_assert!(t.path.split('/').all(|s| s != ".." && s != "."));
                proptest::prop_assert!(!t.path.starts_with('/') && !t.path.contains('\0'));
            }
        }
    }
}
