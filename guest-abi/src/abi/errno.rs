//! Xen errno values (Linux numbering) and the hypercall return convention.
//!
//! Hypercalls return a `long` in `rax`; a negative value is `-errno`.

use core::fmt;

/// A Xen errno value.
///
/// A transparent `i32` newtype rather than a Rust `enum`, so that a value the
/// reference does not list (a newer Xen, a buggy peer) is still representable
/// and round-trips unchanged. The known values are associated constants.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident = $val:expr, $desc:expr;)*) => {
        impl Errno {
            $(
                #[doc = $desc]
                pub const $name: Errno = Errno($val);
            )*

            /// Every errno value the reference lists, in ascending order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];

            /// The symbolic name (`"EINVAL"`), or `None` for an unlisted value.
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The value for a symbolic name such as `"ENOENT"`.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Errno> {
                match name {
                    $(stringify!($name) => Some(Errno::$name),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such file or directory (no such entry).";
    ESRCH = 3, "No such process (no such domain/vCPU).";
    EINTR = 4, "Interrupted.";
    EIO = 5, "I/O error.";
    E2BIG = 7, "Argument list too long.";
    EAGAIN = 11, "Try again.";
    ENOMEM = 12, "Out of memory.";
    EACCES = 13, "Permission denied.";
    EFAULT = 14, "Bad address (guest memory not accessible).";
    EBUSY = 16, "Device or resource busy.";
    EEXIST = 17, "Already exists.";
    ENODEV = 19, "No such device.";
    EISDIR = 21, "Is a directory.";
    EINVAL = 22, "Invalid argument.";
    ENOSPC = 28, "No space left.";
    EROFS = 30, "Read-only.";
    EDOM = 33, "Argument out of domain.";
    ERANGE = 34, "Result out of range.";
    ENOSYS = 38, "Function not implemented.";
    ENOTEMPTY = 39, "Directory not empty.";
    ENODATA = 61, "No data available.";
    ETIME = 62, "Timer expired.";
    EOVERFLOW = 75, "Value too large.";
    EILSEQ = 84, "Illegal byte sequence.";
    ERESTART = 85, "Restart the call.";
    EOPNOTSUPP = 95, "Operation not supported.";
    EISCONN = 106, "Already connected.";
    ETIMEDOUT = 110, "Timed out.";
}

impl Errno {
    /// Wraps a positive errno number.
    #[must_use]
    pub const fn from_raw(errno: i32) -> Self {
        Self(errno)
    }

    /// The positive errno number.
    #[must_use]
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The value a hypercall returns for this error (`-errno`).
    #[must_use]
    pub const fn to_ret(self) -> i64 {
        -(self.0 as i64)
    }

    /// Interprets a hypercall return value: non-negative is success (the
    /// value), negative is `-errno`.
    ///
    /// A negative value whose magnitude does not fit an `i32` (which Xen
    /// never returns) maps to [`Errno::ERANGE`] rather than being truncated.
    pub const fn from_ret(ret: i64) -> Result<u64, Errno> {
        if ret >= 0 {
            // Non-negative i64 always fits u64.
            Ok(ret.unsigned_abs())
        } else {
            let mag = ret.unsigned_abs();
            if mag <= i32::MAX as u64 {
                #[expect(clippy::cast_possible_truncation)] // bounded just above
                Err(Errno(mag as i32))
            } else {
                Err(Errno::ERANGE)
            }
        }
    }

    /// Like [`Errno::from_ret`], discarding a success value.
    pub const fn check(ret: i64) -> Result<(), Errno> {
        match Self::from_ret(ret) {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl core::error::Error for Errno {}
