#!/usr/bin/env bash
# Regenerates the committed seed corpus (bgp/wire/fuzz/seeds/<target>/) from the annotated wire
# vectors of bgp/wire/tests (every message type and attribute, including the ones captured from
# BIRD, FRR and GoBGP), each in its target's input format.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf seeds
BRINDLE_FUZZ_SEEDS="$PWD/seeds" cargo test --quiet --manifest-path ../Cargo.toml --test vectors --test rfc7606 --test builder >/dev/null
for d in seeds/*; do echo "$(ls "$d" | wc -l) seeds in $d"; done
# The messages captured from BIRD, FRR and GoBGP (bgp/speaker/tests/fixtures/*.hex), as sessions
# with 4-octet AS negotiated (selector bit 0).
python3 - ../../speaker/tests/fixtures/*.hex <<'PY'
import hashlib, os, sys
for path in sys.argv[1:]:
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        kind, _, hexs = line.split()[:3]
        msg = bytes.fromhex(hexs)
        name = hashlib.sha1(msg).hexdigest()[:16]
        seeds = {'frame': msg, 'decode_message': b'\x01' + msg}
        if kind == 'open':
            seeds['decode_open'] = msg[19:]
        elif kind == 'update':
            seeds['decode_update'] = b'\x01' + msg[19:]
        for target, data in seeds.items():
            os.makedirs(f'seeds/{target}', exist_ok=True)
            open(f'seeds/{target}/{name}', 'wb').write(data)
PY
for d in seeds/*; do echo "$(ls "$d" | wc -l) seeds in $d (with the captured messages)"; done
