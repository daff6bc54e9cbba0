"""A campaign's kernel outputs in one portable file, to resume on another machine.

A campaign's traces come back from their seeds, but the kernel's outputs
cost minutes of QEMU each batch.  ``--archive FILE`` keeps them in one
gzip-compressed JSON-lines file that can be committed, copied to a cluster
or mailed: the first line names the kernel, each other line is one trace::

    {"archive": "mempolicy campaign", "kernel": "7.3", "vmlinuz": null}
    {"name": "fill-700032", "sha": "9f2c...", "kernel": "7 set_mempolicy: ok\\n...", "kernel_s": 1.28}

``sha`` is the start of the SHA-256 of the trace's text: an output is used
again only for the same text (a changed generator makes new traces).  A run
with ``--archive`` first turns every matching line into a stored result
(``unjudged``, so it is judged against the model of that day, booting only
for the reruns and shrinking of what diverges), then writes every kernel
output the campaign holds back into the file, sorted by name, so the file
grows run by run and its bytes depend only on its contents.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

MAGIC = "mempolicy campaign"


class ArchiveError(ValueError):
    """FILE:LINE: what is wrong with an archive."""


def text_sha(text: str) -> str:
    """The 16 hex digits an archive line names a trace's text by."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_archive(path: Path, kernel: str, vmlinuz: str | None = None) -> dict[str, dict]:
    """Name -> line of the archive PATH (empty when it does not exist yet).

    Raises :class:`ArchiveError` for a file that is not an archive, a damaged
    line, or an archive of another kernel than KERNEL / VMLINUZ.
    """
    if not path.exists():
        return {}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ArchiveError(f"{path}: not a campaign archive ({e})") from None
    rows: dict[str, dict] = {}
    for no, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            raise ArchiveError(f"{path}:{no}: not a JSON line") from None
        if no == 1:
            if not isinstance(row, dict) or row.get("archive") != MAGIC:
                raise ArchiveError(f"{path}:1: not a campaign archive (no header line)")
            if row.get("kernel") != kernel or row.get("vmlinuz") != vmlinuz:
                what = row.get("vmlinuz") or f"Linux {row.get('kernel')}"
                raise ArchiveError(f"{path}:1: holds the outputs of {what}, not of "
                                   f"{vmlinuz or 'Linux ' + kernel}: give another --archive")
            continue
        if (not isinstance(row, dict) or not isinstance(row.get("name"), str)
                or not isinstance(row.get("sha"), str) or not isinstance(row.get("kernel"), str)):
            raise ArchiveError(f"{path}:{no}: a line needs \"name\", \"sha\" and \"kernel\" strings")
        rows[row["name"]] = row
    return rows


def import_archive(rows: dict[str, dict], out: Path) -> int:
    """Write each archived output whose trace text in OUT/traces matches as an unjudged
    result, where OUT has no result for it yet; how many were written."""
    n = 0
    for tpath in sorted((out / "traces").glob("*.trace")):
        name = tpath.stem
        row = rows.get(name)
        rpath = out / "results" / f"{name}.json"
        if row is None or rpath.exists() or row["sha"] != text_sha(tpath.read_text()):
            continue
        mode, _, seed = name.rpartition("-")
        result = {"name": name, "mode": mode, "seed": int(seed) if seed.isdigit() else seed,
                  "kernel": row["kernel"], "kernel_s": float(row.get("kernel_s", 0.0)),
                  "status": "unjudged"}
        tmp = rpath.with_suffix(".tmp")
        tmp.write_text(json.dumps(result) + "\n")
        tmp.replace(rpath)
        n += 1
    return n


def write_archive(path: Path, rows: dict[str, dict], results: list[dict], texts: dict[str, str],
                  kernel: str, vmlinuz: str | None = None) -> int:
    """ROWS updated with every result that has a kernel output, written to PATH whole
    (then renamed); how many lines it holds."""
    merged = dict(rows)
    for r in results:
        if r.get("status") == "error" or not isinstance(r.get("kernel"), str):
            continue
        text = texts.get(r["name"])
        if not text:
            continue
        old = merged.get(r["name"], {})
        row = {"name": r["name"], "sha": text_sha(text), "kernel": r["kernel"],
               "kernel_s": round(float(r.get("kernel_s") or old.get("kernel_s", 0.0)), 3)}
        merged[r["name"]] = row
    header = {"archive": MAGIC, "kernel": kernel, "vmlinuz": vmlinuz}
    body = "\n".join(json.dumps(x, sort_keys=True) for x in
                     [header] + [merged[k] for k in sorted(merged)]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(body.encode())
    tmp.replace(path)
    return len(merged)


def describe(path: Path) -> str:
    """One line: PATH, its kernel and how many outputs of each mode it holds."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            first = f.readline()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ArchiveError(f"{path}: not a campaign archive ({e})") from None
    try:
        header = json.loads(first)
        kernel, vmlinuz = header["kernel"], header.get("vmlinuz")
    except (ValueError, KeyError, TypeError):
        raise ArchiveError(f"{path}:1: not a campaign archive (no header line)") from None
    rows = read_archive(path, kernel, vmlinuz)
    modes: dict[str, int] = {}
    for name in rows:
        mode = name.rpartition("-")[0]
        modes[mode] = modes.get(mode, 0) + 1
    per = ", ".join(f"{m} {n}" for m, n in sorted(modes.items()))
    return f"{path}: {vmlinuz or 'Linux ' + kernel}, {len(rows)} traces ({per})"


def main(argv: list[str]) -> int:
    """``mempolicy trace archive FILE...``: what each archive holds; 2 if one is not
    an archive (a message on stderr)."""
    import sys

    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mempolicy trace archive FILE...  (what each campaign archive holds)")
        return 0 if argv else 2
    status = 0
    for arg in argv:
        try:
            print(describe(Path(arg)))
        except (OSError, ArchiveError) as e:
            print(f"mempolicy trace archive: {e}", file=sys.stderr)
            status = 2
    return status
