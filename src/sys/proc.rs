//! The process: personality (ASLR), re-execution, auxiliary vector, loaded objects, signals.

use std::ffi::{CStr, CString};

use crate::error::Errno;

/// `ADDR_NO_RANDOMIZE` personality flag.
pub(crate) const ADDR_NO_RANDOMIZE: u32 = 0x0040000;

/// The current personality word.
pub(crate) fn personality() -> u32 {
    // SAFETY: 0xffffffff queries without changing anything.
    unsafe { libc::personality(0xffff_ffff) as u32 }
}

/// Sets the personality word.
pub(crate) fn set_personality(p: u32) -> Result<(), Errno> {
    // SAFETY: personality only changes flags of this process and what it executes.
    let r = unsafe { libc::personality(p as libc::c_ulong) };
    if r == -1 { Err(Errno::last()) } else { Ok(()) }
}

/// Replaces the process image with `/proc/self/exe`, passing `argv` and the current
/// environment with `mark=value` added (replacing any earlier `mark`). Returns only on failure.
pub(crate) fn reexec_self_with(argv: &[CString], mark: &str, value: &str) -> Errno {
    use std::os::unix::ffi::OsStrExt;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k.as_bytes() != mark.as_bytes())
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.extend(CString::new(format!("{mark}={value}")));
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(core::ptr::null());
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(core::ptr::null());
    // SAFETY: both arrays are NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(c"/proc/self/exe".as_ptr(), ptrs.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// The next definition of the C function `name` after the calling object
/// (`dlsym(RTLD_NEXT, name)`), or null.
pub(crate) fn next_symbol(name: &CStr) -> *mut libc::c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT is a valid pseudo-handle.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// Whether the process runs with elevated privileges (setuid/setgid, file capabilities).
pub(crate) fn secure_execution() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// One object (executable, library, vDSO) loaded in the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedObject {
    /// Path as the dynamic linker knows it (empty for the main program).
    pub name: String,
    /// Load bias (`dlpi_addr`).
    pub addr: u64,
    /// The GNU build-id note, if the object has one.
    pub build_id: Vec<u8>,
}

/// Every object currently loaded, in the dynamic linker's order (the executable first).
pub(crate) fn loaded_objects() -> Vec<LoadedObject> {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the callback, and
        // `data` is the `&mut Vec` passed below.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<LoadedObject>)) };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null dlpi_name is a NUL-terminated string owned by ld.so.
            unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned()
        };
        let mut build_id = Vec::new();
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_NOTE {
                let start = (info.dlpi_addr + ph.p_vaddr) as *const u8;
                // SAFETY: PT_NOTE segments of loaded objects are mapped readable for p_memsz bytes.
                let notes = unsafe { core::slice::from_raw_parts(start, ph.p_memsz as usize) };
                if let Some(id) = find_build_id(notes) {
                    build_id = id.to_vec();
                    break;
                }
            }
        }
        out.push(LoadedObject { name, addr: info.dlpi_addr, build_id });
        0
    }
    let mut v: Vec<LoadedObject> = Vec::new();
    // SAFETY: the callback matches dl_iterate_phdr's contract and only touches `v`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut v as *mut Vec<LoadedObject>).cast()) };
    v
}

/// Finds `NT_GNU_BUILD_ID` in a block of ELF notes.
pub(crate) fn find_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let namesz = u32::from_ne_bytes(notes[0..4].try_into().ok()?) as usize;
        let descsz = u32::from_ne_bytes(notes[4..8].try_into().ok()?) as usize;
        let ty = u32::from_ne_bytes(notes[8..12].try_into().ok()?);
        let name_end = 12usize.checked_add(align4(namesz))?;
        let desc_end = name_end.checked_add(align4(descsz))?;
        if desc_end > notes.len() {
            return None;
        }
        if ty == NT_GNU_BUILD_ID && namesz == 4 && &notes[12..16] == b"GNU\0" {
            return Some(&notes[name_end..name_end + descsz]);
        }
        notes = &notes[desc_end..];
    }
    None
}

/// Registers `f(status, arg)` to run when the process exits normally (`exit` or return from
/// `main`), with the exit status.
pub(crate) fn on_exit(f: extern "C" fn(libc::c_int, *mut libc::c_void)) -> Result<(), Errno> {
    unsafe extern "C" {
        fn on_exit(f: extern "C" fn(libc::c_int, *mut libc::c_void), arg: *mut libc::c_void) -> libc::c_int;
    }
    // SAFETY: glibc's on_exit takes a function pointer and an opaque argument.
    if unsafe { on_exit(f, core::ptr::null_mut()) } == 0 { Ok(()) } else { Err(Errno(libc::ENOMEM)) }
}

/// Sends signal `sig` to process `pid` (for tools such as `crthreads checkpoint`).
pub fn send_signal(pid: u32, sig: i32) -> Result<(), Errno> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno(libc::ESRCH))?;
    if pid <= 0 {
        // 0 and negative pids name process groups: never those.
        return Err(Errno(libc::ESRCH));
    }
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// Ends the process at once with `code`, without running exit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Registers `dtor(obj)` to run when the calling thread exits (and, for the main thread, at
/// `exit`), the way C++ `thread_local` destructors are: through glibc's
/// `__cxa_thread_atexit_impl`, which takes none of the program's `PTHREAD_KEYS_MAX` keys. It
/// allocates a list node, so callers run it inside an `internal` section.
pub(crate) fn on_thread_exit(
    dtor: unsafe extern "C" fn(*mut libc::c_void),
    obj: *mut libc::c_void,
) -> Result<(), Errno> {
    unsafe extern "C" {
        fn __cxa_thread_atexit_impl(
            dtor: unsafe extern "C" fn(*mut libc::c_void),
            obj: *mut libc::c_void,
            dso_symbol: *mut libc::c_void,
        ) -> libc::c_int;
    }
    // SAFETY: `dtor` has the destructor signature; the DSO symbol is an address inside this
    // object (glibc only uses it to find the object and keep it loaded).
    let r = unsafe { __cxa_thread_atexit_impl(dtor, obj, dtor as *mut libc::c_void) };
    if r == 0 { Ok(()) } else { Err(Errno(libc::ENOMEM)) }
}

/// Fills `buf` from the kernel's random number generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = super::retry(|| {
            // SAFETY: the destination is the unfilled tail of `buf`. A raw syscall: `getrandom`
            // may be interposed by this very library.
            super::cvt(unsafe { libc::syscall(libc::SYS_getrandom, buf[done..].as_mut_ptr(), buf.len() - done, 0) })
        })?;
        done += n as usize;
    }
    Ok(())
}

/// Fields of `/proc/<pid>/stat` after the command name (field 3, the state, is index 0).
fn stat_fields(pid: Option<u32>) -> Option<Vec<String>> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let raw = super::fs::read_small_file(std::path::Path::new(&path)).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Whether process `pid` is gone or on its way out (a zombie, or exiting: `PF_EXITING`), so
/// that locks it holds are about to be released.
pub(crate) fn is_exiting(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Some(f) = stat_fields(Some(pid)) else { return true };
    let state = f.first().map(String::as_str).unwrap_or("X");
    let flags: u64 = f.get(6).and_then(|v| v.parse().ok()).unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// This process's start time (clock ticks after boot): with the pid it names this process
/// across `exec`, and never another one.
pub(crate) fn start_time() -> u64 {
    stat_fields(None).and_then(|f| f.get(19).and_then(|v| v.parse().ok())).unwrap_or(0)
}

/// Threads in this process.
pub(crate) fn thread_count() -> usize {
    stat_fields(None).and_then(|f| f.get(17).and_then(|v| v.parse().ok())).unwrap_or(usize::MAX)
}

/// The calling thread's name (`comm`, at most 15 bytes).
pub(crate) fn comm() -> Vec<u8> {
    let mut buf = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    unsafe { libc::syscall(libc::SYS_prctl, libc::PR_GET_NAME, buf.as_mut_ptr()) };
    let n = buf.iter().position(|&b| b == 0).unwrap_or(16);
    buf[..n].to_vec()
}

/// Sets the calling thread's name (`comm`); for the main thread, the name `ps` shows.
pub(crate) fn set_comm(name: &[u8]) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name[..n]);
    // SAFETY: `buf` is NUL-terminated within 16 bytes.
    unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, buf.as_ptr()) };
}

/// The soft limit of `resource` (`RLIMIT_AS`, `RLIMIT_DATA`), or `None` if unlimited.
pub(crate) fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid out-pointer. A raw syscall: the library may interpose getrlimit.
    let ok = unsafe { libc::syscall(libc::SYS_prlimit64, 0, resource, core::ptr::null::<libc::rlimit>(), &mut r) } == 0;
    (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

/// This process's address space and data segment in bytes (`VmSize`, `VmData`), as the
/// kernel counts them against `RLIMIT_AS` and `RLIMIT_DATA`. Allocation-free (the heap calls it
/// with its locks held): `/proc/self/status` is read into a buffer on the stack.
pub(crate) fn vm_usage() -> (u64, u64) {
    let mut buf = [0u8; 4096];
    let n = super::fs::read_into_stack(c"/proc/self/status", &mut buf).unwrap_or(0);
    let text = &buf[..n];
    let field = |name: &[u8]| -> u64 {
        let Some(at) = text.windows(name.len()).position(|w| w == name) else { return 0 };
        let digits =
            text[at + name.len()..].iter().skip_while(|b| b.is_ascii_whitespace()).take_while(|b| b.is_ascii_digit());
        digits.fold(0u64, |v, &d| v.saturating_mul(10).saturating_add(u64::from(d - b'0'))) * 1024
    };
    (field(b"VmSize:"), field(b"VmData:"))
}

/// Sets an environment variable of this process.
///
/// # Safety
/// No other thread may read or write the environment meanwhile (`getenv` is not synchronised
/// with `setenv` in C): call it only while the process is single-threaded.
pub(crate) unsafe fn set_env(key: &str, value: &str) {
    // SAFETY: forwarded from the caller.
    unsafe { std::env::set_var(key, value) };
}

/// Removes an environment variable of this process.
///
/// # Safety
/// As for [`set_env`].
pub(crate) unsafe fn remove_env(key: &str) {
    // SAFETY: forwarded from the caller.
    unsafe { std::env::remove_var(key) };
}

/// Registers fork handlers (`pthread_atfork`).
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: plain function pointers with the expected signature.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Kills the calling process with SIGKILL, as a crash would.
#[cfg(feature = "failpoints")]
pub(crate) fn kill_self() -> ! {
    // SAFETY: raising SIGKILL on ourselves has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(137)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_comes_first_and_libc_is_loaded() {
        let objs = loaded_objects();
        assert!(objs[0].name.is_empty(), "{objs:?}");
        assert!(objs.iter().any(|o| o.name.contains("libc.so")), "{objs:?}");
    }

    #[test]
    fn build_id_parser_rejects_truncated_notes() {
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_ne_bytes());
        n.extend_from_slice(&20u32.to_ne_bytes());
        n.extend_from_slice(&3u32.to_ne_bytes());
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(&[7u8; 20]);
        assert_eq!(find_build_id(&n), Some(&[7u8; 20][..]));
        assert_eq!(find_build_id(&n[..30]), None);
        assert_eq!(find_build_id(&[0xff; 40]), None);
    }
}
