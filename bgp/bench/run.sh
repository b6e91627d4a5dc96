#!/usr/bin/env bash
# BGP throughput benchmark in the bgperf method: injector -> router under test -> receiver,
# each in its own network namespace. For each N and each target, measures the time from the
# injector's first UPDATE until the receiver holds all N prefixes, and the target's CPU time
# and peak RSS at that moment. Writes the results table into bgp/bench/README.md.
#
#   sudo bgp/bench/run.sh [N ...]            # default: 100000 1000000
#
# Environment:
#   TARGETS="brindle bird frr brindle-kernel"   targets to run, in order
#   BENCH_TIMEOUT=<s>       receiver's bound per run (default 300 for N <= 100k, else 600)
#   CARGO_TARGET_DIR        where cargo builds (default <repo>/target)
#   REPEAT=3                runs per (N, target); the table shows median (min-max)
#   BENCH_README=0          do not rewrite README.md (print the table only)
#   PREFIX_SPACE=240.0.0.0/4 PREFIX_LEN=24  where the N prefixes come from (see README)
#
# Safety: namespaces are named brbench-<random>-{inj,tgt,rcv} and linked only to each other
# by veth pairs created inside them (the root namespace is never touched); interface
# addresses come from 198.18.0.0/15. The EXIT trap kills every process started here (by PID)
# and deletes the namespaces created here (by name), on success, error or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
if (($# > 0)); then NS_LIST=("$@"); else NS_LIST=(100000 1000000); fi
REPEAT=${REPEAT:-3}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: REPEAT must be a positive integer" >&2; exit 1; }
read -r -a TARGETS <<<"${TARGETS:-brindle bird frr brindle-kernel}"
CMDLINE="${0#"$REPO/"} $*"

die() { echo "run.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for t in ip bird /usr/lib/frr/zebra /usr/lib/frr/bgpd cargo timeout getconf awk; do
    command -v "$t" >/dev/null || [[ -x $t ]] || die "needs $t (Debian: iproute2 bird2 frr)"
done
for n in "${NS_LIST[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] && ((n > 0 && n <= 1048576)) || die "N must be 1..1048576, got $n"
done

# ---- cleanup -----------------------------------------------------------------------------
PIDS=()
NSS=()
WORK=$(mktemp -d /tmp/brbench-XXXXXX)
chmod 777 "$WORK" # FRR drops privileges to the frr user and writes its sockets here

# shellcheck source=lib.sh
source "$HERE/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build -------------------------------------------------------------------------------
echo "== building (release) into $TARGET_DIR"
(cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q \
    -p brindle-bgp-bench -p brindle-bgp-speaker --bin bgp-inject --bin bgp-sink --bin brindle-bgp)
BRINDLE=$TARGET_DIR/release/brindle-bgp
INJECT=$TARGET_DIR/release/bgp-inject
SINK=$TARGET_DIR/release/bgp-sink
CLK=$(getconf CLK_TCK)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- one run -----------------------------------------------------------------------------
# Addresses: inj 198.18.0.1/30 <-> tgt 198.18.0.2/30 ; tgt 198.18.0.5/30 <-> rcv 198.18.0.6/30
RESULTS=$WORK/results.tsv
: >"$RESULTS"



run_one() {
    local target=$1 n=$2 rep=$3 timeout
    timeout=${BENCH_TIMEOUT:-$((n <= 100000 ? 300 : 600))}
    local tag; tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    local inj=brbench-$tag-inj tgt=brbench-$tag-tgt rcv=brbench-$tag-rcv
    local d=$WORK/$target-$n
    mkdir -p "$d"; chmod 777 "$d"
    echo "== $target N=$n run $rep/$REPEAT (namespaces brbench-$tag-*, timeout ${timeout}s)"

    local ns
    for ns in "$inj" "$tgt" "$rcv"; do
        ip netns add "$ns"
        NSS+=("$ns")
        ip -n "$ns" link set lo up
    done
    ip -n "$inj" link add veth0 type veth peer name vi netns "$tgt"
    ip -n "$tgt" link add vr type veth peer name veth0 netns "$rcv"
    ip -n "$inj" addr add 198.18.0.1/30 dev veth0
    ip -n "$tgt" addr add 198.18.0.2/30 dev vi
    ip -n "$tgt" addr add 198.18.0.5/30 dev vr
    ip -n "$rcv" addr add 198.18.0.6/30 dev veth0
    ip -n "$inj" link set veth0 up
    ip -n "$tgt" link set vi up
    ip -n "$tgt" link set vr up
    ip -n "$rcv" link set veth0 up

    local tpids=() run_pids=()
    case $target in
    brindle | brindle-kernel)
        local kernel=false
        [[ $target == brindle-kernel ]] && kernel=true
        cat >"$d/brindle.yaml" <<EOF
local_as: 65002
router_id: 198.18.0.2
listen_address: 0.0.0.0
kernel: { enabled: $kernel }
peers:
  - { address: 198.18.0.1, remote_as: 65001, passive: true, hold_time: 180 }
  - { address: 198.18.0.6, remote_as: 65003, passive: true, hold_time: 180 }
EOF
        start_bg "$d/target.log" ip netns exec "$tgt" env RUST_LOG=info NO_COLOR=1 \
            "$BRINDLE" --config "$d/brindle.yaml"
        tpids+=("$BGPID")
        ;;
    bird)
        # No `protocol kernel`: BIRD never writes the FIB.
        cat >"$d/bird.conf" <<EOF
router id 198.18.0.2;
log stderr all;
protocol device { }
protocol bgp inj {
  local 198.18.0.2 as 65002; neighbor 198.18.0.1 as 65001; passive on; hold time 180;
  ipv4 { import all; export none; };
}
protocol bgp rcv {
  local 198.18.0.5 as 65002; neighbor 198.18.0.6 as 65003; passive on; hold time 180;
  ipv4 { import none; export all; };
}
EOF
        start_bg "$d/target.log" ip netns exec "$tgt" bird -f -c "$d/bird.conf" -s "$d/bird.ctl"
        tpids+=("$BGPID")
        ;;
    frr)
        # bgpd -n: no FIB installation (bgpd still uses zebra for next-hop tracking).
        cat >"$d/frr.conf" <<EOF
hostname tgt
router bgp 65002
 bgp router-id 198.18.0.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.18.0.1 remote-as 65001
 neighbor 198.18.0.1 passive
 neighbor 198.18.0.1 timers 60 180
 neighbor 198.18.0.1 advertisement-interval 0
 neighbor 198.18.0.6 remote-as 65003
 neighbor 198.18.0.6 passive
 neighbor 198.18.0.6 timers 60 180
 neighbor 198.18.0.6 advertisement-interval 0
EOF
        echo "hostname zebra" >"$d/zebra.conf"
        : >"$d/vtysh.conf"
        local daemon conf
        for daemon in zebra bgpd; do
            conf=$d/frr.conf
            [[ $daemon == zebra ]] && conf=$d/zebra.conf
            local extra=()
            [[ $daemon == bgpd ]] && extra=(-n)
            start_bg "$d/target-$daemon.log" ip netns exec "$tgt" "/usr/lib/frr/$daemon" \
                -N "brbench-$tag" -f "$conf" -i "$d/$daemon.pid" -z "$d/zserv.api" \
                --vty_socket "$d" -u frr -g frr -P 0 "${extra[@]}"
            tpids+=("$BGPID")
            if [[ $daemon == zebra ]]; then
                for _ in $(seq 50); do [[ -S $d/zserv.api ]] && break; sleep 0.2; done
                [[ -S $d/zserv.api ]] || die "zebra did not create its socket: $(cat "$d/target-zebra.log")"
            fi
        done
        ;;
    *) die "unknown target $target" ;;
    esac
    run_pids+=("${tpids[@]}")
    sleep 0.5
    local p
    for p in "${tpids[@]}"; do
        kill -0 "$p" 2>/dev/null || die "$target exited at startup: $(tail -20 "$d"/target*.log)"
    done
    local pid_args=()
    for p in "${tpids[@]}"; do pid_args+=(--target-pid "$p"); done

    start_bg "$d/sink.log" timeout -k 5 $((timeout + 30)) ip netns exec "$rcv" "$SINK" \
        --connect 198.18.0.5:179 --router-id 198.18.0.6 --count "$n" \
        --start-file "$d/start" --ready-file "$d/ready" --clk-tck "$CLK" \
        --timeout "$timeout" "${pid_args[@]}"
    local sink=$BGPID
    run_pids+=("$sink")
    for _ in $(seq 300); do
        [[ -e $d/ready ]] && break
        kill -0 "$sink" 2>/dev/null || break
        sleep 0.2
    done
    [[ -e $d/ready ]] || die "receiver session with $target never came up: $(tail -20 "$d/sink.log" "$d"/target*.log)"

    start_bg "$d/inject.log" ip netns exec "$inj" "$INJECT" \
        --connect 198.18.0.2:179 --router-id 198.18.0.1 --next-hop 198.18.0.1 --count "$n" \
        --space "${PREFIX_SPACE:-240.0.0.0/4}" --prefix-len "${PREFIX_LEN:-24}" \
        --start-file "$d/start" "${pid_args[@]}"
    run_pids+=("$BGPID")

    local rc=0
    wait "$sink" || rc=$?
    local line
    line=$(grep '^result ' "$d/sink.log" || true)
    [[ -n $line ]] || line="result status=error:exit_$rc"
    echo "   $line"

    local kernel_s=-
    if [[ $target == brindle-kernel ]] && [[ $line == *status=ok* ]]; then
        # Brindle installs routes asynchronously: wait (bounded) until the kernel has all N.
        local t0 cnt=0 deadline=$((SECONDS + timeout))
        t0=$(awk '{print $1}' "$d/start")
        while ((SECONDS < deadline)); do
            cnt=$(ip -n "$tgt" -4 route show proto 80 | wc -l)
            ((cnt >= n)) && break
            sleep 1
        done
        if ((cnt >= n)); then
            kernel_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}')
        else
            kernel_s="timeout($cnt)"
        fi
        echo "   kernel routes (proto 80): $cnt, all present ${kernel_s}s after the first UPDATE (1 s polling)"
    fi
    grep -h 'bgp-inject:' "$d/inject.log" | sed 's/^/   /' || true

    kill_pids "${run_pids[@]}"
    forget_pids "${run_pids[@]}"
    for ns in "$inj" "$tgt" "$rcv"; do ip netns del "$ns" 2>/dev/null || true; done
    NSS=("${NSS[@]:0:${#NSS[@]}-3}")

    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$target" "$rep" \
        "$(sed -n 's/.*status=\([^ ]*\).*/\1/p' <<<"$line")" "$(field elapsed_s)" \
        "$(field cpu_s)" "$(field rss_hwm_mib)" "$(field count)" "$(field first_update_s)" \
        "$kernel_s" >>"$RESULTS"
}

# Targets interleaved within each repetition, so slow drift in background load spreads evenly.
for rep in $(seq "$REPEAT"); do
    for n in "${NS_LIST[@]}"; do
        for t in "${TARGETS[@]}"; do
            run_one "$t" "$n" "$rep"
        done
    done
done

# ---- report ------------------------------------------------------------------------------
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || commit="$commit (+ uncommitted changes)"
TABLE=$WORK/table.md
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`sudo $CMDLINE\`"
    echo "(N = ${NS_LIST[*]}, REPEAT=$REPEAT, TARGETS=\"${TARGETS[*]}\", CARGO_TARGET_DIR=$TARGET_DIR)."
    echo
    echo "* Machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)," \
        "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "* Brindle: commit $commit, release build"
    echo "* BIRD: $(bird --version 2>&1 | head -1)"
    echo "* FRR: $(/usr/lib/frr/bgpd -v 2>&1 | head -1)"
    echo "* Load average (1/5/15 min) after the build: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    awk -F'\t' -v reps="$REPEAT" '
    # Median (and min-max) of the values v[k, 1..c[k]] (numeric; "-" skipped).
    function stat(arr, k,   i, j, m, t, x, n) {
        n = 0
        for (i = 1; i <= cnt[k]; i++) if (arr[k, i] != "" && arr[k, i] != "-") x[++n] = arr[k, i] + 0
        if (n == 0) { MED = "-"; RANGE = ""; return }
        for (i = 2; i <= n; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
        MED = (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
        RANGE = (n > 1) ? sprintf(" (%s–%s)", fmt(x[1]), fmt(x[n])) : ""
    }
    function fmt(v) { return (v < 10) ? sprintf("%.3g", v) : sprintf("%.1f", v) }
    function cell(arr, k) {
        if (!(k in cnt)) return "not run"
        if (bad[k] != "") return bad[k]
        stat(arr, k); return (MED == "-") ? "-" : fmt(MED) RANGE
    }
    function med(arr, k) { if (!(k in cnt) || bad[k] != "") return ""; stat(arr, k); return MED }
    function ratio(arr, a, b,   x, y) { x = med(arr, a); y = med(arr, b); return (x == "" || y == "" || x == "-" || y == "-" || y + 0 == 0) ? "-" : sprintf("%.2f", x / y) }
    {
        k = $1 SUBSEP $2; i = ++cnt[k]
        el[k, i] = $5; cpu[k, i] = $6; rss[k, i] = $7; ks[k, i] = $10
        if ($4 != "ok" && bad[k] == "") bad[k] = $4 " (" $8 " prefixes)"
        if ($10 != "-" && $10 !~ /^[0-9.]+$/ && kbad[k] == "") kbad[k] = $10
        if (!($1 in seen)) { seen[$1] = 1; order[++nn] = $1 }
    }
    END {
        print "| N | metric | Brindle | BIRD | FRR | Brindle/BIRD | Brindle/FRR |"
        print "|---:|---|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nn; i++) {
            n = order[i]; b = n SUBSEP "brindle"; d = n SUBSEP "bird"; f = n SUBSEP "frr"
            printf "| %s | elapsed s | %s | %s | %s | %s | %s |\n", n, cell(el, b), cell(el, d), cell(el, f), ratio(el, b, d), ratio(el, b, f)
            printf "| %s | CPU s | %s | %s | %s | %s | %s |\n", n, cell(cpu, b), cell(cpu, d), cell(cpu, f), ratio(cpu, b, d), ratio(cpu, b, f)
            printf "| %s | peak RSS MiB | %s | %s | %s | %s | %s |\n", n, cell(rss, b), cell(rss, d), cell(rss, f), ratio(rss, b, d), ratio(rss, b, f)
        }
        hk = 0
        for (i = 1; i <= nn; i++) if ((order[i] SUBSEP "brindle-kernel") in cnt) hk = 1
        if (hk) {
            print ""
            print "Brindle **with** kernel route installation (reported separately; not in the ratios):"
            print ""
            print "| N | elapsed s (receiver has all) | CPU s | peak RSS MiB | all N in the kernel after s |"
            print "|---:|---:|---:|---:|---:|"
            for (i = 1; i <= nn; i++) {
                k = order[i] SUBSEP "brindle-kernel"
                if (k in cnt) printf "| %s | %s | %s | %s | %s |\n", order[i], cell(el, k), cell(cpu, k), cell(rss, k), (kbad[k] != "") ? kbad[k] : cell(ks, k)
            }
        }
        print ""
        printf "Each cell: median of %d run(s), (min–max) when more than one. Ratios are of the medians.\n", reps
    }' "$RESULTS"
    echo
    echo "Raw rows (N, target, run, status, elapsed s, CPU s, RSS MiB, prefixes at the receiver," \
        "first UPDATE at the receiver after s, kernel s):"
    echo
    echo '```text'
    cat "$RESULTS"
    echo '```'
} >"$TABLE"

echo
cat "$TABLE"

README=$HERE/README.md
if [[ ${BENCH_README:-1} != 0 ]]; then
    if [[ -f $README ]] && grep -q '<!-- results:begin -->' "$README"; then
        awk -v table="$TABLE" '
            /<!-- results:begin -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
            /<!-- results:end -->/ { skip = 0 }
            !skip { print }' "$README" >"$README.tmp"
        mv "$README.tmp" "$README"
    else
        { echo; echo "## Results"; echo; echo '<!-- results:begin -->'; cat "$TABLE"; echo '<!-- results:end -->'; } >>"$README"
    fi
    echo "results written to $README"
fi
