"""`python -m src.visualize format=html`: the attention explorer page (src/explorer.py, src/assets/).

The page's data is checked against the model here; the page itself is opened in headless Chromium (Debian's
`chromium` and `chromium-driver`, driven by Selenium), which must show the model's weights after the head,
the layer and the hypothesis are switched, log no error, and request nothing but the file itself.
"""

import base64
import json
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from src.alignment import GoldLinks
from src.checkpoint import load_model
from src.data.batch import collate_sources, pad
from src.data.codec import Codec
from src.data.tokenizers import WordTokenizer
from src.data.vocab import BOS_ID, Vocabulary
from src.decoding import SequenceGenerator
from src.errors import ConfigError
from src.explorer import Explorer, Sentence, gold_cells
from src.models.attention import CoverageAttention
from src.models.decoders import RecurrentDecoder
from src.models.encoders import RecurrentEncoder
from src.models.seq2seq import Seq2Seq
from src.visualize import visualize
from tests.conftest import compose_config, run_entry

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["1 2 3 4", "5 6 7 8 9"]
BEAM = 3


def page_data(html: str) -> dict:
    """The JSON the page carries."""
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def floats(encoded: str, *shape: int) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(encoded), dtype="<f4").copy()).view(*shape)


@pytest.fixture(scope="module")
def explorer_page(tiny_transformer_checkpoint, tmp_path_factory) -> dict:
    """The explorer page of SENTENCES and one pair with gold links, 3-best, from the tiny Transformer."""
    directory = tmp_path_factory.mktemp("explorer")
    (directory / "pairs.tsv").write_text("1 2 3\t3 2 1\n", encoding="utf-8")
    (directory / "gold.txt").write_text("1-3 2-2 3p1\n", encoding="utf-8")
    cfg = compose_config(
        "visualize",
        [
            f"ckpt_path={tiny_transformer_checkpoint['ckpt']}",
            f"sentences={json.dumps(SENTENCES)}",
            f"pairs={directory / 'pairs.tsv'}",
            f"gold={directory / 'gold.txt'}",
            "format=html",
            f"output_dir={directory}",
            f"decode.beam_size={BEAM}",
            f"decode.n_best={BEAM}",
        ],
    )
    (path,) = visualize(cfg)
    return {"path": path, "ckpt": tiny_transformer_checkpoint["ckpt"]}


def model_view(ckpt: Path, sentence: str, rank: int) -> dict:
    """What the model computes for the hypothesis of `rank` (0 = best) of a 3-best search of `sentence`:
    the hypothesis (tokens, beam-search attention) and every attention read with its tokens fed in."""
    loaded = load_model(ckpt)
    src, src_len = collate_sources([loaded.codec.encode_src(sentence)])
    hypothesis = SequenceGenerator(beam_size=BEAM, n_best=BEAM)(loaded.net, src, src_len)[0][rank]
    with torch.inference_mode():
        maps = loaded.net.attention_maps(src, src_len, pad([[BOS_ID, *hypothesis.tokens]]))
    return {"hypothesis": hypothesis, "maps": {kind: weights[0] for kind, weights in maps.items()}}


# ------------------------------------------------------------------------------------------ the page's data


def test_the_page_is_one_file_that_names_nothing_outside_itself(explorer_page):
    html = explorer_page["path"].read_text(encoding="utf-8")
    assert "<script>" in html and "<style>" in html  # inline
    # the weights travel as base64, whose alphabet holds "/": only the page's code may not say "//host"
    code = re.sub(
        r'(<script type="application/json" id="explorer-data">).*?(</script>)', r"\1\2", html, flags=re.S
    )
    assert not re.search(r"https?:|//[a-z]", code, re.I)
    assert not re.search(r"https?:", html, re.I)  # not in the data either (":" is not a base64 character)
    assert {m.group(1) for m in re.finditer(r'(?:src|href)="([^"]*)"', html)} == {"data:,"}


def test_the_page_holds_every_layer_and_head_of_every_attention(explorer_page):
    data = page_data(explorer_page["path"].read_text(encoding="utf-8"))
    assert {kind: (shape["layers"], shape["heads"]) for kind, shape in data["kinds"].items()} == {
        "cross": (2, 2),
        "encoder": (2, 2),
        "decoder": (2, 2),
    }
    sentence = data["sentences"][1]
    assert sentence["source"] == SENTENCES[1]
    assert [h["label"] for h in sentence["hypotheses"]] == ["1", "2", "3"]
    expected = model_view(explorer_page["ckpt"], SENTENCES[1], rank=2)
    shown = sentence["hypotheses"][2]
    tgt_len, src_len = len(expected["hypothesis"].tokens) + 1, len(sentence["src_tokens"])
    assert shown["score"] == pytest.approx(expected["hypothesis"].score)
    cross = floats(shown["cross"], 2, 2, tgt_len, src_len)
    torch.testing.assert_close(cross, expected["maps"]["cross"], atol=1e-6, rtol=0)
    # the last layer is what the beam search itself computed
    torch.testing.assert_close(cross[-1], expected["hypothesis"].attention, atol=1e-5, rtol=0)
    decoder = floats(shown["decoder"], 2, 2, tgt_len, tgt_len)
    torch.testing.assert_close(decoder, expected["maps"]["decoder"], atol=1e-6, rtol=0)
    encoder = floats(sentence["encoder"], 2, 2, src_len, src_len)
    torch.testing.assert_close(encoder, expected["maps"]["encoder"], atol=1e-6, rtol=0)


def test_a_pair_adds_its_reference_with_the_gold_links_on_its_tokens(explorer_page):
    data = page_data(explorer_page["path"].read_text(encoding="utf-8"))
    pair = data["sentences"][2]
    assert pair["source"] == "1 2 3"
    reference = pair["hypotheses"][-1]
    assert reference["label"] == "reference"
    assert reference["tokens"] == ["3", "2", "1", "<eos>"]
    # gold 1-3 2-2 3p1 (1-based, source word first) -> (row = target token, column = source token)
    assert reference["gold"] == {"sure": [[1, 1], [2, 0]], "possible": [[0, 2]]}


def test_gold_links_mark_every_token_pair_of_their_words():
    gold = GoldLinks(sure=frozenset({(0, 1)}), possible=frozenset({(0, 1), (1, 0)}))
    # source words: 0 = tokens 0, 1; 1 = token 2. target words: 0 = token 0; 1 = tokens 1, 2
    cells = gold_cells(gold, src_owners=[0, 0, 1], tgt_owners=[0, 1, 1])
    assert cells == {"sure": [[1, 0], [1, 1], [2, 0], [2, 1]], "possible": [[0, 2]]}


def test_a_coverage_model_shows_its_own_coverage_vector():
    torch.manual_seed(0)
    net = Seq2Seq(
        10,
        10,
        partial(RecurrentEncoder, hidden_size=8, dropout=0.0),
        partial(CoverageAttention, hidden_size=8),
        partial(RecurrentDecoder, hidden_size=8, dropout=0.0),
        embedding_size=8,
    ).eval()
    codec = digit_codec()
    explorer = Explorer(net, codec, SequenceGenerator(max_len_b=4))
    data = explorer.page_data([Sentence("4 5 6")], title="coverage", model={"description": ""})
    assert data["coverage"] and list(data["kinds"]) == ["cross"]
    shown = data["sentences"][0]["hypotheses"][0]
    rows, src_len = len(shown["tokens"]), len(data["sentences"][0]["src_tokens"])
    coverage = floats(shown["coverage"], rows, src_len)
    # the model's coverage state after reading the hypothesis
    tokens = codec.tgt_vocab.encode(shown["in_tokens"])
    src, src_len_tensor = collate_sources([codec.encode_src("4 5 6")])
    with torch.inference_mode():
        cache, state = net.start_decoding(net.encode(src, src_len_tensor))
        _, _, state = net.decoder(net.tgt_embedding(torch.tensor([tokens])), cache, state)
    torch.testing.assert_close(coverage[-1], state["attention.coverage"][0], atol=1e-6, rtol=0)


def digit_codec() -> Codec:
    """A word codec over the digits 0-5 on both sides (ids 4-9), built without training."""
    vocab = Vocabulary([str(digit) for digit in range(6)])
    return Codec(WordTokenizer(), WordTokenizer(), vocab, vocab)


def test_gold_without_pairs_is_a_config_error(tiny_checkpoint, tmp_path):
    cfg = compose_config(
        "visualize",
        [
            f"ckpt_path={tiny_checkpoint['ckpt']}",
            "format=html",
            "sentences=[1]",
            f"gold={tmp_path / 'g.txt'}",
        ],
    )
    with pytest.raises(ConfigError, match="gold= needs pairs="):
        visualize(cfg)


def test_an_unknown_format_is_a_config_error(tiny_checkpoint):
    cfg = compose_config("visualize", [f"ckpt_path={tiny_checkpoint['ckpt']}", "format=svg", "sentences=[1]"])
    with pytest.raises(ConfigError, match="format=svg is unknown"):
        visualize(cfg)


@pytest.mark.slow
def test_html_from_the_command_line_for_a_recurrent_model(tiny_checkpoint, tmp_path):
    result = run_entry(
        "src.visualize",
        f"ckpt_path={tiny_checkpoint['ckpt']}",
        'sentences=["1 2 3"]',
        "format=html",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (page,) = (tmp_path / "outputs" / "visualize" / "runs").glob("*/attention.html")
    data = page_data(page.read_text(encoding="utf-8"))
    assert list(data["kinds"]) == ["cross"] and data["kinds"]["cross"] == {
        "label": data["kinds"]["cross"]["label"],
        "layers": 1,
        "heads": 1,
    }
    assert "Saved the attention explorer of 1 sentences" in result.stdout


# ------------------------------------------------------------------------------------------ in a browser


@pytest.fixture
def browser():
    """Headless Chromium under Selenium, logging the console and the network; skipped without them."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver "
            "(.ci/run installs them)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    session = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def severe_console_messages(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def hover_weight(browser, row: int, col: int) -> tuple[float, str]:
    """Hover the heatmap cell (row, col); the weight and the text the page then shows."""
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    cell = browser.find_element(By.CSS_SELECTOR, f'#heatmap td[data-row="{row}"][data-col="{col}"]')
    ActionChains(browser).move_to_element(cell).perform()
    info = browser.find_element(By.ID, "info")
    return float(info.get_attribute("data-weight")), info.text


def choose(browser, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, select_id)).select_by_value(value)


def test_the_page_shows_the_models_weights_after_switching_head_and_hypothesis(explorer_page, browser):
    from selenium.webdriver.common.by import By

    browser.get(explorer_page["path"].as_uri())
    assert browser.find_elements(By.CSS_SELECTOR, "#heatmap td[data-weight]")
    choose(browser, "sentence", "1")
    expected = model_view(explorer_page["ckpt"], SENTENCES[1], rank=2)
    src_tokens = browser.find_element(By.ID, "source").text.split()

    browser.find_element(By.CSS_SELECTOR, '#hypotheses tbody tr[data-index="2"]').click()
    choose(browser, "kind", "cross")
    choose(browser, "layer", "1")
    choose(browser, "head", "1")
    weight, text = hover_weight(browser, 1, 2)
    assert weight == pytest.approx(expected["maps"]["cross"][1, 1, 1, 2].item(), abs=1e-6)
    assert weight == pytest.approx(expected["hypothesis"].attention[1, 1, 2].item(), abs=1e-5)
    assert src_tokens[2] in text  # both tokens are named
    choose(browser, "head", "mean")
    weight, _ = hover_weight(browser, 1, 2)
    assert weight == pytest.approx(expected["maps"]["cross"][1, :, 1, 2].mean().item(), abs=1e-6)

    choose(browser, "kind", "encoder")
    choose(browser, "layer", "0")
    choose(browser, "head", "1")
    weight, _ = hover_weight(browser, 3, 0)
    assert weight == pytest.approx(expected["maps"]["encoder"][0, 1, 3, 0].item(), abs=1e-6)
    choose(browser, "kind", "decoder")
    weight, _ = hover_weight(browser, 2, 1)
    assert weight == pytest.approx(expected["maps"]["decoder"][0, 1, 2, 1].item(), abs=1e-6)

    choose(browser, "sentence", "2")  # the pair: its reference, with the gold links drawn
    browser.find_element(By.CSS_SELECTOR, '#hypotheses tbody tr[data-index="3"]').click()
    choose(browser, "kind", "cross")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#heatmap td.gold-sure")) == 2
    assert severe_console_messages(browser) == []


def test_the_page_makes_no_network_request(explorer_page, browser):
    from selenium.webdriver.common.by import By

    url = explorer_page["path"].as_uri()
    browser.get(url)
    browser.find_element(By.CSS_SELECTOR, '#hypotheses tbody tr[data-index="1"]').click()
    requested = [
        message["params"]["request"]["url"]
        for message in (json.loads(entry["message"])["message"] for entry in browser.get_log("performance"))
        if message["method"] == "Network.requestWillBeSent"
    ]
    assert url in requested  # the log does see requests
    assert [request for request in requested if request != url and not request.startswith("data:")] == []
    assert severe_console_messages(browser) == []
