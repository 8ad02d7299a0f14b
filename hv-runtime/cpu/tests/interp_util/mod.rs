//! Shared helpers for the interpreter tests: a tiny guest with page tables.
#![expect(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;

use hv_cpu::interp::InterpVcpu;
use hv_cpu::mem::{MachineAddr, MachineMemory};
use hv_cpu::{CpuEnv, CpuState, Deadline, Exit, VcpuBackend};
use iced_x86::code_asm::CodeAssembler;

pub mod workload;

#[allow(unused_imports)]
// shared by several test crates, each using a subset (`expect` would fail in some)
pub use hv_cpu::interp::mmu::pte::{A, D, NX, P, RW, US};

pub struct Env;

impl CpuEnv for Env {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        [leaf, subleaf, 0x1234, 0x5678]
    }
    fn rdtsc(&self) -> u64 {
        0x1122_3344_5566_7788
    }
}

/// An environment whose `cpuid` is that of a fixed CPU of `.0`'s model.
pub struct ModelEnv(pub hv_cpu::model::CpuModel);

impl CpuEnv for ModelEnv {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        self.0.cpuid(leaf, subleaf)
    }
    fn rdtsc(&self) -> u64 {
        0
    }
}

pub struct Guest {
    pub mem: MachineMemory,
    pub st: CpuState,
    pub cpu: InterpVcpu,
    next: u64,
    pub pages: HashMap<u64, u64>,
}

impl Guest {
    pub fn new() -> Self {
        let mem = MachineMemory::new(512).unwrap();
        let st = CpuState {
            cr3: 0x1000,
            ..CpuState::default()
        };
        let mut g = Self {
            mem,
            st,
            cpu: InterpVcpu::new(),
            next: 2,
            pages: HashMap::new(),
        };
        // Default layout: code at 0x40_0000, data at 0x60_0000.., stack top 0x80_0000.
        for i in 0..4 {
            g.map_new(0x40_0000 + i * 0x1000, P | US);
        }
        for i in 0..8 {
            g.map_new(0x60_0000 + i * 0x1000, P | RW | US | NX);
        }
        for i in 0..4 {
            g.map_new(0x7f_c000 + i * 0x1000, P | RW | US | NX);
        }
        g.st.gpr[4] = 0x80_0000;
        g.st.rip = 0x40_0000;
        g
    }

    pub fn alloc(&mut self) -> u64 {
        let f = self.next;
        self.next += 1;
        f
    }

    /// Machine address of the PTE for `lin` (creating tables).
    pub fn pte_addr(&mut self, lin: u64) -> u64 {
        let mut table = self.st.cr3;
        for level in (2..=4).rev() {
            let idx = (lin >> (12 + 9 * (level - 1))) & 511;
            let ea = table + idx * 8;
            let e = self.mem.read_u64(MachineAddr(ea)).unwrap();
            if e & P == 0 {
                let f = self.alloc();
                self.mem
                    .write_u64(MachineAddr(ea), (f << 12) | P | RW | US)
                    .unwrap();
                table = f << 12;
            } else {
                table = e & 0x000f_ffff_ffff_f000;
            }
        }
        table + ((lin >> 12) & 511) * 8
    }

    pub fn map(&mut self, lin: u64, mfn: u64, flags: u64) {
        let pa = self.pte_addr(lin);
        self.mem
            .write_u64(MachineAddr(pa), (mfn << 12) | flags)
            .unwrap();
        self.pages.insert(lin & !0xfff, mfn);
    }

    pub fn map_new(&mut self, lin: u64, flags: u64) -> u64 {
        let f = self.alloc();
        self.map(lin, f, flags);
        f
    }

    pub fn pte(&mut self, lin: u64) -> u64 {
        let pa = self.pte_addr(lin);
        self.mem.read_u64(MachineAddr(pa)).unwrap()
    }

    pub fn set_pte(&mut self, lin: u64, v: u64) {
        let pa = self.pte_addr(lin);
        self.mem.write_u64(MachineAddr(pa), v).unwrap();
    }

    pub fn maddr(&self, lin: u64) -> u64 {
        (self.pages[&(lin & !0xfff)] << 12) | (lin & 0xfff)
    }

    /// Hypervisor-side write through the linear mapping.
    pub fn poke(&self, lin: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let l = lin + i as u64;
            self.mem.write_u8(MachineAddr(self.maddr(l)), *b).unwrap();
        }
    }

    pub fn peek_u64(&self, lin: u64) -> u64 {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = self
                .mem
                .read_u8(MachineAddr(self.maddr(lin + i as u64)))
                .unwrap();
        }
        u64::from_le_bytes(b)
    }

    /// Assemble at `lin` and write the code.
    pub fn asm(&mut self, lin: u64, f: impl FnOnce(&mut CodeAssembler)) -> usize {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a);
        let bytes = a.assemble(lin).unwrap();
        self.poke(lin, &bytes);
        bytes.len()
    }

    /// Machine addresses of the PML4E, PDPTE, PDE and PTE walked for `lin`
    /// under `cr3` (the upper three levels must be present; creates nothing).
    pub fn entry_addrs_under(&self, cr3: u64, lin: u64) -> [u64; 4] {
        let mut out = [0u64; 4];
        let mut table = cr3 & 0x000f_ffff_ffff_f000;
        for (i, level) in (1..=4u64).rev().enumerate() {
            let ea = table + ((lin >> (12 + 9 * (level - 1))) & 511) * 8;
            out[i] = ea;
            let e = self.mem.read_u64(MachineAddr(ea)).unwrap();
            assert!(
                level == 1 || e & P != 0,
                "level {level} of {lin:#x} not present"
            );
            table = e & 0x000f_ffff_ffff_f000;
        }
        out
    }

    /// [`Self::entry_addrs_under`] for the current `cr3`.
    pub fn entry_addrs(&self, lin: u64) -> [u64; 4] {
        self.entry_addrs_under(self.st.cr3, lin)
    }

    /// The values of the four entries walked for `lin` (PML4E first).
    pub fn entries(&self, lin: u64) -> [u64; 4] {
        self.entry_addrs(lin)
            .map(|ea| self.mem.read_u64(MachineAddr(ea)).unwrap())
    }

    /// Machine address of the PTE for `lin` in the tables rooted at `cr3`
    /// (creating missing tables with P|RW|US).
    pub fn pte_addr_under(&mut self, cr3: u64, lin: u64) -> u64 {
        let mut table = cr3 & 0x000f_ffff_ffff_f000;
        for level in (2..=4).rev() {
            let ea = table + ((lin >> (12 + 9 * (level - 1))) & 511) * 8;
            let e = self.mem.read_u64(MachineAddr(ea)).unwrap();
            if e & P == 0 {
                let f = self.alloc();
                self.mem
                    .write_u64(MachineAddr(ea), (f << 12) | P | RW | US)
                    .unwrap();
                table = f << 12;
            } else {
                table = e & 0x000f_ffff_ffff_f000;
            }
        }
        table + ((lin >> 12) & 511) * 8
    }

    /// Assemble code for address `ip` and write it into machine frame `mfn`
    /// (at `ip`'s page offset), without touching any mapping.
    pub fn asm_in_frame(&self, mfn: u64, ip: u64, f: impl FnOnce(&mut CodeAssembler)) -> usize {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a);
        let bytes = a.assemble(ip).unwrap();
        assert!((ip & 0xfff) as usize + bytes.len() <= 4096);
        self.mem
            .write(MachineAddr((mfn << 12) | (ip & 0xfff)), &bytes)
            .unwrap();
        bytes.len()
    }

    /// Read `n` bytes through the linear mapping (hypervisor side).
    pub fn peek_bytes(&self, lin: u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| {
                self.mem
                    .read_u8(MachineAddr(self.maddr(lin + i as u64)))
                    .unwrap()
            })
            .collect()
    }

    pub fn run(&mut self) -> Exit {
        self.cpu.run(
            &mut self.st,
            &self.mem,
            &Env,
            Deadline::Instructions(1_000_000),
        )
    }

    /// Run with another environment (e.g. a [`ModelEnv`]).
    pub fn run_with(&mut self, env: &dyn CpuEnv) -> Exit {
        self.cpu.run(
            &mut self.st,
            &self.mem,
            env,
            Deadline::Instructions(1_000_000),
        )
    }

    pub fn run_n(&mut self, n: u64) -> Exit {
        self.cpu
            .run(&mut self.st, &self.mem, &Env, Deadline::Instructions(n))
    }
}

pub fn gp0() -> Exit {
    Exit::Exception {
        vector: 13,
        error_code: Some(0),
        cr2: 0,
    }
}

pub fn pf(code: u32, cr2: u64) -> Exit {
    Exit::Exception {
        vector: 14,
        error_code: Some(code),
        cr2,
    }
}

pub fn ud() -> Exit {
    Exit::Exception {
        vector: 6,
        error_code: None,
        cr2: 0,
    }
}
