//! Per-track receiving: one [`TrackState`] per set-up track holds what the
//! track is (its [`Track`]), its sequence and timestamp tracking, its
//! depacketizer, and whether the server ended it with an RTCP BYE. RTP and
//! RTCP of the track go in; events come out, in the order a user sees them.
//!
//! What it is not: it does not know which channel or socket a packet came
//! from (the session machine routes packets to tracks), and it sends nothing.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::{AudioFrameEvent, Event, LogKinds, LossEvent, RtcpEvent, RtpEvent, Track, VideoFrameEvent, Warning};
use crate::codec::{Depacketizer, Frame, SequenceTracker, TimestampUnroller};
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
}

impl TrackState {
    pub(super) fn new(track: Track, depacketizer: Option<Depacketizer>) -> TrackState {
        TrackState {
            track,
            sequence: SequenceTracker::new(),
            timeline: TimestampUnroller::new(),
            depacketizer,
            bye: false,
        }
    }

    /// An RTCP compound packet on this track; whether it held a BYE.
    pub(super) fn on_rtcp(
        &mut self,
        channel: u8,
        payload: &Bytes,
        recv_tick: Duration,
        log: LogKinds,
        events: &mut VecDeque<Event>,
    ) -> bool {
        let track = self.track.index;
        match rtcp::parse_compound(payload) {
            Ok(packets) => {
                if log.contains(LogKinds::RTCP) {
                    tracing::info!(track, packets = packets.len(), "rtcp");
                }
                let bye = packets.iter().any(|p| matches!(p, RtcpPacket::Bye(_)));
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

    /// An RTP packet on this track: loss accounting, the packet event, then
    /// every frame it completed.
    pub(super) fn on_rtp(
        &mut self,
        channel: u8,
        payload: Bytes,
        recv_tick: Duration,
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
        let lost = self.sequence.observe(packet.sequence_number);
        if lost > 0 {
            events.push_back(Event::Loss(LossEvent {
                track,
                lost,
                sequence_number: packet.sequence_number,
                total_lost: self.sequence.total_lost(),
                recv_tick,
            }));
        }
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
        let Some(d) = self.depacketizer.as_mut() else { return };
        while let Some(frame) = d.pull() {
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
            });
        }
    }
}
