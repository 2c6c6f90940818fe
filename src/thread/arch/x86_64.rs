//! Switching between two stacks on x86-64 (System V), in one small assembly routine.
//!
//! A [`Context`] is where a stopped side resumes: its stack pointer, and the stack-protector
//! canary it runs with. Everything else a C function must preserve across a call is pushed on
//! the stopped side's own stack by [`switch`]:
//!
//! ```text
//!   higher addresses
//!   +-------------------+
//!   | return address    |  <- where `switch` returns to when this side resumes
//!   | rbp               |
//!   | rbx               |
//!   | r12 .. r15        |
//!   | mxcsr | x87 cw    |  (16 bytes: SSE control/status, x87 control word, padding)
//!   +-------------------+  <- Context::rsp
//! ```
//!
//! Caller-saved registers need no saving: `switch` is an ordinary call for the compiler. The
//! canary (`%fs:0x28`, glibc's `stack_guard` in the thread control block) differs between
//! processes: frames built before a checkpoint check against the value they were built with,
//! so each side carries its own and `switch` installs it (DESIGN.md §4.4). glibc's pointer guard
//! (`%fs:0x30`) is not switched: `setjmp` buffers do not survive a restore (DESIGN.md §4.3).
#![allow(unsafe_code)] // The context switch itself.

/// A stopped side of a switch: its stack pointer and its stack-protector canary.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Context {
    /// Saved stack pointer (see the layout above).
    pub rsp: u64,
    /// The canary this side runs with.
    pub canary: u64,
}

const _: () = assert!(core::mem::size_of::<Context>() == 16);

/// Saves the current side into `from` and resumes `to`. Returns when something switches back
/// to `from`.
///
/// # Safety
/// `to` must hold a context saved by `switch` (or made by [`init_context`]) whose stack is
/// mapped and not in use; `from` must stay valid until this side is resumed.
#[unsafe(naked)]
pub(crate) unsafe extern "sysv64" fn switch(from: *mut Context, to: *const Context) {
    core::arch::naked_asm!(
        // Save this side: callee-saved registers, then the SSE and x87 control words.
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 16",
        "stmxcsr [rsp]",
        "fnstcw [rsp + 4]",
        "mov [rdi], rsp", // from.rsp
        "mov rax, fs:[0x28]",
        "mov [rdi + 8], rax", // from.canary
        // Resume the other side.
        "mov rsp, [rsi]", // to.rsp
        "mov rax, [rsi + 8]",
        "mov fs:[0x28], rax", // to.canary
        "ldmxcsr [rsp]",
        "fldcw [rsp + 4]",
        "add rsp, 16",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// The first instructions a new side runs: `r12` holds the argument and `r13` the function
/// (placed there by [`init_context`]). The function never returns.
#[unsafe(naked)]
unsafe extern "sysv64" fn start() -> ! {
    core::arch::naked_asm!(
        "mov rdi, r12", // the argument
        "call r13",     // entry(arg): never returns
        "ud2",
    )
}

/// A context that, when switched to, calls `entry(arg)` on the stack whose highest address is
/// `top` (exclusive), with the default SSE and x87 control words and `canary`.
///
/// # Safety
/// `top` must be the top of a mapped, writable stack of at least 128 bytes that nothing else
/// uses; `entry` must never return.
pub(crate) unsafe fn init_context(
    top: usize,
    entry: extern "sysv64" fn(usize) -> !,
    arg: usize,
    canary: u64,
) -> Context {
    let top = top & !15;
    let words: [u64; 9] = [
        0x037F_0000_1F80,                   // mxcsr 0x1F80 (masked exceptions, round to nearest), x87 cw 0x037F
        0,                                  // padding of the control words' 16 bytes
        0,                                  // r15
        0,                                  // r14
        entry as *const () as usize as u64, // r13
        arg as u64,                         // r12
        0,                                  // rbx
        0,                                  // rbp
        start as *const () as usize as u64, // returned to by `switch`
    ];
    let rsp = top - words.len() * 8;
    // SAFETY: the caller lends the stack and the words fit below `top`. After `switch` pops them
    // and returns into `start`, rsp = top (16-aligned), so `start`'s `call` enters `entry` with
    // rsp = top - 8, as the ABI requires at a function's entry.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), rsp as *mut u64, words.len()) };
    Context { rsp: rsp as u64, canary }
}

/// The calling thread's stack-protector canary.
pub(crate) fn canary() -> u64 {
    let v: u64;
    // SAFETY: reads glibc's stack_guard slot of the thread control block (`%fs:0x28`).
    unsafe { core::arch::asm!("mov {v}, fs:[0x28]", v = out(reg) v, options(nostack, readonly, preserves_flags)) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ping {
        main: Context,
        side: Context,
        log: Vec<u32>,
        canary_seen: u64,
    }

    extern "sysv64" fn side(arg: usize) -> ! {
        // SAFETY: `arg` is the test's Ping, alive while the test switches back and forth.
        let p = unsafe { &mut *(arg as *mut Ping) };
        p.canary_seen = canary();
        let mut x = 1.5f64;
        for i in 0..3 {
            p.log.push(10 + i);
            x *= 2.0;
            // SAFETY: both contexts are valid: `main` was saved by the switch that started us.
            unsafe { switch(&mut p.side, &p.main) };
        }
        p.log.push(x as u32);
        // SAFETY: as above; the test never resumes us again.
        unsafe { switch(&mut p.side, &p.main) };
        unreachable!("resumed after the last switch")
    }

    #[test]
    fn two_sides_take_turns_and_keep_their_state() {
        let mut stack = vec![0u8; 64 * 1024];
        let top = stack.as_mut_ptr() as usize + stack.len();
        let mut p =
            Box::new(Ping { main: Context::default(), side: Context::default(), log: Vec::new(), canary_seen: 0 });
        let arg = &mut *p as *mut Ping as usize;
        // SAFETY: the stack is ours and unused; `side` never returns.
        p.side = unsafe { init_context(top, side, arg, 0x1234_5678) };
        let mine = canary();
        for i in 0..4 {
            // SAFETY: `side` holds a valid context on the test's stack buffer.
            unsafe { switch(&mut p.main, &p.side) };
            assert_eq!(canary(), mine, "the canary comes back with its side");
            if i < 3 {
                p.log.push(i);
            }
        }
        assert_eq!(p.log, vec![10, 0, 11, 1, 12, 2, 12]);
        assert_eq!(p.canary_seen, 0x1234_5678, "the side ran with its own canary");
        drop(stack);
    }
}
