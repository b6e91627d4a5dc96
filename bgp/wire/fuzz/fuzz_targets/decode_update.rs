//! UPDATE body decode with the context chosen by the first input byte.
#![no_main]

use brindle_bgp_wire::{Family, SessionContext, decode_update};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mut ctx = SessionContext::default();
    ctx.four_octet_as = selector & 1 != 0;
    if selector & 2 != 0 {
        ctx.add_path_rx.insert(Family::IPV4_UNICAST);
    }
    if selector & 4 != 0 {
        ctx.add_path_rx.insert(Family::IPV6_UNICAST);
    }
    if let Ok(d) = decode_update(body, &ctx) {
        // Everything announced must be iterable (used for treat-as-withdraw).
        let _ = d.msg.announced().count();
        let _ = d.msg.end_of_rib();
    }
});
