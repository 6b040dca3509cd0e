//! Network namespaces: created by a thread that unshares and bind-mounts its
//! namespace to a file, opened by path, entered only by short-lived threads.

use crate::{Error, Result};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `statfs` magic of nsfs, the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A network namespace, held open by a file descriptor (cheap to clone).
#[derive(Clone, Debug)]
pub struct Namespace {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    file: File,
}

impl Namespace {
    /// The namespace of the calling thread.
    pub fn current() -> Result<Self> {
        let path = Path::new("/proc/thread-self/ns/net");
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(Namespace { inner: Arc::new(Inner { path: None, file }) })
    }

    /// Opens the namespace bind-mounted (or linked) at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io("open namespace", path, e))?;
        if !is_nsfs(&file) {
            return Err(Error::Invalid(format!("{} is not a network namespace", path.display())));
        }
        Ok(Namespace { inner: Arc::new(Inner { path: Some(path.to_owned()), file }) })
    }

    /// Creates a new namespace and bind-mounts it at `path` (the parent directory is created).
    ///
    /// Fails with `EEXIST` if a namespace is already mounted there.
    pub async fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let target = path.clone();
        in_thread(move || create_blocking(&target)).await??;
        Namespace::open(path)
    }

    /// Bind-mounts this namespace at `path` too (the parent directory is
    /// created); an existing mount of it there is fine.
    pub async fn mount_at(&self, path: impl Into<PathBuf>) -> Result<()> {
        let path = path.into();
        let ns = self.clone();
        in_thread(move || -> Result<()> {
            if Namespace::is_mounted(&path) {
                return Ok(());
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("create namespace file", &path, e))?;
            let source = format!("/proc/self/fd/{}", ns.fd().as_raw_fd());
            nix::mount::mount(Some(source.as_str()), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::io("bind-mount namespace", &path, e.into()))
        })
        .await?
    }

    /// Unmounts and removes the namespace file at `path`. Absent files are fine.
    ///
    /// The kernel destroys the namespace, and the links in it, once nothing
    /// holds it open any more.
    pub fn remove(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::io("unmount namespace", path, e.into())),
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove namespace file", path, e)),
        }
    }

    /// Whether `path` is a mounted network namespace.
    pub fn is_mounted(path: impl AsRef<Path>) -> bool {
        File::open(path.as_ref()).map(|f| is_nsfs(&f)).unwrap_or(false)
    }

    /// The file the namespace is mounted at, if it was opened by path.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The namespace's inode number: the same for every file that names this
    /// namespace, different from any other namespace alive.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.inner.file.metadata().map_or(0, |m| m.ino())
    }

    /// The namespace's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.file.as_fd()
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    ///
    /// The thread exits afterwards, so no other code ever runs in the wrong namespace.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = self.clone();
        in_thread(move || {
            nix::sched::setns(ns.fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("enter namespace", ns.display_path(), e.into()))?;
            Ok(f())
        })
        .await?
    }

    fn display_path(&self) -> PathBuf {
        self.inner.path.clone().unwrap_or_else(|| PathBuf::from("/proc/thread-self/ns/net"))
    }
}

// The cast is a no-op on x86_64 but not on every target (`__fsword_t` varies).
#[allow(clippy::unnecessary_cast)]
fn is_nsfs(file: &File) -> bool {
    nix::sys::statfs::fstatfs(file).map(|s| s.filesystem_type().0 as i64 == NSFS_MAGIC).unwrap_or(false)
}

/// Runs a blocking closure on a fresh thread and awaits its result.
pub(crate) async fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("cnm-netns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Error::io("spawn namespace thread", "", e))?;
    rx.await.map_err(|_| Error::Internal("a namespace thread panicked".into()))
}

pub(crate) fn create_blocking(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    if Namespace::is_mounted(path) {
        return Err(Error::io("create namespace", path, std::io::Error::from_raw_os_error(libc::EEXIST)));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("create namespace file", path, e))?;
    // This thread is ours alone and exits right after: unsharing it cannot
    // leak the new namespace into other code.
    let result = nix::sched::unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io("unshare network namespace", path, e.into()))
        .and_then(|()| {
            nix::mount::mount(Some("/proc/thread-self/ns/net"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::io("bind-mount namespace", path, e.into()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}
