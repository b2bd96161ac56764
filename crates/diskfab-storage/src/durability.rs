//! Whether flushes reach the disk. A flush normally ends with fdatasync; inside [`without_sync`]
//! the calling thread's flushes still complete the image (footers, headers, tables) but skip the
//! fdatasync and fsync calls, like qemu-img's `-t unsafe` (`convert --no-sync`). The switch is
//! per thread, so one operation's choice never changes another's.

use std::cell::Cell;

thread_local! {
    static SKIP_SYNC: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's data syncs skipped; the previous setting is restored afterwards
/// (also when `f` panics).
pub fn without_sync<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SKIP_SYNC.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SKIP_SYNC.with(|s| s.replace(true)));
    f()
}

/// False inside [`without_sync`] on this thread: flushes then skip fdatasync/fsync.
pub fn sync_enabled() -> bool {
    !SKIP_SYNC.with(|s| s.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_sync_is_scoped_to_the_calling_thread_and_restored() {
        assert!(sync_enabled());
        without_sync(|| {
            assert!(!sync_enabled());
            // Another thread keeps syncing.
            assert!(std::thread::spawn(sync_enabled).join().unwrap());
            without_sync(|| assert!(!sync_enabled()));
            assert!(!sync_enabled());
        });
        assert!(sync_enabled());
        let r = std::panic::catch_unwind(|| without_sync(|| panic!("boom")));
        assert!(r.is_err());
        assert!(sync_enabled());
    }
}
