"""Linux kernels from Debian packages, fetched with apt-get and cached.

The mirror is the one the machine's own apt configuration uses for the
Debian archive; the project names no host.  Everything apt writes goes to a
private directory under the cache (``$XDG_CACHE_HOME/mempolicy``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mempolicy.oracle.errors import OracleError

# --kernel VERSION -> the Debian suite that carries it
KERNEL_SUITES = {
    "7.3": "trixie-backports",
    "6.12": "trixie",
    "6.1": "bookworm",
}
DEFAULT_KERNEL = "7.3"

# Package name prefixes, most preferred first (the unsigned image is enough
# for QEMU; "linux-binary-*" holds only the image, "linux-image-*" may also
# hold the modules).
_PREFIXES = ("linux-binary-unsigned-", "linux-binary-", "linux-image-")

_DEBIAN_SUITES = {
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "stable", "testing", "unstable", "oldstable", "oldoldstable",
}
_SUITE_SUFFIXES = ("-updates", "-backports", "-proposed-updates", "-backports-sloppy")


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mempolicy`` (default ``~/.cache/mempolicy``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mempolicy"


# ---- the mirror ------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry of the apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def _one_line_sources(text: str) -> list[AptSource]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        opts: dict[str, str] = {}
        m = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+(.*)$", line)
        if m:
            kind, optstr, rest = m.groups()
            for item in optstr.split():
                k, _, v = item.partition("=")
                opts[k.lower()] = v
        else:
            kind, _, rest = line.partition(" ")
        words = rest.split()
        if kind != "deb" or len(words) < 2:
            continue
        out.append(AptSource(words[0], (words[1],), tuple(words[2:]), opts.get("signed-by")))
    return out


def _deb822_sources(text: str) -> list[AptSource]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
                continue
            k, sep, v = line.partition(":")
            if not sep:
                continue
            key = k.strip().lower()
            fields[key] = v.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        signed = fields.get("signed-by", "").strip() or None
        if signed and "\n" in signed:  # an inline key block: let apt use its defaults
            signed = None
        comps = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            out.append(AptSource(uri, tuple(fields.get("suites", "").split()), comps, signed))
    return out


def apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every enabled ``deb`` entry of an apt configuration directory."""
    out: list[AptSource] = []
    main = etc / "sources.list"
    if main.is_file():
        out += _one_line_sources(main.read_text(errors="replace"))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            if f.suffix == ".list":
                out += _one_line_sources(f.read_text(errors="replace"))
            elif f.suffix == ".sources":
                out += _deb822_sources(f.read_text(errors="replace"))
    return out


def _is_debian_suite(suite: str) -> bool:
    base = suite
    for suf in _SUITE_SUFFIXES:
        if base.endswith(suf):
            base = base[: -len(suf)]
            break
    return base in _DEBIAN_SUITES


def debian_mirror(etc: Path = Path("/etc/apt")) -> AptSource:
    """The entry the system uses for the Debian main archive.

    ``MEMPOLICY_DEBIAN_MIRROR`` overrides it (a URI such as the one in
    ``/etc/apt/sources.list``).
    """
    env = os.environ.get("MEMPOLICY_DEBIAN_MIRROR")
    if env:
        return AptSource(env.rstrip("/"), (), ("main",))
    candidates = [
        s
        for s in apt_sources(etc)
        if "main" in s.components
        and not s.uri.startswith("cdrom:")
        and any(_is_debian_suite(x) for x in s.suites)
    ]
    if not candidates:
        raise OracleError(
            f"no Debian archive found in the apt configuration under {etc}; "
            "set MEMPOLICY_DEBIAN_MIRROR to a Debian mirror URI"
        )
    # Prefer an entry that carries a plain release suite (not -updates).
    candidates.sort(key=lambda s: not any(x in _DEBIAN_SUITES for x in s.suites))
    best = candidates[0]
    return AptSource(best.uri.rstrip("/"), best.suites, best.components, best.signed_by)


# ---- apt ------------------------------------------------------------------


class _Apt:
    """apt-get / apt-cache with a private sources list, lists and cache."""

    def __init__(self, root: Path, source: AptSource, suite: str, trusted: bool) -> None:
        self.root = root
        for d in ("lists/partial", "cache/archives/partial"):
            (root / d).mkdir(parents=True, exist_ok=True)
        opt = "trusted=yes" if trusted else (f"signed-by={source.signed_by}" if source.signed_by else "")
        bracket = f"[{opt}] " if opt else ""
        self.sources = root / "sources.list"
        self.sources.write_text(f"deb {bracket}{source.uri} {suite} main\n")
        self.opts = [
            "-o", f"Dir::Etc::SourceList={self.sources}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "APT::Architecture=amd64",
            "-o", "APT::Sandbox::User=root",
        ]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        if shutil.which(tool) is None:
            raise OracleError(f"{tool} not found: the oracle fetches kernels with Debian's apt")
        return subprocess.run(
            [tool, *self.opts, *args], cwd=cwd, capture_output=True, text=True
        )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def pick_package(names: list[str], version: str) -> str | None:
    """The newest generic amd64 kernel package for VERSION among NAMES."""
    for prefix in _PREFIXES:
        pat = re.compile(rf"^{re.escape(prefix + version)}[.\-+][0-9A-Za-z.+~\-]*-amd64(-unsigned)?$")
        found = [
            n for n in names
            if pat.match(n)
            and not (prefix == "linux-binary-" and n.startswith("linux-binary-unsigned-"))
            and "-cloud-" not in n and "-rt-" not in n
        ]
        if found:
            return max(found, key=lambda n: (_version_key(n[len(prefix):]), n.endswith("-unsigned")))
    return None


@dataclass(frozen=True)
class Kernel:
    """A cached kernel image."""

    version: str        # what --kernel asked for, e.g. "7.3"
    package: str        # Debian package it came from
    release: str        # uname -r, e.g. "7.3.4+deb13-amd64"
    vmlinuz: Path


def _extract_vmlinuz(deb: Path, dest: Path) -> str:
    """Copy the kernel image out of DEB into DEST; return its release name."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    release = None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for m in tar:
                base = m.name.rsplit("/", 1)[-1]
                if not m.isfile() or not base.startswith("vmlinuz"):
                    continue
                parts = m.name.split("/")
                if "modules" in parts:  # usr/lib/modules/RELEASE/vmlinuz*
                    release = parts[parts.index("modules") + 1]
                else:  # boot/vmlinuz-RELEASE
                    release = base[len("vmlinuz-"):]
                src = tar.extractfile(m)
                assert src is not None
                with open(dest, "wb") as f:
                    shutil.copyfileobj(src, f)
    finally:
        if proc.stdout:
            proc.stdout.close()
        proc.wait()
    if release is None:
        raise OracleError(f"{deb.name} holds no vmlinuz")
    return release


def get_kernel(version: str = DEFAULT_KERNEL, *, log=None) -> Kernel:
    """The kernel for ``--kernel VERSION``, fetched and cached on first use."""
    if version not in KERNEL_SUITES:
        raise OracleError(f"unknown kernel {version!r} (choose from {', '.join(KERNEL_SUITES)})")
    kdir = cache_dir() / "kernels" / version
    info = kdir / "kernel.json"
    if info.is_file() and (kdir / "vmlinuz").is_file():
        d = json.loads(info.read_text())
        return Kernel(version, d["package"], d["release"], kdir / "vmlinuz")

    suite = KERNEL_SUITES[version]
    source = debian_mirror()
    if log:
        log(f"fetching Linux {version} from {source.uri} ({suite})")
    apt = _Apt(cache_dir() / "apt" / suite, source, suite, trusted=False)
    r = apt.run("apt-get", "update")
    if r.returncode != 0 and re.search(r"NO_PUBKEY|not signed|signatures|Signed-By", r.stderr):
        print(f"mempolicy: warning: cannot verify {suite} with the system keyring; "
              "fetching it unverified", file=sys.stderr)
        apt = _Apt(cache_dir() / "apt" / suite, source, suite, trusted=True)
        r = apt.run("apt-get", "update")
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith(("E:", "Err:"))]
    if r.returncode != 0 or errs:
        last = (errs or r.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
        raise OracleError(f"cannot read the Debian mirror {source.uri} ({suite}): {last}")
    r = apt.run("apt-cache", "pkgnames", "linux-")
    pkg = pick_package(r.stdout.split(), version)
    if pkg is None:
        raise OracleError(f"no Linux {version} amd64 kernel package in {suite} at {source.uri}")
    with tempfile.TemporaryDirectory(prefix="mempolicy-deb-") as tmp:
        r = apt.run("apt-get", "download", pkg, cwd=Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or not debs:
            last = (r.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
            raise OracleError(f"cannot download {pkg}: {last}")
        kdir.mkdir(parents=True, exist_ok=True)
        part = kdir / "vmlinuz.part"
        release = _extract_vmlinuz(debs[0], part)
        part.replace(kdir / "vmlinuz")
    info.write_text(json.dumps({"package": pkg, "release": release}) + "\n")
    return Kernel(version, pkg, release, kdir / "vmlinuz")
