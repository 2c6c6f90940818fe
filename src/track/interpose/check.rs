//! Compile-time checks that every interposer has exactly the C signature the libc crate declares
//! for the function it replaces (glibc's headers). The libc crate does not declare the variadic
//! `ioctl`, `fcntl` and `prctl` the way they are defined here (see `ctl.rs`), nor these, whose
//! signatures were checked by hand against glibc 2.36's headers (`fcntl64` is variadic too; the
//! `__xstat` family is no longer declared: its prototypes are glibc 2.32's): `__fread_chk`,
//! `__fread_unlocked_chk`, `__fxstat`, `__fxstat64`, `__fxstatat`, `__fxstatat64`, `__getcwd_chk`,
//! `__getgroups_chk`, `__lxstat`, `__lxstat64`, `__poll_chk`, `__ppoll_chk`, `__pread64_chk`,
//! `__pread_chk`, `__read_chk`, `__readlink_chk`, `__readlinkat_chk`, `__recv_chk`,
//! `__recvfrom_chk`, `__sysv_signal`, `__ttyname_r_chk`, `__xstat`, `__xstat64`, `bsd_signal`,
//! `capget`, `fcntl64`, `getcpu`, `getdents64`, `getdirentries`, `getdirentries64`, `setbuffer`,
//! `sigblock`, `sighold`, `sigignore`, `siginterrupt`, `sigset`, `sigsetmask`, `ssignal`,
//! `sysv_signal`, `timespec_get`, `timespec_getres`, `wait3`.

use super::{ctl, fs, io, proc, signals, sockets};

// Each array coerces both functions to one function pointer type, or fails to compile.
const _: () = {
    let _ = [sockets::accept, libc::accept];
};
const _: () = {
    let _ = [sockets::accept4, libc::accept4];
};
const _: () = {
    let _ = [proc::adjtimex, libc::adjtimex];
};
const _: () = {
    let _ = [proc::clock_adjtime, libc::clock_adjtime];
};
const _: () = {
    let _ = [proc::clock_getres, libc::clock_getres];
};
const _: () = {
    let _ = [proc::clock_gettime, libc::clock_gettime];
};
const _: () = {
    let _ = [proc::clock_nanosleep, libc::clock_nanosleep];
};
const _: () = {
    let _ = [io::copy_file_range, libc::copy_file_range];
};
const _: () = {
    let _ = [sockets::epoll_pwait, libc::epoll_pwait];
};
const _: () = {
    let _ = [sockets::epoll_pwait2, libc::epoll_pwait2];
};
const _: () = {
    let _ = [sockets::epoll_wait, libc::epoll_wait];
};
const _: () = {
    let _ = [io::eventfd_read, libc::eventfd_read];
};
const _: () = {
    let _ = [fs::fgetxattr, libc::fgetxattr];
};
const _: () = {
    let _ = [fs::flistxattr, libc::flistxattr];
};
const _: () = {
    let _ = [io::fread, libc::fread];
};
const _: () = {
    let _ = [io::fread_unlocked, libc::fread_unlocked];
};
const _: () = {
    let _ = [fs::fstat, libc::fstat];
};
const _: () = {
    let _ = [fs::fstat64, libc::fstat64];
};
const _: () = {
    let _ = [fs::fstatat, libc::fstatat];
};
const _: () = {
    let _ = [fs::fstatat64, libc::fstatat64];
};
const _: () = {
    let _ = [fs::fstatfs, libc::fstatfs];
};
const _: () = {
    let _ = [fs::fstatfs64, libc::fstatfs64];
};
const _: () = {
    let _ = [fs::fstatvfs, libc::fstatvfs];
};
const _: () = {
    let _ = [fs::fstatvfs64, libc::fstatvfs64];
};
const _: () = {
    let _ = [fs::getcwd, libc::getcwd];
};
const _: () = {
    let _ = [io::getentropy, libc::getentropy];
};
const _: () = {
    let _ = [proc::getgroups, libc::getgroups];
};
const _: () = {
    let _ = [proc::getitimer, libc::getitimer];
};
const _: () = {
    let _ = [sockets::getpeername, libc::getpeername];
};
const _: () = {
    let _ = [io::getrandom, libc::getrandom];
};
const _: () = {
    let _ = [proc::getresgid, libc::getresgid];
};
const _: () = {
    let _ = [proc::getresuid, libc::getresuid];
};
const _: () = {
    let _ = [proc::getrlimit, libc::getrlimit];
};
const _: () = {
    let _ = [proc::getrlimit64, libc::getrlimit64];
};
const _: () = {
    let _ = [proc::getrusage, libc::getrusage];
};
const _: () = {
    let _ = [sockets::getsockname, libc::getsockname];
};
const _: () = {
    let _ = [sockets::getsockopt, libc::getsockopt];
};
const _: () = {
    let _ = [proc::gettimeofday, libc::gettimeofday];
};
const _: () = {
    let _ = [fs::getxattr, libc::getxattr];
};
const _: () = {
    let _ = [fs::lgetxattr, libc::lgetxattr];
};
const _: () = {
    let _ = [fs::listxattr, libc::listxattr];
};
const _: () = {
    let _ = [fs::llistxattr, libc::llistxattr];
};
const _: () = {
    let _ = [fs::lstat, libc::lstat];
};
const _: () = {
    let _ = [fs::lstat64, libc::lstat64];
};
const _: () = {
    let _ = [proc::mincore, libc::mincore];
};
const _: () = {
    let _ = [io::mq_getattr, libc::mq_getattr];
};
const _: () = {
    let _ = [io::mq_receive, libc::mq_receive];
};
const _: () = {
    let _ = [io::mq_setattr, libc::mq_setattr];
};
const _: () = {
    let _ = [io::mq_timedreceive, libc::mq_timedreceive];
};
const _: () = {
    let _ = [io::msgctl, libc::msgctl];
};
const _: () = {
    let _ = [io::msgrcv, libc::msgrcv];
};
const _: () = {
    let _ = [fs::name_to_handle_at, libc::name_to_handle_at];
};
const _: () = {
    let _ = [proc::nanosleep, libc::nanosleep];
};
const _: () = {
    let _ = [proc::ntp_adjtime, libc::ntp_adjtime];
};
const _: () = {
    let _ = [io::pipe, libc::pipe];
};
const _: () = {
    let _ = [io::pipe2, libc::pipe2];
};
const _: () = {
    let _ = [sockets::poll, libc::poll];
};
const _: () = {
    let _ = [sockets::ppoll, libc::ppoll];
};
const _: () = {
    let _ = [io::pread, libc::pread];
};
const _: () = {
    let _ = [io::pread64, libc::pread64];
};
const _: () = {
    let _ = [io::preadv, libc::preadv];
};
const _: () = {
    let _ = [io::preadv2, libc::preadv2];
};
const _: () = {
    let _ = [io::preadv64, libc::preadv64];
};
const _: () = {
    let _ = [io::preadv64v2, libc::preadv64v2];
};
const _: () = {
    let _ = [proc::prlimit, libc::prlimit];
};
const _: () = {
    let _ = [proc::prlimit64, libc::prlimit64];
};
const _: () = {
    let _ = [io::process_vm_readv, libc::process_vm_readv];
};
const _: () = {
    let _ = [sockets::pselect, libc::pselect];
};
const _: () = {
    let _ = [proc::pthread_getaffinity_np, libc::pthread_getaffinity_np];
};
const _: () = {
    let _ = [proc::pthread_getname_np, libc::pthread_getname_np];
};
const _: () = {
    let _ = [signals::pthread_sigmask, libc::pthread_sigmask];
};
const _: () = {
    let _ = [io::read, libc::read];
};
const _: () = {
    let _ = [fs::readdir, libc::readdir];
};
const _: () = {
    let _ = [fs::readdir64, libc::readdir64];
};
const _: () = {
    let _ = [fs::readdir64_r, libc::readdir64_r];
};
const _: () = {
    let _ = [fs::readdir_r, libc::readdir_r];
};
const _: () = {
    let _ = [fs::readlink, libc::readlink];
};
const _: () = {
    let _ = [fs::readlinkat, libc::readlinkat];
};
const _: () = {
    let _ = [io::readv, libc::readv];
};
const _: () = {
    let _ = [sockets::recv, libc::recv];
};
const _: () = {
    let _ = [sockets::recvfrom, libc::recvfrom];
};
const _: () = {
    let _ = [sockets::recvmmsg, libc::recvmmsg];
};
const _: () = {
    let _ = [sockets::recvmsg, libc::recvmsg];
};
const _: () = {
    let _ = [proc::sched_getaffinity, libc::sched_getaffinity];
};
const _: () = {
    let _ = [proc::sched_getparam, libc::sched_getparam];
};
const _: () = {
    let _ = [proc::sched_rr_get_interval, libc::sched_rr_get_interval];
};
const _: () = {
    let _ = [sockets::select, libc::select];
};
const _: () = {
    let _ = [io::sendfile, libc::sendfile];
};
const _: () = {
    let _ = [io::sendfile64, libc::sendfile64];
};
const _: () = {
    let _ = [io::setbuf, libc::setbuf];
};
const _: () = {
    let _ = [proc::setitimer, libc::setitimer];
};
const _: () = {
    let _ = [io::setvbuf, libc::setvbuf];
};
const _: () = {
    let _ = [io::shmctl, libc::shmctl];
};
const _: () = {
    let _ = [signals::sigaction, libc::sigaction];
};
const _: () = {
    let _ = [signals::sigaltstack, libc::sigaltstack];
};
const _: () = {
    let _ = [signals::signal, libc::signal];
};
const _: () = {
    let _ = [signals::sigpending, libc::sigpending];
};
const _: () = {
    let _ = [signals::sigprocmask, libc::sigprocmask];
};
const _: () = {
    let _ = [signals::sigsuspend, libc::sigsuspend];
};
const _: () = {
    let _ = [signals::sigtimedwait, libc::sigtimedwait];
};
const _: () = {
    let _ = [signals::sigwait, libc::sigwait];
};
const _: () = {
    let _ = [signals::sigwaitinfo, libc::sigwaitinfo];
};
const _: () = {
    let _ = [sockets::socketpair, libc::socketpair];
};
const _: () = {
    let _ = [io::splice, libc::splice];
};
const _: () = {
    let _ = [fs::stat, libc::stat];
};
const _: () = {
    let _ = [fs::stat64, libc::stat64];
};
const _: () = {
    let _ = [fs::statfs, libc::statfs];
};
const _: () = {
    let _ = [fs::statfs64, libc::statfs64];
};
const _: () = {
    let _ = [fs::statvfs, libc::statvfs];
};
const _: () = {
    let _ = [fs::statvfs64, libc::statvfs64];
};
const _: () = {
    let _ = [fs::statx, libc::statx];
};
const _: () = {
    let _ = [proc::sysinfo, libc::sysinfo];
};
const _: () = {
    let _ = [ctl::tcgetattr, libc::tcgetattr];
};
const _: () = {
    let _ = [proc::time, libc::time];
};
const _: () = {
    let _ = [proc::timer_gettime, libc::timer_gettime];
};
const _: () = {
    let _ = [proc::timer_settime, libc::timer_settime];
};
const _: () = {
    let _ = [proc::timerfd_gettime, libc::timerfd_gettime];
};
const _: () = {
    let _ = [proc::timerfd_settime, libc::timerfd_settime];
};
const _: () = {
    let _ = [proc::times, libc::times];
};
const _: () = {
    let _ = [ctl::ttyname_r, libc::ttyname_r];
};
const _: () = {
    let _ = [proc::uname, libc::uname];
};
const _: () = {
    let _ = [io::vmsplice, libc::vmsplice];
};
const _: () = {
    let _ = [proc::wait, libc::wait];
};
const _: () = {
    let _ = [proc::wait4, libc::wait4];
};
const _: () = {
    let _ = [proc::waitid, libc::waitid];
};
const _: () = {
    let _ = [proc::waitpid, libc::waitpid];
};
