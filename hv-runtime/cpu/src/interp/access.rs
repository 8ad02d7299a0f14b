//! Guest memory access through the soft TLB: [`Cpu`]'s `translate`,
//! `rd`/`wr` and friends (the page walk and the TLB are in [`super::mmu`]).

#![expect(clippy::cast_possible_truncation)] // page offsets and indices

use super::ctx::{Cpu, Stop};
use super::mmu::*;
use crate::mem::{MachineAddr, Mfn};
use crate::{pf, vector};

fn bad_machine(lin: u64) -> Stop {
    Stop::Fault(pf_fault(lin, pf::USER | pf::PRESENT | pf::RSVD))
}

impl Cpu<'_> {
    /// Translate the page of `lin` for `acc`, returning the machine address
    /// of its frame.
    #[inline]
    pub(crate) fn translate(&mut self, lin: u64, acc: Acc, ss: bool) -> Result<u64, Stop> {
        let page = lin & !0xfff;
        let i = (lin >> 12) as usize % TLB_ENTRIES;
        if let Some(e) = self.c.tlb.e.get(i) {
            let hit = match acc {
                Acc::Read => e.r == page,
                Acc::Write => e.w == page || (e.r == page && e.wd),
                Acc::Exec => e.x == page,
            };
            if hit {
                return Ok(e.base);
            }
        }
        self.translate_miss(lin, acc, ss)
    }

    #[cold]
    #[inline(never)]
    fn translate_miss(&mut self, lin: u64, acc: Acc, ss: bool) -> Result<u64, Stop> {
        if !canonical(lin) {
            return Err(Stop::Fault(if ss {
                Fault::new(vector::SS, Some(0))
            } else {
                Fault::gp0()
            }));
        }
        let w = walk(self.mem, self.st.cr3, lin, acc).map_err(Stop::Fault)?;
        let page = lin & !0xfff;
        let i = (lin >> 12) as usize % TLB_ENTRIES;
        let code = self.mem.is_code(Mfn(w.frame >> 12));
        if let Some(e) = self.c.tlb.e.get_mut(i) {
            if e.r != page || e.base != w.frame {
                *e = EMPTY;
            }
            e.r = page;
            e.base = w.frame;
            e.wd = w.writable_dirty;
            if w.writable_dirty && !code {
                e.w = page;
            }
            if acc == Acc::Exec && w.exec {
                e.x = page;
            }
        }
        Ok(w.frame)
    }

    /// Read `sz` (1, 2, 4, 8) bytes at linear `lin`.
    #[inline(always)]
    pub(crate) fn rd(&mut self, lin: u64, sz: u8, ss: bool) -> Result<u64, Stop> {
        let off = lin & 0xfff;
        if let Some(e) = self.c.tlb.e.get((lin >> 12) as usize % TLB_ENTRIES)
            && e.r == lin & !0xfff
            && off + u64::from(sz) <= 4096
        {
            let ma = MachineAddr(e.base + off);
            let r = match sz {
                1 => self.mem.read_u8(ma).map(u64::from),
                2 => self.mem.read_u16(ma).map(u64::from),
                4 => self.mem.read_u32(ma).map(u64::from),
                _ => self.mem.read_u64(ma),
            };
            return r.map_err(|_| bad_machine(lin));
        }
        self.rd_slow(lin, sz, ss)
    }

    #[cold]
    #[inline(never)]
    fn rd_slow(&mut self, lin: u64, sz: u8, ss: bool) -> Result<u64, Stop> {
        let mut b = [0u8; 8];
        let n = usize::from(sz).min(8);
        self.rd_bytes(lin, &mut b[..n], ss)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Write the low `sz` bytes of `v` at linear `lin`.
    #[inline(always)]
    pub(crate) fn wr(&mut self, lin: u64, sz: u8, v: u64, ss: bool) -> Result<(), Stop> {
        let off = lin & 0xfff;
        if let Some(e) = self.c.tlb.e.get((lin >> 12) as usize % TLB_ENTRIES)
            && e.w == lin & !0xfff
            && off + u64::from(sz) <= 4096
        {
            let ma = MachineAddr(e.base + off);
            let r = match sz {
                1 => self.mem.write_u8(ma, v as u8),
                2 => self.mem.write_u16(ma, v as u16),
                4 => self.mem.write_u32(ma, v as u32),
                _ => self.mem.write_u64(ma, v),
            };
            return r.map_err(|_| bad_machine(lin));
        }
        self.wr_slow(lin, sz, v, ss)
    }

    #[cold]
    #[inline(never)]
    fn wr_slow(&mut self, lin: u64, sz: u8, v: u64, ss: bool) -> Result<(), Stop> {
        let b = v.to_le_bytes();
        let n = usize::from(sz).min(8);
        self.wr_bytes(lin, &b[..n], ss)
    }

    /// Read bytes at `lin` (any length, any page crossing).
    pub(crate) fn rd_bytes(&mut self, lin: u64, buf: &mut [u8], ss: bool) -> Result<(), Stop> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = lin.wrapping_add(done as u64);
            let base = self.translate(a, Acc::Read, ss)?;
            let off = a & 0xfff;
            let chunk = ((4096 - off) as usize).min(buf.len() - done);
            if let Some(dst) = buf.get_mut(done..done + chunk) {
                self.mem
                    .read(MachineAddr(base + off), dst)
                    .map_err(|_| bad_machine(a))?;
            }
            done += chunk;
        }
        Ok(())
    }

    /// Write bytes at `lin`: every page is translated (and may fault) before
    /// anything is written.
    pub(crate) fn wr_bytes(&mut self, lin: u64, buf: &[u8], ss: bool) -> Result<(), Stop> {
        let first = self.translate(lin, Acc::Write, ss)?;
        let off = lin & 0xfff;
        let chunk = ((4096 - off) as usize).min(buf.len());
        let mut frames = [(first, off, chunk); 2];
        let mut nfr = 1;
        if chunk < buf.len() {
            let a2 = lin.wrapping_add(chunk as u64);
            let second = self.translate(a2, Acc::Write, ss)?;
            frames[1] = (second, 0, buf.len() - chunk);
            nfr = 2;
        }
        let mut done = 0usize;
        for &(base, off, len) in frames.iter().take(nfr) {
            if self.mem.is_code(Mfn(base >> 12)) {
                self.c.smc = true;
            }
            if let Some(src) = buf.get(done..done + len) {
                self.mem
                    .write(MachineAddr(base + off), src)
                    .map_err(|_| bad_machine(lin))?;
            }
            done += len;
        }
        Ok(())
    }

    /// Check (and translate, setting A/D) every page of a `sz`-byte access at
    /// `lin` for writing, without accessing memory: the read of a
    /// read-modify-write instruction is done with write intent, so a fault
    /// on it is reported as a write fault.
    #[inline(always)]
    pub(crate) fn probe_write(&mut self, lin: u64, sz: u8, ss: bool) -> Result<(), Stop> {
        self.translate(lin, Acc::Write, ss)?;
        let last = lin.wrapping_add(u64::from(sz).saturating_sub(1));
        if (last ^ lin) & !0xfff != 0 {
            self.translate(last & !0xfff, Acc::Write, ss)?;
        }
        Ok(())
    }

    /// Machine address for an aligned atomic access of `sz` bytes at `lin`
    /// (translated for write; the caller does the atomic op).
    pub(crate) fn atomic_addr(&mut self, lin: u64, ss: bool) -> Result<u64, Stop> {
        let base = self.translate(lin, Acc::Write, ss)?;
        if self.mem.is_code(Mfn(base >> 12)) {
            self.c.smc = true;
        }
        Ok(base + (lin & 0xfff))
    }
}
