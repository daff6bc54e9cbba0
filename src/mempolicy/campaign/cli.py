"""``mempolicy trace campaign``: generate, run on model and kernel, shrink, report."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mempolicy.campaign.work import ORACLES


def _parser() -> argparse.ArgumentParser:
    from mempolicy.oracle.kernels import DEFAULT_KERNEL, KERNEL_SUITES
    from mempolicy.trace.fuzz import FUZZ_MODES

    p = argparse.ArgumentParser(
        prog="mempolicy trace campaign",
        description="Generate traces, run each on the model and on a real kernel, set "
                    "nondeterministic ones aside, shrink every divergence and write a report "
                    "to OUT/report. Stoppable with Ctrl-C; the same command again resumes.")
    p.add_argument("--kernel", choices=sorted(KERNEL_SUITES),
                   help=f"Linux version to boot (default {DEFAULT_KERNEL}); with --vmlinuz, "
                        "the version of the model to judge it against (default: from its release)")
    p.add_argument("--vmlinuz", metavar="PATH",
                   help="boot this bzImage (a kernel you built) instead of a Debian one")
    p.add_argument("--count", type=int, default=48, help="how many traces (default 48)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--mode", default="all",
                   help=f"generators taken in turn, joined by commas: {', '.join(FUZZ_MODES)}, "
                        "or all (every directed mode; the default), envelope (threads, cpusets, "
                        "weights, thp); migrate-full (migration into a full node) is in no group")
    p.add_argument("--out", default="campaign", type=Path, help="output directory (default ./campaign)")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="local worker processes, one boot each (default: one per core)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask distributed cluster of this scheduler (tcp://host:8786)")
    p.add_argument("--oracle", default="qemu", choices=ORACLES,
                   help="qemu (the real kernel; default) or planted (the model with two planted "
                        "differences, to try the campaign without QEMU)")
    p.add_argument("--kernel-only", action="store_true",
                   help="only run the kernel and keep its outputs; a later run without this "
                        "flag compares them with the model")
    p.add_argument("--rejudge", action="store_true",
                   help="compare every stored kernel output with the current model again "
                        "(after a model change); boots only for the traces that now diverge")
    p.add_argument("--archive", metavar="FILE", type=Path,
                   help="a gzip file of kernel outputs: outputs it holds for these traces are "
                        "judged without booting, and every kernel output of the run is written "
                        "back to it (to resume a campaign on another machine)")
    return p


def main(argv: list[str]) -> int:
    """``mempolicy trace campaign [...]``; status 1 when a divergence was found."""
    from mempolicy.campaign.archive import ArchiveError
    from mempolicy.campaign.run import run_campaign
    from mempolicy.oracle.errors import OracleError
    from mempolicy.trace.fuzz import parse_modes

    args = _parser().parse_args(argv)
    prog = "mempolicy trace campaign"
    try:
        modes = parse_modes(args.mode)
    except ValueError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if args.count < 1 or args.seed < 0 or (args.jobs is not None and args.jobs < 1):
        print(f"{prog}: --count and --jobs must be positive, --seed not negative", file=sys.stderr)
        return 2
    from mempolicy.oracle.kernels import DEFAULT_KERNEL, get_kernel, kernel_from_path

    vmlinuz = None
    if args.vmlinuz is not None:
        if args.oracle != "qemu":
            print(f"{prog}: --vmlinuz needs --oracle qemu", file=sys.stderr)
            return 2
        try:
            k = kernel_from_path(args.vmlinuz)
        except OracleError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 2
        vmlinuz = str(k.vmlinuz)      # absolute: workers may run elsewhere
        args.kernel = args.kernel or k.version
    args.kernel = args.kernel or DEFAULT_KERNEL
    if args.oracle == "qemu" and not args.scheduler:
        from mempolicy.oracle.qemu import preflight
        from mempolicy.trace.parser import parse_trace

        try:
            preflight([parse_trace("node 0 mem=512M cpus=1\n", "<campaign>").machine])
            if vmlinuz is None:
                get_kernel(args.kernel)
        except OracleError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 2
    from mempolicy.campaign.run import stoppable

    handlers = stoppable()
    try:
        s = run_campaign(args.out, args.seed, args.count, modes, args.kernel, args.oracle,
                         args.jobs, args.scheduler, kernel_only=args.kernel_only,
                         rejudge=args.rejudge, vmlinuz=vmlinuz, archive=args.archive)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished traces are kept in {args.out}/results, "
              "the same command goes on from there", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ArchiveError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    finally:
        for sig, h in handlers:
            signal.signal(sig, h)
    t = s["total"]
    print(f"{s['traces']} traces: {t.get('same', 0)} same, {t.get('divergent', 0)} divergent "
          f"in {len(s['groups'])} group(s), {t.get('nondeterministic', 0)} nondeterministic, "
          f"{t.get('error', 0)} failed boots"
          + (f", {t['unjudged']} unjudged" if t.get("unjudged") else "") + f"; report in {args.out / 'report' / 'summary.md'}")
    return 1 if t.get("divergent") else 0
