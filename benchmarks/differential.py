"""The host differential at scale: N random raw calls on the host kernel and on the model.

    python3 benchmarks/differential.py [--calls N] [--seed S]

Draws sequences of raw memory-policy calls with the strategies of
tests/test_linux_differential.py, sends each call to this process's kernel
and to a model process configured as the host (its topology from sysfs, its
credentials from /proc/self/status), and prints who ran it, the number of
calls compared and the divergences.  A sequence stops at its first
divergence.  Run it as root and as an ordinary user, e.g.

    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \\
        python3 benchmarks/differential.py

Exit status: 0 without divergence, 1 with some, 2 when the host cannot run it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.join(HERE, "..", "src"), os.path.join(HERE, "..", "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

# Older hypothesis releases (Debian 12's python3-hypothesis, used for the run as nobody)
# print a strategy's arguments eagerly, and node masks of 2**1023 have more digits than
# Python's default limit for int-to-text conversion.
sys.set_int_max_str_digits(0)

SEQUENCE_MIN = 50          # the test's sequences hold 50 to 60 calls
SHOWN = 5                  # divergences printed in full


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=100_000, help="calls to compare (default 100000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first batch of sequences")
    args = ap.parse_args(argv)

    try:
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from hypothesis import strategies as st

        import test_linux_differential as diff
    except ImportError as e:
        print(f"differential: needs hypothesis and pytest ({e})", file=sys.stderr)
        return 2
    except BaseException as e:                          # pytest's Skipped
        print(f"differential: {e}", file=sys.stderr)
        return 2
    from mempolicy import linux
    from mempolicy.scopes.cred import CAP_SYS_NICE

    if not linux.available():
        print(f"differential: memory-policy calls unavailable: {linux.probe().reason}", file=sys.stderr)
        return 2
    if not diff._window_free():
        print("differential: the address window of the test is taken", file=sys.stderr)
        return 2

    cred = linux.read_cred()
    print(f"host: Linux {platform.release()}, {len(linux.node_ids())} node(s); "
          f"uid={cred.uid} euid={cred.euid} CAP_SYS_NICE={'yes' if cred.has_cap(CAP_SYS_NICE) else 'no'}")
    total = 0
    divergences: list[str] = []

    def batch(n_seq: int, s: int) -> None:
        @seed(s)
        @settings(max_examples=n_seq, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(diff.ops, min_size=SEQUENCE_MIN, max_size=60))
        def run(seq):
            nonlocal total
            if total >= args.calls:
                return
            n, divergence = diff.compare_sequence(seq)
            total += n
            if divergence is not None:
                divergences.append(divergence)
        run()

    s = args.seed
    while total < args.calls:
        batch(max(1, (args.calls - total) // SEQUENCE_MIN), s)
        s += 1
    print(f"calls: {total}")
    print(f"divergences: {len(divergences)}")
    for d in divergences[:SHOWN]:
        print("  " + d.replace("\n", "\n  "))
    return 1 if divergences else 0


if __name__ == "__main__":
    sys.exit(main())
