//! Per-track receiving: one [`TrackState`] per set-up track holds what the
//! track is (its [`Track`]), its sequence and timestamp tracking, its
//! depacketizer, and whether the server ended it with an RTCP BYE. RTP and
//! RTCP of the track go in; events come out, in the order a user sees them.
//!
//! On UDP, packets pass the track's reorder buffer first; every delivered
//! packet is counted for the receiver reports (`reports.rs`).
//!
//! What it is not: it does not know which channel or socket a packet came
//! from (the session machine routes packets to tracks), and it sends nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::reorder::{Admitted, Released, Reorder};
use super::reports::Reception;
use super::{
    AudioFrameEvent, Event, LogKinds, LossEvent, MetadataFrameEvent, RtcpEvent, RtpEvent, Track, TrackStats,
    TransportKind, VideoFrameEvent, Warning,
};
use crate::codec::{sps, Depacketizer, Frame, SequenceTracker, TimestampUnroller};
use crate::rtcp::{self, RtcpPacket};
use crate::rtp::RtpPacket;

/// One set-up track and its receive state.
#[derive(Debug)]
pub(super) struct TrackState {
    pub(super) track: Track,
    sequence: SequenceTracker,
    timeline: TimestampUnroller,
    /// `None` when frames are not assembled (option off, or no depacketizer for the codec).
    depacketizer: Option<Depacketizer>,
    /// The server sent an RTCP BYE on this track since PLAY was answered.
    pub(super) bye: bool,
    /// UDP and multicast: packets in sequence order.
    reorder: Option<Reorder>,
    pub(super) reception: Reception,
    duplicates: u64,
    late: u64,
    /// RTP packets delivered to the session (the reorder buffer passed).
    delivered: u64,
    /// A PLAY of the user's is unanswered: the server may jump before its
    /// answer comes (GStreamer sends the new position first), so the next
    /// jump in sequence is the seek's, not loss.
    seek_pending: bool,
    /// The picture size of the last SPS a video frame brought.
    resolution: Option<(u32, u32)>,
    /// The last delivered packet's SSRC, RTP timestamp and arrival, for
    /// [`Warning::TimestampJump`].
    last_stamp: Option<(u32, u32, Duration)>,
}

/// How far (in seconds) an RTP timestamp may move, forward or back, beyond
/// the time that passed between two arrivals before it is a
/// [`Warning::TimestampJump`]: far above B-frame reordering (tens of
/// milliseconds) and a camera's frame interval, far below the jumps of
/// broken encoders and DVRs (seconds to hours).
const TIMESTAMP_JUMP_S: f64 = 1.0;

impl TrackState {
    pub(super) fn new(track: Track, depacketizer: Option<Depacketizer>, reorder: Option<Reorder>) -> TrackState {
        TrackState {
            track,
            sequence: SequenceTracker::new(),
            timeline: TimestampUnroller::new(),
            depacketizer,
            bye: false,
            reorder,
            reception: Reception::default(),
            duplicates: 0,
            late: 0,
            delivered: 0,
            seek_pending: false,
            resolution: None,
            last_stamp: None,
        }
    }

    /// The channel number RTP events of this track carry: the interleaved
    /// channel over TCP; over UDP, the channel it would have had (`2 × index`),
    /// so that RTP and RTCP stay apart the same way.
    pub(super) fn rtp_channel(&self) -> u8 {
        match self.track.transport {
            TransportKind::TcpInterleaved { rtp_channel, .. } => rtp_channel,
            _ => (2 * self.track.index).min(254) as u8,
        }
    }

    /// The channel number RTCP events of this track carry (see [`TrackState::rtp_channel`]).
    pub(super) fn rtcp_channel(&self) -> u8 {
        match self.track.transport {
            TransportKind::TcpInterleaved { rtcp_channel, .. } => rtcp_channel,
            _ => self.rtp_channel() + 1,
        }
    }

    /// What the track received so far.
    pub(super) fn stats(&self) -> TrackStats {
        TrackStats {
            track: self.track.index,
            received: self.delivered,
            lost: self.sequence.total_lost(),
            duplicates: self.duplicates,
            late: self.late,
            jitter: self.reception.jitter(),
            clock_rate: self.track.clock_rate,
        }
    }

    /// When the reorder buffer gives up its oldest gap.
    pub(super) fn reorder_deadline(&self) -> Option<Instant> {
        self.reorder.as_ref().and_then(Reorder::deadline)
    }

    /// An RTP datagram on this track, at `now` (`start`: the session's
    /// start): through the reorder buffer, then [`TrackState::on_rtp`] for
    /// each packet released. Whether it was a new packet.
    pub(super) fn on_udp_rtp(
        &mut self,
        now: Instant,
        start: Instant,
        payload: Bytes,
        log: LogKinds,
        events: &mut VecDeque<Event>,
        released: &mut VecDeque<Released>,
    ) -> bool {
        let channel = self.rtp_channel();
        let recv_tick = now - start;
        // Not RTP (version 2, whole header): reported by on_rtp, unbuffered.
        let (Some(reorder), true) = (self.reorder.as_mut(), payload.len() >= 12 && payload[0] >> 6 == 2) else {
            self.on_rtp(channel, payload, recv_tick, Some(recv_tick), log, events);
            return true;
        };
        let seq = u16::from_be_bytes([payload[2], payload[3]]);
        let ts = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        let admitted = reorder.push(now, seq, payload, released);
        match admitted {
            Admitted::New => self.reception.on_arrival(recv_tick, ts, self.track.clock_rate),
            Admitted::Duplicate => self.duplicates += 1,
            Admitted::Late | Admitted::Stray => self.late += 1,
        }
        self.deliver(start, log, events, released);
        admitted == Admitted::New
    }

    /// Gives up the reorder buffer's gaps whose wait ended at `now`.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        start: Instant,
        log: LogKinds,
        events: &mut VecDeque<Event>,
        released: &mut VecDeque<Released>,
    ) {
        if let Some(r) = self.reorder.as_mut() {
            r.expire(now, released);
        }
        self.deliver(start, log, events, released);
    }

    /// Releases everything the reorder buffer holds (the stream ended).
    pub(super) fn flush(
        &mut self,
        start: Instant,
        log: LogKinds,
        events: &mut VecDeque<Event>,
        released: &mut VecDeque<Released>,
    ) {
        if let Some(r) = self.reorder.as_mut() {
            r.flush(released);
        }
        self.deliver(start, log, events, released);
    }

    fn deliver(
        &mut self,
        start: Instant,
        log: LogKinds,
        events: &mut VecDeque<Event>,
        released: &mut VecDeque<Released>,
    ) {
        let channel = self.rtp_channel();
        while let Some((packet, at)) = released.pop_front() {
            self.on_rtp(channel, packet, at - start, None, log, events);
        }
    }

    /// A later PLAY was answered (`control.rs`): the packets held before it
    /// are delivered, then the track expects `seq` next (`RTP-Info`; `None`:
    /// whatever comes), so the jump of a seek is not counted as loss.
    pub(super) fn resync(
        &mut self,
        start: Instant,
        seq: Option<u16>,
        log: LogKinds,
        events: &mut VecDeque<Event>,
        released: &mut VecDeque<Released>,
    ) {
        if let Some(r) = self.reorder.as_mut() {
            r.expect(seq, released);
        }
        self.deliver(start, log, events, released);
        self.seek_pending = false;
        self.sequence.expect(seq);
        self.reception.resync();
        // A PLAY's answer: the timeline may start anew (a seek).
        self.last_stamp = None;
    }

    /// A PLAY of the user's was sent (`seek`) or answered with a refusal:
    /// until its answer, the next jump in sequence is not loss.
    pub(super) fn set_seek_pending(&mut self, seek: bool) {
        self.seek_pending = seek;
    }

    /// An RTCP compound packet on this track; whether it held a BYE.
    ///
    /// A compound whose first packet comes from `own_ssrc` is our own report
    /// looped back (multicast on one host) and is ignored. A BYE ends the
    /// track only when it names the media sender's SSRC (as the RTP packets
    /// or the SETUP reply's `ssrc=` gave it), or any BYE while that SSRC is
    /// unknown: another receiver of a multicast group leaving must not end
    /// our session.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_rtcp(
        &mut self,
        now: Instant,
        channel: u8,
        payload: &Bytes,
        recv_tick: Duration,
        own_ssrc: u32,
        log: LogKinds,
        events: &mut VecDeque<Event>,
    ) -> bool {
        let track = self.track.index;
        match rtcp::parse_compound(payload) {
            Ok(packets) => {
                if packets.first().and_then(sender_ssrc) == Some(own_ssrc) {
                    return false;
                }
                if log.contains(LogKinds::RTCP) {
                    tracing::info!(track, packets = packets.len(), "rtcp");
                }
                let media_ssrc = self.reception.sender_ssrc.or(match self.track.transport {
                    TransportKind::Udp { ssrc, .. } | TransportKind::Multicast { ssrc, .. } => ssrc,
                    _ => None,
                });
                let bye = packets.iter().any(|p| match p {
                    RtcpPacket::Bye(b) => media_ssrc.is_none_or(|s| b.ssrcs.contains(&s)),
                    _ => false,
                });
                for p in &packets {
                    if let RtcpPacket::SenderReport(sr) = p {
                        self.reception.on_sender_report(sr.ntp_timestamp, now);
                    }
                }
                events.push_back(Event::Rtcp(RtcpEvent {
                    track,
                    channel,
                    packets,
                    recv_tick,
                }));
                bye
            }
            Err(e) => {
                events.push_back(Event::Warning(Warning::BadPacket {
                    track,
                    channel,
                    error: e.to_string(),
                }));
                false
            }
        }
    }

    /// An RTP packet on this track, in order: loss accounting, the packet
    /// event, then every frame it completed. `arrival`: measure jitter with
    /// this arrival time (packets not through a reorder buffer).
    pub(super) fn on_rtp(
        &mut self,
        channel: u8,
        payload: Bytes,
        recv_tick: Duration,
        arrival: Option<Duration>,
        log: LogKinds,
        events: &mut VecDeque<Event>,
    ) {
        let track = self.track.index;
        let packet = match RtpPacket::parse(payload) {
            Ok(p) => p,
            Err(e) => {
                events.push_back(Event::Warning(Warning::BadPacket {
                    track,
                    channel,
                    error: e.to_string(),
                }));
                return;
            }
        };
        if log.contains(LogKinds::RTP) {
            tracing::info!(
                track,
                seq = packet.sequence_number,
                ts = packet.timestamp,
                marker = packet.marker,
                len = packet.payload.len(),
                "rtp"
            );
        }
        if arrival.is_some() && !self.seek_pending {
            // Not through a reorder buffer (TCP, or UDP without one): a packet
            // already seen, or one behind it, is dropped here as the reorder
            // buffer drops it, before it could repeat a frame or break one.
            match self.sequence.behind(packet.sequence_number) {
                Some(1) => {
                    self.duplicates += 1;
                    return;
                }
                Some(_) => {
                    self.late += 1;
                    return;
                }
                None => {}
            }
        }
        if let Some(a) = arrival {
            self.reception.on_arrival(a, packet.timestamp, self.track.clock_rate);
        }
        self.delivered += 1;
        let seeking = self.seek_pending;
        if self.seek_pending && self.sequence.expect(Some(packet.sequence_number)) {
            // The server jumped before answering the PLAY: the seek, not loss.
            self.seek_pending = false;
        }
        let restarts = self.sequence.restarts();
        let lost = self.sequence.observe(packet.sequence_number);
        if self.sequence.restarts() != restarts {
            // The sender started a new sequence: count from here (RFC 3550 A.1).
            self.reception.restart();
        }
        self.reception.on_delivered(packet.sequence_number, packet.ssrc);
        if lost > 0 {
            events.push_back(Event::Loss(LossEvent {
                track,
                lost,
                sequence_number: packet.sequence_number,
                total_lost: self.sequence.total_lost(),
                recv_tick,
            }));
        }
        self.check_timestamp(&packet, recv_tick, seeking, events);
        let pushed = self.depacketizer.as_mut().map(|d| d.push(&packet, lost));
        events.push_back(Event::Rtp(RtpEvent {
            track,
            channel,
            packet,
            recv_tick,
        }));
        if let Some(Err(error)) = pushed {
            events.push_back(Event::Warning(Warning::Depacketize { track, error }));
        }
        self.emit_frames(recv_tick, events);
    }

    /// A [`Warning::TimestampJump`] when the RTP timestamp moved, from the
    /// packet before (same SSRC, no seek between), by more than
    /// [`TIMESTAMP_JUMP_S`] and by that much more or less than the time
    /// between their arrivals: a stall (nothing sent, then a burst) moves
    /// the timestamps little, a gap in sending moves them as much as the
    /// time, neither is a jump.
    fn check_timestamp(&mut self, p: &RtpPacket, recv_tick: Duration, seeking: bool, events: &mut VecDeque<Event>) {
        let Some((ssrc, ts, at)) = self.last_stamp.replace((p.ssrc, p.timestamp, recv_tick)) else {
            return;
        };
        if seeking || ssrc != p.ssrc || self.track.clock_rate == 0 {
            return;
        }
        let ticks = i64::from(p.timestamp.wrapping_sub(ts) as i32);
        let moved = ticks as f64 / f64::from(self.track.clock_rate);
        let waited = recv_tick.saturating_sub(at).as_secs_f64();
        if moved.abs() > TIMESTAMP_JUMP_S && (moved - waited).abs() > TIMESTAMP_JUMP_S {
            events.push_back(Event::Warning(Warning::TimestampJump {
                track: self.track.index,
                from: ts,
                to: p.timestamp,
                jump_ms: ticks * 1000 / i64::from(self.track.clock_rate),
            }));
        }
    }

    /// The sender's BYE on this track: a video frame whose end only a next
    /// timestamp would have shown (no marker bit) is complete. Not while
    /// the reorder buffer still holds packets that may belong to it.
    pub(super) fn end_of_stream(&mut self, recv_tick: Duration, events: &mut VecDeque<Event>) {
        if self.reorder.as_ref().is_some_and(|r| r.deadline().is_some()) {
            return;
        }
        if let Some(d) = self.depacketizer.as_mut() {
            d.end_of_stream();
        }
        self.emit_frames(recv_tick, events);
    }

    /// Every frame the depacketizer has ready, as events.
    fn emit_frames(&mut self, recv_tick: Duration, events: &mut VecDeque<Event>) {
        let track = self.track.index;
        let Some(d) = self.depacketizer.as_mut() else { return };
        while let Some(frame) = d.pull() {
            if let Frame::Video(v) = &frame {
                // A new SPS: the picture size may have changed (read only
                // from frames that bring parameter sets).
                if v.new_parameters {
                    if let Some(size) = sps::resolution(v.codec, &v.data) {
                        match self.resolution.replace(size) {
                            Some(from) if from != size => {
                                events.push_back(Event::Warning(Warning::ResolutionChange { track, from, to: size }))
                            }
                            _ => {}
                        }
                    }
                }
            }
            events.push_back(match frame {
                Frame::Video(frame) => Event::Video(VideoFrameEvent {
                    track,
                    extended_timestamp: self.timeline.extend(frame.timestamp),
                    frame,
                    recv_tick,
                }),
                Frame::Audio(frame) => Event::Audio(AudioFrameEvent {
                    track,
                    extended_timestamp: self.timeline.extend(frame.timestamp),
                    frame,
                    recv_tick,
                }),
                Frame::Metadata(frame) => Event::Metadata(MetadataFrameEvent {
                    track,
                    extended_timestamp: self.timeline.extend(frame.timestamp),
                    frame,
                    recv_tick,
                }),
            });
        }
    }
}

/// The SSRC of the sender of an RTCP packet (reports and SDES name it first).
fn sender_ssrc(p: &RtcpPacket) -> Option<u32> {
    match p {
        RtcpPacket::SenderReport(sr) => Some(sr.ssrc),
        RtcpPacket::ReceiverReport(rr) => Some(rr.ssrc),
        RtcpPacket::SourceDescription(chunks) => chunks.first().map(|c| c.ssrc),
        RtcpPacket::Bye(b) => b.ssrcs.first().copied(),
        _ => None,
    }
}
