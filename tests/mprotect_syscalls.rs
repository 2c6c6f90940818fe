//! System calls writing into write-protected heap pages under the mprotect tracker.
//!
//! After a checkpoint every heap page is read-only, and a system call writing into one fails
//! with EFAULT unless crthreads opened the page first. A child process (the `calls` role) gives
//! each call its own page of a heap block (so nothing but that call writes the page after the
//! checkpoint), sets up every input before the checkpoint, and then makes the calls: `fstat`,
//! `stat`, `lstat`, `statx`, `statfs`, `getcwd`, `readlink`, `pipe`, `socketpair`,
//! `getrandom`, `waitpid` on a forked child, `poll` revents, `select` sets, `epoll_wait`,
//! `uname`, `sysinfo`, `times`, `getrusage`, `getrlimit`, `clock_gettime` (a vDSO clock and a
//! CPU-time clock, which is a system call), `nanosleep`'s remaining time (interrupted by a
//! timer's signal), `readdir` and `getdents64`, `getsockname`, `accept`, `getpeername`,
//! `getsockopt`, `sigprocmask`'s old set, `sigpending`, `sigtimedwait`, `sigaltstack`,
//! `ioctl(FIONREAD)`, `tcgetattr` on a pseudo-terminal, `fcntl(F_GETLK)`, `prctl(PR_GET_NAME)`,
//! `getresuid`, `getgroups`, `sched_getaffinity`, `getitimer`, `timerfd_gettime`,
//! `process_vm_readv`, `msgrcv`, `mq_receive` and `getxattr`. Each must succeed with the right
//! result. Then a checkpoint, and the child kills itself with SIGKILL; the next run (`restored`)
//! restores the heap and prints the bytes of every page, which must equal what the first run
//! printed after its calls: the kernel's writes were recorded as dirty and are in the
//! checkpoint.
//!
//! In a Rust program the `DIR` of `opendir` comes from libc's own `malloc`, outside the region;
//! the C version of this test (`cabi/tests/mprotect_c.rs`) covers a `DIR` in the region.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;

use common::{TempDir, child, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const PAGE: usize = 4096;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; PAGE]);

/// The calls, in order; each owns the page of its index. The number is how many bytes of the
/// page its answer occupies (compared after the restore).
const CALLS: &[(&str, usize)] = &[
    ("fstat", size_of::<libc::stat>()),
    ("stat", size_of::<libc::stat>()),
    ("lstat", size_of::<libc::stat>()),
    ("statx", size_of::<libc::statx>()),
    ("statfs", size_of::<libc::statfs>()),
    ("getcwd", 512),
    ("readlink", 64),
    ("pipe", 8),
    ("socketpair", 8),
    ("getrandom", 64),
    ("waitpid", 4),
    ("poll", 2 * size_of::<libc::pollfd>()),
    ("select", size_of::<libc::fd_set>()),
    ("epoll_wait", 4 * size_of::<libc::epoll_event>()),
    ("uname", size_of::<libc::utsname>()),
    ("sysinfo", size_of::<libc::sysinfo>()),
    ("times", size_of::<libc::tms>()),
    ("getrusage", size_of::<libc::rusage>()),
    ("getrlimit", size_of::<libc::rlimit>()),
    ("clock_gettime_monotonic", size_of::<libc::timespec>()),
    ("clock_gettime_cputime", size_of::<libc::timespec>()),
    ("nanosleep", size_of::<libc::timespec>()),
    ("getdents64", PAGE),
    ("getsockname", 4 + size_of::<libc::sockaddr_un>()),
    ("accept", 4 + size_of::<libc::sockaddr_un>()),
    ("getpeername", 4 + size_of::<libc::sockaddr_un>()),
    ("getsockopt", 8),
    ("sigprocmask", 8),
    ("sigpending", 8),
    ("sigtimedwait", size_of::<libc::siginfo_t>()),
    ("sigaltstack", size_of::<libc::stack_t>()),
    ("ioctl_fionread", 4),
    ("tcgetattr", size_of::<libc::termios>()),
    ("fcntl_getlk", size_of::<libc::flock>()),
    ("prctl_get_name", 16),
    ("getresuid", 12),
    ("getgroups", 256),
    ("sched_getaffinity", size_of::<libc::cpu_set_t>()),
    ("getitimer", size_of::<libc::itimerval>()),
    ("timerfd_gettime", size_of::<libc::itimerspec>()),
    ("process_vm_readv", 100),
    ("msgrcv", 8 + 64),
    ("mq_receive", 64 + 4),
    ("getxattr", 32),
];

struct State {
    pages: Box<[Page]>,
}

/// The page of call `name` in the pages at `base`, as a pointer to `T`.
fn page<T>(base: *mut Page, name: &str) -> *mut T {
    let i = CALLS.iter().position(|(n, _)| *n == name).unwrap_or_else(|| panic!("no call {name}"));
    base.wrapping_add(i).cast()
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn init(dir: &str) -> crthreads::Start {
    crthreads::init(crthreads::Config::from_env().unwrap().dir(dir).keep(true)).unwrap()
}

/// What every page holds: one line per call, its answer's bytes in hex.
fn report(pages: &[Page]) -> String {
    let mut s = String::new();
    for (i, (name, len)) in CALLS.iter().enumerate() {
        let hex: String = pages[i].0[..*len].iter().map(|b| format!("{b:02x}")).collect();
        s += &format!("{name} {hex}\n");
    }
    s
}

fn c(s: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(s.as_ref().as_bytes()).unwrap()
}

extern "C" fn on_signal(_: libc::c_int) {}

unsafe extern "C" {
    /// glibc 2.30's `getdents64` (the libc crate does not declare it).
    fn getdents64(fd: libc::c_int, buf: *mut libc::c_void, n: usize) -> isize;
}

/// Child: the calls (see the module docs).
fn child_calls() {
    let dir = std::env::var("DIR").unwrap();
    let fix = std::path::PathBuf::from(std::env::var("FIX").unwrap());
    assert_eq!(init(&dir), crthreads::Start::Fresh);
    // SAFETY: the root holds only heap data.
    let mut st =
        unsafe { crthreads::root(|| State { pages: vec![Page([0; PAGE]); CALLS.len()].into_boxed_slice() }) }.unwrap();
    let st: *mut Page = st.pages.as_mut_ptr();
    std::env::set_current_dir(&fix).unwrap();
    let data_meta = std::fs::metadata(fix.join("data")).unwrap();

    // SAFETY: (whole block) plain system calls on descriptors and buffers this function owns;
    // every out-pointer is a page of `st` or a live local.
    unsafe {
        // Inputs, all set up before the checkpoint.
        let data = std::fs::File::open(fix.join("data")).unwrap();
        let data_fd = std::os::fd::AsRawFd::as_raw_fd(&data);
        let dirfd = libc::open(c"d".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(dirfd >= 0);
        let dirp = libc::opendir(c"d".as_ptr());
        assert!(!dirp.is_null());
        let mut p = [0; 2];
        assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
        assert_eq!(libc::write(p[1], b"7 bytes".as_ptr().cast(), 7), 7);
        let pfd: *mut libc::pollfd = page(st, "poll");
        *pfd = libc::pollfd { fd: p[0], events: libc::POLLIN, revents: 0 };
        *pfd.add(1) = libc::pollfd { fd: p[1], events: libc::POLLOUT, revents: 0 };
        let rset: *mut libc::fd_set = page(st, "select");
        libc::FD_SET(p[0], rset);
        let ep = libc::epoll_create1(0);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 77 };
        assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, p[0], &mut ev), 0);
        let child = libc::fork();
        if child == 0 {
            libc::_exit(42);
        }
        let sock_path = fix.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
        let lfd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let client = std::os::unix::net::UnixStream::connect(&sock_path).unwrap();
        let cfd = std::os::fd::AsRawFd::as_raw_fd(&client);
        for name in ["getsockname", "accept", "getpeername"] {
            *page::<libc::socklen_t>(st, name) = size_of::<libc::sockaddr_un>() as u32;
        }
        *page::<libc::socklen_t>(st, "getsockopt").add(1) = 4;
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        assert_eq!(libc::sigprocmask(libc::SIG_BLOCK, &set, core::ptr::null_mut()), 0);
        let mut alrm: libc::sigaction = core::mem::zeroed();
        alrm.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        assert_eq!(libc::sigaction(libc::SIGALRM, &alrm, core::ptr::null_mut()), 0);
        let pty = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(pty >= 0 && libc::grantpt(pty) == 0 && libc::unlockpt(pty) == 0);
        let lk: *mut libc::flock = page(st, "fcntl_getlk");
        (*lk).l_type = libc::F_WRLCK as i16;
        (*lk).l_whence = libc::SEEK_SET as i16;
        let tfd = libc::timerfd_create(libc::CLOCK_MONOTONIC, 0);
        let its = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: 100, tv_nsec: 0 },
        };
        assert_eq!(libc::timerfd_settime(tfd, 0, &its, core::ptr::null_mut()), 0);
        let remote = *b"process_vm_readv copies these bytes from here into the protected heap page........";
        let local_iov: *mut libc::iovec = page::<u8>(st, "process_vm_readv").add(PAGE - 64).cast();
        *local_iov = libc::iovec { iov_base: page::<u8>(st, "process_vm_readv").cast(), iov_len: remote.len() };
        let q = libc::msgget(libc::IPC_PRIVATE, 0o600);
        assert!(q >= 0, "msgget: {}", errno());
        let mut msg = [0u8; 8 + 64];
        msg[..8].copy_from_slice(&5i64.to_ne_bytes());
        msg[8..20].copy_from_slice(b"sysv message");
        assert_eq!(libc::msgsnd(q, msg.as_ptr().cast(), 12, 0), 0, "msgsnd: {}", errno());
        let mq_name = c(format!("/crt-{}", std::process::id()));
        let mut attr: libc::mq_attr = core::mem::zeroed();
        attr.mq_maxmsg = 4;
        attr.mq_msgsize = 64;
        let mq = libc::mq_open(mq_name.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600, &mut attr as *mut libc::mq_attr);
        assert!(mq >= 0, "mq_open: {}", errno());
        libc::mq_unlink(mq_name.as_ptr());
        assert_eq!(libc::mq_send(mq, c"posix message".as_ptr(), 13, 3), 0);
        let xattr = libc::fsetxattr(data_fd, c"user.crthreads".as_ptr(), b"xattr value".as_ptr().cast(), 11, 0) == 0;
        if !xattr {
            eprintln!("note: user extended attributes unsupported here ({}); getxattr not checked", errno());
        }
        assert_eq!(libc::prctl(libc::PR_SET_NAME, c"crt-calls".as_ptr()), 0);

        crthreads::checkpoint().unwrap();

        // The calls: every out-parameter is in a write-protected page.
        let r = libc::fstat(data_fd, page(st, "fstat"));
        assert_eq!(r, 0, "fstat: {}", errno());
        let s: &libc::stat = &*page(st, "fstat");
        assert_eq!((s.st_size as u64, s.st_ino), (data_meta.len(), std::os::unix::fs::MetadataExt::ino(&data_meta)));
        assert_eq!(libc::stat(c"data".as_ptr(), page(st, "stat")), 0, "stat: {}", errno());
        assert_eq!((*page::<libc::stat>(st, "stat")).st_size as u64, data_meta.len());
        assert_eq!(libc::lstat(c"link".as_ptr(), page(st, "lstat")), 0, "lstat: {}", errno());
        assert_eq!((*page::<libc::stat>(st, "lstat")).st_mode & libc::S_IFMT, libc::S_IFLNK);
        let r = libc::statx(libc::AT_FDCWD, c"data".as_ptr(), 0, libc::STATX_SIZE, page(st, "statx"));
        assert_eq!(r, 0, "statx: {}", errno());
        assert_eq!((*page::<libc::statx>(st, "statx")).stx_size, data_meta.len());
        assert_eq!(libc::statfs(c".".as_ptr(), page(st, "statfs")), 0, "statfs: {}", errno());
        assert!((*page::<libc::statfs>(st, "statfs")).f_bsize > 0);
        let r = libc::getcwd(page(st, "getcwd"), 512);
        assert!(!r.is_null(), "getcwd: {}", errno());
        let cwd = std::ffi::CStr::from_ptr(page(st, "getcwd"));
        assert_eq!(cwd.to_bytes(), std::fs::canonicalize(&fix).unwrap().as_os_str().as_bytes());
        let r = libc::readlink(c"link".as_ptr(), page(st, "readlink"), 64);
        assert_eq!(r, 4, "readlink: {}", errno());
        assert_eq!(&*page::<[u8; 4]>(st, "readlink"), b"data");
        assert_eq!(libc::pipe(page(st, "pipe")), 0, "pipe: {}", errno());
        let fds = *page::<[i32; 2]>(st, "pipe");
        assert!(fds[0] > 2 && fds[1] > 2 && fds[0] != fds[1]);
        let r = libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, page(st, "socketpair"));
        assert_eq!(r, 0, "socketpair: {}", errno());
        let r = libc::getrandom(page(st, "getrandom"), 64, 0);
        assert_eq!(r, 64, "getrandom: {}", errno());
        assert!((*page::<[u8; 64]>(st, "getrandom")).iter().any(|&b| b != 0));
        let r = libc::waitpid(child, page(st, "waitpid"), 0);
        assert_eq!(r, child, "waitpid: {}", errno());
        let status = *page::<i32>(st, "waitpid");
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 42, "status {status:#x}");
        assert_eq!(libc::poll(pfd, 2, 0), 2, "poll: {}", errno());
        assert_eq!(((*pfd).revents, (*pfd.add(1)).revents), (libc::POLLIN, libc::POLLOUT));
        let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
        let r = libc::select(p[0] + 1, rset, core::ptr::null_mut(), core::ptr::null_mut(), &mut tv);
        assert_eq!(r, 1, "select: {}", errno());
        assert!(libc::FD_ISSET(p[0], rset));
        let evs: *mut libc::epoll_event = page(st, "epoll_wait");
        assert_eq!(libc::epoll_wait(ep, evs, 4, 0), 1, "epoll_wait: {}", errno());
        assert_eq!({ (*evs).u64 }, 77);
        assert_eq!(libc::uname(page(st, "uname")), 0, "uname: {}", errno());
        let sysname = std::ffi::CStr::from_ptr((*page::<libc::utsname>(st, "uname")).sysname.as_ptr());
        assert_eq!(sysname.to_bytes(), b"Linux");
        assert_eq!(libc::sysinfo(page(st, "sysinfo")), 0, "sysinfo: {}", errno());
        assert!((*page::<libc::sysinfo>(st, "sysinfo")).totalram > 0);
        assert_ne!(libc::times(page(st, "times")), -1, "times: {}", errno());
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, page(st, "getrusage")), 0, "getrusage: {}", errno());
        assert!((*page::<libc::rusage>(st, "getrusage")).ru_maxrss > 0);
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, page(st, "getrlimit")), 0, "getrlimit: {}", errno());
        assert!((*page::<libc::rlimit>(st, "getrlimit")).rlim_cur > 0);
        let r = libc::clock_gettime(libc::CLOCK_MONOTONIC, page(st, "clock_gettime_monotonic"));
        assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC): {}", errno());
        let r = libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, page(st, "clock_gettime_cputime"));
        assert_eq!(r, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID): {}", errno());
        let t: &libc::timespec = &*page(st, "clock_gettime_cputime");
        assert!(t.tv_sec > 0 || t.tv_nsec > 0);

        // nanosleep, interrupted by SIGALRM from a periodic timer (a signal certainly comes
        // while it sleeps), writes the remaining time.
        let tick = libc::timeval { tv_sec: 0, tv_usec: 20_000 };
        let every = libc::itimerval { it_interval: tick, it_value: tick };
        assert_eq!(libc::setitimer(libc::ITIMER_REAL, &every, core::ptr::null_mut()), 0);
        let long = libc::timespec { tv_sec: 60, tv_nsec: 0 };
        let r = libc::nanosleep(&long, page(st, "nanosleep"));
        let e = errno();
        assert_eq!(libc::getitimer(libc::ITIMER_REAL, page(st, "getitimer")), 0, "getitimer: {}", errno());
        assert_eq!((*page::<libc::itimerval>(st, "getitimer")).it_interval.tv_usec, 20_000);
        let off: libc::itimerval = core::mem::zeroed();
        libc::setitimer(libc::ITIMER_REAL, &off, core::ptr::null_mut());
        assert_eq!((r, e.raw_os_error()), (-1, Some(libc::EINTR)), "nanosleep: {e}");
        assert!((*page::<libc::timespec>(st, "nanosleep")).tv_sec > 50);

        let de = libc::readdir(dirp);
        assert!(!de.is_null(), "readdir: {}", errno());
        let r = getdents64(dirfd, page(st, "getdents64"), PAGE);
        assert!(r > 0, "getdents64: {}", errno());
        let names = &*page::<[u8; PAGE]>(st, "getdents64");
        assert!(names.windows(5).any(|w| w == b"alpha") && names.windows(4).any(|w| w == b"beta"));

        let sun = |name: &str| page::<u8>(st, name).add(4).cast::<libc::sockaddr>();
        let len = |name: &str| page::<libc::socklen_t>(st, name);
        assert_eq!(libc::getsockname(lfd, sun("getsockname"), len("getsockname")), 0, "getsockname: {}", errno());
        let bound = std::ffi::CStr::from_ptr((*sun("getsockname").cast::<libc::sockaddr_un>()).sun_path.as_ptr());
        assert_eq!(bound.to_bytes(), sock_path.as_os_str().as_bytes());
        let afd = libc::accept(lfd, sun("accept"), len("accept"));
        assert!(afd >= 0, "accept: {}", errno());
        assert_eq!(*len("accept"), 2, "an unbound client's address is its family only");
        assert_eq!(libc::getpeername(cfd, sun("getpeername"), len("getpeername")), 0, "getpeername: {}", errno());
        assert_eq!(*len("getpeername") as usize, 2 + sock_path.as_os_str().len() + 1);
        let so: *mut libc::socklen_t = page(st, "getsockopt");
        let r = libc::getsockopt(cfd, libc::SOL_SOCKET, libc::SO_TYPE, so.cast(), so.add(1));
        assert_eq!(r, 0, "getsockopt: {}", errno());
        assert_eq!(*so as i32, libc::SOCK_STREAM);

        let r = libc::sigprocmask(libc::SIG_BLOCK, core::ptr::null(), page(st, "sigprocmask"));
        assert_eq!(r, 0, "sigprocmask: {}", errno());
        assert_eq!(libc::sigismember(page(st, "sigprocmask"), libc::SIGUSR1), 1);
        libc::raise(libc::SIGUSR1);
        assert_eq!(libc::sigpending(page(st, "sigpending")), 0, "sigpending: {}", errno());
        assert_eq!(libc::sigismember(page(st, "sigpending"), libc::SIGUSR1), 1);
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let r = libc::sigtimedwait(&set, page(st, "sigtimedwait"), &zero);
        assert_eq!(r, libc::SIGUSR1, "sigtimedwait: {}", errno());
        assert_eq!((*page::<libc::siginfo_t>(st, "sigtimedwait")).si_signo, libc::SIGUSR1);
        let r = libc::sigaltstack(core::ptr::null(), page(st, "sigaltstack"));
        assert_eq!(r, 0, "sigaltstack: {}", errno());

        assert_eq!(libc::ioctl(p[0], libc::FIONREAD, page::<i32>(st, "ioctl_fionread")), 0, "ioctl: {}", errno());
        assert_eq!(*page::<i32>(st, "ioctl_fionread"), 7);
        let slave = libc::open(libc::ptsname(pty), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0);
        assert_eq!(libc::tcgetattr(slave, page(st, "tcgetattr")), 0, "tcgetattr: {}", errno());
        assert_ne!((*page::<libc::termios>(st, "tcgetattr")).c_cflag, 0);
        assert_eq!(libc::fcntl(data_fd, libc::F_GETLK, lk), 0, "fcntl(F_GETLK): {}", errno());
        assert_eq!((*lk).l_type, libc::F_UNLCK as i16, "no conflicting lock");
        let r = libc::prctl(libc::PR_GET_NAME, page::<u8>(st, "prctl_get_name"));
        assert_eq!(r, 0, "prctl: {}", errno());
        assert_eq!(&(*page::<[u8; 10]>(st, "prctl_get_name")), b"crt-calls\0");
        let ids: *mut libc::uid_t = page(st, "getresuid");
        assert_eq!(libc::getresuid(ids, ids.add(1), ids.add(2)), 0, "getresuid: {}", errno());
        assert_eq!(*ids.add(1), libc::geteuid());
        let n = libc::getgroups(64, page(st, "getgroups"));
        assert!(n >= 0, "getgroups: {}", errno());
        let cpus: *mut libc::cpu_set_t = page(st, "sched_getaffinity");
        assert_eq!(libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), cpus), 0, "sched_getaffinity: {}", errno());
        assert!(libc::CPU_COUNT(&*cpus) > 0);
        assert_eq!(libc::timerfd_gettime(tfd, page(st, "timerfd_gettime")), 0, "timerfd_gettime: {}", errno());
        assert!((*page::<libc::itimerspec>(st, "timerfd_gettime")).it_value.tv_sec > 50);
        let remote_iov = libc::iovec { iov_base: remote.as_ptr() as *mut _, iov_len: remote.len() };
        let r = libc::process_vm_readv(libc::getpid(), local_iov, 1, &remote_iov, 1, 0);
        assert_eq!(r, remote.len() as isize, "process_vm_readv: {}", errno());
        assert_eq!(&*page::<[u8; 82]>(st, "process_vm_readv"), &remote);
        let r = libc::msgrcv(q, page(st, "msgrcv"), 64, 0, libc::IPC_NOWAIT);
        assert_eq!(r, 12, "msgrcv: {}", errno());
        libc::msgctl(q, libc::IPC_RMID, core::ptr::null_mut());
        assert_eq!(&(&*page::<[u8; 20]>(st, "msgrcv"))[8..], b"sysv message");
        let prio: *mut u32 = page::<u8>(st, "mq_receive").add(64).cast();
        let r = libc::mq_receive(mq, page(st, "mq_receive"), 64, prio);
        assert_eq!(r, 13, "mq_receive: {}", errno());
        assert_eq!((&(*page::<[u8; 13]>(st, "mq_receive")), *prio), (b"posix message", 3));
        if xattr {
            let r = libc::getxattr(c"data".as_ptr(), c"user.crthreads".as_ptr(), page(st, "getxattr"), 32);
            assert_eq!(r, 11, "getxattr: {}", errno());
            assert_eq!(&*page::<[u8; 11]>(st, "getxattr"), b"xattr value");
        }
    }
    // SAFETY: the pages are initialised (zeroed, then written by the calls).
    print!("{}", report(unsafe { &*core::ptr::slice_from_raw_parts(st, CALLS.len()) }));
    crthreads::checkpoint().unwrap();
    // SAFETY: crash, as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Child: restores and prints what every page holds.
fn child_restored() {
    let dir = std::env::var("DIR").unwrap();
    assert!(init(&dir).is_restored());
    // SAFETY: the same root type as the first run.
    let st = unsafe { crthreads::root(|| State { pages: Box::new([]) }) }.unwrap();
    print!("{}", report(&st.pages));
}

fn the_kernels_writes_succeed_and_reach_the_checkpoint() {
    let d = TempDir::new("mprotect-calls");
    let fix = d.join("fix");
    std::fs::create_dir_all(fix.join("d")).unwrap();
    std::fs::write(fix.join("data"), vec![b'x'; 12345]).unwrap();
    std::os::unix::fs::symlink("data", fix.join("link")).unwrap();
    std::fs::write(fix.join("d/alpha"), b"a").unwrap();
    std::fs::write(fix.join("d/beta"), b"b").unwrap();
    let ckpt = d.join("ckpt");
    let env = [("DIR", ckpt.as_os_str()), ("FIX", fix.as_os_str())];
    let first = child("calls").envs(env).env("CRTHREADS_TRACKER", "mprotect").output().unwrap();
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(
        first.status.signal(),
        Some(libc::SIGKILL),
        "the first run failed: {}\n{out}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(out.lines().count(), CALLS.len(), "{out}");
    let second = child("restored").envs(env).env("CRTHREADS_TRACKER", "mprotect").output().unwrap();
    assert!(second.status.success(), "the restored run failed: {}", String::from_utf8_lossy(&second.stderr));
    let restored = String::from_utf8_lossy(&second.stdout);
    for (w, r) in out.lines().zip(restored.lines()) {
        assert_eq!(r, w, "a page the kernel wrote is not in the checkpoint");
    }
    assert_eq!(restored.lines().count(), CALLS.len());
}

fn main() {
    match role().as_deref() {
        Some("calls") => return child_calls(),
        Some("restored") => return child_restored(),
        _ => {}
    }
    run_tests(&[(
        "the_kernels_writes_succeed_and_reach_the_checkpoint",
        the_kernels_writes_succeed_and_reach_the_checkpoint,
    )]);
}
