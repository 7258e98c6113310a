"""The in-place tanh: tanh's values and gradient, written over its input."""

import torch

from src.models.activations import tanh_


def test_tanh_equals_torch_tanh_in_value_and_gradient_and_writes_over_its_input():
    torch.manual_seed(0)
    x = (torch.randn(3, 4, 50) * 5).requires_grad_()
    x.data[0, 0, :3] = torch.tensor([0.0, 1e-6, 40.0])  # zero, tiny, saturated
    temporary = x * 1.0
    y = tanh_(temporary)
    assert y.data_ptr() == temporary.data_ptr()
    torch.testing.assert_close(y, torch.tanh(x), atol=3e-7, rtol=0)
    weights = torch.randn(3, 4, 50)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    (expected,) = torch.autograd.grad((torch.tanh(x) * weights).sum(), x)
    torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-5)


def test_tanh_runs_without_autograd_and_in_bfloat16():
    with torch.inference_mode():
        x = torch.linspace(-6, 6, 101)
        torch.testing.assert_close(tanh_(x.clone()), torch.tanh(x), atol=3e-7, rtol=0)
    x = torch.linspace(-6, 6, 101, dtype=torch.bfloat16)
    torch.testing.assert_close(tanh_(x.clone()), torch.tanh(x), atol=1e-2, rtol=0)
