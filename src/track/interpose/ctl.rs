//! Control calls whose argument may be an out-parameter: `ioctl` (the size decoded from the
//! request number, or looked up in a table of legacy requests that do not encode it), `fcntl`
//! (the `GET` commands that fill a struct), `prctl` (the `PR_GET_*` options that write through
//! their argument), and the terminal calls that read into caller memory.
//!
//! `ioctl`, `fcntl` and `prctl` are variadic in C. They are defined here with every argument
//! they can take as a plain integer (on x86-64 variadic integer arguments travel in the same
//! registers as fixed ones, and libc reads them the same way) and forwarded through a variadic
//! function pointer.

use core::ffi::{c_char, c_int, c_ulong, c_void};

use super::{Real, bytes, interpose, no_fallback, out, prepare_kernel_write, sys};
use crate::track::mprotect::active;

/// `_IOC_READ`: the kernel writes the argument.
const IOC_READ: c_ulong = 2;

/// Legacy requests that write a fixed size without encoding it (x86-64 numbers): terminals,
/// sockets, block devices.
const LEGACY: &[(c_ulong, usize)] = &[
    (0x5401, 36), // TCGETS: struct termios (kernel)
    (0x5405, 18), // TCGETA: struct termio
    (0x540F, 4),  // TIOCGPGRP
    (0x5411, 4),  // TIOCOUTQ / SIOCOUTQ
    (0x5413, 8),  // TIOCGWINSZ: struct winsize
    (0x5415, 4),  // TIOCMGET
    (0x5419, 4),  // TIOCGSOFTCAR
    (0x541B, 4),  // FIONREAD / TIOCINQ / SIOCINQ
    (0x5424, 4),  // TIOCGETD
    (0x5429, 4),  // TIOCGSID
    (0x5456, 36), // TIOCGLCKTRMIOS
    (0x545D, 80), // TIOCGICOUNT: struct serial_icounter_struct
    (0x5460, 8),  // FIOQSIZE: loff_t
    (0x8904, 4),  // SIOCGPGRP
    (0x8905, 4),  // SIOCATMARK
    (0x8906, 16), // SIOCGSTAMP: struct timeval
    (0x8907, 16), // SIOCGSTAMPNS: struct timespec
    (0x8910, 40), // SIOCGIFNAME: struct ifreq
    (0x8913, 40), // SIOCGIFFLAGS
    (0x8915, 40), // SIOCGIFADDR
    (0x8917, 40), // SIOCGIFDSTADDR
    (0x8919, 40), // SIOCGIFBRDADDR
    (0x891B, 40), // SIOCGIFNETMASK
    (0x891D, 40), // SIOCGIFMETRIC
    (0x8921, 40), // SIOCGIFMTU
    (0x8927, 40), // SIOCGIFHWADDR
    (0x8933, 40), // SIOCGIFINDEX
    (0x8942, 40), // SIOCGIFTXQLEN
    (0x894B, 4),  // SIOCOUTQNSD
    (0x8954, 68), // SIOCGARP: struct arpreq
    (0x8970, 40), // SIOCGIFMAP
    (0x0002, 4),  // FIGETBSZ
    (0x1260, 8),  // BLKGETSIZE: unsigned long
    (0x125E, 4),  // BLKROGET
    (0x1263, 8),  // BLKRAGET: long
    (0x1267, 2),  // BLKSECTGET: unsigned short
    (0x1268, 4),  // BLKSSZGET
    (0x1278, 4),  // BLKIOMIN
    (0x1279, 4),  // BLKIOOPT
    (0x127A, 4),  // BLKALIGNOFF
    (0x127B, 4),  // BLKPBSZGET
    (0x127C, 4),  // BLKDISCARDZEROES
    (0x127E, 2),  // BLKROTATIONAL
];

/// `SIOCGIFCONF`: `struct ifconf` and the buffer it points at.
const SIOCGIFCONF: c_ulong = 0x8912;

/// Bytes an `ioctl` request writes through its argument, if known.
pub fn ioctl_out_size(req: c_ulong) -> Option<usize> {
    let req = req & 0xffff_ffff;
    let (dir, size) = (req >> 30, (req >> 16) & 0x3fff);
    if dir & IOC_READ != 0 && size != 0 {
        return Some(size as usize);
    }
    LEGACY.iter().find(|&&(r, _)| r == req).map(|&(_, n)| n)
}

/// Opens what `ioctl(fd, req, arg)` writes.
///
/// # Safety
/// `arg` is valid for `req`, as the kernel requires.
unsafe fn prepare_ioctl(req: c_ulong, arg: usize) {
    if req & 0xffff_ffff == SIOCGIFCONF && arg != 0 {
        let c = arg as *mut libc::ifconf;
        out(c);
        // SAFETY: SIOCGIFCONF's argument is a struct ifconf (caller's contract).
        let (len, buf) = unsafe { ((*c).ifc_len, (*c).ifc_ifcu.ifcu_buf) };
        bytes(buf, len.max(0) as usize);
    } else if let Some(n) = ioctl_out_size(req) {
        prepare_kernel_write(arg, n);
    }
}

/// `ioctl(2)`.
///
/// # Safety
/// The C contract of `ioctl`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: usize) -> c_int {
    type F = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
    static REAL: Real = Real::new(c"ioctl");
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn slow(fd: c_int, req: c_ulong, arg: usize) -> c_int {
        if active() {
            // SAFETY: the caller's argument, valid for its request.
            unsafe { prepare_ioctl(req, arg) };
        }
        match REAL.get() {
            // SAFETY: libc's ioctl, variadic after the request.
            Some(f) => unsafe { core::mem::transmute::<*mut c_void, F>(f)(fd, req, arg) },
            // SAFETY: the system call ioctl makes.
            None => unsafe { sys!(libc::SYS_ioctl, fd, req, arg) as c_int },
        }
    }
    match REAL.found() {
        // SAFETY: libc's ioctl; nothing to prepare without the tracker.
        Some(f) if !active() => unsafe { core::mem::transmute::<*mut c_void, F>(f)(fd, req, arg) },
        // SAFETY: forwarded.
        _ => unsafe { slow(fd, req, arg) },
    }
}

/// Opens what `fcntl(fd, cmd, arg)` writes.
fn prepare_fcntl(cmd: c_int, arg: usize) {
    let n = match cmd {
        libc::F_GETLK | libc::F_OFD_GETLK => core::mem::size_of::<libc::flock>(),
        16 => 8,          // F_GETOWN_EX: struct f_owner_ex
        1035 | 1037 => 8, // F_GET_RW_HINT, F_GET_FILE_RW_HINT: a u64
        _ => return,
    };
    prepare_kernel_write(arg, n);
}

/// Defines an `fcntl`-shaped export.
macro_rules! fcntl_like {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The C contract of `fcntl`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, cmd: c_int, arg: usize) -> c_int {
            type F = unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
            static REAL: Real = Real::new(super::c_name!($name));
            #[cold]
            #[inline(never)]
            unsafe extern "C" fn slow(fd: c_int, cmd: c_int, arg: usize) -> c_int {
                if active() {
                    prepare_fcntl(cmd, arg);
                }
                match REAL.get() {
                    // SAFETY: libc's fcntl, variadic after the command.
                    Some(f) => unsafe { core::mem::transmute::<*mut c_void, F>(f)(fd, cmd, arg) },
                    // SAFETY: the system call fcntl makes (on x86-64 `fcntl` is 64-bit already).
                    None => unsafe { sys!(libc::SYS_fcntl, fd, cmd, arg) as c_int },
                }
            }
            match REAL.found() {
                // SAFETY: libc's fcntl; nothing to prepare without the tracker.
                Some(f) if !active() => unsafe { core::mem::transmute::<*mut c_void, F>(f)(fd, cmd, arg) },
                // SAFETY: forwarded.
                _ => unsafe { slow(fd, cmd, arg) },
            }
        }
    };
}

fcntl_like!(
    /// `fcntl(2)`: `F_GETLK`, `F_OFD_GETLK`, `F_GETOWN_EX` and the `GET` hints fill a struct.
    fcntl
);
fcntl_like!(
    /// `fcntl64(2)` (glibc 2.28's name for the same call).
    fcntl64
);

/// Opens what `prctl(option, a2, a3, …)` writes through its arguments.
fn prepare_prctl(option: c_int, a2: usize, a3: usize) {
    match option {
        libc::PR_GET_NAME => prepare_kernel_write(a2, 16),
        libc::PR_GET_PDEATHSIG
        | libc::PR_GET_CHILD_SUBREAPER
        | libc::PR_GET_ENDIAN
        | libc::PR_GET_FPEMU
        | libc::PR_GET_FPEXC
        | libc::PR_GET_UNALIGN
        | libc::PR_GET_TSC => prepare_kernel_write(a2, 4),
        libc::PR_GET_TID_ADDRESS => prepare_kernel_write(a2, 8),
        0x4155_5856 => prepare_kernel_write(a2, a3), // PR_GET_AUXV (Linux 6.4)
        _ => {}
    }
}

/// `prctl(2)`: the `PR_GET_*` options that write through their second argument.
///
/// # Safety
/// The C contract of `prctl`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prctl(option: c_int, a2: c_ulong, a3: c_ulong, a4: c_ulong, a5: c_ulong) -> c_int {
    if active() {
        prepare_prctl(option, a2 as usize, a3 as usize);
    }
    static REAL: Real = Real::new(c"prctl");
    match REAL.get() {
        // SAFETY: libc's prctl, variadic after the option; it reads four more longs.
        Some(f) => unsafe {
            core::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int, ...) -> c_int>(f)(option, a2, a3, a4, a5)
        },
        // SAFETY: the system call prctl makes.
        None => unsafe { sys!(libc::SYS_prctl, option, a2, a3, a4, a5) as c_int },
    }
}

interpose! {
    /// `tcgetattr(3)`.
    fn tcgetattr(fd: c_int, t: *mut libc::termios) -> c_int {
        prepare { out(t) }
        fallback { no_fallback!(tcgetattr) }
    }

    /// `ttyname_r(3)`: libc reads the terminal's name with its internal `readlink`.
    fn ttyname_r(fd: c_int, buf: *mut c_char, len: usize) -> c_int {
        prepare { bytes(buf, len) }
        fallback { no_fallback!(ttyname_r) }
    }

    /// `__ttyname_r_chk` (`_FORTIFY_SOURCE`).
    fn __ttyname_r_chk(fd: c_int, buf: *mut c_char, len: usize, buflen: usize) -> c_int {
        prepare { bytes(buf, len.min(buflen)) }
        fallback { no_fallback!(__ttyname_r_chk) }
    }
}

#[cfg(test)]
mod tests {
    use super::ioctl_out_size;

    #[test]
    fn sizes_come_from_the_request_number_or_the_table() {
        // _IOR('T', 0x30, unsigned int): TIOCGPTN.
        assert_eq!(ioctl_out_size(0x8004_5430), Some(4));
        // _IOWR: read and write, 8 bytes.
        assert_eq!(ioctl_out_size(0xC008_0000 | 0x1234), Some(8));
        // _IOW only: the kernel reads.
        assert_eq!(ioctl_out_size(0x4004_5431), None);
        assert_eq!(ioctl_out_size(libc::TCGETS), Some(36));
        assert_eq!(ioctl_out_size(libc::FIONREAD), Some(4));
        assert_eq!(ioctl_out_size(libc::TIOCGWINSZ), Some(core::mem::size_of::<libc::winsize>()));
        assert_eq!(ioctl_out_size(libc::TIOCGPGRP), Some(4));
        // Requests that only take input.
        assert_eq!(ioctl_out_size(libc::TIOCSWINSZ), None);
        assert_eq!(ioctl_out_size(libc::FIONBIO), None);
    }
}
