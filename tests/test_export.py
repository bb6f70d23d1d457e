"""`bertkit export`: an ONNX model beside its tokenizer, whose outputs equal PyTorch's on inputs of new shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertForSequenceClassification

from bertkit import cli


@pytest.mark.parametrize("head", [BertForSequenceClassification, BertForQuestionAnswering])
def test_export_writes_onnx_that_matches_pytorch(head, tmp_path, tiny_checkpoint):
    import onnxruntime

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    head(config).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    assert cli.main(["export", str(tmp_path / "model"), "--format", "onnx", "--output", str(tmp_path / "onnx")]) == 0
    report = json.loads((tmp_path / "onnx" / "export_report.json").read_text())
    assert report["class"] == head.__name__ and report["max_abs_difference"] <= 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    encoded = AutoTokenizer.from_pretrained(tmp_path / "onnx")(["one", "two words", "and three words"], padding=True,
                                                               return_tensors="np")  # fmt: skip
    outputs = session.run(None, {name: encoded[name] for name in report["inputs"]})
    assert outputs[0].shape[0] == 3 and np.isfinite(outputs[0]).all()


def test_a_folder_without_a_model_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["export", str(tmp_path / "empty"), "--output", str(tmp_path / "onnx")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
