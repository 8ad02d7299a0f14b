#![no_std]
#![no_main]
guest_abi::entry!(main);
fn main(_si: &'static guest_abi::abi::xen::StartInfo) -> ! {
    xtf_common::finish()
}
