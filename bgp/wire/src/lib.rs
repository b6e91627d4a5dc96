//! BGP-4 wire format (pure: no tokio, no sockets): messages and path attributes as types,
//! framing, decoding with a negotiated-capabilities context, encoding and update packing.
