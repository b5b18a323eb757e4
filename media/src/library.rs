//! The files a server publishes: the runtime-independent file rules of the
//! RTSP file server.
//!
//! A [`Library`] is a media root directory and the sources loaded from it.
//! Every runtime's server answers the connection machine's
//! [`ServerOutput::Lookup`](rtsp_toolkit_core::server::ServerOutput::Lookup)
//! with [`Library::lookup`] and lists its URLs with [`Library::urls`]. The
//! rules:
//! - **Root confinement.** The connection machine rejects traversal
//!   lexically; here the path is joined to the canonical root and
//!   canonicalized (symlinks resolved), and must still be inside the root
//!   and be a regular file with a supported extension (see
//!   [`FileKind::from_path`]). A path that resolves outside is
//!   [`LookupError::Forbidden`], anything else missing
//!   [`LookupError::NotFound`]: both are 404, so that a client cannot probe
//!   what exists outside the root.
//! - **Shared media.** A file is demuxed once into an `Arc<MediaSource>`
//!   shared by every session playing it (sample data are views of one
//!   buffer). The library keeps only a weak reference, so the source is
//!   dropped when the last session holding it ends, and the next lookup
//!   reads the file again. Concurrent first lookups of one file load it
//!   once: the others wait for that load.
//! - **WAV encodings.** A lookup path ending in `?codec=NAME` (the
//!   connection machine's form of the `codec` query parameter, see
//!   [`Target::resource`](rtsp_toolkit_core::server::Target::resource))
//!   serves a WAV file in that encoding ([`WavEncoding::from_name`]: `pcma`,
//!   `l16`, `g722`); an unknown name is [`LookupError::NotFound`]. Other kinds
//!   of file ignore it. Each encoding of a file is its own shared source.
//! - **Failures are not cached.** A file that could not be loaded is tried
//!   again at the next lookup: it may be fixed, or complete, by then.
//!
//! Lookups are synchronous and may block on reading a whole file: a runtime
//! calls [`Library::lookup`] off its reactor (tokio's `spawn_blocking`, the
//! `blocking` crate's `unblock`, a thread).
//!
//! ```no_run
//! use rtsp_toolkit_media::library::Library;
//!
//! let library = Library::open("fixtures/media")?;
//! for url in library.urls("127.0.0.1:8554".parse().unwrap()) {
//!     println!("{url}");
//! }
//! let source = library.lookup("h264_aac.mp4").expect("a playable file");
//! println!("{} tracks", source.tracks.len());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

pub use rtsp_toolkit_core::server::LookupError;

use crate::{FileKind, MediaError, MediaSource, WavEncoding};

/// Most files [`published_files`] lists.
const MAX_FILES: usize = 100_000;
/// Deepest directory level [`published_files`] enters.
const MAX_DEPTH: usize = 32;

type Loaded = Result<Arc<MediaSource>, LookupError>;

/// A cached source: the canonical path and the WAV encoding (always the
/// default for other files).
type Key = (PathBuf, WavEncoding);

/// What the cache knows about one canonical path.
enum Entry {
    /// A lookup is reading the file; later lookups wait for its result.
    Loading(Arc<OnceLock<Loaded>>),
    /// The source, while some session holds it.
    Loaded(Weak<MediaSource>),
}

impl Entry {
    /// Whether the entry still stands for something.
    fn is_live(&self) -> bool {
        match self {
            Entry::Loading(_) => true,
            Entry::Loaded(source) => source.strong_count() > 0,
        }
    }
}

/// A media root and the sources loaded from it. See the [module docs](self).
///
/// Shared between connections (`Arc<Library>`); every method takes `&self`.
pub struct Library {
    root: PathBuf,
    cache: Mutex<HashMap<Key, Entry>>,
    /// Files read so far (for tests of the cache).
    loads: AtomicUsize,
}

impl fmt::Debug for Library {
    // Not derived: a loading entry would print every sample of its source.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("root", &self.root)
            .field("cached", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Library {
    /// The library of the files under `root`, which must be a directory.
    /// The root is canonicalized once, here: moving or relinking it later
    /// does not change what is served.
    pub fn open(root: impl AsRef<Path>) -> io::Result<Library> {
        let given = root.as_ref();
        let root = std::fs::canonicalize(given)
            .map_err(|e| io::Error::new(e.kind(), format!("media root {}: {e}", given.display())))?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("media root {} is not a directory", root.display()),
            ));
        }
        Ok(Library {
            root,
            cache: Mutex::new(HashMap::new()),
            loads: AtomicUsize::new(0),
        })
    }

    /// The canonical media root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a path relative to the root names, after canonicalization:
    /// inside the root, a regular file, with a supported extension.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, LookupError> {
        let canonical = std::fs::canonicalize(self.root.join(relative)).map_err(|_| LookupError::NotFound)?;
        if !canonical.starts_with(&self.root) {
            tracing::warn!(path = relative, "refused: resolves outside the media root");
            return Err(LookupError::Forbidden);
        }
        if !canonical.is_file() || FileKind::from_path(&canonical).is_none() {
            return Err(LookupError::NotFound);
        }
        Ok(canonical)
    }

    /// The source for a path relative to the root: the one already shared
    /// when a session holds it, else the file read now (this blocks; see the
    /// [module docs](self)).
    ///
    /// A file without a playable track is [`LookupError::NoSupportedTrack`];
    /// one that cannot be read or parsed is [`LookupError::NotFound`] (and
    /// logged).
    pub fn lookup(&self, relative: &str) -> Result<Arc<MediaSource>, LookupError> {
        let (relative, encoding) = match relative.rsplit_once("?codec=") {
            Some((file, name)) => match WavEncoding::from_name(name) {
                Some(encoding) => (file, encoding),
                None => {
                    tracing::info!(path = file, codec = name, "refused: unknown codec for WAV files");
                    return Err(LookupError::NotFound);
                }
            },
            None => (relative, WavEncoding::default()),
        };
        let path = self.resolve(relative)?;
        let encoding = if FileKind::from_path(&path) == Some(FileKind::Wav) {
            encoding
        } else {
            WavEncoding::default()
        };
        let key = (path, encoding);
        let slot = {
            let mut cache = self.lock();
            cache.retain(|_, entry| entry.is_live());
            match cache.get(&key) {
                Some(Entry::Loaded(source)) => {
                    if let Some(source) = source.upgrade() {
                        return Ok(source);
                    }
                    Self::start_loading(&mut cache, &key)
                }
                Some(Entry::Loading(slot)) => slot.clone(),
                None => Self::start_loading(&mut cache, &key),
            }
        };
        // One lookup loads; the others that found the same slot wait here.
        let loaded = slot.get_or_init(|| self.load(&key.0, key.1)).clone();
        let mut cache = self.lock();
        if matches!(cache.get(&key), Some(Entry::Loading(s)) if Arc::ptr_eq(s, &slot)) {
            match &loaded {
                // Only a weak reference stays: the source goes with its last session.
                Ok(source) => {
                    cache.insert(key, Entry::Loaded(Arc::downgrade(source)));
                }
                // Not cached: the file may be fixed or complete by the next lookup.
                Err(_) => {
                    cache.remove(&key);
                }
            }
        }
        loaded
    }

    /// Every servable file under the root, as paths relative to it, sorted
    /// (see [`published_files`]).
    pub fn published_files(&self) -> Vec<PathBuf> {
        published_files(&self.root)
    }

    /// `rtsp://ADDR/<path>` for every published file, sorted, each path
    /// encoded by [`url_path`].
    pub fn urls(&self, addr: SocketAddr) -> Vec<String> {
        self.published_files()
            .iter()
            .map(|p| format!("rtsp://{addr}/{}", url_path(p)))
            .collect()
    }

    /// How many times a file was read (loads, not lookups).
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    fn start_loading(cache: &mut HashMap<Key, Entry>, key: &Key) -> Arc<OnceLock<Loaded>> {
        let slot = Arc::new(OnceLock::new());
        cache.insert(key.clone(), Entry::Loading(slot.clone()));
        slot
    }

    fn load(&self, path: &Path, encoding: WavEncoding) -> Loaded {
        self.loads.fetch_add(1, Ordering::Relaxed);
        crate::open_with(path, encoding).map(Arc::new).map_err(|e| {
            tracing::info!(path = %path.display(), error = %e, "cannot serve");
            match e {
                MediaError::NoSupportedTrack { .. } => LookupError::NoSupportedTrack(e.to_string()),
                _ => LookupError::NotFound,
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // The map stays consistent even if a holder panicked: every change is one insert or remove.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every servable file under `root`, as paths relative to it, sorted.
/// Symlinks are followed only when they stay inside the root; depth (32
/// levels) and count (100,000 files) are bounded.
pub fn published_files(root: &Path) -> Vec<PathBuf> {
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if out.len() >= MAX_FILES {
                break;
            }
            let Ok(path) = std::fs::canonicalize(entry.path()) else {
                continue;
            };
            if !path.starts_with(&root) {
                continue;
            }
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((entry.path(), depth + 1));
                }
            } else if FileKind::from_path(&entry.path()).is_some() {
                if let Ok(rel) = entry.path().strip_prefix(&root) {
                    out.push(rel.to_path_buf());
                } else if let Ok(rel) = path.strip_prefix(&root) {
                    out.push(rel.to_path_buf());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A relative path as a URL path: `/` separators, each segment
/// percent-encoded (controls, space, `" # % < > ? \` { } / \`).
///
/// ```
/// use std::path::Path;
/// use rtsp_toolkit_media::library::url_path;
/// assert_eq!(url_path(Path::new("dir/a b#1.mp4")), "dir/a%20b%231.mp4");
/// ```
pub fn url_path(path: &Path) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'/')
        .add(b'\\');
    path.components()
        .map(|c| percent_encoding::utf8_percent_encode(&c.as_os_str().to_string_lossy(), SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Barrier;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/media")
            .join(name)
    }

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("rtsp-toolkit-library-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn wav_encodings_by_codec_parameter() {
        use rtsp_toolkit_core::source::SourceCodec;
        let library = Library::open(fixture("")).unwrap();
        let codec = |path: &str| library.lookup(path).map(|s| s.tracks[0].codec.clone());
        assert_eq!(codec("pcm_16k_mono.wav"), Ok(SourceCodec::Pcma));
        assert_eq!(codec("pcm_16k_mono.wav?codec=pcma"), Ok(SourceCodec::Pcma));
        assert_eq!(
            codec("pcm_16k_mono.wav?codec=l16"),
            Ok(SourceCodec::L16 { channels: 1 })
        );
        assert_eq!(codec("pcm_16k_mono.wav?codec=g722"), Ok(SourceCodec::G722));
        assert_eq!(codec("pcm_16k_mono.wav?codec=mp3"), Err(LookupError::NotFound));
        assert_eq!(codec("nope.wav?codec=l16"), Err(LookupError::NotFound));
        // Other files ignore it (and share the one source).
        let plain = library.lookup("h265.mp4").unwrap();
        let with = library.lookup("h265.mp4?codec=l16").unwrap();
        assert!(Arc::ptr_eq(&plain, &with));
    }

    #[test]
    fn a_symlink_out_of_the_root_is_refused_and_not_published() {
        // root/inside.mp4, root/sub/ok.mp4 -> ../inside.mp4 (stays inside),
        // root/escape.mp4 -> outside/secret.mp4, root/dir -> outside/.
        let tmp = TempDir::new("confine");
        let (root, outside) = (tmp.0.join("root"), tmp.0.join("outside"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::copy(fixture("h265.mp4"), root.join("inside.mp4")).unwrap();
        std::fs::copy(fixture("h265.mp4"), outside.join("secret.mp4")).unwrap();
        std::os::unix::fs::symlink("../inside.mp4", root.join("sub/ok.mp4")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.mp4"), root.join("escape.mp4")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dir")).unwrap();

        let library = Library::open(&root).unwrap();
        assert!(library.lookup("inside.mp4").is_ok());
        assert!(library.lookup("sub/ok.mp4").is_ok());
        assert_eq!(library.lookup("escape.mp4").unwrap_err(), LookupError::Forbidden);
        assert_eq!(library.lookup("dir/secret.mp4").unwrap_err(), LookupError::Forbidden);
        assert_eq!(
            library.lookup("../outside/secret.mp4").unwrap_err(),
            LookupError::Forbidden
        );
        let absolute = outside.join("secret.mp4");
        assert_eq!(
            library.lookup(absolute.to_str().unwrap()).unwrap_err(),
            LookupError::Forbidden
        );
        assert_eq!(library.lookup("nope.mp4").unwrap_err(), LookupError::NotFound);
        assert_eq!(library.lookup("sub").unwrap_err(), LookupError::NotFound);
        assert_eq!(
            library.published_files(),
            vec![PathBuf::from("inside.mp4"), PathBuf::from("sub/ok.mp4")]
        );
    }

    #[test]
    fn the_root_must_be_a_directory() {
        assert!(Library::open(fixture("h265.mp4")).is_err());
        assert!(Library::open(fixture("no such dir")).is_err());
    }

    #[test]
    fn one_source_per_file_while_held_and_concurrent_first_lookups_load_once() {
        let library = Library::open(fixture("")).unwrap();
        let barrier = Barrier::new(8);
        let sources: Vec<Arc<MediaSource>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        library.lookup("h264_aac.mp4").unwrap()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(library.loads(), 1, "eight concurrent lookups, one read");
        assert!(sources.iter().all(|s| Arc::ptr_eq(s, &sources[0])));
        let again = library.lookup("h264_aac.mp4").unwrap();
        assert!(Arc::ptr_eq(&again, &sources[0]));
        assert_eq!(library.loads(), 1, "held: served from the cache");
        assert_eq!(Arc::strong_count(&again), 9, "the library holds no strong reference");
        drop(sources);
        drop(again);
        library.lookup("h264_aac.mp4").unwrap();
        assert_eq!(library.loads(), 2, "released by every session: read again");
    }

    #[test]
    fn failures_are_not_cached() {
        let tmp = TempDir::new("failures");
        std::fs::write(tmp.0.join("clip.mp4"), b"not an mp4 yet").unwrap();
        let library = Library::open(&tmp.0).unwrap();
        assert_eq!(library.lookup("clip.mp4").unwrap_err(), LookupError::NotFound);
        assert_eq!(library.lookup("clip.mp4").unwrap_err(), LookupError::NotFound);
        assert_eq!(library.loads(), 2, "each failed lookup reads the file again");
        std::fs::copy(fixture("h265.mp4"), tmp.0.join("clip.mp4")).unwrap();
        assert_eq!(library.lookup("clip.mp4").unwrap().tracks.len(), 1);
    }

    #[test]
    fn urls_encode_each_segment() {
        assert_eq!(url_path(Path::new("a.mp4")), "a.mp4");
        assert_eq!(url_path(Path::new("sub dir/x%y?.mp4")), "sub%20dir/x%25y%3F.mp4");
        assert_eq!(url_path(Path::new("é/\"q\"#.mkv")), "%C3%A9/%22q%22%23.mkv");
        let library = Library::open(fixture("")).unwrap();
        let urls = library.urls("127.0.0.1:8554".parse().unwrap());
        assert!(
            urls.contains(&"rtsp://127.0.0.1:8554/h264_aac.mp4".to_owned()),
            "{urls:?}"
        );
        assert!(urls.windows(2).all(|w| w[0] < w[1]), "sorted: {urls:?}");
        let v6 = library.urls("[::1]:8554".parse().unwrap());
        assert!(v6[0].starts_with("rtsp://[::1]:8554/"), "{v6:?}");
    }
}
