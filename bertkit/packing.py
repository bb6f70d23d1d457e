"""Packed batches (`data.packing=true`): the encoder runs on rows that each hold several of the batch's
sequences, with attention confined to each sequence, instead of on one padded row per sequence.

A batch comes padded as ever (the tasks' collators are unchanged). The encoder's forward pass then:

1. embeds it as padded (so position ids and token type ids are each sequence's own, from 0); ModernBERT,
   whose embeddings know no positions, packs the ids instead and gets restarting rotary positions,
2. moves the real tokens into rows (of a length chosen per batch, row_length_for), filled by a greedy
   best-fit packer,
3. runs the transformer layers on those rows with a block-diagonal mask, built by transformers' mask
   interface for the model's attention implementation (SDPA and eager on CPU, flex attention; flash attention
   reads the restarting position ids instead, its variable-length kernels); ModernBERT's local layers get
   their window inside each sequence too,
4. moves the outputs back to the padded layout, where the pooler reads each sequence's own [CLS] and the
   heads (masked-only MLM, NSP/SOP, classification, token classification, multiple choice) run unchanged.

So the same sequences give the same loss as the padded computation, to float rounding, with less work
wherever the batch holds padding. Empty slots at the ends of rows attend only to each other: a query that
may attend to nothing would give NaN, and NaN times a zero gradient is still NaN in the weights' gradients.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import PreTrainedModel
from transformers.masking_utils import (
    create_bidirectional_mask,
    create_bidirectional_sliding_window_mask,
    packed_sequence_mask_function,
)
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPoolingAndCrossAttentions

from bertkit.core.errors import ModelError

_FLASH = ("flash_attention_2", "flash_attention_3", "flash_attention_4")
BERT_BUILT = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})
"""Encoders built as BERT is (embeddings with absolute positions, encoder, pooler of dense + tanh)."""


def best_fit_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Sequence indices grouped into rows of at most `capacity` tokens: longest first, each into the open row
    it leaves least room in (best-fit decreasing), a new row when none has room."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        fitting = [row for row in range(len(rows)) if room[row] >= lengths[index]]
        if fitting:
            best = min(fitting, key=lambda row: room[row])
            rows[best].append(index)
            room[best] -= lengths[index]
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


@dataclass(frozen=True)
class Layout:
    """Where each real token of a padded (batch, length) batch sits in the packed (rows, row_length) one."""

    padded: torch.Tensor
    """Flat index of each real token in the padded batch."""
    packed: torch.Tensor
    """Flat index of the same token in the packed rows."""
    sequence_ids: torch.Tensor
    """(rows, row_length): 1, 2, ... for the sequences of a row, 0 for its empty slots."""
    position_ids: torch.Tensor
    """(rows, row_length): positions restarting at 0 with each sequence (and with the empty slots)."""
    batch_shape: tuple[int, int]
    """(batch, length) of the padded batch."""

    @classmethod
    def of(cls, padding_mask: torch.Tensor, row_length: int | None = None) -> Layout:
        """The layout of a right-padded batch in rows of row_length tokens (at least the batch's length)."""
        batch, length = padding_mask.shape
        capacity = max(length, row_length or 0)
        counts = padding_mask.sum(dim=1)
        if not bool((padding_mask.bool() == (torch.arange(length, device=counts.device) < counts[:, None])).all()):
            raise ModelError("data.packing needs right-padded batches (each sequence's tokens first)")
        padded, packed, sequence_ids, position_ids = [], [], [], []
        lengths = counts.tolist()
        for row, members in enumerate(best_fit_rows(lengths, capacity)):
            ids = torch.zeros(capacity, dtype=torch.long)
            positions = torch.arange(capacity)
            start = 0
            for number, index in enumerate(members, start=1):
                size = lengths[index]
                padded.append(torch.arange(size) + index * length)
                packed.append(torch.arange(size) + row * capacity + start)
                ids[start : start + size] = number
                positions[start : start + size] = torch.arange(size)
                start += size
            positions[start:] = torch.arange(capacity - start)
            sequence_ids.append(ids)
            position_ids.append(positions)
        device = padding_mask.device
        return cls(
            padded=torch.cat(padded).to(device),
            packed=torch.cat(packed).to(device),
            sequence_ids=torch.stack(sequence_ids).to(device),
            position_ids=torch.stack(position_ids).to(device),
            batch_shape=(batch, length),
        )

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, length, hidden) -> (rows, row_length, hidden); empty slots are zeros."""
        hidden = padded.shape[-1]
        flat = padded.new_zeros(self.sequence_ids.numel(), hidden)
        flat = flat.index_copy(0, self.packed, padded.reshape(-1, hidden).index_select(0, self.padded))
        return flat.view(*self.sequence_ids.shape, hidden)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(rows, row_length, hidden) -> (batch, length, hidden); padding positions are zeros."""
        hidden = packed.shape[-1]
        flat = packed.new_zeros(self.batch_shape[0] * self.batch_shape[1], hidden)
        flat = flat.index_copy(0, self.padded, packed.reshape(-1, hidden).index_select(0, self.packed))
        return flat.view(*self.batch_shape, hidden)


def row_length_for(lengths: list[int], batch_length: int, longest_row: int, hidden_size: int) -> int:
    """The row length, from the batch's length up to `longest_row` in steps of 8, that packs the batch for
    least work: token slots, each costing more the longer its row (attention). The attention weight is a
    measurement, not a FLOP count: on this CPU, rows of 128 against rows of ~40 for SST-2's batches cost what
    this predicts, and MRPC's pairs packed in rows of 128 beat rows of their batch's ~100."""
    candidates = range(batch_length, max(batch_length, longest_row) + 1, 8)
    return min(candidates, key=lambda row: len(best_fit_rows(lengths, row)) * row * (1 + row / hidden_size))


def enable_packing(model: PreTrainedModel, longest_row: int | None = None) -> None:
    """Make the model's encoder run on packed rows (see the module's docstring), each batch in rows of the
    length from its own up to `longest_row` that costs least (row_length_for). Encoders built as BERT is
    (embeddings, encoder, pooler: BERT, RoBERTa, XLM-R, CamemBERT) and ModernBERT can; others are refused."""
    base = model.base_model
    if base.config.model_type == "modernbert":
        packed_forward: Any = _packed_modernbert_forward
    elif base.config.model_type in BERT_BUILT and not getattr(base.config, "is_decoder", False):
        packed_forward = _packed_forward
    else:
        raise ModelError(
            f"data.packing=true: {type(base).__name__} ({base.config.model_type}) is not one of the encoders "
            f"packing supports ({', '.join(sorted(BERT_BUILT))}, modernbert); set data.packing=false"
        )
    base.forward = types.MethodType(functools.partial(packed_forward, longest_row=longest_row), base)


def layout_for(config: Any, attention_mask: torch.Tensor, longest_row: int | None) -> Layout:
    """The layout a batch gets in training: rows of the cheapest length (row_length_for) for this encoder."""
    lengths, batch_length = attention_mask.sum(dim=1).tolist(), attention_mask.shape[1]
    row_length = row_length_for(lengths, batch_length, longest_row or batch_length, config.hidden_size)
    return Layout.of(attention_mask, row_length)


def _sequence_masks(config: Any, layout: Layout, like: torch.Tensor, sliding: bool = False) -> Any:
    """The attention mask of the packed rows in the form the attention implementation takes (None for flash
    attention, whose variable-length kernels read the restarting position ids instead)."""
    if config._attn_implementation in _FLASH:
        return None
    build = create_bidirectional_sliding_window_mask if sliding else create_bidirectional_mask
    return build(
        config=config,
        inputs_embeds=like,
        attention_mask=torch.ones(layout.sequence_ids.shape, dtype=torch.bool, device=like.device),
        and_mask_function=packed_sequence_mask_function(layout.sequence_ids),
    )


def _packed_modernbert_forward(
    self: Any,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    longest_row: int | None = None,
    **kwargs: Any,
) -> BaseModelOutput:
    """ModernBERT on packed rows: its token embeddings are looked up on the padded layout (where adversarial
    training perturbs them, per example) and packed, its embedding norm and dropout then work per token, the
    rows' restarting position ids give each sequence its own rotary positions, and its global and local
    attention layers each get their mask, confined to the sequence."""
    given = kwargs.pop("inputs_embeds", None), kwargs.pop("position_ids", None)
    if input_ids is None or any(value is not None for value in given):
        raise ModelError("data.packing=true packs the batch's input_ids; this call gave embeddings or positions")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    layout = layout_for(self.config, attention_mask, longest_row)
    packed = layout.pack(self.embeddings.tok_embeddings(input_ids))
    masks = {"full_attention": _sequence_masks(self.config, layout, packed),
             "sliding_attention": _sequence_masks(self.config, layout, packed, sliding=True)}  # fmt: skip
    output = type(self).forward(
        self, inputs_embeds=packed, attention_mask=masks, position_ids=layout.position_ids, **kwargs
    )
    output.last_hidden_state = layout.unpack(output.last_hidden_state)
    if output.hidden_states is not None:
        output.hidden_states = tuple(layout.unpack(hidden) for hidden in output.hidden_states)
    return output


def _packed_forward(
    self: Any,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    longest_row: int | None = None,
    **kwargs: Any,
) -> BaseModelOutputWithPoolingAndCrossAttentions:
    """The encoder's forward pass on packed rows, for the padded batch it is given."""
    embedded = self.embeddings(
        input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
    )
    if attention_mask is None:
        attention_mask = torch.ones(embedded.shape[:2], dtype=torch.long, device=embedded.device)
    layout = layout_for(self.config, attention_mask, longest_row)
    packed = layout.pack(embedded)
    mask = _sequence_masks(self.config, layout, packed)
    with _layer_outputs(self.encoder, wanted=bool(kwargs.get("output_hidden_states"))) as layer_outputs:
        encoded = self.encoder(packed, attention_mask=mask, position_ids=layout.position_ids).last_hidden_state
    sequence_output = layout.unpack(encoded)
    pooled = self.pooler(sequence_output) if self.pooler is not None else None
    hidden_states = (embedded, *(layout.unpack(o) for o in layer_outputs)) if layer_outputs else None
    return BaseModelOutputWithPoolingAndCrossAttentions(
        last_hidden_state=sequence_output, pooler_output=pooled, hidden_states=hidden_states
    )


@contextmanager
def _layer_outputs(encoder: torch.nn.Module, wanted: bool) -> Iterator[list[torch.Tensor]]:
    """The packed output of each transformer layer while the block runs, when hidden states are asked for
    (distillation's hidden-state loss): transformers collects them with hooks on the padded forward only."""
    outputs: list[torch.Tensor] = []
    layers = cast(torch.nn.ModuleList, encoder.layer) if wanted else torch.nn.ModuleList()
    hooks = [
        layer.register_forward_hook(lambda _, __, out: outputs.append(out[0] if isinstance(out, tuple) else out))
        for layer in layers
    ]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()
