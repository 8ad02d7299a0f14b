//! A fuzz entry point: random bytes as code and register state must never
//! panic the interpreter.

use crate::interp::InterpVcpu;
use crate::mem::{MachineAddr, MachineMemory};
use crate::{CpuEnv, CpuState, Deadline, VcpuBackend};

struct NullEnv;

impl CpuEnv for NullEnv {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
        [leaf, 0, 0, 0]
    }
    fn rdtsc(&self) -> u64 {
        0
    }
}

/// Page-table layout used by [`run_random`]: machine frames 0..=3 hold the
/// L4/L3/L2/L1 tables, frames 4..=7 are mapped at linear 0x1000..0x5000
/// (code at 0x1000, data 0x2000..0x4000, the stack top at 0x5000); the
/// frame at linear 0x3000 is read-only and 0x4000 is NX.
fn build(mem: &MachineMemory) {
    let _ = mem.write_u64(MachineAddr(0), 0x1000 | 7);
    let _ = mem.write_u64(MachineAddr(0x1000), 0x2000 | 7);
    let _ = mem.write_u64(MachineAddr(0x2000), 0x3000 | 7);
    for i in 1u64..=4 {
        let mut e = ((3 + i) << 12) | 5;
        if i != 3 {
            e |= 2;
        }
        if i == 4 {
            e |= 1 << 63;
        }
        let _ = mem.write_u64(MachineAddr(0x3000 + i * 8), e);
    }
}

/// Run `data` as guest code with a register state derived from it; never
/// panics. The first 256 bytes seed registers (16 × u64 GPRs + 8 XMMs),
/// the rest is code.
pub fn run_random(data: &[u8]) {
    let Ok(mem) = MachineMemory::new(16) else {
        return;
    };
    build(&mem);
    let mut st = CpuState::default();
    let (regs, code) = data.split_at(data.len().min(256));
    for (i, ch) in regs.chunks(8).enumerate() {
        let mut b = [0u8; 8];
        b[..ch.len()].copy_from_slice(ch);
        let v = u64::from_le_bytes(b);
        if let Some(g) = st.gpr.get_mut(i) {
            *g = v;
        } else if let Some(x) = st.xmm.get_mut(i - 16) {
            *x = u128::from(v) * 0x1_0000_0001;
        }
    }
    // Keep RSP inside the mapped data area most of the time.
    st.gpr[4] = 0x4800 + (st.gpr[4] & 0x7f8);
    let code = &code[..code.len().min(4096)];
    let _ = mem.write(MachineAddr(0x4000), code);
    st.rip = 0x1000;
    st.cr3 = 0;
    st.rflags = 2 | (st.gpr[0] & 0xcd5);
    let mut cpu = InterpVcpu::new();
    for _ in 0..4 {
        let _ = cpu.run(&mut st, &mem, &NullEnv, Deadline::Instructions(2000));
        if st.rip.wrapping_sub(0x1000) >= 0x1000 {
            st.rip = 0x1000 + (st.rip & 0xfff);
        }
    }
}
