//! Durations as seconds (an `f64`), the form every serialized type of this
//! crate gives them (in fields named with an `_s` suffix): for
//! `#[serde(with = "rtsp_toolkit_core::duration_secs")]` on a `Duration`
//! field of one's own types, and [`option`] on an `Option<Duration>`.
//!
//! Writing is exact to the nanosecond for durations under about 104 days
//! (2^53 ns). Reading takes any number ≥ 0 (integers too), rounds to the
//! nanosecond, and gives [`Duration::MAX`] for numbers beyond it (so
//! `Duration::MAX`, written as `18446744073709552000`, reads back as
//! itself); a negative number, NaN or anything but a number is an error.
//!
//! ```
//! use std::time::Duration;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Wait {
//!     #[serde(rename = "wait_s", with = "rtsp_toolkit_core::duration_secs")]
//!     wait: Duration,
//! }
//! let json = serde_json::to_string(&Wait { wait: Duration::from_millis(1500) }).unwrap();
//! assert_eq!(json, r#"{"wait_s":1.5}"#);
//! let back: Wait = serde_json::from_str(r#"{"wait_s":2}"#).unwrap();
//! assert_eq!(back.wait, Duration::from_secs(2));
//! ```

use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::Serializer;

/// Writes `d` as seconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Reads seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_secs(f64::deserialize(d)?)
}

fn from_secs<E: de::Error>(secs: f64) -> Result<Duration, E> {
    if secs.is_nan() || secs < 0.0 {
        return Err(E::invalid_value(
            de::Unexpected::Float(secs),
            &"a duration in seconds (a number >= 0)",
        ));
    }
    // The only error left is a number past Duration::MAX.
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// `Option<Duration>` as seconds or `null`.
pub mod option {
    use super::*;

    /// Writes `d` as seconds, or `null`.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    /// Reads seconds or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?.map(from_secs).transpose()
    }
}

/// Bytes that are text by their protocol (an RTSP body, an SDES item), as a
/// string: invalid UTF-8 becomes U+FFFD. (Here, beside the other field
/// helpers, so that the types' modules need not import `serde_impls`,
/// which imports them.)
pub(crate) fn lossy_text<S: serde::Serializer>(bytes: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let read = |x: f64| from_secs::<serde::de::value::Error>(x);
        assert_eq!(read(0.1).unwrap(), Duration::from_millis(100));
        assert_eq!(read(Duration::MAX.as_secs_f64()).unwrap(), Duration::MAX);
        assert_eq!(read(f64::INFINITY).unwrap(), Duration::MAX);
        assert!(read(-1.0).is_err());
        assert!(read(f64::NAN).is_err());
        let d = Duration::new(86_400, 123_456_789);
        assert_eq!(read(d.as_secs_f64()).unwrap(), d);
    }
}
