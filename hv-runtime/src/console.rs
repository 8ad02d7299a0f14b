//! Console input: bytes `hv` hands to the *focused* domain (stdin in the
//! `hv` binary; anything in tests).
//!
//! The source is injectable ([`ConsoleInput`]): [`ThreadedInput`] runs a
//! reader thread that feeds a bounded buffer (so the run loop never blocks
//! on stdin), and a plain `VecDeque<u8>` is a ready-made in-memory source.
//!
//! The focused domain receives input one of two ways (Note [Console input
//! routing]):
//!
//! * through its PV console ring: the run loop copies available bytes into
//!   the ring's `in` half (never more than the free space, so nothing is
//!   lost) and raises the console event channel;
//! * through `console_io(CONSOLEIO_read)`, which returns what is available
//!   right now (possibly 0 bytes) without blocking.
//!
//! Note [Console input routing]: both paths read the same stream, so a byte
//! must go to exactly one, and a byte pushed into a ring nobody reads is
//! lost to `CONSOLEIO_read`. So input stays in the source until the domain
//! shows which path it uses: the ring is filled only once the domain has
//! written to it (its frontend is live, as a real console frontend writes
//! before it reads), and never for a domain that has called
//! `CONSOLEIO_read` (as Xen's console-domain path does). Other domains get
//! no input: `CONSOLEIO_read` returns 0 for them.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bytes the reader thread buffers before it stops reading (back-pressure
/// on the writer of stdin).
pub const INPUT_BUFFER: usize = 64 * 1024;

/// A non-blocking source of console input bytes.
pub trait ConsoleInput: Send + std::fmt::Debug {
    /// Move up to `buf.len()` bytes that are available now into `buf`;
    /// never blocks. Returns how many were moved (0: none yet, or EOF).
    fn read_available(&mut self, buf: &mut [u8]) -> usize;
}

impl ConsoleInput for VecDeque<u8> {
    fn read_available(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len());
        for (dst, src) in buf.iter_mut().zip(self.drain(..n)) {
            *dst = src;
        }
        n
    }
}

#[derive(Debug, Default)]
struct Shared {
    buf: VecDeque<u8>,
    eof: bool,
}

/// Input read by a background thread from any [`Read`] (stdin in `hv`)
/// into a buffer of at most [`INPUT_BUFFER`] bytes.
#[derive(Debug)]
pub struct ThreadedInput {
    shared: Arc<(Mutex<Shared>, Condvar)>,
}

impl ThreadedInput {
    /// Start a reader thread on `reader`. The thread ends at EOF or on a
    /// read error (treated as EOF), or blocks in `read` for the life of the
    /// process (a detached thread does not keep `hv` alive).
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn<R: Read + Send + 'static>(mut reader: R) -> std::io::Result<Self> {
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("hv-console-input".into())
            .spawn(move || {
                let (lock, cv) = &*theirs;
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match reader.read(&mut chunk) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::debug!(error = %e, "console input read failed; treating as EOF");
                            0
                        }
                    };
                    let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    if n == 0 {
                        s.eof = true;
                        cv.notify_all();
                        return;
                    }
                    while s.buf.len() + n > INPUT_BUFFER {
                        s = cv.wait(s).unwrap_or_else(PoisonError::into_inner);
                    }
                    s.buf.extend(&chunk[..n]);
                    cv.notify_all();
                }
            })?;
        Ok(Self { shared })
    }

    /// Wait (at most `timeout`) until at least `n` bytes are buffered or the
    /// source has ended; returns how many are buffered. For tests and
    /// tools that need input to have arrived before a run.
    #[must_use]
    pub fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let (lock, cv) = &*self.shared;
        let end = Instant::now() + timeout;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while s.buf.len() < n && !s.eof {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = cv
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.buf.len()
    }

    /// Whether the source has ended and everything was consumed.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        let s = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.eof && s.buf.is_empty()
    }
}

impl ConsoleInput for ThreadedInput {
    fn read_available(&mut self, buf: &mut [u8]) -> usize {
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let n = s.buf.read_available(buf);
        if n > 0 {
            // Room again: wake the reader if it waits for space.
            cv.notify_all();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_input_delivers_everything_in_order_without_blocking() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251).to_le_bytes()[0])
            .collect();
        let mut input = ThreadedInput::spawn(std::io::Cursor::new(data.clone())).expect("spawn");
        let mut got = Vec::new();
        let mut buf = [0u8; 1000];
        let end = Instant::now() + Duration::from_secs(30);
        while got.len() < data.len() && Instant::now() < end {
            let n = input.read_available(&mut buf);
            got.extend_from_slice(&buf[..n]);
            if n == 0 {
                let _ = input.wait_for(1, Duration::from_millis(100));
            }
        }
        assert_eq!(got, data);
        let _ = input.wait_for(1, Duration::from_secs(5));
        assert!(input.is_finished());
    }

    #[test]
    fn empty_source_reads_nothing() {
        let mut input = ThreadedInput::spawn(std::io::empty()).expect("spawn");
        assert_eq!(input.wait_for(1, Duration::from_secs(5)), 0);
        assert_eq!(input.read_available(&mut [0u8; 8]), 0);
        assert!(input.is_finished());
    }

    #[test]
    fn vecdeque_source_hands_out_at_most_the_buffer() {
        let mut q: VecDeque<u8> = b"hello".iter().copied().collect();
        let mut b = [0u8; 3];
        assert_eq!(q.read_available(&mut b), 3);
        assert_eq!(&b, b"hel");
        assert_eq!(q.read_available(&mut b), 2);
        assert_eq!(&b[..2], b"lo");
        assert_eq!(q.read_available(&mut b), 0);
    }
}

/// An in-memory console sink (for [`crate::hv::Hypervisor::new`]'s `out`):
/// clones share one buffer, so a test or an embedding program keeps one
/// clone and reads what the guests printed with [`ConsoleCapture::text`].
#[derive(Clone, Debug, Default)]
pub struct ConsoleCapture(Arc<Mutex<Vec<u8>>>);

impl ConsoleCapture {
    /// Everything written so far, as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl std::io::Write for ConsoleCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
