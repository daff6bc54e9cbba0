"""The campaign machinery, against the ``planted`` oracle (the model with two planted
differences), so that it runs without QEMU: reruns, shrinking, grouping, the
report, resuming, the process pool and a real Dask LocalCluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mempolicy.campaign import run as crun
from mempolicy.campaign import work as cwork
from mempolicy.campaign.report import suspected_class
from mempolicy.campaign.run import make_batches, run_campaign
from mempolicy.campaign.shrink import first_difference, repair, shrink_all, split_trace
from mempolicy.campaign.work import evaluate_batch, model_output, planted_oracle
from mempolicy.cli import main
from mempolicy.trace.parser import parse_trace

SRC = str(Path(__file__).resolve().parent.parent / "src")

PLANTED = """\
node 0 mem=512M cpus=1
node 1 mem=256M cpus=1
mmap A 8
mmap B 4
touch B 0 4
set_mempolicy interleave 0-1
fork
touch A 0 8
mprotect B 1 1 ro
where B 0 4
exit
mbind A 0 8 bind 1
numa_maps A
numa_maps B
"""


def test_split_repair_and_first_difference():
    header, cmds = split_trace(PLANTED)
    assert len(header) == 2 and cmds[0] == "mmap A 8"
    # dropping 'mmap A 8' makes every line naming A invalid; dropping 'fork' orphans 'exit'
    fixed = repair(header, [c for c in cmds if c not in ("mmap A 8", "fork")])
    assert fixed == ["mmap B 4", "touch B 0 4", "set_mempolicy interleave 0-1",
                     "mprotect B 1 1 ro", "where B 0 4", "numa_maps B"]
    parse_trace("".join(x + "\n" for x in header + fixed))
    assert first_difference("1 a: x\n2 b: y\n", "1 a: x\n2 b: z\n") == (2, "b")
    assert first_difference("1 a: x\n", "1 a: x\n") is None
    assert first_difference("1 a: x\n", "(the model failed: E: x)\n")[1] == "model-failed"


def test_planted_oracle_differs_only_where_planted():
    k = planted_oracle([PLANTED])[0]
    m = model_output(PLANTED)
    assert first_difference(k, m)[1] == "numa_maps"
    assert planted_oracle(["mmap A 1\ntouch A 0 1\nnuma_maps A\n"])[0] == model_output(
        "mmap A 1\ntouch A 0 1\nnuma_maps A\n")


def test_shrink_finds_the_planted_core():
    k, m = planted_oracle([PLANTED])[0], model_output(PLANTED)
    [s] = shrink_all([(PLANTED, k, m)], lambda texts: planted_oracle(texts), model_output)
    # the planted rule needs a written page, an mprotect before the numa_maps, and the numa_maps
    assert len(s.cmds) == 4, s.cmds
    assert s.cmds[0].startswith("mmap") and s.cmds[1].startswith("touch")
    assert s.cmds[2].startswith("mprotect") and s.cmds[3].startswith("numa_maps")
    assert first_difference(s.kernel, s.model)[1] == "numa_maps"


def test_evaluate_batch_sets_flaky_traces_aside():
    flaky = "mmap A 4\nmbind A 0 4 bind 1\nhome_node A 0 4 0\n"
    same = "mmap A 4\ntouch A 0 4\nwhere A 0 4\n"
    res = evaluate_batch([("a", "raw", 1, flaky), ("b", "raw", 2, same), ("c", "fork", 3, PLANTED)],
                         oracle="planted")
    assert [r["status"] for r in res] == ["nondeterministic", "same", "divergent"]
    assert len(set(res[0]["kernel_runs"])) == 2
    assert res[2]["first"][1] == "numa_maps"
    assert len(split_trace(res[2]["minimized"])[1]) == 4
    assert suspected_class(res[2]) == "dirty-shared"


def test_batches_share_headers():
    items = [(f"t{i}", "raw", i, f"node 0 mem=512M cpus=1\nnode 1 mem={128 * (1 + i % 2)}M cpus=1\ncpu 0\n")
             for i in range(30)]
    batches = make_batches(items, size=12)
    for b in batches:
        assert len({parse_trace(it[3]).machine.key() for it in b}) == 1
        assert len(b) <= 12
    assert sum(len(b) for b in batches) == 30 and len(batches) == 4


def _summary(out: Path) -> dict:
    return json.loads((out / "report" / "summary.json").read_text())


def test_cli_campaign_report_and_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    out = tmp_path / "c"
    args = ["trace", "campaign", "--oracle", "planted", "--count", "36", "--seed", "0",
            "--out", str(out), "-j", "2"]
    assert main(args) == 1                             # divergences found
    s = _summary(out)
    assert s["traces"] == 36
    assert set(s["modes"]) == {"fork", "shared", "fill", "migrate", "raw", "long"}
    assert s["total"]["divergent"] >= 1 and s["total"]["nondeterministic"] >= 1
    assert set(s["groups"]) == {"numa_maps"}
    for g in s["groups"]["numa_maps"]:
        d = out / "report" / g["trace"]
        assert g["lines"] <= 5 and d.is_file() and d.with_suffix(".kernel").is_file()
        cmds = [line.split()[0] for line in split_trace(d.read_text())[1]]
        assert "mprotect" in cmds and cmds[-1] == "numa_maps"    # the planted rule's core
    md = (out / "report" / "summary.md").read_text()
    assert "| numa_maps |" in md and "nondeterministic" in md
    assert "report in" in capsys.readouterr().out
    # resume: nothing is run again; a lost result is run again
    victim = sorted((out / "results").iterdir())[5]
    victim.unlink()
    ran = []
    real = crun.evaluate_batch
    monkeypatch.setattr(crun, "run_local", lambda b, k, o, j, done, stored, judge: [
        ran.extend(it[0] for it in x) or done(real(x, k, o, True, stored, judge)) for x in b])
    assert main(args) == 1
    assert ran == [victim.stem]
    assert _summary(out)["total"] == s["total"]


def test_interrupted_campaign_keeps_finished_work(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    calls = []

    def stop_after_one(self, results):
        calls.append(len(results))
        raise KeyboardInterrupt

    monkeypatch.setattr(crun.Status, "add", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(tmp_path, 0, 30, ["raw", "migrate"], oracle="planted", jobs=1)
    kept = len(list((tmp_path / "results").glob("*.json")))
    assert kept == calls[0] and 0 < kept < 30
    assert _summary(tmp_path)["traces"] == kept      # a partial report is written too
    monkeypatch.undo()
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    s = run_campaign(tmp_path, 0, 30, ["raw", "migrate"], oracle="planted", jobs=1)
    assert s["traces"] == 30


def test_cli_user_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    assert main(["trace", "campaign", "--mode", "bogus", "--out", str(tmp_path)]) == 2
    assert main(["trace", "campaign", "--count", "0", "--out", str(tmp_path)]) == 2
    assert main(["trace", "campaign", "--oracle", "planted", "--count", "2", "--out", str(tmp_path),
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(e.startswith("mempolicy trace campaign: ") for e in err)


def test_dask_local_cluster_gives_the_same_report(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    monkeypatch.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        s = run_campaign(tmp_path / "d", 100, 24, ["fork", "raw", "shared"], oracle="planted",
                         scheduler=cluster.scheduler_address)
        with distributed.Client(cluster) as client:
            workers = client.scheduler_info()["workers"]
    local = run_campaign(tmp_path / "l", 100, 24, ["fork", "raw", "shared"], oracle="planted", jobs=2)
    assert len(workers) == 2
    assert s["total"] == local["total"] and s["groups"] == local["groups"]
    assert s["total"]["traces"] == 24


def test_suspected_classes():
    def cls(trace, k, m):
        return suspected_class({"minimized": trace, "min_kernel": k, "min_model": m})

    assert cls("mmap A 1\nmove_pages A 0 1 1\n", "2 move_pages: ENOMEM\n", "2 move_pages: ok\n") \
        == "enomem-full-target"
    assert cls("raw set_mempolicy 16387 0x3 3\nfork\nmmap A 1\ntouch A 0 1\nwhere A 0 1\n",
               "5 where: 1\n", "5 where: 0\n") == "fork-interleave-alloc"
    assert cls("memfd F 1\nmmap A 1 file=F\nnuma_maps A\n",
               "3 numa_maps: A+0 default dirty=1 N0=1\n", "3 numa_maps: A+0 default N0=1\n") == "dirty-shared"
    assert cls("mmap A 2\nfork\nnuma_maps A\n", "3 numa_maps: A+0 a\n3 numa_maps: A+1 b\n",
               "3 numa_maps: A+0 c\n") == "vma-merge-after-fork"
    assert cls("mmap A 2\ntouch A 0 1\nfork\nmmap B 1 @0x200000002000\nnuma_maps B\n",
               "5 numa_maps: B+0 default\n", "5 numa_maps:\n") == "vma-merge-after-fork"
    assert cls("mmap A 2\nwhere A 0 2\n", "2 where: 0 0\n", "2 where: 0 1\n") == "other"
    assert cls("cpu 0\n", "(x)\n", "(the model failed: E: x)\n") == "model-crash"


@pytest.fixture
def boots(monkeypatch):
    """The trace texts the kernel side runs, in process (no pool), counted."""
    monkeypatch.setenv("MEMPOLICY_PROGRESS", "0")
    booted = []
    real_runner = cwork.kernel_runner

    def counting(oracle, kernel):
        run = real_runner(oracle, kernel)
        return lambda texts: booted.extend(texts) or run(texts)

    monkeypatch.setattr(cwork, "kernel_runner", counting)
    monkeypatch.setattr(crun, "run_local", lambda b, k, o, j, done, stored, judge: [
        done(cwork.evaluate_batch(x, k, o, True, stored, judge)) for x in b])
    return booted


def test_kernel_only_then_judged_later_without_booting_again(tmp_path, boots):
    """--kernel-only keeps the kernel's outputs; the next run judges them and boots
    only for the reruns of divergent traces; --rejudge judges everything again."""
    s = run_campaign(tmp_path, 0, 12, ["fork", "raw"], oracle="planted", jobs=1, kernel_only=True)
    assert s["total"] == {"traces": 12, "unjudged": 12}
    assert len(boots) == 12
    boots.clear()
    s = run_campaign(tmp_path, 0, 12, ["fork", "raw"], oracle="planted", jobs=1)
    assert "unjudged" not in s["total"] and s["total"]["traces"] == 12
    assert 0 < s["total"].get("same", 0) < 12        # planted differences exist in this sample
    # the stored outputs were used: no trace that matched the model booted again
    same = {(tmp_path / "traces" / f"{p.stem}.trace").read_text()
            for p in (tmp_path / "results").iterdir()
            if json.loads(p.read_text())["status"] == "same"}
    assert boots and not same & set(boots)
    boots.clear()
    again = run_campaign(tmp_path, 0, 12, ["fork", "raw"], oracle="planted", jobs=1)
    assert not boots and again["total"] == s["total"]
    s2 = run_campaign(tmp_path, 0, 12, ["fork", "raw"], oracle="planted", jobs=1, rejudge=True)
    assert s2["total"]["traces"] == 12
    assert s2["total"].get("same", 0) == s["total"].get("same", 0)


def test_archive_resumes_a_campaign_in_a_new_directory(tmp_path, boots, capsys):
    """--archive carries the kernel's outputs to a fresh OUT (another machine): the same
    report without booting for the traces that match; a changed trace text or another
    kernel is not taken from it; a damaged archive is a FILE:LINE error."""
    from mempolicy.campaign.archive import ArchiveError, read_archive, text_sha, write_archive

    arch = tmp_path / "k.jsonl.gz"
    first = run_campaign(tmp_path / "a", 0, 10, ["fork", "raw"], oracle="planted", jobs=1,
                         kernel_only=True, archive=arch)
    assert first["total"] == {"traces": 10, "unjudged": 10} and len(boots) == 10
    rows = read_archive(arch, "7.3")
    assert len(rows) == 10
    blob = arch.read_bytes()
    boots.clear()
    s = run_campaign(tmp_path / "b", 0, 10, ["fork", "raw"], oracle="planted", jobs=1, archive=arch)
    assert "unjudged" not in s["total"] and s["total"]["traces"] == 10
    same = {(tmp_path / "b" / "traces" / f"{p.stem}.trace").read_text()
            for p in (tmp_path / "b" / "results").iterdir()
            if json.loads(p.read_text())["status"] == "same"}
    assert same and not same & set(boots)           # matching traces did not boot again
    assert arch.read_bytes() == blob                 # nothing new: the same bytes
    # a line whose text hash does not match is not used
    name = sorted(rows)[0]
    rows[name]["sha"] = text_sha("another text")
    write_archive(arch, rows, [], {}, "7.3")
    boots.clear()
    run_campaign(tmp_path / "c", 0, 10, ["fork", "raw"], oracle="planted", jobs=1,
                 kernel_only=True, archive=arch)
    assert len(boots) == 1
    with pytest.raises(ArchiveError, match=r":1: holds the outputs of Linux 7.3, not of Linux 6.1"):
        read_archive(arch, "6.1")
    bad = tmp_path / "bad.jsonl.gz"
    import gzip
    bad.write_bytes(gzip.compress(arch.read_bytes() and gzip.decompress(arch.read_bytes())[:-1]
                                  + b"\n{\"name\": 3}\n"))
    with pytest.raises(ArchiveError, match=r"bad.jsonl.gz:\d+: "):
        read_archive(bad, "7.3")
    assert main(["trace", "campaign", "--oracle", "planted", "--count", "2", "--out",
                 str(tmp_path / "d"), "--archive", str(bad)]) == 2
    assert "bad.jsonl.gz:" in capsys.readouterr().err


def test_trace_archive_lists_what_an_archive_holds(tmp_path, capsys):
    """``mempolicy trace archive`` counts each mode's outputs; a file that is not an
    archive is one line on stderr and exit status 2."""
    from mempolicy.campaign.archive import write_archive

    arch = tmp_path / "a.jsonl.gz"
    results = [{"name": "fork-5", "kernel": "3 mmap: ok\n", "status": "same"},
               {"name": "fork-7", "kernel": "3 mmap: ok\n", "status": "unjudged"},
               {"name": "raw-6", "kernel": "", "status": "error"}]
    write_archive(arch, {}, results, {r["name"]: "node 0 mem=512M\n" for r in results}, "6.12")
    assert main(["trace", "archive", str(arch)]) == 0
    assert capsys.readouterr().out.strip().endswith("Linux 6.12, 2 traces (fork 2)")
    other = tmp_path / "x.trace"
    other.write_text("node 0 mem=512M\n")
    assert main(["trace", "archive", str(other)]) == 2
    err = capsys.readouterr().err
    assert "not a campaign archive" in err and "Traceback" not in err
