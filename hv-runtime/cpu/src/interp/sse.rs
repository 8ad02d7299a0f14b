//! SSE/SSE2 (and a few SSE3/SSSE3/SSE4.1) instructions.

use iced_x86::Instruction;

use super::translate::Uop;
use super::{Cpu, Stop};

/// Execute an SSE instruction, or `None` when `ins` is not one.
pub(crate) fn exec(
    cpu: &mut Cpu<'_>,
    ins: &Instruction,
    u: &Uop,
) -> Option<Result<Option<u64>, Stop>> {
    let _ = (cpu, ins, u);
    None
}
