"""``mempolicy trace oracle|diff|record``: traces on a real Linux kernel."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from mempolicy.fsutil import atomic_write
from mempolicy.oracle import run_traces
from mempolicy.oracle.errors import OracleError
from mempolicy.oracle.kernels import DEFAULT_KERNEL, KERNEL_SUITES, get_kernel


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"mempolicy trace {prog}", description=description)
    p.add_argument("--kernel", default=DEFAULT_KERNEL, choices=sorted(KERNEL_SUITES),
                   help=f"Linux version to boot (default {DEFAULT_KERNEL})")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="report fetches and boots on standard error")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="boots to run at once (default: one per core, at most 4)")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="fetch the kernel even when apt cannot verify the archive's signature")
    p.add_argument("--keep", metavar="DIR", type=Path,
                   help="keep each boot's serial logs in DIR")
    p.add_argument("files", nargs="+", metavar="FILE", help="trace files")
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


def _oracle(args, items: list[tuple[str, str]]) -> list[str]:
    return run_traces(items, args.kernel, log=_log(args.verbose), keep=args.keep, jobs=args.jobs,
                      allow_unsigned=args.allow_unsigned)


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
        print(_record_one(path, out, args.kernel))
    return 0


def _diff_cmd(argv: list[str]) -> int:
    args = _parser("diff", "Run traces on the model and on a real Linux kernel and "
                   "print a unified diff for each trace that differs.").parse_args(argv)
    items = _read(args.files)
    try:
        from mempolicy.trace.run import run_trace_text
    except ImportError as e:
        raise OracleError(f"the model runner is not available: {e}") from None
    model = []
    for text, path in items:
        try:
            model.append(run_trace_text(text, path, kernel=args.kernel))
        except Exception as e:  # noqa: BLE001 - a model crash is a difference to show
            from mempolicy.trace.parser import TraceError
            if isinstance(e, TraceError):
                raise
            model.append(f"(the model failed: {type(e).__name__}: {e})\n")
    kernel = _oracle(args, items)
    label = f"Linux {get_kernel(args.kernel, allow_unsigned=args.allow_unsigned).release}"
    differ = 0
    for (_, path), k, m in zip(items, kernel, model):
        if k == m:
            print(f"{path}: same as {label}")
            continue
        differ += 1
        sys.stdout.writelines(difflib.unified_diff(
            k.splitlines(keepends=True), m.splitlines(keepends=True),
            fromfile=f"{path} ({label})", tofile=f"{path} (model)"))
    print(f"{differ} of {len(items)} trace(s) differ from {label}", file=sys.stderr)
    return 1 if differ else 0


def main_oracle(argv: list[str]) -> int:
    """``mempolicy trace oracle [--kernel V] FILE...``."""
    return _guard(_oracle_cmd, argv)


def main_diff(argv: list[str]) -> int:
    """``mempolicy trace diff [--kernel V] FILE...``; status 1 when any trace differs."""
    return _guard(_diff_cmd, argv)


def main_record(argv: list[str]) -> int:
    """``mempolicy trace record [--kernel V] FILE...``: writes FILE.expected."""
    return _guard(_record_cmd, argv)


if __name__ == "__main__":  # python -m mempolicy.oracle.cli oracle|diff|record FILE...
    cmds = {"oracle": main_oracle, "diff": main_diff, "record": main_record}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print("usage: python -m mempolicy.oracle.cli oracle|diff|record FILE...", file=sys.stderr)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
