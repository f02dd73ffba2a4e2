//! Every task's linear memories and fiber stack, carved out of two large
//! mappings made when the host starts.
//!
//! Why not wasmtime's pooling allocator: it gives each slot its own memory
//! mappings (a stack's guard page splits the stack pool; a live memory's
//! accessible part splits the memory pool), four per live task, and Linux
//! allows a process 65,530 mappings by default (`vm.max_map_count`): about
//! 16,000 tasks. Here the mappings never split:
//!
//! - A linear memory is a slot of one read-write mapping. Nothing past a
//!   memory's current size needs to fault, because compiled code checks
//!   every access against that size (`memory_guard_size(0)` in `engine`).
//!   When a memory is dropped, the pages that may hold data (found with
//!   `PAGEMAP_SCAN`) are zeroed in place, up to [`KEEP_RESIDENT`], and the
//!   rest given back to the kernel (`MADV_DONTNEED`): the next task to get
//!   the slot reads zeros, mostly without a page fault.
//! - A fiber stack is a slot of another read-write mapping, its lowest page
//!   made a guard with `MADV_GUARD_INSTALL` (Linux 6.13+), which marks the
//!   page tables without splitting the mapping. On an older kernel the
//!   guard is an `mprotect`ed page: two mappings per stack, which
//!   [`mappings_per_task`] reports so the start-up check counts them.
//!
//! Slots are handed out last-freed first, so a new task reuses the pages
//! (and caches) its predecessor warmed; past [`WARM_SLOTS`] free slots, the
//! oldest give their pages back, so an idle host holds little. A stack
//! slot's guard is installed the first time the slot is used, so start-up
//! costs nothing per slot. BENCHMARKS.md ("Light tasks") has the figures
//! behind each choice.

use std::collections::VecDeque;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use wasmtime::{LinearMemory, MemoryCreator, MemoryType, StackCreator, StackMemory};

/// `madvise` advice that turns pages into guard pages without a new mapping
/// (Linux 6.13); the libc crate does not name it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The unit of the mappings' protection.
fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        size if size > 0 => size as usize,
        _ => 4096,
    })
}

/// One anonymous read-write mapping cut into equal slots.
struct Region {
    /// Where the mapping starts.
    base: NonNull<u8>,
    /// Bytes per slot, a multiple of the page size.
    stride: usize,
    /// How many slots it has.
    slots: usize,
    /// Which slots are free.
    free: Mutex<FreeSlots>,
}

/// The free slots of a region.
struct FreeSlots {
    /// Slots given back lately, pages still resident (the last freed at the
    /// back): taken first, they spare the next task the page faults.
    warm: VecDeque<usize>,
    /// Slots whose pages went back to the kernel.
    cold: Vec<usize>,
    /// Slots from here on were never used.
    fresh: usize,
}

/// How many free slots of a region keep their pages resident: enough for
/// a burst of spawns to reuse warm ones, few enough that an idle host
/// holds little (at most 512 × [`KEEP_RESIDENT`] of linear memory).
const WARM_SLOTS: usize = 512;

/// The most bytes of a dropped linear memory zeroed in place and kept
/// resident for the next; the rest go back to the kernel.
const KEEP_RESIDENT: usize = 128 << 10;

// The mapping is only reached through the slots, each owned by one memory or
// stack at a time; the free list is behind its lock.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Maps `slots` slots of `stride` bytes: address space only, no memory
    /// is committed until touched.
    fn new(slots: usize, stride: usize, what: &str) -> Result<Self, String> {
        let len = slots.checked_mul(stride).ok_or_else(|| {
            format!("{slots} {what} of {stride} bytes overflow the address space")
        })?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "cannot reserve {} GiB of address space for {slots} {what}: {}",
                len.div_ceil(1 << 30),
                std::io::Error::last_os_error()
            ));
        }
        // A task touches a few scattered pages of its slots: a huge page
        // (where transparent huge pages are on for every mapping) would
        // make each of them 2 MiB resident. Best effort.
        // SAFETY: the mapping just made.
        unsafe { libc::madvise(base, len.max(1), libc::MADV_NOHUGEPAGE) };
        Ok(Region {
            base: NonNull::new(base.cast()).expect("mmap returned null"),
            stride,
            slots,
            free: Mutex::new(FreeSlots {
                warm: VecDeque::new(),
                cold: Vec::new(),
                fresh: 0,
            }),
        })
    }

    /// Takes a free slot: its index, and whether it was never used.
    fn take(&self) -> Option<(usize, bool)> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = free.warm.pop_back().or_else(|| free.cold.pop()) {
            return Some((slot, false));
        }
        if free.fresh < self.slots {
            free.fresh += 1;
            return Some((free.fresh - 1, true));
        }
        None
    }

    /// How many slots are taken now (a slot between its eviction from the
    /// warm list and its place among the cold counts as taken).
    fn taken(&self) -> usize {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.fresh - free.warm.len() - free.cold.len()
    }

    /// Gives `slot` back, its pages resident. If that makes too many warm
    /// slots, the oldest one's pages go back to the kernel.
    fn give_back(&self, slot: usize) {
        let evicted = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.warm.push_back(slot);
            if free.warm.len() > WARM_SLOTS {
                free.warm.pop_front()
            } else {
                None
            }
        };
        if let Some(old) = evicted {
            // Zero already (a memory is zeroed when dropped): its pages can
            // go without a look, outside the lock.
            Region::release(self.start(old), self.stride);
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.cold.push(old);
        }
    }

    /// The first byte of `slot`.
    fn start(&self, slot: usize) -> *mut u8 {
        // SAFETY: `slot < self.slots`, so the offset is inside the mapping.
        unsafe { self.base.as_ptr().add(slot * self.stride) }
    }

    /// Gives the pages of `len` bytes from `start` back to the kernel: they
    /// read as zeros when next touched.
    fn release(start: *mut u8, len: usize) {
        let len = len.next_multiple_of(page_size());
        if len == 0 {
            return;
        }
        // SAFETY: the range lies in a slot its owner is giving up.
        let done = unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) };
        // It cannot fail on a private anonymous mapping; if it did, the
        // next owner could read this one's data: stop rather than risk it.
        assert_eq!(done, 0, "madvise(MADV_DONTNEED) failed");
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: every slot's owner holds an `Arc` of the region, so none is left.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.slots * self.stride) };
    }
}

/// How much of the pool is taken (see
/// [`StatsHandle::pool`](crate::StatsHandle::pool)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Task slots (fiber stacks) taken: one per started task, and one per
    /// component whose entries are being listed.
    pub tasks: usize,
    /// Task slots there are: `max_tasks`, and a few for listing entries.
    pub task_slots: usize,
    /// Linear-memory slots taken.
    pub memories: usize,
    /// Linear-memory slots there are.
    pub memory_slots: usize,
}

/// The linear memories of every task: `slots` of `max_memory` bytes each.
pub(crate) struct Memories {
    /// The slots.
    region: Arc<Region>,
}

impl Memories {
    /// Reserves address space for `slots` memories of up to `max_memory` bytes.
    pub(crate) fn new(slots: usize, max_memory: usize) -> Result<Self, String> {
        let stride = max_memory.next_multiple_of(page_size());
        Ok(Memories {
            region: Arc::new(Region::new(slots, stride, "linear memories")?),
        })
    }
}

impl Memories {
    /// Slots taken now, and how many there are.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.region.taken(), self.region.slots)
    }
}

unsafe impl MemoryCreator for Memories {
    fn new_memory(
        &self,
        ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved: Option<usize>,
        guard: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        // The engine asks for neither, so compiled code checks every access
        // against the size; a slot holds a memory's whole reservation.
        if guard != 0 || reserved.is_some_and(|r| r > self.region.stride) || ty.is_shared() {
            return Err(format!(
                "a linear memory with a {guard}-byte guard, {reserved:?} reserved, shared: {} \
                 does not fit the host's slots",
                ty.is_shared()
            ));
        }
        if minimum > self.region.stride {
            return Err(format!(
                "a linear memory of {minimum} bytes is larger than a slot ({} bytes)",
                self.region.stride
            ));
        }
        let (slot, _) = self
            .region
            .take()
            .ok_or_else(|| format!("all {} linear-memory slots are in use", self.region.slots))?;
        Ok(Box::new(SlotMemory {
            region: self.region.clone(),
            slot,
            size: minimum,
        }))
    }
}

/// A linear memory in a slot of [`Memories`].
struct SlotMemory {
    /// The region it is a slot of.
    region: Arc<Region>,
    /// Which slot.
    slot: usize,
    /// Its size in bytes: what compiled code may access, and (a wasm
    /// memory never shrinks) all it may have written.
    size: usize,
}

unsafe impl LinearMemory for SlotMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.region.stride
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size > self.region.stride {
            wasmtime::bail!(
                "a linear memory may not grow past its slot ({} bytes)",
                self.region.stride
            );
        }
        // The pages are mapped already, and zero: the slot was released
        // when its last memory was dropped.
        self.size = new_size;
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.region.start(self.slot)
    }
}

impl Drop for SlotMemory {
    fn drop(&mut self) {
        zero(self.as_ptr(), self.size);
        self.region.give_back(self.slot);
    }
}

/// Zeroes the `len` bytes at `start` for the next owner: the pages that may
/// hold data in place, up to [`KEEP_RESIDENT`] bytes of them (a write to a
/// resident page costs less than the fault that would map it again), and
/// gives the rest back to the kernel.
fn zero(start: *mut u8, len: usize) {
    let page = page_size();
    let len = len.next_multiple_of(page);
    let mut holding = [PageRegion::default(); 32];
    let Some((found, walked)) = scan_data(start, len, KEEP_RESIDENT / page, &mut holding) else {
        Region::release(start, len);
        return;
    };
    for region in &holding[..found] {
        // SAFETY: pages of the slot being dropped, which nobody uses now.
        unsafe {
            std::ptr::write_bytes(
                region.start as *mut u8,
                0,
                (region.end - region.start) as usize,
            )
        };
    }
    // The scan stopped early (more written pages than kept, or than
    // regions): what it did not reach goes back to the kernel.
    let rest = walked.saturating_sub(start as usize).min(len);
    if rest < len {
        // SAFETY: inside the slot.
        Region::release(unsafe { start.add(rest) }, len - rest);
    }
}

/// A run of pages `PAGEMAP_SCAN` reports (`struct page_region`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// The argument of `PAGEMAP_SCAN` (`struct pm_scan_arg`, Linux 6.7).
#[repr(C)]
struct ScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
/// Page categories of `PAGEMAP_SCAN`.
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// Finds the pages in `len` bytes from `start` that may hold data: present
/// and not the shared zero page (written to), or swapped out; at most
/// `max_pages` of them, into `regions`: how many regions it filled and
/// where the walk stopped. `None` if the kernel cannot tell (before Linux
/// 6.7).
fn scan_data(
    start: *mut u8,
    len: usize,
    max_pages: usize,
    regions: &mut [PageRegion],
) -> Option<(usize, usize)> {
    use std::os::fd::AsRawFd;
    static PAGEMAP: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let pagemap = PAGEMAP
        .get_or_init(|| std::fs::File::open("/proc/self/pagemap").ok())
        .as_ref()?;
    let mut arg = ScanArg {
        size: std::mem::size_of::<ScanArg>() as u64,
        flags: 0,
        start: start as u64,
        end: (start as u64) + len as u64,
        walk_end: 0,
        vec: regions.as_mut_ptr() as u64,
        vec_len: regions.len() as u64,
        max_pages: max_pages as u64,
        // Neither the zero page nor a file's, and present or in swap: a
        // page in swap holds data too (writing zeros brings it back).
        category_inverted: PAGE_IS_PFNZERO | PAGE_IS_FILE,
        category_mask: PAGE_IS_PFNZERO | PAGE_IS_FILE,
        category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        return_mask: 0,
    };
    // SAFETY: `arg` describes `regions`, which outlives the call.
    let found = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
    (found >= 0).then_some((found as usize, arg.walk_end as usize))
}

/// The fiber stacks of every task: `slots` stacks, each above a guard page.
pub(crate) struct Stacks {
    /// The slots: guard page, then stack.
    region: Arc<Region>,
    /// Usable bytes of a stack.
    size: usize,
    /// Whether guards are `mprotect`ed pages (two mappings per stack)
    /// because the kernel lacks `MADV_GUARD_INSTALL`.
    split: bool,
}

impl Stacks {
    /// Reserves address space for `slots` stacks of `size` bytes.
    pub(crate) fn new(slots: usize, size: usize) -> Result<Self, String> {
        let size = size.next_multiple_of(page_size());
        let region = Region::new(slots, size + page_size(), "fiber stacks")?;
        Ok(Stacks {
            region: Arc::new(region),
            size,
            split: guards_split(),
        })
    }
}

impl Stacks {
    /// Stacks taken now (one per task that has started), and how many
    /// there are.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.region.taken(), self.region.slots)
    }
}

/// Memory mappings each task adds to the process: none, or two (its
/// stack's guard page and the stack) on a kernel without
/// `MADV_GUARD_INSTALL`.
pub(crate) fn mappings_per_task() -> usize {
    if guards_split() { 2 } else { 0 }
}

/// Whether guard pages split their mapping here: tried once, on a mapping
/// of its own.
fn guards_split() -> bool {
    static SPLIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPLIT.get_or_init(|| match Region::new(1, page_size(), "probe") {
        Ok(probe) => !guard_install(probe.start(0), page_size()),
        Err(_) => true,
    })
}

/// Makes `len` bytes at `start` guard pages without splitting their
/// mapping; false if the kernel cannot.
fn guard_install(start: *mut u8, len: usize) -> bool {
    // SAFETY: the range is a guard of a stack slot nobody uses yet.
    unsafe { libc::madvise(start.cast(), len, MADV_GUARD_INSTALL) == 0 }
}

/// Makes the page at `start` inaccessible (a mapping of its own).
fn protect(start: *mut u8) -> bool {
    // SAFETY: the guard page of a stack slot nobody uses yet.
    unsafe { libc::mprotect(start.cast(), page_size(), libc::PROT_NONE) == 0 }
}

unsafe impl StackCreator for Stacks {
    fn new_stack(&self, size: usize, zeroed: bool) -> wasmtime::Result<Box<dyn StackMemory>> {
        if size > self.size {
            wasmtime::bail!("a fiber stack of {size} bytes is larger than a slot");
        }
        let Some((slot, fresh)) = self.region.take() else {
            wasmtime::bail!("all {} fiber stacks are in use", self.region.slots);
        };
        let guard = self.region.start(slot);
        if fresh {
            let installed = if self.split {
                protect(guard)
            } else {
                guard_install(guard, page_size())
            };
            if !installed {
                self.region.give_back(slot);
                wasmtime::bail!(
                    "cannot make a fiber stack's guard page: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(Box::new(SlotStack {
            region: self.region.clone(),
            slot,
            zeroed,
        }))
    }
}

/// A fiber stack in a slot of [`Stacks`].
struct SlotStack {
    /// The region it is a slot of.
    region: Arc<Region>,
    /// Which slot.
    slot: usize,
    /// Whether to give its pages back when dropped (wasmtime's
    /// `async_stack_zeroing`).
    zeroed: bool,
}

impl SlotStack {
    /// The slot's first byte: its guard page.
    fn guard(&self) -> *mut u8 {
        self.region.start(self.slot)
    }
}

unsafe impl StackMemory for SlotStack {
    fn top(&self) -> *mut u8 {
        // SAFETY: one past the slot's end, still inside or at the end of the mapping.
        unsafe { self.guard().add(self.region.stride) }
    }

    fn range(&self) -> Range<usize> {
        let start = self.guard() as usize + page_size();
        start..self.top() as usize
    }

    fn guard_range(&self) -> Range<*mut u8> {
        // SAFETY: the guard is the slot's first page.
        self.guard()..unsafe { self.guard().add(page_size()) }
    }
}

impl Drop for SlotStack {
    fn drop(&mut self) {
        if self.zeroed {
            // SAFETY: just past the guard page, inside the slot.
            let start = unsafe { self.guard().add(page_size()) };
            Region::release(start, self.region.stride - page_size());
        }
        self.region.give_back(self.slot);
    }
}
