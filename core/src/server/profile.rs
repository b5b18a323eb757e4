//! Fault profiles from files (`serve --profile PATH=FILE`): the camera
//! simulator's faults and quirks for every session of a path, without a
//! query in its URL. A profile is a small TOML file, one fault per line, with
//! the names and values of the URL query ([`FAULTS`]):
//!
//! ```toml
//! # a flaky Wi-Fi camera with Hisilicon firmware
//! seed = 7
//! drop = 0.03
//! burst = 3
//! stall = "20:5"
//! quirk = ["wrong_cseq", "no_get_parameter"]
//! ```
//!
//! Values are numbers, bare words (`300p`), quoted strings without escapes, or
//! (for `quirk`) an array of quoted names. Comments start with `#`; blank lines
//! are ignored. Unknown names, a name given twice, a bad value, and a file
//! without any fault are errors, each with its line number (the URL query
//! ignores unknown names, a file does not: a typo there would silently test
//! nothing). A URL with fault parameters of its own takes those instead.

use super::faults::{Faults, FAULTS};

/// Largest profile file read.
pub const MAX_PROFILE_BYTES: usize = 64 * 1024;

/// Why a profile file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Bigger than [`MAX_PROFILE_BYTES`].
    #[error("the profile is larger than {MAX_PROFILE_BYTES} bytes")]
    TooLarge,
    /// A line that is not `name = value`, or whose value cannot be read.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A name that is not a fault parameter.
    #[error("line {line}: unknown fault `{name}` (serve --list-profiles lists them)")]
    Unknown {
        /// 1-based.
        line: usize,
        /// The name, cut at 64 characters.
        name: String,
    },
    /// A name given twice.
    #[error("line {line}: `{name}` given twice")]
    Twice {
        /// 1-based, the second.
        line: usize,
        /// The name.
        name: String,
    },
    /// A value the fault does not take (the URL query's refusal).
    #[error("line {line}: {error}")]
    Value {
        /// 1-based.
        line: usize,
        /// The refusal, with the parameter and what it takes.
        error: super::faults::FaultError,
    },
    /// No fault at all.
    #[error("the profile names no fault")]
    Empty,
}

/// The faults a profile file's text asks for.
pub fn parse_profile(text: &str) -> Result<Faults, ProfileError> {
    if text.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge);
    }
    let mut query = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let syntax = |reason: &str| ProfileError::Syntax {
            line,
            reason: reason.to_owned(),
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (key, value) = trimmed
            .split_once('=')
            .ok_or_else(|| syntax("expected `name = value`"))?;
        let key = key.trim();
        let Some(&(name, _, _)) = FAULTS.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(key)) else {
            return Err(ProfileError::Unknown {
                line,
                name: key.chars().take(64).collect(),
            });
        };
        if seen.contains(&name) {
            return Err(ProfileError::Twice {
                line,
                name: name.to_owned(),
            });
        }
        seen.push(name);
        let value = read_value(value.trim()).map_err(&syntax)?;
        if value.contains(['&', '%']) {
            return Err(syntax("`&` and `%` are not taken in a value"));
        }
        let pair = format!("{name}={value}");
        // Each line on its own first, for its line number in the error.
        Faults::parse_query(&pair).map_err(|error| ProfileError::Value { line, error })?;
        query.push(pair);
    }
    match Faults::parse_query(&query.join("&")) {
        Ok(Some(faults)) => Ok(faults),
        Ok(None) => Err(ProfileError::Empty),
        Err(error) => Err(ProfileError::Value { line: 0, error }),
    }
}

/// A value: a quoted string, an array of quoted strings (joined with `,`),
/// or a bare word up to a `#` comment.
fn read_value(v: &str) -> Result<String, &'static str> {
    if let Some(rest) = v.strip_prefix('[') {
        let (items, tail) = rest.split_once(']').ok_or("an array without `]`")?;
        check_tail(tail)?;
        let mut out = Vec::new();
        for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (s, tail) = quoted(item)?;
            if !tail.trim().is_empty() {
                return Err("array items are quoted strings separated by commas");
            }
            out.push(s);
        }
        return Ok(out.join(","));
    }
    if v.starts_with('"') {
        let (s, tail) = quoted(v)?;
        check_tail(tail)?;
        return Ok(s);
    }
    let word = v.split('#').next().unwrap_or("").trim();
    if word.is_empty() {
        return Err("no value");
    }
    if word.contains(char::is_whitespace) || word.contains('"') {
        return Err("a value with spaces or quotes must be one quoted string");
    }
    Ok(word.to_owned())
}

/// The contents of a leading `"..."` and what follows it.
fn quoted(v: &str) -> Result<(String, &str), &'static str> {
    let rest = v.strip_prefix('"').ok_or("expected a quoted string")?;
    let (s, tail) = rest.split_once('"').ok_or("a string without its closing quote")?;
    if s.contains('\\') {
        return Err("escapes are not taken in strings");
    }
    Ok((s.to_owned(), tail))
}

/// Only a comment may follow a value.
fn check_tail(tail: &str) -> Result<(), &'static str> {
    let tail = tail.trim();
    if tail.is_empty() || tail.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_the_url_query_in_toml() {
        let text = "# a flaky camera\nseed = 7\ndrop = 0.03   # 3 %\nburst = 3\nstall = \"20:5\"\n\
                    quirk = [\"wrong_cseq\", \"no_get_parameter\"]\nclose_after = 300p\n";
        let from_file = parse_profile(text).unwrap();
        let from_url = Faults::parse_query(
            "seed=7&drop=0.03&burst=3&stall=20:5&quirk=wrong_cseq,no_get_parameter&close_after=300p",
        )
        .unwrap()
        .unwrap();
        assert_eq!(from_file, from_url);
    }

    /// The `Public` header of the OPTIONS answer for `uri` on a server with
    /// `profiles`.
    fn public_of(profiles: Vec<(String, Faults)>, uri: &str) -> Option<String> {
        use crate::server::{Connection, ServerConfig, ServerInput, ServerOutput};
        use std::sync::Arc;
        use std::time::Instant;
        let config = ServerConfig {
            profiles,
            ..ServerConfig::default()
        };
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config), t0, "127.0.0.1:40000".parse().unwrap(), 7, 0);
        let request = format!("OPTIONS {uri} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        conn.handle_input(t0, ServerInput::Data(request.as_bytes()));
        let mut written = Vec::new();
        for _ in 0..16 {
            match conn.poll_output() {
                ServerOutput::Transmit(b) => written.extend_from_slice(&b),
                ServerOutput::Timeout(_) | ServerOutput::Close => break,
                _ => {}
            }
        }
        let text = String::from_utf8(written).unwrap();
        text.lines().find_map(|l| l.strip_prefix("Public: ")).map(str::to_owned)
    }

    #[test]
    fn a_paths_profile_applies_unless_its_url_asks_for_faults_itself() {
        let profile = parse_profile("quirk = [\"no_public\"]").unwrap();
        let profiles = vec![("cams/door.mp4".to_owned(), profile)];
        assert_eq!(
            public_of(profiles.clone(), "rtsp://h/cams/door.mp4"),
            None,
            "the profile's quirk"
        );
        assert!(
            public_of(profiles.clone(), "rtsp://h/other.mp4").is_some(),
            "another path"
        );
        assert!(
            public_of(profiles, "rtsp://h/cams/door.mp4?seed=3").is_some(),
            "the URL's own faults replace the profile"
        );
    }

    #[test]
    fn every_mistake_has_its_line() {
        let err = |t: &str| parse_profile(t).unwrap_err();
        assert_eq!(
            err("seed = 1\ndorp = 0.1"),
            ProfileError::Unknown {
                line: 2,
                name: "dorp".into()
            }
        );
        assert_eq!(
            err("drop = 0.1\ndrop = 0.2"),
            ProfileError::Twice {
                line: 2,
                name: "drop".into()
            }
        );
        assert!(matches!(err("\n\ndrop = 2"), ProfileError::Value { line: 3, error } if error.param == "drop"));
        assert!(matches!(err("drop 0.1"), ProfileError::Syntax { line: 1, .. }));
        assert!(matches!(err("stall = \"2:3"), ProfileError::Syntax { line: 1, .. }));
        assert!(matches!(
            err("quirk = [\"a\" \"b\"]"),
            ProfileError::Syntax { line: 1, .. }
        ));
        assert!(matches!(
            err("quirk = [wrong_cseq]"),
            ProfileError::Syntax { line: 1, .. }
        ));
        assert!(matches!(
            err("stall = \"2:3\" extra"),
            ProfileError::Syntax { line: 1, .. }
        ));
        assert!(matches!(err("drop = 0.1&seed=3"), ProfileError::Syntax { line: 1, .. }));
        assert!(matches!(
            err("quirk = [\"no_such_quirk\"]"),
            ProfileError::Value { line: 1, .. }
        ));
        assert_eq!(err("# nothing\n\n"), ProfileError::Empty);
        assert_eq!(err(&"#".repeat(MAX_PROFILE_BYTES + 1)), ProfileError::TooLarge);
        let shown = err("seed = 1\ndrop = 7").to_string();
        assert!(shown.starts_with("line 2: ") && shown.contains("drop"), "{shown}");
    }
}
