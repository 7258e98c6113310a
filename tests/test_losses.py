import pytest
import torch
import torch.nn.functional as F

from src.losses import attention_entropy, coverage_loss, token_cross_entropy


def token_nll(logits, tgt, pad_id):
    return token_cross_entropy(logits, tgt, pad_id)[1]


def test_token_nll_ignores_padding():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    tgt = torch.tensor([[1, 2, 0], [3, 0, 0]])
    changed = logits.clone()
    changed[0, 2] += 100.0  # logits at padded positions must not matter
    changed[1, 1:] -= 50.0
    assert torch.allclose(token_nll(logits, tgt, pad_id=0), token_nll(changed, tgt, pad_id=0))


def _reference(logits, tgt, pad_id, smoothing):
    flat, target = logits.flatten(0, 1), tgt.flatten()
    flat = flat if flat.dtype == torch.float64 else flat.float()
    loss = F.cross_entropy(flat, target, ignore_index=pad_id, reduction="sum", label_smoothing=smoothing)
    return loss, F.cross_entropy(flat, target, ignore_index=pad_id, reduction="sum")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("nll_weight", [0.0, 0.7])
def test_token_cross_entropy_equals_f_cross_entropy_in_value_and_gradient(smoothing, nll_weight):
    """Both outputs and the gradient of any mix of them, over several cache chunks (10,000 words: ~52 rows
    a chunk, 6 x 25 = 150 rows) with padded positions, match PyTorch's own cross-entropy."""
    torch.manual_seed(0)
    logits = (torch.randn(6, 25, 10_000) * 4).requires_grad_()
    tgt = torch.randint(1, 10_000, (6, 25))
    tgt[0, 20:] = 0
    tgt[3, 5:] = 0
    mine = token_cross_entropy(logits, tgt, pad_id=0, label_smoothing=smoothing)
    ours_grad = torch.autograd.grad(mine[0] * 0.01 + nll_weight * mine[1], logits)[0]
    # the reference in float64: PyTorch's own float32 softmax gradient is off by up to 3.5e-7 here on AVX2-only
    # CPUs (its vectorised exp), ours by 3e-9, so a float32 reference would test the CPU, not the loss
    logits64 = logits.detach().double().requires_grad_()
    theirs = _reference(logits64, tgt, 0, smoothing)
    their_grad = torch.autograd.grad(theirs[0] * 0.01 + nll_weight * theirs[1], logits64)[0]
    for a, b in zip(mine, theirs, strict=True):
        assert torch.allclose(a.double(), b, rtol=1e-5)
    assert torch.allclose(ours_grad.double(), their_grad, atol=1e-7)
    assert ours_grad[0, 20:].abs().sum() == 0  # padded positions get no gradient


def test_token_cross_entropy_of_bf16_logits_returns_a_bf16_gradient_and_no_grad_keeps_none():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 300).bfloat16().requires_grad_()
    tgt = torch.randint(1, 300, (2, 7))
    loss, nll = token_cross_entropy(logits, tgt, pad_id=0, label_smoothing=0.1)
    assert loss.dtype == torch.float32 and torch.allclose(loss, _reference(logits, tgt, 0, 0.1)[0])
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16
    with torch.no_grad():  # evaluation: values only
        assert torch.allclose(token_cross_entropy(logits, tgt, 0)[1], nll)


def test_token_cross_entropy_refuses_a_second_backward_pass():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    loss, _ = token_cross_entropy(logits, torch.tensor([[1, 2, 3]]), pad_id=0)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


def test_coverage_loss_matches_the_formula():
    attn = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]]).unsqueeze(1)  # [1, 1, 3, 3]
    mask = torch.tensor([[True, True, False]])
    # step 0: coverage 0 -> 0; step 1: coverage (.5,.5,0): min = .2+.3+0 = .5; step 2 is padding
    assert torch.isclose(coverage_loss(attn, mask), torch.tensor(0.5))


def test_attention_entropy_is_zero_for_one_hot_and_log_n_for_uniform():
    one_hot = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    uniform = torch.full((1, 1, 1, 4), 0.25)
    mask = torch.ones(1, 1, dtype=torch.bool)
    assert attention_entropy(one_hot, mask) == 0
    assert torch.isclose(attention_entropy(uniform, mask), torch.log(torch.tensor(4.0)))
