//! A session's faults being applied (`docs/SIMULATOR.md`): the one
//! generator every draw comes from, the packets held back or delayed, and
//! what was done once. The spec it applies is [`Faults`], parsed in
//! `faults.rs`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::clock::SplitMix64;
use super::faults::{CloseAfter, FaultEvent, Faults, Quirk, REORDER_ONE_IN, SEQ_JUMP, TS_JUMP};
use super::{ServerEvent, ServerOutput};

/// What happens to one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Send,
    /// Not sent (its sequence number is used up).
    Drop,
}

/// A packet held back by `reorder=`.
#[derive(Debug)]
struct Held {
    track: usize,
    seq: u16,
    rtp_ts: u32,
    /// Packets of its track still to go before it.
    remaining: u16,
    output: ServerOutput,
}

/// The faults of one session being applied: the generator, the packets held
/// or delayed, what was done once.
#[derive(Debug)]
pub(super) struct FaultRun {
    pub spec: Faults,
    rng: SplitMix64,
    session_id: String,
    /// The first PLAY; faults timed "after PLAY" count from here.
    played: Option<Instant>,
    /// The instant of the current input.
    now: Instant,
    /// RTP packets passed through (sent or dropped).
    packets: u64,
    /// Tracks (bit = index, the first 64) whose SSRC / sequence changed.
    ssrc_changed: u64,
    seq_jumped: u64,
    ts_jumped: u64,
    resized: u64,
    held: Vec<Held>,
    /// Datagrams delayed by `jitter_ms`, with when they are due.
    delayed: Vec<(Instant, ServerOutput)>,
    stall_until: Option<Instant>,
    stalled: bool,
    /// Packets still to drop in the current burst.
    burst_left: u16,
    /// `bye_at=` was done.
    bye_sent: bool,
    /// `close_after=` was reached: the connection closes after this pump.
    pub closing: bool,
    /// The packets being written are a keyframe's that `keyframe_gap=`
    /// drops.
    pub dropping_keyframe: bool,
    /// The path of the presentation whose DESCRIBE got a wrong
    /// `Content-Base` (`wrong_content_base`): requests on
    /// [`WRONG_CONTENT_BASE`](super::faults::WRONG_CONTENT_BASE) are for it.
    pub content_base_of: Option<String>,
    /// The seed of [`rng`](Self::rng), for draws that must not move its
    /// sequence (the nonce of `reauth_after_play`).
    seed: u64,
    /// The nonce `reauth_after_play` asks to be answered without the
    /// server's users, once it asked.
    reauth_nonce: Option<String>,
}

/// Most packets held or delayed at once; beyond, they go out at once
/// (bounded memory whatever the rates).
const MAX_HELD: usize = 4096;

impl FaultRun {
    pub fn new(spec: Faults, default_seed: u64, session_id: &str, now: Instant) -> FaultRun {
        let seed = spec.seed.unwrap_or(default_seed);
        FaultRun {
            rng: SplitMix64::new(seed),
            seed,
            reauth_nonce: None,
            spec,
            session_id: session_id.to_owned(),
            played: None,
            now,
            packets: 0,
            ssrc_changed: 0,
            seq_jumped: 0,
            ts_jumped: 0,
            resized: 0,
            held: Vec::new(),
            delayed: Vec::new(),
            stall_until: None,
            stalled: false,
            burst_left: 0,
            bye_sent: false,
            closing: false,
            content_base_of: None,
            dropping_keyframe: false,
        }
    }

    /// The instant of the input being handled.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// PLAY started the media (the first one counts).
    pub fn played(&mut self, now: Instant) {
        self.played.get_or_insert(now);
    }

    /// Whether a PLAY started the media.
    pub fn has_played(&self) -> bool {
        self.played.is_some()
    }

    /// When the first PLAY started the media.
    pub fn played_at(&self) -> Option<Instant> {
        self.played
    }

    /// The nonce of `reauth_after_play` without the server's users: 32 hex
    /// digits drawn from the seed (not from the packet generator, whose
    /// drops stay as they are), the same for the whole session.
    pub fn reauth_nonce(&mut self) -> &str {
        let seed = self.seed;
        self.reauth_nonce.get_or_insert_with(|| {
            let mut g = SplitMix64::new(seed ^ 0x7265_6175_7468_6e6f);
            format!("{:016x}{:016x}", g.next_u64(), g.next_u64())
        })
    }

    fn since_play(&self) -> Option<Duration> {
        self.played.map(|p| self.now.saturating_duration_since(p))
    }

    fn due(&self, after: Duration) -> bool {
        self.since_play().is_some_and(|s| s >= after)
    }

    /// The event of `fault`, done now.
    pub fn event(&self, fault: FaultEvent) -> ServerOutput {
        ServerOutput::Event(ServerEvent::Fault {
            session_id: self.session_id.clone(),
            since_play: self.since_play(),
            fault,
        })
    }

    /// Before RTP packet `seq` of `track` is written: the SSRC change and
    /// sequence jump when due, the marker quirk, the drop decision.
    #[allow(clippy::too_many_arguments)]
    pub fn before_rtp(
        &mut self,
        track: usize,
        ssrc: &mut u32,
        seq: &mut u16,
        rtp_ts: u32,
        marker: &mut bool,
        events: &mut VecDeque<ServerOutput>,
    ) -> Verdict {
        if self.closing {
            return Verdict::Drop;
        }
        let bit = 1u64.checked_shl(track as u32).unwrap_or(0);
        if let Some(at) = self.spec.ssrc_change {
            if self.due(at) && self.ssrc_changed & bit == 0 && bit != 0 {
                self.ssrc_changed |= bit;
                let from = *ssrc;
                let mut to = self.rng.next_u64() as u32;
                if to == from {
                    to = to.wrapping_add(1);
                }
                *ssrc = to;
                events.push_back(self.event(FaultEvent::SsrcChange { track, from, to }));
            }
        }
        if let Some(at) = self.spec.seq_jump {
            if self.due(at) && self.seq_jumped & bit == 0 && bit != 0 {
                self.seq_jumped |= bit;
                let from = *seq;
                *seq = from.wrapping_add(SEQ_JUMP);
                events.push_back(self.event(FaultEvent::SeqJump { track, from, to: *seq }));
            }
        }
        if self.spec.has(Quirk::NoMarker) {
            *marker = false;
        }
        let index = self.packets;
        self.packets += 1;
        if let Some(CloseAfter::Packets(n)) = self.spec.close_after {
            if self.packets > n {
                self.closing = true;
                return Verdict::Drop;
            }
        }
        let listed = self.spec.drop_packets.contains(index);
        let drop = if self.dropping_keyframe {
            true
        } else if self.burst_left > 0 {
            self.burst_left -= 1;
            true
        } else if self.spec.drop_ppm > 0 && self.rng.next_u64() % 1_000_000 < u64::from(self.spec.drop_ppm) {
            self.burst_left = self.spec.burst.max(1) - 1;
            true
        } else {
            false
        };
        if drop || listed {
            events.push_back(self.event(FaultEvent::Drop {
                track,
                seq: *seq,
                rtp_ts,
            }));
            return Verdict::Drop;
        }
        Verdict::Send
    }

    /// Before the next sample of `track` (a `clock_rate` Hz clock) is
    /// packetized: how far its timestamps jump from now on (to be added,
    /// wrapping: a backward jump is a large value), once, when `ts_jump=`
    /// is due.
    pub fn ts_jump_due(&mut self, track: usize, clock_rate: u32) -> Option<u32> {
        let bit = 1u64.checked_shl(track as u32).unwrap_or(0);
        let at = self.spec.ts_jump?;
        if bit == 0 || self.ts_jumped & bit != 0 || !self.due(at) || self.closing {
            return None;
        }
        self.ts_jumped |= bit;
        let ms = match self.spec.ts_jump_ms {
            0 => TS_JUMP.as_millis() as i64,
            ms => i64::from(ms),
        };
        Some((ms * i64::from(clock_rate) / 1000) as u32)
    }

    /// The NTP time to put in a sender report of `track` at `ntp`, and its
    /// event when `sr_offset=` changed it.
    pub fn sender_report_ntp(&self, track: usize, ntp: u64) -> (u64, Option<ServerOutput>) {
        let Some(ms) = self.spec.sr_offset_ms.filter(|_| track > 0) else {
            return (ntp, None);
        };
        let units = (u64::from(ms.unsigned_abs()) << 32) / 1000;
        let shifted = if ms > 0 {
            ntp.wrapping_add(units)
        } else {
            ntp.wrapping_sub(units)
        };
        (shifted, Some(self.event(FaultEvent::SrOffset { track, offset_ms: ms })))
    }

    /// Whether a video keyframe of `track` due now is the first with the
    /// new size of `resolution_change=` (once per track; the caller keeps
    /// the new size from then on).
    pub fn resolution_change_due(&mut self, track: usize) -> bool {
        let bit = 1u64.checked_shl(track as u32).unwrap_or(0);
        let Some((at, _)) = self.spec.resolution_change else {
            return false;
        };
        if bit == 0 || self.resized & bit != 0 || !self.due(at) || self.closing {
            return false;
        }
        self.resized |= bit;
        true
    }

    /// Whether a video keyframe due now is to be dropped (`keyframe_gap=`).
    pub fn keyframe_gap_on(&self) -> bool {
        self.spec
            .keyframe_gap
            .is_some_and(|(after, len)| self.due(after) && !self.due(after.saturating_add(len)))
    }

    /// Whether RTP packet `seq` of `track`, just sent, goes once more
    /// (`dup=`); its event if so.
    pub fn duplicate(&mut self, track: usize, seq: u16, rtp_ts: u32, events: &mut VecDeque<ServerOutput>) -> bool {
        if self.spec.dup_ppm == 0 || self.rng.next_u64() % 1_000_000 >= u64::from(self.spec.dup_ppm) {
            return false;
        }
        events.push_back(self.event(FaultEvent::Duplicate { track, seq, rtp_ts }));
        true
    }

    /// After RTP packet `seq` of `track` was put as the last datagram of
    /// `queue`: `reorder=` and `jitter_ms=` may take it back.
    pub fn after_datagram(&mut self, track: usize, seq: u16, rtp_ts: u32, queue: &mut VecDeque<ServerOutput>) {
        if self.spec.reorder == 0 && self.spec.jitter.is_zero() {
            return;
        }
        if !matches!(queue.back(), Some(ServerOutput::SendDatagram { .. })) {
            return;
        }
        let Some(output) = queue.pop_back() else {
            return;
        };
        let mut ready = Vec::new();
        // Packets held behind this one count it.
        for h in self.held.iter_mut().filter(|h| h.track == track) {
            h.remaining = h.remaining.saturating_sub(1);
        }
        let hold = self.spec.reorder > 0 && self.held.len() < MAX_HELD && self.rng.next_u64() % REORDER_ONE_IN == 0;
        if hold {
            let depth = self.spec.reorder;
            queue.push_back(self.event(FaultEvent::Reorder {
                track,
                seq,
                rtp_ts,
                depth,
            }));
            self.held.push(Held {
                track,
                seq,
                rtp_ts,
                remaining: depth,
                output,
            });
        } else {
            ready.push((seq, rtp_ts, output));
        }
        let mut k = 0;
        while k < self.held.len() {
            if self.held[k].remaining == 0 {
                let h = self.held.remove(k);
                ready.push((h.seq, h.rtp_ts, h.output));
            } else {
                k += 1;
            }
        }
        for (seq, rtp_ts, output) in ready {
            self.jitter(track, seq, rtp_ts, output, queue);
        }
    }

    fn jitter(
        &mut self,
        track: usize,
        seq: u16,
        rtp_ts: u32,
        output: ServerOutput,
        queue: &mut VecDeque<ServerOutput>,
    ) {
        let max_ms = self.spec.jitter.as_millis() as u64;
        if max_ms == 0 || self.delayed.len() >= MAX_HELD {
            queue.push_back(output);
            return;
        }
        let delay_ms = self.rng.next_u64() % (max_ms + 1);
        if delay_ms == 0 {
            queue.push_back(output);
            return;
        }
        queue.push_back(self.event(FaultEvent::Delay {
            track,
            seq,
            rtp_ts,
            delay_ms: delay_ms as u32,
        }));
        let at = self
            .now
            .checked_add(Duration::from_millis(delay_ms))
            .unwrap_or(self.now);
        self.delayed.push((at, output));
    }

    /// Puts the delayed datagrams due at `now` into `queue`, earliest first.
    pub fn release_due(&mut self, now: Instant, queue: &mut VecDeque<ServerOutput>) {
        if self.delayed.is_empty() {
            return;
        }
        self.delayed.sort_by_key(|(at, _)| *at);
        let n = self.delayed.iter().take_while(|(at, _)| *at <= now).count();
        queue.extend(self.delayed.drain(..n).map(|(_, o)| o));
    }

    /// Sends everything held or delayed now (the session ended).
    pub fn flush(&mut self, queue: &mut VecDeque<ServerOutput>) {
        self.delayed.sort_by_key(|(at, _)| *at);
        queue.extend(self.held.drain(..).map(|h| h.output));
        queue.extend(self.delayed.drain(..).map(|(_, o)| o));
    }

    /// Whether the media must not be pumped at `now` (a `stall=` is on);
    /// the stall's event when it begins.
    pub fn stalled(&mut self, now: Instant, queue: &mut VecDeque<ServerOutput>) -> bool {
        self.now = now;
        let (Some((after, length)), Some(played)) = (self.spec.stall, self.played) else {
            return false;
        };
        if !self.stalled && self.due(after) {
            self.stalled = true;
            let begin = played.checked_add(after).unwrap_or(now);
            self.stall_until = Some(begin.checked_add(length).unwrap_or(begin));
            queue.push_back(self.event(if self.spec.freeze {
                FaultEvent::Freeze { length }
            } else {
                FaultEvent::Stall { length }
            }));
        }
        self.stall_until.is_some_and(|until| now < until)
    }

    /// When a request that comes at `now` may be answered: the end of the
    /// `freeze=` on then (which begins now if it is due), else `None`.
    pub fn frozen_until(&mut self, now: Instant, queue: &mut VecDeque<ServerOutput>) -> Option<Instant> {
        if !self.spec.freeze || !self.stalled(now, queue) {
            return None;
        }
        self.stall_end()
    }

    /// Whether `close_after=S` is reached at `now`.
    pub fn close_due(&mut self, now: Instant) -> bool {
        self.now = now;
        if let Some(CloseAfter::Time(d)) = self.spec.close_after {
            if self.due(d) {
                self.closing = true;
            }
        }
        self.closing
    }

    /// Whether the early BYE of `bye_at=` is due at the current input (once).
    pub fn bye_due(&mut self) -> bool {
        if self.bye_sent || !self.spec.bye_at.is_some_and(|d| self.due(d)) {
            return false;
        }
        self.bye_sent = true;
        true
    }

    /// The `close_after=` event.
    pub fn close_event(&self) -> ServerOutput {
        self.event(FaultEvent::Close { packets: self.packets })
    }

    /// The earliest instant something here is due: a delayed datagram, the
    /// end of a stall, a timed close, the early BYE.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut at = self.delayed.iter().map(|(t, _)| *t).min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        consider(self.stall_end());
        if let (Some((after, _)), Some(p), false) = (self.spec.stall, self.played, self.stalled) {
            consider(p.checked_add(after));
        }
        if let (Some(CloseAfter::Time(d)), Some(p)) = (self.spec.close_after, self.played) {
            consider(p.checked_add(d));
        }
        if let (Some(d), Some(p), false) = (self.spec.bye_at, self.played, self.bye_sent) {
            consider(p.checked_add(d));
        }
        at
    }

    /// The end of the stall on at the current input's instant, if one is.
    pub fn stall_end(&self) -> Option<Instant> {
        self.stall_until.filter(|until| self.now < *until)
    }
}
