//! Volatile views of the pages Xen writes concurrently: `shared_info`,
//! `vcpu_info` and `vcpu_time_info`.
//!
//! No Rust reference to the shared memory is ever created (Xen may change it
//! at any time, which `&T` forbids). Each view holds a raw pointer whose
//! validity is promised once, by the `unsafe` constructor; every access is a
//! `read_volatile`/`write_volatile` of one naturally aligned field, located
//! with `offset_of!` so the offsets are the ones checked in [`crate::abi`].
#![expect(unsafe_code)]

use core::mem::offset_of;
use core::ptr::NonNull;

use crate::abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS};
use crate::pvclock::{TimeInfoSource, WallclockSource};

/// Reads the `F` at byte `offset` of `*base`.
///
/// # Safety
///
/// `base` must be valid for reads of `T` and `offset` must be the offset of
/// a field of type `F` in `T` (so it is in bounds and aligned).
unsafe fn read_field<T, F: Copy>(base: NonNull<T>, offset: usize) -> F {
    // SAFETY: by the caller's contract the field lies inside `*base` and is
    // aligned for `F`; volatile because Xen writes it concurrently.
    unsafe { base.byte_add(offset).cast::<F>().read_volatile() }
}

/// Writes the `F` at byte `offset` of `*base`.
///
/// # Safety
///
/// As for [`read_field`], and `base` must be valid for writes.
unsafe fn write_field<T, F: Copy>(base: NonNull<T>, offset: usize, v: F) {
    // SAFETY: as for `read_field`.
    unsafe { base.byte_add(offset).cast::<F>().write_volatile(v) }
}

/// A `vcpu_time_info` that Xen updates.
#[derive(Clone, Copy, Debug)]
pub struct SharedTimeInfo {
    ptr: NonNull<VcpuTimeInfo>,
}

impl SharedTimeInfo {
    /// Wraps the time info at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a mapped, 8-byte-aligned `vcpu_time_info` that
    /// stays mapped and readable for as long as this value (or a copy) is
    /// used. Only Xen may write it.
    #[must_use]
    pub const unsafe fn new(ptr: NonNull<VcpuTimeInfo>) -> Self {
        Self { ptr }
    }
}

impl TimeInfoSource for SharedTimeInfo {
    fn version(&self) -> u32 {
        // SAFETY: `new`'s contract; `version` is a `u32` field.
        unsafe { read_field(self.ptr, offset_of!(VcpuTimeInfo, version)) }
    }

    fn fields(&self) -> VcpuTimeInfo {
        let p = self.ptr;
        // SAFETY: `new`'s contract; each offset below names a field of
        // exactly the type read.
        unsafe {
            VcpuTimeInfo {
                version: 0,
                pad0: 0,
                tsc_timestamp: read_field(p, offset_of!(VcpuTimeInfo, tsc_timestamp)),
                system_time: read_field(p, offset_of!(VcpuTimeInfo, system_time)),
                tsc_to_system_mul: read_field(p, offset_of!(VcpuTimeInfo, tsc_to_system_mul)),
                tsc_shift: read_field(p, offset_of!(VcpuTimeInfo, tsc_shift)),
                flags: read_field(p, offset_of!(VcpuTimeInfo, flags)),
                pad1: [0; 2],
            }
        }
    }
}

/// A `vcpu_info` shared with Xen.
#[derive(Clone, Copy, Debug)]
pub struct SharedVcpuInfo {
    ptr: NonNull<VcpuInfo>,
}

impl SharedVcpuInfo {
    /// Wraps the `vcpu_info` at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a mapped, writable, 8-byte-aligned `vcpu_info`
    /// (inside shared_info or registered with `VCPUOP_register_vcpu_info`)
    /// that stays mapped while this value (or a copy) is used. Only Xen and
    /// this vCPU's guest code may write it.
    #[must_use]
    pub const unsafe fn new(ptr: NonNull<VcpuInfo>) -> Self {
        Self { ptr }
    }

    /// `evtchn_upcall_pending` (set by Xen).
    #[must_use]
    pub fn upcall_pending(&self) -> u8 {
        // SAFETY: `new`'s contract; a `u8` field.
        unsafe { read_field(self.ptr, offset_of!(VcpuInfo, evtchn_upcall_pending)) }
    }

    /// Clears `evtchn_upcall_pending` (first step of the upcall handler).
    pub fn clear_upcall_pending(&self) {
        // SAFETY: `new`'s contract; a `u8` field.
        unsafe { write_field(self.ptr, offset_of!(VcpuInfo, evtchn_upcall_pending), 0u8) }
    }

    /// `evtchn_upcall_mask` (1 = events masked).
    #[must_use]
    pub fn upcall_mask(&self) -> u8 {
        // SAFETY: `new`'s contract; a `u8` field.
        unsafe { read_field(self.ptr, offset_of!(VcpuInfo, evtchn_upcall_mask)) }
    }

    /// Sets `evtchn_upcall_mask`.
    pub fn set_upcall_mask(&self, mask: u8) {
        // SAFETY: `new`'s contract; a `u8` field.
        unsafe { write_field(self.ptr, offset_of!(VcpuInfo, evtchn_upcall_mask), mask) }
    }

    /// `arch.cr2` (fault address of the last #PF bounce).
    #[must_use]
    pub fn cr2(&self) -> u64 {
        // SAFETY: `new`'s contract; a `u64` field.
        unsafe { read_field(self.ptr, offset_of!(VcpuInfo, arch.cr2)) }
    }

    /// This vCPU's time info.
    #[must_use]
    pub fn time(&self) -> SharedTimeInfo {
        // SAFETY: `time` is a field of the `vcpu_info` `new` vouched for, so
        // it is mapped, aligned and lives as long.
        unsafe { SharedTimeInfo::new(self.ptr.byte_add(offset_of!(VcpuInfo, time)).cast()) }
    }
}

/// The `shared_info` page.
#[derive(Clone, Copy, Debug)]
pub struct SharedInfoPage {
    ptr: NonNull<SharedInfo>,
}

impl SharedInfoPage {
    /// Wraps the shared_info page mapped at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the page-aligned mapping of this domain's shared_info
    /// frame (writable), valid while this value (or a copy) is used.
    #[must_use]
    pub const unsafe fn new(ptr: NonNull<SharedInfo>) -> Self {
        Self { ptr }
    }

    /// `vcpu_info[vcpu]` for `vcpu < 32`.
    #[must_use]
    pub fn vcpu_info(&self, vcpu: usize) -> Option<SharedVcpuInfo> {
        if vcpu >= XEN_LEGACY_MAX_VCPUS {
            return None;
        }
        let off = offset_of!(SharedInfo, vcpu_info) + vcpu * core::mem::size_of::<VcpuInfo>();
        // SAFETY: `vcpu < 32`, so the slot lies inside the page `new`
        // vouched for and is 64-byte aligned.
        Some(unsafe { SharedVcpuInfo::new(self.ptr.byte_add(off).cast()) })
    }
}

impl WallclockSource for SharedInfoPage {
    fn wc_version(&self) -> u32 {
        // SAFETY: `new`'s contract; a `u32` field.
        unsafe { read_field(self.ptr, offset_of!(SharedInfo, wc_version)) }
    }

    fn wc_fields(&self) -> (u32, u32, u32) {
        // SAFETY: `new`'s contract; all three are `u32` fields.
        unsafe {
            (
                read_field(self.ptr, offset_of!(SharedInfo, wc_sec)),
                read_field(self.ptr, offset_of!(SharedInfo, wc_nsec)),
                read_field(self.ptr, offset_of!(SharedInfo, wc_sec_hi)),
            )
        }
    }
}
