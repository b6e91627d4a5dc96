//! Whole-message decode in several session contexts, chosen by the first input byte; every
//! successfully decoded message is re-encoded and decoded again, which must agree.
#![no_main]

use brindle_bgp_wire::{Family, SessionContext, decode_message};
use libfuzzer_sys::fuzz_target;

fn context(selector: u8) -> SessionContext {
    let mut ctx = SessionContext::default();
    ctx.four_octet_as = selector & 1 != 0;
    ctx.extended_message = selector & 2 != 0;
    if selector & 4 != 0 {
        ctx.add_path_rx.insert(Family::IPV4_UNICAST);
        ctx.add_path_tx.insert(Family::IPV4_UNICAST);
    }
    if selector & 8 != 0 {
        ctx.add_path_rx.insert(Family::IPV6_UNICAST);
        ctx.add_path_tx.insert(Family::IPV6_UNICAST);
    }
    ctx
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let ctx = context(selector);
    if let Ok(d) = decode_message(msg, &ctx) {
        if let Ok(bytes) = d.msg.encode(&ctx) {
            let again = decode_message(&bytes, &ctx).expect("re-encoded message decodes");
            assert_eq!(again.msg, d.msg, "decode(encode(decode(x))) != decode(x)");
        }
    }
});
