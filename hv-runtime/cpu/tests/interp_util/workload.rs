//! The compiled compute workload run by the interpreter tests and benches:
//! plain `extern "C"` functions with no calls to other functions, executed
//! from the host binary's own code mapped into guest memory.
// `allow`, not `expect`: this file is compiled into several test crates
// and the bench, and only some of them leave parts of it unused.
#![allow(dead_code)]
#![expect(clippy::unwrap_used, clippy::cast_possible_truncation)] // workload code truncates on purpose

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use hv_cpu::interp::InterpVcpu;
use hv_cpu::mem::{MachineAddr, MachineMemory};
use hv_cpu::{CpuState, Deadline, Exit, VcpuBackend};

static K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 compression over `blocks` 64-byte blocks of xorshift data
/// (i.e. `64 * blocks` bytes); returns the folded state.
#[inline(never)]
pub extern "C" fn sha256_work(seed: u64, blocks: u64) -> u64 {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut x = seed | 1;
    let mut i = 0;
    while i < blocks {
        // A non-constant fill keeps unoptimised builds from calling `memset`.
        let mut w = [x as u32; 64];
        for wt in w.iter_mut().take(16) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *wt = x as u32;
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for t in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[t])
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
        h[5] = h[5].wrapping_add(f);
        h[6] = h[6].wrapping_add(g);
        h[7] = h[7].wrapping_add(hh);
        i += 1;
    }
    let mut r = 0u64;
    for v in h {
        r = r.rotate_left(17) ^ u64::from(v);
    }
    r
}

/// Bitwise CRC-32 (IEEE) over `len` xorshift bytes.
#[inline(never)]
pub extern "C" fn crc32_work(seed: u64, len: u64) -> u64 {
    let mut crc = 0xffff_ffffu32;
    let mut x = seed | 1;
    let mut i = 0;
    while i < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        crc ^= u32::from(x as u8);
        for _ in 0..8 {
            let m = 0u32.wrapping_sub(crc & 1);
            crc = (crc >> 1) ^ (0xedb8_8320 & m);
        }
        i += 1;
    }
    u64::from(!crc)
}

use hv_cpu::interp::mmu::pte::{NX, P, RW, US};

/// Stack top and the `hlt` return page (away from the host binary).
pub const STACK_TOP: u64 = 0x10_0000_0000;
pub const RET_PAGE: u64 = 0x20_0000_0000;

/// A guest that maps this host binary's own code and read-only data at
/// their runtime addresses.
pub struct HostImage {
    pub mem: MachineMemory,
    pub cr3: u64,
    next: u64,
}

impl HostImage {
    fn alloc(&mut self) -> u64 {
        let f = self.next;
        self.next += 1;
        f
    }

    fn map(&mut self, lin: u64, mfn: u64, flags: u64) {
        let mut table = self.cr3;
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
        let pa = table + ((lin >> 12) & 511) * 8;
        self.mem
            .write_u64(MachineAddr(pa), (mfn << 12) | flags)
            .unwrap();
    }

    /// Map the executable's file-backed segments (from `/proc/self/maps`,
    /// contents copied from `/proc/self/mem`), a stack and the `hlt` page.
    pub fn load() -> Self {
        let mem = MachineMemory::new(1 << 17).unwrap();
        let mut img = Self {
            mem,
            cr3: 0x1000,
            next: 2,
        };
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut selfmem = std::fs::File::open("/proc/self/mem").unwrap();
        let mut done: HashMap<u64, ()> = HashMap::new();
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let range = it.next().unwrap();
            let perms = it.next().unwrap();
            let path = it.nth(3).unwrap_or("");
            if std::path::Path::new(path) != exe.as_path() || !perms.starts_with('r') {
                continue;
            }
            let (s, e) = range.split_once('-').unwrap();
            let s = u64::from_str_radix(s, 16).unwrap();
            let e = u64::from_str_radix(e, 16).unwrap();
            let mut page = vec![0u8; 4096];
            let mut a = s;
            while a < e {
                if done.insert(a, ()).is_none() {
                    selfmem.seek(SeekFrom::Start(a)).unwrap();
                    selfmem.read_exact(&mut page).unwrap();
                    let f = img.alloc();
                    img.mem.write(MachineAddr(f << 12), &page).unwrap();
                    let mut flags = P | US;
                    if !perms.contains('x') {
                        flags |= NX;
                    }
                    img.map(a, f, flags);
                }
                a += 4096;
            }
        }
        for i in 1..=64 {
            let f = img.alloc();
            img.map(STACK_TOP - i * 4096, f, P | RW | US | NX);
        }
        let f = img.alloc();
        img.mem.write_u8(MachineAddr(f << 12), 0xf4).unwrap();
        img.map(RET_PAGE, f, P | US);
        img
    }

    /// Call `f(a0, a1)` in the guest: returns `(rax, instructions retired)`.
    pub fn call(
        &self,
        vcpu: &mut InterpVcpu,
        f: extern "C" fn(u64, u64) -> u64,
        a0: u64,
        a1: u64,
    ) -> (u64, u64) {
        let mut st = CpuState {
            cr3: self.cr3,
            ..CpuState::default()
        };
        st.rip = f as usize as u64;
        st.gpr[7] = a0;
        st.gpr[6] = a1;
        st.gpr[4] = STACK_TOP - 8;
        self.mem.write_u64(MachineAddr(0), 0).unwrap();
        // Push the return address through the guest mapping: the stack's
        // top page is the first stack frame allocated; write via a walk.
        let sp = STACK_TOP - 8;
        let ma = self.walk(sp);
        self.mem.write_u64(MachineAddr(ma), RET_PAGE).unwrap();
        let before = vcpu.stats().retired;
        let exit = vcpu.run(&mut st, &self.mem, &super::Env, Deadline::None);
        assert_eq!(
            exit,
            Exit::Exception {
                vector: 13,
                error_code: Some(0),
                cr2: 0
            },
            "unexpected exit at rip {:#x}",
            st.rip
        );
        assert_eq!(st.rip, RET_PAGE, "did not return to the hlt page");
        (st.gpr[0], vcpu.stats().retired - before)
    }

    fn walk(&self, lin: u64) -> u64 {
        let mut table = self.cr3;
        for level in (1..=4).rev() {
            let idx = (lin >> (12 + 9 * (level - 1))) & 511;
            let e = self.mem.read_u64(MachineAddr(table + idx * 8)).unwrap();
            table = e & 0x000f_ffff_ffff_f000;
        }
        table | (lin & 0xfff)
    }
}
