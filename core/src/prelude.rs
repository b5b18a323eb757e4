//! What a user of a client session needs, in one place: every runtime crate
//! re-exports this module (`pub use rtsp_toolkit_core::prelude::*`), so the
//! three offer the same names.

pub use crate::auth::Credentials;
pub use crate::client::{
    AudioFrameEvent, BackchannelAudio, ClientOptions, ClosedEvent, ConnectEvent, Event, FallbackEvent, LogKinds,
    LossEvent, MetadataFrameEvent, MethodEvent, PortRange, RtcpEvent, RtpEvent, Track, TrackSelection, TrackStats,
    Transport, TransportKind, VideoFrameEvent, Warning,
};
pub use crate::client::{PlayRange, Scale};
pub use crate::codec::{AudioCodec, AudioFrame, MetadataFrame, VideoCodec, VideoFrame};
pub use crate::stop::{ControlError, SessionControl, StopSignal};
pub use crate::{ConnectionError, Error};
