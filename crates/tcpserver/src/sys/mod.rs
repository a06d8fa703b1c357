//! What socket2 cannot do: `TCP_FASTOPEN` (server side) and `TCP_DEFER_ACCEPT`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod fallback;
#[cfg(not(target_os = "linux"))]
pub(crate) use fallback::*;
