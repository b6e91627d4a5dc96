//! The CNI plugin library (CNI spec 1.0/1.1: ADD, DEL, CHECK, VERSION, STATUS, GC).
//!
//! This crate will own the plugin logic behind a thin binary: parsing the network configuration
//! and runtime arguments, asking the IPAM allocator for addresses under the handle
//! `<network>.<containerID>`, creating the veth pair into the pod's namespace with its routes,
//! and undoing every step when a later one fails so no half-made veth or leaked address remains.
