"""Which Linux the model behaves as (include/generated/uapi/linux/version.h).

The model follows Linux 7.3.  The versions the oracle boots (Debian's 6.1,
6.12 and 7.3) differ in a few places that a trace can see; each difference is
a named predicate here, tested at the one place where the kernel code differs,
and says which commit changed it.  Nothing else in the model looks at the
version number.

Example: ``KernelVersion.parse("6.1").has_weighted_interleave`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("6.1", "6.12", "7.3")
DEFAULT_VERSION = "7.3"


@dataclass(frozen=True)
class KernelVersion:
    """``LINUX_VERSION_CODE`` as (major, minor), with the behaviours that depend on it."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str | "KernelVersion" = DEFAULT_VERSION) -> "KernelVersion":
        """``"6.12"`` -> KernelVersion(6, 12); ValueError for a version the model does not know."""
        if isinstance(text, KernelVersion):
            return text
        if text not in VERSIONS:
            raise ValueError(f"unknown kernel version {text!r} (one of {', '.join(VERSIONS)})")
        major, minor = text.split(".")
        return cls(int(major), int(minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, major: int, minor: int) -> bool:
        """``LINUX_VERSION_CODE >= KERNEL_VERSION(major, minor, 0)``."""
        return (self.major, self.minor) >= (major, minor)

    # -- mm/mempolicy.c --------------------------------------------------------
    @property
    def has_weighted_interleave(self) -> bool:
        """MPOL_WEIGHTED_INTERLEAVE (mode 6) exists: v6.9, fa3bea4e1f82
        ("mm/mempolicy: introduce MPOL_WEIGHTED_INTERLEAVE for weighted interleaving").
        Before it MPOL_MAX is 6 and mode 6 is EINVAL like any unknown mode."""
        return self.at_least(6, 9)

    @property
    def numa_balancing_preferred_many(self) -> bool:
        """``sanitize_mpol_flags`` takes MPOL_F_NUMA_BALANCING with MPOL_PREFERRED_MANY
        as well as MPOL_BIND: v6.10, 133d04b1eee9 ("mm/numa_balancing: allow
        migrate on protnone reference with MPOL_PREFERRED_MANY policy").  Before it,
        only MPOL_BIND (since v5.12) and every other mode is EINVAL."""
        return self.at_least(6, 10)

    @property
    def user_nodemask_on_numa_balancing(self) -> bool:
        """``mpol_store_user_nodemask`` is ``pol->flags & MPOL_MODE_FLAGS`` (v5.12 to
        at least v6.15), so MPOL_F_NUMA_BALANCING alone makes a policy keep the
        caller's raw nodemask in ``w.user_nodemask``: get_mempolicy reports that
        mask, mpol_equal compares it, and a rebind remaps from it.  Linux 7.3 tests
        ``MPOL_USER_NODEMASK_FLAGS`` (STATIC or RELATIVE) only."""
        return not self.at_least(7, 0)

    @property
    def interleave_index_truncated(self) -> bool:
        """``offset_il_node(pol, n)`` divides ``(unsigned int)n``: a VMA's interleave
        offset (its ``vm_pgoff`` plus the page's index, about 2^33 at the trace
        format's addresses) loses its high bits, which moves the pattern's phase.
        v6.7, ddc1a5cbc05d ("mempolicy: alloc_pages_mpol() for NUMA policy
        without vma"), made it ``ilx``, a ``pgoff_t``, divided whole."""
        return not self.at_least(6, 7)

    @property
    def vma_ilx_inode_bias(self) -> bool:
        """``get_vma_policy`` adds the bias a VMA's ``get_policy`` supplies (for shmem
        and memfd mappings the inode number, ``shmem_get_policy``) to the VMA's
        interleave index, so a private CoW page of a memfd mapping and a page mbind
        migrates interleave by inode number plus offset: v6.7, the same commit as
        ``interleave_index_truncated``.  Before it ``interleave_nid(pol, vma, addr)``
        used ``vm_pgoff`` plus the page's offset alone; only shmem's own page cache
        allocations (``shmem_alloc_page``'s pseudo-VMA) added the inode number."""
        return self.at_least(6, 7)

    @property
    def preferred_many_below_low(self) -> bool:
        """The first pass of ``alloc_pages_preferred_many`` (the preferred nodes only,
        without direct reclaim) takes a page from a preferred node that is below its
        low watermark but above its min one: ``__alloc_pages_slowpath`` retries at
        the min watermark.  Measured on Debian's 6.1 (the 6.1 campaign's fills,
        tests/traces/versions/preferred-many-full-node); on 6.12 and 7.3 the same
        traces fall back to the second pass.  The commit is not identified here
        (the per-CPU page lists' automatic high marks of v6.7, which keep more
        free pages out of the watermark's count, are a candidate)."""
        return not self.at_least(6, 7)

    @property
    def weighted_interleave_auto(self) -> bool:
        """Weights derived from firmware bandwidths, and the sysfs ``auto`` file:
        v6.16, e341f9c3c841 ("mm/mempolicy: Weighted Interleave Auto-tuning").
        With it ``mempolicy_set_node_perf`` (called by the HMAT driver through
        ``node_set_perf_attrs``) recomputes the weights, and ``node_store``
        refuses 0.  Before it (6.9 to 6.15) the weights start at 1 whatever
        the HMAT says, there is no ``auto`` file, and ``node_store`` takes 0
        (or an empty write), which ``get_il_weight`` reads as the default 1."""
        return self.at_least(6, 16)

    @property
    def weight_files_for_memory_nodes(self) -> bool:
        """``weighted_interleave/nodeN`` exists for each node with memory
        (``N_MEMORY``, added and removed by memory hotplug): v6.16, "mm/mempolicy:
        support memory hotplug in weighted interleave" (Rakie Kim).
        Before it ``add_weighted_interleave_group`` made one for every possible
        node (``N_POSSIBLE``), a node without memory included."""
        return self.at_least(6, 16)

    # -- mm/migrate.c ------------------------------------------------------------
    @property
    def follow_page_dump(self) -> bool:
        """move_pages looks a page up with ``follow_page(vma, addr, FOLL_DUMP)``, which
        reports a page never faulted in an anonymous VMA as -EFAULT (not -ENOENT).
        v6.12 converted both to ``folio_walk_start``, which reports -ENOENT for any
        absent page: 46d6a9b4450b ("mm/migrate: convert do_pages_stat_array() from
        follow_page() to folio_walk"; ``where``, move_pages without nodes) and
        7dff875c9436 ("mm/migrate: convert add_page_for_migration() from
        follow_page() to folio_walk"; move_pages with nodes)."""
        return not self.at_least(6, 12)

    @property
    def move_pages_shared_by_page_mapcount(self) -> bool:
        """``add_page_for_migration`` refuses (EACCES, without ``MPOL_MF_MOVE_ALL``) a
        page whose own mapcount is above one: for a page of a huge folio, the PMD
        mappings of the folio plus this page's PTE mappings, so after a fork whose
        child wrote one page (splitting its PMD), that page alone can be queued and
        takes the whole folio with it.  v6.10, "mm/migrate: use
        folio_likely_mapped_shared() in add_page_for_migration()" (David
        Hildenbrand) asks about the folio instead: every page of a folio another
        process maps is EACCES (recorded: tests/traces/thp/37-fork-move-pages-parent
        on 6.1)."""
        return not self.at_least(6, 10)

    # -- mm/mmu_gather.c, arch/x86/mm/pgtable.c ------------------------------------
    @property
    def mmu_gather_batch_full_early(self) -> bool:
        """``__tlb_remove_folio_pages_size`` takes the next batch page once a batch
        has ``max - 1`` entries (room is kept for a page and its ``nr_pages``), so
        the seventh page freed into the gather's own batch of eight allocates: v6.9,
        "mm/mmu_gather: add __tlb_remove_folio_pages()".  Before it
        ``__tlb_remove_page_size`` tests ``batch->nr == batch->max``: the eighth."""
        return self.at_least(6, 9)

    @property
    def tlb_remove_table_batch(self) -> bool:
        """x86 frees page tables with ``tlb_remove_table`` into the gather's table
        batch (a page of its own, taken for the first table): v6.14, "x86: mm: free
        page table pages by RCU instead of semi RCU".  Before it native x86's
        ``paravirt_tlb_remove_table`` is ``tlb_remove_page``: a freed table is one
        more entry of the page batches."""
        return self.at_least(6, 14)

    # -- mm/slub.c (mm/slab_common.c before v6.2) --------------------------------
    @property
    def kmalloc_large_mempolicy(self) -> bool:
        """A kmalloc too large for a slab cache (above two pages) with no node is
        ``alloc_pages``, under the task policy.  "mm/slab_common: cleanup
        kmalloc_large()" (v6.1) made it ``alloc_pages_node(numa_mem_id())``, the
        local node; "mm, slab: restore NUMA policy support for large kmalloc"
        (v6.16, in 6.12's stable line) restored the policy.  Debian's 6.1 does
        not have it (measured: reading numa_maps moves no round robin there)."""
        return self.at_least(6, 12)

    # -- mm/huge_memory.c ----------------------------------------------------------
    @property
    def huge_zero_wp_allocates_thp(self) -> bool:
        """A write fault on a huge zero PMD allocates a huge folio for the whole
        2 MiB range (``do_huge_zero_wp_pmd``): v6.13, 1ced09e0331f ("mm: allocate
        THP on hugezeropage wp-fault").  Before it ``do_huge_pmd_wp_page`` went
        to ``fallback`` for the huge zero PMD: ``__split_huge_pmd`` into 512
        zero ptes, then ``do_wp_page`` copies the one page written."""
        return self.at_least(6, 13)

    # -- mm/migrate.c, mm/mempolicy.c: migrating huge folios -------------------------
    @property
    def migrate_splits_partially_mapped(self) -> bool:
        """``migrate_pages_batch`` splits a large folio that waits on the deferred
        split list (part of it unmapped) and migrates its pages one by one: v6.10,
        7262f208ca68 ("mm/migrate: split source folio if it is on deferred split
        list").  Before it the folio moves whole, its unmapped pages with it
        (recorded: tests/traces/thp/28-munmap-then-migrate on 6.1)."""
        return self.at_least(6, 10)

    @property
    def migration_matches_interleave(self) -> bool:
        """``mbind ... move`` under an interleave policy gives each folio the target
        of its interleave index (``alloc_migration_target_by_mpol``, ``ilx`` from
        the first folio's index): v6.7, 88c91dc58582 ("mempolicy: migration attempt
        to match interleave nodes").  Before it ``new_page`` allocated at the
        folio's address in the first VMA from the range's start that maps it
        (``page_address_in_vma``, which gives ``vm_start`` for a huge folio that
        begins before the VMA), so huge folios in the same 2 MiB of the VMA got
        the same node (recorded: tests/traces/thp/27-mbind-interleave-move on 6.1)."""
        return self.at_least(6, 7)

    # -- kernel/cgroup/cpuset.c ----------------------------------------------------
    @property
    def cpuset_rebind_mm_to_effective_mems(self) -> bool:
        """Writing ``cpuset.mems`` rebinds the VMA policies to the group's
        ``effective_mems`` (``cpuset_update_tasks_nodemask``), not to the
        ``mems_allowed`` written, which on cgroup v2 may name a node without
        memory: "cgroup/cpuset: rebind mm mempolicy to effective_mems, not
        mems_allowed" (Farhad Alemi, 2026, Fixes: ae1c802382f7, Cc: stable).
        A stable fix, so no release number separates the kernels: Debian's
        6.12 and 7.3 have it, Debian's 6.1 (6.1.0-50) rebinds to
        ``cs->mems_allowed`` (recorded: tests/traces/cpusets/17-memless-in-mems)."""
        return self.at_least(6, 12)

    @property
    def cpuset_attach_rebinds_mm_on_cpus_change(self) -> bool:
        """``cpuset_attach`` rebinds the leader's VMA policies and migrates its pages
        whenever it does not skip the tasks (the group's effective CPUs or mems
        differ from the old group's), so moving into a group that changes only the
        CPUs still rebinds, and a relative policy's user nodemask is overwritten
        through the ``w`` union.  Measured: Debian's 6.12 and 6.1 do, 7.3 leaves
        the mm alone unless the effective mems change (recorded:
        tests/traces/cpusets/21-attach-cpus-only, 22-attach-cpus-only-threads).
        The change is one of the 2026 reworks of ``cpuset_attach``; the commit is
        not identified here, so 6.13 is only the earliest release it can be."""
        return not self.at_least(6, 13)

    # -- mm/swap.c callers --------------------------------------------------------
    @property
    def lru_drain_on_unmap(self) -> bool:
        """munmap (``unmap_region``) and exit (``exit_mmap``) begin with
        ``lru_add_drain()``: the calling CPU's LRU batch is emptied, so a page the
        batch held no longer counts as referenced at the next write fault.  Linux
        6.1 and 6.12 do (measured: tests/traces/fidelity/cow-lru-batch-*); Linux
        7.3 does neither: "mm: remove unnecessary calls to lru_add_drain" (Rik van
        Riel, in the mm tree in December 2024, so v6.14) dropped them."""
        return not self.at_least(7, 0)

    # -- kernel/fork.c, as the oracle's runner meets it -------------------------
    @property
    def runner_fork_allocs(self) -> tuple[int, int]:
        """Allocations a fork makes under the parent's task policy besides the page
        tables of the trace's own mappings (the child's pgd, the page tables of the
        runner's own memory, ...): (a fork by the trace's process, a fork by a
        child).  Measured with the oracle under interleave over 5, 7 and 8 nodes
        (tests/traces/fidelity/fork-interleave-*, versions/fork-round-robin): 11
        and 12 on Linux 7.3, 11 and 11 on 6.12 and 6.1.  These count the runner's
        memory as much as the kernel's code, so no one commit explains them."""
        return (11, 12) if self.at_least(7, 0) else (11, 11)

    # -- mm/vma.c (mm/mmap.c before v6.10) --------------------------------------
    @property
    def merge_into_vma_without_anon_vma(self) -> bool:
        """A range whose VMA has an anon_vma may merge into a neighbour that has
        none (the neighbour then takes it, ``dup_anon_vma``).  Before v6.16,
        ``is_mergeable_anon_vma(anon_vma1, anon_vma2, vma)`` asked
        ``list_is_singular(&vma->anon_vma_chain)`` of the *neighbour*, whose chain
        is empty, so such merges (mbind or mprotect of a touched VMA next to an
        untouched one with the same policy) were refused; "mm/vma: fix
        incorrectly disallowed anonymous VMA merges" (879bca0a2c4f, v6.16) tests the side that
        has the anon_vma instead (``vma_had_uncowed_parents``)."""
        return self.at_least(6, 16)


DEFAULT = KernelVersion.parse(DEFAULT_VERSION)
