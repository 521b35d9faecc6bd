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
