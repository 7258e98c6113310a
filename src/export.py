"""Export a trained Transformer for CTranslate2: `python -m src.export ckpt_path=... [format=ctranslate2]`.

CTranslate2 (Klein et al., OpenNMT) is an inference engine for Transformer models, faster than PyTorch
decoding on CPUs (its own benchmarks: 2-4x). It has no recurrent path, so only models with
`encoder=transformer decoder=transformer attention=multihead` export. The mapping, layer by layer (pre-LN, as
ours; the spec of `ctranslate2.specs.TransformerSpec`):

    embeddings (scaled by sqrt(d_model)) + our position table      -> {encoder,decoder}.embeddings, position_encodings
    encoder layer: self_attn.in_proj (q, k, v fused), out_proj, norm1, linear1/2, norm2
                                                                     -> self_attention.linear[0], [1], layer_norm, ffn
    decoder layer: self_attention (fused), cross-attention query_layer, key_layer + value_layer (fused),
                   output_layer, and their LayerNorms, feed_forward  -> self_attention, attention, ffn
    final LayerNorms, output layer                                  -> {encoder,decoder}.layer_norm, decoder.projection

Sources are fed without <bos>/<eos> and the decoder starts from <bos>, as ours do; LayerNorm epsilon 1e-5
(PyTorch's). `ctranslate2` is an optional dependency (`pip install -e ".[export]"`).
"""

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.checkpoint import load_model
from src.config import register_resolvers
from src.data.codec import Codec
from src.data.vocab import BOS, EOS, UNK
from src.entry import entry_point
from src.errors import ConfigError
from src.models.attention import MultiHeadAttention
from src.models.decoders import TransformerDecoder
from src.models.encoders import TransformerEncoder
from src.models.seq2seq import Seq2Seq
from src.translator import length_sorted_batches

log = logging.getLogger("seq2seq-lab")
register_resolvers()

FORMATS = ("ctranslate2",)


def require_ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError(
            'format=ctranslate2 needs the optional dependency ctranslate2: pip install -e ".[export]"'
        ) from None
    return ctranslate2


def check_exportable(net: Seq2Seq) -> None:
    """What CTranslate2's Transformer spec can hold: our Transformer with multi-head cross-attention of the
    decoder's size and heads, and no input or memory projections."""
    encoder, decoder = net.encoder, net.decoder
    if not (isinstance(encoder, TransformerEncoder) and isinstance(decoder, TransformerDecoder)):
        raise ConfigError(
            "format=ctranslate2 exports Transformer models only (encoder=transformer decoder=transformer "
            f"attention=multihead); this one has {type(encoder).__name__} and {type(decoder).__name__}. "
            "CTranslate2 has no recurrent or convolutional path."
        )
    cross = decoder.layers[0].cross_attention
    heads = decoder.layers[0].self_attention.num_heads
    problems = []
    if not isinstance(cross, MultiHeadAttention):
        problems.append(f"attention={cross.name} (CTranslate2 has multi-head cross-attention only)")
    elif cross.num_heads != heads or cross.head_size * cross.num_heads != decoder.d_model:
        problems.append(
            f"attention.num_heads={cross.num_heads} and attention.hidden_size={cross.head_size * cross.num_heads} "
            f"must equal decoder.num_heads={heads} and decoder.d_model={decoder.d_model}"
        )
    if encoder.layers[0].self_attn.num_heads != heads or encoder.d_model != decoder.d_model:
        problems.append("the encoder and the decoder need the same d_model and num_heads")
    if not isinstance(encoder.input_layer, torch.nn.Identity) or not isinstance(
        decoder.input_layer, torch.nn.Identity
    ):
        problems.append("model.net.embedding_size must equal d_model (no input projection)")
    if problems:
        raise ConfigError("format=ctranslate2 cannot hold this model: " + "; ".join(problems) + ".")


def ctranslate2_spec(net: Seq2Seq, codec: Codec) -> Any:
    """The `ctranslate2.specs.TransformerSpec` of `net`, with its vocabularies."""
    require_ctranslate2()
    from ctranslate2.specs import transformer_spec  # the optional dependency, once it is known to be there

    check_exportable(net)
    encoder, decoder = net.encoder, net.decoder
    spec = transformer_spec.TransformerSpec.from_config(
        (len(encoder.layers), len(decoder.layers)), decoder.layers[0].self_attention.num_heads, pre_norm=True
    )
    spec.config.layer_norm_epsilon = encoder.norm.eps
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = UNK, BOS, EOS
    spec.config.decoder_start_token = BOS

    def value(tensor: torch.Tensor) -> Any:
        return tensor.detach().float().cpu().numpy()

    def linear(target: Any, *layers: Any) -> None:
        """One linear spec from our layers (several are concatenated along the outputs: fused)."""
        target.weight = value(torch.cat([layer.weight for layer in layers]))
        target.bias = value(torch.cat([layer.bias for layer in layers]))

    def fused_self_attention(target: Any, attention: torch.nn.MultiheadAttention) -> None:
        target.linear[0].weight, target.linear[0].bias = (
            value(attention.in_proj_weight),
            value(attention.in_proj_bias),
        )
        linear(target.linear[1], attention.out_proj)

    def norm(target: Any, layer_norm: torch.nn.LayerNorm) -> None:
        target.gamma, target.beta = value(layer_norm.weight), value(layer_norm.bias)

    for side, embedding, module in (
        ("encoder", net.src_embedding, encoder),
        ("decoder", net.tgt_embedding, decoder),
    ):
        target = getattr(spec, side)
        # the encoder's spec holds a list of tables (one per source feature), the decoder's one table
        embeddings = target.embeddings[0] if isinstance(target.embeddings, list) else target.embeddings
        embeddings.weight = value(embedding.weight)
        target.scale_embeddings = True  # ours: sqrt(d_model) * embedding + position
        target.position_encodings.encodings = value(
            module.positions.positions(module.positions.max_positions)
        )
        norm(target.layer_norm, module.norm)
    for target, layer in zip(spec.encoder.layer, encoder.layers, strict=True):
        fused_self_attention(target.self_attention, layer.self_attn)
        norm(target.self_attention.layer_norm, layer.norm1)
        linear(target.ffn.linear_0, layer.linear1)
        linear(target.ffn.linear_1, layer.linear2)
        norm(target.ffn.layer_norm, layer.norm2)
    for target, layer in zip(spec.decoder.layer, decoder.layers, strict=True):
        fused_self_attention(target.self_attention, layer.self_attention)
        norm(target.self_attention.layer_norm, layer.self_attention_norm)
        cross = layer.cross_attention
        linear(target.attention.linear[0], cross.query_layer)
        linear(target.attention.linear[1], cross.key_layer, cross.value_layer)
        linear(target.attention.linear[2], cross.output_layer)
        norm(target.attention.layer_norm, layer.cross_attention_norm)
        linear(target.ffn.linear_0, layer.feed_forward[0])
        linear(target.ffn.linear_1, layer.feed_forward[3])
        norm(target.ffn.layer_norm, layer.feed_forward_norm)
    linear(spec.decoder.projection, net.output_layer)
    spec.register_source_vocabulary(codec.src_vocab.to_list())
    spec.register_target_vocabulary(codec.tgt_vocab.to_list())
    return spec


def export_ctranslate2(net: Seq2Seq, codec: Codec, output: Path, quantization: str | None = None) -> Path:
    """Write `net` as a CTranslate2 model folder (model.bin, the vocabularies, config.json)."""
    spec = ctranslate2_spec(net.eval(), codec)
    spec.validate()
    spec.optimize(quantization=quantization)
    output.mkdir(parents=True, exist_ok=True)
    spec.save(str(output))
    return output


def translate_ctranslate2(
    translator: Any, codec: Codec, sources: list[str], beam_size: int, max_len_a: float, max_len_b: int,
    batch_size: int = 64,
) -> list[list[int]]:  # fmt: skip
    """Target ids of the best translation of each source with a `ctranslate2.Translator`, in input order:
    batches of similar length, as our `Translator` forms them, each limited to max_len_a * its longest
    source + max_len_b tokens (CTranslate2 takes one limit per batch, ours one per sentence)."""
    tokens = [codec.src_tokens(source) for source in sources]
    outputs: list[list[int]] = [[] for _ in sources]
    for chunk in length_sorted_batches([len(t) for t in tokens], batch_size):
        longest = max(len(tokens[i]) for i in chunk)
        results = translator.translate_batch(
            [tokens[i] for i in chunk],
            beam_size=beam_size,
            length_penalty=0.0,  # CTranslate2's default (1) divides scores by length; ours: decode.length_penalty=0
            max_decoding_length=int(max_len_a * longest + max_len_b),  # tokens before <eos>, as ours
            max_batch_size=batch_size,
        )
        for i, result in zip(chunk, results, strict=True):
            outputs[i] = codec.tgt_vocab.encode(result.hypotheses[0])
    return outputs


def export(cfg: DictConfig) -> Path:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is missing: name the checkpoint to export, e.g. ckpt_path=<best.ckpt>")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format} is unknown: use {', '.join(FORMATS)}.")
    require_ctranslate2()
    loaded = load_model(cfg.ckpt_path)
    output = Path(cfg.output) if cfg.output else Path(cfg.ckpt_path).parent / "ctranslate2"
    export_ctranslate2(loaded.net, loaded.codec, output, cfg.quantization)
    log.info(
        "Done.\n  CTranslate2 model: %s\n  Use it: ctranslate2.Translator(%r).translate_batch([tokens, ...]) "
        "with the source tokens as the model sees them (src.export.translate_ctranslate2)",
        output,
        str(output),
    )
    return output


@entry_point("export")
def main(cfg: DictConfig) -> Path:
    return export(cfg)


if __name__ == "__main__":
    main()
