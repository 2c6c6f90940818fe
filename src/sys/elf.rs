//! The running program's own ELF program headers: is it statically linked?
//!
//! A dynamically linked program names its dynamic loader in a `PT_INTERP` program header; the
//! kernel maps that loader and hands it control. A static executable (and a static-pie, which
//! has a `PT_DYNAMIC` segment for its self-relocation but no interpreter) has no `PT_INTERP`.
//! The kernel passes the address and number of the program's headers in the auxiliary vector
//! (`AT_PHDR`, `AT_PHNUM`, `AT_PHENT`), also when the loader was started by hand
//! (`ld.so ./prog`), so the answer is about the program, never about the loader.
//!
//! crthreads needs a dynamically linked program: the interposed libc functions find the next
//! definition with `dlsym(RTLD_NEXT, …)`, which finds nothing in a static executable.
#![allow(unsafe_code)] // Reads the program headers the kernel points at.

/// Whether the running program is statically linked (static or static-pie): its program
/// headers, as the auxiliary vector gives them, have no `PT_INTERP` entry. Also true when the
/// auxiliary vector lacks the headers (it never does on Linux): without them nothing proves a
/// dynamic loader is present. No allocation.
pub fn is_static_executable() -> bool {
    // SAFETY: getauxval has no preconditions; it returns 0 for a missing entry.
    let (phdr, phnum, phent) =
        unsafe { (libc::getauxval(libc::AT_PHDR), libc::getauxval(libc::AT_PHNUM), libc::getauxval(libc::AT_PHENT)) };
    if phdr == 0 || phnum == 0 || phent as usize != core::mem::size_of::<libc::Elf64_Phdr>() {
        return true;
    }
    // SAFETY: AT_PHDR is the address of the program's `AT_PHNUM` program headers of `AT_PHENT`
    // bytes each (checked above), mapped readable for the life of the process.
    let headers = unsafe { core::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum as usize) };
    !has_interpreter(headers)
}

/// Whether a table of program headers has a `PT_INTERP` entry (names a dynamic loader).
pub fn has_interpreter(headers: &[libc::Elf64_Phdr]) -> bool {
    headers.iter().any(|h| h.p_type == libc::PT_INTERP)
}

/// One entry of an ELF64 symbol table.
struct Sym<'a> {
    name: &'a str,
    info: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// The entries of the first section of type `sh_type` (`.symtab` or `.dynsym`) of an ELF64
/// image. `None` if there is none or the image is not a well-formed ELF64 file. Every offset
/// read from the image is bounds-checked.
fn symbols(img: &[u8], sh_type: u32) -> Option<Vec<Sym<'_>>> {
    let u16_at = |o: usize| img.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| img.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let u64_at = |o: usize| img.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if img.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let shoff = u64_at(0x28)? as usize;
    let shentsize = u16_at(0x3a)? as usize;
    let shnum = u16_at(0x3c)? as usize;
    if shentsize < 64 {
        return None;
    }
    let section = |k: usize| -> Option<(u32, usize, usize, u32, usize)> {
        let h = shoff.checked_add(k.checked_mul(shentsize)?)?;
        // sh_type, sh_offset, sh_size, sh_link, sh_entsize
        Some((
            u32_at(h + 4)?,
            u64_at(h + 24)? as usize,
            u64_at(h + 32)? as usize,
            u32_at(h + 40)?,
            u64_at(h + 56)? as usize,
        ))
    };
    let (_, symoff, symsize, link, entsize) = (0..shnum).filter_map(section).find(|s| s.0 == sh_type)?;
    let (_, stroff, strsize, _, _) = section(link as usize)?;
    let strtab = img.get(stroff..stroff.checked_add(strsize)?)?;
    if entsize < 24 {
        return None;
    }
    let mut out = Vec::new();
    for k in 0..symsize / entsize {
        let e = symoff.checked_add(k * entsize)?;
        let name = u32_at(e)? as usize;
        let rest = strtab.get(name..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        if let Ok(name) = core::str::from_utf8(&rest[..end]) {
            out.push(Sym {
                name,
                info: *img.get(e + 4)?,
                shndx: u16_at(e + 6)?,
                value: u64_at(e + 8)?,
                size: u64_at(e + 16)?,
            });
        }
    }
    Some(out)
}

/// The function symbols of an ELF64 image's symbol table (`.symtab`): name, value and size.
/// `None` if the image has no symbol table (it was stripped) or is not a well-formed ELF64
/// file. Every offset read from the image is bounds-checked.
pub fn function_symbols(img: &[u8]) -> Option<Vec<(&str, u64, u64)>> {
    const SHT_SYMTAB: u32 = 2;
    const STT_FUNC: u8 = 2;
    let syms = symbols(img, SHT_SYMTAB)?;
    Some(syms.into_iter().filter(|s| s.info & 0xf == STT_FUNC).map(|s| (s.name, s.value, s.size)).collect())
}

/// Whether an ELF64 image's dynamic symbol table (`.dynsym`) has an undefined symbol (one the
/// image uses and another object defines) named one of `names`.
pub fn uses_dynamic(img: &[u8], names: &[&str]) -> bool {
    const SHT_DYNSYM: u32 = 11;
    symbols(img, SHT_DYNSYM).is_some_and(|v| v.iter().any(|s| s.shndx == 0 && names.contains(&s.name)))
}

/// The objects an ELF64 executable's copy relocations (`R_X86_64_COPY`) placed in its own
/// data: address (before the load bias) and size of each. Such objects belong to a shared
/// library (`stdout`, `environ`), which keeps using them.
pub fn copy_relocations(img: &[u8]) -> Vec<(u64, u64)> {
    const SHT_RELA: u32 = 4;
    const SHT_DYNSYM: u32 = 11;
    const R_X86_64_COPY: u64 = 5;
    let Some(dynsym) = symbols(img, SHT_DYNSYM) else { return Vec::new() };
    let u16_at = |o: usize| img.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| img.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let u64_at = |o: usize| img.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let mut out = Vec::new();
    let (Some(shoff), Some(shentsize), Some(shnum)) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c)) else { return out };
    for k in 0..shnum as usize {
        let Some(h) = (shoff as usize).checked_add(k * shentsize as usize) else { break };
        let (Some(ty), Some(off), Some(size)) = (u32_at(h + 4), u64_at(h + 24), u64_at(h + 32)) else { break };
        if ty != SHT_RELA {
            continue;
        }
        let mut e = off as usize;
        while e + 24 <= (off + size) as usize {
            let (Some(r_offset), Some(r_info)) = (u64_at(e), u64_at(e + 8)) else { break };
            if r_info & 0xffff_ffff == R_X86_64_COPY {
                if let Some(sym) = dynsym.get((r_info >> 32) as usize) {
                    out.push((r_offset, sym.size));
                }
            }
            e += 24;
        }
    }
    out
}

/// The main program's load bias, its writable segments and its read-only-after-relocation
/// range (`PT_GNU_RELRO`, or an empty range), as addresses in this process.
pub fn program_writable() -> (usize, Vec<(usize, usize)>, (usize, usize)) {
    struct Out {
        bias: usize,
        rw: Vec<(usize, usize)>,
        relro: (usize, usize),
        done: bool,
    }
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info; `data` is our `Out`.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Out)) };
        if out.done {
            return 0;
        }
        out.done = true; // the first object is the main program
        out.bias = info.dlpi_addr as usize;
        for k in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(k) };
            let a = info.dlpi_addr as usize + ph.p_vaddr as usize;
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 {
                out.rw.push((a, a + ph.p_memsz as usize));
            } else if ph.p_type == libc::PT_GNU_RELRO {
                out.relro = (a, (a + ph.p_memsz as usize).next_multiple_of(super::PAGE));
            }
        }
        0
    }
    let mut out = Out { bias: 0, rw: Vec::new(), relro: (0, 0), done: false };
    // SAFETY: the callback matches dl_iterate_phdr's contract and only touches `out`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut out as *mut Out).cast()) };
    (out.bias, out.rw, out.relro)
}

/// Whether an ELF64 image defines a symbol named `name` in either symbol table.
pub fn defines(img: &[u8], name: &str) -> bool {
    [2, 11].into_iter().any(|t| symbols(img, t).is_some_and(|v| v.iter().any(|s| s.shndx != 0 && s.name == name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_has_function_symbols() {
        let img = std::fs::read("/proc/self/exe").unwrap();
        let syms = function_symbols(&img).expect("a test binary keeps its symbol table");
        assert!(syms.iter().any(|(n, _, s)| n.starts_with("_ZN3std") && *s > 0), "std's functions are listed");
        assert!(function_symbols(&img[..100]).is_none());
        assert!(function_symbols(b"not an elf file at all").is_none());
    }
    use std::path::Path;
    use std::process::Command;

    fn phdr(p_type: u32) -> libc::Elf64_Phdr {
        libc::Elf64_Phdr {
            p_type,
            p_flags: 0,
            p_offset: 0,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: 0,
            p_memsz: 0,
            p_align: 0,
        }
    }

    /// The program headers of the ELF file `path` (64-bit little-endian), read from the file.
    fn headers_of(path: &Path) -> Vec<libc::Elf64_Phdr> {
        let b = std::fs::read(path).unwrap();
        assert_eq!(&b[..4], b"\x7fELF", "{} is not an ELF file", path.display());
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(54), u16_at(56));
        assert_eq!(phentsize, core::mem::size_of::<libc::Elf64_Phdr>());
        (0..phnum).map(|i| phdr(u32_at(phoff + i * phentsize))).collect()
    }

    #[test]
    fn this_test_program_is_dynamically_linked() {
        assert!(!is_static_executable());
    }

    #[test]
    fn an_interpreter_entry_anywhere_means_dynamic() {
        assert!(!has_interpreter(&[]));
        assert!(!has_interpreter(&[phdr(libc::PT_LOAD), phdr(libc::PT_DYNAMIC), phdr(libc::PT_NOTE)]));
        assert!(has_interpreter(&[phdr(libc::PT_PHDR), phdr(libc::PT_INTERP), phdr(libc::PT_LOAD)]));
        assert!(has_interpreter(&[phdr(libc::PT_LOAD), phdr(libc::PT_INTERP)]));
    }

    /// Builds a C program in every way the C compiler knows how (dynamic, static, static-pie)
    /// and checks the headers the kernel would hand each one. Skipped (with a message) for the
    /// ways this system's toolchain cannot link.
    #[test]
    fn static_and_static_pie_builds_have_no_interpreter() {
        let dir = std::env::temp_dir().join(format!("crthreads-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("p.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
        let mut built = 0;
        for (flags, dynamic) in [(&[][..], true), (&["-static"][..], false), (&["-static-pie"][..], false)] {
            let exe = dir.join(format!("p{built}"));
            let ok =
                Command::new(&cc).args(flags).arg(&src).arg("-o").arg(&exe).output().is_ok_and(|o| o.status.success());
            if !ok {
                eprintln!("note: cannot link a {flags:?} C program here; not checked");
                continue;
            }
            built += 1;
            assert_eq!(has_interpreter(&headers_of(&exe)), dynamic, "{flags:?}");
            // The program runs: the headers checked are what the kernel maps.
            assert!(Command::new(&exe).status().unwrap().success());
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(built > 0, "the C compiler could not link any program");
    }
}
