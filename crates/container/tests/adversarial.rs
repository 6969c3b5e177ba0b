//! The sandbox's guarantees against hostile commands, for real against podman's service.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{factory, factory_with, run, sandbox, spec};
use swerl_container::{ContainerConfig, LABEL, OWNER_LABEL};
use swerl_sandbox::Sandbox;

#[test]
fn network_is_blocked() {
    let f = factory();
    let mut sb = sandbox(&f);
    assert_eq!(run(&mut sb, "ls /sys/class/net").output, "lo\n");
    let probe =
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=5)\"";
    let r = run(&mut sb, probe);
    assert_ne!(r.exit_code, Some(0), "{}", r.output);
    assert!(r.output.contains("Network is unreachable"), "{}", r.output);
}

#[test]
fn writes_outside_the_repo_do_not_outlive_the_container() {
    let f = factory();
    let mut first = sandbox(&f);
    let r = run(
        &mut first,
        "echo x > /etc/swerl-leak && echo y > /usr/bin/swerl-leak && rm -f /bin/ls && echo ok",
    );
    assert_eq!(r.output, "ok\n");
    first.teardown().unwrap();
    let mut second = sandbox(&f);
    let r = run(
        &mut second,
        "ls /etc/swerl-leak /usr/bin/swerl-leak 2>&1; test -x /bin/ls && echo ls-intact",
    );
    assert!(r.output.contains("No such file"), "{}", r.output);
    assert!(r.output.ends_with("ls-intact\n"), "{}", r.output);
}

#[test]
fn fork_bomb_is_contained_by_the_pids_limit() {
    let f = factory();
    let mut sb = sandbox(&f);
    assert_eq!(
        run(
            &mut sb,
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"
        )
        .output,
        "128\n"
    );
    let r = sb
        .exec(
            "bomb() { bomb | bomb & }; bomb; sleep 30",
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    assert!(r.timed_out, "{}", r.output);
    // The sandbox recovers: the bomb is gone and commands run again.
    let r = run(&mut sb, "echo alive; ls /proc | grep -c '^[0-9]'");
    assert!(r.output.starts_with("alive\n"), "{}", r.output);
    let procs: u32 = r.output.lines().nth(1).unwrap().parse().unwrap();
    assert!(procs < 10, "processes left after the bomb: {procs}");
}

#[test]
fn memory_bomb_is_contained() {
    let f = factory();
    let mut sb = sandbox(&f);
    let bomb = "python3 -c \"a = []\nwhile True: a.append(bytearray(16 << 20))\"";
    let r = sb.exec(bomb, Some(Duration::from_secs(60))).unwrap();
    assert!(
        !r.timed_out,
        "the memory limit, not the timeout, must stop it: {}",
        r.output
    );
    assert_ne!(r.exit_code, Some(0), "{}", r.output);
    assert_eq!(run(&mut sb, "echo alive").output, "alive\n");
}

#[test]
fn infinite_loop_times_out_and_the_shell_comes_back() {
    let f = factory();
    let mut sb = sandbox(&f);
    run(&mut sb, "cd /tmp && export KEEP=1");
    let r = sb
        .exec(
            "echo start; while :; do :; done",
            Some(Duration::from_secs(2)),
        )
        .unwrap();
    assert!(r.timed_out);
    assert_eq!(r.exit_code, None);
    assert!(
        r.output.starts_with("start\n[command timed out after 2 s;"),
        "{}",
        r.output
    );
    let r = run(
        &mut sb,
        "pwd; echo $KEEP; ps -e -o comm= 2>/dev/null | grep -c bash || true",
    );
    assert!(r.output.starts_with("/tmp\n1\n"), "{}", r.output);
}

#[test]
fn endless_output_is_truncated() {
    let f = factory();
    let mut sb = sandbox(&f);
    let r = sb.exec("yes", Some(Duration::from_secs(3))).unwrap();
    assert!(r.timed_out);
    assert!(
        r.truncated_bytes > 1_000_000,
        "dropped only {}",
        r.truncated_bytes
    );
    assert!(r.output.len() < 12_000, "kept {} bytes", r.output.len());
    assert!(
        r.output.contains("[... output truncated: "),
        "{}",
        &r.output[..200]
    );
    let r = run(
        &mut sb,
        "head -c 5000000 /dev/zero | tr '\\0' y; echo; echo end",
    );
    assert_eq!(r.exit_code, Some(0));
    assert!(r.truncated_bytes > 4_900_000);
    assert!(
        r.output.ends_with("yyy\nend\n"),
        "{}",
        &r.output[r.output.len() - 50..]
    );
}

/// Host pids whose command line contains `needle` (container processes are host processes).
fn host_pids_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn background_processes_and_container_are_gone_after_teardown() {
    let f = factory();
    let mut sb = sandbox(&f);
    let id = sb.container_id().to_string();
    run(&mut sb, "sleep 4242 & nohup sleep 4243 >/dev/null 2>&1 & setsid sleep 4244 & disown -a; echo started");
    // A background job may not have exec'd `sleep` yet when `echo` answers: wait, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while host_pids_with("sleep 424").len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        host_pids_with("sleep 424").len(),
        3,
        "background sleeps should run"
    );
    assert!(f.labelled_containers().unwrap().contains(&id));
    sb.teardown().unwrap();
    assert!(
        !f.labelled_containers().unwrap().contains(&id),
        "container {id} survived teardown"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(host_pids_with("sleep 424"), Vec::<u32>::new());
    // Drop without teardown removes it too.
    let dropped = sandbox(&f);
    let id = dropped.container_id().to_string();
    drop(dropped);
    assert!(!f.labelled_containers().unwrap().contains(&id));
}

#[test]
fn sweep_removes_leftovers_of_dead_owners_only() {
    let f = factory();
    let live = sandbox(&f);
    let orphan = create_orphan(&ContainerConfig::default());
    assert!(f.labelled_containers().unwrap().contains(&orphan));
    // A new factory sweeps at start: the dead owner's container goes, ours stays.
    let f2 = factory();
    let left = f2.labelled_containers().unwrap();
    assert!(!left.contains(&orphan), "leftover {orphan} was not swept");
    assert!(
        left.contains(&live.container_id().to_string()),
        "a live owner's container was swept"
    );
}

/// A labelled container whose owner tag names a process that does not exist, as a crashed
/// run leaves behind. Made with bollard directly (the factory always writes a live owner).
fn create_orphan(config: &ContainerConfig) -> String {
    use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let docker =
        bollard::Docker::connect_with_unix(config.socket_path(), 60, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let ulimit = |name: &str| ResourcesUlimits {
        name: Some(name.into()),
        soft: Some(1024),
        hard: Some(4096),
    };
    let body = ContainerCreateBody {
        image: Some(config.image.clone()),
        entrypoint: Some(vec!["sleep".into(), "1000".into()]),
        labels: Some(HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (OWNER_LABEL.to_string(), "999999999:1".to_string()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ulimits: Some(vec![ulimit("nofile"), ulimit("nproc")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    rt.block_on(async {
        let id = docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .unwrap()
            .id;
        docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap();
        id
    })
}

#[test]
fn missing_socket_and_missing_image_are_clear_errors() {
    let config = ContainerConfig {
        socket: "unix:///nonexistent/swerl.sock".into(),
        ..Default::default()
    };
    let err = swerl_container::ContainerFactory::new(config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("scripts/setup-containers"), "{err}");
    let f = factory();
    let err = f
        .create_from_image(&spec(), "swerl-no-such-image:0")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not found locally") && err.contains("pull = true"),
        "{err}"
    );
}

#[test]
fn concurrency_limit_waits_then_fails_clearly() {
    let config = ContainerConfig {
        max_containers: 1,
        slot_wait: Duration::from_millis(500),
        ..Default::default()
    };
    let f = factory_with(config);
    let mut first = sandbox(&f);
    let err = f.create_container(&spec()).unwrap_err().to_string();
    assert!(err.contains("container slots stayed busy"), "{err}");
    first.teardown().unwrap();
    let mut second = f.create_container(&spec()).expect("slot freed by teardown");
    assert_eq!(run(&mut second, "echo ok").output, "ok\n");
}

/// Issue 13 on the container backend: the file tools' reads and writes (execs as the
/// container's user) refuse /proc/sys, endless devices, FIFOs and the terminal, never hang,
/// and never take more than the cap into swerl's memory; the host's kernel setting stays.
#[test]
fn file_access_refuses_kernel_settings_devices_fifos_and_oversized_files() {
    let f = factory();
    let mut sb = f
        .create_container(&swerl_sandbox::SandboxSpec {
            limits: swerl_sandbox::Limits {
                file_io_bytes: 1 << 20,
                ..spec().limits
            },
            ..spec()
        })
        .unwrap();
    let sysctl = "/proc/sys/kernel/printk_ratelimit_burst";
    let before = std::fs::read_to_string(sysctl).unwrap();
    let r = run(
        &mut sb,
        "mkfifo /tmp/fifo && ln -s /dev/zero /tmp/zero && head -c 2000000 /dev/zero > /tmp/big && ln -s /proc/sys/kernel/printk_ratelimit_burst /tmp/burst && echo ok",
    );
    assert_eq!(r.output, "ok\n");
    for path in [
        sysctl,
        "/tmp/burst",
        "/tmp/fifo",
        "/dev/zero",
        "/tmp/zero",
        "/dev/tty",
        "/tmp/big",
    ] {
        let err = sb.read_file(path).expect_err(path).to_string();
        assert!(
            err.contains("regular files only")
                || err.contains("/proc, /sys or /dev")
                || err.contains("larger than"),
            "{path}: {err}"
        );
    }
    for path in [sysctl, "/tmp/burst", "/tmp/fifo", "/tmp/zero"] {
        assert!(sb.write_file(path, b"1\n").is_err(), "{path} was written");
    }
    assert!(sb.write_file("/tmp/huge", &vec![b'x'; 2 << 20]).is_err());
    assert_eq!(std::fs::read_to_string(sysctl).unwrap(), before);
    sb.write_file("new.txt", b"fine\n").unwrap();
    assert_eq!(sb.read_file("new.txt").unwrap(), b"fine\n");
    assert_eq!(run(&mut sb, "echo alive").output, "alive\n");
}

/// The container's CPU, memory and process limits are set per container: the paper's 0.5
/// CPU by default, memory and pids from the spec's limits.
#[test]
fn cpu_memory_and_pids_limits_are_set_per_container() {
    let f = factory();
    let mut sb = sandbox(&f);
    let r = run(
        &mut sb,
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    );
    let nums: Vec<u64> = r
        .output
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 3, "{}", r.output);
    assert_eq!(
        nums[0] * 2,
        nums[1],
        "0.5 CPU: quota is half the period: {}",
        r.output
    );
    assert_eq!(nums[2], spec().limits.memory_bytes, "{}", r.output);
}
