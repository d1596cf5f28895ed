"""The depths each family can be built at, checked without Keras (a study file's check).

- dense, conv + dense, highway: any integer ≥ 1 hidden layers (`check_min_depth`);
- ResNet and VGG (the CIFAR stacks): depth = 6n + 2, n ≥ 1 basic blocks per stage
  (`blocks_per_stage`; He et al. 2016, §4.2);
- DenseNet: depth = 3m + 4, m ≥ 1 layers per dense block (`layers_per_block`; Huang et al. 2017).
`check_depth(family, depth)` applies the family's rule.
"""

from __future__ import annotations

NUM_BLOCKS = 3  # DenseNet's dense blocks


def check_min_depth(family: str, depth: int, minimum: int = 1) -> int:
    """`depth` as an int, or ValueError naming the allowed values."""
    if isinstance(depth, bool) or int(depth) != depth or depth < minimum:
        raise ValueError(f"{family} depth must be an integer >= {minimum}, got {depth!r}")
    return int(depth)


def blocks_per_stage(family: str, depth: int) -> int:
    """n for depth = 6n + 2, or ValueError naming the allowed depths."""
    if isinstance(depth, bool) or int(depth) != depth or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"{family} depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), "
            f"got {depth!r}"
        )
    return (int(depth) - 2) // 6


def layers_per_block(depth: int) -> int:
    """m for depth = 3m + 4, or ValueError naming the allowed depths."""
    if isinstance(depth, bool) or int(depth) != depth or depth < 7 or (depth - 4) % NUM_BLOCKS:
        raise ValueError(
            f"densenet depth must be 3m+4 with m >= 1 (7, 10, ..., 22, 40, 100), got {depth!r}"
        )
    return (int(depth) - 4) // NUM_BLOCKS


def check_depth(family: str, depth: int) -> int:
    """The family's own count for `depth` (hidden layers, n or m), or its ValueError."""
    if family in ("resnet", "vgg"):
        return blocks_per_stage(family, depth)
    if family == "densenet":
        return layers_per_block(depth)
    return check_min_depth(family, depth)
