//! [`replay`]: a recorded session through a fresh [`Client`], the same
//! input loop a runtime runs, without sockets.

use std::time::Instant;

#[cfg(doc)]
use super::format::CaptureHeader;
use super::format::{Capture, CaptureError};
use crate::client::{Client, ClientOptions, Event, Output};

/// Runs a fresh [`Client`] through the recorded inputs, each at
/// `t0 + offset`, and returns every event it gives, in order: the events of
/// the live session, durations included.
///
/// `options` supplies what is not recorded (logging, labels); the recorded
/// settings replace the rest (see [`CaptureHeader::apply`]). `t0` stands for
/// the session's start (any instant: only offsets from it matter; the core
/// reads no clock). Replay stops at the end of the records or when the
/// client is done.
pub fn replay(capture: &Capture, options: ClientOptions, t0: Instant) -> Result<Vec<Event>, CaptureError> {
    let opts = capture.header.apply(options);
    let mut client = Client::new(&capture.header.replay_url(), opts, t0).map_err(CaptureError::Client)?;
    let mut events = Vec::new();
    let mut done = drain(&mut client, &mut events);
    for record in &capture.records {
        if done {
            break;
        }
        let now = t0.checked_add(record.offset).ok_or(CaptureError::OffsetOverflow)?;
        client.handle_input(now, record.kind.as_input());
        done = drain(&mut client, &mut events);
    }
    Ok(events)
}

/// Collects the ready events; whether the client is done.
fn drain(client: &mut Client, events: &mut Vec<Event>) -> bool {
    loop {
        match client.poll_output() {
            // What the session sent or asked the runtime to do is not
            // replayed: the inputs that followed it are in the capture.
            Output::Transmit(_) | Output::SendDatagram { .. } | Output::OpenUdp(_) | Output::Reconnect => {}
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return false,
            Output::Done => return true,
        }
    }
}
