//! SMP, scheduler and lock tests (issue: SMP kernel).

use std::collections::BTreeSet;
use std::time::Duration;

use panicbench::KERNEL_ELF;
use panicbench::harness::Vm;
use panicbench::qemu::{Config, Firmware};

const BOOT: Duration = Duration::from_secs(90);
const STEP: Duration = Duration::from_secs(60);

fn scenario(name: &str, smp: u32) -> Vm {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.smp = smp;
    cfg.firmware = Firmware::Qboot;
    cfg.append = format!("test={name}");
    Vm::start(&format!("{name}-smp{smp}"), cfg)
}

#[test]
fn all_cpus_come_online_for_1_2_4_8() {
    for smp in [1, 2, 4, 8] {
        let mut vm = scenario("smp", smp);
        vm.expect(&format!("cpus online: {smp}\n"), BOOT);
        vm.expect("scenario smp: PASS", STEP);
        vm.expect_success_exit(STEP);
    }
}

#[test]
fn lock_stress_ends_with_exact_totals() {
    for smp in [1, 4] {
        let mut vm = scenario("locks", smp);
        let caps = vm.expect_captures(r"lock stress: spin (\d+) mutex (\d+) rwlock (\d+) per-thread (\d+) expected (\d+); ran on (\d+) cpus", BOOT);
        assert_eq!(caps[1], caps[5], "spin lock total");
        assert_eq!(caps[2], caps[5], "mutex total");
        assert_eq!(caps[3], caps[5], "rwlock total");
        assert_eq!(caps[4], caps[5], "per-thread total");
        if smp > 1 {
            assert!(
                caps[6].parse::<u32>().unwrap() > 1,
                "stress threads ran on one CPU only"
            );
        }
        vm.expect("scenario locks: PASS", STEP);
        vm.expect_success_exit(STEP);
    }
}

#[test]
fn sleep_wakeup_ping_pong_across_cpus() {
    for smp in [2, 8] {
        let mut vm = scenario("pingpong", smp);
        vm.expect(
            r"pingpong: 200 rounds between cpu 0 and cpu 1, token 400",
            BOOT,
        );
        vm.expect_success_exit(STEP);
    }
}

#[test]
fn busy_threads_run_on_every_cpu() {
    let mut vm = scenario("spread", 4);
    vm.expect("spread: busy threads ran on 4 of 4 cpus", BOOT);
    vm.expect_success_exit(STEP);
}

#[test]
fn spawn_load_threads_show_up_on_every_cpu_in_ps() {
    let mut cfg = Config::new(KERNEL_ELF);
    cfg.firmware = Firmware::Qboot;
    let mut vm = Vm::start("spawn-load", cfg);
    vm.expect("shell> ", BOOT);
    vm.send_serial("cpus\r");
    for i in 0..4 {
        vm.expect(&format!("cpu {i}: apic \\d+ online"), STEP);
    }
    vm.expect("shell> ", STEP);
    vm.send_serial("spawn-load 8\r");
    vm.expect("started 8 load threads", STEP);
    vm.expect("shell> ", STEP);
    // Threads migrate and are preempted: sample `ps` until every CPU was seen.
    let mut cpus = BTreeSet::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        vm.send_serial("ps\r");
        let text = vm.expect(r"(?s)id  state.*?shell> ", STEP);
        for line in text.lines().filter(|l| l.contains("load/")) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // The shell itself runs `ps`, so CPU 0 shows load threads as
            // ready (queued there after running there) rather than running.
            let ran = f
                .get(3)
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t > 0);
            if f.len() >= 6 && (f[1] == "running" || f[1] == "ready") && ran {
                cpus.insert(f[2].to_string());
            }
        }
        if cpus.len() == 4 {
            break;
        }
    }
    assert_eq!(cpus.len(), 4, "load threads seen running on cpus {cpus:?}");
    vm.send_serial("kill-load\r");
    vm.expect(r"stopped 8 load threads", STEP);
    vm.send_serial("poweroff\r");
    vm.expect_success_exit(STEP);
}
