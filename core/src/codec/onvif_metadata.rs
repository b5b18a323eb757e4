//! ONVIF metadata tracks (`m=application`, encoding name
//! `vnd.onvif.metadata`, ONVIF Streaming Specification §5.1.2.1): RTP
//! depacketizer, packetizer, and a cheap summary of a document.
//!
//! The payload format carries an XML document (a `tt:MetadataStream`) cut
//! into fragments: each RTP payload is the next run of the document's bytes,
//! every packet of one document has the same timestamp, and the marker bit
//! is set on the packet that ends the document. The [`Depacketizer`] joins
//! the fragments back into one [`MetadataFrame`] per document; a document
//! that lost a fragment, or grew over `max_frame_bytes`, is dropped whole
//! (its loss is reported on the next document). The clock rate is whatever
//! the SDP says (90000 in practice); it does not matter here.
//!
//! [`summary`] finds the root element and the first event topic by a plain
//! byte scan, without parsing XML: enough for a one-line report.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{DepacketizeError, MetadataFrame, SetupError};
use crate::rtp::RtpPacket;
use crate::sdp::Media;

const CODEC: &str = "vnd.onvif.metadata";

/// RTP depacketizer for `vnd.onvif.metadata`: one [`MetadataFrame`] per
/// document, ended by the marker bit.
#[derive(Debug)]
pub struct Depacketizer {
    max_frame_bytes: usize,
    /// The document being assembled (empty between documents).
    buf: BytesMut,
    /// The RTP timestamp of the document being assembled.
    timestamp: Option<u32>,
    /// The document in progress is damaged: skip to the next marker.
    broken: bool,
    /// Packets lost since the last emitted document.
    loss: u32,
    ready: VecDeque<MetadataFrame>,
}

impl Depacketizer {
    /// A depacketizer for `media` (which must be `vnd.onvif.metadata`),
    /// with documents capped at `max_frame_bytes`.
    pub fn new(media: &Media, max_frame_bytes: usize) -> Result<Depacketizer, SetupError> {
        if !media.codec_is(CODEC) {
            return Err(SetupError::UnsupportedCodec(media.codec.clone()));
        }
        Ok(Depacketizer {
            max_frame_bytes,
            buf: BytesMut::new(),
            timestamp: None,
            broken: false,
            loss: 0,
            ready: VecDeque::new(),
        })
    }

    /// Feeds one packet; `lost` is how many packets are missing right before it.
    ///
    /// After a loss the document in progress is incomplete (the lost
    /// packets may have held its start or its end), so everything up to the
    /// next marker is dropped. An empty payload is allowed (it may carry the
    /// marker that ends a document).
    pub fn push(&mut self, packet: &RtpPacket, lost: u32) -> Result<(), DepacketizeError> {
        if lost > 0 {
            self.loss = self.loss.saturating_add(lost);
            self.drop_document(true);
        }
        let mut result = Ok(());
        if self.timestamp.is_some_and(|ts| ts != packet.timestamp) {
            // A new document began without the marker on the last one: the
            // last one may be cut short, so it is dropped.
            let was_broken = self.broken;
            self.drop_document(false);
            if !was_broken {
                result = Err(DepacketizeError::Malformed {
                    codec: CODEC,
                    what: "a document ended without the marker bit (dropped)".to_owned(),
                });
            }
        }
        self.timestamp = Some(packet.timestamp);
        let payload = &packet.payload;
        if !self.broken {
            if self.buf.len().saturating_add(payload.len()) > self.max_frame_bytes {
                self.drop_document(true);
                result = Err(DepacketizeError::FrameTooLarge {
                    codec: CODEC,
                    limit: self.max_frame_bytes,
                });
            } else if packet.marker && self.buf.is_empty() {
                // A whole document in one packet: no copy.
                self.emit(packet.timestamp, payload.clone());
            } else {
                self.buf.extend_from_slice(payload);
            }
        }
        if packet.marker {
            if !self.broken && !self.buf.is_empty() {
                let data = self.buf.split().freeze();
                self.emit(packet.timestamp, data);
            }
            self.drop_document(false);
        }
        result
    }

    /// The next complete document, if any. Call until `None` after each push.
    pub fn pull(&mut self) -> Option<MetadataFrame> {
        self.ready.pop_front()
    }

    fn emit(&mut self, timestamp: u32, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.ready.push_back(MetadataFrame {
            timestamp,
            data,
            loss: std::mem::take(&mut self.loss),
        });
    }

    /// Forgets the document in progress; `broken`: skip to the next marker.
    fn drop_document(&mut self, broken: bool) {
        self.buf.clear();
        self.timestamp = None;
        self.broken = broken;
    }
}

/// Cuts documents into RTP payloads of at most `max_payload` bytes, for a
/// server: the last payload of each document gets the marker bit.
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// A packetizer with payloads of at most `max_payload` bytes (at least 1).
    pub fn new(max_payload: usize) -> Packetizer {
        Packetizer {
            max_payload: max_payload.max(1),
        }
    }

    /// The payloads of one document, in order, each with its marker bit.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use rtsp_toolkit_core::codec::onvif_metadata::Packetizer;
    /// let p = Packetizer::new(4).packetize(&Bytes::from_static(b"<a>xy</a>"));
    /// let markers: Vec<bool> = p.iter().map(|(_, m)| *m).collect();
    /// assert_eq!(markers, [false, false, true]);
    /// assert_eq!(p[2].0, ">");
    /// ```
    pub fn packetize(&self, document: &Bytes) -> Vec<(Bytes, bool)> {
        let n = document.len().div_ceil(self.max_payload).max(1);
        (0..n)
            .map(|i| {
                let start = (i * self.max_payload).min(document.len());
                let end = ((i + 1) * self.max_payload).min(document.len());
                (document.slice(start..end), i + 1 == n)
            })
            .collect()
    }
}

/// What a metadata document is about, found without parsing XML.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// The root element's name as written (`tt:MetadataStream`); `None`
    /// when the document has no element.
    pub root: Option<String>,
    /// The text of the first element whose local name is `Topic` (an
    /// event's topic, `tns1:RuleEngine/CellMotionDetector/Motion`),
    /// whitespace trimmed; `None` when there is none.
    pub topic: Option<String>,
}

/// The root element and the first event topic of a metadata document.
///
/// A byte scan, not an XML parser: the XML declaration, comments and
/// processing instructions before the root are skipped; the topic is the
/// text up to the next `<` after the first `<…:Topic …>` or `<Topic>` start
/// tag, not unescaped. Never fails; what it cannot find is `None`.
///
/// ```
/// use rtsp_toolkit_core::codec::onvif_metadata::summary;
/// let s = summary(b"<?xml version=\"1.0\"?><tt:MetadataStream><tt:Event><wsnt:NotificationMessage>\
///     <wsnt:Topic Dialect=\"x\"> tns1:VideoSource/MotionAlarm </wsnt:Topic></wsnt:NotificationMessage>\
///     </tt:Event></tt:MetadataStream>");
/// assert_eq!(s.root.as_deref(), Some("tt:MetadataStream"));
/// assert_eq!(s.topic.as_deref(), Some("tns1:VideoSource/MotionAlarm"));
/// ```
pub fn summary(doc: &[u8]) -> Summary {
    let mut root = None;
    let mut topic = None;
    let mut i = 0;
    while i < doc.len() {
        let Some(lt) = doc[i..].iter().position(|&b| b == b'<') else {
            break;
        };
        let tag = i + lt + 1;
        let rest = &doc[tag..];
        if rest.starts_with(b"!--") {
            // Skip the comment whole: it may contain `<`.
            i = match find(&rest[3..], b"-->") {
                Some(end) => tag + 3 + end + 3,
                None => break,
            };
            continue;
        }
        i = tag;
        if matches!(rest.first(), Some(b'?' | b'!' | b'/') | None) {
            continue;
        }
        let name_len = rest
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            continue;
        }
        if root.is_none() {
            root = Some(String::from_utf8_lossy(name).into_owned());
        }
        let local = name.rsplit(|&b| b == b':').next().unwrap_or(name);
        if local == b"Topic" {
            let Some(gt) = rest.iter().position(|&b| b == b'>') else {
                break;
            };
            if rest[..gt].ends_with(b"/") {
                continue;
            }
            let text = &rest[gt + 1..];
            let end = text.iter().position(|&b| b == b'<').unwrap_or(text.len());
            let t = String::from_utf8_lossy(&text[..end]).trim().to_owned();
            if !t.is_empty() {
                topic = Some(t);
                break;
            }
        }
    }
    Summary { root, topic }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support;

    fn media() -> Media {
        test_support::media(
            b"v=0\r\ns=x\r\nt=0 0\r\nm=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n",
        )
    }

    fn packet(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        test_support::rtp(seq, ts, marker, payload)
    }

    fn drain(d: &mut Depacketizer) -> Vec<(u32, Vec<u8>, u32)> {
        std::iter::from_fn(|| d.pull())
            .map(|f| (f.timestamp, f.data.to_vec(), f.loss))
            .collect()
    }

    #[test]
    fn documents_end_at_the_marker() {
        let mut d = Depacketizer::new(&media(), 1 << 20).unwrap();
        d.push(&packet(1, 100, false, b"<a>"), 0).unwrap();
        d.push(&packet(2, 100, false, b"x"), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&packet(3, 100, true, b"</a>"), 0).unwrap();
        d.push(&packet(4, 200, true, b"<b/>"), 0).unwrap();
        assert_eq!(
            drain(&mut d),
            [(100, b"<a>x</a>".to_vec(), 0), (200, b"<b/>".to_vec(), 0)]
        );
    }

    #[test]
    fn a_document_with_a_lost_fragment_is_dropped() {
        let mut d = Depacketizer::new(&media(), 1 << 20).unwrap();
        d.push(&packet(1, 100, false, b"<a>"), 0).unwrap();
        // Packet 2 lost.
        d.push(&packet(3, 100, true, b"</a>"), 1).unwrap();
        assert!(d.pull().is_none());
        // The next document is whole; it reports the loss.
        d.push(&packet(4, 200, true, b"<b/>"), 0).unwrap();
        assert_eq!(drain(&mut d), [(200, b"<b/>".to_vec(), 1)]);
        // A loss right before a document's first packet: its start may be gone.
        d.push(&packet(6, 300, false, b"<c>"), 1).unwrap();
        d.push(&packet(7, 300, true, b"</c>"), 0).unwrap();
        d.push(&packet(8, 400, true, b"<d/>"), 0).unwrap();
        assert_eq!(drain(&mut d), [(400, b"<d/>".to_vec(), 1)]);
    }

    #[test]
    fn a_lost_marker_drops_the_document_at_the_next_timestamp() {
        let mut d = Depacketizer::new(&media(), 1 << 20).unwrap();
        d.push(&packet(1, 100, false, b"<a>"), 0).unwrap();
        let e = d.push(&packet(2, 200, false, b"<b>"), 0).unwrap_err();
        assert!(matches!(e, DepacketizeError::Malformed { .. }), "{e}");
        d.push(&packet(3, 200, true, b"</b>"), 0).unwrap();
        assert_eq!(drain(&mut d), [(200, b"<b></b>".to_vec(), 0)]);
    }

    #[test]
    fn too_large_documents_are_dropped() {
        let mut d = Depacketizer::new(&media(), 6).unwrap();
        d.push(&packet(1, 100, false, b"<abc>"), 0).unwrap();
        let e = d.push(&packet(2, 100, false, b"xy"), 0).unwrap_err();
        assert_eq!(e, DepacketizeError::FrameTooLarge { codec: CODEC, limit: 6 });
        d.push(&packet(3, 100, true, b"</abc>"), 0).unwrap();
        assert!(d.pull().is_none());
        d.push(&packet(4, 200, true, b"<ok/>"), 0).unwrap();
        assert_eq!(drain(&mut d), [(200, b"<ok/>".to_vec(), 0)]);
        // Exactly the limit fits.
        d.push(&packet(5, 300, true, b"<abcd>"), 0).unwrap();
        assert_eq!(drain(&mut d).len(), 1);
    }

    #[test]
    fn empty_payloads_and_wrong_codecs() {
        let mut d = Depacketizer::new(&media(), 100).unwrap();
        d.push(&packet(1, 100, false, b"<a/>"), 0).unwrap();
        d.push(&packet(2, 100, true, b""), 0).unwrap();
        d.push(&packet(3, 200, true, b""), 0).unwrap();
        assert_eq!(drain(&mut d), [(100, b"<a/>".to_vec(), 0)]);
        let mut m = media();
        m.codec = "H264".into();
        assert!(Depacketizer::new(&m, 100).is_err());
    }

    #[test]
    fn packetizer_round_trip() {
        let doc = Bytes::from_static(b"<tt:MetadataStream>0123456789</tt:MetadataStream>");
        for size in [1, 5, 7, doc.len(), 1000] {
            let mut d = Depacketizer::new(&media(), 1000).unwrap();
            for (i, (payload, marker)) in Packetizer::new(size).packetize(&doc).into_iter().enumerate() {
                d.push(&packet(i as u16, 9, marker, &payload), 0).unwrap();
            }
            assert_eq!(drain(&mut d), [(9, doc.to_vec(), 0)], "size {size}");
        }
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(b""), Summary::default());
        assert_eq!(summary(b"<!-- <x> --><r a='1'/>").root.as_deref(), Some("r"));
        assert_eq!(
            summary(b"<r><Topic/><n:Topic>a/b</n:Topic></r>").topic.as_deref(),
            Some("a/b")
        );
        assert_eq!(summary(b"<r><n:TopicX>a</n:TopicX></r>").topic, None);
        for junk in [&b"<"[..], b"<!--", b"<<<>>", b"<a:Topic", b"\xff<\xfe>"] {
            summary(junk);
        }
    }
}
