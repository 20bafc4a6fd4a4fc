#!/usr/bin/env bash
# Delivery-rate benchmark: does Kurier deliver at the rate each authority can
# take, with its own delivery defaults? Starts the private services, builds
# in release mode, runs the scenarios of tests/tests/rate.rs one at a time
# (their assertions are about correctness only: all delivered, each accepted
# once) and compares the FIGURE lines they print with the targets:
#
#   fail_first_3  (first 3 attempts of each submission 503 + Retry-After: 1)
#                 all 30 delivered within 30 s, on SQLite and PostgreSQL
#   flaky_20      (20 % of requests 503, no Retry-After) all delivered, the
#                 last at most 5 s after the healthy authority's last
#   capacity      (8 at a time, 50 ms each, the 9th refused) all delivered,
#                 utilisation >= 0.70, refused share <= 0.20
#   down          (503 for 30 s, then healthy) <= 2 requests/s in the last 20 s
#                 of the outage, the backlog delivered <= 10 s after "back"
#   kill9_flaky   no speed target; passes when its test passes
#   isolation     (tests/tests/isolation.rs: one authority down beside two
#                 healthy) the healthy ones keep >= 0.90 of their rate
#
#   deploy/local/bench-delivery.sh          # exit 0 when every target is met
#
# KURIER_RUN_DIR, KURIER_AMQP_PORT, KURIER_PG_PORT, KURIER_RABBIT_NODE select
# private services as for services.sh; KURIER_RATE_DEADLINE_SECS (default
# 180) bounds each scenario's wait. The full output is kept in
# $KURIER_RUN_DIR/bench-delivery.log.
set -uo pipefail
cd "$(dirname "$0")/../.."

bash deploy/local/services.sh --postgres || exit 1
RUN_DIR=${KURIER_RUN_DIR:-/tmp/kurier-local}
# shellcheck disable=SC1091
source "$RUN_DIR/env.sh"

# The tests run the release `kurier` and `test-authority` binaries.
cargo build --release --workspace --bins || exit 1
log="$RUN_DIR/bench-delivery.log"
cargo test --release -p kurier-e2e --test rate --test isolation -- --nocapture --test-threads=1 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}

failed=0
# The FIGURE lines, wherever they start (with --nocapture the first one of a
# test follows "test <name> ... " on the same line).
figures() { grep -o -E 'FIGURE .*' "$log" || true; }
# The FIGURE line of a scenario (first match of a pattern).
figure() { figures | grep -m1 -E "^FIGURE $1( |$)" || true; }
# A field of a FIGURE line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
# le A B / ge A B: numeric comparison; "NA" or empty never passes.
le() { num "$1" && num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
ge() { num "$1" && num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
all_delivered() { [[ $1 =~ ^([0-9]+)/([0-9]+)$ ]] && [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]; }
verdict() { # NAME OK(0/1) DETAIL
  if [[ $2 -eq 0 ]]; then
    printf 'PASS  %-22s %s\n' "$1" "$3"
  else
    printf 'FAIL  %-22s %s\n' "$1" "$3"
    failed=1
  fi
}

echo
echo "== figures =="
[[ -n $(figures) ]] && figures || echo "(no FIGURE lines: see $log)"
echo
echo "== targets =="
for backend in sqlite postgres; do
  line=$(figure "fail_first_3 backend=$backend")
  d=$(field "$line" delivered) s=$(field "$line" seconds)
  all_delivered "$d" && le "$s" 30
  verdict "fail_first_3/$backend" $? "delivered=${d:-?} seconds=${s:-?} (all within 30 s)"
done

line=$(figure flaky_20)
d=$(field "$line" delivered) s=$(field "$line" seconds)
hd=$(field "$line" healthy_delivered) hs=$(field "$line" healthy_seconds)
limit=$(num "$hs" && awk -v h="$hs" 'BEGIN { print h + 5 }')
all_delivered "$d" && all_delivered "$hd" && le "$s" "$limit"
verdict flaky_20 $? "delivered=${d:-?} seconds=${s:-?} healthy_seconds=${hs:-?} (at most healthy + 5 s)"

line=$(figure capacity)
d=$(field "$line" delivered) u=$(field "$line" utilisation) r=$(field "$line" refused_share)
all_delivered "$d" && ge "$u" 0.70 && le "$r" 0.20
verdict capacity $? "delivered=${d:-?} utilisation=${u:-?} refused_share=${r:-?} (>= 0.70, <= 0.20)"

line=$(figure down)
d=$(field "$line" delivered) rps=$(field "$line" requests_per_second_down) back=$(field "$line" seconds_after_back)
all_delivered "$d" && le "$rps" 2 && le "$back" 10
verdict down $? "delivered=${d:-?} requests_per_second_down=${rps:-?} seconds_after_back=${back:-?} (<= 2/s, <= 10 s)"

for backend in sqlite postgres; do
  line=$(figure "isolation backend=$backend")
  ratio=$(field "$line" ratio)
  ge "$ratio" 0.90
  verdict "isolation/$backend" $? "ratio=${ratio:-?} (healthy destinations' rate with one down / all up >= 0.90)"
done

line=$(figure kill9_flaky)
d=$(field "$line" delivered)
all_delivered "$d"
verdict kill9_flaky $? "delivered=${d:-?} (nothing lost; accepted-once checked by the test)"

echo
echo "== correctness (cargo test) =="
grep -E '^test result:' "$log" || true
# The second "failures:" block lists the failed tests' names.
failures=$(awk '/^failures:$/ { n++ } n == 2 && /^    [a-z0-9_:]+$/ { print $1 }' "$log")
[[ -n $failures ]] && echo "failed: "$failures
if [[ $test_rc -ne 0 ]]; then
  echo "cargo test failed (exit $test_rc): a correctness check failed (not all delivered within the deadline, accepted twice, or receipt events wrong); see $log"
  failed=1
fi
exit $failed
