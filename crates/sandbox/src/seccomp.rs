//! The seccomp filter of every sandboxed process: system calls an agent never needs fail with
//! EPERM (namespaces, mounts, ptrace, kernel modules, keyrings, BPF, perf, reboot, clocks,
//! swap, io_uring, ...), `clone` with a namespace flag fails, and `clone3` (whose flags
//! seccomp cannot read) answers ENOSYS so that libc falls back to `clone`. Everything else is
//! allowed: git, python, pip and pytest need nothing above.
//!
//! The program is classic BPF, assembled here (about 60 instructions) and handed to
//! bubblewrap's `--seccomp FD`. Rejected: libseccomp (a C library and its headers on every
//! machine, for one fixed deny list) and an allow list (what test suites need varies too
//! much per repository to enumerate).

/// One BPF instruction, as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
#[cfg(target_endian = "little")]
const OFF_ARG0_LOW: u32 = 16;
#[cfg(target_endian = "big")]
const OFF_ARG0_LOW: u32 = 20;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_003E);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_00B7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// Every namespace flag of clone(2) (CLONE_NEWNS ... CLONE_NEWTIME).
const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | 0x80) as u32; // CLONE_NEWTIME

/// System calls denied with EPERM on every architecture.
const DENIED: &[libc::c_long] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_quotactl,
    libc::SYS_vhangup,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// x86-only system calls (port I/O, the LDT, long-gone module calls).
#[cfg(target_arch = "x86_64")]
const DENIED_ARCH: &[libc::c_long] = &[
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_modify_ldt,
    libc::SYS_uselib,
    libc::SYS__sysctl,
];
#[cfg(not(target_arch = "x86_64"))]
const DENIED_ARCH: &[libc::c_long] = &[];

/// The filter program in the kernel's binary layout, or `None` on an architecture this
/// filter does not know (the launch then says that seccomp is not enforced).
pub(crate) fn program() -> Option<Vec<u8>> {
    let arch = AUDIT_ARCH?;
    let mut p = vec![
        Insn::load(OFF_ARCH),
        Insn::jump(JEQ_K, arch, 1, 0),
        Insn::ret(RET_KILL_PROCESS),
        Insn::load(OFF_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // The x32 ABI reaches the same calls under other numbers: refuse it whole.
        p.push(Insn::jump(JGE_K, 0x4000_0000, 0, 1));
        p.push(Insn::ret(RET_ERRNO | libc::EPERM as u32));
    }
    for nr in DENIED.iter().chain(DENIED_ARCH) {
        p.push(Insn::jump(JEQ_K, *nr as u32, 0, 1));
        p.push(Insn::ret(RET_ERRNO | libc::EPERM as u32));
    }
    p.push(Insn::jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(Insn::ret(RET_ERRNO | libc::ENOSYS as u32));
    // Last, because it replaces the system call number in the accumulator.
    p.extend([
        Insn::jump(JEQ_K, libc::SYS_clone as u32, 0, 3),
        Insn::load(OFF_ARG0_LOW),
        Insn::jump(JSET_K, CLONE_NAMESPACES, 0, 1),
        Insn::ret(RET_ERRNO | libc::EPERM as u32),
        Insn::ret(RET_ALLOW),
    ]);
    Some(p.iter().flat_map(Insn::bytes).collect())
}

impl Insn {
    fn load(offset: u32) -> Insn {
        Insn {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: offset,
        }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code, jt, jf, k }
    }

    fn ret(k: u32) -> Insn {
        Insn {
            code: RET_K,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the subset used here: the program must answer as intended.
    fn run(program: &[u8], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        data[16..24].copy_from_slice(&arg0.to_ne_bytes());
        let insns: Vec<Insn> = program
            .chunks(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = insns[pc];
            let taken = match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
                    pc += 1;
                    continue;
                }
                RET_K => return i.k,
                JEQ_K => acc == i.k,
                JGE_K => acc >= i.k,
                JSET_K => acc & i.k != 0,
                other => panic!("unexpected opcode {other:#x}"),
            };
            pc += 1 + usize::from(if taken { i.jt } else { i.jf });
        }
    }

    #[test]
    fn denies_what_an_agent_never_needs_and_allows_the_rest() {
        let Some(p) = program() else { return };
        let arch = AUDIT_ARCH.unwrap();
        let eperm = RET_ERRNO | libc::EPERM as u32;
        for nr in [
            libc::SYS_unshare,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_bpf,
        ] {
            assert_eq!(run(&p, arch, nr as u32, 0), eperm, "{nr}");
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_wait4,
        ] {
            assert_eq!(run(&p, arch, nr as u32, 0), RET_ALLOW, "{nr}");
        }
        let clone = libc::SYS_clone as u32;
        let sigchld = libc::SIGCHLD as u64;
        assert_eq!(run(&p, arch, clone, sigchld), RET_ALLOW);
        assert_eq!(
            run(&p, arch, clone, sigchld | libc::CLONE_NEWUSER as u64),
            eperm
        );
        assert_eq!(
            run(&p, arch, libc::SYS_clone3 as u32, 0),
            RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(
            run(&p, arch ^ 1, libc::SYS_read as u32, 0),
            RET_KILL_PROCESS
        );
    }
}
