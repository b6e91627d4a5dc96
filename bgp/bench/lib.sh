# Process and namespace bookkeeping shared by run.sh and workloads.sh (sourced, not run).
# The caller sets PIDS=() NSS=() and WORK (a scratch directory) before `trap cleanup EXIT`.

kill_pids() { # kill_pids <pid...>: TERM, wait up to 6 s, then KILL, and reap
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 20); do
        local alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.3
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

cleanup() { # EXIT trap: every process started (by PID), every namespace made (by name)
    local rc=$?
    trap - EXIT INT TERM
    ((${#PIDS[@]})) && kill_pids "${PIDS[@]}"
    local ns
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if ((rc != 0)); then
        echo "${0##*/}: exit $rc; logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

start_bg() { # start_bg <log> <cmd...>: background, PID in $BGPID and PIDS
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    BGPID=$!
    PIDS+=("$BGPID")
}

forget_pids() { # forget_pids <pid...>: drop them from PIDS once they are dead
    local keep=() p q dead
    for p in "${PIDS[@]}"; do
        dead=0
        for q in "$@"; do [[ $p == "$q" ]] && dead=1; done
        ((dead)) || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}
