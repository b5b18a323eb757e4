//! The server's live paths: which connection publishes each, and the
//! fan-out of its packets to the connections that read it
//! (`docs/ARCHITECTURE.md`, "Live paths"). The protocol side (announce,
//! re-stamping, keyframes, the end) is the core's; this is the hand-over
//! between connections.
//!
//! Each reader has a bounded queue. The publisher's connection puts every
//! packet in every reader's queue without waiting (the payloads are shared
//! [`Bytes`](bytes::Bytes), not copied) and wakes it; a reader whose queue
//! is full is marked overflowed and its queue emptied: its connection then
//! closes it ([`CloseReason::SlowReader`](rtsp_toolkit_core::server::CloseReason::SlowReader)).
//! A slow reader therefore never holds up the publisher or the other
//! readers, and costs at most its queue's bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rtsp_toolkit_core::rtp::RtpPacket;

use crate::MediaSource;

use super::lock;

/// Most payload bytes waiting for one reader (about 4 s of a 4 Mb/s stream).
pub(crate) const MAX_QUEUED_BYTES: usize = 2 * 1024 * 1024;
/// Most packets waiting for one reader.
pub(crate) const MAX_QUEUED_PACKETS: usize = 8192;
/// Most packets a reader's connection takes from its queue per wake-up.
pub(crate) const MAX_BATCH: usize = 512;

/// Most payload bytes of a cached GOP (`gop_cache`): a longer GOP is not
/// cached (readers then start at the next keyframe).
pub(crate) const MAX_GOP_BYTES: usize = 4 * 1024 * 1024;

/// The live paths of a server, by path.
#[derive(Debug, Default)]
pub(crate) struct LivePaths {
    paths: Mutex<HashMap<String, Arc<LivePath>>>,
    /// Keep each path's packets since its last video keyframe and give them
    /// to a new reader at once (a fast first frame).
    gop_cache: bool,
}

/// One live path: its presentation and its readers.
#[derive(Debug)]
pub(crate) struct LivePath {
    source: Arc<MediaSource>,
    readers: Mutex<Readers>,
    /// The first video track (H.264, H.265), whose keyframes start a GOP.
    video: Option<usize>,
}

#[derive(Debug, Default)]
struct Readers {
    queues: Vec<(u64, Arc<ReaderQueue>)>,
    next_id: u64,
    /// The publisher left: no reader joins any more.
    ended: bool,
    /// With `gop_cache`: every packet since the first of the video track's
    /// last keyframe, and their payload bytes (`None`: none cached, waiting
    /// for a keyframe).
    gop: Option<(Vec<(usize, RtpPacket)>, usize)>,
}

/// The packets waiting for one reader.
#[derive(Debug, Default)]
pub(crate) struct ReaderQueue {
    inner: Mutex<QueueInner>,
}

#[derive(Debug, Default)]
struct QueueInner {
    packets: VecDeque<(usize, RtpPacket, Instant)>,
    bytes: usize,
    ended: bool,
    overflowed: bool,
    waker: Option<Waker>,
}

/// What a reader's connection takes from its queue at one wake-up.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Packets, in the order the publisher sent them: (track, packet,
    /// when the publisher's connection or the relay received it).
    pub packets: Vec<(usize, RtpPacket, Instant)>,
    /// The publisher left and nothing is waiting any more.
    pub ended: bool,
    /// The reader fell too far behind (its queue was dropped).
    pub overflowed: bool,
}

impl LivePaths {
    /// Live paths whose new readers get the cached GOP at once when `gop_cache`.
    pub fn new(gop_cache: bool) -> LivePaths {
        LivePaths {
            gop_cache,
            ..LivePaths::default()
        }
    }

    /// Makes `path` live with `source`, unless it is already; the path stays
    /// live while the returned [`Publication`] lives.
    pub fn publish(self: &Arc<Self>, path: String, source: Arc<MediaSource>) -> Result<Publication, String> {
        let mut paths = lock(&self.paths);
        if paths.contains_key(&path) {
            return Err(format!("{path} is published by another connection"));
        }
        let video = source.tracks.iter().position(|t| {
            matches!(
                t.codec,
                rtsp_toolkit_core::source::SourceCodec::H264 { .. }
                    | rtsp_toolkit_core::source::SourceCodec::H265 { .. }
            )
        });
        let entry = Arc::new(LivePath {
            video: video.filter(|_| self.gop_cache),
            source,
            readers: Mutex::default(),
        });
        paths.insert(path.clone(), entry.clone());
        tracing::info!(path = path.as_str(), "live path published");
        Ok(Publication {
            paths: self.clone(),
            path,
            entry,
        })
    }

    /// The presentation of live path `path`, if it is live.
    pub fn source(&self, path: &str) -> Option<Arc<MediaSource>> {
        lock(&self.paths).get(path).map(|p| p.source.clone())
    }

    /// Starts giving `path`'s packets to a new reader; `None` when the path
    /// is not live (any more).
    pub fn read(&self, path: &str) -> Option<Reading> {
        let entry = lock(&self.paths).get(path).cloned()?;
        let queue = Arc::new(ReaderQueue::default());
        let mut readers = lock(&entry.readers);
        if readers.ended {
            return None;
        }
        if let Some((gop, _)) = &readers.gop {
            // The GOP so far first, as if it had just arrived.
            let now = Instant::now();
            for (track, packet) in gop {
                queue.push(*track, packet, now);
            }
        }
        let id = readers.next_id;
        readers.next_id += 1;
        readers.queues.push((id, queue.clone()));
        drop(readers);
        Some(Reading { entry, id, queue })
    }

    /// Live paths now.
    pub fn len(&self) -> usize {
        lock(&self.paths).len()
    }
}

/// A publisher's hold on its path: dropped, the path ends and its readers
/// are told.
#[derive(Debug)]
pub(crate) struct Publication {
    paths: Arc<LivePaths>,
    path: String,
    entry: Arc<LivePath>,
}

impl Publication {
    /// The path's presentation.
    pub fn source(&self) -> &Arc<MediaSource> {
        &self.entry.source
    }

    /// Puts one of the publisher's packets in every reader's queue.
    pub fn send(&self, track: usize, packet: &RtpPacket) {
        let received = Instant::now();
        let mut readers = lock(&self.entry.readers);
        for (_, queue) in &readers.queues {
            queue.push(track, packet, received);
        }
        if let Some(video) = self.entry.video {
            cache(&mut readers.gop, &self.entry.source, video, track, packet);
        }
    }
}

/// Adds `packet` to the cached GOP: a packet of the video track that starts
/// a keyframe with a timestamp other than the GOP's first starts a new one;
/// past [`MAX_GOP_BYTES`] nothing is cached until the next keyframe.
fn cache(
    gop: &mut Option<(Vec<(usize, RtpPacket)>, usize)>,
    source: &MediaSource,
    video: usize,
    track: usize,
    packet: &RtpPacket,
) {
    let starts = track == video
        && source
            .tracks
            .get(video)
            .is_some_and(|t| rtsp_toolkit_core::server::live::starts_keyframe(&t.codec, &packet.payload));
    let same_picture = gop
        .as_ref()
        .and_then(|(g, _)| g.first())
        .is_some_and(|(_, first)| first.timestamp == packet.timestamp);
    if starts && !same_picture {
        *gop = Some((Vec::new(), 0));
    }
    if let Some((packets, bytes)) = gop {
        *bytes += packet.payload.len();
        if *bytes > MAX_GOP_BYTES {
            *gop = None;
        } else {
            packets.push((track, packet.clone()));
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let mut paths = lock(&self.paths.paths);
        if paths.get(&self.path).is_some_and(|e| Arc::ptr_eq(e, &self.entry)) {
            paths.remove(&self.path);
        }
        drop(paths);
        let mut readers = lock(&self.entry.readers);
        readers.ended = true;
        for (_, queue) in readers.queues.drain(..) {
            queue.end();
        }
        tracing::info!(path = self.path.as_str(), "live path ended");
    }
}

/// A reader's place on a live path; it leaves on drop.
#[derive(Debug)]
pub(crate) struct Reading {
    entry: Arc<LivePath>,
    id: u64,
    queue: Arc<ReaderQueue>,
}

impl Reading {
    /// Ready when packets wait, or the path ended, or the reader overflowed.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = lock(&self.queue.inner);
        if !q.packets.is_empty() || q.ended || q.overflowed {
            return Poll::Ready(());
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Up to [`MAX_BATCH`] packets, and whether the path ended (once the
    /// queue is empty) or the reader overflowed.
    pub fn take(&self) -> Taken {
        let mut q = lock(&self.queue.inner);
        let n = q.packets.len().min(MAX_BATCH);
        let packets: Vec<(usize, RtpPacket, Instant)> = q.packets.drain(..n).collect();
        q.bytes -= packets.iter().map(|(_, p, _)| p.payload.len()).sum::<usize>();
        Taken {
            ended: q.ended && q.packets.is_empty(),
            overflowed: q.overflowed,
            packets,
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        lock(&self.entry.readers).queues.retain(|(id, _)| *id != self.id);
    }
}

impl ReaderQueue {
    fn push(&self, track: usize, packet: &RtpPacket, received: Instant) {
        let mut q = lock(&self.inner);
        if q.overflowed || q.ended {
            return;
        }
        if q.packets.len() >= MAX_QUEUED_PACKETS || q.bytes + packet.payload.len() > MAX_QUEUED_BYTES {
            q.overflowed = true;
            q.packets = VecDeque::new();
            q.bytes = 0;
        } else {
            q.bytes += packet.payload.len();
            q.packets.push_back((track, packet.clone(), received));
        }
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    fn end(&self) {
        let mut q = lock(&self.inner);
        q.ended = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }
}

/// The time from a live packet's arrival (at the publisher's connection or
/// the relay) to the end of the write that took it to a reader: a histogram
/// of 1/8-octave buckets from 1 µs (a quantile is within 9 % of the truth),
/// one relaxed atomic add per packet and reader.
#[derive(Debug)]
pub(crate) struct Latency {
    buckets: Vec<AtomicU64>,
}

/// Buckets per octave, and octaves above 1 µs (up to about 70 s).
const PER_OCTAVE: usize = 8;
const OCTAVES: usize = 26;

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: (0..PER_OCTAVE * OCTAVES + 1).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Latency {
    fn bucket(d: Duration) -> usize {
        let us = d.as_secs_f64() * 1e6;
        if us <= 1.0 {
            return 0;
        }
        ((us.log2() * PER_OCTAVE as f64).ceil() as usize).min(PER_OCTAVE * OCTAVES)
    }

    pub fn record(&self, d: Duration) {
        self.buckets[Self::bucket(d)].fetch_add(1, Ordering::Relaxed);
    }

    /// Samples so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (the upper bound of its bucket); `None` before any sample.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_secs_f64(2f64.powf(i as f64 / PER_OCTAVE as f64) / 1e6));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::task::Wake;
    use std::time::Duration;

    fn source() -> Arc<MediaSource> {
        Arc::new(MediaSource {
            tracks: Vec::new(),
            samples: Vec::new(),
            duration: Duration::ZERO,
        })
    }

    fn packet(seq: u16, len: usize) -> RtpPacket {
        let mut v = vec![0x80, 96, (seq >> 8) as u8, seq as u8, 0, 0, 0, 0, 0, 0, 0, 1];
        v.resize(12 + len, 7);
        RtpPacket::parse(Bytes::from(v)).unwrap()
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn one_publisher_per_path_readers_get_every_packet_and_the_end() {
        let paths = Arc::new(LivePaths::default());
        let p = paths.publish("live".into(), source()).unwrap();
        assert!(paths.publish("live".into(), source()).is_err());
        assert!(paths.source("live").is_some() && paths.source("other").is_none());
        let a = paths.read("live").unwrap();
        let b = paths.read("live").unwrap();
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        assert!(a.poll_ready(&mut Context::from_waker(&waker)).is_pending());
        p.send(0, &packet(1, 100));
        p.send(1, &packet(2, 100));
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1, "woken once");
        let taken = a.take();
        assert_eq!(
            taken
                .packets
                .iter()
                .map(|(t, p, _)| (*t, p.sequence_number))
                .collect::<Vec<_>>(),
            vec![(0, 1), (1, 2)]
        );
        assert!(!taken.ended);
        drop(b);
        assert_eq!(
            lock(&p.entry.readers).queues.len(),
            1,
            "a reader that left gets nothing more"
        );
        p.send(0, &packet(3, 10));
        drop(p);
        assert!(paths.source("live").is_none());
        assert!(paths.read("live").is_none());
        let taken = a.take();
        assert_eq!(taken.packets.len(), 1);
        assert!(taken.ended);
        // The path may be published again.
        assert!(paths.publish("live".into(), source()).is_ok());
    }

    fn packet_ts(ts: u32, payload: &[u8]) -> RtpPacket {
        let mut v = vec![0x80, 96, 0, 1];
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(payload);
        RtpPacket::parse(Bytes::from(v)).unwrap()
    }

    #[test]
    fn with_the_gop_cache_a_new_reader_gets_the_packets_since_the_last_keyframe_at_once() {
        use rtsp_toolkit_core::source::{SourceCodec, SourceTrack};
        let source = Arc::new(MediaSource {
            tracks: vec![
                SourceTrack {
                    codec: SourceCodec::Pcma,
                    clock_rate: 8000,
                },
                SourceTrack {
                    codec: SourceCodec::H264 {
                        sps: vec![],
                        pps: vec![],
                    },
                    clock_rate: 90_000,
                },
            ],
            samples: Vec::new(),
            duration: Duration::ZERO,
        });
        let paths = Arc::new(LivePaths::new(true));
        let p = paths.publish("live".into(), source.clone()).unwrap();
        p.send(1, &packet_ts(0, &[0x41, 1])); // before any keyframe: not cached
        assert!(paths.read("live").unwrap().take().packets.is_empty());
        p.send(1, &packet_ts(100, &[0x67, 1])); // SPS: a GOP starts
        p.send(1, &packet_ts(100, &[0x7c, 0x85, 1])); // the IDR's first fragment: the same picture
        p.send(0, &packet_ts(7, &[0xd5; 4]));
        p.send(1, &packet_ts(200, &[0x41, 2]));
        let taken = paths.read("live").unwrap().take();
        let got: Vec<(usize, u32)> = taken.packets.iter().map(|(t, p, _)| (*t, p.timestamp)).collect();
        assert_eq!(got, vec![(1, 100), (1, 100), (0, 7), (1, 200)]);
        // The next keyframe starts over.
        p.send(1, &packet_ts(300, &[0x65, 1]));
        let taken = paths.read("live").unwrap().take();
        assert_eq!(taken.packets.len(), 1);
        // A GOP past the bound is not cached until the next keyframe.
        p.send(1, &packet_ts(400, &[0x65, 1]));
        let big = vec![0x41; 60_000];
        for i in 0..(MAX_GOP_BYTES / 60_000 + 1) as u32 {
            p.send(1, &packet_ts(500 + i, &big));
        }
        assert!(paths.read("live").unwrap().take().packets.is_empty());
        // Without the cache: nothing at once.
        let plain = Arc::new(LivePaths::new(false));
        let p = plain.publish("live".into(), source).unwrap();
        p.send(1, &packet_ts(100, &[0x67, 1]));
        assert!(plain.read("live").unwrap().take().packets.is_empty());
    }

    #[test]
    fn latency_quantiles_are_within_a_bucket() {
        let l = Latency::default();
        assert_eq!(l.quantile(0.5), None);
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us * 10));
        }
        assert_eq!(l.count(), 1000);
        let within = |got: Duration, want_us: f64| {
            let r = got.as_secs_f64() * 1e6 / want_us;
            assert!((1.0..1.1).contains(&r), "{got:?} for {want_us} us");
        };
        within(l.quantile(0.5).unwrap(), 5000.0);
        within(l.quantile(0.99).unwrap(), 9900.0);
        l.record(Duration::from_secs(3600));
        assert!(l.quantile(1.0).unwrap() > Duration::from_secs(60));
    }

    #[test]
    fn a_reader_that_does_not_take_overflows_and_the_others_do_not() {
        let paths = Arc::new(LivePaths::default());
        let p = paths.publish("live".into(), source()).unwrap();
        let slow = paths.read("live").unwrap();
        let fast = paths.read("live").unwrap();
        let n = MAX_QUEUED_BYTES / 1000 + 10;
        for i in 0..n {
            p.send(0, &packet(i as u16, 1000));
            if i % 100 == 0 {
                while !fast.take().packets.is_empty() {}
            }
        }
        let taken = slow.take();
        assert!(taken.overflowed && taken.packets.is_empty());
        assert!(lock(&slow.queue.inner).packets.capacity() < 100, "its queue was freed");
        let taken = fast.take();
        assert!(!taken.overflowed && !taken.packets.is_empty());
        // By packet count too.
        let slow = paths.read("live").unwrap();
        for i in 0..=MAX_QUEUED_PACKETS {
            p.send(0, &packet(i as u16, 0));
        }
        assert!(slow.take().overflowed);
    }
}
