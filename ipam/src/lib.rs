//! Block-based IP address management.
//!
//! This crate will own the pure block logic (carving IPPools into blocks of `blockSize`, the
//! per-node stable block order, ordinal allocation with a free list that reuses addresses last)
//! and the allocator over `brindle-datastore`: block affinity claims, borrowing, handles,
//! reservations, leak detection and garbage collection, every write a compare-and-swap through
//! the datastore's one conflict-retry helper.
