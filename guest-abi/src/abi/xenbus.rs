//! XenBus device states (`io/xenbus.h`), written as decimal strings to a
//! device's `state` node by the frontend and the backend.

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum XenbusState {
    /// Not yet set (no `state` node).
    Unknown = 0,
    /// Setting up.
    Initialising = 1,
    /// Waiting for the peer before finishing setup (backend: waiting for the frontend's details).
    InitWait = 2,
    /// Setup done; details published, waiting to connect.
    Initialised = 3,
    /// Running.
    Connected = 4,
    /// Shutting down, waiting for the peer.
    Closing = 5,
    /// Shut down.
    Closed = 6,
    /// Changing the device configuration.
    Reconfiguring = 7,
    /// Reconfiguration done.
    Reconfigured = 8,
}

impl XenbusState {
    /// All states in numeric order.
    pub const ALL: [XenbusState; 9] = [
        Self::Unknown,
        Self::Initialising,
        Self::InitWait,
        Self::Initialised,
        Self::Connected,
        Self::Closing,
        Self::Closed,
        Self::Reconfiguring,
        Self::Reconfigured,
    ];

    /// The state with numeric value `v`.
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Unknown,
            1 => Self::Initialising,
            2 => Self::InitWait,
            3 => Self::Initialised,
            4 => Self::Connected,
            5 => Self::Closing,
            6 => Self::Closed,
            7 => Self::Reconfiguring,
            8 => Self::Reconfigured,
            _ => return None,
        })
    }

    /// The decimal string stored in xenstore (`"4"` for `Connected`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "0",
            Self::Initialising => "1",
            Self::InitWait => "2",
            Self::Initialised => "3",
            Self::Connected => "4",
            Self::Closing => "5",
            Self::Closed => "6",
            Self::Reconfiguring => "7",
            Self::Reconfigured => "8",
        }
    }

    /// Parses the decimal form read from xenstore (surrounding whitespace and a
    /// trailing NUL are tolerated).
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<Self> {
        let s = s.strip_suffix(&[0]).unwrap_or(s).trim_ascii();
        match s {
            [d @ b'0'..=b'8'] => Self::from_u32(u32::from(d - b'0')),
            _ => None,
        }
    }
}
