"""data.streaming: a corpus read as it is trained on, a block of documents at a time, each process its own shard,
and a killed run that resumes exactly where its last checkpoint left the stream."""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from bertkit.config import ConfigError, load
from bertkit.core.batch import EPOCH, STREAM_POSITION
from bertkit.core.errors import DataError
from bertkit.tasks.pretraining.config import Objective, PretrainCorpusConfig
from bertkit.tasks.pretraining.corpus import stream_documents
from bertkit.tasks.pretraining.stream import document_key
from bertkit.tokenizer import TokenizerConfig
from bertkit.training.trainer import one_line_errors_from_workers

from .conftest import ROOT, TINY_CORPUS, TINY_OVERRIDES, build_data, compose_config, wordpiece
from .test_distributed import COMMON, TRAIN, launch
from .test_resume import assert_identical, env, start_and_wait_for_step, weights

WORDS = TINY_CORPUS.read_text().split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """30 documents of 6-14 sentences (words of the tiny corpus), a blank line between documents."""
    rng = random.Random(0)
    documents = [
        "\n".join(" ".join(rng.choices(WORDS, k=rng.randint(5, 15))) + "." for _ in range(rng.randint(6, 14)))
        for _ in range(30)
    ]
    path = tmp_path_factory.mktemp("stream") / "corpus.txt"
    path.write_text("\n\n".join(documents) + "\n")
    return path


def stream_config(corpus, **settings) -> PretrainCorpusConfig:
    defaults = dict(source="sentence_files", paths=[str(corpus)], max_seq_length=32, num_proc=1, streaming=True,
                    max_eval_documents=3, stream_buffer=4)  # fmt: skip
    return PretrainCorpusConfig(**(defaults | settings))


@pytest.fixture(scope="module")
def streamed(corpus, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    cfg = stream_config(corpus)
    tokenizer = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), cfg, cache_dir)
    return build_data(cfg, tokenizer, cache_dir), tokenizer, cache_dir


def take(stream, count: int) -> list[dict]:
    return list(itertools.islice(iter(stream), count))


def test_the_stream_resumes_after_any_instance_across_blocks_and_epochs(streamed):
    data, _, _ = streamed
    reference = take(data.train.for_process(0, 1, 42), 240)
    assert {example[EPOCH] for example in reference} == {0, 1}, "the run should cross into a new epoch"
    assert len({example[STREAM_POSITION]["block"] for example in reference}) > 3
    last_of_epoch = max(i for i, example in enumerate(reference) if example[EPOCH] == 0)
    for at in (0, 3, 57, last_of_epoch - 1, last_of_epoch, 200):
        resumed = data.train.for_process(0, 1, 42)
        resumed.resume_from(json.loads(json.dumps(reference[at][STREAM_POSITION])))  # as a checkpoint keeps it
        for expected, got in zip(reference[at + 1 : at + 31], take(resumed, 30), strict=True):
            assert np.array_equal(expected["input_ids"], got["input_ids"])
            assert expected["next_sentence_label"] == got["next_sentence_label"]


def test_every_process_resumes_exactly_in_its_own_shard(tmp_path, corpus):
    data = two_file_data(tmp_path, corpus)
    for rank in (0, 1):
        reference = take(data.train.for_process(rank, 2, 7), 150)
        for at in (0, 41, 99):
            resumed = data.train.for_process(rank, 2, 7)
            resumed.resume_from(json.loads(json.dumps(reference[at][STREAM_POSITION])))
            for expected, got in zip(reference[at + 1 : at + 21], take(resumed, 20), strict=True):
                assert np.array_equal(expected["input_ids"], got["input_ids"])


def test_the_training_seed_orders_the_stream(streamed):
    data, _, _ = streamed
    first, other = (take(data.train.for_process(0, 1, seed), 20) for seed in (1, 2))
    assert [tuple(e["input_ids"]) for e in first] != [tuple(e["input_ids"]) for e in other]


def test_a_block_left_with_one_document_after_tokenization_gives_no_instances(streamed):
    data, _, _ = streamed
    build_block = data.train.build_block
    assert build_block([{"sentences": ["\x07\x08"]}, {"sentences": ["the lazy dog ."]}], "0/0/0").num_rows == 0
    assert build_block([{"sentences": ["the dog ."] * 20}, {"sentences": ["a cat ."] * 20}], "0/0/0").num_rows > 0


def test_epochs_cut_and_order_instances_afresh(streamed):
    data, _, _ = streamed
    instances = take(data.train.for_process(0, 1, 42), 240)
    epochs = [[tuple(e["input_ids"]) for e in instances if e[EPOCH] == epoch] for epoch in (0, 1)]
    assert epochs[0] != epochs[1]


def test_held_out_documents_are_never_trained_on(corpus, streamed):
    data, _, _ = streamed
    stream = data.train.for_process(0, 1, 42)
    trained = {document_key(d) for _, _, block in stream._blocks(0, None) for d in block}
    assert len(trained) == 27 and not trained & stream.held_out and len(stream.held_out) == 3
    assert data.stats["heldout"]["documents"] == 3


def two_file_data(tmp_path, corpus, one_file: bool = False):
    documents = corpus.read_text().split("\n\n")
    (tmp_path / "a.txt").write_text("\n\n".join(documents[:15]))
    (tmp_path / "b.txt").write_text("\n\n".join(documents[15:]))
    paths = [str(corpus)] if one_file else [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    cfg = stream_config(corpus, paths=paths)
    tokenizer = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), cfg, tmp_path / "cache")
    return build_data(cfg, tokenizer, tmp_path / "cache")


@pytest.mark.parametrize("one_file", [True, False])  # one file: every other document; two: a file each
def test_each_process_reads_its_own_shard_in_every_epoch(tmp_path, corpus, one_file):
    data = two_file_data(tmp_path, corpus, one_file)
    shards = [data.train.for_process(rank, 2, 42) for rank in (0, 1)]
    read = [{document_key(d) for _, _, block in shard._blocks(0, None) for d in block} for shard in shards]
    assert read[0] and read[1] and not read[0] & read[1]
    assert len(read[0] | read[1]) >= 25  # each shard's odd last document may be left out
    take(shards[0], 300)  # several epochs on
    assert {document_key(d) for _, _, block in shards[0]._blocks(0, None) for d in block} == read[0]


def test_packed_text_streams_too(corpus, tmp_path):
    cfg = stream_config(corpus, objective=Objective.mlm)
    tokenizer = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), cfg, tmp_path)
    data = build_data(cfg, tokenizer, tmp_path)
    batch = data.collate_train(take(data.train.for_process(0, 1, 42), 4))
    assert batch["input_ids"].shape[0] == 4 and STREAM_POSITION in batch and "next_sentence_label" not in batch


def test_table_files_stream_a_document_per_row(corpus, tmp_path):
    rows = [
        {"text": " ".join(document.split("\n")), "id": n} for n, document in enumerate(corpus.read_text().split("\n\n"))
    ]
    table = tmp_path / "rows.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = stream_config(corpus, source="local", paths=[str(table)])
    tokenizer = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), cfg, tmp_path / "cache")
    data = build_data(cfg, tokenizer, tmp_path / "cache")
    assert data.stats["heldout"]["documents"] == 3
    stream = data.train.for_process(0, 1, 42)
    assert sum(len(block) for _, _, block in stream._blocks(0, None)) == 27
    wrong = stream_config(corpus, source="local", paths=[str(table)], text_column="body")
    with pytest.raises(DataError, match=r"no column 'body' \(data.text_column\)"):
        build_data(wrong, tokenizer, tmp_path / "cache")


def test_an_unreachable_hub_dataset_is_one_line_naming_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = PretrainCorpusConfig(source="hub", hub_name="nobody/no-such-corpus", streaming=True)
    with pytest.raises(DataError, match=r"could not load Hub dataset 'nobody/no-such-corpus' \(data.hub_name"):
        stream_documents(cfg, tmp_path)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ([], "trainer.max_steps"),
        (["trainer.max_steps=5", "trainer.num_workers=2"], "trainer.num_workers"),
        (["trainer.max_steps=5", "trainer.group_by_length=true"], "trainer.group_by_length"),
        (["trainer.max_steps=5", "data.document_start_pattern='^= '"], "data.document_start_pattern"),
        (["trainer.max_steps=5", "data.num_shards=2"], "data.num_shards"),
    ],
)
def test_settings_a_stream_cannot_honour_are_refused_at_start(overrides, named):
    cfg = compose_config([*TINY_OVERRIDES, "data.streaming=true", "trainer.max_steps=null", *overrides])
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load(cfg)


# ------------------------------------------------------------------------------------------- whole runs

RUN = [*TINY_OVERRIDES, "data.streaming=true", "data.max_eval_documents=2", "data.stream_buffer=2",
       "trainer.max_steps=14", "trainer.gradient_accumulation_steps=2", "trainer.save_every=2",
       "trainer.log_every=1", "trainer.num_workers=1"]  # fmt: skip


def run_command(run_dir, cache_dir) -> list[str]:
    return [sys.executable, TRAIN, *RUN, f"output_dir={run_dir}", f"cache_dir={cache_dir}"]


@pytest.mark.slow
def test_a_killed_streaming_run_resumes_to_the_same_weights(tmp_path):
    cache_dir = tmp_path / "cache"
    reference = subprocess.run(run_command(tmp_path / "reference", cache_dir), cwd=ROOT, env=env(cache_dir),
                               capture_output=True, text=True)  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-3000:]
    # the stream ran into a new epoch on its way (6 documents, 2 held out)
    state = json.loads((tmp_path / "reference" / "checkpoints" / "step_14" / "loop_state.json").read_text())
    assert state["streams"][0]["epoch"] >= 1
    run_dir = tmp_path / "killed"
    process = start_and_wait_for_step(
        run_dir, cache_dir, random.Random().randint(3, 11), run_command(run_dir, cache_dir)
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    restarted = subprocess.run(run_command(run_dir, cache_dir), cwd=ROOT, env=env(cache_dir),
                               capture_output=True, text=True)  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "Resumed from" in restarted.stdout + restarted.stderr
    assert_identical(weights(tmp_path / "reference"), weights(run_dir))


@pytest.mark.slow
def test_two_processes_read_two_shards_and_resume_only_as_two(tmp_path):
    two = [sys.executable, "-m", "bertkit.launch", "--cpu", "--num_processes", "2", *COMMON]
    one = [sys.executable, "-m", "bertkit.launch", "--num_processes", "1", *COMMON]
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    args = [*RUN[:-3], "trainer.max_steps=4", "trainer.save_every=4", f"output_dir={run_dir}"]
    result = launch(two, args, cache_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    streams = json.loads((run_dir / "checkpoints" / "step_4" / "loop_state.json").read_text())["streams"]
    assert len(streams) == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["throughput"]["weights_identical_across_processes"] is True
    refused = launch(one, [*args[:-2], "trainer.max_steps=6", f"output_dir={run_dir}"], cache_dir)
    assert refused.returncode == 2
    assert "resume it with as many, not 1" in refused.stderr.strip().splitlines()[-1]


class _FailingStream(torch.utils.data.IterableDataset):
    def __iter__(self):
        raise DataError("corpus.jsonl: no column 'text' (data.text_column)")


def test_an_error_in_the_loader_worker_stays_one_line():
    loader = torch.utils.data.DataLoader(_FailingStream(), batch_size=2, num_workers=1)
    with pytest.raises(DataError) as raised, one_line_errors_from_workers():
        next(iter(loader))
    assert str(raised.value) == "corpus.jsonl: no column 'text' (data.text_column)"


def test_a_stream_all_held_out_is_refused_while_building(corpus, tmp_path):
    cfg = stream_config(corpus, max_eval_documents=29)
    tokenizer = wordpiece(TokenizerConfig(vocab_size=300, min_frequency=1), cfg, tmp_path)
    with pytest.raises(DataError, match=r"data.max_eval_documents=29 holds out its first ones"):
        build_data(cfg, tokenizer, tmp_path)
