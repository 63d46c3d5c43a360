# Honest test counts from the output of `cargo test`; sourced by .ci/run and
# scripts/e2e-real.sh. libtest counts a test that returned early as passed;
# the suites' tests say so with `SKIPPED <test>: <why>` (written past
# libtest's capture: tests/support/mod.rs, `skipped`), which is counted here
# and subtracted.

# test_counts LOG: prints "RAN SKIPPED IGNORED FAILED" for the cargo test
# output in LOG (summed over its test binaries and doctests). RAN counts the
# tests that passed and did not skip.
test_counts() {
  local log=$1
  awk '
    /^test result: / {
      for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^passed;?$/) passed += $i
        if ($(i + 1) ~ /^failed;?$/) failed += $i
        if ($(i + 1) ~ /^ignored;?$/) ignored += $i
      }
    }
    /SKIPPED [^ ]+: / { skipped++ }
    END { printf "%d %d %d %d\n", passed - skipped, skipped, ignored, failed }
  ' "$log"
}

# test_skips LOG: the SKIPPED lines of LOG, one a line, without the prefix.
# (With --test-threads 1, libtest prints "test NAME ... " before the test
# runs, so the line can follow that on the same line.)
test_skips() {
  sed -n 's/^.*SKIPPED \([^ ]*: \)/\1/p' "$1"
}
