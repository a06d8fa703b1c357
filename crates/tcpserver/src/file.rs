//! Opening a file for [`Connections::send_file`](crate::driver::Connections::send_file) (the
//! sending itself is the driver's file job, `driver/file.rs`).

use std::fs::File;
use std::io;
use std::path::Path;

#[cfg(doc)]
use crate::driver::Connections;
use crate::error::{Error, Result};

/// Opens `path` for [`Connections::send_file`]: `ENOENT`, `EACCES` and `EISDIR` come out as
/// OS errors with those numbers.
pub fn open_for_send(path: &Path) -> Result<File> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(Error::Io(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    Ok(file)
}

/// A file from a descriptor the caller keeps owning (it is duplicated).
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
    if file.metadata()?.is_dir() {
        return Err(Error::Io(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    Ok(file)
}

/// Descriptors are a Unix notion: elsewhere `fd` is an unsupported option.
#[cfg(not(unix))]
pub fn dup_for_send(_fd: i32) -> Result<File> {
    Err(Error::Unsupported { option: "fd" })
}
