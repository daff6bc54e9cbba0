"""The fuzzer keeps to the repeatable part of Linux 7.3 (docs/trace-format.md, section 4).

A fork inside a child under an interleave task policy advances the round
robin by an amount that changes from run to run, so the fuzzer must never
nest forks.
"""

from mempolicy.trace.fuzz import generate


def fork_depth(text: str) -> int:
    """The deepest nesting of fork lines in a trace."""
    depth = deepest = 0
    for line in text.splitlines():
        word = line.split("#")[0].split()
        if word[:1] == ["fork"]:
            depth += 1
            deepest = max(deepest, depth)
        elif word[:1] == ["exit"]:
            depth -= 1
    return deepest


def test_fork_depth_counts_nesting():
    assert fork_depth("fork\nfork\nexit\nexit\n") == 2
    assert fork_depth("fork\nexit\nfork\nexit\n") == 1


def test_fuzzer_never_nests_forks():
    depths = [fork_depth(generate(seed)) for seed in range(400)]
    assert max(depths) == 1            # forks do occur, never nested
