//! Which of the executable's functions belong to the runtime's side of a Rust program — the
//! standard library, crthreads, the allocator shims and the crates they use — read from symbol
//! names in both of rustc's manglings. The preemption handler never parks a thread inside
//! them: they keep process-wide state (stdout's lock and `RefCell`, a thread cache mid-pop)
//! that a restore or a rollback does not bring back.
//!
//! A name is the runtime's if it mentions such a crate *anywhere*: `<Vec<T> as Drop>::drop`
//! instantiated in the program's crate is `alloc`'s code. Erring this way only makes a
//! function not preemptible (the thread then stops at its next safepoint instead).
//!
//! - Legacy mangling (`_ZN…E`): components are length-prefixed; generic components spell
//!   paths with `..` (`_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..ops..Drop$GT$`). Every
//!   path segment that starts a path is checked.
//! - v0 mangling (`_R…`): every crate root is `C`, an optional disambiguator `s<base-62>_`, then
//!   the crate's identifier (`<decimal length>[_]<bytes>`). Every such production is checked;
//!   back-references only point at text already seen.

/// Crates whose code must not be preempted: the standard library and what it is built from,
/// crthreads and its dependencies, and rustc's allocator shims (`__rustc`).
const RUNTIME_CRATES: &[&[u8]] = &[
    b"std",
    b"core",
    b"alloc",
    b"__rustc",
    b"crthreads",
    b"panic_unwind",
    b"panic_abort",
    b"unwind",
    b"compiler_builtins",
    b"std_detect",
    b"hashbrown",
    b"rustc_demangle",
    b"addr2line",
    b"gimli",
    b"object",
    b"miniz_oxide",
    b"adler",
    b"adler2",
    b"memchr",
    b"cfg_if",
    b"libc",
    b"nix",
    b"memmap2",
    b"spin",
    b"bitflags",
    b"crc32c",
    b"proc_macro",
    b"test",
    b"getopts",
    b"rustc_std_workspace_core",
    b"rustc_std_workspace_alloc",
    b"rustc_std_workspace_std",
];

/// Prefixes of unmangled names that belong to the runtime (allocator shims, unwinding).
const RUNTIME_PREFIXES: &[&[u8]] = &[b"__rust", b"rust_", b"_Unwind", b"__rdl_", b"__rg_"];

/// Whether `name` is a mangled Rust symbol.
pub(crate) fn is_rust(name: &[u8]) -> bool {
    name.starts_with(b"_ZN") || name.starts_with(b"_R")
}

/// Whether the function `name` belongs to the runtime's side (see the module docs).
pub(crate) fn is_runtime(name: &[u8]) -> bool {
    if RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return true;
    }
    if let Some(rest) = name.strip_prefix(b"_ZN") {
        return legacy_mentions_runtime(rest);
    }
    if let Some(rest) = name.strip_prefix(b"_R") {
        return v0_mentions_runtime(rest);
    }
    false
}

fn runtime_crate(ident: &[u8]) -> bool {
    RUNTIME_CRATES.contains(&ident)
}

/// Legacy: `<len><component>…E`. The first component is a crate (or a generic `<…>`); inside
/// any component, a path may start after `$LT$`, `$u20$as$u20$`, `$u20$`, `$C$`, `$RF$`,
/// `$BP$` or `(`, and its first segment ends at `..`.
fn legacy_mentions_runtime(mut s: &[u8]) -> bool {
    let mut first = true;
    while let Some((comp, rest)) = legacy_component(s) {
        if first && runtime_crate(comp) {
            return true;
        }
        first = false;
        // Paths inside the component: each `..`-separated path's first segment.
        let mut i = 0;
        while i < comp.len() {
            let starts = i == 0 || comp[..i].ends_with(b"$") || comp[..i].ends_with(b"_") || comp[i - 1] == b'(';
            if starts {
                let seg_end = comp[i..].windows(2).position(|w| w == b"..").map(|p| i + p);
                if let Some(e) = seg_end {
                    if runtime_crate(&comp[i..e]) {
                        return true;
                    }
                }
            }
            i += 1;
        }
        s = rest;
    }
    false
}

/// Splits `<len><bytes>` off `s`.
fn legacy_component(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n: usize = std::str::from_utf8(&s[..digits]).ok()?.parse().ok()?;
    let body = s.get(digits..digits + n)?;
    Some((body, &s[digits + n..]))
}

/// v0: every `C [s<base62>_] <decimal>[_]<ident>` production.
fn v0_mentions_runtime(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'C' {
            if let Some(ident) = v0_crate_at(&s[i + 1..]) {
                if runtime_crate(ident) {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// The identifier of a crate root whose tag `C` was just before `s`.
fn v0_crate_at(mut s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"s") {
        let k = rest.iter().position(|&c| c == b'_')?;
        if !rest[..k].iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        s = &rest[k + 1..];
    }
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n: usize = std::str::from_utf8(&s[..digits]).ok()?.parse().ok()?;
    let mut body = &s[digits..];
    if body.first() == Some(&b'_') {
        body = &body[1..];
    }
    body.get(..n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_classified_by_every_path_they_mention() {
        assert!(is_runtime(b"_ZN3std2io5stdio6_print17h0123456789abcdefE"));
        assert!(is_runtime(b"_ZN9crthreads4heap6malloc17h0123456789abcdefE"));
        assert!(is_runtime(
            b"_ZN50_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..ops..Drop$GT$4drop17h0123456789abcdefE"
        ));
        assert!(is_runtime(b"_ZN62_$LT$myprog..Point$u20$as$u20$core..fmt..Debug$GT$3fmt17h0123456789abcdefE"));
        assert!(!is_runtime(b"_ZN6myprog7compute17h0123456789abcdefE"));
        assert!(!is_runtime(b"_ZN6myprog4main28_$u7b$$u7b$closure$u7d$$u7d$17h0123456789abcdefE"));
    }

    #[test]
    fn v0_names_are_classified_by_every_crate_they_mention() {
        // The allocator shim, a std function, a std generic instantiated in the program's crate.
        assert!(is_runtime(b"_RNvCsdBezyFGhsGE_7___rustc12___rust_alloc"));
        assert!(is_runtime(b"_RNvNtNtCsjrHSEGnQ3l9_3std2io5stdio6_print"));
        assert!(is_runtime(b"_RNvMs_NtCslNYArtu3iFV_5alloc3vecINtB4_3VecyE4pushCs1234_6myprog"));
        assert!(is_runtime(
            b"_RNvXs0_NtCs9_9crthreads4heapNtB5_7CrAllocNtNtCsgEmfK2I1SDS_4core5alloc11GlobalAlloc5alloc"
        ));
        // The program's own code and closures.
        assert!(!is_runtime(b"_RNvCs1234_6myprog7compute"));
        assert!(!is_runtime(b"_RNCNvCs1234_6myprog4main0B3_"));
        // Unmangled names.
        assert!(is_runtime(b"__rust_alloc"));
        assert!(is_runtime(b"_Unwind_Resume"));
        assert!(!is_runtime(b"compute_kernel"));
    }
}
