//! The smallest pvsdk guest: print a greeting on the emergency console and
//! power off.
#![no_std]
#![no_main]

use guest_abi::abi::xen::StartInfo;

guest_abi::entry!(main);

fn main(start_info: &'static StartInfo) -> ! {
    guest_abi::entry::console_write(b"Hello from a pvsdk PV guest!\n");
    let _ = start_info;
    guest_abi::entry::shutdown(0)
}
