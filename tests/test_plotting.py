import matplotlib.pyplot as plt
import pytest
import torch

from src.plotting import attention_figure, text_heatmap

SRC, TGT = ["the", "cat", "sleeps"], ["le", "chat", "dort", "<eos>"]


def test_single_head_figure_has_one_heatmap_with_token_ticks():
    weights = torch.softmax(torch.randn(1, 4, 3), dim=-1)
    figure = attention_figure(weights, SRC, TGT, title="the cat sleeps -> le chat dort")
    heatmaps = [ax for ax in figure.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(heatmaps) == 1
    assert [t.get_text() for t in heatmaps[0].get_xticklabels()] == SRC
    assert [t.get_text() for t in heatmaps[0].get_yticklabels()] == TGT
    plt.close(figure)


def test_multi_head_figure_shows_mean_and_every_head():
    weights = torch.softmax(torch.randn(4, 4, 3), dim=-1)
    figure = attention_figure(weights, SRC, TGT)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["mean over heads", "head 0", "head 1", "head 2", "head 3"]
    plt.close(figure)


def test_figure_rejects_weights_that_do_not_fit_the_tokens():
    with pytest.raises(ValueError, match="do not fit"):
        attention_figure(torch.ones(1, 2, 2), SRC, TGT)


def test_text_heatmap_shades_the_strongest_cell_darkest():
    weights = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]])
    lines = text_heatmap(weights, SRC, TGT).splitlines()
    assert lines[1].split()[1] == "██" and lines[2].split()[-1] == "██"
    assert lines[-1].strip() == "2 = sleeps"
