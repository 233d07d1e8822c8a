//! A deterministic count of the work the engine does, for tests that prove its cost grows
//! linearly with the input without timing anything. Outside tests it compiles to nothing.
//!
//! The hot loops add one unit per step they take: a hit handled, a comparison made while
//! sorting or de-duplicating hits, a byte of streamed text scanned, a queued event or a
//! channel visited. A step that is not O(1) amortised (a linear search per hit, a rescan of
//! held text per event) adds what it really costs, so a super-linear loop shows up as a
//! counter that more than doubles when the input doubles.

#[cfg(test)]
thread_local! {
    static UNITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` units of work.
#[inline(always)]
pub(crate) fn add(n: usize) {
    #[cfg(test)]
    UNITS.with(|u| u.set(u.get().saturating_add(n as u64)));
    #[cfg(not(test))]
    let _ = n;
}

/// The units counted on this thread since the last call.
#[cfg(test)]
pub(crate) fn take() -> u64 {
    UNITS.with(|u| u.replace(0))
}
