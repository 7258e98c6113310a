import torch

from src.losses import attention_entropy, coverage_loss, token_nll


def test_token_nll_ignores_padding():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    tgt = torch.tensor([[1, 2, 0], [3, 0, 0]])
    changed = logits.clone()
    changed[0, 2] += 100.0  # logits at padded positions must not matter
    changed[1, 1:] -= 50.0
    assert torch.allclose(token_nll(logits, tgt, pad_id=0), token_nll(changed, tgt, pad_id=0))


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
