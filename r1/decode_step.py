"""One decode step of a Llama-family model without the module machinery: the same ops on the same tensors.

Why: at decode time a small model is dispatch-bound. Of ~0.75 ms per token for the tiny Qwen2 on one CPU thread,
about a third is `nn.Module.__call__`, transformers' forward decorators (kwarg deprecation, output capturing,
config defaults) and per-step mask building; the arithmetic itself is ~45 small ops per layer. `DirectDecoder`
runs those ops — written out from `Qwen2DecoderLayer` / `LlamaDecoderLayer` / `MistralDecoderLayer` /
`Qwen3DecoderLayer` and their attention / MLP forwards — calling the model's own norms, rotary embedding,
`rotate_half` / `apply_rotary_pos_emb`, attention function and cache, in the same order, with q/k/v and gate/up
fused into one GEMM each below 1B parameters (each output element is the same dot product over the same inputs;
measured: 0.73 → 0.43 ms per step).

It engages only where it computes what the model computes: exactly those layer classes with plain `nn.Linear`
projections (no LoRA, no quantised layers), sdpa or eager attention, full attention in every layer, and no hooks
on any module (accelerate offload, DeepSpeed ZeRO-3 and friends use hooks). And it is checked at run time:
`r1.decoding.lean_sample` runs the first decode step of every generation both ways and keeps the direct path only
if the logits agree bit for bit (and drops it, with one warning, if they do not or if it raises).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as module_globals
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

# decoder layer class -> whether its attention normalises q and k per head (Qwen3's q_norm / k_norm)
SUPPORTED_LAYERS: dict[str, bool] = {
    "LlamaDecoderLayer": False,
    "MistralDecoderLayer": False,
    "Qwen2DecoderLayer": False,
    "Qwen3DecoderLayer": True,
}
SUPPORTED_ATTENTION = ("sdpa", "eager")


def _has_hooks(module: nn.Module) -> bool:
    """torch forward hooks, or accelerate's (device_map / offloading), which replace `forward` on the instance."""
    return any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook") for m in module.modules())


def unsupported_reason(backbone: nn.Module, head: nn.Module) -> str | None:
    """Why `DirectDecoder` cannot stand in for `backbone` + `head` (None = it can)."""
    config = getattr(backbone, "config", None)
    layers = getattr(backbone, "layers", None)
    if config is None or not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return "no decoder layer list"
    if type(head) is not nn.Linear:
        return f"lm_head is {type(head).__name__}"
    for name in ("embed_tokens", "norm", "rotary_emb"):
        if not isinstance(getattr(backbone, name, None), nn.Module):
            return f"backbone has no {name}"
    if getattr(config, "_attn_implementation", None) not in SUPPORTED_ATTENTION:
        return f"attention implementation {getattr(config, '_attn_implementation', None)!r}"
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        return "sliding-window or other non-full attention layers"
    for layer in layers:
        if type(layer).__name__ not in SUPPORTED_LAYERS:
            return f"decoder layer {type(layer).__name__}"
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None or getattr(attn, "sliding_window", None) is not None:
            return "unexpected layer structure"
        if attn.training and getattr(attn, "attention_dropout", 0.0):
            return "attention dropout is active (its random draws would be taken twice by the first-step check)"
        projections = [getattr(attn, p, None) for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        projections += [getattr(mlp, p, None) for p in ("gate_proj", "up_proj", "down_proj")]
        if any(type(p) is not nn.Linear for p in projections):
            return "projections that are not plain nn.Linear (LoRA, quantised, ...)"
        if type(mlp).__name__ not in ("LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"):
            return f"MLP {type(mlp).__name__}"
    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return "global module hooks"
    if _has_hooks(backbone) or _has_hooks(head):
        return "module hooks (offloading, ZeRO-3, ...)"
    return None


# Fusing copies the attention and MLP weights once per generation; above this many parameters that transient copy
# (as large as the model) costs more memory than a few saved GEMM launches are worth.
FUSE_BELOW_PARAMS = 1_000_000_000

Projection = list[tuple[torch.Tensor, torch.Tensor | None]]  # (weight, bias) per GEMM; outputs concatenated


def _fuse(linears: list[nn.Linear], fuse: bool) -> Projection:
    """(weight, bias) for several linears applied to the same input: one GEMM when `fuse`, else one per linear."""
    if not fuse:
        return [(lin.weight, lin.bias) for lin in linears]
    weight = torch.cat([lin.weight for lin in linears])
    if all(lin.bias is None for lin in linears):
        return [(weight, None)]
    bias = torch.cat([lin.bias if lin.bias is not None else lin.weight.new_zeros(lin.out_features) for lin in linears])
    return [(weight, bias)]


def _project(x: torch.Tensor, projection: Projection) -> torch.Tensor:
    if len(projection) == 1:
        return F.linear(x, *projection[0])
    return torch.cat([F.linear(x, *part) for part in projection], dim=-1)


@dataclass
class _Layer:
    """What one decode step needs of a decoder layer, looked up once per generation (nn.Module attribute access is
    slow), with q/k/v and gate/up fused into one GEMM each below FUSE_BELOW_PARAMS (rebuilt per generation: the
    optimizer moves the weights)."""

    module: nn.Module
    attn: nn.Module
    act_fn: Any
    qkv: Projection
    o: tuple[torch.Tensor, torch.Tensor | None]
    gate_up: Projection
    down: tuple[torch.Tensor, torch.Tensor | None]
    heads: int
    kv_heads: int
    intermediate: int


class DirectDecoder:
    """`logits = head(backbone(one new token per row).last_hidden_state[:, keep])`, as plain function calls.

    The first call asks the model's own `create_causal_mask` for the step's mask; when that is the padding mask
    itself (sdpa with left padding) or None (no padding), later steps slice / reuse it instead of rebuilding it,
    otherwise every step asks again. Fused GEMMs compute each output element over the same inputs as the separate
    ones; `verify` in the caller confirms that the bits agree on this machine before the result is used.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear, keep: slice):
        self.backbone, self.head, self.keep = backbone, head, keep
        modeling = sys.modules[type(backbone.layers[0]).__module__]
        self.create_causal_mask = modeling.create_causal_mask
        self.apply_rotary_pos_emb = modeling.apply_rotary_pos_emb
        self.rotate_half = getattr(modeling, "rotate_half", None)
        self.attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            backbone.config._attn_implementation, modeling.eager_attention_forward
        )
        self.qk_norm = SUPPORTED_LAYERS[type(backbone.layers[0]).__name__]
        fuse = sum(p.numel() for p in backbone.parameters()) < FUSE_BELOW_PARAMS
        self.layers = []
        for layer in backbone.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(
                _Layer(
                    module=layer,
                    attn=attn,
                    act_fn=mlp.act_fn,
                    qkv=_fuse([attn.q_proj, attn.k_proj, attn.v_proj], fuse),
                    o=(attn.o_proj.weight, attn.o_proj.bias),
                    gate_up=_fuse([mlp.gate_proj, mlp.up_proj], fuse),
                    down=(mlp.down_proj.weight, mlp.down_proj.bias),
                    heads=attn.q_proj.out_features // attn.head_dim,
                    kv_heads=attn.k_proj.out_features // attn.head_dim,
                    intermediate=mlp.gate_proj.out_features,
                )
            )
        self.mask_mode: str | None = None  # "none" | "slice" | "call", decided on the first call
        self.full_mask: torch.Tensor | None = None  # "slice": the 4D padding mask of the whole buffer

    def _mask(self, embeds: torch.Tensor, mask_buf: torch.Tensor | None, length: int, positions: Any, cache: Any):
        if self.mask_mode == "none":
            return None
        if self.mask_mode == "slice":
            return self.full_mask[..., :length]
        mask_2d = mask_buf[:, :length] if mask_buf is not None else None
        mask = self.create_causal_mask(
            config=self.backbone.config,
            inputs_embeds=embeds,
            attention_mask=mask_2d,
            cache=cache,
            position_ids=positions,
        )
        if self.mask_mode is None:
            if mask is None:
                self.mask_mode = "none"
            elif (
                mask_2d is not None
                and mask.dtype == torch.bool
                and mask.shape == (mask_2d.shape[0], 1, 1, length)
                and torch.equal(mask, mask_2d.bool()[:, None, None, :])
            ):
                self.mask_mode = "slice"
                self.full_mask = mask_buf.bool()[:, None, None, :]
                if self.backbone.config._attn_implementation == "sdpa":
                    # what sdpa turns a boolean mask into on every call (0 where attended, -inf elsewhere), made once
                    additive = torch.zeros(self.full_mask.shape, dtype=embeds.dtype, device=embeds.device)
                    self.full_mask = additive.masked_fill_(self.full_mask.logical_not(), float("-inf"))
                # from this first step on, so that the caller's bit-for-bit check covers the mask later steps get
                return self.full_mask[..., :length]
            else:
                self.mask_mode = "call"
        return mask

    def __call__(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None,
        mask_buf: torch.Tensor | None,
        length: int,
        cache: Any,
    ) -> torch.Tensor:
        """Logits for `input_ids` (B, 1); `mask_buf[:, :length]` is the 2D attention mask including them (the rest of
        the buffer must already hold ones: the decode loop only ever appends attended positions)."""
        backbone = self.backbone
        hidden = backbone.embed_tokens.forward(input_ids)
        if position_ids is None:
            position_ids = (torch.arange(hidden.shape[1], device=hidden.device) + cache.get_seq_length())[None]
        mask = self._mask(hidden, mask_buf, length, position_ids, cache)
        cos, sin = backbone.rotary_emb(hidden, position_ids)
        for layer in self.layers:
            hidden = self._layer(layer, hidden, cos, sin, mask, cache)
        hidden = backbone.norm.forward(hidden)
        return F.linear(hidden[:, self.keep, :], self.head.weight, self.head.bias)

    def _layer(
        self, layer: _Layer, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: Any, cache: Any
    ) -> torch.Tensor:
        # pre-norm attention, added to the residual stream
        attn, h, kv = layer.attn, layer.heads, layer.kv_heads
        residual = hidden
        x = layer.module.input_layernorm.forward(hidden)
        input_shape = x.shape[:-1]
        qkv = _project(x, layer.qkv).view(*input_shape, h + 2 * kv, attn.head_dim)
        v = qkv[..., h + kv :, :].transpose(1, 2)
        if self.qk_norm or self.rotate_half is None:
            q, k = qkv[..., :h, :], qkv[..., h : h + kv, :]
            if self.qk_norm:
                q, k = attn.q_norm.forward(q), attn.k_norm.forward(k)
            q, k = self.apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
        else:  # apply_rotary_pos_emb on q and k at once: the same elementwise ops on the same numbers
            qk = qkv[..., : h + kv, :].transpose(1, 2)
            qk = (qk * cos.unsqueeze(1)) + (self.rotate_half(qk) * sin.unsqueeze(1))
            q, k = qk[:, :h], qk[:, h:]
        k, v = cache.update(k, v, attn.layer_idx)
        dropout = 0.0 if not attn.training else attn.attention_dropout
        out, _ = self.attention(attn, q, k, v, mask, dropout=dropout, scaling=attn.scaling)
        out = out.reshape(*input_shape, -1).contiguous()
        hidden = residual + F.linear(out, *layer.o)
        # pre-norm gated MLP, added to the residual stream
        residual = hidden
        x = layer.module.post_attention_layernorm.forward(hidden)
        gate_up = _project(x, layer.gate_up)
        gate, up = gate_up[..., : layer.intermediate], gate_up[..., layer.intermediate :]
        return residual + F.linear(layer.act_fn(gate) * up, *layer.down)
