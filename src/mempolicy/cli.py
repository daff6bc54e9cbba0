"""mempolicy: the Linux NUMA memory-policy subsystem, modelled and checked against Linux.

    mempolicy trace run [--kernel V] FILE...    run traces on the model
    mempolicy trace oracle [--kernel V] FILE... run traces on real Linux under QEMU
    mempolicy trace diff [--kernel V] FILE...   model against kernel, per trace
    mempolicy trace diff --kernel A --against B [FILE...|--campaign N]
                                                the traces whose output changes from A to B
    mempolicy trace versions [--oracle] FILE... each trace on 6.1, 6.12 and 7.3, side by side
    mempolicy trace record FILE...              write FILE.expected from the kernel
    mempolicy trace fuzz [--seed S] [--count N] [--out DIR]   random valid traces
    mempolicy trace campaign [--count N] [--mode M] [--out DIR]   hunt model/kernel differences
    mempolicy trace archive FILE...                              what campaign archives hold
    mempolicy check [...]                       the refcount protocol under concurrency
    mempolicy numactl [...]                     numactl, on Linux or on the model (--sim)
    mempolicy numastat [...]                    numastat views
    mempolicy plot [...]                        where pages landed, as a PNG

User mistakes (a malformed trace, a missing file) print one line on stderr
and exit with status 2; there is never a traceback for them.
"""

from __future__ import annotations

import argparse
import sys

from mempolicy import __version__


def _trace_run(argv: list[str]) -> int:
    from mempolicy.trace.parser import TraceError, load_trace
    from mempolicy.core.version import DEFAULT_VERSION, VERSIONS
    from mempolicy.trace.run import run_trace

    p = argparse.ArgumentParser(prog="mempolicy trace run",
                                description="Run traces on the model kernel and print their canonical output.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--protocol", choices=("current", "2008"), default="current",
                   help="reference-counting protocol of the model (default: current)")
    p.add_argument("--kernel", choices=VERSIONS, default=DEFAULT_VERSION,
                   help=f"Linux version the model behaves as (default {DEFAULT_VERSION})")
    args = p.parse_args(argv)
    traces = []
    for f in args.files:                       # validate everything before running anything
        try:
            traces.append(load_trace(f))
        except TraceError as e:
            print(e, file=sys.stderr)
            return 2
        except OSError as e:
            print(f"{f}: {e.strerror}", file=sys.stderr)
            return 2
        except UnicodeDecodeError:
            print(f"{f}:1: not a text file", file=sys.stderr)
            return 2
    for i, t in enumerate(traces):
        if len(traces) > 1:
            print(("\n" if i else "") + f"==> {t.path} <==")
        sys.stdout.write("".join(line + "\n" for line in run_trace(t, args.protocol, kernel=args.kernel)))
    return 0


def _oracle(name: str, argv: list[str]) -> int:
    try:
        from mempolicy.oracle import cli as ocli
    except ImportError as e:                   # pragma: no cover - the oracle ships with the package
        print(f"mempolicy trace {name}: the oracle is not available ({e})", file=sys.stderr)
        return 2
    return getattr(ocli, "main_" + name)(argv)


def main(argv: list[str] | None = None) -> int:
    """The ``mempolicy`` command; output to a closed or full stdout is lost quietly, as numactl's."""
    from mempolicy.stdio import guard

    guard()
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        import os

        # stdout is gone: point it at /dev/null so the interpreter's final flush is silent
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    usage = __doc__.strip()
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if argv[0] == "--version":
        print(f"mempolicy {__version__}")
        return 0
    if argv[0] == "trace":
        if len(argv) < 2 or argv[1] in ("-h", "--help"):
            print(usage)
            return 0 if len(argv) >= 2 else 2
        sub, rest = argv[1], argv[2:]
        try:
            if sub == "run":
                return _trace_run(rest)
            if sub in ("oracle", "diff", "record", "versions"):
                return _oracle(sub, rest)
            if sub == "fuzz":
                from mempolicy.trace.fuzz import main as fuzz_main

                return fuzz_main(rest)
            if sub == "campaign":
                from mempolicy.campaign.cli import main as campaign_main

                return campaign_main(rest)
            if sub == "archive":
                from mempolicy.campaign.archive import main as archive_main

                return archive_main(rest)
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 0
        print(f"mempolicy trace: unknown subcommand {sub!r}", file=sys.stderr)
        return 2
    if argv[0] in COMMANDS:
        import importlib

        try:
            mod = importlib.import_module(COMMANDS[argv[0]])
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("mempolicy"):
                raise
            print(f"mempolicy {argv[0]}: not available in this version", file=sys.stderr)
            return 2
        try:
            return mod.main(argv[1:])
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 0
    print(f"mempolicy: unknown command {argv[0]!r}\n\n{usage}", file=sys.stderr)
    return 2


# Front ends living in their own modules: ``mempolicy NAME ARGS`` calls ``module.main(ARGS)``.
COMMANDS = {
    "check": "mempolicy.check.cli",
    "numactl": "mempolicy.frontends.numactl",
    "numastat": "mempolicy.frontends.numastat",
    "plot": "mempolicy.frontends.plot",
}


if __name__ == "__main__":
    sys.exit(main())
