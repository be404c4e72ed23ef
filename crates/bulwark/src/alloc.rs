//! Memory allocator tuning for a long-running server with many idle connections.
//!
//! glibc's malloc raises its mmap threshold dynamically: after the first large block is freed
//! (argon2id verifies with a 19 MiB block per login) every later block of that size comes from
//! the heap arenas, and freed heap memory stays with the process. A server that verified a few
//! hundred logins then held ~8 MB per idle connection in the benchmark. A fixed threshold keeps
//! large blocks on mmap (returned to the kernel on free), and fewer arenas keep per-thread free
//! lists from pinning memory on a machine with few cores.

/// Blocks at least this large are mmapped and given back to the kernel when freed.
const MMAP_THRESHOLD: i32 = 256 * 1024;
/// malloc arenas (glibc's default is 8 per core).
const ARENA_MAX: i32 = 4;

/// Applies the tuning; call once at start-up, before threads start.
#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}
