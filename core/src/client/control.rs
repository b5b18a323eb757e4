//! The user's PAUSE and later PLAYs ([`Input::Pause`](super::Input::Pause),
//! [`Input::Play`](super::Input::Play)): when they may be sent, what their
//! answers change (the phase; each track's expected sequence number from
//! `RTP-Info`), and the warnings when they cannot be sent or are refused.
//!
//! The rules (`docs/ARCHITECTURE.md`, control inputs): PAUSE only while
//! playing, PLAY while playing (a seek) or paused (resume or seek), one of
//! them unanswered at a time. Anything else is a [`Warning::Control`] and
//! nothing is sent; a refusal by the server is one too, and the session
//! goes on as it was. What it is not: the first PLAY (`session.rs`).

use std::time::Instant;

use super::{Client, Event, Inflight, Phase, PlayRange, Scale, Warning};
use crate::message::{Headers, Method, Response};

impl Client {
    /// The user asked for `method` (PAUSE, or PLAY with `range` and `scale`).
    pub(super) fn on_control(&mut self, now: Instant, method: Method, range: PlayRange, scale: Option<Scale>) {
        let refuse = |reason: String| {
            Event::Warning(Warning::Control {
                method: method.clone(),
                status: None,
                reason,
            })
        };
        let allowed = match method {
            Method::Pause => self.phase == Phase::Playing,
            _ => matches!(self.phase, Phase::Playing | Phase::Paused),
        };
        let reason = if self.phase == Phase::Closed {
            // The session is over: nothing more is reported.
            return;
        } else if !allowed {
            Some(match self.phase {
                Phase::Paused => "the session is paused already".to_owned(),
                Phase::TearingDown => "the session is ending".to_owned(),
                _ => format!(
                    "the session is not playing yet (waiting for the {} response)",
                    self.phase_method()
                ),
            })
        } else if let Some(f) = self.inflight.iter().find(|f| f.control) {
            Some(format!("the {} asked for before is still unanswered", f.request.method))
        } else {
            range.check().err()
        };
        if let Some(reason) = reason {
            tracing::debug!(%method, %reason, "control request not sent");
            return self.events.push_back(refuse(reason));
        }
        let mut headers = Headers::new();
        if method == Method::Play {
            if let Some(r) = range.header() {
                headers.push("Range", r);
            }
            if let Some(s) = scale {
                headers.push("Scale", format!("{}", s.get()));
            }
        }
        let url = self.aggregate_url();
        if method == Method::Play {
            for t in &mut self.tracks {
                t.set_seek_pending(true);
            }
        }
        self.send(now, method, url, headers, false);
        if let Some(f) = self.inflight.back_mut() {
            f.control = true;
        }
    }

    /// The answer to the user's PAUSE or PLAY (its `Method` event is queued).
    pub(super) fn on_control_response(&mut self, now: Instant, inflight: &Inflight, resp: &Response) {
        let method = inflight.request.method.clone();
        if !(200..300).contains(&resp.status) {
            tracing::info!(%method, status = resp.status, "control request refused");
            for t in &mut self.tracks {
                t.set_seek_pending(false);
            }
            self.events.push_back(Event::Warning(Warning::Control {
                method,
                status: Some(resp.status),
                reason: resp.reason.clone(),
            }));
            return;
        }
        match method {
            Method::Pause if self.phase == Phase::Playing => {
                // The UDP fallback's wait for a first packet (if still
                // armed) is looked at only while playing; the resume re-arms it.
                self.phase = Phase::Paused;
            }
            Method::Play if matches!(self.phase, Phase::Playing | Phase::Paused) => {
                let rtp_info = resp.headers.get("RTP-Info").map(parse_rtp_info).unwrap_or_default();
                self.resync_tracks(&rtp_info);
                if self.phase == Phase::Paused && self.udp.fallback_at.is_some() {
                    let wait = self.opts.udp_fallback_after.min(self.opts.timeout);
                    self.udp.fallback_at = Some(now + wait);
                }
                if let Some(p) = self.pacer.as_mut() {
                    // The backchannel stopped with the media: no burst to catch up.
                    p.resume(now);
                }
                self.phase = Phase::Playing;
                self.last_data = now;
            }
            _ => {}
        }
    }

    /// A later PLAY was answered: each track expects the sequence number its
    /// `RTP-Info` entry names (none: the next packet starts the count), so
    /// the jump of a seek is not loss.
    fn resync_tracks(&mut self, rtp_info: &[RtpInfo]) {
        let single = self.tracks.len() == 1 && rtp_info.len() == 1;
        let log = self.opts.log;
        let start = self.start;
        let mut released = std::mem::take(&mut self.udp.released);
        for t in &mut self.tracks {
            let entry = rtp_info
                .iter()
                .find(|e| single || e.url.as_deref().is_some_and(|u| same_track(u, &t.track.control_url)));
            let seq = entry.and_then(|e| e.seq);
            t.resync(start, seq, log, &mut self.events, &mut released);
        }
        self.udp.released = released;
    }
}

/// One entry of an `RTP-Info` header (RFC 2326 §12.33).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RtpInfo {
    pub(super) url: Option<String>,
    pub(super) seq: Option<u16>,
    pub(super) rtptime: Option<u32>,
}

/// The entries of an `RTP-Info` value; fields that do not parse are left
/// out (total: any text gives a list, at most 64 entries).
pub(super) fn parse_rtp_info(value: &str) -> Vec<RtpInfo> {
    value
        .split(',')
        .take(64)
        .map(|entry| {
            let mut info = RtpInfo::default();
            for p in entry.split(';') {
                let p = p.trim();
                if let Some(u) = p.strip_prefix("url=") {
                    info.url = Some(u.trim().trim_matches('"').to_owned());
                } else if let Some(v) = p.strip_prefix("seq=") {
                    info.seq = v.trim().parse().ok();
                } else if let Some(v) = p.strip_prefix("rtptime=") {
                    info.rtptime = v.trim().parse().ok();
                }
            }
            info
        })
        .filter(|i| i.url.is_some() || i.seq.is_some())
        .collect()
}

/// Whether an `RTP-Info` url names the track at `control`: equal, or one
/// is the end of the other after a `/` (servers give absolute or relative
/// URLs).
fn same_track(url: &str, control: &str) -> bool {
    let (a, b) = (url.trim_end_matches('/'), control.trim_end_matches('/'));
    a == b || a.ends_with(&format!("/{b}")) || b.ends_with(&format!("/{a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_info_parses_and_matches() {
        let v = parse_rtp_info("url=rtsp://h/a.mp4/trackID=0;seq=7;rtptime=90000, url=trackID=1;seq=x;rtptime=5");
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            RtpInfo {
                url: Some("rtsp://h/a.mp4/trackID=0".into()),
                seq: Some(7),
                rtptime: Some(90000)
            }
        );
        assert_eq!((v[1].seq, v[1].rtptime), (None, Some(5)));
        assert!(same_track("trackID=1", "rtsp://h/a.mp4/trackID=1"));
        assert!(same_track("rtsp://h/a.mp4/trackID=0", "rtsp://h/a.mp4/trackID=0"));
        assert!(!same_track("trackID=1", "rtsp://h/a.mp4/trackID=11"));
        assert!(parse_rtp_info("").is_empty() && parse_rtp_info(";;,,").is_empty());
    }
}
