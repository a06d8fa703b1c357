//! Listening Unix domain sockets: a stale socket file is replaced (never a live socket or
//! another kind of file), permissions are applied after `bind`, and the file is removed when
//! the listener closes, unless another socket took the path meanwhile.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::Address;
use crate::error::{Error, Result};
use crate::stream::Stream;

/// A listening Unix socket that owns its file.
#[derive(Debug)]
pub(crate) struct UnixListener {
    listener: tokio::net::UnixListener,
    path: PathBuf,
    /// Device and inode of the file this socket created, to remove only that file.
    file: (u64, u64),
}

impl UnixListener {
    /// Binds `path` and listens; `mode` is applied with `chmod` after `bind`. Must run inside
    /// a Tokio runtime.
    pub(crate) fn bind(path: &Path, backlog: u32, mode: Option<u32>) -> Result<Self> {
        let os = |syscall: &'static str| {
            move |source| Error::ListenUnix {
                syscall,
                path: path.to_owned(),
                source,
            }
        };
        remove_stale(path).map_err(os("bind"))?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(os("socket"))?;
        socket.set_nonblocking(true).map_err(os("fcntl"))?;
        socket
            .bind(&SockAddr::unix(path).map_err(os("bind"))?)
            .map_err(os("bind"))?;
        // From here on the file is ours: dropping `created` removes it if a step fails.
        let meta = std::fs::metadata(path).map_err(os("stat"))?;
        let created = Created {
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
        };
        if let Some(mode) = mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(os("chmod"))?;
        }
        socket.listen(backlog as i32).map_err(os("listen"))?;
        let listener =
            tokio::net::UnixListener::from_std(socket.into()).map_err(os("epoll_ctl"))?;
        let (path, file) = created.keep();
        Ok(Self {
            listener,
            path,
            file,
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<(Stream, Address)> {
        let (stream, peer) = self.listener.accept().await?;
        Ok((Stream::Unix(stream), Address::from_unix(&peer)))
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        remove_if_same(&self.path, self.file);
    }
}

/// The socket file of a listener still being set up.
struct Created {
    path: PathBuf,
    file: (u64, u64),
}

impl Created {
    fn keep(self) -> (PathBuf, (u64, u64)) {
        let this = std::mem::ManuallyDrop::new(self);
        (this.path.clone(), this.file)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        remove_if_same(&self.path, self.file);
    }
}

/// Removes `path` if it still is the file `file` (a successor may have replaced it).
fn remove_if_same(path: &Path, file: (u64, u64)) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && (meta.dev(), meta.ino()) == file
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes a socket file nobody listens on (a crashed server's). A live socket, or a file
/// that is not a socket, is `EADDRINUSE`.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let in_use = || io::Error::from_raw_os_error(libc::EADDRINUSE);
    if !meta.file_type().is_socket() {
        return Err(in_use());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => std::fs::remove_file(path),
        _ => Err(in_use()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tcpserver-{}-{name}", std::process::id()))
    }

    #[tokio::test]
    async fn replaces_stale_sockets_only() {
        let path = temp("stale.sock");
        let _ = std::fs::remove_file(&path);
        // A stale socket: bound, then closed without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let l = UnixListener::bind(&path, 16, Some(0o600)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let live = UnixListener::bind(&path, 16, None).unwrap_err();
        assert_eq!(
            live.os_error().unwrap().raw_os_error(),
            Some(libc::EADDRINUSE)
        );
        drop(l);
        assert!(!path.exists(), "the socket file is removed on close");

        std::fs::write(&path, b"data").unwrap();
        let err = UnixListener::bind(&path, 16, None).unwrap_err();
        assert_eq!(
            err.os_error().unwrap().raw_os_error(),
            Some(libc::EADDRINUSE)
        );
        assert_eq!(err.path(), Some(path.as_path()));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"data",
            "a regular file is kept"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
