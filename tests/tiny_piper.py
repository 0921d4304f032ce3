"""A tiny random-weight Piper voice, built as an ONNX graph with a real voice's inputs and outputs.

Like an exported VITS voice it takes ``input`` (phoneme ids, int64 [1, N]), ``input_lengths``
(int64 [1]) and ``scales`` (float [3]: noise, length, noise_w), plus ``sid`` (int64 [1]) when it
has several speakers, and returns ``output`` (float [1, 1, 1, T]). Inside, a random duration
table gives every phoneme id its length in frames, scaled by ``scales[1]`` and rounded up by a
``Ceil`` node (the ``w_ceil`` tensor piper exposes for alignments); each frame is ``HOP``
samples. The waveform is a tone whose loudness follows the phoneme being spoken: silent for
pauses, spaces and punctuation, so the audio has the gaps real speech has between words.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HOP = 256
RATE = 22050
SILENT = set(" ^$,.;:!?")


def make_piper_voice(folder: Path, key: str = "en_US-tiny-medium", *, num_speakers: int = 1,
                     espeak_voice: str = "en-us", seed: int = 0) -> Path:
    """Write ``{key}.onnx`` and ``{key}.onnx.json`` into ``folder``; return the .onnx path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    rng = np.random.default_rng(seed)
    id_map = DEFAULT_PHONEME_ID_MAP
    n_symbols = max(i for ids in id_map.values() for i in ids) + 1
    durations = rng.uniform(1.0, 4.0, n_symbols).astype(np.float32)  # frames per phoneme id
    loudness = rng.uniform(0.3, 0.9, n_symbols).astype(np.float32)
    durations[id_map["_"]] = 0.0  # the PAD that follows every phoneme id takes no time
    for phoneme, ids in id_map.items():
        if phoneme in SILENT:
            loudness[ids] = 0.0
            durations[ids] = rng.uniform(2.0, 5.0)
    consts = {
        "durations": durations,
        "loudness": loudness,
        "hop": np.array(HOP, dtype=np.float32),
        "zero": np.array(0.0, dtype=np.float32),
        "one": np.array(1.0, dtype=np.float32),
        "omega": np.array(2 * np.pi * 180.0 / RATE, dtype=np.float32),
        "axis0": np.array([0], dtype=np.int64),
        "axis1": np.array([1], dtype=np.int64),
        "length_index": np.array(1, dtype=np.int64),
        "scalar0": np.array(0, dtype=np.int64),
        "out_shape": np.array([1, 1, 1, -1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Squeeze", ["input", "axis0"], ["ids"]),
        helper.make_node("Gather", ["durations", "ids"], ["frames"]),
        helper.make_node("Gather", ["scales", "length_index"], ["length_scale"]),
        helper.make_node("Mul", ["frames", "length_scale"], ["w"]),
        helper.make_node("Ceil", ["w"], ["w_ceil"]),
        helper.make_node("Mul", ["w_ceil", "hop"], ["samples_per_id"]),
        helper.make_node("CumSum", ["samples_per_id", "scalar0"], ["ends"]),
        helper.make_node("ReduceSum", ["samples_per_id"], ["total"], keepdims=0),
        helper.make_node("Range", ["zero", "total", "one"], ["t"]),
        helper.make_node("Unsqueeze", ["t", "axis1"], ["t_col"]),
        helper.make_node("LessOrEqual", ["ends", "t_col"], ["passed"]),
        helper.make_node("Cast", ["passed"], ["passed_i"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["passed_i", "axis1"], ["position"], keepdims=0),
        helper.make_node("Gather", ["loudness", "ids"], ["id_loudness"]),
        helper.make_node("Gather", ["id_loudness", "position"], ["envelope"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
        helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
    ]
    if num_speakers > 1:  # each speaker speaks at its own pitch
        consts["omega_per_speaker"] = np.array(2 * np.pi * 15.0 / RATE, dtype=np.float32)
        inputs.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        nodes += [
            helper.make_node("Cast", ["sid"], ["sid_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["sid_f", "omega_per_speaker"], ["omega_shift"]),
            helper.make_node("Add", ["omega", "omega_shift"], ["omega_1"]),
            helper.make_node("Mul", ["t", "omega_1"], ["phase"]),
        ]
    else:
        nodes.append(helper.make_node("Mul", ["t", "omega"], ["phase"]))
    nodes += [
        helper.make_node("Sin", ["phase"], ["tone"]),
        helper.make_node("Mul", ["tone", "envelope"], ["wave"]),
        helper.make_node("Reshape", ["wave", "out_shape"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_vits", inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 1, "samples"])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.onnx"
    onnx.save(model, str(path))
    config = {
        "audio": {"sample_rate": RATE, "quality": key.rsplit("-", 1)[-1]},
        "espeak": {"voice": espeak_voice},
        "phoneme_type": "espeak",
        "num_symbols": n_symbols,
        "num_speakers": num_speakers,
        "speaker_id_map": {f"speaker_{i}": i for i in range(num_speakers)} if num_speakers > 1 else {},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_id_map": id_map,
        "hop_length": HOP,
        "piper_version": "1.0.0",
    }
    Path(f"{path}.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return path
