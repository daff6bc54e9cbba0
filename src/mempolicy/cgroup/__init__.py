"""Control groups as they touch memory policy: the cpuset ``mems`` change."""
