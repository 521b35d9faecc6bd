//! The file layer the WAL and snapshots write through: real files in
//! production, and an injected-fault layer in tests to prove fail-stop.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An append-only file handle.
pub trait LogFile: Send {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// File-system operations the WAL needs.
pub trait Storage: Send + Sync + 'static {
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>>;
    /// Creates (truncating) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>>;
    /// Renames a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (fsync on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
}

struct StdFile(File);

impl LogFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdStorage;

impl Storage for StdStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(StdFile(OpenOptions::new().append(true).open(path)?)))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(StdFile(OpenOptions::new().write(true).create(true).truncate(true).open(path)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// Which operation a [`FaultyStorage`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `write_all` fails.
    Write,
    /// `sync_data` fails.
    Sync,
}

/// Real files, except that after a countdown of operations of one kind, that
/// kind fails with an IO error (for tests of fail-stop behaviour).
#[derive(Clone)]
pub struct FaultyStorage {
    fault: Fault,
    remaining: Arc<AtomicU64>,
}

impl FaultyStorage {
    /// Fails the `after + 1`-th operation of kind `fault` and every later one.
    pub fn new(fault: Fault, after: u64) -> Self {
        Self { fault, remaining: Arc::new(AtomicU64::new(after)) }
    }

    fn trip(&self, kind: Fault) -> io::Result<()> {
        if kind != self.fault {
            return Ok(());
        }
        let left = self.remaining.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other(format!("injected {kind:?} fault")));
        }
        self.remaining.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

struct FaultyFile {
    inner: StdFile,
    storage: FaultyStorage,
}

impl LogFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.storage.trip(Fault::Write)?;
        self.inner.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.storage.trip(Fault::Sync)?;
        self.inner.sync_data()
    }
}

impl Storage for FaultyStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(FaultyFile { inner: StdFile(OpenOptions::new().append(true).open(path)?), storage: self.clone() }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let f = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
        Ok(Box::new(FaultyFile { inner: StdFile(f), storage: self.clone() }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdStorage.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.trip(Fault::Sync)?;
        StdStorage.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdStorage.remove(path)
    }
}

/// Real files whose fdatasyncs can be held back, so tests can look at what the
/// service answers while a record is written but not yet durable.
#[derive(Clone, Default)]
pub struct HoldableStorage {
    held: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl HoldableStorage {
    /// Storage that syncs normally until [`HoldableStorage::hold`].
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, `sync_data` blocks until the returned hold is dropped
    /// (also when a test panics, so the writer thread can finish).
    pub fn hold(&self) -> SyncHold {
        *self.held.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        SyncHold { storage: self.clone() }
    }

    fn wait_while_held(&self) {
        let (held, released) = &*self.held;
        let mut guard = held.lock().unwrap_or_else(|e| e.into_inner());
        while *guard {
            guard = released.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Syncs held back by [`HoldableStorage::hold`]; dropping it lets them through.
pub struct SyncHold {
    storage: HoldableStorage,
}

impl Drop for SyncHold {
    fn drop(&mut self) {
        *self.storage.held.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.storage.held.1.notify_all();
    }
}

struct HoldableFile {
    inner: StdFile,
    storage: HoldableStorage,
}

impl LogFile for HoldableFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.storage.wait_while_held();
        self.inner.sync_data()
    }
}

impl Storage for HoldableStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let f = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(HoldableFile { inner: StdFile(f), storage: self.clone() }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn LogFile>> {
        let f = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
        Ok(Box::new(HoldableFile { inner: StdFile(f), storage: self.clone() }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdStorage.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdStorage.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdStorage.remove(path)
    }
}
