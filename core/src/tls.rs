//! What the core knows of RTSPS (RTSP over TLS): the facts a session's
//! [`ConnectEvent`](crate::client::ConnectEvent) reports about its TLS
//! connection ([`TlsInfo`]) and the SHA-256 certificate fingerprints users
//! pin ([`parse_fingerprint`], [`format_fingerprint`]).
//!
//! The TLS layer itself (rustls, the handshake, certificate checks) is not
//! here: the core has no I/O. It sits in `rtsp-toolkit-driver` between the
//! socket bytes and the machines, once for every runtime
//! (`docs/ARCHITECTURE.md`, "TLS").

/// Default port of `rtsps://` URLs (RFC 2326 §3.2 leaves it to IANA: 322).
pub const DEFAULT_RTSPS_PORT: u16 = 322;

/// The TLS connection a session runs over, as the handshake settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TlsInfo {
    /// The protocol version (`TLSv1.3`, `TLSv1.2`).
    pub version: String,
    /// The cipher suite's IANA name (`TLS13_AES_256_GCM_SHA384`).
    pub cipher_suite: String,
    /// SHA-256 of the peer's end-entity certificate (DER), as
    /// [`format_fingerprint`] writes it; `None` when the peer sent none.
    pub peer_fingerprint: Option<String>,
}

/// A SHA-256 fingerprint as people write it: 32 bytes in hex, with or
/// without `:` (or spaces) between the bytes, either case
/// (`AB:CD:...`, `abcd...`), an optional `sha256:` / `SHA256=` prefix.
///
/// ```
/// use rtsp_toolkit_core::tls::parse_fingerprint;
/// let hex = "00".repeat(31) + "ff";
/// assert_eq!(parse_fingerprint(&hex).unwrap()[31], 0xff);
/// assert!(parse_fingerprint("12:34").is_err());
/// ```
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let t = ["sha256:", "sha256=", "sha-256:", "sha-256="]
        .iter()
        .find_map(|p| {
            t.get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .map(|_| &t[p.len()..])
        })
        .unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|b| !matches!(b, b':' | b' ' | b'-')).collect();
    if digits.len() != 64 {
        return Err(format!(
            "a SHA-256 fingerprint is 64 hex digits (colons allowed), got {} digits",
            digits.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]);
        let lo = hex_value(pair[1]);
        match (hi, lo) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => return Err("a SHA-256 fingerprint has only hex digits (0-9, a-f) and colons".into()),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `digest` as upper-case hex bytes joined by `:` (`AB:CD:...`), the form
/// `openssl x509 -fingerprint -sha256` prints; [`parse_fingerprint`] reads it back.
///
/// ```
/// use rtsp_toolkit_core::tls::format_fingerprint;
/// assert_eq!(format_fingerprint(&[0xab, 0x01]), "AB:01");
/// ```
pub fn format_fingerprint(digest: &[u8]) -> String {
    let mut s = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_back_in_every_written_form() {
        let digest: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let text = format_fingerprint(&digest);
        assert_eq!(text.len(), 32 * 3 - 1);
        assert_eq!(parse_fingerprint(&text).unwrap().to_vec(), digest);
        assert_eq!(parse_fingerprint(&text.to_lowercase()).unwrap().to_vec(), digest);
        assert_eq!(parse_fingerprint(&text.replace(':', "")).unwrap().to_vec(), digest);
        assert_eq!(parse_fingerprint(&format!(" SHA256:{text} ")).unwrap().to_vec(), digest);
        assert_eq!(
            parse_fingerprint(&format!("sha256={}", text.replace(':', " ")))
                .unwrap()
                .to_vec(),
            digest
        );
    }

    #[test]
    fn bad_fingerprints_say_why() {
        assert!(parse_fingerprint("").unwrap_err().contains("64 hex digits"));
        assert!(parse_fingerprint(&"a".repeat(62)).unwrap_err().contains("got 62"));
        assert!(parse_fingerprint(&"g".repeat(64))
            .unwrap_err()
            .contains("only hex digits"));
        assert!(parse_fingerprint(&"é".repeat(32)).is_err());
        assert!(parse_fingerprint(&"0".repeat(65)).is_err());
    }
}
