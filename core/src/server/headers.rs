//! The request headers the server reads and the words it answers with:
//! `Transport` (which delivery a SETUP asks for), `Range` (npt times),
//! `Session`, `Require` (the ONVIF backchannel) and the status reasons.
//! Pure functions of the header values; the handlers in `request.rs` use them.

use std::net::IpAddr;
use std::time::Duration;

use super::PlayCount;
use crate::message::Request;
use crate::source::MediaSource;

/// The end of the whole presentation: `count × duration`; `None` for endless.
pub(super) fn range_end(source: &MediaSource, count: PlayCount) -> Option<Duration> {
    if source.duration.is_zero() {
        return Some(Duration::ZERO);
    }
    source.duration.checked_mul(count.times()?)
}

/// Longest `npt` accepted (about 31 years): beyond, a time is not a position.
const MAX_NPT_SECS: f64 = 1e9;

/// An `npt` range (RFC 2326 §3.6): its start (`None`: `now`, or absent as
/// in `npt=-T`) and end. Times are seconds (`12.5`) or `hh:mm:ss[.frac]`;
/// anything after `;` (a `time=` parameter) is ignored. `clock=`/`smpte=`
/// ranges and malformed ones are `Err` (457).
pub(super) fn parse_npt_range(value: &str) -> Result<(Option<Duration>, Option<Duration>), ()> {
    let spec = value.split(';').next().unwrap_or("").trim();
    let spec = spec.strip_prefix("npt=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let time = |t: &str| -> Result<Option<Duration>, ()> {
        let t = t.trim();
        if t.is_empty() || t == "now" {
            return Ok(None);
        }
        let secs = match t.split(':').collect::<Vec<_>>()[..] {
            [s] => s.parse::<f64>().map_err(|_| ())?,
            [h, m, s] => {
                let h = h.parse::<u32>().map_err(|_| ())?;
                let m = m.parse::<u32>().map_err(|_| ())?;
                let s = s.parse::<f64>().map_err(|_| ())?;
                if m >= 60 || !(0.0..60.0).contains(&s) {
                    return Err(());
                }
                f64::from(h) * 3600.0 + f64::from(m) * 60.0 + s
            }
            _ => return Err(()),
        };
        if !secs.is_finite() || !(0.0..=MAX_NPT_SECS).contains(&secs) {
            return Err(());
        }
        Duration::try_from_secs_f64(secs).map(Some).map_err(|_| ())
    };
    let (start, end) = (time(a)?, time(b)?);
    if b.trim() == "now" {
        return Err(());
    }
    Ok((start, end))
}

/// Whether a `Range` value asks to start at the beginning (`npt=0-`,
/// `npt=0.000-`, `npt=now-`).
pub(super) fn starts_at_zero(range: &str) -> bool {
    let Some(spec) = range.trim().strip_prefix("npt=") else {
        return false;
    };
    let start = spec.split('-').next().unwrap_or("").trim();
    start == "now" || start.parse::<f64>().is_ok_and(|s| s == 0.0)
}

/// The delivery a SETUP's `Transport` asks for: its first spec this server
/// can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Requested {
    /// `RTP/AVP/TCP`, on these channels (`None`: the server picks).
    Interleaved(Option<(u8, u8)>),
    /// `RTP/AVP` or `RTP/AVP/UDP` unicast to these client ports (RTP, RTCP);
    /// `profile` is the spelling to echo.
    Udp { profile: &'static str, client: (u16, u16) },
    /// `RTP/AVP` or `RTP/AVP/UDP` multicast: the group, ports and TTL are
    /// the server's (the client's `port`, `client_port` or `ttl` are not
    /// followed).
    Multicast { profile: &'static str },
}

/// Longest session id a request may name (ours are 16 hex digits).
pub(super) const MAX_SESSION_ID: usize = 64;

/// The session id of a request's `Session` header.
pub(super) fn session_id_of(req: &Request) -> Option<&str> {
    req.headers
        .get("Session")
        .map(|v| v.split(';').next().unwrap_or("").trim())
}

/// Which transports besides TCP interleaved the server offers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offer {
    pub(super) udp: bool,
    pub(super) multicast: bool,
}

/// The first spec of a `Transport` value this server serves: unicast
/// `RTP/AVP/TCP`, unicast `RTP/AVP` / `RTP/AVP/UDP` with `client_port`
/// whose `destination`, if any, is the client's own address (`peer`):
/// media never goes to a third address; or multicast `RTP/AVP` /
/// `RTP/AVP/UDP` without a `destination` (the server chooses the group: a
/// client cannot send a stream to a group of its choice). UDP specs without
/// `client_port`, specs naming another destination and TCP multicast are
/// skipped; a spec with malformed channels or ports refuses the whole
/// header.
pub(super) fn parse_transport(value: Option<&str>, peer: IpAddr, offer: Offer) -> Result<Requested, &'static str> {
    let value = value.ok_or("no Transport header")?;
    for spec in value.split(',') {
        let mut params = spec.split(';').map(str::trim);
        let protocol = params.next().unwrap_or("");
        let udp_profile = if protocol.eq_ignore_ascii_case("RTP/AVP/TCP") {
            None
        } else if protocol.eq_ignore_ascii_case("RTP/AVP") {
            Some("RTP/AVP")
        } else if protocol.eq_ignore_ascii_case("RTP/AVP/UDP") {
            Some("RTP/AVP/UDP")
        } else {
            continue;
        };
        let mut interleaved = None;
        let mut client_port = None;
        let mut multicast = false;
        let mut elsewhere = false;
        let mut destination = false;
        for p in params {
            let (name, v) = p.split_once('=').unwrap_or((p, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("multicast") {
                multicast = true;
            } else if name.eq_ignore_ascii_case("interleaved") {
                interleaved = Some(parse_channels(v).ok_or("bad interleaved channels")?);
            } else if name.eq_ignore_ascii_case("client_port") {
                client_port = Some(parse_ports(v).ok_or("bad client_port")?);
            } else if name.eq_ignore_ascii_case("destination") && !v.is_empty() {
                destination = true;
                let ip = v.trim().trim_start_matches('[').trim_end_matches(']');
                elsewhere = ip.parse::<IpAddr>().ok() != Some(peer);
            }
        }
        if multicast {
            match udp_profile {
                Some(_) if !offer.multicast => tracing::debug!("multicast not offered: spec skipped"),
                Some(profile) if !destination => return Ok(Requested::Multicast { profile }),
                Some(_) => tracing::debug!("multicast spec naming its own destination skipped"),
                None => tracing::debug!("TCP multicast spec skipped"),
            }
            continue;
        }
        match udp_profile {
            None => return Ok(Requested::Interleaved(interleaved)),
            Some(_) if !offer.udp => tracing::debug!("UDP not offered: spec skipped"),
            Some(profile) => match client_port {
                Some(client) if !elsewhere => return Ok(Requested::Udp { profile, client }),
                Some(_) => tracing::debug!("UDP spec with another destination than the client skipped"),
                None => tracing::debug!("UDP spec without client_port skipped"),
            },
        }
    }
    Err("no RTP/AVP/TCP, unicast RTP/AVP/UDP with client_port, or multicast RTP/AVP transport")
}

/// `a-b` or `a` (meaning `a-(a+1)`): two distinct, non-zero ports.
fn parse_ports(v: &str) -> Option<(u16, u16)> {
    parse_pair(v, |a: u16| a.checked_add(1)).filter(|&(a, b)| a != 0 && b != 0)
}

/// `a-b` or `a` (meaning `a-(a+1)`): two distinct channels.
fn parse_channels(v: &str) -> Option<(u8, u8)> {
    parse_pair(v, |a: u8| a.checked_add(1))
}

/// `a-b`, or `a` and `next(a)`, when the two differ.
fn parse_pair<T: std::str::FromStr + PartialEq + Copy>(v: &str, next: impl Fn(T) -> Option<T>) -> Option<(T, T)> {
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let a = v.trim().parse().ok()?;
            (a, next(a)?)
        }
    };
    (a != b).then_some((a, b))
}

/// The `Require` tag of the ONVIF audio backchannel.
pub(super) const BACKCHANNEL_TAG: &str = crate::client::backchannel::REQUIRE_TAG;

/// Whether `req` asks for the ONVIF backchannel.
pub(super) fn wants_backchannel(req: &Request) -> bool {
    req.headers
        .get_all("Require")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(BACKCHANNEL_TAG))
}

pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        551 => "Option not supported",
        _ => "Unknown",
    }
}
