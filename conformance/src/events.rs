//! Comparing event sequences across runtimes and replays.

use std::net::SocketAddr;
use std::time::Duration;

use rtsp_toolkit_core::client::Event;

/// `event` with what differs between two runs of the same session set to
/// zero: measured durations, the Connect event's addresses and target (the
/// local port is new each time, the target is the forward address).
pub fn normalize(event: Event) -> Event {
    let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
    match event {
        Event::Connect(mut c) => {
            c.elapsed = Duration::ZERO;
            c.target = String::new();
            if let Ok(addrs) = &mut c.result {
                *addrs = (nowhere, nowhere);
            }
            Event::Connect(c)
        }
        Event::Method(mut m) => {
            m.elapsed = Duration::ZERO;
            m.session_elapsed = Duration::ZERO;
            Event::Method(m)
        }
        Event::Rtp(mut r) => {
            r.recv_tick = Duration::ZERO;
            Event::Rtp(r)
        }
        Event::Rtcp(mut r) => {
            r.recv_tick = Duration::ZERO;
            Event::Rtcp(r)
        }
        Event::Closed(mut c) => {
            c.session_elapsed = Duration::ZERO;
            Event::Closed(c)
        }
        Event::Video(mut v) => {
            v.recv_tick = Duration::ZERO;
            Event::Video(v)
        }
        Event::Audio(mut a) => {
            a.recv_tick = Duration::ZERO;
            Event::Audio(a)
        }
        Event::Metadata(mut m) => {
            m.recv_tick = Duration::ZERO;
            Event::Metadata(m)
        }
        Event::Loss(mut l) => {
            l.recv_tick = Duration::ZERO;
            Event::Loss(l)
        }
        other => other,
    }
}

/// [`normalize`] over a sequence.
pub fn normalize_all(events: Vec<Event>) -> Vec<Event> {
    events.into_iter().map(normalize).collect()
}

/// One line per event with its kind, identity and durations in nanoseconds:
/// what `examples/record.rs` writes beside a capture, and what a replay of
/// that capture must reproduce exactly.
pub fn summary(event: &Event) -> String {
    let ns = |d: Duration| d.as_nanos();
    match event {
        Event::Connect(c) => match &c.result {
            Ok((local, peer)) => format!(
                "connect target={} local={local} peer={peer} elapsed_ns={}",
                c.target,
                ns(c.elapsed)
            ),
            Err(e) => format!("connect target={} error={e} elapsed_ns={}", c.target, ns(c.elapsed)),
        },
        Event::Method(m) => format!(
            "method {} {} cseq={} status={} body={} track={} elapsed_ns={} session_elapsed_ns={}",
            m.method,
            m.url,
            m.cseq,
            m.status,
            m.body.len(),
            m.track.as_ref().map_or(-1, |t| t.index as i64),
            ns(m.elapsed),
            ns(m.session_elapsed)
        ),
        Event::Rtp(r) => format!(
            "rtp track={} channel={} pt={} seq={} ts={} marker={} len={} recv_tick_ns={}",
            r.track,
            r.channel,
            r.packet.payload_type,
            r.packet.sequence_number,
            r.packet.timestamp,
            u8::from(r.packet.marker),
            r.packet.payload.len(),
            ns(r.recv_tick)
        ),
        Event::Rtcp(r) => format!(
            "rtcp track={} channel={} packets={} recv_tick_ns={}",
            r.track,
            r.channel,
            r.packets.len(),
            ns(r.recv_tick)
        ),
        Event::Video(v) => format!(
            "video track={} codec={:?} ts={} ext_ts={} key={} params={} loss={} len={} fnv={:016x} recv_tick_ns={}",
            v.track,
            v.frame.codec,
            v.frame.timestamp,
            v.extended_timestamp,
            u8::from(v.frame.keyframe),
            u8::from(v.frame.new_parameters),
            v.frame.loss,
            v.frame.data.len(),
            fnv1a(&v.frame.data),
            ns(v.recv_tick)
        ),
        Event::Audio(a) => format!(
            "audio track={} codec={:?} ts={} ext_ts={} samples={} rate={} channels={} loss={} len={} fnv={:016x} recv_tick_ns={}",
            a.track,
            a.frame.codec,
            a.frame.timestamp,
            a.extended_timestamp,
            a.frame.sample_count,
            a.frame.sample_rate,
            a.frame.channels,
            a.frame.loss,
            a.frame.data.len(),
            fnv1a(&a.frame.data),
            ns(a.recv_tick)
        ),
        Event::Metadata(m) => format!(
            "metadata track={} ts={} ext_ts={} loss={} len={} fnv={:016x} recv_tick_ns={}",
            m.track,
            m.frame.timestamp,
            m.extended_timestamp,
            m.frame.loss,
            m.frame.data.len(),
            fnv1a(&m.frame.data),
            ns(m.recv_tick)
        ),
        Event::Loss(l) => format!(
            "loss track={} lost={} seq={} total={} recv_tick_ns={}",
            l.track,
            l.lost,
            l.sequence_number,
            l.total_lost,
            ns(l.recv_tick)
        ),
        Event::Warning(w) => format!("warning {w:?}"),
        Event::Closed(c) => match &c.error {
            None => format!("closed session_elapsed_ns={}", ns(c.session_elapsed)),
            Some(e) => format!("closed error={e} session_elapsed_ns={}", ns(c.session_elapsed)),
        },
        other => format!("other {other:?}"),
    }
}

/// The kind of an event, as a word.
pub fn kind(event: &Event) -> &'static str {
    match event {
        Event::Connect(_) => "connect",
        Event::Method(_) => "method",
        Event::Rtp(_) => "rtp",
        Event::Rtcp(_) => "rtcp",
        Event::Video(_) => "video",
        Event::Audio(_) => "audio",
        Event::Metadata(_) => "metadata",
        Event::Loss(_) => "loss",
        Event::Warning(_) => "warning",
        Event::Closed(_) => "closed",
        _ => "other",
    }
}

/// FNV-1a, 64 bit: a short fingerprint of frame data for summaries.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `(method, status)` of every Method event, in order.
pub fn methods(events: &[Event]) -> Vec<(String, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Method(m) => Some((m.method.to_string(), m.status)),
            _ => None,
        })
        .collect()
}

/// The error of the final Closed event. Panics (it is for tests) when the
/// last event is not Closed.
pub fn closed_error(events: &[Event]) -> Option<rtsp_toolkit_core::Error> {
    match events.last() {
        Some(Event::Closed(c)) => c.error.clone(),
        other => panic!("last event is not Closed: {other:?}"),
    }
}

/// RTP packets received on tracks 0 and 1.
pub fn rtp_per_track(events: &[Event]) -> [usize; 2] {
    let mut n = [0; 2];
    for e in events {
        if let Event::Rtp(r) = e {
            if let Some(c) = n.get_mut(r.track) {
                *c += 1;
            }
        }
    }
    n
}

/// Every assembled frame, track by track, each in arrival order: (track,
/// extended timestamp from the track's first frame, bytes). Servers start
/// each session's RTP timestamps at a random value, so two sessions compare
/// from their first frame; how two tracks' frames interleave depends on
/// arrival, so it is not part of the comparison.
pub fn frames_by_track(events: &[Event]) -> Vec<(usize, i64, Vec<u8>)> {
    let mut first: Vec<Option<i64>> = Vec::new();
    let mut all = events
        .iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some((v.track, v.extended_timestamp, v.frame.data.to_vec())),
            Event::Audio(a) => Some((a.track, a.extended_timestamp, a.frame.data.to_vec())),
            Event::Metadata(m) => Some((m.track, m.extended_timestamp, m.frame.data.to_vec())),
            _ => None,
        })
        .map(|(track, ts, data)| {
            if first.len() <= track {
                first.resize(track + 1, None);
            }
            let base = *first[track].get_or_insert(ts);
            (track, ts - base, data)
        })
        .collect::<Vec<_>>();
    all.sort_by_key(|f| f.0);
    all
}

/// The transport of each successful SETUP, in order.
pub fn setup_transports(events: &[Event]) -> Vec<rtsp_toolkit_core::client::TransportKind> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Method(m) => m.track.as_ref().map(|t| t.transport),
            _ => None,
        })
        .collect()
}

/// The names (`tcp`, `udp`, `multicast`) of [`setup_transports`].
pub fn setup_transport_names(events: &[Event]) -> Vec<&'static str> {
    setup_transports(events).iter().map(|t| t.name()).collect()
}
