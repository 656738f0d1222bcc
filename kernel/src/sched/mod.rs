//! Preemptive SMP scheduler: per-CPU FIFO run queues, placement on the least
//! loaded CPU, stealing by idle CPUs, preemption on the timer tick.
//!
//! After the panic stop ([`crate::sync::scheduler_stopped`]) nothing here ever
//! switches: `schedule` returns at once, `yield_now` is a no-op, `sleep_us`
//! busy-waits, wait queues do not block and ticks do not preempt.

#[cfg(target_os = "none")]
pub mod freeze;
#[cfg(target_os = "none")]
pub mod mutex;
pub mod registry;
pub mod runqueue;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
pub mod tick;
pub mod wait;

#[cfg(target_os = "none")]
pub use kernel_sched::*;
#[cfg(target_os = "none")]
pub use mutex::{Mutex, MutexGuard};

#[cfg(target_os = "none")]
mod kernel_sched {
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::registry::{self, Registry, WalkCount};
    use super::runqueue::{self, RunQueue};
    use super::thread::{THREAD_MAGIC, Thread, ThreadState};
    use crate::arch::cpu::{self, MAX_CPUS};
    use crate::arch::trap::TrapFrame;
    use crate::sync::{SpinLock, scheduler_stopped};

    core::arch::global_asm!(
        r#"
        .section .text
        .global switch_context
    /* switch_context(save_rsp: *mut u64 [rdi], new_rsp: u64 [rsi]) */
    switch_context:
        pushq %rbp
        pushq %rbx
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, (%rdi)
        movq %rsi, %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbx
        popq %rbp
        ret

        .global thread_trampoline
    thread_trampoline:
        movq %r12, %rdi
        andq $-16, %rsp
        xorl %ebp, %ebp
        call thread_start
        ud2
        "#,
        options(att_syntax)
    );

    unsafe extern "C" {
        fn switch_context(save_rsp: *mut u64, new_rsp: u64);
        fn thread_trampoline();
    }

    /// Per-CPU scheduler state, touched only by its CPU with interrupts off.
    struct CpuSched {
        current: Option<Arc<Thread>>,
        idle: Option<Arc<Thread>>,
        prev: Option<Arc<Thread>>,
    }

    struct CpuSchedCell(UnsafeCell<CpuSched>);
    // SAFETY: each cell is only accessed by its own CPU with interrupts disabled.
    unsafe impl Sync for CpuSchedCell {}

    static CPU_SCHED: [CpuSchedCell; MAX_CPUS] = [const {
        CpuSchedCell(UnsafeCell::new(CpuSched {
            current: None,
            idle: None,
            prev: None,
        }))
    }; MAX_CPUS];

    static RUNQ: [SpinLock<RunQueue<Arc<Thread>>>; MAX_CPUS] =
        [const { SpinLock::new(RunQueue::new()) }; MAX_CPUS];

    /// Every live thread (until joined), for `ps`; it owns them. Changed only
    /// through [`register`] and [`JoinHandle::join`], which keep
    /// [`REGISTRY`] in step.
    static THREADS: SpinLock<Vec<Arc<Thread>>> = SpinLock::new(Vec::new());
    /// Slots of the threads in [`THREADS`], for the panic console's
    /// lock-free `ps` ([`for_each_thread_unlocked`]).
    static REGISTRY: Registry<Thread, MAX_THREADS> = Registry::new();
    /// Threads [`for_each_thread_unlocked`] can list; more still run, and are
    /// counted as unlisted.
    pub const MAX_THREADS: usize = 1024;
    static SLEEPERS: SpinLock<Vec<Arc<Thread>>> = SpinLock::new(Vec::new());
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    static RUNNING: AtomicBool = AtomicBool::new(false);

    fn cpu_sched() -> &'static mut CpuSched {
        // SAFETY: callers run with interrupts disabled on this CPU, so no other
        // code touches this CPU's cell concurrently.
        unsafe { &mut *CPU_SCHED[cpu::current_index()].0.get() }
    }

    fn next_id() -> u64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds threads to [`THREADS`] and publishes them in [`REGISTRY`]: the
    /// list owns each thread before its slot points at it.
    fn register(threads: &[&Arc<Thread>]) {
        let mut all = THREADS.lock();
        for t in threads {
            all.push(Arc::clone(t));
            REGISTRY.publish(Arc::as_ptr(t).cast_mut());
        }
    }

    /// Turns the running boot flow of this CPU into a thread and creates its
    /// idle thread. Called once per CPU with interrupts disabled.
    pub fn init_cpu(boot_name: &str) {
        let idx = cpu::current_index();
        let boot = Arc::new(Thread::new(
            next_id(),
            String::from(boot_name),
            Some(idx as u32),
            None,
        ));
        boot.set_state(ThreadState::Running);
        boot.on_cpu.store(true, Ordering::Relaxed);
        let idle = Arc::new(Thread::new(
            next_id(),
            alloc::format!("idle/{idx}"),
            Some(idx as u32),
            Some(Box::new(idle_loop)),
        ));
        idle.prepare_stack(thread_trampoline as *const () as u64);
        idle.set_state(ThreadState::Idle);
        register(&[&boot, &idle]);
        let c = cpu::this();
        c.current
            .store(Arc::as_ptr(&boot) as *mut (), Ordering::Release);
        c.last_switch_tsc
            .store(crate::time::rdtsc(), Ordering::Relaxed);
        let s = cpu_sched();
        s.current = Some(boot);
        s.idle = Some(idle);
    }

    /// Lets the scheduler run (after the boot CPU set up its threads).
    pub fn start() {
        RUNNING.store(true, Ordering::Release);
    }

    fn idle_loop() {
        loop {
            x86_64::instructions::interrupts::disable();
            schedule();
            // Nothing runs from here to the next trap: a panic meanwhile
            // counts this CPU stopped without waiting for it.
            cpu::this().mark_halted();
            x86_64::instructions::interrupts::enable_and_hlt();
        }
    }

    /// The running thread.
    pub fn current_arc() -> Arc<Thread> {
        crate::sync::irq::push_irq_off();
        let t = cpu_sched()
            .current
            .clone()
            .expect("scheduler initialised on this CPU");
        crate::sync::irq::pop_irq_off();
        t
    }

    /// Id and name of the thread on this CPU, without locks or allocation (panic path).
    pub fn current_ptr() -> *const Thread {
        cpu::current_thread().cast()
    }

    /// Id of the thread running on this CPU (`u64::MAX` before it ran one),
    /// without locks (panic path).
    pub fn current_id() -> u64 {
        let t = current_ptr();
        if t.is_null() {
            u64::MAX
        } else {
            // SAFETY: `current` points at a live thread (checked non-null).
            unsafe { (*t).id }
        }
    }

    /// The thread running on CPU `i` (null before it ran one). The pointer
    /// stays valid while that CPU keeps it current, or, after the panic
    /// stopped the world, for good.
    pub fn running_on(i: usize) -> *const Thread {
        cpu::cpu(i).current.load(Ordering::Acquire).cast()
    }

    /// True when the caller may block: the scheduler runs, this is thread
    /// context, no IRQ-safe lock is held, and the panic has not stopped the world.
    pub fn can_block() -> bool {
        let c = cpu::this();
        RUNNING.load(Ordering::Acquire)
            && !scheduler_stopped()
            && !super::freeze::frozen()
            && c.irq_depth.load(Ordering::Relaxed) == 0
            && c.irq_nest.load(Ordering::Relaxed) == 0
            && !cpu_sched_is_idle()
    }

    fn cpu_sched_is_idle() -> bool {
        let t = cpu::this().current.load(Ordering::Relaxed).cast::<Thread>();
        // SAFETY: `current` always points at a live thread (kept alive by the
        // CPU's `CpuSched.current` Arc).
        !t.is_null() && unsafe { (*t).state() } == ThreadState::Idle
    }

    /// A handle to wait for a thread's end.
    pub struct JoinHandle {
        thread: Arc<Thread>,
    }

    impl JoinHandle {
        /// The thread.
        pub fn thread(&self) -> &Arc<Thread> {
            &self.thread
        }

        /// Blocks until the thread exited, then forgets it.
        pub fn join(self) {
            let t = self.thread.clone();
            self.thread
                .exited
                .wait_until(|| t.state() == ThreadState::Exited);
            let mut all = THREADS.lock();
            // The slot is emptied before the list drops its reference.
            REGISTRY.withdraw(Arc::as_ptr(&self.thread).cast_mut());
            all.retain(|x| !Arc::ptr_eq(x, &self.thread));
        }
    }

    /// Starts a kernel thread on the least loaded CPU.
    pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle {
        spawn_on(name, None, f)
    }

    /// Starts a kernel thread, optionally pinned to one CPU.
    pub fn spawn_on(
        name: &str,
        pinned: Option<usize>,
        f: impl FnOnce() + Send + 'static,
    ) -> JoinHandle {
        let t = Arc::new(Thread::new(
            next_id(),
            String::from(name),
            pinned.map(|c| c as u32),
            Some(Box::new(f)),
        ));
        t.prepare_stack(thread_trampoline as *const () as u64);
        register(&[&t]);
        let target = pinned.unwrap_or_else(|| pick_cpu(t.id as usize));
        enqueue(t.clone(), target);
        JoinHandle { thread: t }
    }

    fn pick_cpu(hint: usize) -> usize {
        let cpus = cpu::all();
        let mut loads = [usize::MAX; MAX_CPUS];
        for (i, c) in cpus.iter().enumerate() {
            if c.state() == cpu::CpuState::Online {
                let running = !c.current.load(Ordering::Relaxed).is_null() && !is_idle_cpu(i);
                loads[i] = RUNQ[i].lock().len() + running as usize;
            }
        }
        runqueue::least_loaded(&loads[..cpus.len()], hint)
    }

    fn is_idle_cpu(i: usize) -> bool {
        let t = cpu::cpu(i).current.load(Ordering::Relaxed).cast::<Thread>();
        // SAFETY: see `cpu_sched_is_idle`.
        !t.is_null() && unsafe { (*t).state() } == ThreadState::Idle
    }

    fn enqueue(t: Arc<Thread>, target: usize) {
        t.cpu.store(target as u32, Ordering::Relaxed);
        t.set_state(ThreadState::Runnable);
        RUNQ[target].lock().push(t);
        if target != cpu::current_index() && is_idle_cpu(target) {
            crate::arch::apic::send_ipi(target, crate::arch::idt::vector::RESCHEDULE);
        }
    }

    /// Makes a blocked or sleeping thread runnable (if it still is in `from`).
    pub fn make_runnable(t: Arc<Thread>, from: ThreadState) {
        if !t.transition(from, ThreadState::Runnable) {
            return;
        }
        let target = match t.pinned {
            Some(c) => c as usize,
            None => t.cpu.load(Ordering::Relaxed) as usize,
        };
        enqueue(t, target);
    }

    /// Gives up the CPU to another runnable thread, if any. No-op after the panic stop.
    pub fn yield_now() {
        if scheduler_stopped() || !RUNNING.load(Ordering::Acquire) {
            return;
        }
        crate::sync::irq::push_irq_off();
        schedule();
        crate::sync::irq::pop_irq_off();
    }

    /// Sleeps for `us` microseconds (a bounded busy wait after the panic stop).
    pub fn sleep_us(us: u64) {
        if !can_block() {
            crate::time::delay_us(us);
            return;
        }
        // On the scheduler's clock: a break-in meanwhile does not count.
        let deadline = super::freeze::clock().saturating_add(crate::time::us_to_cycles(us));
        crate::sync::irq::push_irq_off();
        let me = current_arc();
        me.wake_at.store(deadline, Ordering::Relaxed);
        me.set_state(ThreadState::Sleeping);
        SLEEPERS.lock().push(me);
        schedule();
        crate::sync::irq::pop_irq_off();
    }

    /// Ends the running thread.
    pub fn exit() -> ! {
        x86_64::instructions::interrupts::disable();
        let me = current_arc();
        me.set_state(ThreadState::Exited);
        me.exited.wake_all();
        drop(me);
        schedule();
        unreachable!("an exited thread was scheduled again");
    }

    /// First code of every new thread, entered from `thread_trampoline`.
    #[unsafe(no_mangle)]
    extern "C" fn thread_start(t: *const Thread) -> ! {
        finish_switch();
        let c = cpu::this();
        c.irq_nest.store(0, Ordering::Relaxed);
        // SAFETY: `t` is the thread being started (set by `prepare_stack`),
        // kept alive by the CPU's `current` Arc while it runs.
        let entry = unsafe { (*t).entry.lock().take() };
        x86_64::instructions::interrupts::enable();
        if let Some(f) = entry {
            f();
        }
        exit();
    }

    /// Picks the next thread and switches to it. Interrupts must be disabled.
    /// Returns when the calling thread runs again (possibly on another CPU).
    pub fn schedule() {
        if scheduler_stopped() || super::freeze::frozen() || !RUNNING.load(Ordering::Acquire) {
            return;
        }
        let me = cpu::current_index();
        let s = cpu_sched();
        let Some(prev) = s.current.clone() else {
            return;
        };
        let prev_state = prev.state();
        let keep_running = prev_state == ThreadState::Running || prev_state == ThreadState::Idle;
        let next = match pick_next(me, &prev) {
            Some(n) => n,
            None if keep_running => return,
            None => s.idle.clone().expect("idle thread"),
        };
        if Arc::ptr_eq(&next, &prev) {
            prev.set_state(ThreadState::Running);
            return;
        }
        debug_assert!(
            !next.on_cpu.load(Ordering::Acquire),
            "picked a thread still on a CPU"
        );
        let c = cpu::this();
        let now = crate::time::rdtsc();
        let ran = now.wrapping_sub(c.last_switch_tsc.swap(now, Ordering::Relaxed));
        if prev_state == ThreadState::Idle {
            c.idle_cycles.fetch_add(ran, Ordering::Relaxed);
        }
        prev.cpu_cycles.fetch_add(ran, Ordering::Relaxed);
        if next.state() != ThreadState::Idle {
            next.set_state(ThreadState::Running);
        }
        next.cpu.store(me as u32, Ordering::Relaxed);
        next.on_cpu.store(true, Ordering::Relaxed);
        next.switches.fetch_add(1, Ordering::Relaxed);
        c.current
            .store(Arc::as_ptr(&next) as *mut (), Ordering::Release);
        let save = prev.ctx_rsp.get();
        let new_rsp = next.saved_rsp();
        s.prev = Some(prev);
        s.current = Some(next);
        // The interrupt-nesting state belongs to the thread: keep it on our stack.
        let nest = c.irq_nest.load(Ordering::Relaxed);
        let saved_if = c.irq_saved.load(Ordering::Relaxed);
        // SAFETY: `save` points into the previous thread (kept alive by
        // `s.prev`), `new_rsp` is the next thread's saved context, prepared by
        // `prepare_stack` or saved by an earlier `switch_context`.
        unsafe { switch_context(save, new_rsp) };
        // Back in this thread, on whatever CPU picked it.
        finish_switch();
        let c = cpu::this();
        c.irq_nest.store(nest, Ordering::Relaxed);
        c.irq_saved.store(saved_if, Ordering::Relaxed);
    }

    /// Completes a switch on the new thread's side: the previous thread's
    /// context is saved now, so it may be requeued or freed.
    fn finish_switch() {
        let s = cpu_sched();
        let Some(prev) = s.prev.take() else { return };
        prev.on_cpu.store(false, Ordering::Release);
        if prev.state() == ThreadState::Running {
            let target = prev.pinned.map_or(cpu::current_index(), |c| c as usize);
            enqueue(prev, target);
        }
    }

    /// The next thread for this CPU: its own queue first, then a steal from
    /// the busiest CPU. A queued thread whose previous CPU has not finished
    /// switching away from it (`on_cpu`, a thread woken before it blocked) is
    /// skipped, never waited for: two CPUs waiting for each other's current
    /// thread would deadlock with interrupts off.
    fn pick_next(me: usize, prev: &Arc<Thread>) -> Option<Arc<Thread>> {
        let ready = |t: &Arc<Thread>| Arc::ptr_eq(t, prev) || !t.on_cpu.load(Ordering::Acquire);
        if let Some(t) = RUNQ[me].lock().remove(ready) {
            return Some(t);
        }
        let cpus = cpu::all().len();
        let mut loads = [0usize; MAX_CPUS];
        for (i, l) in loads.iter_mut().enumerate().take(cpus) {
            *l = RUNQ[i].try_lock().map_or(0, |q| q.len());
        }
        let victim = runqueue::steal_victim(&loads[..cpus], me, 1)?;
        RUNQ[victim]
            .try_lock()?
            .steal(|t| t.pinned.is_none() && !t.on_cpu.load(Ordering::Acquire))
    }

    /// Timer tick on this CPU (the LAPIC timer's handler, installed by
    /// [`install_trap_handlers`]).
    pub fn timer_tick(_frame: &mut TrapFrame) {
        crate::arch::apic::eoi();
        let c = cpu::this();
        let ticks = c.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        if scheduler_stopped() || super::freeze::frozen() {
            return;
        }
        wake_sleepers();
        super::tick::run(cpu::current_index(), ticks);
        // Time slice: one tick.
        c.need_resched.store(true, Ordering::Relaxed);
    }

    fn wake_sleepers() {
        let now = super::freeze::clock();
        let Some(mut list) = SLEEPERS.try_lock() else {
            return;
        };
        let mut due = Vec::new();
        list.retain(|t| {
            if t.wake_at.load(Ordering::Relaxed) <= now {
                due.push(t.clone());
                false
            } else {
                true
            }
        });
        drop(list);
        for t in due {
            make_runnable(t, ThreadState::Sleeping);
        }
    }

    /// Installs the timer interrupt and the preemption point at the end of
    /// an interrupt (arch calls them through its trap table).
    pub fn install_trap_handlers() {
        crate::arch::trap::set_handler(crate::arch::idt::vector::TIMER, timer_tick);
        crate::arch::trap::set_irq_exit(preempt_point_from_irq);
    }

    /// End of an interrupt: switch if a reschedule is due and it is safe.
    pub fn preempt_point_from_irq() {
        let c = cpu::this();
        if !c.need_resched.load(Ordering::Relaxed)
            || scheduler_stopped()
            || c.irq_depth.load(Ordering::Relaxed) != 0
            || c.irq_nest.load(Ordering::Relaxed) != 0
            || c.preempt_off.load(Ordering::Relaxed) != 0
        {
            return;
        }
        c.need_resched.store(false, Ordering::Relaxed);
        schedule();
    }

    /// Snapshot of every thread, for `ps`.
    pub fn threads() -> Vec<Arc<Thread>> {
        THREADS.lock().clone()
    }

    /// Runs `f` on every thread without taking any lock (panic console: the
    /// other CPUs are parked, maybe in the middle of spawning or joining).
    ///
    /// Reads only [`REGISTRY`], never the `THREADS` vector (a CPU stopped
    /// inside its `push` or `retain` can leave it pointing at freed memory):
    /// at most [`MAX_THREADS`] slots, each empty or naming a thread that
    /// `THREADS` owns. Each entry is checked by [`registry::check_entry`]
    /// (inside the heap, aligned, [`THREAD_MAGIC`], name inside the heap and
    /// short) before `f` sees it; refused entries are skipped and counted.
    ///
    /// # Safety
    /// Only after the panic stop, when no other CPU runs.
    pub unsafe fn for_each_thread_unlocked(mut f: impl FnMut(&Thread)) -> WalkCount {
        let (start, end) = crate::mm::heap::range();
        let heap = registry::Region::new(start as usize, end as usize);
        let shape = registry::Shape {
            size: size_of::<Thread>(),
            align: align_of::<Thread>(),
            magic: THREAD_MAGIC,
        };
        let mut count = WalkCount {
            unlisted: REGISTRY.unlisted(),
            ..WalkCount::default()
        };
        REGISTRY.for_each(|p| {
            let checked = registry::check_entry(
                p as usize,
                shape,
                heap,
                // SAFETY: called only for an aligned `Thread`-sized range
                // inside the (identity-mapped) heap; every bit pattern is a
                // valid `AtomicU64`.
                |a| unsafe { (*(a as *const Thread)).magic.load(Ordering::Relaxed) },
                // SAFETY: called only once the magic says this is a live
                // `Thread`; reads the `String`'s pointer and length, inside it.
                |a| unsafe {
                    let name = &(*(a as *const Thread)).name;
                    (name.as_ptr() as usize, name.len())
                },
            );
            match checked {
                Ok(()) => {
                    count.shown += 1;
                    // SAFETY: a live thread, kept alive by `THREADS` (the
                    // slot is emptied before it is dropped), its name in the
                    // heap (checked); no other CPU runs to change it.
                    f(unsafe { &*p });
                }
                Err(_) => count.skipped += 1,
            }
        });
        count
    }

    /// Queue length of a CPU (for `cpus`).
    pub fn queue_len(cpu: usize) -> usize {
        RUNQ[cpu].try_lock().map_or(0, |q| q.len())
    }
}
