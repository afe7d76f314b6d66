"""TensorBoard reader: files written by SummaryWriter and by hand-built protobufs, checked against
TensorBoard's own EventAccumulator, plus truncation, corruption, resumes and block edges."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.tensorboard import masked_crc32c, read_events


def _event_accumulator(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _by_tag(res):
    out = {}
    for i, tag in enumerate(res.tags):
        sel = res.codes == i
        out[tag] = list(zip(res.steps[sel].tolist(), res.values[sel].tolist()))
    return out


def test_masked_crc_matches_tensorboard():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    for data in (b"", b"a", b"abc", bytes(range(256)), b"\xff" * 37):
        assert masked_crc32c(data) == reference(data)


def test_summarywriter_scalars_identical_to_event_accumulator(tmp_path, write_tb):
    rng = np.random.default_rng(1)
    series = {
        "train/loss": [(s, float(v)) for s, v in zip(range(0, 20000, 7), rng.normal(size=3000))],
        "val/acc": [(s, float(v)) for s, v in zip(range(0, 20000, 500), rng.random(40))],
        "a/much/longer/tag/name/than/the/others/for/layout": [(s, 1.5 * s) for s in range(130, 200)],
        "lr": [(0, 0.1), (1, float("nan")), (2, float("inf")), (3, -float("inf")), (2**40, 3.0)],
    }
    f = write_tb(tmp_path / "run", series)
    res = read_events(f)
    assert not res.truncated and res.corrupt_records == 0
    ours = _by_tag(res)
    ref = _event_accumulator(tmp_path / "run")
    assert sorted(ours) == sorted(ref)
    for tag in ref:
        assert [s for s, _ in ours[tag]] == [s for s, _ in ref[tag]]
        np.testing.assert_array_equal(
            np.asarray([v for _, v in ours[tag]], dtype=np.float32), np.asarray([v for _, v in ref[tag]], dtype=np.float32)
        )
    lr = dict(ours["lr"])
    assert math.isnan(lr[1]) and lr[2] == math.inf and lr[3] == -math.inf and lr[2**40] == 3.0
    assert np.all(res.wall_times > 1e9)  # real wall-clock times


def test_interleaved_tags_of_different_lengths_match_event_accumulator(tmp_path, write_tb):
    # One record per tag per step: a cycle of 7 different record lengths, whose step varint grows
    # from 1 to 3 bytes along the way (steps cross 128 and 16384).
    names = ["lr", "val/acc", "train/loss", "grad_norm", "mem/allocated_mb", "loss/sparsity/raw", "attn/entropy"]
    series = {n: [(s, float(i) + s / 1000.0) for s in range(0, 40000, 37)] for i, n in enumerate(names)}
    f = write_tb(tmp_path / "run", series)
    res = read_events(f, block_bytes=1 << 16)
    ref = _event_accumulator(tmp_path / "run")
    ours = _by_tag(res)
    assert sorted(ours) == sorted(ref)
    for tag in ref:
        assert [s for s, _ in ours[tag]] == [s for s, _ in ref[tag]]
        assert np.array_equal(np.float32([v for _, v in ours[tag]]), np.float32([v for _, v in ref[tag]]))


def _wide_names(n):
    # Names in groups of equal length (detectron2/YOLO style "loss_box_reg_3"): the lengths repeat
    # a short cycle inside the true one (one record per tag), which must not fool the walker.
    base = ["lr", "val/acc", "train/loss", "grad_norm", "mem/allocated_mb", "loss/sparsity/raw", "attn/entropy",
            "loss_cls", "loss_box_reg", "time"]
    return [base[i % len(base)] + (f"_{i // len(base)}" if i >= len(base) else "") for i in range(n)]


@pytest.mark.parametrize("block", [1 << 20, 1 << 14])
def test_wide_steps_100_tags_match_event_accumulator_and_a_plain_walk(tmp_path, write_tb, block):
    from trainfix.diagnostics.ingest.tensorboard.framing import _frame

    names = _wide_names(100)
    # steps cross 128 (varint 1 -> 2 bytes); one tag starts late and one stops early (cycle changes)
    series = {n: [(s, float(i) + s / 1000.0) for s in range(0, 260, 2)] for i, n in enumerate(names)}
    series[names[7]] = [(s, -float(s)) for s in range(100, 260, 2)]
    series[names[50]] = [(s, 0.5) for s in range(0, 150, 2)]
    f = write_tb(tmp_path / "run", series)
    res = read_events(f, block_bytes=block)
    ref = _event_accumulator(tmp_path / "run")
    ours = _by_tag(res)
    assert sorted(ours) == sorted(ref) and res.corrupt_records == 0
    for tag in ref:
        assert [s for s, _ in ours[tag]] == [s for s, _ in ref[tag]]
        assert np.array_equal(np.float32([v for _, v in ours[tag]]), np.float32([v for _, v in ref[tag]]))
    data = f.read_bytes()
    starts, _, end = _frame(data, np.frombuffer(data, dtype=np.uint8), len(data))
    assert starts.tolist() == _record_offsets(data) and end == len(data)


def test_wide_file_with_a_corrupt_length_resyncs(tmp_path, write_tb):
    names = _wide_names(64)
    f = write_tb(tmp_path / "run", {n: [(s, float(s)) for s in range(40)] for n in names})
    data = bytearray(f.read_bytes())
    offs = _record_offsets(bytes(data))
    victim = offs[1 + 64 * 20 + 3]  # step 20, fourth tag
    data[victim : victim + 8] = struct.pack("<Q", 987654321)
    f.write_bytes(bytes(data))
    res = read_events(f, block_bytes=1 << 14)
    assert res.corrupt_records == 1 and len(res) == 64 * 40 - 1
    got = _by_tag(res)
    assert [s for s, _ in got[names[3]]] == [s for s in range(40) if s != 20]
    assert all(len(got[n]) == 40 for n in names if n != names[3])


def test_block_edges_give_the_same_result(tmp_path, write_tb):
    series = {f"t{i}": [(s, s * 0.5 + i) for s in range(300)] for i in range(3)}
    f = write_tb(tmp_path / "run", series)
    whole = read_events(f)
    for block in (64, 97, 1000, 4096):
        part = read_events(f, block_bytes=block)
        assert part.tags == whole.tags
        np.testing.assert_array_equal(part.steps, whole.steps)
        np.testing.assert_array_equal(part.values, whole.values)
        np.testing.assert_array_equal(part.codes, whole.codes)


def test_record_larger_than_a_block(tmp_path, write_events):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    def scalar(step, v):
        return event_pb2.Event(wall_time=1.0, step=step, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="loss", simple_value=v)]))

    big = event_pb2.Event(wall_time=1.0, step=1, graph_def=b"\x00" * 50_000)
    f = write_events(tmp_path / "events.out.tfevents.1.h", [scalar(0, 1.0), big, scalar(1, 0.5)])
    res = read_events(f, block_bytes=4096)
    assert res.steps.tolist() == [0, 1] and res.values.tolist() == [1.0, 0.5]
    assert res.corrupt_records == 0 and not res.truncated


def test_non_scalar_summaries_are_skipped(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for step in range(5):
        w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_histogram("weights", np.arange(10.0) * step, step)
        w.add_image("img", np.zeros((3, 4, 4)), step)
        w.add_text("note", f"step {step}", step)
    w.close()
    run = read_run(tmp_path)
    assert run.tags == ["loss"]
    assert run.series("loss").values.tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])


def _tensor_event(tag, step, tensor, plugin="scalars"):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)
    return event_pb2.Event(wall_time=1700000000.0 + step, step=step, summary=summary_pb2.Summary(value=[value]))


def test_tf2_tensor_scalars(tmp_path, write_events):
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    scalar_shape = tensor_shape_pb2.TensorShapeProto()
    vec_shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=3)])
    events = [
        _tensor_event("epoch_loss", 1, tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=scalar_shape, float_val=[0.5])),
        _tensor_event("epoch_loss", 2, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=scalar_shape, tensor_content=np.float32(0.25).tobytes())),
        _tensor_event("epoch_acc", 1, tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=scalar_shape, double_val=[0.125])),
        _tensor_event("epoch_acc", 2, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE, tensor_shape=scalar_shape, tensor_content=np.float64(0.75).tobytes())),
        _tensor_event("count", 3, tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=scalar_shape, int_val=[-7])),
        _tensor_event("big", 3, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_INT64, tensor_shape=scalar_shape, tensor_content=np.int64(2**40).tobytes())),
        _tensor_event("half", 3, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_HALF, tensor_shape=scalar_shape, half_val=[int(np.float16(1.5).view(np.uint16))])),
        # not scalars: a vector, a text summary, a string tensor
        _tensor_event("vector", 3, tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=vec_shape, float_val=[1, 2, 3])),
        _tensor_event("notes", 3, tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=scalar_shape,
                                                         string_val=[b"hello"]), plugin="text"),
    ]
    write_events(tmp_path / "train" / "events.out.tfevents.1.host", events)
    run = read_run(tmp_path / "train")
    assert run.tags == ["big", "count", "epoch_acc", "epoch_loss", "half"]
    assert run.series("epoch_loss").values.tolist() == [0.5, 0.25]
    assert run.series("epoch_acc").values.tolist() == [0.125, 0.75]
    assert run.series("count").values.tolist() == [-7.0]
    assert run.series("big").values.tolist() == [2.0**40]
    assert run.series("half").values.tolist() == [1.5]


def test_tensorboardx_and_tf1_shaped_events(tmp_path, write_events):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"), display_name="Loss")
    events = [
        # tensorboardX with a display name: simple_value plus metadata
        event_pb2.Event(wall_time=10.0, step=0, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="loss", simple_value=2.0, metadata=meta)])),
        event_pb2.Event(wall_time=11.0, step=1, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="loss", simple_value=1.0)])),
        # TF1: several values in one summary, and the legacy node_name field
        event_pb2.Event(wall_time=12.0, step=2, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="loss", simple_value=0.5),
            summary_pb2.Summary.Value(tag="accuracy", simple_value=0.25),
            summary_pb2.Summary.Value(node_name="old_style", simple_value=7.0)])),
        event_pb2.Event(wall_time=13.0, step=-5, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="negative_step", simple_value=0.0)])),
        event_pb2.Event(wall_time=14.0, step=3, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="loss", simple_value=0.0)])),
    ]
    res = read_events(write_events(tmp_path / "events.out.tfevents.1.host", events))
    got = _by_tag(res)
    assert got["loss"] == [(0, 2.0), (1, 1.0), (2, 0.5), (3, 0.0)]
    assert got["accuracy"] == [(2, 0.25)] and got["old_style"] == [(2, 7.0)]
    assert got["negative_step"] == [(-5, 0.0)]
    assert res.wall_times[res.codes == res.tags.index("loss")].tolist() == [10.0, 11.0, 12.0, 14.0]


def test_keras_train_and_validation_folders_are_one_run_with_prefixed_tags(tmp_path, write_events):
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    def ev(tag, step, v):
        return _tensor_event(tag, step, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(), float_val=[v]))

    write_events(tmp_path / "logs" / "train" / "events.out.tfevents.1.h.v2",
                 [ev("epoch_loss", e, 1.0 / (e + 1)) for e in range(4)] + [ev("epoch_accuracy", e, 0.5) for e in range(4)])
    write_events(tmp_path / "logs" / "validation" / "events.out.tfevents.1.h.v2",
                 [ev("epoch_loss", e, 2.0 / (e + 1)) for e in range(4)] + [ev("epoch_accuracy", e, 0.4) for e in range(4)])
    from trainfix.diagnostics.ingest import find_runs

    assert find_runs(tmp_path / "logs") == [tmp_path / "logs"]
    run = read_run(tmp_path / "logs")
    assert run.tags == ["train/epoch_accuracy", "train/epoch_loss", "validation/epoch_accuracy", "validation/epoch_loss"]
    assert run.roles.tag("val_loss") == "validation/epoch_loss"
    assert run.roles.tag("val_acc") == "validation/epoch_accuracy"
    assert run.roles.tag("train_loss") == "train/epoch_loss"


def test_truncated_last_record_reads_up_to_it(tmp_path, write_tb):
    f = write_tb(tmp_path / "run", {"loss": [(s, float(s)) for s in range(50)]})
    data = f.read_bytes()
    f.write_bytes(data[:-7])  # the writer was interrupted mid-record
    res = read_events(f)
    assert res.truncated
    assert res.steps.tolist() == list(range(49))
    run = read_run(tmp_path / "run")
    assert run.inputs["truncated"] == [f.name]
    assert any("incomplete" in n for n in run.inputs["notes"])


def _record_offsets(data: bytes) -> list[int]:
    offs, pos = [], 0
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        offs.append(pos)
        pos += 16 + n
    return offs


@pytest.mark.parametrize("block", [1 << 20, 300])
def test_corrupt_length_mid_file_is_skipped_and_counted(tmp_path, write_tb, block):
    f = write_tb(tmp_path / "run", {"loss": [(s, float(s)) for s in range(100)]})
    data = bytearray(f.read_bytes())
    offs = _record_offsets(bytes(data))
    victim = offs[40]  # record 40 = step 39 (record 0 is the file-version event)
    data[victim : victim + 8] = struct.pack("<Q", 123456789)
    f.write_bytes(bytes(data))
    res = read_events(f, block_bytes=block)
    assert res.corrupt_records == 1
    assert not res.truncated
    assert res.steps.tolist() == [s for s in range(100) if s != 39]
    run = read_run(tmp_path / "run")
    assert run.inputs["corrupt_records"] == 1
    assert any("corrupt" in n for n in run.inputs["notes"])


def test_corrupt_payload_is_skipped_and_payload_crc_is_optional(tmp_path, write_tb):
    f = write_tb(tmp_path / "run", {"loss": [(s, float(s)) for s in range(20)]})
    data = bytearray(f.read_bytes())
    offs = _record_offsets(bytes(data))
    # garbage payload (length intact): cannot parse -> counted
    start = offs[5] + 12
    (n,) = struct.unpack_from("<Q", data, offs[5])
    data[start : start + n] = b"\xff" * n
    # a flipped value byte (still parses): only the payload CRC can tell
    (n10,) = struct.unpack_from("<Q", data, offs[10])
    data[offs[10] + 12 + n10 - 1] ^= 0x01
    f.write_bytes(bytes(data))
    fast = read_events(f)
    assert fast.corrupt_records == 1 and len(fast) == 19
    checked = read_events(f, verify_payload_crc=True)
    assert checked.corrupt_records == 2 and len(checked) == 18
    assert 9 not in checked.steps.tolist()


def test_resumed_run_later_segment_wins(tmp_path, write_tb):
    run_dir = tmp_path / "run"
    write_tb(run_dir, {"train/loss": [(s, 1.0) for s in range(0, 100, 10)]})
    import time

    time.sleep(1.1)  # the second file gets a later timestamp in its name
    write_tb(run_dir, {"train/loss": [(s, 2.0) for s in range(50, 150, 10)]})
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2
    run = read_run(run_dir)
    s = run.series("train/loss")
    assert s.steps.tolist() == list(range(0, 150, 10))
    assert s.values.tolist() == [1.0] * 5 + [2.0] * 10  # steps 50..90 come from the resumed run
    (restart,) = run.inputs["restarts"]
    assert restart["step"] == 50 and restart["from_step"] == 90 and restart["tags"] == ["train/loss"]


def test_lightning_layout_versions_are_separate_runs(tmp_path, write_tb):
    from trainfix.diagnostics.ingest import find_runs

    for v in range(2):
        d = tmp_path / "lightning_logs" / f"version_{v}"
        write_tb(d, {"train_loss": [(s, 1.0 / (s + 1)) for s in range(10)], "val_acc": [(9, 0.5 + v / 10)]})
        (d / "hparams.yaml").write_text("lr: 0.01\nbatch_size: 32\n")
    runs = find_runs(tmp_path / "lightning_logs")
    assert runs == [tmp_path / "lightning_logs" / "version_0", tmp_path / "lightning_logs" / "version_1"]
    run = read_run(runs[1])
    assert run.config == {"lr": 0.01, "batch_size": 32}
    assert run.roles.tag("val_acc") == "val_acc"
    assert run.series("val_acc").values.tolist() == pytest.approx([0.6])


def test_reader_result_is_sorted_with_categorical_tags(tmp_path, write_tb):
    write_tb(tmp_path, {"b": [(s, s) for s in range(5)], "a": [(s, -s) for s in range(5)]})
    run = read_run(tmp_path)
    df = run.scalars
    assert list(df.columns) == ["tag", "step", "value", "wall_time", "source"]
    assert df["tag"].astype(str).tolist() == ["a"] * 5 + ["b"] * 5
    assert df["step"].tolist() == list(range(5)) * 2
    assert str(df["step"].dtype) == "int64"
    assert run.inputs["formats"] == {"tensorboard": 1}
    assert run.inputs["points"] == 10


def test_random_damage_never_raises(tmp_path, write_tb):
    f = write_tb(tmp_path / "run", {"loss": [(s, s / 7) for s in range(200)], "val/acc": [(s, 0.5) for s in range(0, 200, 10)]})
    good = f.read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad" / f.name
    bad.parent.mkdir()
    for trial in range(40):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 6))):
            pos = int(rng.integers(0, len(data)))
            data[pos] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        bad.write_bytes(bytes(data))
        for block in (1 << 20, 257):
            res = read_events(bad, block_bytes=block)
            assert len(res) <= 220
            assert res.corrupt_records >= 0
