//! Relays: a live path fed by our own client pulling an upstream URL (a
//! camera, another server) once, for any number of readers
//! (`docs/ARCHITECTURE.md`, "Relays"). The relay publishes the upstream's
//! presentation as a live path (the `live` module) and hands every RTP packet
//! the client receives to the path's readers; the readers' side is exactly a
//! published path's.
//!
//! When the upstream session ends or cannot be opened, the relay opens it
//! again after a back-off (0.5 s, doubling to 30 s; back to 0.5 s once media
//! flowed). The path stays live across a reconnect that comes within
//! [`RELAY_GRACE`] and announces the same tracks, so readers stay connected
//! and see a clean discontinuity (each upstream session is a new source to
//! them: new numbering from where theirs was, timestamps moved on by the
//! wall-clock time between; a video track resumes at a keyframe). Past the
//! grace, or when the tracks changed, the path ends (its readers get SR +
//! BYE) and is published again once the upstream is back.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rtsp_toolkit_core::client::{ClientOptions, Event, LogKinds, Transport};
use rtsp_toolkit_core::message::Method;
use rtsp_toolkit_core::server::live::announced_source;
use rtsp_toolkit_core::server::ServerEvent;
use rtsp_toolkit_core::stop::StopSignal;

use super::live::Publication;
use super::{log_event, ConnectionIo, RelaySource, ServerState};

/// How long a path stays live while its upstream is reconnected.
pub const RELAY_GRACE: Duration = Duration::from_secs(10);
/// The first back-off before opening the upstream again.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One relayed path: its name and the upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RelaySpec {
    /// The path readers ask for (`cam1`, `site/door`).
    pub name: String,
    /// The upstream `rtsp://` or `rtsps://` URL (credentials in it are used,
    /// never logged).
    pub url: String,
    /// How the relay's client takes the upstream's RTP (default TCP
    /// interleaved; UDP, multicast or `Auto` as the client offers them).
    #[cfg_attr(feature = "serde", serde(default))]
    pub transport: Transport,
}

impl RelaySpec {
    /// `NAME=URL`, as `serve --relay` takes it.
    pub fn parse(s: &str) -> Result<RelaySpec, String> {
        let (name, url) = s.split_once('=').ok_or("expected NAME=URL")?;
        let name = name.trim().trim_matches('/');
        if name.is_empty() || name.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(format!("bad relay name {name:?}: a path such as cam1 or site/door"));
        }
        if name.chars().any(|c| c.is_control() || c == '?' || c == '#' || c == ' ') {
            return Err(format!(
                "bad relay name {name:?}: no spaces, ?, # or control characters"
            ));
        }
        let url = url.trim();
        if !(url.starts_with("rtsp://") || url.starts_with("rtsps://")) {
            return Err(format!("bad relay URL {}: rtsp:// or rtsps://", without_userinfo(url)));
        }
        Ok(RelaySpec {
            name: name.to_owned(),
            url: url.to_owned(),
            transport: Transport::Tcp,
        })
    }
}

/// `url` without its user info (for logs).
pub fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// The relay's client options: packets only (no frames are assembled), over
/// the spec's transport.
fn client_options(spec: &RelaySpec) -> ClientOptions {
    ClientOptions::default()
        .with_assemble_frames(false)
        .with_transport(spec.transport)
        // The relay reports its upstream's end itself (`ServerEvent::Upstream` and one warning).
        .with_log(LogKinds::NONE)
}

/// The relay task of `spec`, until the server stops.
pub(crate) async fn run<C: ConnectionIo + 'static>(state: Arc<ServerState>, spec: RelaySpec) {
    let shown = without_userinfo(&spec.url);
    let mut backoff = BACKOFF_MIN;
    // The path, kept across reconnects within the grace.
    let mut publication: Option<Publication> = None;
    let mut down_since: Option<Instant> = None;
    let mut generation = 0u32;
    while !state.stop.is_stopped() {
        generation = generation.wrapping_add(1);
        let (flowed, reason) = match C::Relay::open(&spec.url, client_options(&spec), state.stop.clone()) {
            Ok(source) => pull(&state, &spec, source, &mut publication, generation, down_since).await,
            Err(e) => (false, e),
        };
        if state.stop.is_stopped() {
            break;
        }
        let now = Instant::now();
        if flowed {
            backoff = BACKOFF_MIN;
            down_since = Some(now);
        }
        let since = *down_since.get_or_insert(now);
        tracing::warn!(
            path = spec.name.as_str(),
            upstream = shown.as_str(),
            reason = reason.as_str(),
            retry_in = ?backoff,
            "relay upstream lost"
        );
        log_event(
            &state,
            None,
            &ServerEvent::Upstream {
                path: spec.name.clone(),
                up: false,
                reason: Some(reason),
            },
        );
        let wake = now + backoff;
        if publication.is_some() && wake.saturating_duration_since(since) > RELAY_GRACE {
            tracing::info!(
                path = spec.name.as_str(),
                "relay upstream down past the grace: the path ends"
            );
            publication = None;
        }
        if !sleep_unless_stopped::<C>(&state.stop, wake).await {
            break;
        }
        if publication.is_some() && Instant::now().saturating_duration_since(since) > RELAY_GRACE {
            publication = None;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    drop(publication);
}

/// One upstream session: publishes (or keeps) the path at its DESCRIBE,
/// hands every packet on. Returns whether media flowed, and why it ended.
async fn pull<R: RelaySource>(
    state: &Arc<ServerState>,
    spec: &RelaySpec,
    mut source: R,
    publication: &mut Option<Publication>,
    generation: u32,
    down_since: Option<Instant>,
) -> (bool, String) {
    // Set-up track index → announced track.
    let mut map: Vec<Option<usize>> = Vec::new();
    let mut controls: Vec<usize> = Vec::new();
    let mut flowed = false;
    loop {
        let event = {
            let mut stopped = pin!(state.stop.stopped());
            poll_fn(|cx| {
                if stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                source.poll_event(cx).map(Some)
            })
            .await
        };
        let Some(event) = event else {
            return (flowed, "the server stops".into());
        };
        let Some(event) = event else {
            return (flowed, "the upstream session ended".into());
        };
        match event {
            Event::Method(m) if m.method == Method::Describe && m.status == 200 => {
                let announced = match announced_source(&m.body) {
                    Ok(a) => a,
                    Err(e) => return (flowed, format!("the upstream's SDP: {e}")),
                };
                controls = announced.controls.iter().map(|(section, _)| *section).collect();
                let same = publication
                    .as_ref()
                    .is_some_and(|p| p.source().tracks == announced.source.tracks);
                if !same {
                    *publication = None;
                    match state.live.publish(spec.name.clone(), announced.source.clone()) {
                        Ok(p) => *publication = Some(p),
                        Err(e) => return (flowed, e),
                    }
                }
                if let Some(since) = down_since {
                    // The end of the warnings of its loss.
                    tracing::warn!(path = spec.name.as_str(), down_for = ?since.elapsed(), "relay upstream back");
                }
                log_event(
                    state,
                    None,
                    &ServerEvent::Upstream {
                        path: spec.name.clone(),
                        up: true,
                        reason: None,
                    },
                );
            }
            Event::Method(m) if m.method == Method::Setup && m.status == 200 => {
                if let Some(track) = &m.track {
                    if map.len() <= track.index {
                        map.resize(track.index + 1, None);
                    }
                    map[track.index] = controls.iter().position(|s| *s == track.media_index);
                }
            }
            Event::Rtp(r) => {
                if let (Some(Some(j)), Some(p)) = (map.get(r.track), publication.as_ref()) {
                    let mut packet = r.packet;
                    // Each upstream session is a source of its own to the readers.
                    packet.ssrc ^= generation.rotate_left(16);
                    p.send(*j, &packet);
                    flowed = true;
                }
            }
            Event::Closed(c) => {
                let why = c
                    .error
                    .map_or_else(|| "the upstream ended the stream".to_owned(), |e| e.to_string());
                return (flowed, why);
            }
            _ => {}
        }
    }
}

/// Sleeps until `at`; false when the server stopped first.
async fn sleep_unless_stopped<C: ConnectionIo>(stop: &StopSignal, at: Instant) -> bool {
    let mut stopped = pin!(stop.stopped());
    let mut sleep = pin!(C::sleep_until(at));
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        sleep.as_mut().poll(cx).map(|()| true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_urls_lose_their_credentials() {
        let s = RelaySpec::parse("cam1=rtsp://u:p@10.0.0.5:554/stream1").unwrap();
        assert_eq!(
            (s.name.as_str(), s.url.as_str()),
            ("cam1", "rtsp://u:p@10.0.0.5:554/stream1")
        );
        assert_eq!(RelaySpec::parse("/site/door/=rtsps://h/x").unwrap().name, "site/door");
        for bad in [
            "cam1",
            "=rtsp://h/x",
            "a/../b=rtsp://h/x",
            "a b=rtsp://h/x",
            "cam=http://h/x",
            "c?d=rtsp://h/",
        ] {
            assert!(RelaySpec::parse(bad).is_err(), "{bad}");
        }
        assert!(!RelaySpec::parse("cam=http://u:secret@h/x")
            .unwrap_err()
            .contains("secret"));
        assert_eq!(without_userinfo("rtsp://u:p@h:554/a@b"), "rtsp://h:554/a@b");
        assert_eq!(without_userinfo("rtsp://h/a@b"), "rtsp://h/a@b");
    }
}
