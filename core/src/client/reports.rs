//! What a track's receiver knows for its RTCP receiver reports (RFC 3550
//! §6.4.2, appendices A.3 and A.8), and when reports go out (§6.2, A.7).
//!
//! Counting follows the packets the track *delivers* (after the reorder
//! buffer on UDP): each sequence number counts once, so the cumulative loss
//! reported is exactly the sum of the track's `Loss` events. Jitter is
//! measured on arrival, in arrival order, as the RFC defines it.

use std::time::{Duration, Instant};

use crate::rtcp::ReportBlock;

/// Per-track reception statistics.
#[derive(Debug, Clone, Default)]
pub(super) struct Reception {
    /// The media sender's SSRC (of the last packet delivered).
    pub(super) sender_ssrc: Option<u32>,
    /// Extended sequence number of the first packet delivered.
    base: Option<u64>,
    /// Highest extended sequence number delivered.
    max_ext: u64,
    /// Packets delivered.
    pub(super) received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Last transit time (RTP units, wrapping) for the jitter estimate.
    transit: Option<u32>,
    /// Interarrival jitter estimate, in RTP units ×16 (A.8's integer form).
    jitter16: u64,
    /// Middle 32 bits of the last SR's NTP timestamp, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl Reception {
    /// A packet with RTP timestamp `ts` arrived `arrival` after session
    /// start, on a track of `clock_rate` Hz (jitter, in arrival order).
    pub(super) fn on_arrival(&mut self, arrival: Duration, ts: u32, clock_rate: u32) {
        let units = (arrival.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64 as u32;
        let transit = units.wrapping_sub(ts);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // J += (|D| - J) / 16, kept ×16: J16 += |D| - J16/16.
            self.jitter16 = self.jitter16 + d - (self.jitter16 + 8) / 16;
        }
        self.transit = Some(transit);
    }

    /// A packet with sequence number `seq` and SSRC `ssrc` was delivered.
    pub(super) fn on_delivered(&mut self, seq: u16, ssrc: u32) {
        self.sender_ssrc = Some(ssrc);
        self.received += 1;
        match self.base {
            None => {
                self.base = Some(u64::from(seq));
                self.max_ext = u64::from(seq);
            }
            Some(_) => {
                let max = self.max_ext as u16;
                let ahead = seq.wrapping_sub(max);
                if ahead != 0 && ahead < 0x8000 {
                    let cycles = self.max_ext & !0xffff;
                    let cycles = if seq < max { cycles + 0x1_0000 } else { cycles };
                    self.max_ext = cycles | u64::from(seq);
                }
            }
        }
    }

    /// The sender started a new sequence: the counts start again (the
    /// jitter estimate and the last sender report stay).
    pub(super) fn restart(&mut self) {
        self.base = None;
        self.max_ext = 0;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }

    /// A later PLAY was answered: the next packet's transit time is not
    /// compared with the last one's (a pause or a seek moves the media
    /// timeline against arrival; that is not jitter).
    pub(super) fn resync(&mut self) {
        self.transit = None;
    }

    /// A sender report with NTP timestamp `ntp` arrived at `at`.
    pub(super) fn on_sender_report(&mut self, ntp: u64, at: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, at));
    }

    /// Packets expected so far (from the first to the highest delivered).
    pub(super) fn expected(&self) -> u64 {
        self.base.map_or(0, |b| self.max_ext + 1 - b)
    }

    /// Packets lost so far (never negative: each sequence number counts once).
    pub(super) fn cumulative_lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// The interarrival jitter, in RTP timestamp units.
    pub(super) fn jitter(&self) -> u32 {
        (self.jitter16 / 16).min(u64::from(u32::MAX)) as u32
    }

    /// The report block for a report sent at `now`, and the interval
    /// counters moved on; `None` before the first packet.
    pub(super) fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let ssrc = self.sender_ssrc?;
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior.min(expected);
        let received_interval = self.received - self.received_prior.min(self.received);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                let units = (d.as_nanos() * 65536 / 1_000_000_000).min(u128::from(u32::MAX)) as u32;
                (lsr, units)
            }
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().min(0x7f_ffff) as i32,
            highest_sequence: self.max_ext as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// The deterministic part of the RTCP interval (RFC 3550 §6.2, A.7) for a
/// receiver among `members` (itself and the senders) in a session of
/// `bandwidth` bits per second (the SDP's `b=AS`), sending compound packets
/// of `avg_size` bytes: receivers share 75 % of the 5 % of the session
/// bandwidth given to RTCP, and the interval is never below 5 s (2.5 s for
/// the first report).
pub(super) fn report_interval(initial: bool, bandwidth: Option<u64>, members: usize, avg_size: usize) -> Duration {
    let t_min = if initial { 2.5 } else { 5.0 };
    let computed = match bandwidth {
        Some(bw) if bw > 0 => {
            let rtcp_bw = bw as f64 / 8.0 * 0.05 * 0.75;
            avg_size as f64 * members.max(1) as f64 / rtcp_bw
        }
        _ => 0.0,
    };
    Duration::from_secs_f64(computed.max(t_min))
}

/// The interval randomized to [0.5, 1.5] of itself and divided by
/// e − 3/2 (RFC 3550 §6.3.1's compensation for timer reconsideration),
/// with `unit` a random number in [0, 1).
pub(super) fn randomized(interval: Duration, unit: f64) -> Duration {
    const COMPENSATION: f64 = std::f64::consts::E - 1.5;
    interval.mul_f64((0.5 + unit.clamp(0.0, 1.0)) / COMPENSATION)
}

/// FNV-1a over `bytes`, to seed the session's generator from its own inputs
/// (so that a replay draws the same numbers).
pub(super) fn seed_of(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_and_extends_the_sequence_across_the_wrap() {
        let t0 = Instant::now();
        let mut r = Reception::default();
        for s in [65533u16, 65534, 1, 2] {
            r.on_delivered(s, 7);
        }
        assert_eq!(r.expected(), 6);
        assert_eq!(r.cumulative_lost(), 2);
        let b = r.report_block(t0).unwrap();
        assert_eq!(b.highest_sequence, 0x1_0002);
        assert_eq!(b.fraction_lost, (2 * 256 / 6) as u8);
        assert_eq!(b.cumulative_lost, 2);
        // Next interval: nothing lost.
        r.on_delivered(3, 7);
        assert_eq!(r.report_block(t0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn jitter_of_a_steady_stream_is_zero_and_of_a_jittered_one_is_not() {
        let mut r = Reception::default();
        for i in 0..100u32 {
            r.on_arrival(Duration::from_millis(20 * u64::from(i)), 1000 + 160 * i, 8000);
        }
        assert_eq!(r.jitter(), 0);
        // Every other packet 10 ms late: |D| = 80 units each time; J → 80.
        for i in 100..400u32 {
            let late = if i % 2 == 0 { 10 } else { 0 };
            r.on_arrival(Duration::from_millis(20 * u64::from(i) + late), 1000 + 160 * i, 8000);
        }
        assert!((75..=80).contains(&r.jitter()), "{}", r.jitter());
    }

    #[test]
    fn delay_since_last_sr_is_in_65536ths() {
        let t0 = Instant::now();
        let mut r = Reception::default();
        r.on_delivered(1, 9);
        r.on_sender_report(0x1234_5678_9abc_def0, t0);
        let b = r.report_block(t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(b.last_sr, 0x5678_9abc);
        assert_eq!(b.delay_since_last_sr, 32768);
    }

    #[test]
    fn interval_has_the_rfc_minimum_and_grows_on_thin_links() {
        assert_eq!(report_interval(true, None, 2, 100), Duration::from_millis(2500));
        assert_eq!(report_interval(false, Some(4_000_000), 2, 100), Duration::from_secs(5));
        // 8 kb/s: RTCP gets 37.5 B/s for receivers; 2 members × 100 B → 5.33 s.
        let t = report_interval(false, Some(8000), 2, 100);
        assert!(t > Duration::from_secs(5) && t < Duration::from_secs(6), "{t:?}");
        let lo = randomized(Duration::from_secs(5), 0.0);
        let hi = randomized(Duration::from_secs(5), 0.999_999);
        assert!(
            lo > Duration::from_secs(2) && hi < Duration::from_millis(6200),
            "{lo:?} {hi:?}"
        );
    }
}
