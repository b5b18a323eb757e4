//! The reorder buffer of a track received over UDP: packets go in as they
//! arrive and come out in sequence order, duplicates and packets too late to
//! place dropped. It holds at most `capacity` packets and holds none longer
//! than `window`: a gap the window passes (or that a full buffer forces) is
//! given up, and the packets after it are released; the sequence tracker of
//! the track then reports the gap as a loss, exactly as over TCP.
//!
//! Memory is bounded under any arrival pattern: the ring has `capacity`
//! slots, and a packet too far ahead of the expected sequence number first
//! pushes the ring forward (releasing or giving up what it passes).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A jump ahead larger than this is taken for a new sequence (RFC 3550
/// A.1 `MAX_DROPOUT`) once a second packet confirms it.
const MAX_DROPOUT: i32 = 3000;
/// A packet further behind than this is taken for a new sequence (RFC 3550
/// A.1 `MAX_MISORDER`) once a second packet confirms it.
const MAX_MISORDER: i32 = 100;
/// How far behind the expected sequence number duplicates are told apart
/// from late packets (a bit per sequence number).
const HISTORY: usize = 1024;

/// What became of a packet handed to [`Reorder::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admitted {
    /// Released or held: a new packet.
    New,
    /// A copy of a packet already released or held: dropped.
    Duplicate,
    /// Behind a gap already given up: dropped.
    Late,
    /// Far from the expected sequence number; dropped unless the next
    /// packet follows it (then the sequence starts again there).
    Stray,
}

/// A released packet and when it arrived.
pub(super) type Released = (Bytes, Instant);

#[derive(Debug)]
pub(super) struct Reorder {
    capacity: usize,
    window: Duration,
    /// The next sequence number to release; `None` before the first packet.
    next: Option<u16>,
    /// `slots[i]` holds the packet with sequence number `next + i`.
    slots: VecDeque<Option<Released>>,
    held: usize,
    /// Bit `s % HISTORY` is set when sequence number `s` was released
    /// (cleared as `next` moves past it unreleased).
    history: Box<[u64; HISTORY / 64]>,
    /// A stray packet's successor: if it comes next, the sequence restarts.
    probation: Option<u16>,
    /// A packet was released. Before that, the first packet waits too (for
    /// the one after it, or the window), and a packet that arrives behind
    /// it moves the start back: packets swapped at the very start are put
    /// in order like any others.
    started: bool,
}

impl Reorder {
    pub(super) fn new(capacity: usize, window: Duration) -> Reorder {
        Reorder {
            capacity: capacity.clamp(1, 1 << 15),
            window,
            next: None,
            slots: VecDeque::new(),
            held: 0,
            history: Box::new([0; HISTORY / 64]),
            probation: None,
            started: false,
        }
    }

    /// Packets held, waiting for the ones before them.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Takes the packet with sequence number `seq` that arrived at `now`;
    /// what can be released goes to `out`, in order.
    pub(super) fn push(&mut self, now: Instant, seq: u16, packet: Bytes, out: &mut VecDeque<Released>) -> Admitted {
        let Some(next) = self.next else {
            self.restart(seq, out);
            self.slots.push_back(Some((packet, now)));
            self.held = 1;
            self.expire(now, out);
            return Admitted::New;
        };
        let offset = i32::from(seq.wrapping_sub(next) as i16);
        if !self.started && (-MAX_MISORDER..0).contains(&offset) {
            // Before anything was released: this one goes in front.
            let shift = offset.unsigned_abs() as usize;
            if self.slots.len() + shift <= self.capacity {
                for _ in 0..shift {
                    self.slots.push_front(None);
                }
                self.next = Some(seq);
                self.slots[0] = Some((packet, now));
                self.held += 1;
                self.release_if_started(out);
                self.expire(now, out);
                return Admitted::New;
            }
        }
        if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&offset) {
            if self.probation == Some(seq) {
                self.restart(seq, out);
                self.release_one(seq, packet, now, out);
                return Admitted::New;
            }
            self.probation = Some(seq.wrapping_add(1));
            return Admitted::Stray;
        }
        self.probation = None;
        if offset < 0 {
            return if self.was_released(seq) {
                Admitted::Duplicate
            } else {
                Admitted::Late
            };
        }
        let mut offset = offset as usize;
        if offset >= self.capacity {
            // Too far ahead for the ring: give up the front until it fits,
            // then release what follows the gaps given up.
            while offset >= self.capacity {
                self.advance(out);
                offset -= 1;
            }
            while offset > 0 && matches!(self.slots.front(), Some(Some(_))) {
                self.advance(out);
                offset -= 1;
            }
        }
        if offset == 0 && self.started {
            self.release_one(seq, packet, now, out);
            if !self.slots.is_empty() {
                self.slots.pop_front();
            }
            self.release_run(out);
        } else {
            if self.slots.len() <= offset {
                self.slots.resize(offset + 1, None);
            }
            if self.slots[offset].is_some() {
                return Admitted::Duplicate;
            }
            self.slots[offset] = Some((packet, now));
            self.held += 1;
            self.release_if_started(out);
        }
        self.expire(now, out);
        Admitted::New
    }

    /// Before the first release: starts once the first two packets in
    /// sequence are there, releasing them and what follows.
    fn release_if_started(&mut self, out: &mut VecDeque<Released>) {
        if !self.started && matches!((self.slots.front(), self.slots.get(1)), (Some(Some(_)), Some(Some(_)))) {
            self.release_run(out);
        }
    }

    /// Gives up the gaps in front of packets that have waited the window
    /// at `now`, releasing what follows them.
    pub(super) fn expire(&mut self, now: Instant, out: &mut VecDeque<Released>) {
        while let Some(oldest) = self.oldest() {
            if now < oldest + self.window {
                break;
            }
            // Skip the gap up to the first held packet, then release the run.
            while matches!(self.slots.front(), Some(None)) {
                self.advance(out);
            }
            self.release_run(out);
        }
    }

    /// When the oldest held packet's wait ends.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.oldest().map(|t| t + self.window)
    }

    fn oldest(&self) -> Option<Instant> {
        if self.held == 0 {
            return None;
        }
        self.slots.iter().flatten().map(|(_, t)| *t).min()
    }

    /// Releases every held packet in order (the session ends, or the
    /// sequence restarts), giving up the gaps between them.
    pub(super) fn flush(&mut self, out: &mut VecDeque<Released>) {
        while self.held > 0 {
            self.advance(out);
        }
        self.slots.clear();
    }

    /// A later PLAY was answered: what is held goes out, and the next
    /// packet expected is `seq` (`None`: the next to come, as at the
    /// start). A buffer already at or a little past `seq` keeps its place.
    pub(super) fn expect(&mut self, seq: Option<u16>, out: &mut VecDeque<Released>) {
        match (seq, self.next) {
            (Some(s), Some(n)) if i32::from(n.wrapping_sub(s) as i16) >= 0 && n.wrapping_sub(s) <= 100 => {}
            (Some(s), _) => {
                self.restart(s, out);
                self.started = true;
            }
            (None, _) => {
                self.flush(out);
                self.history.fill(0);
                self.probation = None;
                self.next = None;
                self.started = false;
            }
        }
    }

    fn restart(&mut self, seq: u16, out: &mut VecDeque<Released>) {
        self.flush(out);
        self.history.fill(0);
        self.probation = None;
        self.next = Some(seq);
    }

    /// Releases `packet` (sequence number `next`) and moves past it.
    fn release_one(&mut self, seq: u16, packet: Bytes, at: Instant, out: &mut VecDeque<Released>) {
        self.started = true;
        self.mark(seq, true);
        out.push_back((packet, at));
        self.next = Some(seq.wrapping_add(1));
    }

    /// Releases the held packets that follow `next` without a gap.
    fn release_run(&mut self, out: &mut VecDeque<Released>) {
        while let Some(Some(_)) = self.slots.front() {
            self.advance(out);
        }
    }

    /// Moves `next` on by one: the front slot's packet is released, or its
    /// sequence number given up.
    fn advance(&mut self, out: &mut VecDeque<Released>) {
        let Some(next) = self.next else { return };
        match self.slots.pop_front() {
            Some(Some((packet, at))) => {
                self.held -= 1;
                self.started = true;
                self.mark(next, true);
                out.push_back((packet, at));
            }
            _ => self.mark(next, false),
        }
        self.next = Some(next.wrapping_add(1));
    }

    fn mark(&mut self, seq: u16, released: bool) {
        let i = usize::from(seq) % HISTORY;
        let bit = 1u64 << (i % 64);
        if released {
            self.history[i / 64] |= bit;
        } else {
            self.history[i / 64] &= !bit;
        }
    }

    fn was_released(&self, seq: u16) -> bool {
        let i = usize::from(seq) % HISTORY;
        self.history[i / 64] & (1u64 << (i % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(out: &mut VecDeque<Released>) -> Vec<u16> {
        out.drain(..).map(|(p, _)| u16::from_be_bytes([p[0], p[1]])).collect()
    }

    fn push(r: &mut Reorder, now: Instant, seq: u16, out: &mut VecDeque<Released>) -> Admitted {
        r.push(now, seq, Bytes::copy_from_slice(&seq.to_be_bytes()), out)
    }

    #[test]
    fn in_order_passes_straight_through() {
        let t0 = Instant::now();
        let mut r = Reorder::new(8, Duration::from_millis(100));
        let mut out = VecDeque::new();
        for s in [65534, 65535, 0, 1] {
            assert_eq!(push(&mut r, t0, s, &mut out), Admitted::New);
        }
        assert_eq!(seqs(&mut out), [65534, 65535, 0, 1]);
        assert_eq!(r.held(), 0);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn swapped_packets_come_out_in_order_and_duplicates_are_dropped() {
        let t0 = Instant::now();
        let mut r = Reorder::new(8, Duration::from_millis(100));
        let mut out = VecDeque::new();
        push(&mut r, t0, 10, &mut out);
        push(&mut r, t0, 12, &mut out);
        assert_eq!(push(&mut r, t0, 12, &mut out), Admitted::Duplicate);
        assert!(seqs(&mut out).is_empty(), "the first packet waits for the one after it");
        assert_eq!(r.deadline(), Some(t0 + Duration::from_millis(100)));
        push(&mut r, t0, 11, &mut out);
        assert_eq!(seqs(&mut out), [10, 11, 12]);
        assert_eq!(push(&mut r, t0, 11, &mut out), Admitted::Duplicate);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn packets_swapped_at_the_very_start_come_out_in_order() {
        let t0 = Instant::now();
        let mut r = Reorder::new(8, Duration::from_millis(100));
        let mut out = VecDeque::new();
        push(&mut r, t0, 11, &mut out);
        assert_eq!(push(&mut r, t0, 10, &mut out), Admitted::New);
        push(&mut r, t0, 12, &mut out);
        assert_eq!(seqs(&mut out), [10, 11, 12]);
        // A lone first packet goes out when its window passes.
        let mut r = Reorder::new(8, Duration::from_millis(100));
        push(&mut r, t0, 500, &mut out);
        r.expire(t0 + Duration::from_millis(99), &mut out);
        assert!(out.is_empty());
        r.expire(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(seqs(&mut out), [500]);
    }

    #[test]
    fn a_gap_is_given_up_after_the_window_and_its_packet_is_then_late() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reorder::new(8, ms(100));
        let mut out = VecDeque::new();
        push(&mut r, t0, 1, &mut out);
        push(&mut r, t0 + ms(10), 3, &mut out);
        push(&mut r, t0 + ms(20), 4, &mut out);
        r.expire(t0 + ms(109), &mut out);
        assert_eq!(seqs(&mut out), [1]);
        r.expire(t0 + ms(110), &mut out);
        assert_eq!(seqs(&mut out), [3, 4]);
        assert_eq!(push(&mut r, t0 + ms(120), 2, &mut out), Admitted::Late);
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_buffer_gives_up_the_front() {
        let t0 = Instant::now();
        let mut r = Reorder::new(4, Duration::from_secs(10));
        let mut out = VecDeque::new();
        push(&mut r, t0, 0, &mut out);
        for s in 2..=4 {
            push(&mut r, t0, s, &mut out);
        }
        assert_eq!(seqs(&mut out), [0]);
        // 5 does not fit behind the gap at 1: 1 is given up.
        push(&mut r, t0, 5, &mut out);
        assert_eq!(seqs(&mut out), [2, 3, 4, 5]);
        assert!(r.held() <= 4);
    }

    #[test]
    fn zero_window_releases_at_once() {
        let t0 = Instant::now();
        let mut r = Reorder::new(64, Duration::ZERO);
        let mut out = VecDeque::new();
        push(&mut r, t0, 0, &mut out);
        push(&mut r, t0, 2, &mut out);
        assert_eq!(seqs(&mut out), [0, 2]);
        assert_eq!(push(&mut r, t0, 1, &mut out), Admitted::Late);
    }

    #[test]
    fn a_new_sequence_is_taken_after_two_packets() {
        let t0 = Instant::now();
        let mut r = Reorder::new(64, Duration::from_millis(100));
        let mut out = VecDeque::new();
        push(&mut r, t0, 100, &mut out);
        assert_eq!(push(&mut r, t0, 40000, &mut out), Admitted::Stray);
        assert_eq!(push(&mut r, t0, 101, &mut out), Admitted::New);
        assert_eq!(push(&mut r, t0, 30000, &mut out), Admitted::Stray);
        assert_eq!(push(&mut r, t0, 30001, &mut out), Admitted::New);
        assert_eq!(seqs(&mut out), [100, 101, 30001]);
    }

    #[test]
    fn memory_stays_bounded_under_any_arrivals() {
        let t0 = Instant::now();
        let mut r = Reorder::new(32, Duration::from_secs(3600));
        let mut out = VecDeque::new();
        let mut x: u32 = 12345;
        for i in 0..100_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let seq = ((x >> 8) as u16).wrapping_add(i as u16);
            push(&mut r, t0, seq, &mut out);
            out.clear();
            assert!(r.slots.len() <= 32 && r.held() <= 32);
        }
    }
}
