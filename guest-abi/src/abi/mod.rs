//! Raw Xen PV64 types with exact layouts.
