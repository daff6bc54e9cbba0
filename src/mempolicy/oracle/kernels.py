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

from mempolicy.fsutil import atomic_path, atomic_write, locked
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


_SIGNATURE_TROUBLE = re.compile(
    r"NO_PUBKEY|EXPKEYSIG|BADSIG|not signed|signatures? (couldn't|could not|were invalid)|"
    r"GPG error|Signed-By|OpenPGP signature"
)


def _sandbox_uid() -> int | None:
    """The uid apt drops to for downloads, or None when it must stay root.

    apt downloads as the ``_apt`` user when it runs as root.  That user needs
    write access to the private directories; without such a user (a minimal
    container) apt is told to stay root.  Not running as root, apt does not
    drop anything and this returns -1.
    """
    if os.geteuid() != 0:
        return -1
    try:
        import pwd

        return pwd.getpwnam("_apt").pw_uid
    except (ImportError, KeyError):
        return None


class _Apt:
    """apt-get / apt-cache with a private sources list, lists and cache."""

    def __init__(self, root: Path, source: AptSource, suite: str, trusted: bool) -> None:
        self.root = root
        self.uid = _sandbox_uid()
        for d in ("lists/partial", "cache/archives/partial"):
            (root / d).mkdir(parents=True, exist_ok=True)
            self.give(root / d)
        opt = "trusted=yes" if trusted else (f"signed-by={source.signed_by}" if source.signed_by else "")
        bracket = f"[{opt}] " if opt else ""
        self.sources = root / "sources.list"
        atomic_write(self.sources, f"deb {bracket}{source.uri} {suite} main\n", mode=0o644)
        self.opts = [
            "-o", f"Dir::Etc::SourceList={self.sources}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "APT::Architecture=amd64",
        ]
        if self.uid is None:
            self.opts += ["-o", "APT::Sandbox::User=root"]

    def give(self, d: Path) -> None:
        """Let apt's download user write in directory D."""
        if self.uid is not None and self.uid >= 0:
            try:
                os.chown(d, self.uid, -1)
            except OSError:
                pass  # apt then says it downloads unsandboxed, and still works

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
    user: bool = False  # the user's own bzImage (--vmlinuz), not a Debian package


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


def _bzimage_size(data: bytes) -> int | None:
    """The size an x86 bzImage says it has (setup sectors + protected-mode part)."""
    if len(data) < 0x200 + 0x10 or data[0x202:0x206] != b"HdrS":
        return None
    setup_sects = data[0x1F1] or 4
    syssize = int.from_bytes(data[0x1F4:0x1F8], "little")
    return (setup_sects + 1) * 512 + syssize * 16


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _damage(kdir: Path) -> tuple[dict | None, str | None]:
    """(kernel.json's content, None) for a sound cache entry, else (None, what is wrong).

    ``(None, None)`` when there is no entry at all.
    """
    info, image = kdir / "kernel.json", kdir / "vmlinuz"
    if not info.exists() and not image.exists():
        return None, None
    try:
        d = json.loads(info.read_text())
        if not (isinstance(d, dict) and isinstance(d.get("package"), str)
                and isinstance(d.get("release"), str)):
            raise ValueError
    except FileNotFoundError:
        return None, "kernel.json is missing"
    except (OSError, ValueError, UnicodeDecodeError):
        return None, "kernel.json is not valid"
    try:
        size = image.stat().st_size
        with open(image, "rb") as f:
            head = f.read(0x400)
    except OSError:
        return None, "vmlinuz is missing"
    if "size" in d and size != d["size"]:
        return None, f"vmlinuz is {size} bytes, {d['size']} when it was fetched"
    want = _bzimage_size(head)
    if want is None or size < want:
        return None, f"vmlinuz is not a whole kernel image ({size} bytes)"
    if "sha256" in d and _sha256(image) != d["sha256"]:
        return None, "vmlinuz's sha256 differs from the one recorded when it was fetched"
    if "sha256" not in d:  # a cache from before sha256 was recorded: record it now
        d.update(size=size, sha256=_sha256(image))
        try:
            atomic_write(info, json.dumps(d) + "\n")
        except OSError:
            pass
    return d, None


def _cached(version: str, kdir: Path, allow_unsigned: bool, quiet: bool) -> Kernel | None:
    d, wrong = _damage(kdir)
    if wrong and not quiet:
        print(f"mempolicy: the cached Linux {version} in {kdir} is damaged ({wrong}); "
              f"fetching it again (rm -r {kdir} clears it)", file=sys.stderr)
    if d is None:
        return None
    if d.get("verified") is False and not allow_unsigned:
        raise OracleError(f"the cached Linux {version} in {kdir} was fetched without a signature "
                          f"check; pass --allow-unsigned to use it, or rm -r {kdir} to fetch it again")
    return Kernel(version, d["package"], d["release"], kdir / "vmlinuz")


def get_kernel(version: str = DEFAULT_KERNEL, *, log=None, allow_unsigned: bool = False) -> Kernel:
    """The kernel for ``--kernel VERSION``, fetched and cached on first use.

    The cache entry is checked on every use (size and sha256 recorded at
    download); a damaged one is reported on one line and fetched again.
    Processes sharing the cache fetch under a lock, so one fetch serves all.
    A suite whose signature apt cannot verify is an error unless
    ALLOW_UNSIGNED.

    >>> get_kernel("7.3").release   # doctest: +SKIP
    '7.3.4+deb13-amd64'
    """
    if version not in KERNEL_SUITES:
        raise OracleError(f"unknown kernel {version!r} (choose from {', '.join(KERNEL_SUITES)})")
    kdir = cache_dir() / "kernels" / version
    k = _cached(version, kdir, allow_unsigned, quiet=True)
    if k is not None:
        return k
    try:
        kdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OracleError(f"cannot create the cache directory {kdir}: {e.strerror}") from None
    with locked(kdir.parent / f"{version}.lock"):
        k = _cached(version, kdir, allow_unsigned, quiet=False)
        if k is not None:  # another process fetched it while this one waited
            return k
        return _fetch(version, kdir, allow_unsigned, log)


def _fetch(version: str, kdir: Path, allow_unsigned: bool, log) -> Kernel:
    """Download VERSION's package and cache its image in KDIR (lock held)."""
    suite = KERNEL_SUITES[version]
    source = debian_mirror()
    if log:
        log(f"fetching Linux {version} from {source.uri} ({suite})")
    apt = _Apt(cache_dir() / "apt" / suite, source, suite, trusted=False)
    r = apt.run("apt-get", "update")
    verified = True
    if r.returncode != 0 and _SIGNATURE_TROUBLE.search(r.stderr):
        why = next((ln for ln in r.stderr.splitlines() if _SIGNATURE_TROUBLE.search(ln)), "")
        why = why.split(": ", 1)[-1][:200] if why else "no valid signature"
        if not allow_unsigned:
            raise OracleError(
                f"cannot verify the signature of {suite} at {source.uri} ({why}); install "
                "the Debian archive keyring (debian-archive-keyring), or pass --allow-unsigned "
                "to fetch the kernel unverified")
        print(f"mempolicy: warning: --allow-unsigned: fetching {suite} without a signature "
              "check", file=sys.stderr)
        apt = _Apt(cache_dir() / "apt" / suite, source, suite, trusted=True)
        r = apt.run("apt-get", "update")
        verified = False
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith(("E:", "Err:"))]
    if r.returncode != 0 or errs:
        last = (errs or r.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
        raise OracleError(f"cannot read the Debian mirror {source.uri} ({suite}): {last}")
    if log:
        for ln in r.stderr.splitlines():
            if "unsandboxed" in ln:
                log(f"apt: {ln}")
    r = apt.run("apt-cache", "pkgnames", "linux-")
    pkg = pick_package(r.stdout.split(), version)
    if pkg is None:
        raise OracleError(f"no Linux {version} amd64 kernel package in {suite} at {source.uri}")
    with tempfile.TemporaryDirectory(prefix=".deb-", dir=kdir) as tmp:
        apt.give(Path(tmp))
        r = apt.run("apt-get", "download", pkg, cwd=Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or not debs:
            last = (r.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
            raise OracleError(f"cannot download {pkg}: {last}")
        with atomic_path(kdir / "vmlinuz") as part:
            release = _extract_vmlinuz(debs[0], part)
            size = part.stat().st_size
            want = _bzimage_size(part.read_bytes()[:0x400])
            if want is None or size < want:
                raise OracleError(f"{debs[0].name} holds no whole kernel image")
            digest = _sha256(part)
    info = {"package": pkg, "release": release, "size": size, "sha256": digest}
    if not verified:
        info["verified"] = False
    atomic_write(kdir / "kernel.json", json.dumps(info) + "\n")
    return Kernel(version, pkg, release, kdir / "vmlinuz")


# ---- a kernel the user built ------------------------------------------------


def bzimage_release(head: bytes) -> str | None:
    """The release (``uname -r``) an x86 bzImage's setup header names, if any.

    The header's ``kernel_version`` field (offset 0x20E, boot protocol 2.00+)
    points, less 0x200, at ``"6.12.117+deb13-amd64 (builder@host) #1 ..."``.
    """
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    if int.from_bytes(head[0x206:0x208], "little") < 0x200:
        return None
    off = int.from_bytes(head[0x20E:0x210], "little")
    if not off:
        return None
    text = head[off + 0x200: off + 0x200 + 256].split(b"\0", 1)[0]
    words = text.decode("ascii", "replace").split()
    return words[0] if words else None


def model_version_for(release: str) -> str:
    """The newest of the model's versions (``KERNEL_SUITES``) not newer than RELEASE.

    A kernel built from a 6.15 tree is compared with the model of 6.12; one
    older than every known version with the oldest.

    >>> model_version_for("6.12.0-rc3+"), model_version_for("7.4.0"), model_version_for("5.15.0")
    ('6.12', '7.3', '6.1')
    """
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:2])

    have = key(release)
    known = sorted(KERNEL_SUITES, key=key)
    older = [v for v in known if key(v) <= have]
    return older[-1] if older else known[0]


def kernel_from_path(path: str | os.PathLike) -> Kernel:
    """The user's own bzImage at PATH (``--vmlinuz``), checked before any boot.

    A missing file, an ELF ``vmlinux`` or anything else that is not a whole
    x86 bzImage is an ``OracleError`` naming the file.  ``version`` is the
    model version to compare it with (:func:`model_version_for`).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(0x8000)
    except OSError as e:
        raise OracleError(f"--vmlinuz {path}: {e.strerror}") from None
    if not p.is_file():
        raise OracleError(f"--vmlinuz {path}: not a regular file")
    if head[:4] == b"\x7fELF":
        raise OracleError(f"--vmlinuz {path}: an ELF file (vmlinux?), not a bzImage; "
                          "pass arch/x86/boot/bzImage")
    want = _bzimage_size(head)
    if want is None:
        raise OracleError(f"--vmlinuz {path}: not an x86 bzImage (no setup header)")
    if size < want:
        raise OracleError(f"--vmlinuz {path}: a truncated bzImage ({size} bytes, "
                          f"its header says {want})")
    release = bzimage_release(head) or p.name
    return Kernel(model_version_for(release), str(p), release, p.resolve(), user=True)


def resolve_kernel(version: str = DEFAULT_KERNEL, vmlinuz: str | os.PathLike | None = None,
                   *, log=None, allow_unsigned: bool = False) -> Kernel:
    """The kernel of ``--kernel VERSION`` or, when given, of ``--vmlinuz PATH``."""
    if vmlinuz is not None:
        return kernel_from_path(vmlinuz)
    return get_kernel(version, log=log, allow_unsigned=allow_unsigned)
