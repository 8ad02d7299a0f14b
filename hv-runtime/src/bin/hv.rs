//! `hv`: run Xen x86-64 PV guests without a Xen host.

fn main() {
    println!("hv {}", env!("CARGO_PKG_VERSION"));
}
