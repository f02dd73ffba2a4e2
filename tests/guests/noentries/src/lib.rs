//! A guest built with the mtask SDK that forgot `mtask::entries!`: the
//! component exports nothing, and the host says what to add.

/// Would be an entry, but nothing lists it.
pub fn forgotten() {
    mtask::yield_now();
}
