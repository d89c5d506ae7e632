# Shared helpers of the bench scripts (sourced, not run).

# Whether the page cache can be dropped (root), and dropping it.
can_drop=0
if sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then can_drop=1; fi
drop() { sync; [ "$can_drop" = 1 ] && echo 3 >/proc/sys/vm/drop_caches; return 0; }

# Arithmetic, timing and medians without bc.
calc() { awk "BEGIN { print $* }"; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); calc "$t1 - $t0"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
fmt() { printf '%.2f' "$1"; }
ratio() { printf '%.2f' "$(calc "$1 / $2")"; }
machine() { echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"; }
isa() { if grep -qw avx512f /proc/cpuinfo; then echo "AVX-512"; elif grep -qw avx2 /proc/cpuinfo; then echo "AVX2"; else uname -m; fi; }

# The python of a virtualenv at $1 that imports $2 (e.g. "numpy, zarr"),
# created with `pip install` of the remaining arguments when it does not.
peer_python() {
    local venv="$1" imports="$2"; shift 2
    if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
    fi
    echo "$venv/bin/python"
}
