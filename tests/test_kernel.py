"""The comparison kernel equals a brute-force float64 reference, exactly, on adversarial tensors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgindex.compare import kernel

from helpers import best_match


def reference(a, b, threshold, rotate, mirror, same):
    """Every pair, every orientation, float64 MSE: the definition, written independently."""
    out = {}
    for i in range(len(a)):
        for j in range(i + 1 if same else 0, len(b)):
            best = best_match(a[i], b[j], rotate, mirror)
            if best[0] <= threshold:
                out[(i, j)] = best
    return out


def run_kernel(a, b, threshold, rotate, mirror, same):
    orientations = kernel.orientation_indices(rotate, mirror)
    m = kernel.match_blocks(a, b, threshold, orientations, same=same)
    n = a.shape[1] * a.shape[2] * 3
    return {
        (int(r), int(c)): (s / n, kernel.ORIENTATIONS[o].rotation, kernel.ORIENTATIONS[o].mirrored)
        for r, c, s, o in zip(m.rows, m.cols, m.ssd, m.orient)
    }


@st.composite
def tensor_sets(draw):
    """Small tensors built to hit the hard cases: rotated, mirrored, near copies, ties, equal sums."""
    px = draw(st.integers(2, 11))
    count = draw(st.integers(2, 9))
    palette = draw(st.sampled_from([(0, 255), (0, 1, 2), (0, 16, 128, 255), tuple(range(256))]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tensors = [rng.choice(np.array(palette, dtype=np.uint8), size=(px, px, 3))]
    for _ in range(count - 1):
        base = tensors[draw(st.integers(0, len(tensors) - 1))]
        how = draw(st.sampled_from(["new", "rotate", "mirror", "nudge", "shuffle", "copy", "grey16"]))
        if how == "new":
            t = rng.choice(np.array(palette, dtype=np.uint8), size=(px, px, 3))
        elif how == "rotate":
            t = np.rot90(base, k=draw(st.integers(1, 3))).copy()
        elif how == "mirror":
            t = np.fliplr(np.rot90(base, k=draw(st.integers(0, 3)))).copy()
        elif how == "nudge":  # near-threshold: a few values off by small amounts
            t = base.astype(np.int16)
            idx = rng.integers(0, t.size, size=draw(st.integers(1, 3)))
            t.flat[idx] += rng.choice([-2, -1, 1, 2], size=len(idx))
            t = np.clip(t, 0, 255).astype(np.uint8)
        elif how == "shuffle":  # same sum, different picture
            t = rng.permutation(base.reshape(-1)).reshape(base.shape)
        elif how == "grey16":  # difPy's uint8 wrap made black and grey-16 look identical
            t = np.full_like(base, 16) if base.max() == 0 else np.zeros_like(base)
        else:
            t = base.copy()
        tensors.append(t)
    stack = np.stack(tensors)
    # thresholds: exactly at some pair's MSE (ties at the boundary), just under it, 0, or wide
    n = px * px * 3
    some = stack[rng.integers(0, count)].astype(np.int64) - stack[rng.integers(0, count)]
    at = float((some**2).sum()) / n
    threshold = draw(st.sampled_from([0.0, at, np.nextafter(at, -1) if at > 0 else 0.0, at + 1.0 / n, 5.0, 200.0, 70000.0]))
    return stack, threshold


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tensor_sets(), rotate=st.booleans(), mirror=st.booleans())
def test_kernel_equals_brute_force_on_one_block(data, rotate, mirror):
    tensors, threshold = data
    assert run_kernel(tensors, tensors, threshold, rotate, mirror, same=True) == reference(
        tensors, tensors, threshold, rotate, mirror, same=True
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tensor_sets(), rotate=st.booleans(), mirror=st.booleans(), split=st.integers(1, 8))
def test_kernel_equals_brute_force_between_two_blocks(data, rotate, mirror, split):
    tensors, threshold = data
    split = min(split, len(tensors) - 1)
    a, b = tensors[:split], tensors[split:]
    assert run_kernel(a, b, threshold, rotate, mirror, same=False) == reference(a, b, threshold, rotate, mirror, same=False)


def test_no_uint8_wraparound():
    black = np.zeros((1, 8, 8, 3), np.uint8)
    grey = np.full((1, 8, 8, 3), 16, np.uint8)
    m = kernel.match_blocks(black, grey, 256.0, (0,), same=False)
    assert len(m) == 1 and m.ssd[0] == 16 * 16 * 8 * 8 * 3  # MSE 256, not 0
    assert len(kernel.match_blocks(black, grey, 255.0, (0,), same=False)) == 0


def test_all_four_rotations_are_tried():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (1, 10, 10, 3), dtype=np.uint8)
    for k, clockwise in ((3, 90), (2, 180), (1, 270)):  # np.rot90 k is counter-clockwise
        b = np.rot90(a, k=k, axes=(1, 2)).copy()  # b is a turned `clockwise` degrees
        m = kernel.match_blocks(a, b, 0.0, kernel.orientation_indices(True, False), same=False)
        assert len(m) == 1 and kernel.ORIENTATIONS[m.orient[0]].rotation == clockwise


def test_mirrored_copy_is_found_only_with_mirror():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (1, 9, 9, 3), dtype=np.uint8)
    b = np.rot90(a[:, :, ::-1], k=-1, axes=(1, 2)).copy()  # flipped, then turned 90 clockwise
    assert len(kernel.match_blocks(a, b, 0.0, kernel.orientation_indices(True, False), same=False)) == 0
    m = kernel.match_blocks(a, b, 0.0, kernel.orientation_indices(True, True), same=False)
    assert len(m) == 1 and kernel.ORIENTATIONS[m.orient[0]] == kernel.Orientation(90, True)


def test_threshold_boundary_is_inclusive_in_float64():
    n = 8 * 8 * 3
    a = np.zeros((1, 8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 3  # ssd 9
    assert len(kernel.match_blocks(a, b, 9 / n, (0,), same=False)) == 1
    assert len(kernel.match_blocks(a, b, np.nextafter(9 / n, 0), (0,), same=False)) == 0


def test_grid_edges_are_symmetric():
    for px in range(1, 80):
        edges = kernel.grid_edges(px)
        assert edges[0] == 0 and edges[-1] == px
        assert list(px - edges[::-1]) == list(edges)


@pytest.mark.slow
def test_full_size_tensors_at_the_threshold_boundary():
    """50x50 tensors with large values, where float32 rounding is largest: pairs whose MSE is
    exactly the threshold, one step above and one step below, must all be decided exactly."""
    rng = np.random.default_rng(11)
    base = rng.integers(20, 236, (12, 50, 50, 3), dtype=np.uint8)
    variants = [base]
    # offsets constant over each 10x10 block: the block-sum bound equals the SSD, so only a
    # correct rounding margin keeps these pairs when the threshold is exactly their MSE
    offsets = rng.integers(-3, 4, (12, 5, 5, 3))
    variants.append((base.astype(np.int16) + np.repeat(np.repeat(offsets, 10, 1), 10, 2)).astype(np.uint8))
    for step in (1, 2, 3):  # near copies at graded distances, some turned
        t = base.astype(np.int16)
        idx = rng.integers(0, t[0].size, size=step * 40)
        for k in range(len(t)):
            t[k].flat[idx] += rng.choice([-step, step], size=len(idx))
        t = np.clip(t, 0, 255).astype(np.uint8)
        variants.append(np.rot90(t, k=step % 4, axes=(1, 2)).copy())
    tensors = np.concatenate(variants)
    pairs = kernel.match_blocks(tensors, tensors, 70000.0, kernel.orientation_indices(True, True), same=True)
    n = 50 * 50 * 3
    for ssd in np.unique(pairs.ssd)[:60]:
        for threshold in (ssd / n, np.nextafter(ssd / n, 0), np.nextafter(ssd / n, 1)):
            got = kernel.match_blocks(tensors, tensors, threshold, kernel.orientation_indices(True, True), same=True)
            expected = {(int(r), int(c)) for r, c, s in zip(pairs.rows, pairs.cols, pairs.ssd) if s / n <= threshold}
            assert {(int(r), int(c)) for r, c in zip(got.rows, got.cols)} == expected
    # and the unpruned pairs themselves against the definition
    for r, c, s, o in list(zip(pairs.rows, pairs.cols, pairs.ssd, pairs.orient))[:60]:
        best = best_match(tensors[r], tensors[c], True, True)
        assert (s / n, kernel.ORIENTATIONS[o].rotation, kernel.ORIENTATIONS[o].mirrored) == best


@given(st.integers(0, 2**32 - 1), st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_inverse_orientation_is_the_same_pair_seen_from_the_other_side(seed, px):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, (2, 1, px, px, 3), dtype=np.uint8)
    for o in range(len(kernel.ORIENTATIONS)):
        assert kernel.exact_ssd(a, b, o)[0] == kernel.exact_ssd(b, a, kernel.INVERSE[o])[0]
        reference = ((a.astype(np.int64) - kernel.orient(b, o).astype(np.int64)) ** 2).sum()
        assert kernel.exact_ssd(a, b, o)[0] == reference  # the float32 runs are exact


@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(0, 7), st.integers(0, 200_000))
@settings(max_examples=80, deadline=None)
def test_ssd_within_is_exact_up_to_the_limit_and_past_it_beyond(seed, px, orientation, limit):
    rng = np.random.default_rng(seed)
    ta = rng.integers(0, 256, (6, px, px, 3), dtype=np.uint8)
    tb = np.concatenate([ta[:3], rng.integers(0, 256, (3, px, px, 3), dtype=np.uint8)])
    tb[:3] = np.clip(tb[:3].astype(np.int16) + rng.integers(-3, 4, tb[:3].shape), 0, 255)  # near copies
    ia, ib = rng.integers(0, 6, 20), rng.integers(0, 6, 20)
    got = kernel.ssd_within(ta, ia, tb, ib, orientation, float(limit))
    exact = kernel.exact_ssd(ta[ia], tb[ib], orientation)
    assert ((got == exact) | ((got > limit) & (exact > limit))).all()
    assert (got[exact <= limit] == exact[exact <= limit]).all() and (got <= exact).all()


@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(0, 7))
@settings(max_examples=60, deadline=None)
def test_a_sample_turns_with_its_tensor_and_its_ssd_is_part_of_the_tensors(seed, px, orientation):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, (2, 1, px, px, 3), dtype=np.uint8)
    np.testing.assert_array_equal(kernel.sample(kernel.orient(b, orientation)), kernel.orient(kernel.sample(b), orientation))
    assert kernel.exact_ssd(kernel.sample(a), kernel.sample(b), orientation)[0] <= kernel.exact_ssd(a, b, orientation)[0]


@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(0, 7))
@settings(max_examples=30, deadline=None)
def test_dense_ssd_by_matrix_products_is_exact(seed, px, orientation):
    rng = np.random.default_rng(seed)
    tensors = rng.integers(0, 256, (40, px, px, 3), dtype=np.uint8)
    tensors[20:] = np.where(rng.random((20, px, px, 3)) < 0.5, 255, 0)  # the largest products
    ia, ib = rng.integers(0, 40, 2500), rng.integers(0, 40, 2500)  # dense: 2,500 pairs among 40 x 40
    dense = kernel._dense_ssd(tensors, ia, tensors, ib, orientation)
    assert dense is not None
    np.testing.assert_array_equal(dense, kernel.exact_ssd(tensors[ia], tensors[ib], orientation))
