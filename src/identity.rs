//! Binary identity and address-space layout, recorded in every checkpoint.
//!
//! A checkpoint holds pointers into the executable and its libraries (vtables, function
//! pointers, string literals, and later return addresses on thread stacks). It is only
//! meaningful to the same binary, with every object loaded at the same address. The meta block
//! records the executable's build-id (or, without one, its size and modification time), and
//! for every object loaded at start-up its name, load address and build-id. Restore compares
//! and refuses a mismatch with a message saying what changed.
//!
//! Encoding (little-endian): magic `CRTMETA1`; exe size u64, exe mtime ns i64, exe path
//! (u16 length + bytes); object count u32; per object: load address u64, name (u16 length +
//! bytes), build-id (u8 length + bytes). The decoder bounds every length.

use crate::sys::proc::{LoadedObject, loaded_objects};

const MAGIC: &[u8; 8] = b"CRTMETA1";

/// What identifies this process image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Size of the executable file.
    pub exe_size: u64,
    /// Modification time of the executable file, ns.
    pub exe_mtime_ns: i64,
    /// Path of the executable.
    pub exe_path: String,
    /// Objects loaded, the executable first.
    pub objects: Vec<LoadedObject>,
}

impl Identity {
    /// The identity of the running process.
    pub fn current() -> Identity {
        let exe_path =
            std::fs::read_link("/proc/self/exe").map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let st = crate::sys::fs::stat(std::path::Path::new("/proc/self/exe")).ok();
        Identity {
            exe_size: st.map_or(0, |s| s.size),
            exe_mtime_ns: st.map_or(0, |s| s.mtime_ns),
            exe_path,
            objects: loaded_objects(),
        }
    }

    /// Encodes into a meta block.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(1024);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.exe_size.to_le_bytes());
        b.extend_from_slice(&self.exe_mtime_ns.to_le_bytes());
        put_str16(&mut b, &self.exe_path);
        b.extend_from_slice(&(self.objects.len() as u32).to_le_bytes());
        for o in &self.objects {
            b.extend_from_slice(&o.addr.to_le_bytes());
            put_str16(&mut b, &o.name);
            let id = &o.build_id[..o.build_id.len().min(255)];
            b.push(id.len() as u8);
            b.extend_from_slice(id);
        }
        b
    }

    /// Decodes a meta block; never panics.
    pub fn decode(b: &[u8]) -> Result<Identity, String> {
        let mut r = Reader { b, at: 0 };
        if r.take(8)? != MAGIC {
            return Err("meta block has an unknown format".into());
        }
        let exe_size = r.u64()?;
        let exe_mtime_ns = r.u64()? as i64;
        let exe_path = r.str16()?;
        let n = r.u32()? as usize;
        if n > 4096 {
            return Err(format!("meta block lists {n} objects"));
        }
        let mut objects = Vec::with_capacity(n);
        for _ in 0..n {
            let addr = r.u64()?;
            let name = r.str16()?;
            let idlen = r.take(1)?[0] as usize;
            let build_id = r.take(idlen)?.to_vec();
            objects.push(LoadedObject { name, addr, build_id });
        }
        if r.at != b.len() {
            return Err("meta block has trailing bytes".into());
        }
        Ok(Identity { exe_size, exe_mtime_ns, exe_path, objects })
    }

    /// Why a checkpoint written by `saved` cannot be restored by `self`, if it cannot.
    pub fn mismatch(&self, saved: &Identity) -> Option<String> {
        let (Some(now_exe), Some(then_exe)) = (self.objects.first(), saved.objects.first()) else {
            return Some("the checkpoint lists no executable".into());
        };
        if !now_exe.build_id.is_empty() && !then_exe.build_id.is_empty() {
            if now_exe.build_id != then_exe.build_id {
                return Some(format!(
                    "it was written by another build of the program (build-id {} in the checkpoint, {} now; {})",
                    hex(&then_exe.build_id),
                    hex(&now_exe.build_id),
                    saved.exe_path
                ));
            }
        } else if self.exe_size != saved.exe_size || self.exe_mtime_ns != saved.exe_mtime_ns {
            // Without a build-id, the file's size and modification time identify the build.
            let what = match (self.exe_size != saved.exe_size, self.exe_mtime_ns != saved.exe_mtime_ns) {
                (true, true) => "its size and modification time differ",
                (true, false) => "its size differs",
                _ => "its modification time differs (the file was rebuilt or touched)",
            };
            return Some(format!(
                "it was written by another version of the program file, which has no build-id: {what} \
                 ({}: {} bytes, modified {} in the checkpoint; {}: {} bytes, modified {} now)",
                saved.exe_path,
                saved.exe_size,
                time_text(saved.exe_mtime_ns),
                self.exe_path,
                self.exe_size,
                time_text(self.exe_mtime_ns)
            ));
        }
        if now_exe.addr != then_exe.addr {
            return Some(format!(
                "the executable is loaded at {:#x}, the checkpoint has it at {:#x}: address-space \
                 randomisation is on (leave CRTHREADS_REEXEC at 1)",
                now_exe.addr, then_exe.addr
            ));
        }
        for then in &saved.objects[1..] {
            match self.objects[1..].iter().find(|o| o.name == then.name) {
                None => return Some(format!("library {} is not loaded now", display(&then.name))),
                Some(now) if now.build_id != then.build_id => {
                    return Some(format!(
                        "library {} changed since the checkpoint (other build-id)",
                        display(&then.name)
                    ));
                }
                Some(now) if now.addr != then.addr => {
                    return Some(format!(
                        "library {} is loaded at {:#x}, the checkpoint has it at {:#x}: address-space \
                         randomisation is on (leave CRTHREADS_REEXEC at 1) or the set of libraries changed",
                        display(&then.name),
                        now.addr,
                        then.addr
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = self.objects[1..].iter().find(|o| !saved.objects[1..].iter().any(|t| t.name == o.name)) {
            return Some(format!(
                "library {} is loaded now but was not when the checkpoint was written",
                display(&extra.name)
            ));
        }
        None
    }
}

/// A time in ns since the epoch as `YYYY-MM-DD hh:mm:ss.nnnnnnnnn UTC`.
pub fn time_text(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{nanos:09} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn display(name: &str) -> &str {
    if name.is_empty() { "(unnamed)" } else { name }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn put_str16(b: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("meta block truncated")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str16(&mut self) -> Result<String, String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_itself() {
        let me = Identity::current();
        let back = Identity::decode(&me.encode()).unwrap();
        assert_eq!(back, me);
        assert_eq!(me.mismatch(&back), None);
    }

    #[test]
    fn moved_library_and_other_build_are_named() {
        let me = Identity::current();
        let mut moved = me.clone();
        let libc_i = moved.objects.iter().position(|o| o.name.contains("libc.so")).unwrap();
        moved.objects[libc_i].addr += 0x1000;
        let why = me.mismatch(&moved).unwrap();
        assert!(why.contains("libc.so") && why.contains("randomisation"), "{why}");
        let mut other = me.clone();
        other.objects[0].build_id = vec![1, 2, 3];
        other.exe_size += 1;
        assert!(me.mismatch(&other).is_some());
    }

    #[test]
    fn a_binary_without_build_id_names_what_differs() {
        let mut me = Identity::current();
        me.objects[0].build_id.clear();
        let mut then = me.clone();
        then.exe_mtime_ns -= 2_000_000_000;
        let why = me.mismatch(&then).unwrap();
        assert!(why.contains("no build-id") && why.contains("modification time differs"), "{why}");
        assert!(why.contains(&time_text(then.exe_mtime_ns)) && why.contains(&time_text(me.exe_mtime_ns)), "{why}");
        then.exe_mtime_ns = me.exe_mtime_ns;
        then.exe_size += 1;
        assert!(me.mismatch(&then).unwrap().contains("its size differs"));
        assert_eq!(time_text(0), "1970-01-01 00:00:00.000000000 UTC");
        assert_eq!(time_text(951_782_400_000_000_001), "2000-02-29 00:00:00.000000001 UTC");
    }

    #[test]
    fn decoder_rejects_truncations() {
        let b = Identity::current().encode();
        for n in 0..b.len() {
            assert!(Identity::decode(&b[..n]).is_err(), "prefix {n}");
        }
    }
}
