//! Opening a file for [`Connections::send_file`](crate::driver::Connections::send_file) (the
//! sending itself is the driver's file job, `driver/file.rs`): without waiting on anyone, and
//! regular files of known size only.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// Opens `path` for [`Connections::send_file`](crate::driver::Connections::send_file) without waiting on anyone: on Unix the file is
/// opened with `O_NONBLOCK` (a FIFO without a writer, a terminal or a device never holds the
/// calling thread) and `O_NOCTTY`, then checked on the open descriptor (`check_sendable`)
/// before `O_NONBLOCK` is cleared. Only regular files pass: a directory is `EISDIR`, a FIFO,
/// socket or device [`Error::NotAFile`], and so is a pseudo-file that reports 0 bytes but has
/// content (`/proc`). Errors of the path carry it ([`Error::File`]: `ENOENT`, `EACCES`,
/// `ENAMETOOLONG`...); a path with a NUL byte is an invalid argument.
///
/// Opening can still wait for a slow or hung file system (NFS, FUSE), as `fs.openSync` does.
pub fn open_for_send(path: &Path) -> Result<File> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(Error::value("file", "a path must not contain NUL bytes"));
    }
    let file = open_nonblocking(path).map_err(|source| match not_openable(path, &source) {
        Some(what) => not_a_file(path, what),
        None => Error::File {
            syscall: "open",
            path: path.into(),
            source,
        },
    })?;
    check_sendable(&file, path.display().to_string(), Some(path))?;
    blocking_again(&file).map_err(|source| Error::File {
        syscall: "fcntl",
        path: path.into(),
        source,
    })?;
    Ok(file)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// `open(2)` of a Unix socket file fails with `ENXIO`: say what the path is instead.
fn not_openable(path: &Path, e: &io::Error) -> Option<&'static str> {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENXIO) {
        return std::fs::metadata(path)
            .ok()
            .map(|m| what_is(&m.file_type()));
    }
    let _ = (path, e);
    None
}

/// Clears the `O_NONBLOCK` the file was opened with (it changes nothing for regular files on
/// Linux, but the descriptor should say what it is).
#[cfg(unix)]
fn blocking_again(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor this `File` owns and keeps open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; only the status flags change.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(unix))]
fn blocking_again(_file: &File) -> io::Result<()> {
    Ok(())
}

fn not_a_file(path: &Path, what: &'static str) -> Error {
    Error::NotAFile {
        target: path.display().to_string(),
        path: Some(path.into()),
        what,
    }
}

/// What a file that is not a regular file is, for [`Error::NotAFile`].
fn what_is(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    if t.is_dir() {
        return "a directory";
    }
    "not a regular file"
}

/// Checks an open file before it is sent: a directory is `EISDIR` (like Node's `read`), any
/// other non-regular file [`Error::NotAFile`]. A regular file that reports 0 bytes is probed
/// with a 1-byte positioned read (the caller's file offset does not move): a real empty file
/// has nothing, a pseudo-file (`/proc/self/status`) has content its size does not show, and
/// one that would block (`/proc/kmsg` opened non-blocking) may get content later. Those are
/// refused rather than sent to their end: their length is unknown (some never end), and a
/// silent 0-byte success would hide that nothing was sent.
pub(crate) fn check_sendable(file: &File, target: String, path: Option<&Path>) -> Result<()> {
    let os = |syscall: &'static str| {
        move |source: io::Error| match path {
            Some(p) => Error::File {
                syscall,
                path: p.into(),
                source,
            },
            None => Error::Io(source),
        }
    };
    let meta = file.metadata().map_err(os("fstat"))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(os("read")(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let not_a_file = |what| Error::NotAFile {
        target: target.clone(),
        path: path.map(Into::into),
        what,
    };
    if !kind.is_file() {
        return Err(not_a_file(what_is(&kind)));
    }
    if meta.len() == 0 {
        match read_at(file, &mut [0u8; 1], 0) {
            Ok(0) => {}
            Ok(_) => {
                return Err(not_a_file(
                    "a pseudo-file that reports 0 bytes but has content (like /proc files)",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(not_a_file(
                    "a pseudo-file whose content is not there yet (it would block)",
                ));
            }
            Err(e) => return Err(os("read")(e)),
        }
    }
    Ok(())
}

/// A file from a descriptor the caller keeps owning (it is duplicated), checked like a path
/// (`check_sendable`).
#[cfg(unix)]
pub fn dup_for_send(fd: i32) -> Result<File> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on any integer is sound: it fails with EBADF for a number
    // that is not an open descriptor and never touches the original.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    // SAFETY: `dup` was just returned by fcntl: an open descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    let file = File::from(owned);
    check_sendable(&file, format!("descriptor {fd}"), None)?;
    Ok(file)
}

/// Descriptors are a Unix notion: elsewhere `fd` is an unsupported option.
#[cfg(not(unix))]
pub fn dup_for_send(_fd: i32) -> Result<File> {
    Err(Error::Unsupported { option: "fd" })
}

/// Reads at `pos` without moving the file's cursor (so a file shared by jobs stays safe).
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

/// Reads at `pos` (Windows: `seek_read`).
#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tcpserver-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn only_regular_files_of_known_size_pass() {
        let fifo = scratch("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let err = open_for_send(&fifo).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotAFile, "{err}");
        assert_eq!(err.file_path(), Some(fifo.as_path()));
        assert!(err.to_string().contains("a FIFO"), "{err}");
        std::fs::remove_file(&fifo).unwrap();

        for (path, what) in [
            ("/dev/zero", "a character device"),
            ("/dev/null", "a character device"),
            ("/proc/self/status", "reports 0 bytes"),
        ] {
            let err = open_for_send(Path::new(path)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotAFile, "{path}: {err}");
            assert!(err.to_string().contains(what), "{err}");
        }

        let sock = scratch("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = open_for_send(&sock).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotAFile, "{err}");
        assert!(err.to_string().contains("a socket"), "{err}");
        std::fs::remove_file(&sock).unwrap();

        let err = open_for_send(Path::new("/tmp")).unwrap_err();
        assert_eq!(err.os_error().unwrap().raw_os_error(), Some(libc::EISDIR));

        let empty = scratch("empty");
        std::fs::write(&empty, b"").unwrap();
        let file = open_for_send(&empty).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0);
        std::fs::remove_file(&empty).unwrap();
    }

    #[test]
    fn bad_paths_are_typed() {
        let err = open_for_send(Path::new("/tmp/a\0b")).unwrap_err();
        assert_eq!(err.option(), Some("file"), "{err}");
        let long = format!("/tmp/{}", "x".repeat(5000));
        let err = open_for_send(Path::new(&long)).unwrap_err();
        assert_eq!(err.syscall(), Some("open"));
        assert_eq!(
            err.os_error().unwrap().raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
        let err = open_for_send(Path::new("/nonexistent/x")).unwrap_err();
        assert_eq!(err.os_error().unwrap().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(err.file_path(), Some(Path::new("/nonexistent/x")));
    }

    #[test]
    fn descriptors_are_checked_too() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let err = dup_for_send(fds[0]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotAFile, "{err}");
        assert!(err.to_string().contains("descriptor"), "{err}");
        // SAFETY: both descriptors came from pipe(2) above and are closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
