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

/// Ends the process at once with `code`, without running exit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Creates a pthread key whose destructor runs at thread exit with the thread's value.
pub(crate) fn key_create(dtor: unsafe extern "C" fn(*mut libc::c_void)) -> Option<u32> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; `dtor` has the destructor signature.
    (unsafe { libc::pthread_key_create(&mut key, Some(dtor)) } == 0).then_some(key)
}

/// Sets the calling thread's value of `key`.
pub(crate) fn key_set(key: u32, value: *const libc::c_void) {
    // SAFETY: `key` came from `key_create`; the value is opaque to pthreads.
    unsafe { libc::pthread_setspecific(key, value) };
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
