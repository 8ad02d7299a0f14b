//! Example PV guests and host programs for pvsdk.
#![forbid(unsafe_code)]
