//! The media side of one server session: set-up tracks, RTP packetization,
//! pacing, RTCP sender reports and BYE.
//!
//! [`Session`] owns the per-track RTP state and, once playing, a
//! [`Playback`] cursor into the shared [`MediaSource`]. [`Session::pump`]
//! puts every packet due at an instant into the caller's [`Sink`]: for
//! interleaved tracks into one output buffer, already framed as
//! `$`-interleaved data, so that one call gives one write; for UDP tracks
//! as one datagram output per packet (the same bounds per call).
//! It never reads a clock: the caller passes `now` and the matching NTP time.
//! A path's multicast stream (the `multicast` module) is a [`Session`] too,
//! whose tracks send to the group: the same pacing for every transport.
//!
//! Timing model (documented for the runtime and for tests):
//! - the *media time* of sample `i` of play-through `k` (from 0) is
//!   `M = k·D + source.send_time(sample_i)`, `D` being `source.duration`:
//!   the play-throughs make one timeline of `count·D`, which `Range: npt=`
//!   addresses (a seek to `T` starts in play-through `⌊T/D⌋`);
//! - a play that starts (or resumes, or seeks) at `start` from media time
//!   `offset` (the media time of its first sample) with scale `S` has
//!   sample `M` due at `start + (M − offset) / S`; a plain PLAY has
//!   `offset` 0 and `S` 1, so sample `i` of play-through `k` is due at
//!   `start + k·D + send_time(sample_i)`;
//! - its RTP timestamp is `base + presentation_time + k·L` (mod 2³²) with
//!   `L = ceil(D · clock_rate)`, the loop length in the track's clock units,
//!   rounded up so that timestamps keep increasing across loops for samples
//!   whose presentation times lie in `[0, D)`; the rounding drifts by under
//!   one clock tick per loop against the send schedule;
//! - sequence numbers continue across loops;
//! - RTCP: one compound SR + SDES(CNAME) per track that has sent, on the
//!   track's RTCP channel or socket, first right after the first packets and then every
//!   `rtcp_interval`; its RTP timestamp is `base + ticks(offset + (now − start)·S)`;
//! - the end: once the last sample of the last play-through is out (or the
//!   last before a `Range` end `E`), at `start + (count·D − offset)/S`
//!   (`start + (E − offset)/S`), or right away if that has passed, a final
//!   SR + SDES + BYE per track, then the session lingers;
//! - PAUSE keeps the cursor (the next sample) and sends nothing, RTCP
//!   included; PLAY resumes from the next sample's media time, with the
//!   same rules, so timestamps and sequence numbers go on where they were;
//! - falling behind: samples that are late go out at once (a catch-up
//!   burst), but never more than `max_lag` of them. When the runtime comes
//!   back later than that (the process was descheduled, the client did not
//!   read), [`Session::resync`] moves `start` (so every due instant, the SR
//!   mapping and the end) forward by the excess. RTP timestamps and sequence
//!   numbers do not jump; the stream resumes later in wall-clock time, and
//!   the SRs stay true to the packets sent. Without the bound, a server whose
//!   hundreds of sessions all stalled for a few seconds would try to send all
//!   of those seconds at once, starving every session while it does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::clock::SplitMix64;
use super::faults::FaultEvent;
use super::live::{Mapped, Restamp};
use super::path::PlayCount;
use super::track_out::{later_than, ticks, Delivery, Sink, TrackOut};
use crate::rtp::RtpPacket;
use crate::source::{MediaSource, SourceCodec, SourceSample};

/// Most samples sent by one [`Session::pump`] call; more due samples wait for
/// the next call (the deadline is then already due), which bounds the output
/// of one call when the runtime wakes up late.
const MAX_SAMPLES_PER_PUMP: usize = 1024;
/// Most bytes written by one [`Session::pump`] call, likewise.
const MAX_BYTES_PER_PUMP: usize = 4 * 1024 * 1024;

/// The sender reports of every track that has sent (every track, with a
/// BYE, when `bye`), their RTP timestamps mapped from `now`; schedules the
/// next ones `rtcp_interval` later.
fn send_reports(
    pb: &mut Playback,
    tracks: &[TrackOut],
    cname: &str,
    now: Instant,
    ntp: u64,
    out: &mut Sink<'_>,
    bye: bool,
) {
    let media = pb.media_at(now);
    for t in tracks.iter().filter(|t| bye || t.rtp.packets > 0) {
        let ts = t.ts_base.wrapping_add(ticks(media, t.clock_rate, false) as u32);
        t.put_rtcp(out, ntp, ts, cname, bye);
    }
    pb.next_rtcp = pb
        .next_rtcp
        .checked_add(pb.rtcp_interval)
        .filter(|at| *at > now)
        .or_else(|| now.checked_add(pb.rtcp_interval))
        .unwrap_or(now);
}

/// The cursor of a playing session.
#[derive(Debug)]
pub(super) struct Playback {
    /// When the play (or the resume, or the seek) began.
    start: Instant,
    /// The media time of the first sample of this play (see the module docs).
    offset: Duration,
    /// How much faster than real time media goes out (`Scale`), above 0.
    scale: f64,
    /// A `Range` end: media from there on is not sent.
    stop_at: Option<Duration>,
    count: PlayCount,
    /// One play-through (the source's duration).
    period: Duration,
    /// Play-throughs begun before the current one.
    loop_index: u32,
    /// Media time of the current play-through's start (`loop_index · period`).
    loop_base: Duration,
    next_sample: usize,
    /// Every sample of every play-through is out.
    all_sent: bool,
    /// Due instant of the last sample sent.
    last_due: Instant,
    /// When the final SR + BYE go out, once known.
    end_at: Option<Instant>,
    next_rtcp: Instant,
    rtcp_interval: Duration,
    /// Source track index → index in `Session::tracks`.
    track_map: Vec<Option<usize>>,
}

impl Playback {
    /// Moves past the current sample, into the next play-through if needed.
    fn advance(&mut self, source: &MediaSource) {
        self.next_sample += 1;
        if self.next_sample < source.samples.len() {
            return;
        }
        self.next_sample = 0;
        self.loop_index = self.loop_index.saturating_add(1);
        let done = match self.count {
            PlayCount::Times(n) => self.loop_index >= n.get(),
            PlayCount::Forever => self.loop_index == u32::MAX,
        };
        match (done, self.period.checked_mul(self.loop_index)) {
            (false, Some(base)) => self.loop_base = base,
            _ => self.all_sent = true,
        }
    }

    /// Media time of the next sample (see the module docs).
    fn media_time(&self, source: &MediaSource) -> Option<Duration> {
        let sample = source.samples.get(self.next_sample)?;
        self.loop_base.checked_add(source.send_time(sample))
    }

    /// Wall time from `start` to media time `m`.
    fn wall(&self, m: Duration) -> Duration {
        let d = m.saturating_sub(self.offset);
        if self.scale == 1.0 {
            d
        } else {
            Duration::try_from_secs_f64(d.as_secs_f64() / self.scale).unwrap_or(Duration::MAX)
        }
    }

    /// Media time at `now` (for sender reports and PAUSE).
    fn media_at(&self, now: Instant) -> Duration {
        let e = now.saturating_duration_since(self.start);
        let e = if self.scale == 1.0 {
            e
        } else {
            Duration::try_from_secs_f64(e.as_secs_f64() * self.scale).unwrap_or(Duration::MAX)
        };
        self.offset.saturating_add(e)
    }

    /// Marks everything sent once the next sample is at or past the `Range` end.
    fn check_stop(&mut self, source: &MediaSource) {
        if let (Some(stop), Some(m)) = (self.stop_at, self.media_time(source)) {
            if m >= stop {
                self.all_sent = true;
            }
        }
    }

    /// Moves the whole schedule `by` later (see [`Session::resync`]).
    /// Only while samples remain, so `end_at` (set once all are sent) is not
    /// known yet; it derives from `start` and `last_due` when it is.
    fn shift(&mut self, by: Duration) -> bool {
        debug_assert!(self.end_at.is_none());
        let (Some(start), Some(last_due)) = (self.start.checked_add(by), self.last_due.checked_add(by)) else {
            return false;
        };
        self.start = start;
        self.last_due = last_due;
        true
    }

    /// Skips samples of tracks that were not set up. Terminates: the session
    /// only plays when at least one sample belongs to a set-up track.
    fn skip_unmapped(&mut self, source: &MediaSource) {
        while !self.all_sent && self.mapped(&source.samples[self.next_sample]).is_none() {
            self.advance(source);
        }
        self.check_stop(source);
    }

    fn mapped(&self, sample: &SourceSample) -> Option<usize> {
        self.track_map.get(sample.track).copied().flatten()
    }

    fn next_due(&self, source: &MediaSource) -> Option<Instant> {
        if self.all_sent {
            return None;
        }
        self.start.checked_add(self.wall(self.media_time(source)?))
    }

    /// When the presentation ends: `start + (count·D − offset)/S`, or at the
    /// `Range` end; `None` when endless or past representable time.
    fn presentation_end(&self) -> Option<Instant> {
        let end = match self.stop_at {
            Some(e) => e,
            None => self.period.checked_mul(self.count.times()?)?,
        };
        self.start.checked_add(self.wall(end))
    }
}

/// Where a session is.
#[derive(Debug)]
pub(super) enum State {
    /// Tracks being set up; not playing yet.
    Ready,
    Playing(Box<Playback>),
    /// Everything sent, BYE included; waiting for TEARDOWN until `close_at`.
    Ended {
        close_at: Instant,
    },
    /// Playing as a member of the path's multicast stream, which sends the
    /// media; nothing to pump here.
    Member,
    /// PAUSEd: the cursor kept for the next PLAY; nothing is sent.
    Paused(Box<Playback>),
    /// Reading a live path: its publisher's packets are passed on as they
    /// come ([`Session::forward`]); sender reports on the schedule.
    Live(Box<LiveCursor>),
}

/// A live reader's state (see the `live` module).
#[derive(Debug)]
pub(super) struct LiveCursor {
    start: Instant,
    /// Per set-up track (as `Session::tracks`).
    restamp: Vec<Restamp>,
    paused: bool,
    next_rtcp: Instant,
    rtcp_interval: Duration,
}

/// Where a PLAY starts, on the media timeline of the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cue {
    /// The play-through.
    pub loop_index: u32,
    /// The first sample (in send order) of that play-through.
    pub sample: usize,
    /// The `npt` the reply's `Range` starts at: the presentation time of that
    /// sample on the whole timeline.
    pub npt: Duration,
}

/// How a PLAY plays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PlayFrom {
    /// Where (`None`: from the start, or, paused, where it stopped).
    pub cue: Option<Cue>,
    /// `Scale`, above 0.
    pub scale: f64,
    /// The `Range` end on the timeline, if any.
    pub stop_at: Option<Duration>,
}

impl Default for PlayFrom {
    fn default() -> Self {
        PlayFrom {
            cue: None,
            scale: 1.0,
            stop_at: None,
        }
    }
}

/// What [`Session::resync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lag {
    /// How late the next sample was.
    pub behind: Duration,
    /// How far the schedule moved forward (`behind − max_lag`).
    pub skipped: Duration,
}

/// What [`Session::pump`] reports when the last play-through has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Finished {
    pub loops: u32,
    pub packets: u64,
    pub octets: u64,
}

/// The one RTSP session of a connection.
#[derive(Debug)]
pub(super) struct Session {
    pub id: String,
    /// The presentation's relative path.
    pub path: String,
    pub source: Arc<MediaSource>,
    /// Set-up tracks, in SETUP order.
    pub tracks: Vec<TrackOut>,
    pub state: State,
    cname: String,
    /// The interleaved (RTP, RTCP) channels of the ONVIF backchannel track,
    /// when it is set up (`ServerConfig::backchannel`).
    pub backchannel: Option<(u8, u8)>,
    /// It reads a live path: its source is a publisher's announce, and
    /// PLAY passes the publisher's packets on (see the `live` module).
    pub live: bool,
}

impl Session {
    pub fn new(id: String, path: String, source: Arc<MediaSource>) -> Session {
        let cname = format!("rtsp-toolkit-{id}");
        Session {
            id,
            path,
            source,
            tracks: Vec::new(),
            state: State::Ready,
            cname,
            backchannel: None,
            live: false,
        }
    }

    /// The same, reading a live path when `live`.
    pub fn live(mut self, live: bool) -> Session {
        self.live = live;
        self
    }

    /// Whether `channel` is used by a set-up track other than `source_track`.
    /// The backchannel track counts as track `source.tracks.len()`.
    pub fn channel_taken(&self, channel: u8, source_track: usize) -> bool {
        let backchannel = self.source.tracks.len();
        self.tracks.iter().any(|t| {
            t.source_track != source_track
                && matches!(t.delivery, Delivery::Interleaved { rtp, rtcp } if rtp == channel || rtcp == channel)
        }) || (source_track != backchannel
            && self
                .backchannel
                .is_some_and(|(rtp, rtcp)| rtp == channel || rtcp == channel))
    }

    /// The UDP track on pair `pair`.
    pub fn udp_track(&self, pair: u16) -> Option<&TrackOut> {
        self.tracks
            .iter()
            .find(|t| matches!(t.delivery, Delivery::Udp(u) if u.pair == pair))
    }

    /// The UDP pair of set-up source track `source_track`, if it has one.
    pub fn udp_pair_of(&self, source_track: usize) -> Option<u16> {
        self.tracks.iter().find_map(|t| match t.delivery {
            Delivery::Udp(u) if t.source_track == source_track => Some(u.pair),
            _ => None,
        })
    }

    /// Whether its tracks are received from the path's multicast stream
    /// (a session is all multicast or not at all).
    pub fn is_multicast(&self) -> bool {
        self.tracks
            .first()
            .is_some_and(|t| matches!(t.delivery, Delivery::Multicast(_)))
    }

    /// RTP packets and payload octets sent so far, all tracks.
    pub fn totals(&self) -> (u64, u64) {
        self.tracks
            .iter()
            .fold((0, 0), |(p, o), t| (p + t.rtp.packets, o + t.rtp.octets))
    }

    /// How the set-up tracks' media goes to the client.
    pub fn transport(&self) -> super::SessionTransport {
        use super::SessionTransport as T;
        let mut kinds = self.tracks.iter().map(|t| match t.delivery {
            Delivery::Interleaved { .. } => T::Tcp,
            Delivery::Udp(_) => T::Udp,
            Delivery::Multicast(_) => T::Multicast,
        });
        let first = kinds.next().unwrap_or(T::Tcp);
        if kinds.all(|k| k == first) {
            first
        } else {
            T::Mixed
        }
    }

    /// How late the next sample is at `now` (zero unless playing and late).
    pub fn behind(&self, now: Instant) -> Duration {
        match &self.state {
            State::Playing(pb) => pb
                .next_due(&self.source)
                .and_then(|due| now.checked_duration_since(due))
                .unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// How far into the presentation a playing session is at `now` (the
    /// time since its start, loops included; `None` unless playing).
    pub fn elapsed(&self, now: Instant) -> Option<Duration> {
        match &self.state {
            State::Playing(pb) => Some(now.saturating_duration_since(pb.start)),
            State::Live(live) if !live.paused => Some(now.saturating_duration_since(live.start)),
            _ => None,
        }
    }

    /// Whether it reads a live path (set up from a publisher's announce).
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live(_))
    }

    /// Starts (or resumes) passing a live path's packets on at `now`; each
    /// track starts at its next keyframe.
    pub fn play_live(&mut self, now: Instant, rtcp_interval: Duration) {
        match &mut self.state {
            State::Live(live) => {
                live.paused = false;
                live.restamp.iter_mut().for_each(Restamp::regate);
                live.next_rtcp = live.next_rtcp.min(now.checked_add(rtcp_interval).unwrap_or(now));
            }
            _ => {
                self.state = State::Live(Box::new(LiveCursor {
                    start: now,
                    restamp: self.tracks.iter().map(|_| Restamp::new()).collect(),
                    paused: false,
                    next_rtcp: now.checked_add(rtcp_interval).unwrap_or(now),
                    rtcp_interval,
                }))
            }
        }
    }

    /// For `RTP-Info` of a member joining a live multicast stream at `now`:
    /// per set-up track, its source track, next sequence number and the
    /// timestamp it is at (its base before the first packet).
    pub fn live_rtp_info(&self, now: Instant) -> Vec<(usize, u16, u32)> {
        let State::Live(live) = &self.state else {
            return self
                .tracks
                .iter()
                .map(|t| (t.source_track, t.rtp.next_seq, t.ts_base))
                .collect();
        };
        self.tracks
            .iter()
            .zip(&live.restamp)
            .map(|(t, r)| {
                let ts = r.timestamp_at(now, t.clock_rate).unwrap_or(t.ts_base);
                (t.source_track, t.rtp.next_seq, ts)
            })
            .collect()
    }

    /// PAUSE of a live reader: nothing is passed on until the next PLAY.
    /// Whether it was passing packets on.
    pub fn pause_live(&mut self) -> bool {
        match &mut self.state {
            State::Live(live) => !std::mem::replace(&mut live.paused, true),
            _ => false,
        }
    }

    /// Passes one of the publisher's packets of source track `source_track`
    /// on, re-stamped (see the `live` module); `now` is when it arrived.
    /// Nothing unless the session reads live, is not paused, and set the
    /// track up. Whether it was passed on.
    pub fn forward(&mut self, now: Instant, source_track: usize, packet: &RtpPacket, out: &mut Sink<'_>) -> bool {
        let State::Live(live) = &mut self.state else {
            return false;
        };
        if live.paused {
            return false;
        }
        let Some(i) = self.tracks.iter().position(|t| t.source_track == source_track) else {
            return false;
        };
        let (Some(track), Some(restamp), Some(source)) = (
            self.tracks.get_mut(i),
            live.restamp.get_mut(i),
            self.source.tracks.get(source_track),
        ) else {
            return false;
        };
        let (next_seq, ts_base, rate) = (track.rtp.next_seq, track.ts_base, track.clock_rate);
        match restamp.map(&source.codec, packet, now, next_seq, ts_base, rate) {
            Mapped::Wait => false,
            Mapped::Send { seq, timestamp } => {
                track.rtp.next_seq = seq;
                track
                    .rtp
                    .put(&track.delivery, out, timestamp, packet.marker, &packet.payload);
                true
            }
        }
    }

    /// The live path's publisher left at `now`: SR + SDES + BYE on every
    /// track, then the session lingers for `linger`, as at the end of a file.
    pub fn end_live(&mut self, now: Instant, ntp: u64, out: &mut Sink<'_>, linger: Duration) -> Option<Finished> {
        let State::Live(live) = &self.state else {
            return None;
        };
        for (t, r) in self.tracks.iter().zip(&live.restamp) {
            let ts = r.timestamp_at(now, t.clock_rate).unwrap_or(t.ts_base);
            t.put_rtcp(out, ntp, ts, &self.cname, true);
        }
        Some(self.end(now, linger))
    }

    /// Playing a file, every track over UDP: it can go on without its
    /// connection (a live reader cannot: its packets come through it).
    pub fn plays_over_udp_only(&self) -> bool {
        matches!(self.state, State::Playing(_)) && self.tracks.iter().all(|t| matches!(t.delivery, Delivery::Udp(_)))
    }

    /// Sets up (or sets up again) source track `source_track` delivered as
    /// `delivery`; returns the SSRC chosen. `initial` (first sequence number,
    /// timestamp base) replaces the random ones; the random draws happen
    /// either way, so the SSRCs do not depend on it.
    pub fn set_up(
        &mut self,
        source_track: usize,
        delivery: Delivery,
        url: String,
        rng: &mut SplitMix64,
        max_payload: usize,
        initial: Option<(u16, u32)>,
    ) -> u32 {
        let (out, ssrc) = TrackOut::new(&self.source, source_track, delivery, url, rng, max_payload, initial);
        match self.tracks.iter_mut().find(|t| t.source_track == source_track) {
            Some(t) => *t = out,
            None => self.tracks.push(out),
        }
        ssrc
    }

    /// Starts playing at `now`. A source with no duration, or with no sample
    /// on a set-up track, is played once whatever `count` says (it cannot
    /// loop).
    pub fn play(&mut self, now: Instant, count: PlayCount, rtcp_interval: Duration) {
        self.play_from(now, count, rtcp_interval, PlayFrom::default());
    }

    /// Starts playing at `now` as `from` says: at its cue (a seek), or from
    /// where a PAUSE left it (a resume), else from the start. Returns the
    /// media time the play starts at (the `npt` of the reply's `Range`).
    pub fn play_from(&mut self, now: Instant, count: PlayCount, rtcp_interval: Duration, from: PlayFrom) -> Duration {
        let paused = match std::mem::replace(&mut self.state, State::Ready) {
            State::Paused(pb) | State::Playing(pb) => Some(pb),
            other => {
                self.state = other;
                None
            }
        };
        let source = &*self.source;
        let mut track_map = vec![None; source.tracks.len()];
        for (i, t) in self.tracks.iter().enumerate() {
            track_map[t.source_track] = Some(i);
        }
        let any = source
            .samples
            .iter()
            .any(|s| track_map.get(s.track).copied().flatten().is_some());
        let count = if source.duration.is_zero() || !any {
            PlayCount::ONCE
        } else {
            count
        };
        // Where: the cue, or where the pause left it, or the start.
        let (loop_index, next_sample, npt) = match (from.cue, &paused) {
            (Some(c), _) => (c.loop_index, c.sample.min(source.samples.len()), Some(c.npt)),
            (None, Some(p)) => (p.loop_index, p.next_sample, None),
            (None, None) => (0, 0, None),
        };
        let all_sent = !any || paused.as_ref().is_some_and(|p| p.all_sent && from.cue.is_none());
        let mut pb = Playback {
            start: now,
            offset: Duration::ZERO,
            scale: if from.scale > 0.0 && from.scale.is_finite() {
                from.scale
            } else {
                1.0
            },
            stop_at: from.stop_at,
            count,
            period: source.duration,
            loop_index,
            loop_base: source.duration.checked_mul(loop_index).unwrap_or(Duration::MAX),
            next_sample,
            all_sent: all_sent || next_sample >= source.samples.len(),
            last_due: now,
            end_at: None,
            next_rtcp: now,
            rtcp_interval,
            track_map,
        };
        pb.skip_unmapped(source);
        // A fresh play keeps the plain schedule (sample `i` due at its send
        // time); a resume or seek starts with its first sample due now.
        if from.cue.is_some() || paused.is_some() {
            pb.offset = pb.media_time(source).unwrap_or(pb.loop_base);
        }
        let npt = npt.unwrap_or(pb.offset);
        self.state = State::Playing(Box::new(pb));
        npt
    }

    /// PAUSE at `now`: the cursor is kept, nothing more is sent. Returns
    /// the media time it stopped at; `None` unless playing.
    pub fn pause(&mut self, now: Instant) -> Option<Duration> {
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Playing(pb) => {
                let at = pb.media_time(&self.source).unwrap_or_else(|| pb.media_at(now));
                self.state = State::Paused(pb);
                Some(at)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Where a PLAY of `npt` starts (see [`Cue`]): the play-through of
    /// `npt`, and in it the last keyframe of the first set-up video track
    /// (else of the first set-up track) whose presentation time is at or
    /// before `npt`, or the play-through's start. `None` when `npt` is past
    /// the presentation (`count·D`).
    pub fn cue(&self, npt: Duration, count: PlayCount) -> Option<Cue> {
        let source = &*self.source;
        let period = source.duration;
        if period.is_zero() {
            return npt.is_zero().then_some(Cue {
                loop_index: 0,
                sample: 0,
                npt: Duration::ZERO,
            });
        }
        let loop_index = u32::try_from(npt.as_nanos() / period.as_nanos()).ok()?;
        if count.times().is_some_and(|n| loop_index >= n) {
            return None;
        }
        let base = period.checked_mul(loop_index)?;
        let within = npt.saturating_sub(base);
        let video = |t: &&TrackOut| {
            matches!(
                source.tracks.get(t.source_track).map(|s| &s.codec),
                Some(SourceCodec::H264 { .. } | SourceCodec::H265 { .. })
            )
        };
        let primary = self
            .tracks
            .iter()
            .find(video)
            .or(self.tracks.first())
            .map(|t| t.source_track)?;
        let rate = source.tracks.get(primary).map_or(1, |t| t.clock_rate.max(1));
        let pts = |s: &SourceSample| {
            Duration::from_nanos(
                (s.presentation_time.max(0) as u128 * 1_000_000_000 / u128::from(rate)).min(u128::from(u64::MAX))
                    as u64,
            )
        };
        let found = source
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.track == primary && s.keyframe && pts(s) <= within)
            .last();
        let (sample, at) = found.map_or((0, Duration::ZERO), |(i, s)| (i, pts(s)));
        Some(Cue {
            loop_index,
            sample,
            npt: base.saturating_add(at),
        })
    }

    /// For `RTP-Info`: each track's next sequence number and the RTP
    /// timestamp of media time `npt` (what its first packet of the play
    /// carries when it is that track's sample).
    pub fn rtp_info_for(&self, npt: Duration) -> Vec<(String, u16, u32)> {
        let period = self.source.duration;
        self.tracks
            .iter()
            .map(|t| {
                let (loops, within) = match u32::try_from(npt.as_nanos().checked_div(period.as_nanos()).unwrap_or(0)) {
                    Ok(k) => (k, npt.saturating_sub(period.checked_mul(k).unwrap_or(Duration::ZERO))),
                    Err(_) => (0, npt),
                };
                let ts = t
                    .ts_base
                    .wrapping_add(t.loop_ticks.wrapping_mul(u64::from(loops)) as u32)
                    .wrapping_add(ticks(within, t.clock_rate, false) as u32);
                (t.url.clone(), t.rtp.next_seq, ts)
            })
            .collect()
    }

    /// Bounds the catch-up: when the next sample was due more than `max_lag`
    /// before `now`, moves the schedule forward so that it is due exactly
    /// `max_lag` before `now`. Returns how far behind the session was, when
    /// it moved. Call before [`Session::pump`].
    pub fn resync(&mut self, now: Instant, max_lag: Duration) -> Option<Lag> {
        let State::Playing(pb) = &mut self.state else {
            return None;
        };
        let due = pb.next_due(&self.source)?;
        let behind = now.checked_duration_since(due)?;
        let skipped = behind.checked_sub(max_lag).filter(|d| !d.is_zero())?;
        pb.shift(skipped).then_some(Lag { behind, skipped })
    }

    /// Sends everything due at `now` (`ntp` being the wall clock at `now`)
    /// into `out`. Returns `Some` once, when the end (SR + BYE) was sent.
    pub fn pump(
        &mut self,
        now: Instant,
        ntp: u64,
        out: &mut Sink<'_>,
        nals: &mut Vec<Bytes>,
        linger: Duration,
    ) -> Option<Finished> {
        if let State::Live(live) = &mut self.state {
            if !live.paused && now >= live.next_rtcp {
                for (t, r) in self.tracks.iter().zip(&live.restamp) {
                    if let Some(ts) = r.timestamp_at(now, t.clock_rate).filter(|_| t.rtp.packets > 0) {
                        t.put_rtcp(out, ntp, ts, &self.cname, false);
                    }
                }
                live.next_rtcp = later_than(live.next_rtcp, live.rtcp_interval, now);
            }
            return None;
        }
        let State::Playing(pb) = &mut self.state else {
            return None;
        };
        let source = &*self.source;
        let tracks = &mut self.tracks;
        let out_start = out.bytes;
        let mut sent = 0;
        while sent < MAX_SAMPLES_PER_PUMP && out.bytes - out_start < MAX_BYTES_PER_PUMP {
            let Some(due) = pb.next_due(source) else {
                break;
            };
            if due > now {
                break;
            }
            let sample = &source.samples[pb.next_sample];
            if let Some(i) = pb.mapped(sample) {
                tracks[i].send(sample, pb.loop_index, out, nals);
            }
            pb.last_due = due;
            pb.advance(source);
            pb.skip_unmapped(source);
            sent += 1;
        }
        if pb.all_sent && pb.end_at.is_none() {
            pb.end_at = Some(pb.presentation_end().map_or(pb.last_due, |e| e.max(pb.last_due)));
        }
        let ended = pb.end_at.is_some_and(|e| now >= e);
        if !ended && out.faults.as_deref_mut().is_some_and(|f| f.bye_due()) {
            // The camera simulator's `bye_at=`: a BYE on every track, and the
            // media goes on.
            let media = pb.media_at(now);
            for t in tracks.iter() {
                let ts = t.ts_base.wrapping_add(ticks(media, t.clock_rate, false) as u32);
                t.put_rtcp(out, ntp, ts, &self.cname, true);
            }
            if let Some(f) = out.faults.as_deref() {
                let event = f.event(FaultEvent::Bye { tracks: tracks.len() });
                out.datagrams.push_back(event);
            }
        }
        if ended || now >= pb.next_rtcp {
            send_reports(pb, tracks, &self.cname, now, ntp, out, ended);
        }
        if !ended {
            return None;
        }
        Some(self.end(now, linger))
    }

    /// Ends a playing session at `now`, before its schedule does: the final
    /// SR + SDES + BYE on every track, as at the end of the presentation,
    /// then lingers for `linger`. `None` unless it was playing. (A multicast
    /// stream whose last member left.)
    pub fn stop(&mut self, now: Instant, ntp: u64, out: &mut Sink<'_>, linger: Duration) -> Option<Finished> {
        let State::Playing(pb) = &mut self.state else {
            return None;
        };
        send_reports(pb, &self.tracks, &self.cname, now, ntp, out, true);
        Some(self.end(now, linger))
    }

    /// What was sent; the state becomes `Ended` until `now + linger`.
    fn end(&mut self, now: Instant, linger: Duration) -> Finished {
        let loops = match &self.state {
            State::Playing(pb) => pb.loop_index,
            _ => 0,
        };
        let finished = Finished {
            loops,
            packets: self.tracks.iter().map(|t| t.rtp.packets).sum(),
            octets: self.tracks.iter().map(|t| t.rtp.octets).sum(),
        };
        self.state = State::Ended {
            close_at: now.checked_add(linger).unwrap_or(now),
        };
        finished
    }

    /// The next instant [`Session::pump`] (or the linger end) has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Ready | State::Member | State::Paused(_) => None,
            State::Live(live) => (!live.paused).then_some(live.next_rtcp),
            State::Ended { close_at } => Some(*close_at),
            State::Playing(pb) => {
                let mut at = pb.next_rtcp;
                if let Some(due) = pb.next_due(&self.source) {
                    at = at.min(due);
                }
                if let Some(end) = pb.end_at {
                    at = at.min(end);
                }
                Some(at)
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }
}
