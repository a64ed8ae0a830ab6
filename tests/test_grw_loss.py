import itertools
import math

import pytest
import torch

from grw import GrwSmoothingLoss, windows
from grw.reference import reference_grw_loss, reference_ordering_logits


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def test_worked_example_from_the_definition():
    # T=4, K=1, alpha=1, Z=[0,1,2,3]: accelerations of the 6 orders that keep frame 0 first.
    accelerations = [(0, 0), (1, -3), (-5, 3), (-3, 3), (-1, -3), (-4, 0)]  # identity first
    logits = [-0.5 * (a * a + b * b) for a, b in accelerations]
    cross_entropy = math.log(sum(math.exp(l) for l in logits)) - logits[0]
    velocity = 0.5 * (1 + 1 + 1)
    expected = cross_entropy + 1.0 * velocity

    z = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 4, 1)
    loss = GrwSmoothingLoss(window=4, alpha=1.0)(z)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_two_dimensional_batch_by_hand():
    # T=3 has two orders: (0,1,2) with acceleration z2 - 2 z1 + z0, and (0,2,1) with z1 - 2 z2 + z0.
    z = torch.tensor([
        [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
        [[0.0, 0.0], [0.0, 2.0], [0.0, 0.0]],
    ])
    # window 1: identity a = (-1, 1) -> logit -1; swapped a = (-1, -2) -> logit -2.5; V = 0.5 * (1 + 1)
    ce1 = math.log(math.exp(-1.0) + math.exp(-2.5)) + 1.0
    v1 = 1.0
    # window 2: identity a = (0, -4) -> logit -8; swapped a = (0, 2) -> logit -2; V = 0.5 * (4 + 4)
    ce2 = math.log(math.exp(-8.0) + math.exp(-2.0)) + 8.0
    v2 = 4.0
    expected = (ce1 + ce2) / 2 + 0.5 * (v1 + v2) / 2

    assert GrwSmoothingLoss(window=3, alpha=0.5)(z).item() == pytest.approx(expected, rel=1e-6)


def test_batch_mean_is_invariant_to_repetition_and_order():
    loss = GrwSmoothingLoss(window=5)
    z = torch.randn(3, 5, 8)
    assert loss(z[:1].repeat(4, 1, 1)).item() == pytest.approx(loss(z[:1]).item(), rel=1e-6)
    assert loss(z.flip(0)).item() == pytest.approx(loss(z).item(), rel=1e-6)


@pytest.mark.parametrize("offset", [3.0, 1e3])
def test_constant_offset_changes_nothing(offset):
    torch.manual_seed(0)
    loss = GrwSmoothingLoss(window=5)
    z = torch.randn(6, 5, 32)
    shift = offset * torch.randn(1, 1, 32)
    shifted = z + shift
    # The oracle sees exactly the float32 input, but computes in float64.
    oracle = reference_grw_loss(shifted.double(), loss.perms.cpu(), loss.alpha)
    assert rel_diff(loss(shifted), oracle) < 1e-5
    assert rel_diff(loss(shifted), loss(z)) < 1e-4  # the offset itself was rounded in float32

    shifted.requires_grad_()
    (fast_grad,) = torch.autograd.grad(loss(shifted), shifted)
    shifted64 = shifted.detach().double().requires_grad_()
    (oracle_grad,) = torch.autograd.grad(reference_grw_loss(shifted64, loss.perms, loss.alpha), shifted64)
    assert rel_diff(fast_grad, oracle_grad) < 1e-5


def test_exhaustive_permutation_set():
    for window in range(3, 8):
        perms = GrwSmoothingLoss(window).perms
        expected = {(0, *tail) for tail in itertools.permutations(range(1, window))}
        assert perms.shape == (math.factorial(window - 1), window)
        assert {tuple(p) for p in perms.tolist()} == expected
        assert perms[0].tolist() == list(range(window))


def test_sampled_permutation_set_is_deterministic_distinct_and_starts_with_identity():
    a = GrwSmoothingLoss(window=10, max_perms=200, seed=3).perms
    b = GrwSmoothingLoss(window=10, max_perms=200, seed=3).perms
    c = GrwSmoothingLoss(window=10, max_perms=200, seed=4).perms
    assert a.shape == (200, 10)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a[0].tolist() == list(range(10))
    rows = [tuple(p) for p in a.tolist()]
    assert len(set(rows)) == 200 and tuple(range(10)) not in rows[1:]
    assert (a[:, 0] == 0).all()
    assert (a.sort(dim=1).values == torch.arange(10)).all()  # each row is a permutation


@pytest.mark.parametrize("window", [3, 4, 5, 6, 7, 10])
def test_fast_loss_matches_oracle(window):
    torch.manual_seed(window)
    loss = GrwSmoothingLoss(window, alpha=0.7, max_perms=300)
    z = torch.randn(5, window, 24)
    oracle = reference_grw_loss(z.double(), loss.perms, loss.alpha)
    assert rel_diff(loss(z), oracle) < 1e-5
    assert rel_diff(loss(z.double()), oracle) < 1e-12
    oracle_logits = reference_ordering_logits(z.double(), loss.perms)
    assert rel_diff(loss.ordering_logits(z), oracle_logits) < 1e-5


@pytest.mark.parametrize("window", [5, 7, 10])
def test_gradients_match_oracle(window):
    torch.manual_seed(1)
    loss = GrwSmoothingLoss(window, max_perms=100)
    z = torch.randn(4, window, 16, requires_grad=True)
    (fast_grad,) = torch.autograd.grad(loss(z), z)
    z64 = z.detach().double().requires_grad_()
    (oracle_grad,) = torch.autograd.grad(reference_grw_loss(z64, loss.perms, loss.alpha), z64)
    assert rel_diff(fast_grad, oracle_grad) < 1e-5


def test_low_precision_inputs_are_computed_in_float32():
    torch.manual_seed(2)
    loss = GrwSmoothingLoss(window=5)
    z = torch.randn(4, 5, 16)
    oracle = reference_grw_loss(z.bfloat16().double(), loss.perms, loss.alpha)
    result = loss(z.bfloat16())
    assert result.dtype == torch.float32
    assert rel_diff(result, oracle) < 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert rel_diff(loss(z), reference_grw_loss(z.double(), loss.perms, loss.alpha)) < 1e-5


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="at least 3"):
        GrwSmoothingLoss(window=2)
    with pytest.raises(ValueError, match="max_perms"):
        GrwSmoothingLoss(window=8, max_perms=1)
    loss = GrwSmoothingLoss(window=5)
    with pytest.raises(ValueError, match=r"\[B, 5, K\]"):
        loss(torch.randn(5, 8))
    with pytest.raises(ValueError, match=r"\[B, 5, K\]"):
        loss(torch.randn(2, 6, 8))


def test_windows_cuts_non_overlapping_windows_and_drops_the_remainder():
    z = torch.arange(2 * 12 * 3, dtype=torch.float32).view(2, 12, 3)
    cut = windows(z, 5)
    assert cut.shape == (4, 5, 3)  # 2 sequences x 2 windows; frames 10, 11 dropped
    assert torch.equal(cut[0], z[0, 0:5])
    assert torch.equal(cut[1], z[0, 5:10])
    assert torch.equal(cut[2], z[1, 0:5])
    assert torch.equal(cut[3], z[1, 5:10])


def test_windows_with_stride_and_errors():
    z = torch.randn(1, 7, 2)
    cut = windows(z, 3, stride=2)
    assert cut.shape == (3, 3, 2)
    assert torch.equal(cut[1], z[0, 2:5])
    with pytest.raises(ValueError, match="shorter than one window"):
        windows(torch.randn(2, 4, 3), 5)
    with pytest.raises(ValueError, match=r"\[B, N, K\]"):
        windows(torch.randn(4, 3), 2)
