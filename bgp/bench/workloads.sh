#!/usr/bin/env bash
# The four realistic BGP workloads, every target in the same run:
#   a  one eBGP injector: N prefixes /8../24 over ~300k attribute sets -> target -> sink
#   b  10 eBGP injectors announcing the same N prefixes, one after another, each with a
#      shorter AS path than the one before (every prefix changes its best path 10 times)
#      -> target -> sink (the next injector starts when the sink has every prefix from the
#      previous one; done when it has every prefix from the last)
#   c  target as route reflector of 100 iBGP clients announcing 1,000 prefixes each (done when
#      every client has the other 99,000)
#   d  one injector: N prefixes -> target writes them into its kernel FIB (done when the
#      kernel table holds all N)
# Targets: brindle bird frr gobgp (d: brindle bird frr; GoBGP has no FIB writer of its own).
# Every target gets the same policy: injectors are sent nothing (BIRD `export none`, Brindle
# `export: [{action: Reject}]`, FRR `route-map NONE out`, GoBGP default export reject), the
# sink's routes are refused (the mirror), route reflector clients get everything.
#
#   sudo bgp/bench/workloads.sh                 # all four, N from the environment
#   sudo WORKLOADS="a c" TARGETS="brindle bird" bgp/bench/workloads.sh
#
# Environment: WORKLOADS="a b c d", TARGETS="brindle bird frr gobgp", N_A=1000000,
# SETS_A=300000, N_B=1000000, INJ_B=10, CLIENTS_C=100, PER_C=1000, N_D=1000000,
# BENCH_TIMEOUT=900, CARGO_TARGET_DIR, BENCH_README=0 (do not edit README.md).
#
# Safety: namespaces brwl-<random>-{inj,tgt,rcv}, linked only to each other by veth pairs
# created inside them; addresses from 198.18.0.0/16 (injectors, clients, target) and
# 198.19.1.0/24 (target, sink); prefixes from 240.0.0.0/4 (never routed,
# no traffic is sent to them). The EXIT trap kills every process started here (by PID) and
# deletes the namespaces created here (by name).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
read -r -a WORKLOADS <<<"${WORKLOADS:-a b c d}"
read -r -a TARGETS <<<"${TARGETS:-brindle bird frr gobgp}"
N_A=${N_A:-1000000}; SETS_A=${SETS_A:-300000}; N_B=${N_B:-1000000}; INJ_B=${INJ_B:-10}
CLIENTS_C=${CLIENTS_C:-100}; PER_C=${PER_C:-1000}; N_D=${N_D:-1000000}
TIMEOUT=${BENCH_TIMEOUT:-900}

die() { echo "workloads.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for t in ip bird /usr/lib/frr/zebra /usr/lib/frr/bgpd gobgpd cargo timeout getconf awk; do
    command -v "$t" >/dev/null || [[ -x $t ]] || die "needs $t (Debian: iproute2 bird2 frr gobgpd)"
done

PIDS=()
NSS=()
WORK=$(mktemp -d /tmp/brwl-XXXXXX)
chmod 777 "$WORK"

# shellcheck source=lib.sh
source "$HERE/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building (release) into $TARGET_DIR"
(cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p brindle-bgp-bench \
    -p brindle-bgp-speaker --bin bgp-inject --bin bgp-sink --bin bgp-rr-clients --bin brindle-bgp)
BIN=$TARGET_DIR/release
CLK=$(getconf CLK_TCK)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=$WORK/results.tsv
: >"$RESULTS"


# Peers of the target per workload: "address as kind" lines (kind: inj, sink, client).
peers() {
    local w=$1 i
    case $w in
    a | d) echo "198.18.0.10 65101 inj" ;;
    b) for ((i = 0; i < INJ_B; i++)); do echo "198.18.0.$((10 + i)) $((65101 + i)) inj"; done ;;
    c) for ((i = 0; i < CLIENTS_C; i++)); do
           echo "198.18.$((2 + i / 200)).$((10 + i % 200)) 65002 client"; done ;;
    esac
    case $w in a | b) echo "198.19.1.2 65003 sink" ;; esac
}

config() { # config <target> <workload> <dir>: write the target's configuration
    local t=$1 w=$2 d=$3 addr as kind kernel=false
    [[ $w == d ]] && kernel=true
    case $t in
    brindle)
        { echo "local_as: 65002"; echo "router_id: 198.18.0.2"; echo "listen_address: 0.0.0.0"
          if [[ -n ${BRINDLE_WRITE_QUEUE:-} ]]; then echo "write_queue_bytes: $BRINDLE_WRITE_QUEUE"; fi
          echo "kernel: { enabled: $kernel }"; echo "peers:"
          peers "$w" | while read -r addr as kind; do
              rr=false; [[ $kind == client ]] && rr=true
              local pol=""
              case $kind in
              inj) pol=", export: [{ action: Reject }]" ;;
              sink) pol=", import: [{ action: Reject }]" ;;
              esac
              echo "  - { address: $addr, remote_as: $as, passive: true, hold_time: 180, route_reflector_client: $rr$pol }"
          done; } >"$d/brindle.yaml" ;;
    bird)
        { echo "router id 198.18.0.2;"; echo "log stderr all;"; echo "protocol device { }"
          if [[ $w == d ]]; then echo "protocol kernel { ipv4 { export all; }; }"; fi
          local n=0
          peers "$w" | while read -r addr as kind; do
              n=$((n + 1))
              local src=198.18.0.2; [[ $kind == sink ]] && src=198.19.1.1
              echo "protocol bgp p$n { local $src as 65002; neighbor $addr as $as; passive on; hold time 180;"
              if [[ $kind == client ]]; then echo "  rr client; rr cluster id 198.18.0.2;"; fi
              case $kind in
              inj) echo "  ipv4 { import all; export none; }; }" ;;
              sink) echo "  ipv4 { import none; export all; }; }" ;;
              client) echo "  ipv4 { import all; export all; }; }" ;;
              esac
          done; } >"$d/bird.conf" ;;
    frr)
        { echo "hostname tgt"; echo "router bgp 65002"; echo " bgp router-id 198.18.0.2"
          echo " no bgp ebgp-requires-policy"; echo " no bgp network import-check"
          echo " bgp cluster-id 198.18.0.2"
          peers "$w" | while read -r addr as kind; do
              echo " neighbor $addr remote-as $as"; echo " neighbor $addr passive"
              echo " neighbor $addr timers 60 180"; echo " neighbor $addr advertisement-interval 0"
          done
          echo " address-family ipv4 unicast"
          peers "$w" | while read -r addr as kind; do
              case $kind in
              client) echo "  neighbor $addr route-reflector-client" ;;
              inj) echo "  neighbor $addr route-map NONE out" ;;
              sink) echo "  neighbor $addr route-map NONE in" ;;
              esac
          done
          echo " exit-address-family"
          echo "route-map NONE deny 10"; } >"$d/frr.conf"
        echo "hostname zebra" >"$d/zebra.conf" ;;
    gobgp)
        { printf '[global.config]\n  as = 65002\n  router-id = "198.18.0.2"\n  port = 179\n'
          peers "$w" | while read -r addr as kind; do
              printf '[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "%s"\n    peer-as = %s\n' "$addr" "$as"
              printf '  [neighbors.timers.config]\n    hold-time = 180\n'
              printf '  [neighbors.transport.config]\n    passive-mode = true\n'
              printf '  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = "ipv4-unicast"\n'
              case $kind in
              client) printf '  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = "198.18.0.2"\n' ;;
              inj) printf '  [neighbors.apply-policy.config]\n    default-export-policy = "reject-route"\n' ;;
              sink) printf '  [neighbors.apply-policy.config]\n    default-import-policy = "reject-route"\n' ;;
              esac
          done; } >"$d/gobgp.toml" ;;
    esac
}

start_target() { # start_target <target> <workload> <dir> <tag> <ns>: PIDs in TPIDS
    local t=$1 w=$2 d=$3 tag=$4 tgt=$5
    TPIDS=()
    case $t in
    brindle)
        # BRINDLE_WRAP (e.g. "perf record -g -o FILE") runs Brindle under a profiler.
        # shellcheck disable=SC2086
        start_bg "$d/target.log" ip netns exec "$tgt" env RUST_LOG=warn NO_COLOR=1 \
            ${BRINDLE_WRAP:-} "$BIN/brindle-bgp" --config "$d/brindle.yaml" ${BRINDLE_ARGS:-}
        TPIDS+=("$BGPID") ;;
    bird)
        start_bg "$d/target.log" ip netns exec "$tgt" bird -f -c "$d/bird.conf" -s "$d/bird.ctl"
        TPIDS+=("$BGPID") ;;
    frr)
        : >"$d/vtysh.conf"
        local daemon conf extra
        for daemon in zebra bgpd; do
            conf=$d/frr.conf; [[ $daemon == zebra ]] && conf=$d/zebra.conf
            extra=(); [[ $daemon == bgpd && $w != d ]] && extra=(-n)
            start_bg "$d/target-$daemon.log" ip netns exec "$tgt" "/usr/lib/frr/$daemon" \
                -N "brwl-$tag" -f "$conf" -i "$d/$daemon.pid" -z "$d/zserv.api" \
                --vty_socket "$d" -u frr -g frr -P 0 "${extra[@]}"
            TPIDS+=("$BGPID")
            if [[ $daemon == zebra ]]; then
                for _ in $(seq 50); do [[ -S $d/zserv.api ]] && break; sleep 0.2; done
                [[ -S $d/zserv.api ]] || die "zebra did not create its socket"
            fi
        done ;;
    gobgp)
        start_bg "$d/target.log" ip netns exec "$tgt" gobgpd -f "$d/gobgp.toml" \
            --api-hosts 127.0.0.1:50051 --pprof-disable -l warn
        TPIDS+=("$BGPID") ;;
    esac
}

sample() { # sample <pids...>: "<cpu ticks> <hwm KiB>" summed
    local p ticks=0 hwm=0 st
    for p in "$@"; do
        st=$(cut -d')' -f2- "/proc/$p/stat")
        ticks=$((ticks + $(awk '{print $12 + $13}' <<<"$st")))
        hwm=$((hwm + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
    done
    echo "$ticks $hwm"
}

run_one() { # run_one <workload> <target>
    local w=$1 t=$2
    local tag; tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    local inj=brwl-$tag-inj tgt=brwl-$tag-tgt rcv=brwl-$tag-rcv d=$WORK/$w-$t
    mkdir -p "$d"; chmod 777 "$d"
    echo "== workload $w, target $t (namespaces brwl-$tag-*)"
    local ns
    for ns in "$inj" "$tgt" "$rcv"; do ip netns add "$ns"; NSS+=("$ns"); ip -n "$ns" link set lo up; done
    ip -n "$inj" link add veth0 type veth peer name vi netns "$tgt"
    ip -n "$tgt" link add vr type veth peer name veth0 netns "$rcv"
    ip -n "$inj" addr add 198.18.0.1/16 dev veth0
    local addr as kind
    while read -r addr as kind; do
        [[ $kind == sink ]] || ip -n "$inj" addr add "$addr/16" dev veth0
    done < <(peers "$w")
    ip -n "$tgt" addr add 198.18.0.2/16 dev vi
    ip -n "$tgt" addr add 198.19.1.1/24 dev vr
    ip -n "$rcv" addr add 198.19.1.2/24 dev veth0
    for x in "$inj veth0" "$tgt vi" "$tgt vr" "$rcv veth0"; do ip -n ${x% *} link set ${x#* } up; done

    config "$t" "$w" "$d"
    start_target "$t" "$w" "$d" "$tag" "$tgt"
    local run_pids=("${TPIDS[@]}") p pid_args=()
    sleep 1
    for p in "${TPIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "$t exited at startup: $(tail -5 "$d"/target*.log)"; done
    for p in "${TPIDS[@]}"; do pid_args+=(--target-pid "$p"); done

    local line="" sink=""
    if [[ $w == a || $w == b ]]; then
        local starts=() k=0 n=$N_A ninj=1
        [[ $w == b ]] && { n=$N_B; k=$INJ_B; ninj=$INJ_B; }
        rm -f "$d"/ready*
        for ((i = 0; i < ninj; i++)); do starts+=(--start-file "$d/start.$i"); done
        start_bg "$d/sink.log" timeout -k 5 $((TIMEOUT + 30)) ip netns exec "$rcv" "$BIN/bgp-sink" \
            --connect 198.19.1.1:179 --router-id 198.19.1.2 --count "$n" "${starts[@]}" \
            --ready-file "$d/ready" --clk-tck "$CLK" --timeout "$TIMEOUT" --phases "$k" \
            "${pid_args[@]}"
        sink=$BGPID; run_pids+=("$sink")
        for _ in $(seq 300); do [[ -e $d/ready ]] && break; kill -0 "$sink" 2>/dev/null || break; sleep 0.2; done
        [[ -e $d/ready ]] || die "sink never came up with $t: $(tail -5 "$d/sink.log" "$d"/target*.log)"
        local i=0 injs=()
        mapfile -t injs < <(peers "$w" | awk '$3 == "inj"')
        for line in "${injs[@]}"; do
            read -r addr as kind <<<"$line"
            local extra=(--count "$n")
            if [[ $w == a ]]; then extra+=(--profile internet --attr-sets "$SETS_A")
            else extra+=(--path-len $((INJ_B - i))); fi
            start_bg "$d/inject.$i.log" ip netns exec "$inj" "$BIN/bgp-inject" \
                --connect 198.18.0.2:179 --local-as "$as" --router-id "$addr" --next-hop "$addr" --bind "$addr" \
                --start-file "$d/start.$i" "${extra[@]}" "${pid_args[@]}"
            run_pids+=("$BGPID")
            if [[ $w == b ]] && ((i + 1 < INJ_B)); then
                # The next injector starts once the sink has every prefix from this one.
                local deadline=$((SECONDS + TIMEOUT))
                while [[ ! -e $d/ready.phase$i ]] && ((SECONDS < deadline)) && kill -0 "$sink" 2>/dev/null; do
                    sleep 0.05
                done
            fi
            i=$((i + 1))
        done
        local rc=0; wait "$sink" || rc=$?
        line=$(grep '^result ' "$d/sink.log" || echo "result status=error:exit_$rc")
    elif [[ $w == c ]]; then
        start_bg "$d/clients.log" timeout -k 5 $((TIMEOUT + 60)) ip netns exec "$inj" "$BIN/bgp-rr-clients" \
            --connect 198.18.0.2:179 --sessions "$CLIENTS_C" --per-session "$PER_C" \
            --source-base 198.18.2.10 --start-file "$d/start.0" --clk-tck "$CLK" --timeout "$TIMEOUT" \
            "${pid_args[@]}"
        local c=$BGPID rc=0; run_pids+=("$c")
        wait "$c" || rc=$?
        line=$(grep '^result ' "$d/clients.log" || echo "result status=error:exit_$rc")
    else
        local proto=80
        case $t in bird) proto=bird ;; frr) proto=bgp ;; esac
        start_bg "$d/inject.0.log" ip netns exec "$inj" "$BIN/bgp-inject" \
            --connect 198.18.0.2:179 --local-as 65101 --router-id 198.18.0.10 --next-hop 198.18.0.10 --bind 198.18.0.10 \
            --count "$N_D" --start-file "$d/start.0" "${pid_args[@]}"
        run_pids+=("$BGPID")
        local deadline=$((SECONDS + TIMEOUT)) cnt=0
        while ((SECONDS < deadline)); do
            [[ -e $d/start.0 ]] && { cnt=$(ip -n "$tgt" -4 route show proto "$proto" | wc -l); ((cnt >= N_D)) && break; }
            sleep 0.5
        done
        local now s0 c0 tick hwm; now=$(date +%s%N)
        read -r tick hwm < <(sample "${TPIDS[@]}")
        read -r s0 c0 <"$d/start.0"
        if ((cnt >= N_D)); then
            line=$(awk -v a="$s0" -v b="$now" -v t="$tick" -v c="$c0" -v k="$CLK" -v h="$hwm" -v n="$cnt" \
                'BEGIN{printf "result status=ok count=%d elapsed_s=%.3f cpu_s=%.2f rss_hwm_mib=%.1f", n, (b-a)/1e9, (t-c)/k, h/1024}')
        else
            line="result status=timeout count=$cnt"
        fi
    fi
    echo "   $line"
    kill_pids "${run_pids[@]}"
    forget_pids "${run_pids[@]}"
    for ns in "$inj" "$tgt" "$rcv"; do ip netns del "$ns" 2>/dev/null || true; done
    NSS=("${NSS[@]:0:${#NSS[@]}-3}")
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$t" "$(field status)" "$(field elapsed_s)" \
        "$(field cpu_s)" "$(field rss_hwm_mib)" "$(field count)" >>"$RESULTS"
}

for w in "${WORKLOADS[@]}"; do
    for t in "${TARGETS[@]}"; do
        [[ $w == d && $t == gobgp ]] && continue
        run_one "$w" "$t"
    done
done

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || commit="$commit (+ uncommitted changes)"
TABLE=$WORK/table.md
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`sudo bgp/bench/workloads.sh\`"
    echo "(WORKLOADS=\"${WORKLOADS[*]}\", TARGETS=\"${TARGETS[*]}\", N_A=$N_A, SETS_A=$SETS_A, N_B=$N_B, INJ_B=$INJ_B, CLIENTS_C=$CLIENTS_C, PER_C=$PER_C, N_D=$N_D), one run each."
    echo
    echo "* Machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), Linux $(uname -r)"
    echo "* Brindle: commit $commit, release build; BIRD: $(bird --version 2>&1 | head -1); FRR: $(/usr/lib/frr/bgpd -v 2>&1 | head -1); GoBGP: $(gobgpd --version 2>&1 | head -1)"
    echo "* Load average (1/5/15 min) after the build: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    awk -F'\t' '
    function v(w, t, col,   k) { k = w SUBSEP t; if (!(k in st)) return "n/a"; if (st[k] != "ok") return st[k] " (" cnt[k] ")"; return val[k, col] }
    function r(w, col, b,   x, y) { x = v(w, "brindle", col); y = v(w, b, col); return (x ~ /^[0-9.]+$/ && y ~ /^[0-9.]+$/ && y + 0 > 0) ? sprintf("%.2f", x / y) : "-" }
    { k = $1 SUBSEP $2; st[k] = $3; val[k, "el"] = $4; val[k, "cpu"] = $5; val[k, "rss"] = $6; cnt[k] = $7; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END {
        name["a"] = "(a) internet table, one injector"; name["b"] = "(b) 10 injectors, best-path churn"
        name["c"] = "(c) route reflector, 100 clients x 1k"; name["d"] = "(d) into the kernel FIB"
        print "| workload | metric | Brindle | BIRD | FRR | GoBGP | Brindle/BIRD | Brindle/FRR | Brindle/GoBGP |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            w = order[i]
            split("el cpu rss", cols, " "); split("elapsed s|CPU s|peak RSS MiB", names, "|")
            for (c = 1; c <= 3; c++) {
                col = cols[c]
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name[w], names[c], v(w, "brindle", col), v(w, "bird", col), v(w, "frr", col), v(w, "gobgp", col), r(w, col, "bird"), r(w, col, "frr"), r(w, col, "gobgp")
            }
        }
    }' "$RESULTS"
    echo
    echo "Raw rows (workload, target, status, elapsed s, CPU s, peak RSS MiB, count):"
    echo
    echo '```text'
    cat "$RESULTS"
    echo '```'
} >"$TABLE"
echo; cat "$TABLE"
README=$HERE/README.md
if [[ ${BENCH_README:-1} != 0 ]]; then
    if grep -q '<!-- workloads:begin -->' "$README"; then
        awk -v table="$TABLE" '
            /<!-- workloads:begin -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
            /<!-- workloads:end -->/ { skip = 0 }
            !skip { print }' "$README" >"$README.tmp" && mv "$README.tmp" "$README"
    else
        { echo; echo "## Realistic workloads (a)-(d)"; echo; echo '<!-- workloads:begin -->'; cat "$TABLE"; echo '<!-- workloads:end -->'; } >>"$README"
    fi
    echo "results written to $README"
fi
