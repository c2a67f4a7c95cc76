package confine

import (
	"golang.org/x/sys/unix"

	"github.com/govm/govm/kvm"
)

// allowed is one system call a running govm may make, why, and, for calls
// allowed only with certain values of one argument, that argument's index
// and the values: equal to one of them, or with all of one's bits set
// when bits is true.
type allowed struct {
	name string
	why  string
	arg  uint32
	args []argValue
	bits bool
}

type argValue struct {
	name  string
	value uintptr
}

// allowList is every system call govm makes once its VM is built, with
// the reason. Not on it, among others: execve and fork (no new programs),
// socket, connect, bind and listen (no new endpoints), ptrace, mount,
// bpf, perf_event_open, kexec, module loading, io_uring, userfaultfd,
// setuid and friends, and every KVM ioctl that creates something.
var allowList = []allowed{
	// Go's runtime: threads, memory, signals, timers, the netpoller.
	{name: "futex", why: "runtime: locks, thread sleep and wake"},
	{name: "nanosleep", why: "runtime: usleep, osyield"},
	{name: "clock_nanosleep", why: "runtime: sleeps"},
	{name: "sched_yield", why: "runtime: osyield; the vCPU loop's Yielder"},
	{name: "mmap", why: "runtime: heap and stacks"},
	{name: "munmap", why: "runtime: heap and stacks"},
	{name: "madvise", why: "runtime: returning memory; guest RAM hints"},
	{name: "mincore", why: "--metrics: how much guest RAM is resident"},
	{name: "getrusage", why: "--metrics: govm's peak RSS"},
	{name: "rt_sigreturn", why: "runtime: signal handlers return"},
	{name: "rt_sigaction", why: "runtime: signal handlers"},
	{name: "rt_sigprocmask", why: "runtime: masks around thread start"},
	{name: "sigaltstack", why: "runtime: each thread's signal stack"},
	{name: "tgkill", why: "runtime: preemption (SIGURG); kicking vCPUs out of KVM_RUN"},
	{name: "getpid", why: "runtime and kicks: tgkill's process"},
	{name: "gettid", why: "runtime; naming and pinning threads"},
	// A clone with CLONE_THREAD makes a thread of this process, never a
	// new process (clone3 is not allowed: Go's runtime uses clone).
	{name: "clone", why: "runtime: new threads, never processes", arg: 0, bits: true,
		args: []argValue{{"CLONE_THREAD", unix.CLONE_THREAD}}},
	{name: "exit", why: "runtime: a locked goroutine's thread ends with it"},
	{name: "exit_group", why: "govm exits"},
	{name: "restart_syscall", why: "kernel: a call interrupted by a signal resumes"},
	{name: "getrandom", why: "runtime's random numbers; virtio-rng's bytes"},
	{name: "clock_gettime", why: "time, where the vDSO falls back"},
	{name: "gettimeofday", why: "time, where the vDSO falls back"},
	{name: "epoll_create1", why: "runtime: netpoller, created on first use"},
	{name: "epoll_ctl", why: "runtime netpoller; device loops watch eventfds and sockets"},
	{name: "epoll_pwait", why: "runtime netpoller; device loops"},
	{name: "epoll_wait", why: "device loops"},
	{name: "eventfd2", why: "irqfds and ioeventfds made as the guest enables queues"},
	{name: "ppoll", why: "device loops waiting on one descriptor"},
	{name: "poll", why: "device loops waiting on one descriptor"},

	// Thread placement (machine's tuning, decisions 0001 and 0003).
	{name: "sched_getaffinity", why: "runtime: CPU count; pinning"},
	{name: "sched_setaffinity", why: "pinning vCPU threads (--cpu-affinity)"},
	{name: "sched_getattr", why: "thread policy (decisions/0001)"},
	{name: "sched_setattr", why: "thread policy (decisions/0001)"},

	// Descriptors govm holds: disks, TAPs, frame sockets, the console,
	// eventfds, the metrics file.
	{name: "read", why: "disks, TAPs, eventfds, the console"},
	{name: "write", why: "disks, TAPs, eventfds, the console"},
	{name: "readv", why: "virtio-net: a frame straight into guest buffers"},
	{name: "writev", why: "virtio-net: a frame straight from guest buffers"},
	{name: "pread64", why: "virtio-blk, virtio-fs reads"},
	{name: "pwrite64", why: "virtio-blk, virtio-fs writes"},
	{name: "preadv", why: "virtio-blk: a request's buffers in one call"},
	{name: "pwritev", why: "virtio-blk: a request's buffers in one call"},
	{name: "preadv2", why: "virtio-blk"},
	{name: "pwritev2", why: "virtio-blk"},
	{name: "sendmsg", why: "frame sockets (--net user, socket)"},
	{name: "recvmsg", why: "frame sockets (--net user, socket)"},
	{name: "sendto", why: "frame sockets"},
	{name: "recvfrom", why: "frame sockets"},
	{name: "shutdown", why: "closing a frame socket's relay"},
	{name: "close", why: "every descriptor"},
	{name: "dup", why: "virtio-fs flush: go-fuse closes a duplicate of the open file"},
	{name: "fcntl", why: "non-blocking mode; virtio-fs locks"},
	{name: "fstat", why: "os.File"},
	{name: "lseek", why: "virtio-fs; SEEK_DATA/SEEK_HOLE"},
	{name: "fdatasync", why: "virtio-blk flush"},
	{name: "fsync", why: "virtio-blk flush; virtio-fs fsync"},
	{name: "fallocate", why: "virtio-blk discard and write zeroes; virtio-fs"},
	{name: "ftruncate", why: "virtio-fs setattr"},
	{name: "splice", why: "io.Copy between descriptors (govm exec's streams)"},
	{name: "sendfile", why: "io.Copy between descriptors"},
	{name: "copy_file_range", why: "virtio-fs copy_file_range; io.Copy between files"},
	{name: "ioctl", why: "KVM's running requests; TAP offloads; the terminal", arg: 1, args: ioctls()},

	// Paths: virtio-fs serves a share, confined to it by package share;
	// thread names are written to /proc/self/task/TID/comm; --metrics
	// writes its file at the end.
	{name: "openat", why: "virtio-fs; thread names; the metrics file"},
	{name: "openat2", why: "virtio-fs: go-fuse opens names with RESOLVE_NO_SYMLINKS"},
	{name: "newfstatat", why: "virtio-fs lookup and getattr"},
	{name: "statx", why: "virtio-fs getattr"},
	{name: "fstatfs", why: "virtio-fs statfs"},
	{name: "statfs", why: "virtio-fs statfs"},
	{name: "getdents64", why: "virtio-fs readdir"},
	{name: "readlinkat", why: "virtio-fs readlink"},
	{name: "mkdirat", why: "virtio-fs mkdir"},
	{name: "mknodat", why: "virtio-fs mknod (FIFOs and sockets; package share refuses devices)"},
	{name: "unlinkat", why: "virtio-fs unlink, rmdir"},
	{name: "renameat", why: "virtio-fs rename"},
	{name: "renameat2", why: "virtio-fs rename with flags"},
	{name: "symlinkat", why: "virtio-fs symlink"},
	{name: "linkat", why: "virtio-fs link"},
	{name: "fchmod", why: "virtio-fs setattr"},
	{name: "fchmodat", why: "virtio-fs setattr"},
	{name: "fchown", why: "virtio-fs setattr"},
	{name: "fchownat", why: "virtio-fs setattr"},
	{name: "utimensat", why: "virtio-fs setattr"},
	{name: "faccessat", why: "virtio-fs access"},
	{name: "faccessat2", why: "virtio-fs access"},
	{name: "fgetxattr", why: "virtio-fs xattrs"},
	{name: "fsetxattr", why: "virtio-fs xattrs"},
	{name: "flistxattr", why: "virtio-fs xattrs"},
	{name: "fremovexattr", why: "virtio-fs xattrs"},
	{name: "lgetxattr", why: "virtio-fs xattrs"},
	{name: "lsetxattr", why: "virtio-fs xattrs"},
	{name: "llistxattr", why: "virtio-fs xattrs"},
	{name: "lremovexattr", why: "virtio-fs xattrs"},
	{name: "flock", why: "virtio-fs flock; the user network's switch lock when leaving"},
	{name: "fadvise64", why: "virtio-fs read-ahead hints"},

	// The user network's helper (govm-net): govm stops and reaps it.
	{name: "kill", why: "stopping govm-net"},
	{name: "pidfd_send_signal", why: "stopping govm-net (os.Process)"},
	{name: "waitid", why: "reaping govm-net (os.Process)"},
	{name: "wait4", why: "reaping govm-net"},

	// Identity, read only.
	{name: "getuid", why: "virtio-fs; messages"},
	{name: "geteuid", why: "virtio-fs; messages"},
	{name: "getgid", why: "virtio-fs"},
	{name: "getegid", why: "virtio-fs"},
}

// ioctls are the ioctl requests allowed: KVM's running set, the TAP's
// offload switch (virtio-net features are negotiated while the guest
// runs) and the terminal's settings (restored when govm ends).
func ioctls() []argValue {
	var v []argValue
	for _, r := range kvm.RunningRequests() {
		v = append(v, argValue{r.Name, r.Num})
	}
	return append(v,
		argValue{"TUNSETOFFLOAD", unix.TUNSETOFFLOAD},
		argValue{"TCGETS", unix.TCGETS},
		argValue{"TCSETS", unix.TCSETS},
		argValue{"TIOCGWINSZ", unix.TIOCGWINSZ},
	)
}
