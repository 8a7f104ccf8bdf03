//! Process-level isolation set up by the executor itself: namespaces, a minimal read-only
//! filesystem view with a private `/tmp`, a non-root uid, seccomp programs and rlimits.
//!
//! A worker is started by [`spawn_worker`] in one of three [`Mode`]s, tried strongest first:
//!
//! * [`Mode::UserNs`]: (as root, first switch to `nobody`), `unshare(CLONE_NEWUSER | NEWNS |
//!   NEWNET | NEWIPC | NEWUTS)`, map the uid/gid to 65534 inside, build a tmpfs root holding only
//!   a read-only bind of `/usr` (plus the `/bin`, `/lib*` links), `/dev/{null,zero,urandom}` and
//!   a size-capped private `/tmp`, `pivot_root` into it and remount it read-only, and keep
//!   `CAP_SYS_ADMIN` *of that user namespace* as an ambient capability so that the fork server
//!   can give every job its own PID, IPC and mount namespaces and a fresh tmpfs on `/tmp` (jobs
//!   drop every capability before user code runs). Works as root and unprivileged wherever user
//!   namespaces are allowed. The only mode with per-job namespaces.
//! * [`Mode::RootNs`]: the same without a user namespace (root only; for hosts that forbid user
//!   namespaces), dropping to uid/gid 65534 after the mounts.
//! * [`Mode::Bare`]: no namespaces; as root, drop to 65534. Filesystem and network isolation then
//!   rest on Landlock (applied by the worker) and seccomp only.
//!
//! In every mode the worker gets `PR_SET_PDEATHSIG = SIGKILL`, an empty environment (plus
//! `PYTHONHASHSEED=0` and `LD_BIND_NOW=1`), its own process group, only fds 0-2 (every other
//! inherited descriptor is made close-on-exec first), rlimits (`NOFILE`, `CORE`) and a seccomp
//! filter denying networking, tracing, unmounting and namespace-joining syscalls. Each
//! per-execution child adds the stricter [`child_filters`] (no mount/capset/fork/exec/kill/setsid
//! either). Everything the `pre_exec` hook needs is prepared before `fork`, so the hook only
//! issues raw syscalls.

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// The uid/gid user code runs as (the conventional `nobody`).
pub(crate) const SANDBOX_ID: u32 = 65534;

/// How a worker is isolated (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// User + mount + network namespaces, minimal read-only root, private /tmp.
    UserNs,
    /// Mount + network namespaces without a user namespace (root only).
    RootNs,
    /// No namespaces (Landlock + seccomp only).
    Bare,
}

impl Mode {
    /// Whether this mode has a private network namespace.
    pub(crate) fn has_netns(self) -> bool {
        !matches!(self, Mode::Bare)
    }

    /// Whether every job gets its own PID, IPC and mount namespaces and a fresh `/tmp` (the
    /// worker keeps `CAP_SYS_ADMIN` inside its own user namespace to create them).
    pub(crate) fn has_job_namespaces(self) -> bool {
        matches!(self, Mode::UserNs)
    }

    /// Whether this mode builds the minimal read-only root with a private /tmp.
    pub(crate) fn has_private_root(self) -> bool {
        !matches!(self, Mode::Bare)
    }

    /// Short name for logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::UserNs => "user+mount+net namespaces",
            Mode::RootNs => "mount+net namespaces (no user namespace)",
            Mode::Bare => "no namespaces",
        }
    }
}

/// Syscalls nobody in the sandbox may make (worker and children): networking, tracing,
/// namespaces and mounts, kernel attack surface.
fn worker_denied() -> Vec<i64> {
    use libc::*;
    vec![
        SYS_socket,
        SYS_socketpair,
        SYS_connect,
        SYS_bind,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_unshare,
        SYS_setns,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_kexec_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_reboot,
        SYS_swapon,
        SYS_swapoff,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_fanotify_init,
        SYS_fsopen,
        SYS_fsmount,
        SYS_move_mount,
        SYS_open_tree,
        SYS_fsconfig,
        SYS_fspick,
        SYS_mount_setattr,
    ]
}

/// Additional syscalls a per-execution child may not make: mounts (the worker mounts each job's
/// fresh `/tmp`, so only the job filter denies them), capability changes, process creation and
/// exec, signals to other processes, leaving its process group, identity changes.
fn child_extra_denied() -> Vec<i64> {
    use libc::*;
    let mut v = vec![
        SYS_mount,
        SYS_capset,
        SYS_clone,
        SYS_execve,
        SYS_execveat,
        SYS_kill,
        SYS_tkill,
        SYS_tgkill,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_pidfd_open,
        SYS_pidfd_send_signal,
        SYS_pidfd_getfd,
        SYS_setsid,
        SYS_setpgid,
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setgroups,
        SYS_personality,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([SYS_fork, SYS_vfork]);
    v
}

fn deny_filter(syscalls: Vec<i64>) -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        syscalls.into_iter().map(|nr| (nr, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

/// `AUDIT_ARCH_*` of the build target (what `seccomp_data.arch` holds for native syscalls).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
/// `AUDIT_ARCH_*` of the build target (what `seccomp_data.arch` holds for native syscalls).
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Where a jump of the job filter goes before offsets are resolved.
#[derive(Clone, Copy)]
enum Target {
    /// The next instruction.
    Next,
    /// Skip this many instructions.
    Skip(usize),
    /// One of the shared `return` instructions at the end of the program.
    Ret(Verdict),
}

/// The verdicts of the job filter (one `return` instruction each, at the end of the program).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Eperm,
    Enosys,
    Kill,
}

const VERDICTS: [Verdict; 4] = [
    Verdict::Allow,
    Verdict::Eperm,
    Verdict::Enosys,
    Verdict::Kill,
];

impl Verdict {
    fn ret_value(self) -> u32 {
        match self {
            Verdict::Allow => libc::SECCOMP_RET_ALLOW,
            Verdict::Eperm => libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            Verdict::Enosys => libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            Verdict::Kill => libc::SECCOMP_RET_KILL_PROCESS,
        }
    }
}

/// One instruction before jump resolution: (code, k, jump if true, jump if false).
type Pending = (u16, u32, Target, Target);

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Emit a decision tree over `keys` (sorted by syscall number, each with its verdict):
/// `JGE` splits down to chains of at most three `JEQ`s; a number in none of them is allowed.
fn emit_tree(keys: &[(u32, Verdict)], out: &mut Vec<Pending>) {
    if keys.len() <= 3 {
        let Some((&(last, last_verdict), rest)) = keys.split_last() else {
            out.push((JA, 0, Target::Ret(Verdict::Allow), Target::Next));
            return;
        };
        for &(nr, verdict) in rest {
            out.push((JEQ_K, nr, Target::Ret(verdict), Target::Next));
        }
        out.push((
            JEQ_K,
            last,
            Target::Ret(last_verdict),
            Target::Ret(Verdict::Allow),
        ));
        return;
    }
    let mid = keys.len() / 2;
    let mut low = Vec::new();
    emit_tree(&keys[..mid], &mut low);
    // Numbers >= keys[mid] skip the lower half's code.
    out.push((JGE_K, keys[mid].0, Target::Skip(low.len()), Target::Next));
    out.extend(low);
    emit_tree(&keys[mid..], out);
}

/// The job filter as one classic BPF program: a native-architecture check (anything else kills
/// the process), on x86_64 x32-ABI numbers kill the process (they would bypass number-based
/// rules), `clone3` fails with `ENOSYS` (so libc falls back to `clone`, which is denied), and
/// every number in `denied` fails with `EPERM`; all else is allowed (the worker's own filter,
/// which every job inherits, still applies).
///
/// The numbers are searched with a balanced tree of comparisons rather than one comparison
/// after another: attaching a filter costs every job, and the kernel runs the program once per
/// syscall number at attach time (to find the numbers it always allows), so both the length of
/// the program and the length of its paths are paid per job.
fn job_filter(denied: &[i64]) -> Result<BpfProgram, String> {
    use seccompiler::sock_filter;
    let mut keys: Vec<(u32, Verdict)> = denied
        .iter()
        .map(|&nr| u32::try_from(nr).map(|n| (n, Verdict::Eperm)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("syscall number: {e}"))?;
    keys.push((libc::SYS_clone3 as u32, Verdict::Enosys));
    keys.sort_unstable_by_key(|k| k.0);
    keys.dedup_by_key(|k| k.0);
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut code: Vec<Pending> = vec![
        (LD_W_ABS, 4, Target::Next, Target::Next),
        (JEQ_K, AUDIT_ARCH, Target::Next, Target::Ret(Verdict::Kill)),
        (LD_W_ABS, 0, Target::Next, Target::Next),
    ];
    if cfg!(target_arch = "x86_64") {
        code.push((JGE_K, 0x4000_0000, Target::Ret(Verdict::Kill), Target::Next));
    }
    emit_tree(&keys, &mut code);
    let ret_at = |v: Verdict| code.len() + VERDICTS.iter().position(|x| *x == v).unwrap_or(0);
    let offset = |pc: usize, t: Target| match t {
        Target::Next => 0,
        Target::Skip(n) => n,
        Target::Ret(v) => ret_at(v) - pc - 1,
    };
    let mut prog = Vec::with_capacity(code.len() + VERDICTS.len());
    for (pc, &(op, k, jt, jf)) in code.iter().enumerate() {
        let ins = if op == JA {
            sock_filter {
                code: op,
                jt: 0,
                jf: 0,
                k: u32::try_from(offset(pc, jt)).map_err(|_| "seccomp jump too long")?,
            }
        } else {
            let short = |t| u8::try_from(offset(pc, t)).map_err(|_| "seccomp jump too long");
            sock_filter {
                code: op,
                jt: short(jt)?,
                jf: short(jf)?,
                k,
            }
        };
        prog.push(ins);
    }
    for v in VERDICTS {
        prog.push(sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: v.ret_value(),
        });
    }
    Ok(prog)
}

/// The seccomp program every per-execution child installs, as raw `sock_filter` bytes in hex
/// (the worker passes it to `prctl(PR_SET_SECCOMP)`). It stacks on the worker's own filter,
/// which every job inherits, so it holds only what the job may do on top of the worker's
/// denials ([`job_filter`]: one program, so one attach per job).
pub(crate) fn child_filters() -> Result<Vec<String>, String> {
    Ok(vec![to_hex(&job_filter(&child_extra_denied())?)])
}

fn to_hex(prog: &BpfProgram) -> String {
    let mut s = String::with_capacity(prog.len() * 16);
    for ins in prog {
        let mut bytes = Vec::with_capacity(8);
        bytes.extend_from_slice(&ins.code.to_ne_bytes());
        bytes.push(ins.jt);
        bytes.push(ins.jf);
        bytes.extend_from_slice(&ins.k.to_ne_bytes());
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|e| e.to_string())
}

/// One top-level entry of the new root besides `/usr`.
enum RootEntry {
    /// A symlink `name -> target` (merged-/usr systems: `/bin -> usr/bin`).
    Link(CString, CString),
    /// A directory bind-mounted read-only from the host.
    Bind(CString, CString),
}

/// Everything the `pre_exec` hook needs, built before `fork` (no allocation after it).
pub(crate) struct SpawnPlan {
    mode: Mode,
    drop_first: bool,
    drop_after_mounts: bool,
    setgroups_path: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    deny: CString,
    slash: CString,
    newroot: CString,
    usr_src: CString,
    usr_dst: CString,
    usr_flags: libc::c_ulong,
    tmpfs: CString,
    root_opts: CString,
    tmp_dir: CString,
    tmp_opts: CString,
    dev_dir: CString,
    devs: Vec<(CString, CString)>,
    entries: Vec<RootEntry>,
    dot: CString,
    worker_filter: BpfProgram,
    nofile: u64,
    parent_pid: libc::pid_t,
}

fn mount_flags_of(path: &str) -> Result<libc::c_ulong, String> {
    let c = cstr(path)?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!("statvfs {path}: {}", io::Error::last_os_error()));
    }
    let mut flags: libc::c_ulong = 0;
    let f = st.f_flag;
    for (st_bit, ms_bit) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_bit != 0 {
            flags |= ms_bit;
        }
    }
    Ok(flags)
}

impl SpawnPlan {
    /// Prepare a plan for `mode`; `tmp_mb` caps the private /tmp.
    pub(crate) fn new(mode: Mode, tmp_mb: u64) -> Result<Self, String> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let root = uid == 0;
        if mode == Mode::RootNs && !root {
            return Err("needs root".into());
        }
        let outer_uid = if root { SANDBOX_ID } else { uid };
        let outer_gid = if root { SANDBOX_ID } else { gid };
        let mut entries = Vec::new();
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = format!("/{name}");
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(&host).map_err(|e| e.to_string())?;
                    let target = target.to_str().ok_or("non-UTF-8 link")?.to_string();
                    entries.push(RootEntry::Link(
                        cstr(&target)?,
                        cstr(&format!("/tmp/{name}"))?,
                    ));
                }
                Ok(m) if m.is_dir() => entries.push(RootEntry::Bind(
                    cstr(&host)?,
                    cstr(&format!("/tmp/{name}"))?,
                )),
                _ => {}
            }
        }
        let devs = ["null", "zero", "urandom"]
            .iter()
            .map(|d| Ok((cstr(&format!("/dev/{d}"))?, cstr(&format!("/tmp/dev/{d}"))?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(SpawnPlan {
            mode,
            drop_first: root && mode != Mode::RootNs,
            drop_after_mounts: root && mode == Mode::RootNs,
            setgroups_path: cstr("/proc/self/setgroups")?,
            uid_map_path: cstr("/proc/self/uid_map")?,
            gid_map_path: cstr("/proc/self/gid_map")?,
            uid_map: format!("{SANDBOX_ID} {outer_uid} 1\n").into_bytes(),
            gid_map: format!("{SANDBOX_ID} {outer_gid} 1\n").into_bytes(),
            deny: cstr("deny")?,
            slash: cstr("/")?,
            newroot: cstr("/tmp")?,
            usr_src: cstr("/usr")?,
            usr_dst: cstr("/tmp/usr")?,
            usr_flags: mount_flags_of("/usr")?,
            tmpfs: cstr("tmpfs")?,
            root_opts: cstr("size=1m,mode=0755")?,
            tmp_dir: cstr("/tmp/tmp")?,
            tmp_opts: cstr(&format!("size={}m,mode=1777", tmp_mb.max(1)))?,
            dev_dir: cstr("/tmp/dev")?,
            devs,
            entries,
            dot: cstr(".")?,
            worker_filter: deny_filter(worker_denied())?,
            nofile: 256,
            parent_pid: std::process::id() as libc::pid_t,
        })
    }

    /// The mode this plan sets up.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }
}

fn check(rc: libc::c_int, what: &'static str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// Switch the real, effective and saved uid/gid to the sandbox id and drop supplementary groups.
fn drop_to_sandbox_id() -> io::Result<()> {
    // SAFETY: plain syscalls on the current process.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(
            libc::setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID),
            "setresgid",
        )?;
        check(
            libc::setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID),
            "setresuid",
        )?;
        // Changing credentials clears "dumpable", which would make /proc/self/*_map root-owned.
        check(
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0),
            "PR_SET_DUMPABLE",
        )?;
    }
    Ok(())
}

fn write_file(path: &CString, data: &[u8]) -> io::Result<()> {
    // SAFETY: raw open/write/close on a path we own; the buffer outlives the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

fn mount(
    src: Option<&CString>,
    dst: &CString,
    fstype: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
    what: &'static str,
) -> io::Result<()> {
    let p = |c: Option<&CString>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a valid C string owned by the plan.
    let rc = unsafe { libc::mount(p(src), dst.as_ptr(), p(fstype), flags, p(data).cast()) };
    check(rc, what)
}

/// Build the minimal root under `/tmp` (in the private mount namespace) and pivot into it.
fn build_root(plan: &SpawnPlan) -> io::Result<()> {
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    mount(
        None,
        &plan.slash,
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
        "make / private",
    )?;
    mount(
        Some(&plan.tmpfs),
        &plan.newroot,
        Some(&plan.tmpfs),
        nosuid_nodev,
        Some(&plan.root_opts),
        "mount root tmpfs",
    )?;
    // SAFETY: mkdir/open/symlink/chdir/pivot_root/umount2 with valid C strings from the plan.
    unsafe {
        check(libc::mkdir(plan.usr_dst.as_ptr(), 0o755), "mkdir usr")?;
        mount(
            Some(&plan.usr_src),
            &plan.usr_dst,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
            "bind /usr",
        )?;
        let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | plan.usr_flags;
        mount(
            None,
            &plan.usr_dst,
            None,
            ro,
            None,
            "remount /usr read-only",
        )?;
        for entry in &plan.entries {
            match entry {
                RootEntry::Link(target, link) => {
                    check(libc::symlink(target.as_ptr(), link.as_ptr()), "symlink")?
                }
                RootEntry::Bind(src, dst) => {
                    check(libc::mkdir(dst.as_ptr(), 0o755), "mkdir lib")?;
                    mount(
                        Some(src),
                        dst,
                        None,
                        libc::MS_BIND | libc::MS_REC,
                        None,
                        "bind lib",
                    )?;
                    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | nosuid_nodev;
                    mount(None, dst, None, flags, None, "remount lib read-only")?;
                }
            }
        }
        check(libc::mkdir(plan.dev_dir.as_ptr(), 0o755), "mkdir dev")?;
        for (src, dst) in &plan.devs {
            let fd = libc::open(
                dst.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(fd);
            mount(Some(src), dst, None, libc::MS_BIND, None, "bind device")?;
        }
        check(libc::mkdir(plan.tmp_dir.as_ptr(), 0o1777), "mkdir tmp")?;
        mount(
            Some(&plan.tmpfs),
            &plan.tmp_dir,
            Some(&plan.tmpfs),
            nosuid_nodev,
            Some(&plan.tmp_opts),
            "mount private /tmp",
        )?;
        check(libc::chdir(plan.newroot.as_ptr()), "chdir new root")?;
        let rc = libc::syscall(libc::SYS_pivot_root, plan.dot.as_ptr(), plan.dot.as_ptr());
        check(if rc == 0 { 0 } else { -1 }, "pivot_root")?;
        check(
            libc::umount2(plan.dot.as_ptr(), libc::MNT_DETACH),
            "detach old root",
        )?;
        check(libc::chdir(plan.slash.as_ptr()), "chdir /")?;
    }
    let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | nosuid_nodev;
    mount(None, &plan.slash, None, ro, None, "remount root read-only")?;
    Ok(())
}

/// `close_range(2)` flag: mark the range close-on-exec instead of closing it.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// `CAP_SYS_ADMIN`.
const CAP_SYS_ADMIN: u32 = 21;

/// Keep `CAP_SYS_ADMIN` (of the worker's own user namespace only) across the `execve` as an
/// ambient capability: the fork server needs it to give every job new PID, IPC and mount
/// namespaces and a fresh `/tmp`. Jobs drop every capability before user code runs.
fn keep_sys_admin_in_namespace() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut head = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a valid header and two data structs; prctl on ourselves.
    unsafe {
        let rc = libc::syscall(
            libc::SYS_capget,
            &mut head as *mut Header,
            data.as_mut_ptr(),
        );
        check(if rc == 0 { 0 } else { -1 }, "capget")?;
        data[0].inheritable |= 1 << CAP_SYS_ADMIN;
        let rc = libc::syscall(libc::SYS_capset, &mut head as *mut Header, data.as_ptr());
        check(if rc == 0 { 0 } else { -1 }, "capset")?;
        let (raise, cap, unused): (libc::c_ulong, libc::c_ulong, libc::c_ulong) = (
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            CAP_SYS_ADMIN.into(),
            0,
        );
        check(
            libc::prctl(libc::PR_CAP_AMBIENT, raise, cap, unused, unused),
            "raise ambient CAP_SYS_ADMIN",
        )?;
    }
    Ok(())
}

/// The `pre_exec` body: runs in the forked child before `execve`. Only raw syscalls.
fn enter_sandbox(plan: &SpawnPlan) -> io::Result<()> {
    // SAFETY: plain syscalls on the current (single-threaded, freshly forked) process.
    unsafe {
        // Only fds 0-2 survive the exec, whatever the parent inherited (a test harness, a shell,
        // a service manager): every other descriptor, at any number, is marked close-on-exec.
        // (Marked rather than closed: std's error-report pipe must stay open until the exec.)
        let rc = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
        check(if rc == 0 { 0 } else { -1 }, "close_range")?;
        let lim = libc::rlimit {
            rlim_cur: plan.nofile,
            rlim_max: plan.nofile,
        };
        check(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), "RLIMIT_NOFILE")?;
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        check(libc::setrlimit(libc::RLIMIT_CORE, &zero), "RLIMIT_CORE")?;
    }
    if plan.drop_first {
        drop_to_sandbox_id()?;
    }
    let ns = libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    match plan.mode {
        Mode::UserNs => {
            // SAFETY: unshare of the current process.
            check(
                unsafe { libc::unshare(libc::CLONE_NEWUSER | ns) },
                "unshare(user+mount+net)",
            )?;
            write_file(&plan.setgroups_path, plan.deny.as_bytes())?;
            write_file(&plan.uid_map_path, &plan.uid_map)?;
            write_file(&plan.gid_map_path, &plan.gid_map)?;
            build_root(plan)?;
            keep_sys_admin_in_namespace()?;
        }
        Mode::RootNs => {
            // SAFETY: unshare of the current process.
            check(unsafe { libc::unshare(ns) }, "unshare(mount+net)")?;
            build_root(plan)?;
        }
        Mode::Bare => {}
    }
    if plan.drop_after_mounts {
        drop_to_sandbox_id()?;
    }
    // Last: every credential change above (setresuid, entering a user namespace) clears the
    // parent-death signal. It fires when the spawning *thread* exits, which is why the pool
    // spawns workers from one long-lived thread.
    // SAFETY: prctl/getppid on the current process.
    unsafe {
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0),
            "PR_SET_PDEATHSIG",
        )?;
        if libc::getppid() != plan.parent_pid {
            return Err(io::Error::other("parent died during spawn"));
        }
    }
    seccompiler::apply_filter(&plan.worker_filter)
        .map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    Ok(())
}

/// Spawn `python -s -S -B -c <boot> <worker> <config>` under `plan` with `control` (one end of
/// a `SOCK_SEQPACKET` socket pair) as its fd 0, `/dev/null` as fd 1 and stderr piped for
/// start-up diagnostics. No other descriptor reaches the worker. `boot` runs first and must
/// remove the worker source from `sys.argv` (the worker reads its config from `sys.argv[1]`).
pub(crate) fn spawn_worker(
    python: &str,
    boot: &str,
    source: &str,
    config_json: &str,
    plan: std::sync::Arc<SpawnPlan>,
    control: std::os::fd::OwnedFd,
) -> io::Result<Child> {
    let mut cmd = Command::new(python);
    cmd.args(["-s", "-S", "-B", "-c", boot, source, config_json])
        .env_clear()
        .env("PYTHONHASHSEED", "0")
        // Resolve every symbol at start: with lazy binding, the first call of a libc function in
        // a job (`_exit`, for one) walks every library's symbol table and patches the GOT, a
        // dozen page faults per job. (The worker empties its environment before any job runs.)
        .env("LD_BIND_NOW", "1")
        .current_dir("/")
        .stdin(Stdio::from(control))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the hook only performs raw syscalls on data prepared before fork (see SpawnPlan).
    unsafe {
        cmd.pre_exec(move || enter_sandbox(&plan));
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a classic BPF program the way the kernel does for seccomp (the instructions the
    /// job filter uses only): (return value, instructions executed).
    fn run(prog: &BpfProgram, nr: u32, arch: u32) -> (u32, usize) {
        let mut acc = 0u32;
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            let ins = &prog[pc];
            pc += 1;
            steps += 1;
            match ins.code {
                LD_W_ABS => acc = if ins.k == 0 { nr } else { arch },
                JEQ_K => pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf }),
                JGE_K => pc += usize::from(if acc >= ins.k { ins.jt } else { ins.jf }),
                JA => pc += ins.k as usize,
                RET_K => return (ins.k, steps),
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    #[test]
    fn job_filter_gives_every_number_its_verdict() {
        let denied = child_extra_denied();
        let prog = job_filter(&denied).unwrap();
        assert!(prog.len() < 64, "{} instructions", prog.len());
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let mut longest = 0;
        for nr in 0..2048u32 {
            let want = if nr == libc::SYS_clone3 as u32 {
                enosys
            } else if denied.contains(&i64::from(nr)) {
                eperm
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            let (got, steps) = run(&prog, nr, AUDIT_ARCH);
            assert_eq!(got, want, "syscall {nr}");
            longest = longest.max(steps);
            // Another architecture's numbering never reaches the rules.
            assert_eq!(
                run(&prog, nr, 0x4000_0003).0,
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
        // The kernel walks the program once per syscall number when it is attached.
        assert!(longest <= 14, "longest path {longest}");
        if cfg!(target_arch = "x86_64") {
            for nr in [
                0x4000_0000u32,
                0x4000_0000 | libc::SYS_kill as u32,
                u32::MAX,
            ] {
                assert_eq!(run(&prog, nr, AUDIT_ARCH).0, libc::SECCOMP_RET_KILL_PROCESS);
            }
        }
    }
}
