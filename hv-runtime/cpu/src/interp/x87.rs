//! The x87 subset compilers emit (emulated with `f64`).

use iced_x86::Instruction;

use super::translate::Uop;
use super::{Cpu, Stop};

/// Execute an x87 instruction, or `None` when `ins` is not one.
pub(crate) fn exec(
    cpu: &mut Cpu<'_>,
    ins: &Instruction,
    u: &Uop,
) -> Option<Result<Option<u64>, Stop>> {
    let _ = (cpu, ins, u);
    None
}
