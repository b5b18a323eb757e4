//! What both ends of an RTSP-over-HTTP tunnel share (`server::tunnel` and
//! `client::tunnel` use it; neither depends on the other, as
//! `docs/ARCHITECTURE.md` has it).

/// The media type both halves of a tunnel name.
pub const TUNNEL_TYPE: &str = "application/x-rtsp-tunnelled";

/// The length of the HTTP head in `buf` up to and with its blank line (CRLF
/// CRLF or LF LF, or a mix), if it is there.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = buf.get(line_start..i).unwrap_or_default();
            if (line.is_empty() || line == b"\r") && line_start > 0 {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}
