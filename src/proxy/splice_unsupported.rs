//! Stand-in for `splice.rs` where `splice(2)` does not exist (not Linux): creating a pipe
//! fails, so links keep the buffered fast path, which works everywhere.

use std::io;
use std::os::fd::AsFd;

/// Never created on this platform.
pub(crate) struct Pipe {
    _never: std::convert::Infallible,
}

impl Pipe {
    /// Always `Unsupported`: the link falls back to buffered copying.
    pub(crate) fn new() -> io::Result<Pipe> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "splice(2) needs Linux",
        ))
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self._never {}
    }

    pub(crate) fn drain(&mut self) -> io::Result<bytes::Bytes> {
        match self._never {}
    }
}

/// Never: pipes cannot be created, so links never try.
pub(crate) fn enabled() -> bool {
    false
}

pub(crate) fn is_unsupported(_e: &io::Error) -> bool {
    true
}

pub(crate) fn disable(_e: &io::Error) {}

pub(crate) fn splice_in(_src: &impl AsFd, pipe: &mut Pipe) -> io::Result<usize> {
    match pipe._never {}
}

pub(crate) fn splice_out(pipe: &mut Pipe, _dst: &impl AsFd) -> io::Result<usize> {
    match pipe._never {}
}
