//! The camera simulator: faults and quirks a session asks for in its URL.
//!
//! `rtsp://host/clip.mp4?drop=0.05&seed=7&quirk=wrong_cseq` plays the file
//! as a camera on a bad network would: [`Faults::parse_query`] reads the
//! query (total: any text gives a [`Faults`] or a [`FaultError`] that the
//! server answers `400` with, never a panic), and the connection applies it
//! to its session: packets dropped, held back or delayed, a stall, an early
//! close, a changed SSRC, sequence number or timestamp, and protocol quirks
//! of real cameras in the answers. Every fault done is reported as a
//! [`ServerEvent::Fault`](super::ServerEvent::Fault), so that a test can
//! compare what its client saw with what was done.
//!
//! Everything is drawn from one SplitMix64 generator seeded with `seed=N` (or the
//! server's [`ServerConfig::fault_seed`](super::ServerConfig::fault_seed)),
//! in packet order, and timed from the instants the runtime hands in: the
//! same inputs give the same faults (`docs/ARCHITECTURE.md`, "The loop").
//! What each fault and quirk reproduces, and where real cameras were seen
//! doing it, is in `docs/SIMULATOR.md`.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::message::Method;

/// A protocol or stream quirk of real cameras (`quirk=NAME[,NAME...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Quirk {
    /// Every response carries the request's `CSeq` plus one.
    WrongCseq,
    /// No response carries a `CSeq`.
    NoCseq,
    /// `GET_PARAMETER` and `SET_PARAMETER` are answered `501`, though
    /// `Public` lists them: the client must keep the session alive otherwise
    /// (OPTIONS).
    NoGetParameter,
    /// `Session` never has `;timeout=`.
    NoSessionTimeout,
    /// DESCRIBE has no `Content-Base`: the SDP's relative `a=control` is
    /// resolved against the request URL.
    NoContentBase,
    /// OPTIONS has no `Public`.
    NoPublic,
    /// No RTP packet has the marker bit set.
    NoMarker,
    /// No RTCP sender report: the RTCP packets (SDES, and the BYE at the
    /// end) start with an empty receiver report instead, so a receiver has
    /// no NTP/RTP mapping to align tracks or to time frames by.
    NoSr,
    /// The SDP's `a=control` are absolute URLs that end with a query
    /// (`rtsp://host/clip.mp4/trackID=0?transportmode=unicast`; the
    /// session's is the base URL with that query), so that a client must use
    /// them as they are.
    ControlAbsolute,
    /// The SDP has no session-level `a=control` (the media-level ones stay
    /// relative): the aggregate URL is the `Content-Base`.
    NoSessionControl,
    /// A SETUP over TCP is answered with interleaved channels other than
    /// the ones asked for (the media goes on those): the client must use the
    /// answered ones.
    OtherChannels,
    /// A SETUP over TCP is answered with a `Transport` without
    /// `interleaved=` (the media goes on the channels asked for, or on
    /// `2N-2N+1` when none were).
    NoInterleaved,
    /// DESCRIBE's `Content-Base` names another path
    /// (`rtsp://host/elsewhere/stream0/`, [`WRONG_CONTENT_BASE`]); the
    /// server, like a camera that ignores the path after DESCRIBE, takes
    /// requests on it for the presentation described.
    WrongContentBase,
    /// Every request after the first PLAY is answered `401 Unauthorized`
    /// (with a Basic challenge): keepalives and TEARDOWN fail while the
    /// media goes on.
    UnauthorizedAfterPlay,
    /// DESCRIBE's `Content-Base` is the server's `HOST:PORT/PATH/` without
    /// a scheme (not an absolute URL), as SV3C cameras answer: a client
    /// must not resolve the controls against it.
    ContentBaseNoScheme,
    /// After the first PLAY the Digest nonce changes: a request answering
    /// a nonce issued before PLAY is answered `401` with a new one (no
    /// `stale=true`), and answers to the new one pass. With the server's
    /// users (`serve --users`) the credentials are checked as always;
    /// without, the first request after PLAY gets that challenge and any
    /// Digest answer to its nonce passes. `OPTIONS` is not asked, as the
    /// server's authentication never asks it.
    ReauthAfterPlay,
}

impl Quirk {
    /// Every quirk, in the order `serve --list-profiles` prints them.
    pub const ALL: [Quirk; 16] = [
        Quirk::WrongCseq,
        Quirk::NoCseq,
        Quirk::NoGetParameter,
        Quirk::NoSessionTimeout,
        Quirk::NoContentBase,
        Quirk::NoPublic,
        Quirk::NoMarker,
        Quirk::NoSr,
        Quirk::ControlAbsolute,
        Quirk::NoSessionControl,
        Quirk::OtherChannels,
        Quirk::NoInterleaved,
        Quirk::WrongContentBase,
        Quirk::UnauthorizedAfterPlay,
        Quirk::ContentBaseNoScheme,
        Quirk::ReauthAfterPlay,
    ];

    /// Its name in `quirk=`.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::WrongCseq => "wrong_cseq",
            Quirk::NoCseq => "no_cseq",
            Quirk::NoGetParameter => "no_get_parameter",
            Quirk::NoSessionTimeout => "no_session_timeout",
            Quirk::NoContentBase => "no_content_base",
            Quirk::NoPublic => "no_public",
            Quirk::NoMarker => "no_marker",
            Quirk::NoSr => "no_sr",
            Quirk::ControlAbsolute => "control_absolute",
            Quirk::NoSessionControl => "no_session_control",
            Quirk::OtherChannels => "other_channels",
            Quirk::NoInterleaved => "no_interleaved",
            Quirk::WrongContentBase => "wrong_content_base",
            Quirk::UnauthorizedAfterPlay => "unauthorized_after_play",
            Quirk::ContentBaseNoScheme => "content_base_no_scheme",
            Quirk::ReauthAfterPlay => "reauth_after_play",
        }
    }

    /// One line about what it does.
    pub fn description(self) -> &'static str {
        match self {
            Quirk::WrongCseq => "every response's CSeq is the request's plus one",
            Quirk::NoCseq => "no response has a CSeq",
            Quirk::NoGetParameter => {
                "GET_PARAMETER and SET_PARAMETER answered 501 though Public lists them (keepalive must fall back to OPTIONS)"
            }
            Quirk::NoSessionTimeout => "the Session header never has ;timeout= (the client must assume 60 s)",
            Quirk::NoContentBase => "DESCRIBE without Content-Base (relative a=control against the request URL)",
            Quirk::NoPublic => "OPTIONS without a Public header",
            Quirk::NoMarker => "the RTP marker bit is never set (frames end only when the timestamp changes)",
            Quirk::NoSr => "no RTCP sender report (no NTP/RTP mapping: tracks cannot be aligned by it); the BYE still comes",
            Quirk::ControlAbsolute => {
                "the SDP's a=control are absolute URLs ending with a query (…/trackID=0?transportmode=unicast)"
            }
            Quirk::NoSessionControl => {
                "no session-level a=control in the SDP (the aggregate URL is the Content-Base)"
            }
            Quirk::OtherChannels => {
                "TCP SETUP answered with other interleaved channels than asked for (10-11, 12-13, ...), the media on those"
            }
            Quirk::NoInterleaved => {
                "TCP SETUP answered with a Transport without interleaved= (the media on the channels asked for)"
            }
            Quirk::WrongContentBase => {
                "DESCRIBE's Content-Base names another path (/elsewhere/stream0/), which the server then takes for the file"
            }
            Quirk::UnauthorizedAfterPlay => {
                "every request after PLAY answered 401 (keepalives and TEARDOWN fail; the media goes on)"
            }
            Quirk::ContentBaseNoScheme => {
                "DESCRIBE's Content-Base is HOST:PORT/PATH/ without a scheme (not an absolute URL), as SV3C cameras answer"
            }
            Quirk::ReauthAfterPlay => {
                "after PLAY the Digest nonce changes: an answer to the old one gets 401 with a new nonce (no stale=true); without --users the first request after PLAY is challenged, any Digest answer to it passes"
            }
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    fn from_name(name: &str) -> Option<Quirk> {
        Quirk::ALL.into_iter().find(|q| q.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Quirk`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Quirks(u32);

impl Quirks {
    /// Whether `q` is in the set.
    pub fn contains(self, q: Quirk) -> bool {
        self.0 & q.bit() != 0
    }

    /// Adds `q`.
    pub fn insert(&mut self, q: Quirk) {
        self.0 |= q.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Where the video parameter sets go (`params=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Params {
    /// `params=inband`: not in the SDP (no `sprop-parameter-sets`, no
    /// `sprop-vps`/`sprop-sps`/`sprop-pps`); in front of every keyframe
    /// that does not carry them.
    Inband,
    /// `params=sdp`: only in the SDP; taken out of the stream.
    Sdp,
}

/// When a connection is closed by `close_after=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseAfter {
    /// This long after PLAY (`close_after=S`, seconds).
    Time(Duration),
    /// Once this many RTP packets went out (`close_after=Np`).
    Packets(u64),
}

/// Most packets in one `drop_packets=`.
pub const MAX_DROP_PACKETS: usize = 32;

/// The packet numbers of `drop_packets=` (at most [`MAX_DROP_PACKETS`],
/// sorted, each once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PacketList {
    len: u8,
    at: [u32; MAX_DROP_PACKETS],
}

impl PacketList {
    /// The packet numbers, in increasing order.
    pub fn as_slice(&self) -> &[u32] {
        &self.at[..usize::from(self.len)]
    }

    /// Whether packet `n` is in the list.
    pub fn contains(&self, n: u64) -> bool {
        u32::try_from(n).is_ok_and(|n| self.as_slice().binary_search(&n).is_ok())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What a URL's query asks of its session. See the [module docs](self) and
/// [`FAULTS`] for the names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// `seed=N`: the generator's seed (else the server's).
    pub seed: Option<u64>,
    /// `drop=RATE`: the share of RTP packets not sent, in millionths.
    pub drop_ppm: u32,
    /// `burst=N`: each drop takes this many packets in a row (1 to 100;
    /// default 1), whatever their tracks, as a burst of loss on a link does.
    pub burst: u16,
    /// `dup=RATE`: the share of RTP packets sent twice, in millionths.
    pub dup_ppm: u32,
    /// `reorder=DEPTH`: one RTP packet in [`REORDER_ONE_IN`] is sent after
    /// the `DEPTH` packets of its track that follow it (UDP only).
    pub reorder: u16,
    /// `jitter_ms=MS`: each RTP datagram leaves up to this much later than
    /// due, uniformly (UDP only; later packets may overtake earlier ones).
    pub jitter: Duration,
    /// `stall=AFTER_S:FOR_S`: nothing (RTP or RTCP) is sent from `AFTER_S`
    /// after PLAY for `FOR_S`; then what fell due goes out at once (up to
    /// `max_lag`), as from a camera whose encoder or network froze.
    pub stall: Option<(Duration, Duration)>,
    /// `freeze=AFTER_S:FOR_S` was given (the last of `stall=` and `freeze=`
    /// wins): [`stall`](Faults::stall) holds the answers too, as a frozen
    /// network path does: a request that comes during it is answered at its
    /// end.
    pub freeze: bool,
    /// `close_after=S` or `close_after=Np`: the connection is closed, without
    /// a BYE or a TEARDOWN answer.
    pub close_after: Option<CloseAfter>,
    /// `drop_packets=N[,N...]`: these RTP packets of the session are not
    /// sent, counted from 0 in the order they go out, all tracks together
    /// (as `close_after=Np` counts them): a loss a test can place exactly.
    pub drop_packets: PacketList,
    /// `ssrc_change=S`: every track's SSRC changes once, `S` after PLAY.
    pub ssrc_change: Option<Duration>,
    /// `seq_jump=S`: every track's sequence number jumps by [`SEQ_JUMP`],
    /// once, `S` after PLAY.
    pub seq_jump: Option<Duration>,
    /// `ts_jump=S[:MS]`: every track's RTP timestamp jumps by
    /// [`ts_jump_ms`](Faults::ts_jump_ms) of its clock, once, at its first
    /// sample `S` after PLAY (no sequence gap; the sender reports follow the
    /// new timestamps).
    pub ts_jump: Option<Duration>,
    /// How far `ts_jump=` jumps, in milliseconds: forward when positive,
    /// back when negative (`ts_jump=S:-MS`); 0 stands for [`TS_JUMP`].
    pub ts_jump_ms: i32,
    /// `sr_offset=MS`: the NTP time of every RTCP sender report of every
    /// track but the first (track index above 0) is this many milliseconds
    /// off (later when positive): a wrong NTP/RTP mapping that puts those
    /// tracks out of step with the first by `MS` for a receiver that aligns
    /// tracks by their sender reports.
    pub sr_offset_ms: Option<i32>,
    /// `slow=MS`: each request is handled (answered, and what it starts
    /// started) this long after it came, one after the other, as by a
    /// camera with a slow or busy RTSP server.
    pub slow: Duration,
    /// `keyframe_gap=AFTER_S:FOR_S`: no video keyframe is sent from
    /// `AFTER_S` after PLAY for `FOR_S`: every packet of each keyframe
    /// (IDR access unit) due then is dropped, the frames between them sent.
    pub keyframe_gap: Option<(Duration, Duration)>,
    /// `params=inband` or `params=sdp`: where the H.264/H.265 parameter
    /// sets go (else where the file has them: in the SDP, and in-band when
    /// its samples carry them).
    pub params: Option<Params>,
    /// `resolution_change=S[:WxH]`: from each H.264/H.265 track's first
    /// keyframe `S` after PLAY, its SPS crops the pictures to another size
    /// (`WxH`, else half the width and height), sent in-band in front of
    /// that keyframe and every later one, as by a camera whose resolution
    /// was changed while it streams (the SDP keeps the old one).
    pub resolution_change: Option<(Duration, Option<(u32, u32)>)>,
    /// `session_timeout=S`: the session timeout announced and enforced for
    /// this connection (else the server's).
    pub session_timeout: Option<Duration>,
    /// `bye_at=S`: an RTCP BYE on every track `S` after PLAY, and the media
    /// goes on (a camera that says goodbye early).
    pub bye_at: Option<Duration>,
    /// `quirk=NAME[,NAME...]`.
    pub quirks: Quirks,
}

/// `reorder=`: one packet in this many is held back.
pub const REORDER_ONE_IN: u64 = 10;
/// `seq_jump=`: how far the sequence numbers jump (beyond RFC 3550's
/// `MAX_DROPOUT` of 3000, so a receiver sees a restart, not a loss).
pub const SEQ_JUMP: u16 = 20_000;
/// `ts_jump=`: how far the RTP timestamps jump by default, in time of each
/// track's clock (10 s: 900000 ticks of a 90 kHz video clock).
pub const TS_JUMP: Duration = Duration::from_secs(10);

/// Every fault parameter: (name, value syntax, one line about it), for
/// `serve --list-profiles` and the docs.
pub const FAULTS: &[(&str, &str, &str)] = &[
    (
        "seed",
        "N",
        "seed of the fault generator (default: serve --seed, 0): the same seed drops the same packets",
    ),
    (
        "drop",
        "RATE",
        "share of RTP packets not sent, 0 to 1 (over TCP too: a gap in the sequence numbers)",
    ),
    (
        "drop_packets",
        "N[,N...]",
        "these RTP packets not sent, counted from 0 after PLAY, all tracks together (up to 32)",
    ),
    (
        "burst",
        "N",
        "each drop takes N packets in a row (1-100, default 1), as a burst of loss does",
    ),
    ("dup", "RATE", "share of RTP packets sent twice, 0 to 1 (over TCP too)"),
    (
        "reorder",
        "DEPTH",
        "UDP: one RTP packet in 10 sent after the DEPTH (1-64) packets that follow it",
    ),
    (
        "jitter_ms",
        "MS",
        "UDP: each RTP packet delayed by 0 to MS ms (0-10000), later ones may overtake it",
    ),
    (
        "stall",
        "AFTER_S:FOR_S",
        "send no RTP or RTCP from AFTER_S after PLAY for FOR_S seconds, then the backlog at once",
    ),
    (
        "freeze",
        "AFTER_S:FOR_S",
        "as stall, and no answer either: a request that comes during it is answered at its end",
    ),
    (
        "keyframe_gap",
        "AFTER_S:FOR_S",
        "drop every packet of the video keyframes due from AFTER_S after PLAY for FOR_S seconds",
    ),
    (
        "close_after",
        "S | Np",
        "close the connection S seconds after PLAY, or after N RTP packets (no BYE)",
    ),
    ("ssrc_change", "S", "every track's SSRC changes S seconds after PLAY"),
    (
        "seq_jump",
        "S",
        "every track's sequence number jumps by 20000 S seconds after PLAY",
    ),
    (
        "ts_jump",
        "S[:MS]",
        "every track's RTP timestamp jumps MS ms (default 10000; negative: back) S seconds after PLAY (no sequence gap)",
    ),
    (
        "sr_offset",
        "MS",
        "the RTCP sender reports of every track but the first carry an NTP time MS ms off (-60000 to 60000, not 0)",
    ),
    (
        "slow",
        "MS",
        "each request answered MS ms after it came (1-60000), one after the other",
    ),
    (
        "params",
        "inband | sdp",
        "H.264/H.265 parameter sets only in-band (none in the SDP) or only in the SDP (none in-band)",
    ),
    (
        "resolution_change",
        "S[:WxH]",
        "from the first video keyframe S seconds after PLAY, an in-band SPS with another picture size (default half)",
    ),
    (
        "session_timeout",
        "S",
        "session timeout announced and enforced for this session (1-3600 s)",
    ),
    (
        "bye_at",
        "S",
        "an RTCP BYE on every track S seconds after PLAY, while the media goes on",
    ),
    (
        "quirk",
        "NAME[,NAME...]",
        "protocol and stream quirks of real cameras (below)",
    ),
];

/// Why a query's fault parameters were refused: the server answers `400`
/// with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault parameter {param}={value}: {reason}")]
pub struct FaultError {
    /// The parameter's name.
    pub param: &'static str,
    /// Its value, cut at 64 characters.
    pub value: String,
    /// What was expected.
    pub reason: &'static str,
}

/// Longest `seconds` value accepted (a day).
const MAX_SECONDS: f64 = 86_400.0;
/// Most quirks in one `quirk=`.
const MAX_QUIRK_NAMES: usize = 16;

impl Faults {
    /// The fault parameters of a URL query (the text after `?`, not
    /// percent-decoded yet). `Ok(None)` when it has none; other parameters
    /// (`play_count`, `codec`, anything unknown) are left alone. A parameter
    /// given twice takes its last value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtsp_toolkit_core::server::faults::{Faults, Quirk};
    /// let f = Faults::parse_query("play_count=2&drop=0.05&stall=3:1.5&quirk=wrong_cseq,no_public").unwrap().unwrap();
    /// assert_eq!(f.drop_ppm, 50_000);
    /// assert_eq!(f.stall, Some((Duration::from_secs(3), Duration::from_millis(1500))));
    /// assert!(f.quirks.contains(Quirk::WrongCseq) && f.quirks.contains(Quirk::NoPublic));
    /// assert!(Faults::parse_query("drop=2").is_err());
    /// assert_eq!(Faults::parse_query("play_count=2"), Ok(None));
    /// ```
    pub fn parse_query(query: &str) -> Result<Option<Faults>, FaultError> {
        let mut faults = Faults::default();
        let mut any = false;
        for kv in query.split('&') {
            let (key, raw) = kv.split_once('=').unwrap_or((kv, ""));
            let Some(&(name, _, _)) = FAULTS.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(key)) else {
                continue;
            };
            any = true;
            let value = percent_decode_str(raw).decode_utf8_lossy();
            let value = value.trim();
            let err = |reason: &'static str| FaultError {
                param: name,
                value: value.chars().take(64).collect(),
                reason,
            };
            match name {
                "seed" => {
                    faults.seed = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| err("a whole number from 0 to 2^64-1"))?,
                    )
                }
                "drop" => {
                    let rate = decimal(value, 1.0).ok_or_else(|| err("a rate from 0 to 1, such as 0.05"))?;
                    faults.drop_ppm = (rate * 1e6).round() as u32;
                }
                "burst" => {
                    faults.burst = value
                        .parse::<u16>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| err("a packet count from 1 to 100"))?;
                }
                "dup" => {
                    let rate = decimal(value, 1.0).ok_or_else(|| err("a rate from 0 to 1, such as 0.05"))?;
                    faults.dup_ppm = (rate * 1e6).round() as u32;
                }
                "reorder" => {
                    faults.reorder = value
                        .parse::<u16>()
                        .ok()
                        .filter(|d| (1..=64).contains(d))
                        .ok_or_else(|| err("a depth from 1 to 64 packets"))?;
                }
                "jitter_ms" => {
                    let ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms <= 10_000)
                        .ok_or_else(|| err("milliseconds from 0 to 10000"))?;
                    faults.jitter = Duration::from_millis(ms);
                }
                // The same window; a freeze also holds the answers.
                "stall" | "freeze" => {
                    faults.stall = Some(window(value, "AFTER_S:FOR_S, such as 5:2").map_err(err)?);
                    faults.freeze = name == "freeze";
                }
                "drop_packets" => {
                    let mut list = PacketList::default();
                    for n in value.split(',').map(str::trim) {
                        let n =
                            n.parse::<u32>().ok().filter(|n| *n < 1_000_000_000).ok_or_else(|| {
                                err("packet numbers from 0 to 999999999, comma-separated, such as 12,40")
                            })?;
                        let at = &mut list.at[..usize::from(list.len)];
                        if let Err(k) = at.binary_search(&n) {
                            if usize::from(list.len) == MAX_DROP_PACKETS {
                                return Err(err("at most 32 packet numbers"));
                            }
                            list.at.copy_within(k..usize::from(list.len), k + 1);
                            list.at[k] = n;
                            list.len += 1;
                        }
                    }
                    faults.drop_packets = list;
                }
                "params" => {
                    faults.params = Some(if value.eq_ignore_ascii_case("inband") {
                        Params::Inband
                    } else if value.eq_ignore_ascii_case("sdp") {
                        Params::Sdp
                    } else {
                        return Err(err("inband or sdp"));
                    });
                }
                "resolution_change" => {
                    let shape = "S[:WxH], sizes from 1 to 8192, such as 2:160x120";
                    let (at, size) = match value.split_once(':') {
                        Some((at, size)) => (at, Some(size)),
                        None => (value, None),
                    };
                    let size = match size {
                        None => None,
                        Some(size) => Some(
                            size.split_once(['x', 'X'])
                                .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)))
                                .filter(|&(w, h)| (1..=8192).contains(&w) && (1..=8192).contains(&h))
                                .ok_or_else(|| err(shape))?,
                        ),
                    };
                    faults.resolution_change = Some((seconds(at).ok_or_else(|| err(shape))?, size));
                }
                "keyframe_gap" => {
                    faults.keyframe_gap = Some(window(value, "AFTER_S:FOR_S, such as 1:2").map_err(err)?);
                }
                "close_after" => {
                    faults.close_after = Some(match value.strip_suffix(['p', 'P']) {
                        Some(n) => CloseAfter::Packets(
                            n.parse::<u64>()
                                .ok()
                                .filter(|n| (1..=1_000_000_000).contains(n))
                                .ok_or_else(|| err("Np: a packet count from 1 to 10^9, such as 300p"))?,
                        ),
                        None => CloseAfter::Time(
                            seconds(value)
                                .ok_or_else(|| err("seconds from 0 to 86400, or a packet count such as 300p"))?,
                        ),
                    });
                }
                "ssrc_change" => {
                    faults.ssrc_change = Some(seconds(value).ok_or_else(|| err("seconds from 0 to 86400"))?)
                }
                "seq_jump" => faults.seq_jump = Some(seconds(value).ok_or_else(|| err("seconds from 0 to 86400"))?),
                "sr_offset" => {
                    faults.sr_offset_ms = Some(
                        value
                            .parse::<i32>()
                            .ok()
                            .filter(|ms| *ms != 0 && (-60_000..=60_000).contains(ms))
                            .ok_or_else(|| err("milliseconds from -60000 to 60000, not 0, such as 500 or -250"))?,
                    )
                }
                "slow" => {
                    let ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| (1..=60_000).contains(ms))
                        .ok_or_else(|| err("milliseconds from 1 to 60000"))?;
                    faults.slow = Duration::from_millis(ms);
                }
                "ts_jump" => {
                    let (at, by) = match value.split_once(':') {
                        Some((at, by)) => (at, Some(by)),
                        None => (value, None),
                    };
                    faults.ts_jump = Some(seconds(at).ok_or_else(|| err("S: seconds from 0 to 86400"))?);
                    faults.ts_jump_ms = match by {
                        None => 0,
                        Some(by) => by
                            .trim()
                            .parse::<i32>()
                            .ok()
                            .filter(|ms| *ms != 0 && (-86_400_000..=86_400_000).contains(ms))
                            .ok_or_else(|| {
                                err("S:MS, MS whole milliseconds from -86400000 to 86400000, not 0, such as 2:-3000")
                            })?,
                    };
                }
                "bye_at" => faults.bye_at = Some(seconds(value).ok_or_else(|| err("seconds from 0 to 86400"))?),
                "session_timeout" => {
                    let s = value
                        .parse::<u64>()
                        .ok()
                        .filter(|s| (1..=3600).contains(s))
                        .ok_or_else(|| err("whole seconds from 1 to 3600"))?;
                    faults.session_timeout = Some(Duration::from_secs(s));
                }
                _ => {
                    // "quirk"
                    let names: Vec<&str> = value.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
                    if names.is_empty() || names.len() > MAX_QUIRK_NAMES {
                        return Err(err("1 to 16 quirk names, comma-separated (serve --list-profiles)"));
                    }
                    for n in names {
                        faults.quirks.insert(
                            Quirk::from_name(n)
                                .ok_or_else(|| err("an unknown quirk (serve --list-profiles has them)"))?,
                        );
                    }
                }
            }
        }
        Ok(any.then_some(faults))
    }

    /// Whether quirk `q` is asked for.
    pub fn has(&self, q: Quirk) -> bool {
        self.quirks.contains(q)
    }
}

/// A plain decimal (digits, at most one `.`, at most 12 characters) from 0
/// to `max`.
fn decimal(v: &str, max: f64) -> Option<f64> {
    let plain = !v.is_empty()
        && v.len() <= 12
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|b| *b == b'.').count() <= 1
        && v != ".";
    let x: f64 = v.parse().ok().filter(|_| plain)?;
    (x.is_finite() && (0.0..=max).contains(&x)).then_some(x)
}

/// The SDP text `sdp` without its video parameter sets (`params=inband`):
/// the `sprop-parameter-sets`, `sprop-vps`, `sprop-sps` and `sprop-pps`
/// of every `a=fmtp` line; a line left without parameters goes.
pub(super) fn without_parameter_sets(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive("\r\n") {
        let Some(rest) = line.strip_prefix("a=fmtp:") else {
            out.push_str(line);
            continue;
        };
        let rest = rest.trim_end_matches("\r\n");
        let (pt, params) = rest.split_once(' ').unwrap_or((rest, ""));
        let kept: Vec<&str> = params
            .split(';')
            .map(str::trim)
            .filter(|p| {
                !p.is_empty()
                    && !["sprop-parameter-sets=", "sprop-vps=", "sprop-sps=", "sprop-pps="]
                        .iter()
                        .any(|k| p.len() >= k.len() && p[..k.len()].eq_ignore_ascii_case(k))
            })
            .collect();
        if !kept.is_empty() {
            out.push_str(&format!("a=fmtp:{pt} {}\r\n", kept.join(";")));
        }
    }
    out
}

/// The path a [`Quirk::WrongContentBase`] `Content-Base` names.
pub const WRONG_CONTENT_BASE: &str = "elsewhere/stream0";

/// The `Content-Base` of [`Quirk::ContentBaseNoScheme`]: the
/// presentation's base URL `scheme://HOST[:PORT]/PATH/` without its scheme,
/// with the default port (554; 322 for `rtsps`) when it has none:
/// `HOST:PORT/PATH/`, as SV3C cameras answer `192.168.1.10:554/stream0/`.
pub(super) fn content_base_no_scheme(base_url: &str) -> String {
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("rtsp", base_url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let has_port = match authority.rfind(']') {
        Some(i) => authority[i..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        format!("{authority}/{path}")
    } else {
        let port = if scheme == "rtsps" { 322 } else { 554 };
        format!("{authority}:{port}/{path}")
    }
}

/// The query a [`Quirk::ControlAbsolute`] control URL ends with.
pub const ABSOLUTE_CONTROL_QUERY: &str = "?transportmode=unicast";

/// The SDP text `sdp` changed by the `a=control` quirks asked for:
/// [`Quirk::NoSessionControl`] drops the session-level `a=control:*`,
/// [`Quirk::ControlAbsolute`] makes every control an absolute URL under
/// `base` (the presentation's base URL, with its trailing slash).
pub(super) fn quirk_controls(sdp: &str, base: &str, no_session: bool, absolute: bool) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    for line in sdp.split_inclusive("\r\n") {
        let Some(control) = line.strip_prefix("a=control:").map(|c| c.trim_end_matches("\r\n")) else {
            out.push_str(line);
            continue;
        };
        match (control == "*", no_session, absolute) {
            (true, true, _) => {}
            (true, false, true) => out.push_str(&format!("a=control:{base}{ABSOLUTE_CONTROL_QUERY}\r\n")),
            (false, _, true) => out.push_str(&format!("a=control:{base}{control}{ABSOLUTE_CONTROL_QUERY}\r\n")),
            _ => out.push_str(line),
        }
    }
    out
}

fn seconds(v: &str) -> Option<Duration> {
    decimal(v.trim(), MAX_SECONDS).map(Duration::from_secs_f64)
}

/// `AFTER_S:FOR_S`: a start and a length above 0, in seconds; the error is
/// what was expected (`shape` when the colon is missing).
fn window(v: &str, shape: &'static str) -> Result<(Duration, Duration), &'static str> {
    let (after, len) = v.split_once(':').ok_or(shape)?;
    let after = seconds(after).ok_or("AFTER_S: seconds from 0 to 86400")?;
    let len = seconds(len)
        .filter(|d| !d.is_zero())
        .ok_or("FOR_S: seconds above 0, up to 86400")?;
    Ok((after, len))
}

/// One fault done, as [`ServerEvent::Fault`](super::ServerEvent::Fault)
/// reports it (`fault` is its name in JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "fault", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FaultEvent {
    /// An RTP packet was not sent (`drop=`).
    Drop {
        /// The track's index in the presentation (its `trackID`).
        track: usize,
        /// Its sequence number.
        seq: u16,
        /// Its RTP timestamp.
        rtp_ts: u32,
    },
    /// An RTP packet was sent twice (`dup=`).
    Duplicate {
        /// The track's index.
        track: usize,
        /// Its sequence number.
        seq: u16,
        /// Its RTP timestamp.
        rtp_ts: u32,
    },
    /// An RTP packet was held back, to be sent after the next `depth`
    /// packets of its track (`reorder=`).
    Reorder {
        /// The track's index.
        track: usize,
        /// Its sequence number.
        seq: u16,
        /// Its RTP timestamp.
        rtp_ts: u32,
        /// Packets sent before it.
        depth: u16,
    },
    /// An RTP datagram was delayed (`jitter_ms=`).
    Delay {
        /// The track's index.
        track: usize,
        /// Its sequence number.
        seq: u16,
        /// Its RTP timestamp.
        rtp_ts: u32,
        /// How long, in milliseconds.
        delay_ms: u32,
    },
    /// Nothing will be sent for this long (`stall=`).
    Stall {
        /// The stall's length.
        #[cfg_attr(feature = "serde", serde(rename = "for_s", with = "crate::duration_secs"))]
        length: Duration,
    },
    /// Nothing will be sent for this long, answers included (`freeze=`).
    Freeze {
        /// The freeze's length.
        #[cfg_attr(feature = "serde", serde(rename = "for_s", with = "crate::duration_secs"))]
        length: Duration,
    },
    /// The connection was closed (`close_after=`).
    Close {
        /// RTP packets that went out before (dropped ones included).
        packets: u64,
    },
    /// A track's SSRC changed (`ssrc_change=`).
    SsrcChange {
        /// The track's index.
        track: usize,
        /// The SSRC until now.
        from: u32,
        /// The SSRC from now on.
        to: u32,
    },
    /// A track's sequence numbers jumped (`seq_jump=`).
    SeqJump {
        /// The track's index.
        track: usize,
        /// The sequence number the next packet would have had.
        from: u16,
        /// The one it has.
        to: u16,
    },
    /// A track's RTP timestamps jumped, forward or back (`ts_jump=`).
    TsJump {
        /// The track's index.
        track: usize,
        /// The RTP timestamp the next sample would have had.
        from: u32,
        /// The one it has.
        to: u32,
    },
    /// A video track's pictures changed size: its keyframes from here on
    /// carry an SPS with the new size in-band (`resolution_change=`).
    ResolutionChange {
        /// The track's index.
        track: usize,
        /// The width and height until now.
        from: (u32, u32),
        /// The width and height from this keyframe on.
        to: (u32, u32),
    },
    /// A sender report went out with its NTP time off (`sr_offset=`).
    SrOffset {
        /// The track's index.
        track: usize,
        /// How far off, in milliseconds (later when positive).
        offset_ms: i32,
    },
    /// A request waits before it is handled (`slow=`, or a `freeze=` on
    /// when it came).
    Slow {
        /// The request's method.
        method: Method,
        /// How long, in milliseconds.
        delay_ms: u32,
    },
    /// The SDP of a DESCRIBE answer was written for `params=` (without
    /// parameter sets for `inband`); the stream follows it.
    Params {
        /// Where the parameter sets go.
        params: Params,
    },
    /// An RTCP BYE went out on every track while the media goes on
    /// (`bye_at=`).
    Bye {
        /// The tracks it went out on.
        tracks: usize,
    },
    /// A quirk changed the answer to a request (`quirk=`).
    Quirk {
        /// Which.
        quirk: Quirk,
        /// The request's method.
        method: Method,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Instant;

    use super::super::fault_run::{FaultRun, Verdict};
    use super::super::ServerOutput;
    use super::*;

    fn parse(q: &str) -> Result<Option<Faults>, FaultError> {
        Faults::parse_query(q)
    }

    #[test]
    fn every_parameter() {
        let f = parse(
            "seed=9&drop=0.25&reorder=3&jitter_ms=40&stall=1:2&close_after=300p&ssrc_change=4&seq_jump=5.5&ts_jump=6&session_timeout=3&quirk=no_marker",
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.seed, Some(9));
        assert_eq!(f.drop_ppm, 250_000);
        assert_eq!(f.reorder, 3);
        assert_eq!(f.jitter, Duration::from_millis(40));
        assert_eq!(f.stall, Some((Duration::from_secs(1), Duration::from_secs(2))));
        assert_eq!(f.close_after, Some(CloseAfter::Packets(300)));
        assert_eq!(f.ssrc_change, Some(Duration::from_secs(4)));
        assert_eq!(f.seq_jump, Some(Duration::from_millis(5500)));
        assert_eq!((f.ts_jump, f.ts_jump_ms), (Some(Duration::from_secs(6)), 0));
        let g = parse("ts_jump=2.5:-3000").unwrap().unwrap();
        assert_eq!((g.ts_jump, g.ts_jump_ms), (Some(Duration::from_millis(2500)), -3000));
        assert_eq!(parse("sr_offset=-250").unwrap().unwrap().sr_offset_ms, Some(-250));
        let d = parse("drop_packets=40,%207,7,0").unwrap().unwrap().drop_packets;
        assert_eq!(d.as_slice(), [0, 7, 40]);
        assert!(d.contains(7) && !d.contains(8) && !d.contains(1 << 40));
        let g = parse("stall=1:2&freeze=3:4").unwrap().unwrap();
        assert_eq!(
            (g.stall, g.freeze),
            (Some((Duration::from_secs(3), Duration::from_secs(4))), true)
        );
        let g = parse("freeze=3:4&stall=1:2").unwrap().unwrap();
        assert_eq!(
            (g.stall, g.freeze),
            (Some((Duration::from_secs(1), Duration::from_secs(2))), false)
        );
        assert_eq!(parse("slow=250").unwrap().unwrap().slow, Duration::from_millis(250));
        assert_eq!(parse("params=InBand").unwrap().unwrap().params, Some(Params::Inband));
        assert_eq!(parse("params=sdp").unwrap().unwrap().params, Some(Params::Sdp));
        assert_eq!(
            parse("resolution_change=2").unwrap().unwrap().resolution_change,
            Some((Duration::from_secs(2), None))
        );
        assert_eq!(
            parse("resolution_change=0.5:160X120")
                .unwrap()
                .unwrap()
                .resolution_change,
            Some((Duration::from_millis(500), Some((160, 120))))
        );
        assert_eq!(
            parse("keyframe_gap=1:2.5").unwrap().unwrap().keyframe_gap,
            Some((Duration::from_secs(1), Duration::from_millis(2500)))
        );
        assert_eq!(f.session_timeout, Some(Duration::from_secs(3)));
        assert!(f.has(Quirk::NoMarker) && !f.has(Quirk::WrongCseq));
        assert_eq!(
            parse("close_after=2.5").unwrap().unwrap().close_after,
            Some(CloseAfter::Time(Duration::from_millis(2500)))
        );
        assert_eq!(parse("DROP=%30.5").unwrap().unwrap().drop_ppm, 500_000);
        assert_eq!(parse("drop=0.1&drop=0.2").unwrap().unwrap().drop_ppm, 200_000);
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("play_count=3&codec=l16&x"), Ok(None));
        for q in Quirk::ALL {
            assert!(parse(&format!("quirk={}", q.name())).unwrap().unwrap().has(q));
        }
    }

    #[test]
    fn bad_values_say_why() {
        for (q, param) in [
            ("drop=1.5", "drop"),
            ("drop=-0.1", "drop"),
            ("drop=nan", "drop"),
            ("drop=1e-3", "drop"),
            ("drop=", "drop"),
            ("drop", "drop"),
            ("drop=.", "drop"),
            ("seed=x", "seed"),
            ("reorder=0", "reorder"),
            ("reorder=65", "reorder"),
            ("jitter_ms=10001", "jitter_ms"),
            ("stall=3", "stall"),
            ("stall=3:0", "stall"),
            ("stall=:1", "stall"),
            ("stall=inf:1", "stall"),
            ("keyframe_gap=1", "keyframe_gap"),
            ("resolution_change=x", "resolution_change"),
            ("resolution_change=1:160", "resolution_change"),
            ("resolution_change=1:0x120", "resolution_change"),
            ("resolution_change=1:160x9000", "resolution_change"),
            ("resolution_change=1:ax2", "resolution_change"),
            ("freeze=1", "freeze"),
            ("freeze=1:0", "freeze"),
            ("drop_packets=", "drop_packets"),
            ("drop_packets=1,,2", "drop_packets"),
            ("drop_packets=-1", "drop_packets"),
            ("drop_packets=1000000000", "drop_packets"),
            (
                "drop_packets=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32",
                "drop_packets",
            ),
            ("params=both", "params"),
            ("params=", "params"),
            ("keyframe_gap=1:0", "keyframe_gap"),
            ("close_after=0p", "close_after"),
            ("close_after=x", "close_after"),
            ("close_after=86401", "close_after"),
            ("ssrc_change=-1", "ssrc_change"),
            ("seq_jump=1:2", "seq_jump"),
            ("ts_jump=x", "ts_jump"),
            ("ts_jump=1:0", "ts_jump"),
            ("ts_jump=1:", "ts_jump"),
            ("ts_jump=1:-1.5", "ts_jump"),
            ("ts_jump=1:86400001", "ts_jump"),
            ("ts_jump=:5", "ts_jump"),
            ("sr_offset=0", "sr_offset"),
            ("slow=0", "slow"),
            ("slow=60001", "slow"),
            ("sr_offset=60001", "sr_offset"),
            ("sr_offset=1.5", "sr_offset"),
            ("session_timeout=0", "session_timeout"),
            ("quirk=", "quirk"),
            ("quirk=wrong_cseq,bogus", "quirk"),
        ] {
            let e = parse(q).unwrap_err();
            assert_eq!(e.param, param, "{q}");
            assert!(
                e.to_string().starts_with(&format!("bad fault parameter {param}=")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_content_base_without_a_scheme_has_host_port_and_path() {
        for (base, want) in [
            ("rtsp://192.168.1.10:554/stream0/", "192.168.1.10:554/stream0/"),
            ("rtsp://cam.example/a%20b.mp4/", "cam.example:554/a%20b.mp4/"),
            ("rtsps://cam.example/s/", "cam.example:322/s/"),
            ("rtsp://[::1]/s/", "[::1]:554/s/"),
            ("rtsp://[::1]:8554/s/", "[::1]:8554/s/"),
            ("rtsp://h:1//", "h:1//"),
        ] {
            assert_eq!(content_base_no_scheme(base), want, "{base}");
        }
    }

    fn run(spec: &str, seed: u64) -> FaultRun {
        let t0 = Instant::now();
        let mut r = FaultRun::new(parse(spec).unwrap().unwrap(), seed, "S", t0);
        r.played(t0);
        r
    }

    fn drops(r: &mut FaultRun, n: u16) -> Vec<u16> {
        let mut q = VecDeque::new();
        let (mut ssrc, mut marker) = (1, true);
        (0..n)
            .filter(|i| {
                let mut seq = *i;
                r.before_rtp(0, &mut ssrc, &mut seq, 0, &mut marker, &mut q) == Verdict::Drop
            })
            .collect()
    }

    #[test]
    fn drops_are_seeded_and_near_the_rate() {
        let a = drops(&mut run("drop=0.1", 1), 10_000);
        assert_eq!(a, drops(&mut run("drop=0.1", 1), 10_000));
        assert_ne!(a, drops(&mut run("drop=0.1", 2), 10_000));
        assert_eq!(a, drops(&mut run("drop=0.1&seed=1", 99), 10_000));
        assert!((800..1200).contains(&a.len()), "{}", a.len());
        assert!(drops(&mut run("drop=0", 1), 1000).is_empty());
        assert_eq!(drops(&mut run("drop=1", 1), 1000).len(), 1000);
    }

    #[test]
    fn bursts_drop_packets_in_a_row() {
        let a = drops(&mut run("drop=0.02&burst=4&seed=3", 0), 5000);
        assert!(a.len() >= 40, "{}", a.len());
        // Runs of at least 4 (two bursts may touch).
        let mut runs = Vec::new();
        let mut len = 1;
        for w in a.windows(2) {
            if w[1] == w[0] + 1 {
                len += 1;
            } else {
                runs.push(len);
                len = 1;
            }
        }
        runs.push(len);
        assert!(runs.iter().all(|n| *n >= 4), "{runs:?}");
        assert_eq!(parse("burst=0").unwrap_err().param, "burst");
        assert_eq!(parse("dup=2").unwrap_err().param, "dup");
        assert_eq!(parse("dup=0.5").unwrap().unwrap().dup_ppm, 500_000);
    }

    #[test]
    fn close_after_packets_drops_the_rest() {
        let mut r = run("close_after=5p", 0);
        assert_eq!(drops(&mut r, 8), vec![5, 6, 7]);
        assert!(r.closing);
    }

    #[test]
    fn reorder_holds_one_in_ten_for_depth_packets() {
        let mut r = run("reorder=2", 3);
        let mut q = VecDeque::new();
        for seq in 0..200u16 {
            q.push_back(ServerOutput::SendDatagram {
                socket: crate::udp::UdpSocketId { pair: 0, rtcp: false },
                to: "127.0.0.1:9".parse().unwrap(),
                data: bytes::Bytes::copy_from_slice(&seq.to_be_bytes()),
            });
            r.after_datagram(0, seq, 0, &mut q);
        }
        r.flush(&mut q);
        let order: Vec<u16> = q
            .iter()
            .filter_map(|o| match o {
                ServerOutput::SendDatagram { data, .. } => Some(u16::from_be_bytes([data[0], data[1]])),
                _ => None,
            })
            .collect();
        let held = q.iter().filter(|o| matches!(o, ServerOutput::Event(_))).count();
        assert!((5..40).contains(&held), "{held}");
        assert_eq!(order.len(), 200);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>());
        assert_ne!(order, sorted);
        // A held packet comes at most `depth` places late (held ones in a row add up).
        for (i, s) in order.iter().enumerate() {
            assert!(i <= usize::from(*s) + 2 * held, "{i} {s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_is_total(q in "\\PC{0,60}") {
            let _ = Faults::parse_query(&q);
        }

        #[test]
        fn parse_is_total_on_near_misses(
            k in proptest::sample::select(vec!["drop", "reorder", "jitter_ms", "stall", "freeze", "close_after", "seed", "quirk", "session_timeout", "drop_packets"]),
            v in "[0-9.:p,a-z%-]{0,14}",
        ) {
            if let Ok(Some(f)) = Faults::parse_query(&format!("{k}={v}")) {
                proptest::prop_assert!(f.drop_ppm <= 1_000_000);
                proptest::prop_assert!(f.reorder <= 64);
            }
        }
    }
}
