"""Transparent huge pages: trace commands (format 1.3, section 5.9), the model of
mm/huge_memory.c, the API and numactl --sim-thp.  The recorded kernel outputs are
in tests/traces/thp (checked by test_traces.py); these tests pin the rules one by one."""

from __future__ import annotations

import pytest

from mempolicy.api import ModelSystem
from mempolicy.frontends.numactl import main as numactl_main
from mempolicy.trace.fuzz import DIRECTED_MODES, generate, parse_modes
from mempolicy.trace.parser import TraceError, parse_trace
from mempolicy.trace.run import run_trace_text

TWO = "node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\n"


def run(body: str, header: str = TWO) -> list[str]:
    return run_trace_text(header + body).splitlines()


def result(lines: list[str], lineno: int) -> list[str]:
    return [ln.split(": ", 1)[1] if ": " in ln else "" for ln in lines
            if ln.startswith(f"{lineno} ")]


@pytest.mark.parametrize("line, message", [
    ("thp enabled sometimes", "thp enabled takes always, madvise, never"),
    ("thp khugepaged 1", "unknown thp setting"),
    ("thp enabled", "missing arguments"),
    ("thp defrag never now", "unexpected word"),
    ("madvise A 0 1 willneed", "madvise takes hugepage or nohugepage"),
    ("madvise B 0 1 hugepage", "unknown mapping 'B'"),
])
def test_bad_thp_commands_are_refused(line: str, message: str) -> None:
    with pytest.raises(TraceError) as e:
        parse_trace("mmap A 4\n" + line + "\n", "t.trace")
    assert str(e.value).startswith("t.trace:2: ")
    assert message in str(e.value)


def test_never_keeps_small_pages() -> None:
    out = run("mmap A 1024\ntouch A 0 1\nwhere A 0 2\n")
    assert result(out, 5) == ["0 ENOENT"]


def test_always_maps_the_whole_aligned_range() -> None:
    out = run("thp enabled always\nmmap A 1024\ntouch A 5 1\nwhere A 0 1\nwhere A 511 2\n")
    assert result(out, 6) == ["0"]
    assert result(out, 7) == ["0 ENOENT"]


@pytest.mark.parametrize("mmap, touch, huge", [
    ("mmap A 511", "touch A 0 1", False),                    # VMA smaller than 2 MiB
    ("mmap A 1000", "touch A 600 1", False),                 # the range would end past the VMA
    ("mmap A 1024 @0x200000100000", "touch A 0 1", False),   # starts 1 MiB into the range
    ("mmap A 1024 @0x200000100000", "touch A 256 1", True),  # the aligned range inside it
])
def test_the_aligned_range_must_fit(mmap: str, touch: str, huge: bool) -> None:
    page = int(touch.split()[2])
    out = run(f"thp enabled always\n{mmap}\n{touch}\nwhere A {page ^ 1} 1\n")
    assert result(out, 6) == (["0"] if huge else ["ENOENT"])


def test_madvise_mode_needs_the_advice() -> None:
    out = run("thp enabled madvise\nmmap A 1024\nmmap B 1024\nmadvise B 0 1024 hugepage\n"
              "touch A 0 1\ntouch B 0 1\nwhere A 1 1\nwhere B 1 1\nnuma_maps B\n")
    assert result(out, 9) == ["ENOENT"]
    assert result(out, 10) == ["0"]


def test_nohugepage_splits_and_does_not_merge_back() -> None:
    out = run("thp enabled always\nmmap A 1536\nmadvise A 512 512 nohugepage\n"
              "madvise A 512 512 hugepage\nnuma_maps A\ntouch A 512 1\nwhere A 513 1\n")
    assert result(out, 7) == ["A+0 default", "A+512 default", "A+1024 default"]
    assert result(out, 9) == ["0"]


def test_interleave_index_counts_huge_pages_from_the_vma() -> None:
    # ilx = (vm_pgoff >> 9) + ((haddr - vm_start) >> 21): a VMA starting 3 pages in
    # gives the second 2 MiB range index 2^24, not 2^24 + 1
    out = run("thp enabled always\nmmap A 2048\nmbind A 3 2045 interleave 0-1\n"
              "touch A 512 1\ntouch A 1024 1\nwhere A 512 1\nwhere A 1024 1\n",
              header="")
    assert result(out, 6) == ["0"]
    assert result(out, 7) == ["1"]


def test_task_interleave_counts_the_deposited_table() -> None:
    out = run("thp enabled always\nset_mempolicy interleave 0-3\nmmap A 2048\ntouch A 0 1\n"
              "get_mempolicy node\ntouch A 512 1\nget_mempolicy node\n", header="")
    assert result(out, 5) == ["node=3"]         # PUD, PMD and the deposited PTE table
    assert result(out, 7) == ["node=0"]         # the deposited table only


def test_huge_zero_page_then_a_write_allocates_the_range() -> None:
    out = run("thp enabled always\nmmap A 1024\ntouch A 0 1024 read\nwhere A 0 1\nnuma_maps A\n"
              "touch A 7 1\nwhere A 0 1\nwhere A 511 2\n")
    assert result(out, 6) == ["EFAULT"]
    assert result(out, 7) == ["A+0 default"]
    assert result(out, 10) == ["0 EFAULT"]


def test_use_zero_page_off_allocates_on_read() -> None:
    out = run("thp enabled always\nthp use_zero_page 0\nmmap A 1024\ntouch A 0 1 read\nnuma_maps A\n")
    assert result(out, 7) == ["A+0 default anon=512 dirty=512 N0=512 kernelpagesize_kB=4"]


def test_mbind_move_on_part_moves_the_whole_folio() -> None:
    out = run("thp enabled always\nmmap A 1024\ntouch A 0 1024\nmbind A 100 10 bind 1 move\n"
              "where A 0 1\nwhere A 511 2\n")
    assert result(out, 7) == ["1"]
    assert result(out, 8) == ["1 0"]


def test_mbind_without_move_splits_but_keeps_pages() -> None:
    out = run("thp enabled always\nmmap A 1024\ntouch A 0 1024\nmbind A 100 10 bind 1\nnuma_maps A\n")
    assert result(out, 7)[1] == "A+100 bind:1 anon=10 dirty=10 N0=10 kernelpagesize_kB=4"


def test_move_pages_busy_for_the_second_page_of_a_folio() -> None:
    out = run("thp enabled always\nmmap A 1024\ntouch A 0 1024\nmove_pages A 0 4 1\nwhere A 511 2\n")
    assert result(out, 6) == ["1 EBUSY 1 1"]
    assert result(out, 7) == ["1 0"]


def test_migrate_pages_moves_huge_pages_without_failures() -> None:
    out = run("thp enabled always\nmmap A 1024\ntouch A 0 1024\nmigrate_pages 0 1\nwhere A 0 1\n")
    assert result(out, 6) == ["0"]
    assert result(out, 7) == ["1"]


def test_model_system_set_thp() -> None:
    m = ModelSystem.from_spec("2x1G")
    a = m.mmap(4 << 20, 1 << 40)
    m.madvise_hugepage(a, 4 << 20)
    m.set_thp("madvise", defrag="never")
    m.touch(a, 4096)
    assert m.where(a + (2 << 20) - 4096, 8192) == [0, -2]
    with pytest.raises(ValueError):
        m.set_thp("sometimes")


def test_numactl_sim_thp(capsys: pytest.CaptureFixture[str]) -> None:
    assert numactl_main(["--sim", "2x1G", "--sim-thp", "never", "--show"]) == 0
    assert numactl_main(["--sim-thp", "always", "--show"]) == 2
    assert "--sim-thp needs --sim" in capsys.readouterr().err
    assert numactl_main(["--sim", "2x1G", "--sim-thp=often", "--show"]) == 2
    assert "THP enabled is one of" in capsys.readouterr().err


def test_fuzz_mode_thp_is_in_envelope_not_all() -> None:
    assert "thp" not in DIRECTED_MODES
    assert "thp" not in parse_modes("all")
    assert "thp" in parse_modes("envelope")
    text = generate(900001, "thp")
    assert text == generate(900001, "thp")
    assert "thp enabled" in text and "fork" not in text
    parse_trace(text)


def test_plot_hatches_huge_pages() -> None:
    pytest.importorskip("matplotlib")
    from mempolicy.frontends.plot import draw_state

    m = ModelSystem.from_spec("2x1G")
    m.set_thp("always")
    a = m.mmap(4 << 20, 1 << 40)
    m.touch(a, 4096)                              # one huge page of the two ranges
    fig = draw_state(m.kernel, m.task, {"A": (a, 1024)})
    hatched = [p for ax in fig.axes for p in ax.patches if p.get_hatch()]
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert len(hatched) == 1                      # the one 2 MiB range with a huge page
    assert "huge page (2 MiB)" in labels


@pytest.mark.parametrize("policy", ["interleave 0-2", "weighted_interleave 0,2", "bind 1",
                                    "preferred 2", "default -"])
@pytest.mark.parametrize("task_policy", ["", "set_mempolicy bind 0-1\n", "set_mempolicy interleave 0-2\n"])
def test_bulk_huge_path_ends_as_the_fault_path(policy: str, task_policy: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from mempolicy.alloc import huge_bulk
    from mempolicy.trace.run import TraceRunner

    used = []
    real = huge_bulk.touch_huge_bulk
    monkeypatch.setattr(huge_bulk, "touch_huge_bulk",
                        lambda *a: used.append(real(*a)) or used[-1])

    text = ("node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nnode 2 mem=512M cpus=0\n"
            f"thp enabled always\n{task_policy}mmap A 9000\nmbind A 3 8997 {policy}\n"
            "touch A 0 9000\nmmap B 4096 @0x200040100000\ntouch B 0 4096\n"
            "get_mempolicy node\nmove_pages A 1024 2 0\n")
    states = []
    for bulk in (True, False):
        r = TraceRunner(parse_trace(text), bulk=bulk)
        out = r.run()
        mm = r.task.mm
        folios = {i: (f if isinstance(f, str) else (f.head, f.nid)) for i, f in mm.thp_folios.items()}
        states.append((out, list(r.kernel.pages.free), {k: dict(v) for k, v in mm.pgtables.items()},
                       folios, mm.ptes.node_counts(0, 1 << 36), r.kernel.fault_stats,
                       sorted(mm.ptes.dirty)[:5]))
    assert states[0] == states[1]
    assert len(states[0][3]) > 10
    assert any(used) == ("interleave" not in task_policy)   # the round robin stays per fault


def test_bulk_huge_path_through_a_full_node() -> None:
    """Interleave over a small node: its share goes down its zonelist once it is full,
    in the bulk path as range by range."""
    from mempolicy.trace.run import TraceRunner

    text = ("node 0 mem=512M cpus=1\nnode 1 mem=64M cpus=0\nnode 2 mem=256M cpus=0\n"
            "distance 1 2 15\nthp enabled always\nmmap A 131072\nmbind A 0 131072 interleave 0-2\n"
            "touch A 0 131072\nnuma_maps A\n")
    states = []
    for bulk in (True, False):
        r = TraceRunner(parse_trace(text), bulk=bulk)
        out = r.run()
        mm = r.task.mm
        states.append((out, list(r.kernel.pages.free), {k: dict(v) for k, v in mm.pgtables.items()},
                       {i: f.nid for i, f in mm.thp_folios.items()}))
    assert states[0] == states[1]
    assert "N1=" in states[0][0][-1] and "N2=" in states[0][0][-1]


def test_bulk_huge_folios_are_made_when_looked_at() -> None:
    """The bulk path stores its huge folios as blocks; the first look builds them,
    on the nodes their pages are on."""
    from mempolicy.trace.run import TraceRunner

    text = ("node 0 mem=512M cpus=1\nnode 1 mem=512M cpus=1\nthp enabled always\n"
            "mmap A 8192\nmbind A 0 8192 interleave 0-1\ntouch A 0 8192\n")
    r = TraceRunner(parse_trace(text), bulk=True)
    r.run()
    mm = r.task.mm
    folios = mm.thp_folios
    assert folios._blocks and len(folios) == 16 and folios
    first = min(folios)                           # a look: the objects are made
    assert not folios._blocks and len(folios) == 16
    for i in range(first, first + 16):
        f = folios.get(i)
        assert f.head == i << 9 and mm.ptes.nid(f.head + 5) == f.nid and f.written


def test_split_maps_never_written_pages_to_the_zero_page() -> None:
    """A PTE-mapped huge page moved once waits on the deferred split queue; the next
    move splits it and its pages never written read EFAULT (the zero page)."""
    out = run("thp enabled always\nmmap A 512\ntouch A 0 2\nmprotect A 509 3 ro\n"
              "move_pages A 0 4 1\nmove_pages A 0 4 0\nwhere A 0 4\nnuma_maps A\n")
    assert result(out, 7) == ["1 EBUSY 1 1"]
    assert result(out, 8) == ["0 EBUSY EFAULT EFAULT"]
    assert result(out, 9) == ["0 0 EFAULT EFAULT"]
    assert result(out, 10)[0] == "A+0 default anon=2 dirty=2 N0=2 kernelpagesize_kB=4"


def test_fork_shares_the_huge_folio() -> None:
    """Without all, a folio another process maps is EACCES for every page; with all
    it moves whole, for both processes."""
    out = run("thp enabled always\nmmap A 512\ntouch A 0 512\nfork\ntouch A 1 1\n"
              "move_pages A 0 3 1 parent\nmove_pages A 0 3 1 all parent\nwhere A 0 3\n"
              "exit\nwhere A 0 3\n")
    assert result(out, 8) == ["EACCES EACCES EACCES"]
    assert result(out, 9) == ["1 EBUSY 1"]
    assert result(out, 10) == ["1 0 1"]            # the child's own copy of page 1 stays
    assert result(out, 12) == ["1 1 1"]


def test_fuzz_mode_thp_fork_is_in_no_group() -> None:
    assert "thp-fork" not in parse_modes("all") + parse_modes("envelope")
    text = generate(950001, "thp-fork")
    assert text == generate(950001, "thp-fork")
    assert "thp enabled" in text
    parse_trace(text)
