"""``mempolicy trace oracle|diff|record``: traces on a real Linux kernel."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from mempolicy.fsutil import atomic_write
from mempolicy.oracle import run_traces
from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.kernels import DEFAULT_KERNEL, KERNEL_SUITES, get_kernel, kernel_from_path


class _Parser(argparse.ArgumentParser):
    """argparse with its complaints on one line (and status 2)."""

    def error(self, message: str):
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser(prog: str, description: str, files: str = "+",
            several: bool = False) -> argparse.ArgumentParser:
    """The options every oracle command takes; SEVERAL: --kernel takes a list
    and --vmlinuz may be repeated (``trace versions``)."""
    p = _Parser(prog=f"mempolicy trace {prog}", description=description)
    if several:
        p.add_argument("--kernel", metavar="LIST", help="kernels, joined by commas (default "
                       f"{','.join(sorted(KERNEL_SUITES, key=_version_key))})")
        p.add_argument("--vmlinuz", metavar="PATH", action="append", default=[],
                       help="also boot this bzImage, in a column of its own (repeatable)")
    else:
        p.add_argument("--kernel", choices=sorted(KERNEL_SUITES),
                       help=f"Linux version to boot (default {DEFAULT_KERNEL})")
        p.add_argument("--vmlinuz", metavar="PATH",
                       help="boot this bzImage (a kernel you built) instead of a Debian one")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="report fetches and boots on standard error")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="boots to run at once (default: one per core, at most 4)")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="fetch the kernel even when apt cannot verify the archive's signature")
    p.add_argument("--keep", metavar="DIR", type=Path,
                   help="keep each boot's serial logs in DIR")
    p.add_argument("files", nargs=files, metavar="FILE", help="trace files")
    return p


def _log(verbose: bool):
    return (lambda msg: print(f"mempolicy: {msg}", file=sys.stderr)) if verbose else None


def _read(files: list[str]) -> list[tuple[str, str]]:
    items = []
    for f in files:
        try:
            items.append((Path(f).read_text(encoding="utf-8"), f))
        except (OSError, UnicodeDecodeError) as e:
            raise OracleError(f"cannot read {f}: {getattr(e, 'strerror', None) or e}") from None
    return items


def _oracle(args, items: list[tuple[str, str]], kernel: str | None = None,
            vmlinuz: str | None = None, keep: str = "") -> list[str]:
    """The outputs of ITEMS on --kernel/--vmlinuz (or on KERNEL/VMLINUZ when given)."""
    if kernel is None and vmlinuz is None:
        kernel, vmlinuz = args.kernel or DEFAULT_KERNEL, args.vmlinuz
    return run_traces(items, kernel or DEFAULT_KERNEL, log=_log(args.verbose),
                      keep=args.keep / keep if args.keep and keep else args.keep,
                      jobs=args.jobs, allow_unsigned=args.allow_unsigned, vmlinuz=vmlinuz)


def _label(args, kernel: str | None, vmlinuz: str | None) -> str:
    """``Linux 6.12.117+deb13-amd64`` or ``PATH (release)`` for a bzImage."""
    if vmlinuz is not None:
        k = kernel_from_path(vmlinuz)
        return f"{vmlinuz} ({k.release})"
    return f"Linux {get_kernel(kernel or DEFAULT_KERNEL, allow_unsigned=args.allow_unsigned).release}"


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: QEMU killed, temporary files removed."""


def _terminate(signum, frame):
    raise Terminated


def _guard(fn, argv) -> int:
    """Run FN(argv); user errors become one line on stderr and status 2.

    Ctrl-C gives status 130 and SIGTERM 143, after the same clean-up.
    """
    import signal
    import threading

    from mempolicy.trace.parser import TraceError

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _terminate)
    try:
        return fn(argv)
    except (OracleError, TraceError) as e:
        print(f"mempolicy: {e}" if isinstance(e, OracleError) else str(e), file=sys.stderr)
        return 2
    except Terminated:
        print("mempolicy: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("mempolicy: interrupted", file=sys.stderr)
        return 130
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def expected_path(trace: str, kernel: str = DEFAULT_KERNEL) -> Path:
    """Where the output of Linux ``kernel`` is kept: ``foo.trace`` -> ``foo.expected``
    for the default kernel, ``foo.6.12.expected`` for 6.12 (other names get the
    suffix appended)."""
    p = Path(trace)
    stem = p.stem if p.suffix == ".trace" else p.name
    tag = "" if kernel == DEFAULT_KERNEL else f".{kernel}"
    return p.with_name(f"{stem}{tag}.expected")


def recorded_path(trace: str, kernel: str = DEFAULT_KERNEL) -> Path:
    """The file holding what Linux ``kernel`` prints for ``trace``: its version file
    if there is one, else ``foo.expected`` (the trace behaves there as on the
    default kernel)."""
    own = expected_path(trace, kernel)
    return own if own.exists() else expected_path(trace)


def _record_one(path: str, out: str, kernel: str) -> str:
    """Write ``out`` as the recorded output of ``path`` on ``kernel``; say what was done.

    Another kernel than the default gets a version file only when its output
    differs from ``foo.expected``; a stale version file is removed."""
    dest = expected_path(path, kernel)
    try:
        if kernel != DEFAULT_KERNEL:
            base = expected_path(path)
            if base.exists() and base.read_text(encoding="utf-8") == out:
                if dest.exists():
                    dest.unlink()
                    return f"{dest}: removed (same as {base})"
                return f"{base}: same on {kernel}"
        atomic_write(dest, out)
    except (OSError, UnicodeDecodeError) as e:
        raise OracleError(f"cannot write {dest}: {getattr(e, 'strerror', None) or e}") from None
    return str(dest)


def _oracle_cmd(argv: list[str]) -> int:
    args = _parser("oracle", "Run traces on a real Linux kernel under QEMU and print "
                   "its canonical output.").parse_args(argv)
    items = _read(args.files)
    outs = _oracle(args, items)
    for n, ((_, path), out) in enumerate(zip(items, outs)):
        if len(items) > 1:
            sys.stdout.write(("\n" if n else "") + f"==> {path} <==\n")
        sys.stdout.write(out)
    return 0


def _record_cmd(argv: list[str]) -> int:
    args = _parser("record", "Run traces on a real Linux kernel and write each "
                   "one's output to FILE.expected (foo.trace -> foo.expected); with "
                   "--kernel V other than the default, to foo.V.expected, only where it "
                   "differs from foo.expected (a stale one is removed).").parse_args(argv)
    items = _read(args.files)
    outs = _oracle(args, items)
    for (_, path), out in zip(items, outs):
        print(_record_one(path, out, args.kernel or DEFAULT_KERNEL))
    return 0


def _model_outputs(items: list[tuple[str, str]], version: str) -> list[str]:
    """The model's output of each trace as Linux VERSION behaves (a crash is an output)."""
    from mempolicy.oracle.versions import model_column

    return model_column(version, "; compare two kernels with --against").run(items)


def _diff_parser() -> argparse.ArgumentParser:
    p = _parser("diff", "Without --against: run traces on the model and on a real Linux "
                "kernel and print a unified diff for each trace that differs. With --against "
                "(or --against-vmlinuz): run them on two kernels and report every trace whose "
                "output changes, shrunk to a minimal trace.", files="*")
    p.add_argument("--against", metavar="VERSION", choices=sorted(KERNEL_SUITES),
                   help="the second kernel: a Linux version")
    p.add_argument("--against-vmlinuz", metavar="PATH",
                   help="the second kernel: a bzImage (say, built after a patch)")
    p.add_argument("--campaign", type=int, metavar="N",
                   help="instead of FILEs, N generated traces (as trace campaign makes them)")
    p.add_argument("--seed", type=int, default=0, help="first seed of --campaign (default 0)")
    p.add_argument("--mode", default="all",
                   help="generators of --campaign, joined by commas (default all)")
    p.add_argument("--no-shrink", action="store_true", help="report changed traces whole")
    return p


def _campaign_items(args) -> list[tuple[str, str]]:
    from mempolicy.trace.fuzz import generate, parse_modes, plan, trace_name

    if args.campaign < 1 or args.seed < 0:
        raise OracleError("--campaign must be positive and --seed not negative")
    try:
        modes = parse_modes(args.mode)
    except ValueError as e:
        raise OracleError(str(e)) from None
    return [(generate(s, m), f"{trace_name(s, m)}.trace") for s, m in plan(args.seed, args.campaign, modes)]


def _diff_cmd(argv: list[str]) -> int:
    args = _diff_parser().parse_args(argv)
    if args.campaign is not None and args.files:
        raise OracleError("give trace files or --campaign N, not both")
    if args.campaign is None and not args.files:
        raise OracleError("no trace files (or --campaign N)")
    if args.against and args.against_vmlinuz:
        raise OracleError("--against and --against-vmlinuz both name the second kernel: give one")
    items = _campaign_items(args) if args.campaign is not None else _read(args.files)
    from mempolicy.trace.parser import parse_trace

    for text, path in items:      # every trace valid before anything boots
        parse_trace(text, path)
    against = args.against is not None or args.against_vmlinuz is not None
    if against or args.campaign is not None:
        return _semantic_diff(args, items, against)
    version = args.kernel or (kernel_from_path(args.vmlinuz).version if args.vmlinuz else DEFAULT_KERNEL)
    model = _model_outputs(items, version)
    kernel = _oracle(args, items)
    label = _label(args, args.kernel, args.vmlinuz)
    differ = 0
    for (_, path), k, m in zip(items, kernel, model):
        if k == m:
            print(f"{path}: same as {label}")
            continue
        differ += 1
        sys.stdout.writelines(difflib.unified_diff(
            k.splitlines(keepends=True), m.splitlines(keepends=True),
            fromfile=f"{path} ({label})", tofile=f"{path} (model {version})"))
    print(f"{differ} of {len(items)} trace(s) differ from {label}", file=sys.stderr)
    return 1 if differ else 0


def _semantic_diff(args, items: list[tuple[str, str]], against: bool) -> int:
    """``trace diff --kernel A --against B``: every trace whose output changes, shrunk."""
    from mempolicy.oracle.semdiff import diff_kernels

    def runner(kernel, vmlinuz, keep):
        return lambda texts: _oracle(args, [(t, f"t{i}.trace") for i, t in enumerate(texts)],
                                     kernel, vmlinuz, keep)

    a_kernel = args.kernel or (None if args.vmlinuz else DEFAULT_KERNEL)
    run_a = runner(a_kernel, args.vmlinuz, "a")
    label_a = _label(args, a_kernel, args.vmlinuz)
    if against:
        run_b = runner(args.against, args.against_vmlinuz, "b")
        label_b = _label(args, args.against, args.against_vmlinuz)
    else:                         # --campaign alone: the model against the kernel
        version = args.kernel or (kernel_from_path(args.vmlinuz).version if args.vmlinuz
                                  else DEFAULT_KERNEL)
        label_b = f"the model of {version}"

        def run_b(texts: list[str]) -> list[str]:
            return _model_outputs([(t, "<trace>") for t in texts], version)
    changes = diff_kernels(items, run_a, run_b, shrink=not args.no_shrink)
    n_changed = n_nondet = 0
    for c in changes:
        if c.status == "same":
            print(f"{c.path}: same on both")
            continue
        if c.status == "nondeterministic":
            n_nondet += 1
            print(f"{c.path}: nondeterministic on "
                  f"{label_a if len(set(c.runs_a)) > 1 else label_b}, set aside")
            continue
        n_changed += 1
        line, cmd = c.first or (0, "?")
        before = len(_commands(c.text))
        after = len(_commands(c.minimized))
        print(f"==> {c.path}: changed at line {line} ({cmd}); "
              f"minimal trace of {after} command(s), from {before} <==")
        sys.stdout.write(c.minimized)
        sys.stdout.writelines(difflib.unified_diff(
            c.min_a.splitlines(keepends=True), c.min_b.splitlines(keepends=True),
            fromfile=label_a, tofile=label_b, n=1 << 20))
    print(f"{n_changed} of {len(changes)} trace(s) changed between {label_a} and {label_b}"
          + (f"; {n_nondet} nondeterministic, set aside" if n_nondet else ""))
    return 1 if n_changed else 0


def _commands(text: str) -> list[str]:
    from mempolicy.campaign.shrink import split_trace

    return split_trace(text)[1]


def _versions_cmd(argv: list[str]) -> int:
    from mempolicy.oracle import versions as ver

    p = _parser("versions", "Print each trace's output on several kernels side by side "
                "(the model's by default, the real kernels' with --oracle), mark the lines "
                "that differ, and end with a table of which traces differ where.", several=True)
    p.add_argument("--oracle", action="store_true",
                   help="run the real kernels under QEMU instead of the model")
    args = p.parse_args(argv)
    versions = (args.kernel.split(",") if args.kernel
                else sorted(KERNEL_SUITES, key=_version_key))
    for v in versions:
        if v not in KERNEL_SUITES:
            raise OracleError(f"--kernel: unknown kernel {v!r} (choose from "
                              f"{', '.join(KERNEL_SUITES)})")
    vmlinuz = list(args.vmlinuz)
    items = _read(args.files)
    from mempolicy.trace.parser import parse_trace

    for text, path in items:
        parse_trace(text, path)
    for path in vmlinuz:
        kernel_from_path(path)
    columns = []
    if args.oracle:
        for v in versions:
            columns.append(ver.Column(f"Linux {v}", lambda it, v=v: _oracle(args, it, v, None, v)))
    else:
        columns += [ver.model_column(v, "; pass --oracle to run the real kernels") for v in versions]
    for n, path in enumerate(vmlinuz):
        release = kernel_from_path(path).release
        columns.append(ver.Column(release, lambda it, path=path, n=n:
                                  _oracle(args, it, None, path, f"vmlinuz{n}")))
    outs = ver.compare(items, columns)
    ver.report(items, columns, outs, sys.stdout.write)
    return 0


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def main_oracle(argv: list[str]) -> int:
    """``mempolicy trace oracle [--kernel V] FILE...``."""
    return _guard(_oracle_cmd, argv)


def main_diff(argv: list[str]) -> int:
    """``mempolicy trace diff [--kernel V] [--against W] FILE...``; status 1 when any trace differs."""
    return _guard(_diff_cmd, argv)


def main_versions(argv: list[str]) -> int:
    """``mempolicy trace versions [--oracle] [--kernel LIST] FILE...``."""
    return _guard(_versions_cmd, argv)


def main_record(argv: list[str]) -> int:
    """``mempolicy trace record [--kernel V] FILE...``: writes FILE.expected."""
    return _guard(_record_cmd, argv)


if __name__ == "__main__":  # python -m mempolicy.oracle.cli oracle|diff|record FILE...
    cmds = {"oracle": main_oracle, "diff": main_diff, "record": main_record,
            "versions": main_versions}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print("usage: python -m mempolicy.oracle.cli oracle|diff|record FILE...", file=sys.stderr)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
