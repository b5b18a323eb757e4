//! The packet side of a server session's tracks (`docs/ARCHITECTURE.md`,
//! "one file sample from disk to socket"): where a track's packets go
//! ([`Delivery`]), the buffer one pump writes into ([`Sink`]), and per track
//! the RTP state, the packetizer and the parameter sets in front of
//! keyframes ([`TrackOut`]), with the sender reports and BYE of the tracks.
//! The pacing that decides when a sample is due is `stream.rs`'s.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use super::clock::SplitMix64;
use super::fault_run::{FaultRun, Verdict};
use super::faults::{FaultEvent, Params, Quirk};
use super::sdp_writer::payload_type;
use super::{MulticastTrack, ServerOutput, UdpSocketId};
use crate::codec::{aac, g722, h264, h265, jpeg, l16, onvif_metadata, opus, sps, VideoCodec};
use crate::rtcp::{self, SenderReport};
use crate::rtp::{RtpHeader, FIXED_HEADER_LEN};
use crate::source::{MediaSource, SourceCodec, SourceSample};

/// BYE reason text.
const BYE_REASON: &str = "end of stream";

/// Where a track's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// `$`-framed on the RTSP connection, on these channels.
    Interleaved { rtp: u8, rtcp: u8 },
    /// As datagrams from the server's pair `pair` to the client's ports.
    Udp(UdpDelivery),
    /// Received from the path's multicast stream, which sends it (a member
    /// session's track: nothing is ever put for it here).
    Multicast(MulticastTrack),
}

/// A UDP track's pair and the client's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UdpDelivery {
    pub pair: u16,
    /// The server's RTP port (RTCP is the next one).
    pub server_port: u16,
    /// The client's RTP and RTCP addresses.
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

/// Where [`Session::pump`](super::stream::Session::pump) puts what it sends: interleaved frames into the
/// connection's byte stream (one write per wake-up), datagrams as one
/// [`ServerOutput::SendDatagram`] each, split off one scratch buffer.
pub(super) struct Sink<'a> {
    pub stream: &'a mut BytesMut,
    pub datagrams: &'a mut VecDeque<ServerOutput>,
    pub scratch: &'a mut BytesMut,
    /// Bytes put so far, both kinds (bounds one pump).
    pub bytes: usize,
    /// The camera simulator's faults of a unicast session, if any (their
    /// events go into `datagrams`, before the packets they concern).
    pub faults: Option<&'a mut FaultRun>,
}

/// Scratch space reserved at once for datagrams, so that a frame's packets
/// share a few allocations.
const DATAGRAM_CHUNK: usize = 64 * 1024;

impl<'a> Sink<'a> {
    /// A sink writing interleaved frames into `stream`, datagrams into
    /// `datagrams` (split off `scratch`), with the session's faults if any.
    pub fn new(
        stream: &'a mut BytesMut,
        datagrams: &'a mut VecDeque<ServerOutput>,
        scratch: &'a mut BytesMut,
        faults: Option<&'a mut FaultRun>,
    ) -> Sink<'a> {
        Sink {
            stream,
            datagrams,
            scratch,
            bytes: 0,
            faults,
        }
    }

    /// Writes one packet of `len` bytes with `write`: framed on `channel`
    /// for an interleaved track, or as a datagram to `to` from `socket`.
    fn put(&mut self, delivery: &Delivery, rtcp: bool, len: usize, write: impl FnOnce(&mut BytesMut)) {
        match delivery {
            Delivery::Interleaved {
                rtp: rtp_channel,
                rtcp: rtcp_channel,
            } => {
                let Ok(frame_len) = u16::try_from(len) else {
                    tracing::warn!(len, "packet does not fit in an interleaved frame; dropped");
                    return;
                };
                let out = &mut *self.stream;
                out.reserve(4 + len);
                out.put_u8(b'$');
                out.put_u8(if rtcp { *rtcp_channel } else { *rtp_channel });
                out.put_u16(frame_len);
                let at = out.len();
                write(out);
                debug_assert_eq!(out.len() - at, len);
                self.bytes += 4 + len;
            }
            Delivery::Udp(udp) => {
                if len > 65_507 {
                    tracing::warn!(len, "packet does not fit in a datagram; dropped");
                    return;
                }
                if self.scratch.capacity() < len {
                    self.scratch.reserve(len.max(DATAGRAM_CHUNK));
                }
                write(self.scratch);
                let data = self.scratch.split().freeze();
                self.bytes += data.len();
                self.datagrams.push_back(ServerOutput::SendDatagram {
                    socket: UdpSocketId { pair: udp.pair, rtcp },
                    to: if rtcp { udp.rtcp } else { udp.rtp },
                    data,
                });
            }
            Delivery::Multicast(_) => {
                // A member session never plays: the path's stream sends.
                tracing::trace!(len, "nothing is sent for a multicast member's track");
            }
        }
    }
}

/// Per-track RTP counters and identifiers.
#[derive(Debug)]
pub(super) struct Rtp {
    /// The track's index in the source (for the fault events).
    pub(super) track: usize,
    pub(super) ssrc: u32,
    pub(super) payload_type: u8,
    pub(super) next_seq: u16,
    pub(super) packets: u64,
    pub(super) octets: u64,
}

impl Rtp {
    /// Puts one RTP packet.
    pub(super) fn put(
        &mut self,
        delivery: &Delivery,
        sink: &mut Sink<'_>,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let mut marker = marker;
        if let Some(f) = sink.faults.as_deref_mut() {
            let verdict = f.before_rtp(
                self.track,
                &mut self.ssrc,
                &mut self.next_seq,
                timestamp,
                &mut marker,
                sink.datagrams,
            );
            if verdict == Verdict::Drop {
                // Sent, as far as the stream knows: lost on the way.
                self.next_seq = self.next_seq.wrapping_add(1);
                self.packets += 1;
                self.octets += payload.len() as u64;
                return;
            }
        }
        let header = RtpHeader {
            sequence_number: self.next_seq,
            timestamp,
            ssrc: self.ssrc,
            marker,
            payload_type: self.payload_type,
        };
        let mut copies = 1;
        if let Some(f) = sink.faults.as_deref_mut() {
            if f.duplicate(self.track, self.next_seq, timestamp, sink.datagrams) {
                copies = 2;
            }
        }
        for _ in 0..copies {
            sink.put(delivery, false, FIXED_HEADER_LEN + payload.len(), |out| {
                header.write(out);
                out.put_slice(payload);
            });
            if let (Delivery::Udp(_), Some(f)) = (delivery, sink.faults.as_deref_mut()) {
                f.after_datagram(self.track, self.next_seq, timestamp, sink.datagrams);
            }
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packets += 1;
        self.octets += payload.len() as u64;
    }
}

#[derive(Debug)]
pub(super) enum Packetizer {
    H264(h264::Packetizer),
    H265(h265::Packetizer),
    Aac(aac::Packetizer),
    /// One packet per sample, cut at this many bytes (= samples, 8 kHz mono).
    Pcma(usize),
    Jpeg(jpeg::Packetizer),
    /// ONVIF metadata: a document in fragments, the marker on the last.
    OnvifMetadata(onvif_metadata::Packetizer),
    Opus(opus::Packetizer),
    L16(l16::Packetizer),
    G722(g722::Packetizer),
}

/// One set-up track.
#[derive(Debug)]
pub(super) struct TrackOut {
    /// Index of the track in the source (the `N` of `trackID=N`).
    pub source_track: usize,
    pub delivery: Delivery,
    /// The Request-URI of its SETUP, for `RTP-Info`.
    pub url: String,
    pub clock_rate: u32,
    /// RTP timestamp of presentation time 0 in the first play-through.
    pub ts_base: u32,
    /// `ceil(D · clock_rate)`: how far each loop moves the timestamps.
    pub(super) loop_ticks: u64,
    /// The video parameter sets of the source (VPS, SPS, PPS), for the
    /// camera simulator's `params=inband`.
    pub(super) parameter_sets: Vec<Bytes>,
    /// The camera simulator's `resolution_change=`, once it is due: the
    /// parameter sets with the new SPS, in front of every keyframe.
    pub(super) resized_sets: Option<Vec<Bytes>>,
    pub(super) rtp: Rtp,
    pub(super) packetizer: Packetizer,
}

impl TrackOut {
    /// Source track `source_track` of `source`, delivered as `delivery`,
    /// and its SSRC: the SSRC, first sequence number and timestamp base are
    /// drawn from `rng` (`initial` replaces the last two; the draws happen
    /// either way, so the SSRCs do not depend on it).
    pub(super) fn new(
        source: &MediaSource,
        source_track: usize,
        delivery: Delivery,
        url: String,
        rng: &mut SplitMix64,
        max_payload: usize,
        initial: Option<(u16, u32)>,
    ) -> (TrackOut, u32) {
        let track = &source.tracks[source_track];
        let packetizer = match &track.codec {
            SourceCodec::H264 { .. } => Packetizer::H264(h264::Packetizer::new(max_payload)),
            SourceCodec::H265 { .. } => Packetizer::H265(h265::Packetizer::new(max_payload)),
            SourceCodec::Aac { .. } => Packetizer::Aac(aac::Packetizer::new(max_payload)),
            SourceCodec::Pcma => Packetizer::Pcma(max_payload),
            SourceCodec::Mjpeg => Packetizer::Jpeg(jpeg::Packetizer::new(max_payload)),
            SourceCodec::OnvifMetadata => Packetizer::OnvifMetadata(onvif_metadata::Packetizer::new(max_payload)),
            SourceCodec::Opus { .. } => Packetizer::Opus(opus::Packetizer::new(max_payload)),
            SourceCodec::L16 { channels } => Packetizer::L16(l16::Packetizer::new(*channels, max_payload)),
            SourceCodec::G722 => Packetizer::G722(g722::Packetizer::new(max_payload)),
        };
        let r = rng.next_u64();
        let ssrc = r as u32;
        let first_seq = (r >> 32) as u16;
        let ts_base = rng.next_u64() as u32;
        let (first_seq, ts_base) = initial.unwrap_or((first_seq, ts_base));
        let clock_rate = track.clock_rate.max(1);
        let out = TrackOut {
            source_track,
            delivery,
            url,
            clock_rate,
            ts_base,
            loop_ticks: ticks(source.duration, clock_rate, true),
            parameter_sets: match &track.codec {
                SourceCodec::H264 { sps, pps } => sps.iter().chain(pps).cloned().collect(),
                SourceCodec::H265 { vps, sps, pps } => vps.iter().chain(sps).chain(pps).cloned().collect(),
                _ => Vec::new(),
            },
            resized_sets: None,
            rtp: Rtp {
                track: source_track,
                ssrc,
                payload_type: payload_type(&track.codec),
                next_seq: first_seq,
                packets: 0,
                octets: 0,
            },
            packetizer,
        };
        (out, ssrc)
    }
}

impl TrackOut {
    /// The camera simulator's parameter sets in a video sample's NAL units
    /// (`nals`): from a keyframe on which `resolution_change=` fell due,
    /// every keyframe's own sets are replaced by the resized ones; else
    /// `params=` moves them (see [`place_parameter_sets`]).
    pub(super) fn arrange_parameter_sets(
        &mut self,
        codec: VideoCodec,
        keyframe: bool,
        nals: &mut Vec<Bytes>,
        out: &mut Sink<'_>,
    ) {
        let kind = match codec {
            VideoCodec::H264 => h264_kind,
            _ => h265_kind,
        };
        if keyframe && self.resized_sets.is_none() {
            self.resized_sets = resize(self.source_track, codec, &self.parameter_sets, nals, out);
        }
        match self.resized_sets.as_deref().filter(|_| keyframe) {
            Some(sets) => {
                nals.retain(|n| kind(n) != NalKind::ParameterSet);
                insert_after_delimiters(nals, sets, kind);
            }
            None => {
                let params = out.faults.as_deref().and_then(|f| f.spec.params);
                place_parameter_sets(nals, params, keyframe, &self.parameter_sets, kind);
            }
        }
    }

    pub(super) fn send(&mut self, sample: &SourceSample, loop_index: u32, out: &mut Sink<'_>, nals: &mut Vec<Bytes>) {
        let mut ts = self
            .ts_base
            .wrapping_add(sample.presentation_time as u32)
            .wrapping_add(self.loop_ticks.wrapping_mul(u64::from(loop_index)) as u32);
        if let Some(f) = out.faults.as_deref_mut() {
            // The camera simulator's `ts_jump=`: the timeline moves on at a
            // sample's start (every packet of a frame keeps one timestamp),
            // and the sender reports and a later RTP-Info move with it.
            if let Some(jump) = f.ts_jump_due(self.source_track, self.clock_rate) {
                self.ts_base = self.ts_base.wrapping_add(jump);
                let to = ts.wrapping_add(jump);
                let event = f.event(FaultEvent::TsJump {
                    track: self.source_track,
                    from: ts,
                    to,
                });
                out.datagrams.push_back(event);
                ts = to;
            }
        }
        // H.264/H.265: the sample's NAL units, with the parameter sets where
        // the camera simulator's `params=` and `resolution_change=` put them.
        let video = match self.packetizer {
            Packetizer::H264(_) => Some(VideoCodec::H264),
            Packetizer::H265(_) => Some(VideoCodec::H265),
            _ => None,
        };
        if let Some(codec) = video {
            split_length_prefixed(&sample.data, nals);
            self.arrange_parameter_sets(codec, sample.keyframe, nals, out);
        }
        let TrackOut {
            rtp,
            packetizer,
            delivery,
            ..
        } = self;
        // The camera simulator's `keyframe_gap=`: every packet of a video
        // keyframe due in the gap is dropped (a `drop` event each).
        if let Some(f) = out.faults.as_deref_mut() {
            f.dropping_keyframe = video.is_some() && sample.keyframe && f.keyframe_gap_on();
        }
        match packetizer {
            Packetizer::H264(p) => {
                for (payload, marker) in p.packetize(nals) {
                    rtp.put(delivery, out, ts, marker, &payload);
                }
            }
            Packetizer::H265(p) => {
                for (payload, marker) in p.packetize(nals) {
                    rtp.put(delivery, out, ts, marker, &payload);
                }
            }
            Packetizer::Aac(p) => {
                let payloads = p.packetize(&sample.data);
                let n = payloads.len();
                for (i, payload) in payloads.iter().enumerate() {
                    rtp.put(delivery, out, ts, i + 1 == n, payload);
                }
            }
            Packetizer::Pcma(max) => {
                // One byte per sample: a long sample becomes several packets
                // whose timestamps advance by their lengths.
                for (i, chunk) in sample.data.chunks(*max).enumerate() {
                    rtp.put(delivery, out, ts.wrapping_add((i * *max) as u32), false, chunk);
                }
            }
            Packetizer::Jpeg(p) => match p.packetize(&sample.data) {
                Ok(payloads) => {
                    let n = payloads.len();
                    for (i, payload) in payloads.iter().enumerate() {
                        rtp.put(delivery, out, ts, i + 1 == n, payload);
                    }
                }
                // File readers only give images the packetizer takes; skip one that is not.
                Err(e) => tracing::warn!(%e, "JPEG image not sent"),
            },
            Packetizer::OnvifMetadata(p) => {
                for (payload, marker) in p.packetize(&sample.data) {
                    rtp.put(delivery, out, ts, marker, &payload);
                }
            }
            Packetizer::Opus(p) => match p.packetize(&sample.data) {
                Ok((payload, _)) => rtp.put(delivery, out, ts, false, &payload),
                // The file reader checked the packets; one that still does
                // not fit is skipped, not cut (Opus is never fragmented).
                Err(e) => tracing::debug!(error = %e, "Opus packet not sent"),
            },
            Packetizer::L16(p) => {
                for (ticks, payload) in p.packetize(&sample.data) {
                    rtp.put(delivery, out, ts.wrapping_add(ticks), false, &payload);
                }
            }
            Packetizer::G722(p) => {
                for (ticks, payload) in p.packetize(&sample.data) {
                    rtp.put(delivery, out, ts.wrapping_add(ticks), false, &payload);
                }
            }
        }
        if let Some(f) = out.faults.as_deref_mut() {
            f.dropping_keyframe = false;
        }
        nals.clear();
    }

    /// Whether `from` is the client's RTP or RTCP address of this UDP track.
    pub fn is_client(&self, from: SocketAddr) -> bool {
        match &self.delivery {
            Delivery::Udp(udp) => from == udp.rtp || from == udp.rtcp,
            Delivery::Interleaved { .. } | Delivery::Multicast(_) => false,
        }
    }

    /// For `RTP-Info` of a session joining a running stream: the sequence
    /// number of the next packet and the RTP timestamp of `elapsed` after
    /// the start (the mapping the sender reports use).
    pub fn rtp_info_at(&self, elapsed: Duration) -> (u16, u32) {
        let ts = self.ts_base.wrapping_add(ticks(elapsed, self.clock_rate, false) as u32);
        (self.rtp.next_seq, ts)
    }

    pub fn ssrc(&self) -> u32 {
        self.rtp.ssrc
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.rtp.next_seq
    }

    /// RTP packets sent so far.
    pub fn packets_sent(&self) -> u64 {
        self.rtp.packets
    }

    /// Puts one compound RTCP packet (SR, SDES CNAME, and BYE when `bye`)
    /// on the track's RTCP channel or socket.
    pub(super) fn put_rtcp(&self, out: &mut Sink<'_>, ntp: u64, rtp_timestamp: u32, cname: &str, bye: bool) {
        let mut compound = BytesMut::with_capacity(128);
        if out.faults.as_deref().is_some_and(|f| f.spec.has(Quirk::NoSr)) {
            // The camera simulator's `no_sr`: an RTCP compound must start with
            // a report (RFC 3550 §6.1), so an empty RR takes the SR's place.
            if !bye {
                return;
            }
            rtcp::encode_receiver_report(
                &rtcp::ReceiverReport {
                    ssrc: self.rtp.ssrc,
                    reports: Vec::new(),
                },
                &mut compound,
            );
            rtcp::encode_sdes_cname(self.rtp.ssrc, cname, &mut compound);
            rtcp::encode_bye(&[self.rtp.ssrc], Some(BYE_REASON), &mut compound);
            out.put(&self.delivery, true, compound.len(), |o| o.put_slice(&compound));
            return;
        }
        // The camera simulator's `sr_offset=`: a wrong NTP/RTP mapping.
        let ntp = match out
            .faults
            .as_deref()
            .map(|f| f.sender_report_ntp(self.source_track, ntp))
        {
            Some((shifted, Some(event))) => {
                out.datagrams.push_back(event);
                shifted
            }
            _ => ntp,
        };
        let sr = SenderReport {
            ssrc: self.rtp.ssrc,
            ntp_timestamp: ntp,
            rtp_timestamp,
            // RFC 3550 counters wrap at 2^32.
            packet_count: self.rtp.packets as u32,
            octet_count: self.rtp.octets as u32,
            reports: Vec::new(),
        };
        rtcp::encode_sender_report(&sr, &mut compound);
        rtcp::encode_sdes_cname(self.rtp.ssrc, cname, &mut compound);
        if bye {
            rtcp::encode_bye(&[self.rtp.ssrc], Some(BYE_REASON), &mut compound);
        }
        // A few dozen bytes: always fits a frame and a datagram.
        out.put(&self.delivery, true, compound.len(), |o| o.put_slice(&compound));
    }
}

/// What an H.264 or H.265 NAL unit is, for [`place_parameter_sets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalKind {
    ParameterSet,
    AccessUnitDelimiter,
    Other,
}

fn h264_kind(nal: &[u8]) -> NalKind {
    match nal.first().map(|b| b & 0x1f) {
        Some(7 | 8) => NalKind::ParameterSet,
        Some(9) => NalKind::AccessUnitDelimiter,
        _ => NalKind::Other,
    }
}

fn h265_kind(nal: &[u8]) -> NalKind {
    match nal.first().map(|b| (b >> 1) & 0x3f) {
        Some(32..=34) => NalKind::ParameterSet,
        Some(35) => NalKind::AccessUnitDelimiter,
        _ => NalKind::Other,
    }
}

/// The camera simulator's `params=`: `sdp` takes the parameter sets out of
/// a sample's NAL units; `inband` puts `sets` in front of a keyframe's
/// (after an access unit delimiter) when it has none of its own.
fn place_parameter_sets(
    nals: &mut Vec<Bytes>,
    params: Option<Params>,
    keyframe: bool,
    sets: &[Bytes],
    kind: fn(&[u8]) -> NalKind,
) {
    match params {
        Some(Params::Sdp) => nals.retain(|n| kind(n) != NalKind::ParameterSet),
        Some(Params::Inband) if keyframe && !nals.iter().any(|n| kind(n) == NalKind::ParameterSet) => {
            insert_after_delimiters(nals, sets, kind);
        }
        _ => {}
    }
}

/// The camera simulator's `resolution_change=`, at a keyframe of `track`
/// (`nals`): when the change is due, the parameter sets (the source's,
/// else the keyframe's own) with the SPS rewritten to the new size, and the
/// `resolution_change` event goes out. An SPS that cannot be read or
/// resized leaves the stream as it is (`None`).
fn resize(
    track: usize,
    codec: VideoCodec,
    source_sets: &[Bytes],
    nals: &[Bytes],
    out: &mut Sink<'_>,
) -> Option<Vec<Bytes>> {
    let f = out.faults.as_deref_mut()?;
    if !f.resolution_change_due(track) {
        return None;
    }
    let kind = match codec {
        VideoCodec::H264 => h264_kind,
        _ => h265_kind,
    };
    let sets: Vec<Bytes> = if source_sets.iter().any(|s| !s.is_empty()) {
        source_sets.iter().filter(|s| !s.is_empty()).cloned().collect()
    } else {
        nals.iter()
            .filter(|n| kind(n) == NalKind::ParameterSet)
            .cloned()
            .collect()
    };
    let is_sps = |n: &[u8]| match codec {
        VideoCodec::H264 => n.first().is_some_and(|b| b & 0x1f == 7),
        _ => n.first().is_some_and(|b| (b >> 1) & 0x3f == 33),
    };
    let Some(old) = sets.iter().find(|n| is_sps(n)) else {
        tracing::debug!(track, "resolution_change: no SPS to change");
        return None;
    };
    let Ok(from) = sps::read(codec, old) else {
        tracing::debug!(track, "resolution_change: the SPS cannot be read");
        return None;
    };
    let (w, h) = f
        .spec
        .resolution_change
        .and_then(|(_, size)| size)
        .unwrap_or((from.width.div_ceil(2), from.height.div_ceil(2)));
    let new = match sps::with_size(codec, old, w, h) {
        Ok(new) => Bytes::from(new),
        Err(e) => {
            tracing::debug!(track, %e, w, h, "resolution_change: the SPS cannot take that size");
            return None;
        }
    };
    let to = sps::read(codec, &new).ok()?;
    let event = f.event(FaultEvent::ResolutionChange {
        track,
        from: (from.width, from.height),
        to: (to.width, to.height),
    });
    out.datagrams.push_back(event);
    Some(
        sets.into_iter()
            .map(|s| if is_sps(&s) { new.clone() } else { s })
            .collect(),
    )
}

/// `sets` put in front of a video sample's NAL units, after its access
/// unit delimiters (empty sets left out).
fn insert_after_delimiters(nals: &mut Vec<Bytes>, sets: &[Bytes], kind: fn(&[u8]) -> NalKind) {
    let at = nals
        .iter()
        .take_while(|n| kind(n) == NalKind::AccessUnitDelimiter)
        .count();
    nals.splice(at..at, sets.iter().filter(|s| !s.is_empty()).cloned());
}

/// `at + interval`, or `now + interval` when that has passed already.
pub(super) fn later_than(at: Instant, interval: Duration, now: Instant) -> Instant {
    at.checked_add(interval)
        .filter(|t| *t > now)
        .or_else(|| now.checked_add(interval))
        .unwrap_or(now)
}

/// Splits 4-byte-length-prefixed NAL units into views of `data` (no copy).
/// A truncated last unit is dropped.
pub(super) fn split_length_prefixed(data: &Bytes, nals: &mut Vec<Bytes>) {
    nals.clear();
    let mut off = 0;
    while data.len() - off >= 4 {
        let len = u32::from_be_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        off += 4;
        if len > data.len() - off {
            tracing::debug!(len, left = data.len() - off, "truncated NAL unit in sample; dropped");
            return;
        }
        nals.push(data.slice(off..off + len));
        off += len;
    }
}

/// `d` in units of `rate` per second, rounded down (or up when `ceil`).
pub(super) fn ticks(d: Duration, rate: u32, ceil: bool) -> u64 {
    let num = d.as_nanos() * u128::from(rate);
    let t = if ceil {
        num.div_ceil(1_000_000_000)
    } else {
        num / 1_000_000_000
    };
    t.min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_split_is_zero_copy_and_total() {
        let data = Bytes::from_static(&[0, 0, 0, 2, 0x67, 1, 0, 0, 0, 1, 0x68, 0, 0, 0, 9, 0x65]);
        let mut nals = Vec::new();
        split_length_prefixed(&data, &mut nals);
        assert_eq!(nals, [&[0x67, 1][..], &[0x68][..]]);
        assert_eq!(nals[0].as_ptr(), data[4..].as_ptr());
        for cut in 0..data.len() {
            split_length_prefixed(&data.slice(..cut), &mut nals);
            assert!(nals.len() <= 2);
        }
        split_length_prefixed(&Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]), &mut nals);
        assert!(nals.is_empty());
    }

    #[test]
    fn tick_rounding() {
        assert_eq!(ticks(Duration::from_millis(400), 90000, true), 36000);
        assert_eq!(ticks(Duration::from_nanos(1), 8000, true), 1);
        assert_eq!(ticks(Duration::from_nanos(1), 8000, false), 0);
        assert_eq!(ticks(Duration::MAX, u32::MAX, false), u64::MAX);
    }
}
