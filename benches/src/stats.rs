//! Reading what a benchmarked child reports: the runtime's statistics file (`CRTHREADS_STATS`,
//! one JSON object per checkpoint) and timestamps on the system-wide monotonic clock, which a
//! parent and its child can compare.

use std::path::Path;

/// The figures of one checkpoint, from one line of the statistics file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// Sequence number.
    pub seq: u64,
    /// Pages found written since the previous checkpoint.
    pub dirty_pages: u64,
    /// Pages brought up to date in the store (written or recorded as holes).
    pub pages_written: u64,
    /// Of those, holes.
    pub holes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Whole checkpoint, µs (gathering not included).
    pub duration_us: u64,
    /// Persistent threads parked for it.
    pub threads_parked: u64,
    /// Gathering the threads, µs.
    pub gather_us: u64,
    /// Releases or requests it covered at once.
    pub group: u64,
    /// Attempts abandoned so far.
    pub abandoned: u64,
}

/// The unsigned number after `"key":` in a one-line JSON object.
pub fn json_u64(line: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat)? + pat.len();
    let digits: String = line[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

impl Line {
    /// Parses one line of the statistics file; `None` if a field is missing.
    pub fn parse(line: &str) -> Option<Line> {
        let f = |k: &str| json_u64(line, k);
        Some(Line {
            seq: f("seq")?,
            dirty_pages: f("dirty_pages")?,
            pages_written: f("pages_written")?,
            holes: f("holes")?,
            bytes_written: f("bytes_written")?,
            duration_us: f("duration_us")?,
            threads_parked: f("threads_parked")?,
            gather_us: f("gather_us")?,
            group: f("group")?,
            abandoned: f("abandoned")?,
        })
    }
}

/// Every checkpoint recorded in the statistics file at `path` (none if it does not exist).
/// Panics on a line that does not parse: the benchmark would report nonsense.
pub fn read(path: &Path) -> Vec<Line> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Line::parse(l).unwrap_or_else(|| panic!("unexpected statistics line: {l}")))
        .collect()
}

/// Nanoseconds on `CLOCK_MONOTONIC`: the same clock in every process of the machine.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The value at fraction `q` (0..=1) of `v` (sorted in place), nearest rank.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[k - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statistics_line_parses_including_the_coordinator_fields() {
        let s = crthreads::Stats {
            seq: 7,
            pages_written: 12,
            duration_us: 345,
            threads_parked: 65,
            gather_us: 4100,
            group: 3,
            ..Default::default()
        };
        let l = Line::parse(&s.to_json(crthreads::TrackerKind::Uffd)).unwrap();
        assert_eq!((l.seq, l.pages_written, l.duration_us), (7, 12, 345));
        assert_eq!((l.threads_parked, l.gather_us, l.group), (65, 4100, 3));
        assert_eq!(Line::parse("{\"seq\":1}"), None);
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.9), 90.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
    }
}
