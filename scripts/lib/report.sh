# shellcheck shell=bash
# Reading pytest's results out of the suites' logs for scripts/test's summary.

# _pytest_final_line LOG: pytest's closing line ("3 passed, 1 skipped in 0.52s"), without the ===.
_pytest_final_line() {
  grep -E '(passed|failed|errors?|skipped|deselected|xfailed|xpassed|no tests ran).* in [0-9.]+s' "$1" |
    tail -n1 | sed -E 's/^=+ //; s/ =+$//' || true
}

# suite_summary NAME LOG STATUS: one line, e.g. "oldest (HA 2025.4.4, Python 3.13.0): 3 passed in 0.52s".
suite_summary() {
  local name="$1" log="$2" status="$3" header final
  header="$(sed -n "s/^miloco-suite: $name //p" "$log" | head -n1)"
  final="$(_pytest_final_line "$log")"
  case "$status" in
    0) ;;
    5) final="${final:-no tests ran} (pytest exit 5: no tests collected)" ;;
    *) final="${final:-no pytest summary, see $log} (exit $status)" ;;
  esac
  printf '%s (%s): %s\n' "$name" "${header:-set-up failed}" "$final"
}

# total_counts LOG...: "total: N passed, N failed, N skipped" over all the logs (errors count as failed).
total_counts() {
  local log line passed=0 failed=0 skipped=0 n word
  for log in "$@"; do
    line="$(_pytest_final_line "$log")"
    while read -r n word; do
      case "$word" in
        passed) passed=$((passed + n)) ;;
        failed | error | errors) failed=$((failed + n)) ;;
        skipped) skipped=$((skipped + n)) ;;
      esac
    done < <(grep -oE '[0-9]+ (passed|failed|errors?|skipped)' <<<"$line" || true)
  done
  printf 'total: %s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
}
