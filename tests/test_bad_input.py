"""Each bad input stops with one clear message naming the file or setting, and earlier outputs survive."""

from __future__ import annotations

import pytest
from transformers import BertConfig, BertForPreTraining

from bertkit import train
from bertkit.core.errors import ConfigError, DataError, ModelError

from .conftest import TINY_CORPUS, compose_config, wordpiece


def save_tiny_checkpoint(folder, **sizes):
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, **sizes)
    BertForPreTraining(config).save_pretrained(folder)
    return folder


def fails(tiny_run, error_type, pattern, *overrides):
    with pytest.raises(error_type, match=pattern) as error:
        train.run(compose_config(tiny_run(*overrides)))
    assert "\n" not in str(error.value), "the message must be a single line"
    return error.value


def test_missing_path(tiny_run, earlier_run):
    fails(
        tiny_run, DataError, r"data\.paths: '/nowhere/corpus\.txt' does not exist", "data.paths=[/nowhere/corpus.txt]"
    )


def test_glob_without_match(tiny_run, earlier_run, tmp_path):
    fails(tiny_run, DataError, r"no file matches", f"data.paths=[{tmp_path}/*.none]")


def test_empty_corpus(tiny_run, earlier_run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    fails(tiny_run, DataError, rf"corpus is empty: no sentences in {empty}", f"data.paths=[{empty}]")


def test_single_document(tiny_run, earlier_run, tmp_path):
    single = tmp_path / "single.txt"
    single.write_text("One sentence here.\nAnother sentence there.\nA third one.\n")
    fails(tiny_run, DataError, r"single document .*needs at least two", f"data.paths=[{single}]")


def test_bytes_that_are_not_utf8_name_file_line_and_offset(tiny_run, earlier_run, tmp_path):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(TINY_CORPUS.read_bytes() + "Caf\xe9 au lait.\n".encode("latin-1"))
    offset = len(TINY_CORPUS.read_bytes()) + 3
    lines = TINY_CORPUS.read_text().count("\n") + 1
    fails(
        tiny_run,
        DataError,
        rf"{corpus}: line {lines}, byte offset {offset} is not UTF-8 .*data\.encoding_errors=replace",
        f"data.paths=[{corpus}]",
    )


def test_non_utf8_decodes_with_replacement_when_asked(tmp_path, cache_dir):
    from bertkit.tasks.pretraining.config import EncodingErrors, PretrainCorpusConfig
    from bertkit.tasks.pretraining.corpus import load_documents

    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(TINY_CORPUS.read_bytes() + "Caf\xe9 au lait.\n".encode("latin-1"))
    cfg = PretrainCorpusConfig(source="sentence_files", paths=[str(corpus)], encoding_errors=EncodingErrors.replace)
    documents = load_documents(cfg, cache_dir)
    assert documents[-1]["sentences"][-1] == "Caf\ufffd au lait."


def test_max_seq_length_beyond_position_embeddings(tiny_run, earlier_run):
    pattern = r"data\.max_seq_length: 600 is larger than model\.max_position_embeddings=512"
    fails(tiny_run, ConfigError, pattern, "data.max_seq_length=600")


def test_checkpoint_with_too_few_positions(tiny_run, earlier_run, tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "short_positions", vocab_size=300, max_position_embeddings=32)
    fails(
        tiny_run,
        ModelError,
        r"data\.max_seq_length=64 is larger than the 32 positions the model embeds \(max_position_embeddings=32\)",
        f"model.name_or_path={checkpoint}",
        f"tokenizer.name_or_path={checkpoint}",
    )


def test_tokenizer_vocabulary_larger_than_the_model(tiny_run, earlier_run, tmp_path, cache_dir):
    from bertkit.settings import TokenizerConfig
    from bertkit.tasks.pretraining.config import PretrainCorpusConfig

    tokenizer = wordpiece(
        TokenizerConfig(vocab_size=300, min_frequency=1),
        PretrainCorpusConfig(source="sentence_files", paths=[str(TINY_CORPUS)]),
        cache_dir,
    )
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    checkpoint = save_tiny_checkpoint(tmp_path / "small_vocab", vocab_size=100)
    fails(
        tiny_run,
        ModelError,
        rf"the tokenizer has {len(tokenizer)} tokens but model\.name_or_path=.* embeds only 100",
        f"model.name_or_path={checkpoint}",
        f"tokenizer.name_or_path={tokenizer_dir}",
    )


def test_missing_checkpoint_folder(tiny_run, earlier_run, tmp_path):
    fails(tiny_run, ModelError, r"model\.name_or_path=.*none': no such folder", f"model.name_or_path={tmp_path}/none")


def test_unwritable_output_dir(tiny_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    fails(tiny_run, ConfigError, r"output_dir: .* cannot be written", f"output_dir={blocker}/run")
