"""Constants of include/uapi/linux/mempolicy.h and the kernel-internal flags.

Values are those of Linux 7.3 on x86_64.
"""

# enum mempolicy_mode
MPOL_DEFAULT = 0
MPOL_PREFERRED = 1
MPOL_BIND = 2
MPOL_INTERLEAVE = 3
MPOL_LOCAL = 4
MPOL_PREFERRED_MANY = 5
MPOL_WEIGHTED_INTERLEAVE = 6
MPOL_MAX = 7

MODE_NAMES = {
    MPOL_DEFAULT: "default",
    MPOL_PREFERRED: "preferred",
    MPOL_BIND: "bind",
    MPOL_INTERLEAVE: "interleave",
    MPOL_LOCAL: "local",
    MPOL_PREFERRED_MANY: "preferred_many",
    MPOL_WEIGHTED_INTERLEAVE: "weighted_interleave",
}
MODE_BY_NAME = {v: k for k, v in MODE_NAMES.items()}

# Mode flags, OR-ed into the mode argument.
MPOL_F_STATIC_NODES = 1 << 15
MPOL_F_RELATIVE_NODES = 1 << 14
MPOL_F_NUMA_BALANCING = 1 << 13
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING
MPOL_USER_NODEMASK_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES

FLAG_NAMES = {
    "static": MPOL_F_STATIC_NODES,
    "relative": MPOL_F_RELATIVE_NODES,
    "balancing": MPOL_F_NUMA_BALANCING,
}

# get_mempolicy flags
MPOL_F_NODE = 1 << 0
MPOL_F_ADDR = 1 << 1
MPOL_F_MEMS_ALLOWED = 1 << 2

# mbind flags
MPOL_MF_STRICT = 1 << 0
MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2
MPOL_MF_LAZY = 1 << 3
MPOL_MF_INTERNAL = 1 << 4
MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL
# internal (mm/mempolicy.c)
MPOL_MF_DISCONTIG_OK = MPOL_MF_INTERNAL << 0
MPOL_MF_INVERT = MPOL_MF_INTERNAL << 1
MPOL_MF_WRLOCK = MPOL_MF_INTERNAL << 2

# Internal flags in struct mempolicy.flags
MPOL_F_SHARED = 1 << 0
MPOL_F_MOF = 1 << 3
MPOL_F_MORON = 1 << 4

# Configuration of the modelled kernel (Debian amd64: CONFIG_NODES_SHIFT=10).
MAX_NUMNODES = 1024
NUMA_NO_NODE = -1
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
BITS_PER_LONG = 64
NO_INTERLEAVE_INDEX = (1 << 64) - 1
ULONG_MASK = (1 << 64) - 1

# x86_64 system call numbers
NR_mbind = 237
NR_set_mempolicy = 238
NR_get_mempolicy = 239
NR_migrate_pages = 256
NR_move_pages = 279
NR_set_mempolicy_home_node = 450
