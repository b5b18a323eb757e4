//! Prometheus metrics of a server, made from its events.
//!
//! [`Metrics`] takes every [`ServerEvent`] the server logs (give it to
//! [`Metrics::record`] from the [`EventHook`](super::EventHook)) and renders
//! what it learnt in the Prometheus text exposition format (version 0.0.4)
//! with [`Metrics::render`]. The session counts and per-path totals need
//! the core's [`ServerEvent::Progress`] reports: set
//! [`ServerConfig::progress_interval`](rtsp_toolkit_core::server::ServerConfig::progress_interval)
//! (`serve --metrics` sets 5 s), else the packet counters only move when a
//! session ends.
//!
//! Memory is bounded by what is served, not by what clients send: per-path
//! series exist only for paths a session played (files of the served
//! directory), request series by method and status (both bounded), and
//! per-session state only while the session lives (it is dropped at its
//! connection's `Closed`).
//!
//! The metrics (all prefixed `rtsp_toolkit_`) are listed in `docs/CLI.md`,
//! "serve --metrics".

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rtsp_toolkit_core::server::{CloseReason, ServerEvent, SessionTransport};

/// A server's metrics, fed by its events. Share it (`Arc<Metrics>`) between
/// the event hook and whatever serves `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// One live session, keyed by its id.
#[derive(Debug, Clone)]
struct Live {
    peer: Option<SocketAddr>,
    path: String,
    transport: SessionTransport,
    /// Totals at its last progress report (what the counters hold of it).
    packets: u64,
    octets: u64,
    behind: Duration,
    /// Whether it counts in `sessions` (PLAY answered).
    playing: bool,
    /// Per track: the last RR's cumulative loss, fraction lost and jitter.
    reports: BTreeMap<usize, (i32, u8, Duration)>,
}

#[derive(Debug, Default)]
struct PathTotals {
    started: u64,
    packets: u64,
    octets: u64,
    fell_behind: u64,
    skipped: Duration,
    rr_lost: u64,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<String, Live>,
    /// Per (path, transport).
    totals: BTreeMap<(String, &'static str), PathTotals>,
    /// Per (method, status).
    requests: BTreeMap<(String, u16), u64>,
    /// Per close reason.
    closed: BTreeMap<&'static str, u64>,
    auth_failures: u64,
    datagrams_dropped: u64,
    multicast_streams: BTreeMap<String, i64>,
    multicast_packets: BTreeMap<String, (u64, u64)>,
}

/// The label of a close reason.
fn close_label(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::Teardown => "teardown",
        CloseReason::PeerClosed => "peer_closed",
        CloseReason::SessionTimeout(_) => "session_timeout",
        CloseReason::IdleTimeout(_) => "idle_timeout",
        CloseReason::PlaybackEnded => "playback_ended",
        CloseReason::Protocol(_) => "protocol_error",
        CloseReason::TooManyPipelined => "too_many_pipelined",
        CloseReason::NotReading(_) => "not_reading",
        CloseReason::WriteFailed(_) => "write_failed",
        CloseReason::Shutdown => "shutdown",
        CloseReason::Fault => "fault",
        CloseReason::SlowReader => "slow_reader",
        _ => "other",
    }
}

impl Inner {
    fn totals(&mut self, path: &str, transport: SessionTransport) -> &mut PathTotals {
        self.totals.entry((path.to_owned(), transport.as_str())).or_default()
    }

    /// The session's totals moved to `packets`/`octets`: the counters take the difference.
    fn advance(&mut self, id: &str, packets: u64, octets: u64) {
        let Some(live) = self.live.get_mut(id) else { return };
        let (dp, doc) = (packets.saturating_sub(live.packets), octets.saturating_sub(live.octets));
        live.packets = live.packets.max(packets);
        live.octets = live.octets.max(octets);
        let (path, transport) = (live.path.clone(), live.transport);
        let t = self.totals(&path, transport);
        t.packets += dp;
        t.octets += doc;
    }

    fn end_peer(&mut self, peer: Option<SocketAddr>) {
        self.live.retain(|_, l| l.peer != peer);
    }
}

impl Metrics {
    /// No metrics yet.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one event of the server's (`peer`: the connection's, as the
    /// [`EventHook`](super::EventHook) gives it).
    pub fn record(&self, peer: Option<SocketAddr>, event: &ServerEvent) {
        let mut m = self.lock();
        match event {
            ServerEvent::Request { method, status, .. } => {
                *m.requests.entry((method.to_string(), *status)).or_default() += 1;
            }
            ServerEvent::SessionStarted {
                session_id,
                path,
                transport,
                ..
            } => {
                m.totals(path, *transport).started += 1;
                let live = m.live.entry(session_id.clone()).or_insert_with(|| Live {
                    peer,
                    path: path.clone(),
                    transport: *transport,
                    packets: 0,
                    octets: 0,
                    behind: Duration::ZERO,
                    playing: true,
                    reports: BTreeMap::new(),
                });
                live.playing = true;
            }
            ServerEvent::Progress {
                session_id,
                path,
                transport,
                packets,
                octets,
                behind,
                last,
            } => {
                let live = m.live.entry(session_id.clone()).or_insert_with(|| Live {
                    peer,
                    path: path.clone(),
                    transport: *transport,
                    packets: 0,
                    octets: 0,
                    behind: Duration::ZERO,
                    playing: false,
                    reports: BTreeMap::new(),
                });
                live.behind = *behind;
                m.advance(session_id, *packets, *octets);
                if *last {
                    m.live.remove(session_id);
                }
            }
            ServerEvent::PlaybackEnded {
                session_id,
                packets,
                octets,
                ..
            } => {
                m.advance(session_id, *packets, *octets);
                if let Some(l) = m.live.get_mut(session_id) {
                    l.behind = Duration::ZERO;
                }
            }
            ServerEvent::FellBehind {
                session_id,
                skipped,
                times,
                ..
            } => {
                if let Some(l) = m.live.get(session_id) {
                    let (path, transport) = (l.path.clone(), l.transport);
                    let t = m.totals(&path, transport);
                    t.fell_behind += u64::from(*times);
                    t.skipped = t.skipped.saturating_add(*skipped);
                }
            }
            ServerEvent::ReceiverReport {
                session_id,
                track,
                fraction_lost,
                cumulative_lost,
                jitter,
                ..
            } => {
                let Some(l) = m.live.get_mut(session_id) else { return };
                let before = l.reports.get(track).map_or(0, |r| r.0);
                l.reports.insert(*track, (*cumulative_lost, *fraction_lost, *jitter));
                // Duplicates make the cumulative count go down: the counter never does.
                let more = i64::from(*cumulative_lost) - i64::from(before.max(0));
                let (path, transport) = (l.path.clone(), l.transport);
                if more > 0 {
                    m.totals(&path, transport).rr_lost += more as u64;
                }
            }
            ServerEvent::DatagramsDropped { dropped, .. } => m.datagrams_dropped += dropped,
            ServerEvent::AuthFailed { .. } => m.auth_failures += 1,
            ServerEvent::MulticastStarted { path, .. } => *m.multicast_streams.entry(path.clone()).or_default() += 1,
            ServerEvent::MulticastEnded {
                path, packets, octets, ..
            } => {
                *m.multicast_streams.entry(path.clone()).or_default() -= 1;
                let t = m.multicast_packets.entry(path.clone()).or_default();
                t.0 += packets;
                t.1 += octets;
            }
            ServerEvent::Closed { reason, .. } => {
                *m.closed.entry(close_label(reason)).or_default() += 1;
                // Its session (if any) ended with it; a multicast stream's events have no peer.
                if peer.is_some() {
                    m.end_peer(peer);
                }
            }
            _ => {}
        }
    }

    /// Sessions playing now (PLAY answered, connection not closed).
    pub fn sessions(&self) -> usize {
        self.lock().live.values().filter(|l| l.playing).count()
    }

    /// The metrics in the Prometheus text format; `extra` lines (already
    /// formatted, e.g. gauges the caller reads elsewhere) are appended.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let m = self.lock();
        let mut out = String::with_capacity(4096);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP rtsp_toolkit_{name} {help}");
            let _ = writeln!(out, "# TYPE rtsp_toolkit_{name} {kind}");
        };

        let mut now: BTreeMap<(&str, &str), (u64, Duration, u8, Duration)> = BTreeMap::new();
        for l in m.live.values().filter(|l| l.playing) {
            let e = now.entry((l.path.as_str(), l.transport.as_str())).or_default();
            e.0 += 1;
            e.1 = e.1.max(l.behind);
            for (_, fraction, jitter) in l.reports.values() {
                e.2 = e.2.max(*fraction);
                e.3 = e.3.max(*jitter);
            }
        }
        // Paths that had sessions show 0 when none is left.
        for (path, transport) in m.totals.keys() {
            now.entry((path.as_str(), transport)).or_default();
        }
        // Per path and transport: (sessions, most behind, worst fraction lost, worst jitter).
        type Gauge = fn(&(u64, Duration, u8, Duration)) -> f64;
        let gauges: [(&str, &str, Gauge); 4] = [
            (
                "sessions",
                "Sessions playing now (PLAY answered, connection open), by path and transport.",
                |v| v.0 as f64,
            ),
            (
                "session_behind_seconds",
                "How late the latest session is behind its real-time schedule (at its last progress report), by path and transport.",
                |v| v.1.as_secs_f64(),
            ),
            (
                "rtcp_fraction_lost",
                "The highest fraction lost (0..1) of the live sessions' latest RTCP receiver reports, by path and transport.",
                |v| f64::from(v.2) / 256.0,
            ),
            (
                "rtcp_jitter_seconds",
                "The highest interarrival jitter of the live sessions' latest RTCP receiver reports, by path and transport.",
                |v| v.3.as_secs_f64(),
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            for ((path, transport), v) in &now {
                let _ = writeln!(out, "rtsp_toolkit_{name}{} {}", labels(path, transport), value(v));
            }
        }
        type Field = fn(&PathTotals) -> f64;
        let counters: [(&str, &str, Field); 6] = [
            ("sessions_started_total", "Sessions that started playing.", |t| {
                t.started as f64
            }),
            ("rtp_packets_sent_total", "RTP packets sent by sessions.", |t| {
                t.packets as f64
            }),
            (
                "rtp_payload_bytes_sent_total",
                "RTP payload octets sent by sessions.",
                |t| t.octets as f64,
            ),
            (
                "fell_behind_total",
                "Times a session was more than max_lag late and skipped ahead.",
                |t| t.fell_behind as f64,
            ),
            (
                "skipped_seconds_total",
                "Media time skipped by sessions that fell behind.",
                |t| t.skipped.as_secs_f64(),
            ),
            (
                "rtcp_packets_lost_total",
                "Packets the clients' RTCP receiver reports say were lost.",
                |t| t.rr_lost as f64,
            ),
        ];
        for (name, help, field) in counters {
            family(&mut out, name, "counter", &format!("{help} By path and transport."));
            for ((path, transport), t) in &m.totals {
                let _ = writeln!(out, "rtsp_toolkit_{name}{} {}", labels(path, transport), field(t));
            }
        }
        family(
            &mut out,
            "requests_total",
            "counter",
            "Requests answered, by method and status.",
        );
        for ((method, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "rtsp_toolkit_requests_total{{method=\"{}\",status=\"{status}\"}} {n}",
                escape(method)
            );
        }
        family(
            &mut out,
            "connections_closed_total",
            "counter",
            "Connections closed, by reason (not_reading: a slow reader dropped).",
        );
        for (reason, n) in &m.closed {
            let _ = writeln!(out, "rtsp_toolkit_connections_closed_total{{reason=\"{reason}\"}} {n}");
        }
        family(
            &mut out,
            "slow_readers_dropped_total",
            "counter",
            "Connections dropped because the client took no data for the write stall time, or fell too far behind a live path.",
        );
        let _ = writeln!(
            out,
            "rtsp_toolkit_slow_readers_dropped_total {}",
            m.closed.get("not_reading").copied().unwrap_or(0) + m.closed.get("slow_reader").copied().unwrap_or(0)
        );
        family(
            &mut out,
            "auth_failures_total",
            "counter",
            "Requests whose credentials were refused.",
        );
        let _ = writeln!(out, "rtsp_toolkit_auth_failures_total {}", m.auth_failures);
        family(
            &mut out,
            "foreign_datagrams_dropped_total",
            "counter",
            "Datagrams from addresses other than the session's client, dropped.",
        );
        let _ = writeln!(
            out,
            "rtsp_toolkit_foreign_datagrams_dropped_total {}",
            m.datagrams_dropped
        );
        family(
            &mut out,
            "multicast_streams",
            "gauge",
            "Multicast streams sending now, by path.",
        );
        for (path, n) in &m.multicast_streams {
            let _ = writeln!(out, "rtsp_toolkit_multicast_streams{{path=\"{}\"}} {n}", escape(path));
        }
        family(
            &mut out,
            "multicast_rtp_packets_sent_total",
            "counter",
            "RTP packets sent by multicast streams, counted when each stream ends, by path.",
        );
        for (path, (packets, _)) in &m.multicast_packets {
            let _ = writeln!(
                out,
                "rtsp_toolkit_multicast_rtp_packets_sent_total{{path=\"{}\"}} {packets}",
                escape(path)
            );
        }
        for (name, help, value) in extra {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "rtsp_toolkit_{name} {value}");
        }
        out
    }
}

/// `{path="…",transport="…"}`.
fn labels(path: &str, transport: &str) -> String {
    format!("{{path=\"{}\",transport=\"{transport}\"}}", escape(path))
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_toolkit_core::message::Method;
    use rtsp_toolkit_core::server::PlayCount;

    fn peer(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn progress(id: &str, packets: u64, behind_ms: u64, last: bool) -> ServerEvent {
        ServerEvent::Progress {
            session_id: id.into(),
            path: "a \"b\".mp4".into(),
            transport: SessionTransport::Udp,
            packets,
            octets: packets * 100,
            behind: Duration::from_millis(behind_ms),
            last,
        }
    }

    fn started(id: &str) -> ServerEvent {
        ServerEvent::SessionStarted {
            session_id: id.into(),
            path: "a \"b\".mp4".into(),
            tracks: 2,
            play_count: PlayCount::ONCE,
            transport: SessionTransport::Udp,
        }
    }

    #[test]
    fn sessions_counters_and_gauges_follow_the_events() {
        let m = Metrics::new();
        let l = r#"{path="a \"b\".mp4",transport="udp"}"#;
        m.record(
            peer(1),
            &ServerEvent::Request {
                method: Method::Play,
                uri: "rtsp://h/a".into(),
                cseq: Some(1),
                status: 200,
            },
        );
        m.record(peer(1), &started("s1"));
        m.record(peer(2), &started("s2"));
        m.record(peer(1), &progress("s1", 10, 0, false));
        m.record(peer(2), &progress("s2", 5, 700, false));
        m.record(
            peer(2),
            &ServerEvent::ReceiverReport {
                session_id: "s2".into(),
                track: 0,
                fraction_lost: 64,
                cumulative_lost: 3,
                highest_sequence: 9,
                jitter: Duration::from_millis(4),
                sent: 10,
            },
        );
        let t = m.render(&[("connections", "Open connections.", 2.0)]);
        assert_eq!(value(&t, &format!("rtsp_toolkit_sessions{l}")), Some(2.0), "{t}");
        assert_eq!(
            value(&t, &format!("rtsp_toolkit_rtp_packets_sent_total{l}")),
            Some(15.0)
        );
        assert_eq!(
            value(&t, &format!("rtsp_toolkit_rtp_payload_bytes_sent_total{l}")),
            Some(1500.0)
        );
        assert_eq!(value(&t, &format!("rtsp_toolkit_session_behind_seconds{l}")), Some(0.7));
        assert_eq!(value(&t, &format!("rtsp_toolkit_rtcp_fraction_lost{l}")), Some(0.25));
        assert_eq!(value(&t, &format!("rtsp_toolkit_rtcp_jitter_seconds{l}")), Some(0.004));
        assert_eq!(
            value(&t, &format!("rtsp_toolkit_rtcp_packets_lost_total{l}")),
            Some(3.0)
        );
        assert_eq!(
            value(&t, r#"rtsp_toolkit_requests_total{method="PLAY",status="200"}"#),
            Some(1.0)
        );
        assert_eq!(value(&t, "rtsp_toolkit_connections"), Some(2.0));
        // Counters take differences; a later, smaller cumulative loss (duplicates) takes nothing back.
        m.record(peer(1), &progress("s1", 30, 0, false));
        m.record(
            peer(2),
            &ServerEvent::ReceiverReport {
                session_id: "s2".into(),
                track: 0,
                fraction_lost: 0,
                cumulative_lost: 1,
                highest_sequence: 20,
                jitter: Duration::from_millis(1),
                sent: 20,
            },
        );
        // s1 ends with its last report, s2 with its connection (a slow reader).
        m.record(peer(1), &progress("s1", 31, 0, true));
        m.record(
            peer(2),
            &ServerEvent::Closed {
                reason: CloseReason::NotReading(Duration::from_secs(5)),
                elapsed: Duration::from_secs(9),
            },
        );
        let t = m.render(&[]);
        assert_eq!(value(&t, &format!("rtsp_toolkit_sessions{l}")), Some(0.0), "{t}");
        assert_eq!(
            value(&t, &format!("rtsp_toolkit_rtp_packets_sent_total{l}")),
            Some(36.0)
        );
        assert_eq!(
            value(&t, &format!("rtsp_toolkit_rtcp_packets_lost_total{l}")),
            Some(3.0)
        );
        assert_eq!(value(&t, &format!("rtsp_toolkit_sessions_started_total{l}")), Some(2.0));
        assert_eq!(value(&t, "rtsp_toolkit_slow_readers_dropped_total"), Some(1.0));
        assert_eq!(
            value(&t, r#"rtsp_toolkit_connections_closed_total{reason="not_reading"}"#),
            Some(1.0)
        );
        assert_eq!(m.sessions(), 0);
        // Every sample line belongs to a family announced before it.
        let mut typed = std::collections::HashSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{line}");
            }
        }
    }
}
